/*
 * main.c - onsale-payments: the outbox relay and payment worker of the
 * checkout saga (docs/checkout.md).
 *
 * payments.threads threads each own one PostgreSQL connection and loop:
 *   1. relay: claim due outbox rows (UPDATE ... WHERE outbox_id IN (SELECT
 *      ... FOR UPDATE SKIP LOCKED) setting a lease), so several processes
 *      can share the outbox and a killed one's rows come back when their
 *      lease runs out;
 *   2. for each row, call the gateway (POST /v1/charges or /v1/refunds,
 *      Idempotency-Key = key prefix + the row's key, e.g. "order-<id>") with a
 *      per-call timeout, through the shared circuit breaker;
 *   3. a definitive answer for a charge (succeeded / declined / failed) is
 *      produced as a payment_result record into the event's partition (the
 *      idempotent producer; we wait for the delivery report), then the
 *      payments row is recorded and the outbox row marked done in one
 *      transaction. A refund's answer only needs the second step;
 *   4. anything else (timeout, connection error, 5xx, breaker open, Kafka
 *      down) reschedules the row: capped exponential backoff with jitter.
 * An outcome is never guessed: a charge whose answer was lost is retried
 * with the same key until the gateway tells (its idempotency replays the
 * stored result), however long that takes. A crash between produce and
 * "done" re-sends the same result, which the partition owner ignores.
 * GET /metrics and /healthz on 127.0.0.1:metrics.port.
 */
#include "common/auth.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/opts.h"
#include "queue/intent_id.h"
#include "queue/msg.h"
#include "queue/producer.h"
#include "workers/httpd.h"
#include "workers/payments/breaker.h"
#include "workers/payments/http.h"
#include "common/pg.h"

#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- options ------------------------------------------------------------------ */

typedef struct pay_opts {
    char *brokers, *topic, *control_topic, *pg_dsn;
    char *gateway_url, *api_key, *key_prefix;
    long long threads, batch, poll_ms, lease_ms, timeout_ms;
    long long backoff_base_ms, backoff_max_ms;
    long long breaker_failures, breaker_open_ms;
    long long produce_timeout_ms, metrics_port;
    char *log_level, *ids_secret;
    int dev_mode;
} pay_opts;

#define OPT(name, type, field, min, max, def, help)                                                \
    {                                                                                              \
        name, type, offsetof(pay_opts, field), min, max, def, help                                 \
    }
static const ons_opt opt_table[] = {
    OPT("kafka.brokers", ONS_OPT_STR, brokers, 1, 1024, "127.0.0.1:19092", "bootstrap servers"),
    OPT("kafka.topic", ONS_OPT_STR, topic, 1, 249, "intents", "the intents topic"),
    OPT("kafka.control_topic", ONS_OPT_STR, control_topic, 0, 249, "",
        "where payment results go (\"\": <kafka.topic>.control; docs/pipeline.md)"),
    OPT("pg.dsn", ONS_OPT_STR, pg_dsn, 1, 1024,
        "host=127.0.0.1 port=15432 dbname=onsale user=postgres", "PostgreSQL connection string"),
    OPT("payments.gateway_url", ONS_OPT_STR, gateway_url, 8, 512, "http://127.0.0.1:9300",
        "payment gateway base URL (http only)"),
    OPT("payments.api_key", ONS_OPT_STR, api_key, 1, 255, ONS_GATEWAY_KEY_DEV,
        "the payment gateway's API key"),
    OPT("dev_mode", ONS_OPT_BOOL, dev_mode, 0, 1, "false", ONS_DEV_MODE_HELP),
    OPT("payments.key_prefix", ONS_OPT_STR, key_prefix, 0, 64, "onsale-",
        "prefix of every gateway Idempotency-Key (one per deployment sharing a gateway)"),
    OPT("payments.threads", ONS_OPT_INT, threads, 1, 64, "4", "charger threads"),
    OPT("payments.batch", ONS_OPT_INT, batch, 1, 1000, "16", "outbox rows claimed at once"),
    OPT("payments.poll_ms", ONS_OPT_INT, poll_ms, 10, 60000, "100",
        "how often an idle thread looks for due outbox rows"),
    OPT("payments.lease_ms", ONS_OPT_INT, lease_ms, 1000, 3600000, "30000",
        "a claimed row comes back to others after this long (a killed claimer's rows)"),
    OPT("payments.timeout_ms", ONS_OPT_INT, timeout_ms, 50, 120000, "3000",
        "deadline of one gateway call (connect, send, answer)"),
    OPT("payments.backoff_base_ms", ONS_OPT_INT, backoff_base_ms, 1, 60000, "200",
        "first retry delay; doubles per attempt"),
    OPT("payments.backoff_max_ms", ONS_OPT_INT, backoff_max_ms, 1, 3600000, "10000",
        "retry delay cap (a random half of it is jitter)"),
    OPT("payments.breaker_failures", ONS_OPT_INT, breaker_failures, 1, 1000, "5",
        "consecutive transient failures that open the circuit breaker"),
    OPT("payments.breaker_open_ms", ONS_OPT_INT, breaker_open_ms, 1, 3600000, "5000",
        "how long the breaker stays open before a half-open probe"),
    OPT("payments.produce_timeout_ms", ONS_OPT_INT, produce_timeout_ms, 100, 300000, "10000",
        "longest wait for a payment_result's delivery report"),
    OPT("metrics.port", ONS_OPT_INT, metrics_port, 0, 65535, "9102",
        "GET /metrics and /healthz on 127.0.0.1 (0 = off)"),
    OPT("log.level", ONS_OPT_STR, log_level, 1, 8, "info", "debug, info, warn or error"),
    OPT("ids.secret", ONS_OPT_STR, ids_secret, 0, ONS_AUTH_SECRET_MAX, "",
        "the workers' ids.secret, only to name each payment attempt's intent (intent_id) in the "
        "log; empty: lines name the order only"),
};
#define NOPTS ONS_OPT_COUNT(opt_table)

/* ---- state ------------------------------------------------------------------ */

enum call_class { C_SUCCEEDED, C_DECLINED, C_FAILED, C_RETRY, C_BREAKER_OPEN, NCLASS };
static const char *class_names[NCLASS] = {"succeeded", "declined", "failed", "retry",
                                          "breaker_open"};

typedef struct app {
    pay_opts o;
    pay_url url;
    ons_metrics *m;
    q_producer *prod;
    pay_breaker br;
    ons_counter *calls[2][NCLASS]; /* [is_refund][class] */
    ons_counter *results, *errors;
    ons_histogram *latency;
} app;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void sleep_ms(int64_t ms)
{
    struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (!stop_flag && nanosleep(&d, &d) != 0)
        ;
}

/* One claimed outbox row. */
typedef struct row {
    int64_t id, order_id, reservation_id, event_id, ticket_id, amount, attempts, user_id;
    int is_refund;
    char currency[4], pm[Q_MSG_MAX_PM + 1], charge[Q_MSG_MAX_CHARGE + 1], key[80];
} row;

/* The answer of one gateway call. */
typedef struct answer {
    int cls; /* enum call_class */
    char charge[Q_MSG_MAX_CHARGE + 1];
    int64_t amount;
    char why[160];
} answer;

/* ---- PostgreSQL ---------------------------------------------------------------- */

/* Runs one statement, (re)connecting first when needed (common/pg: backoff,
 * timeouts, logged once); the result when its status is want (caller clears
 * it), else NULL (logged). */
static PGresult *q(ons_pg *c, const char *sql, int n, const char *const *v, ExecStatusType want)
{
    PGresult *r = NULL;
    ons_pg_query(c, want, NULL, sql, n, v, &r);
    return r;
}

/* Claims up to batch due rows. Returns how many were written to rows, or -1. */
static int claim(app *a, ons_pg *c, row *rows, int max)
{
    char lease[24], lim[24];
    snprintf(lease, sizeof lease, "%lld", a->o.lease_ms);
    snprintf(lim, sizeof lim, "%d", max);
    const char *v[] = {lease, lim};
    PGresult *r =
        q(c,
          "UPDATE outbox o SET lease_until = now() + make_interval(secs => $1::bigint / 1000.0), "
          "attempts = o.attempts + 1 WHERE o.outbox_id IN (SELECT outbox_id FROM outbox "
          "WHERE state = 'pending' AND next_attempt_at <= now() "
          "AND (lease_until IS NULL OR lease_until < now()) "
          "ORDER BY next_attempt_at, outbox_id LIMIT $2 FOR UPDATE SKIP LOCKED) "
          "RETURNING outbox_id, kind, order_id, reservation_id, event_id, coalesce(ticket_id, 0), "
          "amount_cents, currency, coalesce(payment_method, ''), coalesce(charge_id, ''), "
          "idempotency_key, attempts, "
          "coalesce((SELECT user_id FROM orders WHERE order_id = o.order_id), 0)",
          2, v, PGRES_TUPLES_OK);
    if (!r)
        return -1;
    int n = PQntuples(r);
    for (int i = 0; i < n && i < max; i++) {
        row *w = &rows[i];
        memset(w, 0, sizeof *w);
        w->id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        w->is_refund = strcmp(PQgetvalue(r, i, 1), "refund") == 0;
        w->order_id = strtoll(PQgetvalue(r, i, 2), NULL, 10);
        w->reservation_id = strtoll(PQgetvalue(r, i, 3), NULL, 10);
        w->event_id = strtoll(PQgetvalue(r, i, 4), NULL, 10);
        w->ticket_id = strtoll(PQgetvalue(r, i, 5), NULL, 10);
        w->amount = strtoll(PQgetvalue(r, i, 6), NULL, 10);
        snprintf(w->currency, sizeof w->currency, "%s", PQgetvalue(r, i, 7));
        snprintf(w->pm, sizeof w->pm, "%s", PQgetvalue(r, i, 8));
        snprintf(w->charge, sizeof w->charge, "%s", PQgetvalue(r, i, 9));
        snprintf(w->key, sizeof w->key, "%s", PQgetvalue(r, i, 10));
        w->attempts = strtoll(PQgetvalue(r, i, 11), NULL, 10);
        w->user_id = strtoll(PQgetvalue(r, i, 12), NULL, 10);
    }
    PQclear(r);
    return n < max ? n : max;
}

/* Gives the row back for a later attempt after delay_ms. */
static void reschedule(ons_pg *c, const row *w, int64_t delay_ms, const char *why)
{
    char id[24], d[24];
    snprintf(id, sizeof id, "%" PRId64, w->id);
    snprintf(d, sizeof d, "%" PRId64, delay_ms);
    const char *v[] = {id, d, why};
    PGresult *r = q(c,
                    "UPDATE outbox SET lease_until = NULL, last_error = $3, "
                    "next_attempt_at = now() + make_interval(secs => $2::bigint / 1000.0) "
                    "WHERE outbox_id = $1 AND state = 'pending'",
                    3, v, PGRES_COMMAND_OK);
    PQclear(r); /* on failure the lease runs out instead */
}

/* Records the payment and marks the row done, in one transaction. */
static int finish(ons_pg *c, const row *w, const answer *ans)
{
    static const char *pstate[] = {"succeeded", "declined", "failed"};
    char id[24], oid[24], amt[24], att[24];
    snprintf(id, sizeof id, "%" PRId64, w->id);
    snprintf(oid, sizeof oid, "%" PRId64, w->order_id);
    snprintf(amt, sizeof amt, "%" PRId64, ans->amount > 0 ? ans->amount : w->amount);
    snprintf(att, sizeof att, "%" PRId64, w->attempts);
    const char *v[] = {oid,
                       w->is_refund ? "refund" : "charge",
                       pstate[ans->cls],
                       amt,
                       w->currency,
                       ans->charge[0] ? ans->charge : NULL,
                       att,
                       id,
                       ans->why[0] ? ans->why : NULL};
    PGresult *r = q(c,
                    "WITH p AS (INSERT INTO payments (order_id, kind, state, amount_cents, "
                    "currency, gateway_ref, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                    "ON CONFLICT DO NOTHING) "
                    "UPDATE outbox SET state = 'done', outcome = $3, done_at = now(), "
                    "lease_until = NULL, last_error = $9 WHERE outbox_id = $8",
                    9, v, PGRES_COMMAND_OK);
    if (!r)
        return ONS_EDB;
    PQclear(r);
    return 0;
}

/* ---- the gateway ----------------------------------------------------------------- */

/* Classifies the answer to a charge or refund. */
static void classify(const row *w, int rc, const pay_http_resp *resp, answer *ans)
{
    memset(ans, 0, sizeof *ans);
    if (rc) {
        ans->cls = C_RETRY;
        snprintf(ans->why, sizeof ans->why, "gateway call: %s", ons_strerror(rc));
        return;
    }
    json_t *b = resp->body ? json_loads(resp->body, 0, NULL) : NULL;
    json_t *err = json_object_get(json_object_get(b, "error"), "code");
    const char *code = json_is_string(err) ? json_string_value(err) : "";
    int s = resp->status;
    if (s == 200) {
        json_t *id = json_object_get(b, "id"), *amt = json_object_get(b, "amount_cents");
        if (json_is_string(id) && json_string_length(id) <= Q_MSG_MAX_CHARGE &&
            json_string_length(id) > 0) {
            ans->cls = C_SUCCEEDED;
            snprintf(ans->charge, sizeof ans->charge, "%s", json_string_value(id));
            ans->amount = json_is_integer(amt) ? json_integer_value(amt) : w->amount;
        } else {
            ans->cls = C_RETRY;
            snprintf(ans->why, sizeof ans->why, "200 without an id");
        }
    } else if (s == 402 && !w->is_refund) {
        ans->cls = C_DECLINED;
        json_t *dc = json_object_get(json_object_get(b, "error"), "decline_code");
        snprintf(ans->why, sizeof ans->why, "declined: %s",
                 json_is_string(dc) ? json_string_value(dc) : code);
    } else if (s == 400 || (s == 404 && w->is_refund)) {
        /* The gateway refused the request itself: retrying cannot help. */
        ans->cls = C_FAILED;
        snprintf(ans->why, sizeof ans->why, "%d %s", s, code);
    } else {
        /* 5xx, 409 in progress, 401/403/422 misconfiguration: try again. */
        ans->cls = C_RETRY;
        snprintf(ans->why, sizeof ans->why, "%d %s", s, code);
    }
    json_decref(b);
}

/* Calls the gateway for w through the breaker. */
static void call_gateway(app *a, const row *w, answer *ans)
{
    int64_t wait = 0;
    if (!pay_breaker_allow(&a->br, ons_mono_ms(), &wait)) {
        memset(ans, 0, sizeof *ans);
        ans->cls = C_BREAKER_OPEN;
        ans->amount = wait; /* reused: when to look again */
        snprintf(ans->why, sizeof ans->why, "circuit breaker open");
        return;
    }
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
    char auth[300], idem[160];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", a->o.api_key);
    snprintf(idem, sizeof idem, "Idempotency-Key: %s%s", a->o.key_prefix, w->key);
    const char *hdrs[] = {auth, idem, NULL};
    pay_http_resp resp;
    int64_t t0 = ons_mono_ms();
    int rc = text ? pay_http_post(&a->url, w->is_refund ? "/v1/refunds" : "/v1/charges", hdrs, text,
                                  (int)a->o.timeout_ms, &resp)
                  : ONS_ENOMEM;
    free(text);
    if (a->latency)
        ons_histogram_observe(a->latency, (double)(ons_mono_ms() - t0) / 1000.0);
    classify(w, rc, rc ? NULL : &resp, ans);
    int healthy = ans->cls != C_RETRY || (rc == 0 && resp.status < 500);
    pay_breaker_report(&a->br, healthy, ons_mono_ms());
    if (rc == 0)
        free(resp.body);
}

/* ---- payment_result ------------------------------------------------------------ */

typedef struct delivery {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, err;
} delivery;

static void delivered(void *arg, int err, int32_t partition, int64_t offset)
{
    (void)partition;
    (void)offset;
    delivery *d = arg;
    pthread_mutex_lock(&d->mu);
    d->done = 1;
    d->err = err;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

/* Produces the charge's outcome and waits for its delivery report. */
static int produce_result(app *a, const row *w, const answer *ans)
{
    q_msg m;
    memset(&m, 0, sizeof m);
    m.type = Q_MSG_PAYMENT_RESULT;
    m.event_id = w->event_id;
    m.sent_ms = ons_wall_ms();
    m.order_id = w->order_id;
    m.reservation_id = w->reservation_id;
    m.outcome = ans->cls == C_SUCCEEDED  ? Q_PAY_SUCCEEDED
                : ans->cls == C_DECLINED ? Q_PAY_DECLINED
                                         : Q_PAY_FAILED;
    m.amount_cents = ans->cls == C_SUCCEEDED ? ans->amount : w->amount;
    if (ans->cls == C_SUCCEEDED)
        snprintf(m.charge_id, sizeof m.charge_id, "%s", ans->charge);
    char *buf = NULL;
    size_t len = 0;
    int rc = q_msg_encode(&m, &buf, &len);
    if (rc)
        return rc;
    delivery *d = calloc(1, sizeof *d); /* freed by whoever is last: see below */
    if (!d) {
        free(buf);
        return ONS_ENOMEM;
    }
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    /* The control lane: a result never waits behind the event's join backlog. */
    rc = q_producer_send_to(a->prod, Q_TOPIC_CONTROL, w->event_id, buf, len, delivered, d);
    free(buf);
    if (rc) {
        pthread_mutex_destroy(&d->mu);
        pthread_cond_destroy(&d->cv);
        free(d);
        return rc;
    }
    /* The producer's delivery timeout (produce_timeout_ms) bounds the wait:
     * the callback runs exactly once, so we can wait for it unconditionally. */
    pthread_mutex_lock(&d->mu);
    while (!d->done)
        pthread_cond_wait(&d->cv, &d->mu);
    rc = d->err;
    pthread_mutex_unlock(&d->mu);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d);
    return rc;
}

/* ---- the loop ---------------------------------------------------------------------- */

static int64_t backoff_ms(app *a, int64_t attempts, unsigned *seed)
{
    int64_t d = a->o.backoff_base_ms;
    for (int64_t i = 1; i < attempts && d < a->o.backoff_max_ms; i++)
        d *= 2;
    if (d > a->o.backoff_max_ms)
        d = a->o.backoff_max_ms;
    /* "equal jitter": half fixed, half random, so retries spread out. */
    return d / 2 + (int64_t)(rand_r(seed) % (unsigned)(d / 2 + 1));
}

static void process(app *a, ons_pg *c, const row *w, unsigned *seed)
{
    answer ans;
    char ctx[32], iid[Q_ID_LEN + 1] = "";
    snprintf(ctx, sizeof ctx, "%" PRId64, w->order_id);
    /* The reservation's seq is its intent's: lines name the intent too. */
    if (a->o.ids_secret[0] &&
        q_id_encode(a->o.ids_secret, Q_ID_INTENT, w->reservation_id, w->user_id, iid) != 0)
        iid[0] = '\0';
    const char *intent = iid[0] ? iid : NULL;
    if (w->is_refund && !w->charge[0]) {
        memset(&ans, 0, sizeof ans);
        ans.cls = C_FAILED;
        snprintf(ans.why, sizeof ans.why, "no charge to refund");
    } else {
        call_gateway(a, w, &ans);
    }
    ons_counter_add(a->calls[w->is_refund][ans.cls], 1);
    if (ans.cls == C_BREAKER_OPEN) {
        reschedule(c, w, ans.amount > 0 ? ans.amount : a->o.breaker_open_ms, ans.why);
        return;
    }
    if (ans.cls == C_RETRY) {
        int64_t d = backoff_ms(a, w->attempts, seed);
        ons_logk2(ONS_LOG_WARN, "order_id", ctx, "intent_id", intent,
                  "%s %s attempt %" PRId64 ": %s; retry in %" PRId64 " ms",
                  w->is_refund ? "refund" : "charge", w->key, w->attempts, ans.why, d);
        reschedule(c, w, d, ans.why);
        return;
    }
    if (!w->is_refund) {
        int rc = produce_result(a, w, &ans);
        if (rc) {
            ons_counter_add(a->errors, 1);
            ons_logk2(ONS_LOG_WARN, "order_id", ctx, "intent_id", intent,
                      "payment_result not produced: %s", ons_strerror(rc));
            reschedule(c, w, backoff_ms(a, w->attempts, seed), "kafka");
            return;
        }
        ons_counter_add(a->results, 1);
    }
    ons_logk2(ONS_LOG_INFO, "order_id", ctx, "intent_id", intent,
              "%s %s attempt %" PRId64 ": %s%s%s", w->is_refund ? "refund" : "charge", w->key,
              w->attempts, class_names[ans.cls], ans.charge[0] ? " " : "", ans.charge);
    if (finish(c, w, &ans) != 0)
        ons_logk2(ONS_LOG_WARN, "order_id", ctx, "intent_id", intent,
                  "outbox row %" PRId64 " not marked done; it will be sent again (harmless)",
                  w->id);
}

static void *thread_main(void *arg)
{
    app *a = arg;
    ons_pg c;
    ons_pg_opts po;
    ons_pg_opts_default(&po, a->o.pg_dsn, "onsale-payments");
    unsigned seed = (unsigned)(ons_mono_ms() ^ (int64_t)(uintptr_t)&c);
    row *rows = calloc((size_t)a->o.batch, sizeof *rows);
    if (!rows || ons_pg_init(&c, &po)) {
        ons_log_error("out of memory");
        free(rows);
        return NULL;
    }
    while (!stop_flag) {
        int n = claim(a, &c, rows, (int)a->o.batch);
        if (n <= 0) {
            sleep_ms(n < 0 ? 1000 : a->o.poll_ms);
            continue;
        }
        for (int i = 0; i < n; i++) {
            if (stop_flag) {
                reschedule(&c, &rows[i], 0, "shutdown");
                continue;
            }
            process(a, &c, &rows[i], &seed);
        }
    }
    free(rows);
    ons_pg_fini(&c);
    return NULL;
}

/* ---- main ---------------------------------------------------------------------------- */

static int setup_metrics(app *a)
{
    a->m = ons_metrics_new();
    if (!a->m)
        return ONS_ENOMEM;
    int ok = 1;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < NCLASS; i++) {
            char labels[64];
            snprintf(labels, sizeof labels, "kind=\"%s\",outcome=\"%s\"", k ? "refund" : "charge",
                     class_names[i]);
            a->calls[k][i] = ons_metrics_counter(a->m, "onsale_payments_calls_total",
                                                 "gateway calls by kind and outcome", labels);
            ok &= a->calls[k][i] != NULL;
        }
    a->results = ons_metrics_counter(a->m, "onsale_payments_results_produced_total",
                                     "payment_result records produced", NULL);
    a->errors = ons_metrics_counter(a->m, "onsale_payments_produce_errors_total",
                                    "payment_result records Kafka did not take", NULL);
    a->latency = ons_metrics_histogram(a->m, "onsale_payments_gateway_seconds",
                                       "gateway call latency, seconds", NULL, ons_latency_buckets,
                                       ons_latency_buckets_n);
    return ok && a->results && a->errors && a->latency ? 0 : ONS_ENOMEM;
}

static const ons_cli cli = {"onsale-payments", "config",
                            "usage: onsale-payments [--config FILE] [--KEY=VALUE ...]\n"
                            "The checkout saga's outbox relay and payment worker.\n\nOptions:\n"};

int main(int argc, char **argv)
{
    app a;
    memset(&a, 0, sizeof a);
    wk_httpd *httpd = NULL;
    pthread_t *th = NULL;
    size_t nth = 0;
    int code = 1;
    char err[512];
    int prc = ons_opts_from_args(opt_table, NOPTS, &a.o, argc, argv, &cli, err, sizeof err);
    if (prc)
        return prc == ONS_OPTS_HELP ? 0 : 2;
    const ons_secret secrets[] = {{"payments.api_key", a.o.api_key, ONS_GATEWAY_KEY_DEV}};
    if (ons_secrets_check(secrets, 1, a.o.dev_mode, err, sizeof err)) {
        fprintf(stderr, "onsale-payments: %s\n", err);
        ons_opts_free(opt_table, NOPTS, &a.o);
        return 2;
    }
    ons_log_init("payments", a.o.log_level);
    if (err[0])
        ons_log_warn("%s", err);
    if (pay_url_parse(a.o.gateway_url, &a.url) != 0) {
        ons_log_error("payments.gateway_url must be http://host[:port][/path]");
        goto out;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (setup_metrics(&a) != 0) {
        ons_log_error("out of memory");
        goto out;
    }
    pay_breaker_init(&a.br, (int)a.o.breaker_failures, a.o.breaker_open_ms, a.m);
    if (a.o.metrics_port > 0 && wk_httpd_start((int)a.o.metrics_port, a.m, &httpd) != 0)
        goto out_breaker;
    q_producer_opts po = {a.o.brokers, a.o.topic,        1, (int)a.o.produce_timeout_ms,
                          10000,       a.o.control_topic};
    if (q_producer_new(&po, &a.prod) != 0) {
        ons_log_error("cannot create the Kafka producer");
        goto out_breaker;
    }
    th = calloc((size_t)a.o.threads, sizeof *th);
    if (!th)
        goto out_prod;
    for (; nth < (size_t)a.o.threads; nth++)
        if (pthread_create(&th[nth], NULL, thread_main, &a) != 0)
            break;
    ons_log_info("payments: %zu threads, gateway %s, breaker %lld failures / %lld ms", nth,
                 a.o.gateway_url, a.o.breaker_failures, a.o.breaker_open_ms);
    while (!stop_flag)
        sleep_ms(200);
    code = 0;
    for (size_t i = 0; i < nth; i++)
        pthread_join(th[i], NULL);
    free(th);
out_prod:
    q_producer_free(a.prod, 5000);
out_breaker:
    wk_httpd_stop(httpd);
    pay_breaker_fini(&a.br);
out:
    ons_metrics_free(a.m);
    ons_opts_free(opt_table, NOPTS, &a.o);
    ons_log_info("payments: stopped");
    return code;
}
