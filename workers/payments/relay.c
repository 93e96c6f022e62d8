/* relay.c - the outbox relay: one claimed row through the gateway, the
 * breaker and the control lane; see relay.h. */
#include "workers/payments/relay.h"

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "queue/intent_id.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *class_names[PAY_NCLASS] = {"succeeded", "declined", "failed", "retry",
                                              "breaker_open"};

const char *pay_class_name(int cls)
{
    return cls >= 0 && cls < PAY_NCLASS ? class_names[cls] : "unknown";
}

/* ---- classify ---------------------------------------------------------------------- */

void pay_classify(const pay_row *w, int rc, int status, const char *body, pay_answer *ans)
{
    memset(ans, 0, sizeof *ans);
    if (rc) {
        ans->cls = PAY_RETRY;
        snprintf(ans->why, sizeof ans->why, "gateway call: %s", ons_strerror(rc));
        return;
    }
    json_t *b = body ? json_loads(body, 0, NULL) : NULL;
    json_t *err = json_object_get(json_object_get(b, "error"), "code");
    const char *code = json_is_string(err) ? json_string_value(err) : "";
    int s = status;
    if (s == 200) {
        json_t *id = json_object_get(b, "id"), *amt = json_object_get(b, "amount_cents");
        if (json_is_string(id) && json_string_length(id) <= Q_MSG_MAX_CHARGE &&
            json_string_length(id) > 0) {
            ans->cls = PAY_SUCCEEDED;
            snprintf(ans->charge, sizeof ans->charge, "%s", json_string_value(id));
            ans->amount = json_is_integer(amt) ? json_integer_value(amt) : w->amount;
        } else {
            /* A success we cannot record (malformed, or no charge id) is not
             * a success yet: ask again, the gateway replays its answer. */
            ans->cls = PAY_RETRY;
            snprintf(ans->why, sizeof ans->why, "200 without an id");
        }
    } else if (s == 402 && !w->is_refund) {
        ans->cls = PAY_DECLINED;
        json_t *dc = json_object_get(json_object_get(b, "error"), "decline_code");
        snprintf(ans->why, sizeof ans->why, "declined: %s",
                 json_is_string(dc) ? json_string_value(dc) : code);
    } else if (s == 400 || (s == 404 && w->is_refund)) {
        /* The gateway refused the request itself: retrying cannot help. */
        ans->cls = PAY_FAILED;
        snprintf(ans->why, sizeof ans->why, "%d %s", s, code);
    } else {
        /* 5xx, 409 in progress, 401/403/422 misconfiguration: try again. */
        ans->cls = PAY_RETRY;
        snprintf(ans->why, sizeof ans->why, "%d %s", s, code);
    }
    json_decref(b);
}

int pay_answer_healthy(int rc, int status)
{
    return rc == 0 && status < 500;
}

int64_t pay_backoff_ms(int64_t base_ms, int64_t max_ms, int64_t attempts, unsigned *seed)
{
    int64_t d = base_ms;
    for (int64_t i = 1; i < attempts && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    return d / 2 + (int64_t)(rand_r(seed) % (unsigned)(d / 2 + 1));
}

/* ---- produce and wait --------------------------------------------------------------- */

/* The delivery reports a batch of results waits for. */
typedef struct deliveries {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t pending;
    int *rcs;
} deliveries;

typedef struct delivery {
    deliveries *all;
    size_t i;
} delivery;

static void delivered(void *arg, int err, int32_t partition, int64_t offset)
{
    (void)partition;
    (void)offset;
    delivery *d = arg;
    deliveries *all = d->all;
    pthread_mutex_lock(&all->mu);
    all->rcs[d->i] = err;
    if (--all->pending == 0)
        pthread_cond_signal(&all->cv);
    pthread_mutex_unlock(&all->mu);
}

size_t pay_produce_results(q_producer *prod, const q_msg *ms, size_t n, int *rcs)
{
    delivery *ds = calloc(n ? n : 1, sizeof *ds);
    deliveries all = {.rcs = rcs};
    pthread_mutex_init(&all.mu, NULL);
    pthread_cond_init(&all.cv, NULL);
    for (size_t i = 0; i < n; i++) {
        char *buf = NULL;
        size_t len = 0;
        int rc = ds ? q_msg_encode(&ms[i], &buf, &len) : ONS_ENOMEM;
        if (rc == 0) {
            ds[i] = (delivery){&all, i};
            pthread_mutex_lock(&all.mu);
            all.pending++;
            pthread_mutex_unlock(&all.mu);
            /* To the order's partition, the event's home (its checkout was
             * applied there), whatever the topics' count is now. */
            rc = q_producer_send_at(prod, Q_TOPIC_CONTROL, q_seq_partition(ms[i].order_id),
                                    ms[i].event_id, buf, len, NULL, delivered, &ds[i]);
            if (rc) {
                pthread_mutex_lock(&all.mu);
                all.pending--;
                pthread_mutex_unlock(&all.mu);
            }
        }
        free(buf);
        rcs[i] = rc;
    }
    /* Each callback runs exactly once (also when the producer is closed),
     * within the producer's delivery timeout: ds and all may live here
     * until the last has. */
    pthread_mutex_lock(&all.mu);
    while (all.pending > 0)
        pthread_cond_wait(&all.cv, &all.mu);
    pthread_mutex_unlock(&all.mu);
    pthread_mutex_destroy(&all.mu);
    pthread_cond_destroy(&all.cv);
    free(ds);
    size_t failed = 0;
    for (size_t i = 0; i < n; i++)
        failed += rcs[i] != 0;
    return failed;
}

/* ---- the relay ----------------------------------------------------------------------- */

int pay_relay_init(pay_relay *r, const pay_relay_cfg *cfg, const pay_relay_io *io, pay_breaker *br,
                   ons_metrics *m)
{
    memset(r, 0, sizeof *r);
    r->cfg = *cfg;
    r->io = *io;
    r->br = br;
    if (!m)
        return 0;
    int ok = 1;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < PAY_NCLASS; i++) {
            char labels[64];
            snprintf(labels, sizeof labels, "kind=\"%s\",outcome=\"%s\"", k ? "refund" : "charge",
                     class_names[i]);
            r->calls[k][i] = ons_metrics_counter(m, "onsale_payments_calls_total",
                                                 "gateway calls by kind and outcome", labels);
            ok &= r->calls[k][i] != NULL;
        }
    r->results = ons_metrics_counter(m, "onsale_payments_results_produced_total",
                                     "payment_result records produced", NULL);
    r->errors = ons_metrics_counter(m, "onsale_payments_produce_errors_total",
                                    "payment_result records Kafka did not take", NULL);
    r->latency =
        ons_metrics_histogram(m, "onsale_payments_gateway_seconds", "gateway call latency, seconds",
                              NULL, ons_latency_buckets, ons_latency_buckets_n);
    return ok && r->results && r->errors && r->latency ? 0 : ONS_ENOMEM;
}

static void count(ons_counter *c)
{
    if (c)
        ons_counter_add(c, 1);
}

/* The JSON body of w's charge or refund (malloc'd), or NULL (no memory). */
static char *request_body(const pay_row *w)
{
    json_t *body;
    char oid[24];
    snprintf(oid, sizeof oid, "%" PRId64, w->order_id);
    if (w->is_refund)
        body = json_pack("{s:s, s:I}", "charge", w->charge, "amount_cents", (json_int_t)w->amount);
    else
        body = json_pack("{s:I, s:s, s:s, s:s}", "amount_cents", (json_int_t)w->amount, "currency",
                         w->currency, "payment_method", w->pm, "order_id", oid);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return text;
}

/* The payment_result record of a charge's final answer. */
static void result_msg(const pay_row *w, const pay_answer *ans, q_msg *m)
{
    memset(m, 0, sizeof *m);
    m->type = Q_MSG_PAYMENT_RESULT;
    m->event_id = w->event_id;
    m->sent_ms = ons_wall_ms();
    m->order_id = w->order_id;
    m->reservation_id = w->reservation_id;
    m->outcome = ans->cls == PAY_SUCCEEDED  ? Q_PAY_SUCCEEDED
                 : ans->cls == PAY_DECLINED ? Q_PAY_DECLINED
                                            : Q_PAY_FAILED;
    m->amount_cents = ans->cls == PAY_SUCCEEDED ? ans->amount : w->amount;
    if (ans->cls == PAY_SUCCEEDED)
        snprintf(m->charge_id, sizeof m->charge_id, "%s", ans->charge);
}

/* What a log line about w names: the order, and the intent when ids.secret
 * is known (the reservation's seq is its intent's). */
typedef struct row_ids {
    char order[24], intent[Q_ID_LEN + 1];
} row_ids;

static void name_row(const pay_relay *r, const pay_row *w, row_ids *ids)
{
    snprintf(ids->order, sizeof ids->order, "%" PRId64, w->order_id);
    ids->intent[0] = '\0';
    if (r->cfg.ids_secret && r->cfg.ids_secret[0] &&
        q_id_encode(r->cfg.ids_secret, Q_ID_INTENT, w->reservation_id, w->user_id, ids->intent) !=
            0)
        ids->intent[0] = '\0';
}

#define LOG_ROW(level, ids, ...)                                                                   \
    ons_logk2(level, "order_id", (ids)->order, "intent_id",                                        \
              (ids)->intent[0] ? (ids)->intent : NULL, __VA_ARGS__)

/* What a batch needs beside its rows, one slot per row. */
typedef struct batch {
    pay_answer *ans;
    row_ids *ids;
    q_msg *msgs;   /* the final charges' results, in row order */
    size_t *which; /* msgs[k] is rows[which[k]]'s */
    int *rcs;      /* the produce's outcome per msgs[k] */
    uint8_t *final;
    pay_done *done;
    pay_call *calls;   /* the gateway calls, in row order */
    size_t *called;    /* calls[k] is rows[called[k]]'s */
    char (*idem)[160]; /* calls[k]'s Idempotency-Key header */
    const char *(*hdrs)[3];
} batch;

/* Step 1 before the call, for row i: a refund without a charge fails
 * without one, an open breaker reschedules it. Returns 1 when the row
 * needs the gateway, else 0 (its answer set, final[i] set). */
static int needs_call(pay_relay *r, const pay_outbox_ops *ob, void *conn, const pay_row *w,
                      pay_answer *ans, uint8_t *final)
{
    memset(ans, 0, sizeof *ans);
    int64_t wait = 0;
    if (w->is_refund && !w->charge[0]) {
        ans->cls = PAY_FAILED;
        snprintf(ans->why, sizeof ans->why, "no charge to refund");
    } else if (!pay_breaker_allow(r->br, ons_mono_ms(), &wait)) {
        ans->cls = PAY_BREAKER_OPEN;
        ans->retry_in_ms = wait;
        snprintf(ans->why, sizeof ans->why, "circuit breaker open");
    } else {
        return 1;
    }
    count(r->calls[w->is_refund][ans->cls]);
    *final = ans->cls != PAY_BREAKER_OPEN;
    if (!*final)
        ob->reschedule(conn, w, ans->retry_in_ms > 0 ? ans->retry_in_ms : r->cfg.breaker_open_ms,
                       ans->why);
    return 0;
}

/* Step 1 after the call: classifies call c's answer for row w, reports it
 * to the breaker and reschedules a transient failure. Returns 1 when the
 * answer is final (the row goes on), 0 when it was rescheduled. */
static int after_call(pay_relay *r, const pay_outbox_ops *ob, void *conn, const pay_row *w,
                      pay_call *c, pay_answer *ans, const row_ids *ids, unsigned *seed)
{
    if (r->latency)
        ons_histogram_observe(r->latency, c->latency_ms / 1000.0);
    pay_classify(w, c->rc, c->status, c->rc ? NULL : c->resp, ans);
    pay_breaker_report(r->br, pay_answer_healthy(c->rc, c->status), ons_mono_ms());
    free(c->resp);
    c->resp = NULL;
    count(r->calls[w->is_refund][ans->cls]);
    if (ans->cls != PAY_RETRY)
        return 1;
    int64_t d = pay_backoff_ms(r->cfg.backoff_base_ms, r->cfg.backoff_max_ms, w->attempts, seed);
    LOG_ROW(ONS_LOG_WARN, ids, "%s %s attempt %" PRId64 ": %s; retry in %" PRId64 " ms",
            w->is_refund ? "refund" : "charge", w->key, w->attempts, ans->why, d);
    ob->reschedule(conn, w, d, ans->why);
    return 0;
}

/* Step 1 for the batch: every row that needs the gateway is called, all at
 * once (pay_relay_io.post); the answers set b->ans and b->final. A row whose
 * request cannot be built (no memory) is rescheduled like a transport
 * error. */
static void call_rows(pay_relay *r, const pay_outbox_ops *ob, void *conn, const pay_row *rows,
                      size_t n, unsigned *seed, batch *b)
{
    char auth[300];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", r->cfg.api_key);
    size_t ncalls = 0;
    int stopping = r->io.stopping && r->io.stopping(r->io.ctx);
    for (size_t i = 0; i < n; i++) {
        const pay_row *w = &rows[i];
        name_row(r, w, &b->ids[i]);
        b->final[i] = 0;
        if (stopping) {
            ob->reschedule(conn, w, 0, "shutdown");
            continue;
        }
        if (!needs_call(r, ob, conn, w, &b->ans[i], &b->final[i]))
            continue;
        pay_call *c = &b->calls[ncalls];
        memset(c, 0, sizeof *c);
        c->body = request_body(w);
        if (!c->body) { /* no memory: like a transport error, tried again later */
            c->rc = ONS_ENOMEM;
            b->final[i] = (uint8_t)after_call(r, ob, conn, w, c, &b->ans[i], &b->ids[i], seed);
            continue;
        }
        snprintf(b->idem[ncalls], sizeof b->idem[ncalls], "Idempotency-Key: %s%s",
                 r->cfg.key_prefix, w->key);
        b->hdrs[ncalls][0] = auth;
        b->hdrs[ncalls][1] = b->idem[ncalls];
        b->hdrs[ncalls][2] = NULL;
        c->path = w->is_refund ? "/v1/refunds" : "/v1/charges";
        c->headers = b->hdrs[ncalls];
        b->called[ncalls++] = i;
    }
    if (ncalls)
        r->io.post(r->io.ctx, conn, b->calls, ncalls, r->cfg.timeout_ms);
    for (size_t k = 0; k < ncalls; k++) {
        size_t i = b->called[k];
        b->final[i] =
            (uint8_t)after_call(r, ob, conn, &rows[i], &b->calls[k], &b->ans[i], &b->ids[i], seed);
        free((void *)b->calls[k].body);
        b->calls[k].body = NULL;
    }
}

/* The batch's three steps over rows[0..n) with b's slots. */
static void relay_batch(pay_relay *r, const pay_outbox_ops *ob, void *conn, const pay_row *rows,
                        size_t n, unsigned *seed, batch *b)
{
    size_t nmsg = 0, ndone = 0;
    call_rows(r, ob, conn, rows, n, seed, b);
    for (size_t i = 0; i < n; i++)
        if (b->final[i] && !rows[i].is_refund) {
            result_msg(&rows[i], &b->ans[i], &b->msgs[nmsg]);
            b->which[nmsg++] = i;
        }
    /* Every final charge's result in the log before its row is done: a
     * result Kafka did not take is rescheduled like a retry, never guessed. */
    if (nmsg)
        r->io.produce(r->io.ctx, b->msgs, nmsg, b->rcs);
    for (size_t k = 0; k < nmsg; k++) {
        const pay_row *w = &rows[b->which[k]];
        if (b->rcs[k] == 0) {
            count(r->results);
            continue;
        }
        count(r->errors);
        LOG_ROW(ONS_LOG_WARN, &b->ids[b->which[k]], "payment_result not produced: %s",
                ons_strerror(b->rcs[k]));
        ob->reschedule(
            conn, w,
            pay_backoff_ms(r->cfg.backoff_base_ms, r->cfg.backoff_max_ms, w->attempts, seed),
            "kafka");
        b->final[b->which[k]] = 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!b->final[i])
            continue;
        const pay_row *w = &rows[i];
        LOG_ROW(ONS_LOG_INFO, &b->ids[i], "%s %s attempt %" PRId64 ": %s%s%s",
                w->is_refund ? "refund" : "charge", w->key, w->attempts, class_names[b->ans[i].cls],
                b->ans[i].charge[0] ? " " : "", b->ans[i].charge);
        b->done[ndone++] = (pay_done){w, &b->ans[i]};
    }
    if (ndone && ob->finish(conn, b->done, ndone) != 0)
        for (size_t k = 0; k < ndone; k++)
            LOG_ROW(ONS_LOG_WARN, &b->ids[b->done[k].row - rows],
                    "outbox row %" PRId64 " not marked done; it will be sent again (harmless)",
                    b->done[k].row->id);
}

void pay_relay_rows(pay_relay *r, const pay_outbox_ops *ob, void *conn, const pay_row *rows,
                    size_t n, unsigned *seed)
{
    batch b = {calloc(n, sizeof *b.ans),   calloc(n, sizeof *b.ids),   calloc(n, sizeof *b.msgs),
               calloc(n, sizeof *b.which), calloc(n, sizeof *b.rcs),   calloc(n, sizeof *b.final),
               calloc(n, sizeof *b.done),  calloc(n, sizeof *b.calls), calloc(n, sizeof *b.called),
               calloc(n, sizeof *b.idem),  calloc(n, sizeof *b.hdrs)};
    if (b.ans && b.ids && b.msgs && b.which && b.rcs && b.final && b.done && b.calls && b.called &&
        b.idem && b.hdrs) {
        relay_batch(r, ob, conn, rows, n, seed, &b);
    } else {
        /* One at a time with slots on the stack. */
        pay_answer ans;
        row_ids ids;
        q_msg msg;
        size_t which, called;
        int rc;
        uint8_t final;
        pay_done done;
        pay_call call;
        char idem[1][160];
        const char *hdrs[1][3];
        batch one = {&ans, &ids, &msg, &which, &rc, &final, &done, &call, &called, idem, hdrs};
        for (size_t i = 0; i < n; i++)
            relay_batch(r, ob, conn, &rows[i], 1, seed, &one);
    }
    free(b.ans);
    free(b.ids);
    free(b.msgs);
    free(b.which);
    free(b.rcs);
    free(b.final);
    free(b.done);
    free(b.calls);
    free(b.called);
    free(b.idem);
    free(b.hdrs);
}
