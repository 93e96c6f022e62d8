/*
 * api_error.h - every error the ingress API answers, as one table, and the
 * one path that finishes a request with an error.
 *
 * A row is (id, HTTP status, error code, Retry-After seconds or 0, default
 * message). The code is the wire contract (schemas/openapi.yaml x-codes and
 * docs/api.md's error table; tests/unit/check_openapi.py reads this table);
 * a reply site may say more than the default message, never another
 * status or code. Retry-After is sent only on the rows that have one: the
 * 503s and 429s, and four 409s whose conflict clears by itself in a moment
 * (a request with the same Idempotency-Key still running, a cancel that
 * has to wait for its intent to reach the log, a join while the fan's
 * earlier join is still being queued: its id is not known yet; the 409
 * already_in_queue that names the intent is built apart, without one; a
 * ticket whose transfer or cancel the partition owner has not applied yet).
 *
 * The errors common/httpd.c finds before a route runs (413, 415, 400
 * invalid_json ...) carry their own status and code (ons_httpd_err) and are
 * finished with ing_fail_httpd().
 */
#ifndef ONSALE_INGRESS_API_ERROR_H
#define ONSALE_INGRESS_API_ERROR_H

#include "common/httpd.h"

/* X(id, status, code, retry_after_s, message) */
#define ING_API_ERRORS(X)                                                                          \
    X(ING_E_INVALID_ID, 400, "invalid_id", 0, "The id in the path is malformed.")                  \
    X(ING_E_INVALID_FIELD, 400, "invalid_field", 0, "A field is invalid.")                         \
    X(ING_E_MISSING_FIELD, 400, "missing_field", 0, "A required field is missing.")                \
    X(ING_E_UNKNOWN_FIELD, 400, "unknown_field", 0, "Unknown field.")                              \
    X(ING_E_INVALID_QUERY, 400, "invalid_query", 0, "The query string is invalid.")                \
    X(ING_E_INVALID_CURSOR, 400, "invalid_cursor", 0, "The cursor is not one we issued.")          \
    X(ING_E_INVALID_IDEMPOTENCY_KEY, 400, "invalid_idempotency_key", 0,                            \
      "Idempotency-Key must be 1 to 128 printable characters.")                                    \
    X(ING_E_IDEMPOTENCY_KEY_REQUIRED, 400, "idempotency_key_required", 0,                          \
      "This request needs an Idempotency-Key header.")                                             \
    X(ING_E_CODE_INVALID, 400, "code_invalid", 0, "This is not a code of this ticket.")            \
    X(ING_E_CODE_EXPIRED, 400, "code_expired", 0,                                                  \
      "This code has expired; ask the holder to show the live one.")                               \
    X(ING_E_UNAUTHORIZED, 401, "unauthorized", 0, "A valid bearer token is required.")             \
    X(ING_E_INVALID_CREDENTIALS, 401, "invalid_credentials", 0, "The email or password is wrong.") \
    X(ING_E_INVALID_REFRESH_TOKEN, 401, "invalid_refresh_token", 0,                                \
      "The refresh token is not valid.")                                                           \
    X(ING_E_FORBIDDEN, 403, "forbidden", 0, "Your role may not do this.")                          \
    X(ING_E_POW_REQUIRED, 403, "pow_required", 0, "This event asks for a proof of work.")          \
    X(ING_E_POW_INVALID, 403, "pow_invalid", 0, "The proof of work is not valid.")                 \
    X(ING_E_POW_USED, 403, "pow_used", 0,                                                          \
      "This solution was already used; fetch a new challenge.")                                    \
    X(ING_E_SCANNER_NOT_ASSIGNED, 403, "scanner_not_assigned", 0,                                  \
      "This ticket cannot be admitted by you: it does not exist or is for a venue or event you "   \
      "are not assigned to.")                                                                      \
    X(ING_E_ROLE_NOT_GRANTED, 403, "role_not_granted", 0, "This account lacks that role.")         \
    X(ING_E_NOT_FOUND, 404, "not_found", 0, "No such resource.")                                   \
    X(ING_E_EVENT_NOT_FOUND, 404, "event_not_found", 0, "No such event.")                          \
    X(ING_E_HISTORY_NOT_CONFIGURED, 404, "history_not_configured", 0,                              \
      "No Prometheus is configured for history (ops.prometheus_url).")                             \
    X(ING_E_VENUE_NOT_FOUND, 404, "venue_not_found", 0, "No such venue.")                          \
    X(ING_E_NO_ACCOUNT, 404, "no_account", 0, "This user has no account.")                         \
    X(ING_E_REQUEST_TIMEOUT, 408, "request_timeout", 0, "The body did not arrive in time.")        \
    X(ING_E_IDEMPOTENCY_IN_PROGRESS, 409, "idempotency_in_progress", 1,                            \
      "A request with this Idempotency-Key is being processed.")                                   \
    X(ING_E_NOT_CANCELLABLE_YET, 409, "not_cancellable_yet", 1,                                    \
      "This intent cannot be cancelled here yet; retry shortly.")                                  \
    X(ING_E_ALREADY_IN_QUEUE, 409, "already_in_queue", 1,                                          \
      "You are already joining the queue for this event; retry shortly to see your place.")        \
    X(ING_E_ALREADY_ADMITTED, 409, "already_admitted", 0, "This ticket was already admitted.")     \
    X(ING_E_CHECKOUT_IN_PROGRESS, 409, "checkout_in_progress", 0,                                  \
      "This reservation is being paid for.")                                                       \
    X(ING_E_PAYMENT_IN_PROGRESS, 409, "payment_in_progress", 0,                                    \
      "This is being paid for and cannot be cancelled now.")                                       \
    X(ING_E_NOT_A_SCANNER, 409, "not_a_scanner", 0,                                                \
      "Only an account holding the scanner role can be assigned to a venue.")                      \
    X(ING_E_EMAIL_TAKEN, 409, "email_taken", 0, "An account with this email exists.")              \
    X(ING_E_EVENT_CANCELLED, 409, "event_cancelled", 0, "This event was cancelled.")               \
    X(ING_E_EVENT_ENDED, 409, "event_ended", 0, "This event has ended.")                           \
    X(ING_E_INVALID_STATE, 409, "invalid_state", 0, "This cannot be done in its current state.")   \
    X(ING_E_INVALID_TRANSITION, 409, "invalid_transition", 0,                                      \
      "This event cannot change that way.")                                                        \
    X(ING_E_PRICES_LOCKED, 409, "prices_locked", 0,                                                \
      "Prices can change only before the sale opens.")                                             \
    X(ING_E_STARTS_AT_LOCKED, 409, "starts_at_locked", 0,                                          \
      "The show's time can change only before the sale opens.")                                    \
    X(ING_E_REFUND_WINDOW_CLOSED, 409, "refund_window_closed", 0,                                  \
      "Tickets can no longer be cancelled this close to the show.")                                \
    X(ING_E_SALE_CLOSED, 409, "sale_closed", 0, "The sale for this event is closed.")              \
    X(ING_E_SALE_NOT_OPEN, 409, "sale_not_open", 0, "The sale is not open.")                       \
    X(ING_E_SOLD_OUT, 409, "sold_out", 0, "Every seat of this event is sold.")                     \
    X(ING_E_TICKET_NOT_VALID, 409, "ticket_not_valid", 0, "This ticket does not admit anyone.")    \
    X(ING_E_TICKET_TRANSFERRED, 409, "ticket_transferred", 0,                                      \
      "This ticket was transferred after the code was shown; the new holder has a new code.")      \
    X(ING_E_TICKET_CHANGE_PENDING, 409, "ticket_change_pending", 1,                                \
      "A transfer or cancel of this ticket is being applied; retry shortly.")                      \
    X(ING_E_EXPECTATION_FAILED, 417, "expectation_failed", 0,                                      \
      "The only expectation this server meets is Expect: 100-continue.")                           \
    X(ING_E_SECTION_NOT_SOLD, 422, "section_not_sold", 0,                                          \
      "This event sells no seats in that section.")                                                \
    X(ING_E_IDEMPOTENCY_MISMATCH, 422, "idempotency_mismatch", 0,                                  \
      "This Idempotency-Key was used with a different request.")                                   \
    X(ING_E_RATE_LIMITED, 429, "rate_limited", 1, "Too many requests; retry later.")               \
    X(ING_E_TOO_MANY_ATTEMPTS, 429, "too_many_attempts", 1, "Too many failed logins.")             \
    X(ING_E_INTERNAL, 500, "internal", 0, "Internal error.")                                       \
    X(ING_E_OVERLOADED, 503, "overloaded", 1, "Out of memory; retry shortly.")                     \
    X(ING_E_UNAVAILABLE, 503, "unavailable", 1, "The database is unavailable; retry shortly.")     \
    X(ING_E_QUEUE_UNAVAILABLE, 503, "queue_unavailable", 1,                                        \
      "The queue cannot take requests right now; nothing was queued.")                             \
    X(ING_E_OUTCOME_UNKNOWN, 503, "outcome_unknown", 1,                                            \
      "The request may have been queued; retry with the same Idempotency-Key.")

typedef enum ing_api_err {
#define ING_API_ERR_ENUM(id, status, code, retry, message) id,
    ING_API_ERRORS(ING_API_ERR_ENUM)
#undef ING_API_ERR_ENUM
        ING_E_COUNT
} ing_api_err;

/* One row of the table. */
typedef struct ing_api_error {
    const char *name; /* the id as a string, for tests and logs */
    int status;
    const char *code;
    int retry_after_s; /* 0: no Retry-After */
    const char *message;
} ing_api_error;

/* The table, indexed by ing_api_err (api_error.c). */
extern const ing_api_error ing_api_errors[ING_E_COUNT];

/* The row of e; e must be a valid id (asserted). */
const ing_api_error *ing_api_error_row(ing_api_err e);

/* ing_req and ing_worker are declared in server.h / pool.h. */
struct ing_req;
struct ing_worker;

/*
 * The one way a request ends in an error. It
 *   1. gives r's Idempotency-Key back if r holds one (w: the job's worker,
 *      whose Redis connection does it; NULL is allowed only when r holds no
 *      key, i.e. on nng threads and before ing_idem_begin; asserted),
 *   2. sets Retry-After: the table's seconds, or the wait the caller put in
 *      r->retry_after when the row has a Retry-After (the rate limiter's
 *      computed wait); none on rows without one,
 *   3. replies e's status with {"error":{"code","message","field"?}} and
 *   4. frees r.
 * r is GONE when these return: the caller must return at once without
 * reading r, r->job or anything r owns (the body, its params). field may be
 * NULL. ing_fail says the table's message; ing_failf formats its own.
 * Any thread.
 */
void ing_fail(struct ing_req *r, struct ing_worker *w, ing_api_err e, const char *field);
void ing_failf(struct ing_req *r, struct ing_worker *w, ing_api_err e, const char *field,
               const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Finishes r with an error common/httpd.h found before the route ran (its
 * own status and code; no Retry-After), with the same contract. */
void ing_fail_httpd(struct ing_req *r, const ons_httpd_err *e);

#endif
