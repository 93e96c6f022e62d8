/*
 * routes_orders.c - checkout and tickets (docs/api.md "Checkout and tickets";
 * docs/checkout.md):
 *   POST /v1/reservations/{id}/checkout  (owner, Idempotency-Key required)
 *   GET  /v1/orders/{id}                 (owner)
 *   GET  /v1/me/tickets?cursor=&limit=   (newest first)
 *   POST /v1/tickets/{id}/transfer       (owner) {to_user_id | to_email}
 *   POST /v1/tickets/{id}/cancel         (owner)
 *
 * Every change goes through the event's partition owner as a record
 * (checkout, ticket), like a join: validate (nng thread) -> ownership check
 * in PostgreSQL (job thread; checkouts in the checkout claimer's rounds,
 * ing_checkout_round) -> produce -> 202 from the delivery report. The
 * order id is the checkout record's own place in the log (seq = partition
 * << 40 | offset), signed for its user like an intent id, so it is known at
 * 202 time without a lookup and a second checkout with the same key replays
 * the same 202 (Idempotency-Key). A non-owner gets 404 and nothing is
 * produced; the owner re-checks every record anyway.
 *
 * The reads are order_store.h's; ticket history comes from the replica
 * (pg.read_dsn) while it is fresh enough, else the primary (replica.h).
 */
#include "common/err.h"
#include "common/log.h"
#include "ingress/accounts.h"
#include "ingress/accounts_store.h"
#include "ingress/idem.h"
#include "ingress/json_io.h"
#include "ingress/keyset.h"
#include "ingress/order_store.h"
#include "ingress/produce.h"
#include "ingress/ratelimit.h"
#include "ingress/routes.h"
#include "queue/intent_id.h"
#include "queue/msg.h"
#include "queue/states.h"

#include <inttypes.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct co_job {
    q_msg msg;
    char id[Q_ID_LEN + 1]; /* the public id in the path */
    int64_t limit;
    int64_t cursor_us, cursor_tid; /* cursor_tid 0: first page */
    int64_t ticket_claim;          /* a ticket change: the claimed code_version */
    /* A transfer naming its recipient by email (into r->body), resolved
     * to msg.to_user_id on the job thread; NULL: named by id. */
    const char *to_email;
} co_job;

static co_job *new_job(ing_req *r)
{
    co_job *j = ing_req_job(r, sizeof *j, NULL);
    if (j)
        snprintf(j->id, sizeof j->id, "%s", r->nparams > 0 && r->params[0] ? r->params[0] : "");
    return j;
}

/* ---- checkout ------------------------------------------------------------------------- */

/* The 202 body of a delivered checkout r (logged as accepted), or NULL
 * after answering 500 (the order could not be named). */
static json_t *accepted_json(ing_req *r, ing_worker *w)
{
    co_job *j = r->job;
    int64_t seq = q_seq_make_lane(r->produced_partition, r->produced_offset, 1); /* control */
    char oid[Q_ID_LEN + 1], url[64];
    if (q_id_encode(r->app->o.ids_secret, Q_ID_ORDER, seq, j->msg.user_id, oid)) {
        ing_failf(r, w, ING_E_INTERNAL, NULL, "Could not name the order.");
        return NULL;
    }
    snprintf(url, sizeof url, "/v1/orders/%s", oid);
    /* The reservation's seq is its intent's: the line names the intent too. */
    char iid[Q_ID_LEN + 1] = "";
    if (r->app->o.log_intents)
        q_id_encode(r->app->o.ids_secret, Q_ID_INTENT, j->msg.reservation_id, j->msg.user_id, iid);
    ons_logk2(ONS_LOG_INFO, "order_id", oid, "intent_id", iid[0] ? iid : NULL,
              "checkout accepted: event=%" PRId64 " user=%" PRId64 " reservation=%" PRId64
              " seq=%" PRId64 " request=%s",
              j->msg.event_id, j->msg.user_id, j->msg.reservation_id, seq, r->rid);
    return json_pack("{s:s, s:s, s:s, s:s}", "order_id", oid, "state",
                     q_order_state_name(Q_ORDER_PENDING), "reservation_id", j->id, "status_url",
                     url);
}

static void checkout_delivered(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    co_job *j = r->job;
    if (r->produce_err == ONS_EUNKNOWN) {
        /* Maybe in the log: the key remembers where to look (checkout_resume). */
        ing_idem_unknown_reply(r, w, r->produced_partition, j->msg.sent_ms);
        return;
    }
    if (r->produce_err) {
        ing_failf(r, w, ING_E_QUEUE_UNAVAILABLE, NULL,
                  "The queue could not take the checkout; nothing was queued.");
        return;
    }
    json_t *body = accepted_json(r, w);
    if (body)
        ing_idem_reply(r, w, 202, body);
}

/* The finisher's batch of delivered checkouts (those a round sent): each
 * accepted one's 202 as checkout_delivered builds it, their idempotency
 * records stored in one pipelined round trip; a failed or unknown delivery
 * (or a body that could not be written) takes checkout_delivered's path. */
static void checkout_delivered_batch(ing_worker *w, ing_req **rs, size_t n)
{
    ing_req *ok[ING_FINISH_BATCH];
    char *texts[ING_FINISH_BATCH] = {NULL};
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        ing_req *r = rs[i];
        json_t *body = r->produce_err ? NULL : accepted_json(r, w);
        char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        if (r->produce_err || (body && !text)) {
            json_decref(body);
            checkout_delivered(w, r);
            continue;
        }
        json_decref(body);
        if (!text)
            continue; /* answered 500 */
        texts[m] = text;
        ok[m++] = r;
    }
    ing_idem_reply_many(w, ok, (const char *const *)texts, m, 202);
    for (size_t i = 0; i < m; i++)
        free(texts[i]);
}

/* A retry of a checkout whose earlier attempt's outcome is unknown (u):
 * finds the order that attempt created in the reservation's partition (an
 * order id is its checkout record's seq). Returns 0 (found: replied with
 * it, so a retry never makes a second order or charge), 1 (certainly never
 * written: r now owns the key; produce again) or -1 (replied: cannot tell
 * yet, or unavailable). */
static int checkout_resume(ing_req *r, ing_worker *w, const ing_idem_unknown *u)
{
    co_job *j = r->job;
    int64_t seq;
    char state[16];
    int rc =
        ing_order_of_checkout(w, j->msg.reservation_id, j->msg.user_id, u->partition, &seq, state);
    if (rc && rc != ONS_ENOTFOUND) {
        ing_failf(r, w, ING_E_UNAVAILABLE, NULL, "Orders are unavailable; retry shortly.");
        return -1;
    }
    if (rc == 0) {
        char oid[Q_ID_LEN + 1], url[64];
        if (q_id_encode(r->app->o.ids_secret, Q_ID_ORDER, seq, j->msg.user_id, oid)) {
            ing_failf(r, w, ING_E_INTERNAL, NULL, "Could not name the order.");
            return -1;
        }
        snprintf(url, sizeof url, "/v1/orders/%s", oid);
        ons_logk(ONS_LOG_INFO, "order_id", oid, "unknown outcome resolved: it was queued (%s)",
                 state);
        ing_idem_found(r, w, 202,
                       json_pack("{s:s, s:s, s:s, s:s}", "order_id", oid, "state", state,
                                 "reservation_id", j->id, "status_url", url));
        return 0;
    }
    /* A checkout travels on the control lane: its owner's cursor there. */
    if (!ing_produce_settled(r->app, Q_TOPIC_CONTROL, u->partition, u->at_ms,
                             ing_control_lane_served, w)) {
        ing_idem_unknown_reply(r, w, -1, 0); /* the record stays as it is */
        return -1;
    }
    return ing_idem_retake(r, w, u) ? -1 : 1;
}

/* Checks r's reservation as read (rc: the read's outcome, res when 0) and
 * sends the checkout: 404 when it is not the caller's, 409 unless it is
 * held and live, else the produce (202 from checkout_delivered). */
static void checkout_send(ing_req *r, ing_worker *w, int rc, const ing_reservation *res)
{
    co_job *j = r->job;
    if (rc == ONS_ENOTFOUND) {
        ing_failf(r, w, ING_E_NOT_FOUND, NULL, "No such reservation.");
        return;
    }
    if (rc) {
        ing_failf(r, w, ING_E_UNAVAILABLE, NULL, "Reservations are unavailable; retry.");
        return;
    }
    j->msg.event_id = res->event_id;
    const char *state = res->state;
    int res_state = q_res_state_parse(state);
    if (res_state != Q_RES_HELD || !res->live) {
        ing_failf(r, w,
                  res_state == Q_RES_PAYING ? ING_E_CHECKOUT_IN_PROGRESS : ING_E_INVALID_STATE,
                  NULL, "The reservation is %s; only a held reservation can be paid.",
                  res_state == Q_RES_HELD ? q_res_state_name(Q_RES_EXPIRED) : state);
        return;
    }
    j->msg.sent_ms = ing_now_ms();
    /* With the claimer, the deliveries are finished in batches too. */
    rc = r->app->checkout_claimer
             ? ing_produce_batched(r, w, &j->msg, 0, checkout_delivered_batch, NULL)
             : ing_produce(r, w, &j->msg, checkout_delivered);
    if (rc) {
        ing_failf(r, w, rc == ONS_EFULL ? ING_E_OVERLOADED : ING_E_QUEUE_UNAVAILABLE, NULL,
                  "The queue cannot take requests right now; nothing was queued.");
    }
}

/* The Idempotency-Key scope of a checkout: the key is per reservation. */
static void checkout_scope(const ing_req *r, char scope[ING_IDEM_SCOPE_MAX])
{
    const co_job *j = r->job;
    snprintf(scope, ING_IDEM_SCOPE_MAX, "checkout:%s", j->id);
}

/* A checkout on a job thread, one at a time (checkout.round_max 0): its
 * Idempotency-Key record (a replay, a key in flight, a resume), the
 * reservation, the produce. Also where the checkout claimer hands on a
 * checkout whose key it found taken. */
static void checkout_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    co_job *j = r->job;
    ing_idem_unknown u;
    int resumed = ing_idem_begin_scoped(r, w, checkout_scope, &u);
    if (resumed == 1 || (resumed == 2 && checkout_resume(r, w, &u) <= 0))
        return;
    ing_reservation res;
    int rc = ing_reservation_get(w, j->msg.reservation_id, j->msg.user_id, &res);
    checkout_send(r, w, rc, &res);
}

void ing_checkout_round(ing_worker *w, void *arg, void **items, size_t n)
{
    ing_app *app = arg;
    ing_req **rs = (ing_req **)items;
    /* Test only: checkouts sent meanwhile gather in the next round. */
    long long delay = app->o.debug_checkout_round_delay_ms;
    if (delay > 0)
        nanosleep(&(struct timespec){(time_t)(delay / 1000), delay % 1000 * 1000000L}, NULL);
    if (app->checkout_rounds) {
        ons_counter_add(app->checkout_rounds, 1);
        ons_counter_add(app->checkout_round_items, (double)n);
    }
    /* In the one-at-a-time order: the rate limit, the key, the reservation. */
    n = ing_ratelimit_charge_many(w, rs, n);
    n = ing_idem_begin_round(w, rs, n, checkout_scope, checkout_job);
    if (n == 0)
        return;
    ing_reservation_ask *asks = calloc(n, sizeof *asks);
    int rc = asks ? 0 : ONS_ENOMEM;
    for (size_t i = 0; asks && i < n; i++) {
        const co_job *j = rs[i]->job;
        asks[i].reservation_id = j->msg.reservation_id;
        asks[i].user_id = j->msg.user_id;
    }
    if (asks)
        rc = ing_reservations_get_many(w, asks, n);
    for (size_t i = 0; i < n; i++)
        checkout_send(rs[i], w, rc ? rc : asks[i].rc, rc ? NULL : &asks[i].res);
    free(asks);
}

void ing_route_checkout(ing_req *r)
{
    static const char *const allowed[] = {"payment_method", NULL};
    const char *pm = NULL;
    int64_t seq;
    int rc =
        q_id_decode(r->app->o.ids_secret, Q_ID_RESERVATION, r->params[0], r->who.user_id, &seq);
    if (rc == ONS_EPARSE) {
        ing_fail(r, NULL, ING_E_INVALID_ID, NULL);
        return;
    }
    if (rc || q_seq_partition(seq) >= ing_partitions_known(r->app)) {
        ing_failf(r, NULL, ING_E_NOT_FOUND, NULL, "No such reservation.");
        return;
    }
    if (!r->idem[0]) {
        ing_failf(r, NULL, ING_E_IDEMPOTENCY_KEY_REQUIRED, NULL,
                  "A checkout needs an Idempotency-Key header (1-128 printable "
                  "characters): a retry with the same key never pays twice.");
        return;
    }
    if (ing_json_only(r, r->body, allowed) ||
        ing_json_str(r, r->body, "payment_method", 1, 1, Q_MSG_MAX_PM, &pm))
        return;
    for (const char *c = pm; *c; c++) {
        if (*c <= 0x20 || *c >= 0x7f) {
            ing_failf(r, NULL, ING_E_INVALID_FIELD, "payment_method",
                      "Field 'payment_method' must be a payment method token such as "
                      "pm_card_visa.");
            return;
        }
    }
    co_job *j = new_job(r);
    if (!j)
        return;
    j->msg.type = Q_MSG_CHECKOUT;
    j->msg.user_id = r->who.user_id;
    j->msg.reservation_id = seq;
    snprintf(j->msg.payment_method, sizeof j->msg.payment_method, "%s", pm);
    /* Checkouts share the checkout claimer's rounds (their rate limits,
     * their keys, one read of their reservations); without it each goes
     * alone. */
    if (r->app->checkout_claimer)
        ing_req_submit_batch(r, r->app->checkout_claimer);
    else
        ing_req_submit(r, checkout_job);
}

/* ---- orders --------------------------------------------------------------------------- */

static json_t *seat_json(const ing_seat *s)
{
    return json_pack("{s:s, s:i, s:i}", "section", s->section, "row", s->row, "seat", s->seat);
}

/* The order as GET /v1/orders/{id} shows it. */
static json_t *order_json(const char *id, const ing_order *o)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < o->ntickets; i++) {
        const ing_order_ticket *t = &o->tickets[i];
        json_array_append_new(arr, json_pack("{s:I, s:s, s:o, s:I}", "ticket_id",
                                             (json_int_t)t->ticket_id, "status", t->status, "seat",
                                             seat_json(&t->seat), "price_cents",
                                             (json_int_t)t->price_cents));
    }
    json_t *body = json_pack("{s:s, s:s, s:I, s:s, s:I}", "order_id", id, "state", o->state,
                             "total_cents", (json_int_t)o->total_cents, "currency", o->currency,
                             "event_id", (json_int_t)o->event_id);
    if (body && o->has_reason)
        json_object_set_new(body, "reason", json_string(o->reason));
    if (!body) {
        json_decref(arr);
        return NULL;
    }
    json_object_set_new(body, "tickets", arr);
    return body;
}

static void order_get_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    co_job *j = r->job;
    ing_order o;
    int rc = ing_order_get(w, j->msg.order_id, r->who.user_id, &o);
    if (rc == ONS_ENOTFOUND) {
        /* The id is genuine (signed for this user): its checkout record is
         * not applied yet. */
        ing_reply_json(r, 200,
                       json_pack("{s:s, s:s, s:I, s:n, s:[]}", "order_id", j->id, "state",
                                 "pending", "total_cents", (json_int_t)0, "currency", "tickets"));
        return;
    }
    json_t *body = rc ? NULL : order_json(j->id, &o);
    ing_order_clear(&o);
    if (!body) {
        ing_failf(r, w, ING_E_UNAVAILABLE, NULL, "Orders are unavailable; retry shortly.");
        return;
    }
    ing_reply_json(r, 200, body);
}

void ing_route_order_get(ing_req *r)
{
    int64_t seq;
    int rc = q_id_decode(r->app->o.ids_secret, Q_ID_ORDER, r->params[0], r->who.user_id, &seq);
    if (rc == ONS_EPARSE) {
        ing_fail(r, NULL, ING_E_INVALID_ID, NULL);
        return;
    }
    if (rc) {
        ing_failf(r, NULL, ING_E_NOT_FOUND, NULL, "No such order.");
        return;
    }
    co_job *j = new_job(r);
    if (!j)
        return;
    j->msg.order_id = seq;
    ing_req_submit(r, order_get_job);
}

/* ---- ticket history ------------------------------------------------------------------- */

/* A page of ticket history as GET /v1/me/tickets shows it. */
static json_t *tickets_json(const ing_ticket_page *pg)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < pg->n; i++) {
        const ing_ticket_row *t = &pg->rows[i];
        json_array_append_new(arr, json_pack("{s:I, s:I, s:s, s:s, s:o, s:I, s:s, s:s, s:s}",
                                             "ticket_id", (json_int_t)t->ticket_id, "event_id",
                                             (json_int_t)t->event_id, "event_name", t->event_name,
                                             "starts_at", t->starts_at, "seat", seat_json(&t->seat),
                                             "price_cents", (json_int_t)t->price_cents, "currency",
                                             t->currency, "status", t->status, "issued_at",
                                             t->issued_at));
    }
    json_t *body = json_pack("{s:o}", "tickets", arr);
    /* Opaque to clients: the last row's (issued_at, ticket_id). */
    char cur[48];
    if (pg->more && pg->n > 0)
        snprintf(cur, sizeof cur, "%llx.%llx", (unsigned long long)pg->rows[pg->n - 1].issued_us,
                 (unsigned long long)pg->rows[pg->n - 1].ticket_id);
    if (body)
        json_object_set_new(body, "next_cursor",
                            ing_keyset_next(pg->more && pg->n > 0 ? cur : NULL));
    return body;
}

static void tickets_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    co_job *j = r->job;
    ing_ticket_page pg;
    if (ing_tickets_of_user(w, r->who.user_id, j->cursor_us, j->cursor_tid, j->limit, &pg)) {
        ing_failf(r, w, ING_E_UNAVAILABLE, NULL, "Tickets are unavailable; retry shortly.");
        return;
    }
    json_t *body = tickets_json(&pg);
    ing_ticket_page_clear(&pg);
    ing_reply_json(r, 200, body);
}

/* The history's query: each of cursor and limit at most once, nothing
 * else, as the catalog's (docs/api.md "Errors": an unknown parameter is
 * 400 unknown_field, a repeated one 400 invalid_field). */
typedef struct tickets_query {
    int64_t limit;
    int64_t cursor_us, cursor_tid; /* cursor_tid 0: first page */
} tickets_query;

/* One hex number of 1 to 16 digits at *s, not above INT64_MAX; *s moves
 * past it. Returns 0 or -1. */
static int hex_i64(const char **s, int64_t *out)
{
    uint64_t v = 0;
    size_t n = strspn(*s, "0123456789abcdef");
    if (n < 1 || n > 16)
        return -1;
    for (size_t i = 0; i < n; i++)
        v = v << 4 | (uint64_t)((*s)[i] <= '9' ? (*s)[i] - '0' : (*s)[i] - 'a' + 10);
    if (v > INT64_MAX)
        return -1;
    *out = (int64_t)v;
    *s += n;
    return 0;
}

/* The cursor tickets_json issues, exactly: "<issued_us hex>.<ticket_id hex>"
 * (lowercase, ticket_id > 0). Returns 0 or -1. */
static int tickets_cursor(const char *v, size_t len, tickets_query *q)
{
    char buf[40];
    const char *s = buf;
    if (len >= sizeof buf)
        return -1;
    memcpy(buf, v, len);
    buf[len] = '\0';
    if (hex_i64(&s, &q->cursor_us) || *s++ != '.' || hex_i64(&s, &q->cursor_tid) || *s ||
        q->cursor_tid == 0)
        return -1;
    return 0;
}

/* One key=value pair of the query (not URL-decoded: a cursor and a limit
 * never need it). seen: the keys met so far (bit 0 cursor, bit 1 limit).
 * Returns 0, or -1 (replied 400). */
static int tickets_pair(ing_req *r, const char *p, size_t len, unsigned *seen, tickets_query *q)
{
    const char *eq = memchr(p, '=', len);
    size_t klen = eq ? (size_t)(eq - p) : len, vlen = eq ? len - klen - 1 : 0;
    int is_cursor = klen == 6 && strncmp(p, "cursor", 6) == 0;
    if (!is_cursor && !(klen == 5 && strncmp(p, "limit", 5) == 0)) {
        ing_failf(r, NULL, ING_E_UNKNOWN_FIELD, NULL,
                  "Unknown query parameter: only 'limit' and 'cursor' are taken.");
        return -1;
    }
    const char *key = is_cursor ? "cursor" : "limit";
    if (*seen & (is_cursor ? 1u : 2u)) {
        ing_failf(r, NULL, ING_E_INVALID_FIELD, key, "Parameter '%s' is given more than once.",
                  key);
        return -1;
    }
    *seen |= is_cursor ? 1u : 2u;
    if (is_cursor) {
        if (tickets_cursor(eq ? eq + 1 : "", vlen, q)) {
            ing_fail(r, NULL, ING_E_INVALID_CURSOR, "cursor");
            return -1;
        }
        return 0;
    }
    char lim[8] = "", *end = NULL;
    if (vlen && vlen < sizeof lim)
        memcpy(lim, eq + 1, vlen);
    long v = strtol(lim, &end, 10), max = (long)r->app->o.tickets_history_max_limit;
    if (!vlen || vlen >= sizeof lim || *end || lim[0] < '0' || lim[0] > '9' || v < 1 || v > max) {
        ing_failf(r, NULL, ING_E_INVALID_FIELD, "limit", "Parameter 'limit' must be 1 to %ld.",
                  max);
        return -1;
    }
    q->limit = v;
    return 0;
}

/* The request's query string (nng keeps the raw URI as the aio's input 0)
 * into *q. Returns 0, or -1 (replied 400). */
static int tickets_query_parse(ing_req *r, tickets_query *q)
{
    nng_http_req *hreq = nng_aio_get_input(r->pend.aio, 0);
    const char *uri = hreq ? nng_http_req_get_uri(hreq) : NULL;
    const char *qs = uri ? strchr(uri, '?') : NULL;
    unsigned seen = 0;
    /* The default is never above the largest page asked for. */
    int64_t dflt = r->app->o.tickets_history_default_limit;
    if (dflt > r->app->o.tickets_history_max_limit)
        dflt = r->app->o.tickets_history_max_limit;
    *q = (tickets_query){.limit = dflt};
    for (const char *s = qs ? qs + 1 : ""; *s;) {
        size_t len = strcspn(s, "&");
        if (len && tickets_pair(r, s, len, &seen, q))
            return -1;
        s += len + (s[len] == '&');
    }
    return 0;
}

void ing_route_my_tickets(ing_req *r)
{
    tickets_query q;
    if (tickets_query_parse(r, &q))
        return;
    co_job *j = new_job(r);
    if (!j)
        return;
    j->limit = q.limit;
    j->cursor_us = q.cursor_us;
    j->cursor_tid = q.cursor_tid;
    ing_req_submit(r, tickets_job);
}

/* ---- transfer and cancel -------------------------------------------------------------- */

/* Clears the claim of a change whose record certainly did not reach the log
 * (the send failed before or at delivery): the ticket admits again at once.
 * A record whose outcome is unknown may still reach the partition owner,
 * which clears the claim when it applies or ignores it; else the claim
 * frees itself after tickets.change_claim_timeout_s. */
static void unclaim_unsent(ing_req *r, ing_worker *w, int err)
{
    co_job *j = r->job;
    if (err == ONS_EUNKNOWN)
        return;
    if (ing_ticket_unclaim_change(w, j->msg.ticket_id, j->ticket_claim))
        ons_logk(ONS_LOG_WARN, "request_id", r->rid,
                 "ticket %" PRId64 ": the claim of an unsent change stays until it times out",
                 j->msg.ticket_id);
}

static void ticket_delivered(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    co_job *j = r->job;
    if (r->produce_err) {
        unclaim_unsent(r, w, r->produce_err);
        ing_failf(r, w, ING_E_QUEUE_UNAVAILABLE, NULL,
                  r->produce_err == ONS_EUNKNOWN
                      ? "The request may have been queued; look at the ticket again shortly."
                      : "The queue could not take the request; retry shortly.");
        return;
    }
    ing_reply_json(
        r, 202,
        json_pack("{s:I, s:s}", "ticket_id", (json_int_t)j->msg.ticket_id, "state",
                  j->msg.ticket_kind == Q_TICKET_TRANSFER ? "transferring" : "cancelling"));
}

/* Refuses (409, returns -1) a change the sale rules forbid now: the event
 * was cancelled (the ticket is void and refunded) or has ended, the ticket
 * is already cancelled, or a cancel comes within tickets.refund_cutoff_s of
 * the show. The partition owner applies the same rules again. */
static int ticket_rules(ing_req *r, enum q_ticket_kind kind, const char *ticket_status,
                        const char *event_status, int ended, int past_cutoff, const char *starts_at)
{
    if (q_ticket_status_parse(ticket_status) == Q_TICKET_VOIDED ||
        q_event_status_parse(event_status) == Q_EVENT_CANCELLED) {
        ing_failf(r, NULL, ING_E_EVENT_CANCELLED, NULL,
                  "The event was cancelled: this ticket is void and its order is refunded.");
        return -1;
    }
    if (q_ticket_status_parse(ticket_status) != Q_TICKET_VALID) {
        ing_failf(r, NULL, ING_E_INVALID_STATE, NULL, "This ticket is cancelled.");
        return -1;
    }
    if (ended) {
        ing_failf(r, NULL, ING_E_EVENT_ENDED, NULL,
                  "The event has ended; its tickets can no longer be changed.");
        return -1;
    }
    if (past_cutoff && kind == Q_TICKET_CANCEL) {
        long long h = r->app->o.tickets_refund_cutoff_s / 3600,
                  m = r->app->o.tickets_refund_cutoff_s % 3600 / 60;
        ing_failf(r, NULL, ING_E_REFUND_WINDOW_CLOSED, NULL,
                  "Tickets can be cancelled and refunded until %lldh%02lld before the show "
                  "(%s).",
                  h, m, starts_at);
        return -1;
    }
    return 0;
}

/* Reads the ticket of r's change and refuses it when it is not the
 * caller's (404), the sale rules forbid it (409), a scan admitted it
 * (409 already_admitted: a used ticket is neither refunded nor passed on)
 * or another change of it is on its way to the partition owner (409
 * ticket_change_pending). Returns 0 (allowed, j->msg.event_id set) or -1
 * (replied). */
static int ticket_refused(ing_req *r, ing_worker *w)
{
    co_job *j = r->job;
    const ing_opts *o = &r->app->o;
    ing_ticket_change_opts co = {o->tickets_refund_cutoff_s, o->events_end_grace_s,
                                 o->tickets_change_claim_timeout_s, ing_now_ms(),
                                 o->clock_max_ahead_ms};
    ing_ticket_change t;
    int rc = ing_ticket_for_change(w, j->msg.ticket_id, &co, &t);
    if (rc && rc != ONS_ENOTFOUND) {
        ing_failf(r, w, ING_E_UNAVAILABLE, NULL, "Tickets are unavailable; retry shortly.");
        return -1;
    }
    /* Someone else's ticket is not revealed: 404 like a missing one. */
    if (rc == ONS_ENOTFOUND || t.owner_id != r->who.user_id) {
        ing_failf(r, w, ING_E_NOT_FOUND, NULL, "No such ticket.");
        return -1;
    }
    j->msg.event_id = t.event_id;
    /* The record carries the instant the rules were judged at: the owner
     * judges them again at exactly that one (ing_ticket_for_change). */
    j->msg.sent_ms = t.judged_ms;
    if (ticket_rules(r, j->msg.ticket_kind, t.status, t.event_status, t.ended, t.past_cutoff,
                     t.starts_at))
        return -1;
    if (t.admitted) {
        ing_failf(r, w, ING_E_ALREADY_ADMITTED, NULL,
                  "This ticket was already admitted at the gate: it can no longer be %s.",
                  j->msg.ticket_kind == Q_TICKET_TRANSFER ? "transferred" : "cancelled");
        return -1;
    }
    if (ing_ticket_claim_blocks(r, w, t.event_id, t.change_pending, t.change_claim_age_ms)) {
        ing_fail(r, w, ING_E_TICKET_CHANGE_PENDING, NULL);
        return -1;
    }
    return 0;
}

/* Refuses (404 no_account, returns -1) a transfer to an id nobody signed
 * up with: the ticket would go to an id no one can log in as, and only its
 * holder could give it back (tickets.transfer_needs_account). */
static int recipient_refused(ing_req *r, ing_worker *w)
{
    co_job *j = r->job;
    /* Named by email: resolved to an account already (recipient_by_email). */
    if (j->msg.ticket_kind != Q_TICKET_TRANSFER || !r->app->o.tickets_transfer_needs_account ||
        j->to_email)
        return 0;
    ing_account u;
    int rc = ing_acct_by_id(w, j->msg.to_user_id, &u);
    if (rc == ONS_ENOTFOUND)
        ing_failf(r, w, ING_E_NO_ACCOUNT, "to_user_id",
                  "No account has user id %" PRId64 ": take the recipient's id from their own "
                  "account (user_id at GET /v1/me).",
                  j->msg.to_user_id);
    else if (rc)
        ing_failf(r, w, ING_E_UNAVAILABLE, NULL, "Tickets are unavailable; retry shortly.");
    return rc ? -1 : 0;
}

/* A transfer naming its recipient by email: the signed-up account with
 * that email (matched case-insensitively, as sign-up keeps emails unique)
 * becomes msg.to_user_id; none is 404 no_account, as for an id nobody
 * signed up with. 0, or -1 when r was answered. */
static int recipient_by_email(ing_req *r, ing_worker *w)
{
    co_job *j = r->job;
    if (!j->to_email)
        return 0;
    ing_account u;
    int rc = ing_acct_by_email(w, j->to_email, &u);
    if (rc == ONS_ENOTFOUND) {
        ing_failf(r, w, ING_E_NO_ACCOUNT, "to_email",
                  "No account has this email: the recipient signs up first (POST /v1/users).");
        return -1;
    }
    if (rc) {
        ing_failf(r, w, ING_E_UNAVAILABLE, NULL, "Tickets are unavailable; retry shortly.");
        return -1;
    }
    if (u.user_id == r->who.user_id) {
        ing_failf(r, w, ING_E_INVALID_FIELD, "to_email",
                  "A ticket cannot be transferred to its owner.");
        return -1;
    }
    j->msg.to_user_id = u.user_id;
    return 0;
}

/* Checks the change, claims the ticket for it (ing_ticket_claim_change: a
 * scan racing it either admitted first, and the change is refused, or
 * meets a rotated code and a pending change; a second change meanwhile is
 * refused) and sends the record; the partition owner applies it,
 * re-checking the owner and the sale rules, and clears the claim either
 * way. A send that failed clears it here (unclaim_unsent). */
static void ticket_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    co_job *j = r->job;
    if (ticket_refused(r, w) || recipient_by_email(r, w) || recipient_refused(r, w))
        return;
    int64_t delay = r->app->o.debug_ticket_change_delay_ms;
    if (delay > 0) /* test only: the time a slow claim and send take */
        nanosleep(&(struct timespec){(time_t)(delay / 1000), delay % 1000 * 1000000L}, NULL);
    int rc = ing_ticket_claim_change(w, j->msg.ticket_id, r->who.user_id,
                                     r->app->o.tickets_change_claim_timeout_s, &j->ticket_claim);
    /* Changed since the read (a scan, another claim, or the owner applied
     * another change): the second read says how; agreeing again, a 409. */
    if (rc == ONS_ECONFLICT && ticket_refused(r, w) == 0)
        ing_failf(r, w, ING_E_INVALID_STATE, NULL,
                  "This ticket changed while the request ran; look at it again and retry.");
    if (rc == ONS_ECONFLICT)
        return;
    if (rc) {
        ing_failf(r, w, ING_E_UNAVAILABLE, NULL, "Tickets are unavailable; retry shortly.");
        return;
    }
    /* j->msg.sent_ms is the instant of the first read's judgement (a
     * re-read after a conflict sent nothing). */
    rc = ing_produce(r, w, &j->msg, ticket_delivered);
    if (rc) {
        unclaim_unsent(r, w, rc);
        ing_failf(r, w, ING_E_QUEUE_UNAVAILABLE, NULL,
                  "The queue cannot take requests right now; retry shortly.");
    }
}

/* A transfer's recipient from its body: exactly one of to_user_id (*to)
 * and to_email (*email, into the body; its account is looked up on the
 * job thread). 0, or -1 when a 400 was replied. */
static int transfer_to(ing_req *r, int64_t *to, const char **email)
{
    static const char *const allowed[] = {"to_user_id", "to_email", NULL};
    if (ing_json_only(r, r->body, allowed))
        return -1;
    int by_id = json_object_get(r->body, "to_user_id") != NULL;
    if (by_id == (json_object_get(r->body, "to_email") != NULL)) {
        ing_failf(r, NULL, by_id ? ING_E_INVALID_FIELD : ING_E_MISSING_FIELD,
                  by_id ? "to_email" : "to_user_id",
                  "Name the recipient by exactly one of 'to_user_id' and 'to_email'.");
        return -1;
    }
    if (!by_id) {
        if (ing_json_str(r, r->body, "to_email", 1, 3, ING_EMAIL_MAX, email))
            return -1;
        if (ing_email_ok(*email))
            return 0;
        ing_failf(r, NULL, ING_E_INVALID_FIELD, "to_email",
                  "Field 'to_email' must be an address like name@example.com (ASCII).");
        return -1;
    }
    if (ing_json_int(r, r->body, "to_user_id", 1, 1, INT64_MAX, to))
        return -1;
    if (*to == r->who.user_id) {
        ing_failf(r, NULL, ING_E_INVALID_FIELD, "to_user_id",
                  "A ticket cannot be transferred to its owner.");
        return -1;
    }
    return 0;
}

static void ticket_route(ing_req *r, enum q_ticket_kind kind)
{
    int64_t tid, to = 0;
    const char *email = NULL;
    if (ing_path_id(r, r->params[0], &tid))
        return;
    if (kind == Q_TICKET_TRANSFER && transfer_to(r, &to, &email))
        return;
    /* A cancel's route takes no body (routes.c): the server never parses
     * one, so one sent is ignored, as on every such route (docs/api.md
     * "Requests"). */
    co_job *j = new_job(r);
    if (!j)
        return;
    j->msg.type = Q_MSG_TICKET;
    j->msg.user_id = r->who.user_id;
    j->msg.ticket_id = tid;
    j->msg.ticket_kind = kind;
    j->msg.to_user_id = to;
    j->to_email = email;
    ing_req_submit(r, ticket_job);
}

void ing_route_ticket_transfer(ing_req *r)
{
    ticket_route(r, Q_TICKET_TRANSFER);
}

void ing_route_ticket_cancel(ing_req *r)
{
    ticket_route(r, Q_TICKET_CANCEL);
}
