/*
 * relay.h - the outbox relay of onsale-payments: what happens to one
 * claimed outbox row (docs/checkout.md).
 *
 *   1. the gateway is called (POST /v1/charges or /v1/refunds,
 *      Idempotency-Key = key prefix + the row's key) through the circuit
 *      breaker; a refund without a charge fails without a call;
 *   2. the answer is classified (pay_classify):
 *        succeeded / declined / failed  final: a charge's outcome is
 *          produced as a payment_result on the control lane and waited for
 *          (pay_produce_results), then the row is finished (payments row +
 *          outbox done); a refund is only finished;
 *        retry (timeout, connection error, 5xx, 409, 401/403/422, a 200
 *          without an id, a malformed body)  rescheduled after
 *          pay_backoff_ms(attempts);
 *        breaker open  rescheduled for when the breaker lets a probe through;
 *   3. a payment_result Kafka did not take is rescheduled like a retry: the
 *      outcome is never guessed, and a result produced twice is ignored by
 *      the partition owner.
 *
 * A claimed batch goes through those steps together (pay_relay_rows): the
 * gateway calls made at once (pay_relay_io.post keeps them in flight
 * together, each row with its own Idempotency-Key, so a call repeated after
 * a lost answer is never a second charge), then every final charge's result
 * produced at once and waited for once, then every final row finished in
 * one transaction, so a batch costs one gateway round trip, one log round
 * trip and one commit, not one of each per row. The order of effects per
 * row is the same.
 *
 * The relay does no I/O of its own: the gateway POST and the produce are
 * pay_relay_io callbacks, the outbox writes are pay_outbox_ops on the
 * calling thread's connection, so its decisions are unit tested with fakes
 * (tests/unit/test_relay.c). pay_relay_rows is thread-safe for distinct rows
 * (the breaker and the metrics are; everything else is per call).
 */
#ifndef ONSALE_PAYMENTS_RELAY_H
#define ONSALE_PAYMENTS_RELAY_H

#include "common/metrics.h"
#include "queue/msg.h"
#include "queue/producer.h"
#include "workers/payments/breaker.h"

#include <stddef.h>
#include <stdint.h>

/* How a gateway call ended; metrics label onsale_payments_calls_total's
 * outcome with pay_class_name(). */
enum pay_class { PAY_SUCCEEDED, PAY_DECLINED, PAY_FAILED, PAY_RETRY, PAY_BREAKER_OPEN, PAY_NCLASS };

const char *pay_class_name(int cls);

/* One claimed outbox row. */
typedef struct pay_row {
    int64_t id, order_id, reservation_id, event_id, ticket_id, amount, attempts, user_id;
    int is_refund;
    char currency[4], pm[Q_MSG_MAX_PM + 1], charge[Q_MSG_MAX_CHARGE + 1], key[80];
} pay_row;

/* The answer of one gateway call. */
typedef struct pay_answer {
    int cls; /* enum pay_class */
    char charge[Q_MSG_MAX_CHARGE + 1];
    int64_t amount;      /* succeeded: what was charged */
    int64_t retry_in_ms; /* breaker open: when it lets a probe through */
    char why[160];       /* for the log and outbox.last_error */
} pay_answer;

/* Classifies the answer to w's call: rc is the HTTP client's result (0 or
 * an ONS_E... code: then status and body are not looked at), status and
 * body (may be NULL) the gateway's answer. */
void pay_classify(const pay_row *w, int rc, int status, const char *body, pay_answer *ans);

/* Whether the answer shows a healthy gateway, for the breaker: every
 * answer except a transport error or a 5xx. */
int pay_answer_healthy(int rc, int status);

/* Delay before the attempt after attempts (1-based) failed transiently:
 * base_ms doubling per attempt up to max_ms, of which a random half is
 * jitter ("equal jitter": half fixed, half random, so the retries of many
 * rows spread out). In [d/2, d] where d = min(base_ms << (attempts-1),
 * max_ms). seed is the calling thread's rand_r state. */
int64_t pay_backoff_ms(int64_t base_ms, int64_t max_ms, int64_t attempts, unsigned *seed);

/* Encodes each of the n payment_results ms and produces it keyed by its
 * event on the control lane (a result never waits behind the event's join
 * backlog), then waits for every delivery report (the producer's delivery
 * timeout bounds the wait). rcs[i] is 0 when ms[i] is in the log, else an
 * ONS_E... code. Returns the number that failed. */
size_t pay_produce_results(q_producer *prod, const q_msg *ms, size_t n, int *rcs);

/* The relay's options (onsale-payments' payments.* options). */
typedef struct pay_relay_cfg {
    int64_t backoff_base_ms, backoff_max_ms; /* pay_backoff_ms */
    int64_t breaker_open_ms;                 /* reschedule delay when the breaker says nothing */
    int timeout_ms;                          /* one gateway call */
    const char *api_key, *key_prefix;
    const char *ids_secret; /* "" or NULL: log lines name the order only */
} pay_relay_cfg;

/* One gateway call of a batch: the request, then its answer. */
typedef struct pay_call {
    const char *path;           /* "/v1/charges" or "/v1/refunds" */
    const char *const *headers; /* "Name: value", NULL terminated */
    const char *body;           /* JSON */
    int rc;                     /* answer: 0, or an ONS_E... code (status and resp unset) */
    int status;
    char *resp;        /* the answer's body, malloc'd, or NULL; the relay frees it */
    double latency_ms; /* from sending to the answer (for the latency histogram) */
} pay_call;

/* The relay's outside world. ctx is pay_relay_io.ctx. */
typedef struct pay_relay_io {
    /* POSTs each of the n calls' body to the gateway's path with its
     * headers, all of them in flight together as far as the caller's
     * connections allow (payments.concurrency), each bounded by timeout_ms,
     * and returns when every call has its answer (rc, status, resp). conn
     * is pay_relay_rows' conn: the calling thread's, where its keep-alive
     * connections live. */
    void (*post)(void *ctx, void *conn, pay_call *calls, size_t n, int timeout_ms);
    /* Produces the n payment_results ms and waits until each is in the
     * log or failed: rcs[i] = 0 or an ONS_E... code (pay_produce_results). */
    void (*produce)(void *ctx, const q_msg *ms, size_t n, int *rcs);
    /* Whether the process is stopping (NULL: never): rows of a batch not
     * yet sent to the gateway are then given back at once. */
    int (*stopping)(void *ctx);
    void *ctx;
} pay_relay_io;

/* A row with its final answer, to be finished. */
typedef struct pay_done {
    const pay_row *row;
    const pay_answer *ans;
} pay_done;

/* The outbox writes, on the calling thread's connection (conn). */
typedef struct pay_outbox_ops {
    /* Gives the row back for a later attempt after delay_ms; a failure is
     * left to the row's lease running out. */
    void (*reschedule)(void *conn, const pay_row *w, int64_t delay_ms, const char *why);
    /* Records the payments and marks the n rows done, in one transaction:
     * 0 or an error (the rows are then sent again: harmless). */
    int (*finish)(void *conn, const pay_done *done, size_t n);
} pay_outbox_ops;

typedef struct pay_relay {
    pay_relay_cfg cfg;
    pay_relay_io io;
    pay_breaker *br;                   /* borrowed */
    ons_counter *calls[2][PAY_NCLASS]; /* [is_refund][class] */
    ons_counter *results, *errors;
    ons_histogram *latency;
} pay_relay;

/* Initialises r (cfg's strings and br are borrowed); m may be NULL (no
 * metrics). 0 or ONS_ENOMEM. */
int pay_relay_init(pay_relay *r, const pay_relay_cfg *cfg, const pay_relay_io *io, pay_breaker *br,
                   ons_metrics *m);

/* Takes the n claimed rows to their next states (see the top of this
 * file), writing through ob on conn. seed is the thread's rand_r state.
 * Short of memory for a batch's bookkeeping, the rows go one at a time. */
void pay_relay_rows(pay_relay *r, const pay_outbox_ops *ob, void *conn, const pay_row *rows,
                    size_t n, unsigned *seed);

#endif
