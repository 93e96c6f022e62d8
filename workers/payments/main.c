/*
 * main.c - onsale-payments: the outbox relay and payment worker of the
 * checkout saga (docs/checkout.md).
 *
 * payments.threads threads each own one PostgreSQL connection and loop:
 *   1. relay: claim due outbox rows (UPDATE ... WHERE outbox_id IN (SELECT
 *      ... FOR UPDATE SKIP LOCKED) setting a lease), so several processes
 *      can share the outbox and a killed one's rows come back when their
 *      lease runs out;
 *   2. call the gateway for every row of the batch at once (pay_relay_rows,
 *      relay.c: POST /v1/charges or /v1/refunds, Idempotency-Key = key
 *      prefix + the row's key, e.g. "order-<id>") with a per-call timeout,
 *      through the shared circuit breaker, over the thread's own pool of
 *      payments.concurrency keep-alive connections;
 *   3. the batch's definitive answers for charges (succeeded / declined /
 *      failed) are produced as payment_result records into their events'
 *      partitions (the idempotent producer; we wait for every delivery
 *      report), then their payments rows are recorded and their outbox rows
 *      marked done in one transaction. A refund's answer only needs the
 *      second step;
 *   4. anything else (timeout, connection error, 5xx, breaker open, Kafka
 *      down) reschedules the row: capped exponential backoff with jitter.
 * An idle thread waits for the writers' notification that outbox rows were
 * written (LISTEN onsale_outbox, migration 0015), at most payments.poll_ms.
 * An outcome is never guessed: a charge whose answer was lost is retried
 * with the same key until the gateway tells (its idempotency replays the
 * stored result), however long that takes. A crash between produce and
 * "done" re-sends the same result, which the partition owner ignores.
 * GET /metrics and /healthz on 127.0.0.1:metrics.port.
 *
 * This file holds the options, the relay's pay_outbox_ops over the outbox's
 * statements (outbox_store.c), the HTTP and Kafka ends of the relay's
 * pay_relay_io, and the threads' loop.
 */
#include "common/auth.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/opts.h"
#include "common/signals.h"
#include "queue/intent_id.h"
#include "queue/msg.h"
#include "queue/producer.h"
#include "workers/httpd.h"
#include "workers/payments/breaker.h"
#include "workers/payments/http.h"
#include "common/pg.h"
#include "workers/payments/outbox_store.h"
#include "workers/payments/relay.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- options ------------------------------------------------------------------ */

/* The options: a field per line of options.def. */
typedef struct pay_opts {
#define X(...) ONS_OPT_FIELD(__VA_ARGS__)
#include "workers/payments/options.def"
#undef X
} pay_opts;

/* The options (workers/payments/options.def), one row each. */
static const ons_opt opt_table[] = {
#define X(...) ONS_OPT_TABLE_ROW(pay_opts, __VA_ARGS__)
#include "workers/payments/options.def"
#undef X
};
#define NOPTS ONS_OPT_COUNT(opt_table)

/* ---- state ------------------------------------------------------------------ */

/* A thread whose outbox query failed (PostgreSQL down) waits this long
 * before the next: the reconnect is attempted at most once a second. */
#define DB_RETRY_MS 1000
/* The main thread checks for a stop signal this often (the threads notice
 * it between rows). */
#define SIGNAL_POLL_MS 200
/* Producer settings: payment results are few and latency matters (linger
 * 1 ms); in flight at most one per thread, so the bound is never reached. */
#define PRODUCER_LINGER_MS    1
#define PRODUCER_MAX_INFLIGHT 10000
/* At shutdown, results still in flight get this long to be delivered; an
 * undelivered one is produced again by the next run (the row is not done). */
#define PRODUCER_FLUSH_MS 5000

typedef struct app {
    pay_opts o;
    pay_url url;
    ons_metrics *m;
    wk_httpd *httpd; /* GET /metrics and /healthz; NULL: metrics.port 0 */
    q_producer *prod;
    pay_breaker br;
    pay_relay relay;
    /* The earliest retry this process rescheduled that may not have been
     * looked for yet (monotonic ms, 0: none): an idle thread wakes for it
     * instead of waiting out payments.poll_ms. */
    pthread_mutex_t due_mu;
    int64_t due_ms;
} app;

/* One charger thread's connections: pay_outbox_ops' and pay_relay_io's
 * conn. */
typedef struct pay_thread {
    app *a;
    ons_pg *c;        /* the thread's connection (common/pg: reconnects with backoff) */
    ons_httpc *calls; /* its keep-alive gateway connections; NULL until the first call */
} pay_thread;

/* Sleeps ms, in slices of SIGNAL_POLL_MS so that a stop is noticed on a
 * thread the signal did not interrupt (payments.poll_ms may be 60 s). */
static void sleep_ms(int64_t ms)
{
    int64_t end = ons_mono_ms() + ms;
    for (int64_t left = ms; left > 0 && !ons_stop_requested; left = end - ons_mono_ms()) {
        int64_t step = left < SIGNAL_POLL_MS ? left : SIGNAL_POLL_MS;
        struct timespec d = {step / 1000, (long)(step % 1000) * 1000000};
        nanosleep(&d, NULL);
    }
}

/* ---- the outbox (outbox_store.h) ---------------------------------------------------- */

/* Gives the row back for a later attempt after delay_ms (on failure the
 * lease runs out instead). */
static void reschedule(void *conn, const pay_row *w, int64_t delay_ms, const char *why)
{
    pay_thread *t = conn;
    if (pay_outbox_reschedule(t->c, w, delay_ms, why) != 0)
        return;
    int64_t due = ons_mono_ms() + (delay_ms > 0 ? delay_ms : 0);
    pthread_mutex_lock(&t->a->due_mu);
    if (t->a->due_ms == 0 || due < t->a->due_ms)
        t->a->due_ms = due;
    pthread_mutex_unlock(&t->a->due_mu);
}

/* How long an idle thread may wait: payments.poll_ms, or less when a retry
 * of this process comes due sooner. A due time already reached is
 * forgotten and the thread waits not at all: it may have come due after
 * this thread's last claim began, which then did not see it, so the claim
 * that follows now looks for it (found in review: it waited a whole poll).
 * A later due time of another row then waits for the poll, at most
 * payments.poll_ms late. */
static int64_t idle_wait_ms(app *a)
{
    int64_t now = ons_mono_ms(), wait = a->o.poll_ms;
    pthread_mutex_lock(&a->due_mu);
    if (a->due_ms > 0 && a->due_ms <= now) {
        a->due_ms = 0;
        wait = 0;
    } else if (a->due_ms > 0 && a->due_ms - now < wait) {
        wait = a->due_ms - now;
    }
    pthread_mutex_unlock(&a->due_mu);
    return wait;
}

/* Records the payments and marks the rows done, in one statement. */
static int finish(void *conn, const pay_done *done, size_t n)
{
    return pay_outbox_finish(((pay_thread *)conn)->c, done, n);
}

static const pay_outbox_ops outbox_ops = {reschedule, finish};

/* ---- the relay's outside world (relay.h) --------------------------------------------- */

/* A call of gateway_post's while it waits for its answer. */
typedef struct call_wait {
    pay_call *c;
    int timeout_ms, answered;
} call_wait;

/* One call's answer arrived: it is copied into its pay_call. */
static void call_answered(void *arg, const ons_httpc_resp *resp)
{
    call_wait *w = arg;
    pay_call *c = w->c;
    w->answered = 1;
    c->latency_ms = resp->latency_ms;
    if (resp->status == 0) {
        /* No answer: a transport error or the deadline. Either way the
         * charge may or may not have been made: asked again, same key. */
        c->rc = resp->latency_ms >= (double)w->timeout_ms ? ONS_ETIMEDOUT : ONS_EIO;
        return;
    }
    c->resp = malloc(resp->body_len + 1);
    if (!c->resp) {
        c->rc = ONS_ENOMEM;
        return;
    }
    memcpy(c->resp, resp->body, resp->body_len + 1);
    c->status = resp->status;
    c->rc = 0;
}

/* The thread's pool of gateway connections, made on first use (a gateway
 * whose name does not resolve yet fails this call, not the process). */
static ons_httpc *thread_pool(pay_thread *t, int timeout_ms)
{
    if (t->calls)
        return t->calls;
    app *a = t->a;
    ons_httpc_opts o = {.host = a->url.host,
                        .port = atoi(a->url.port),
                        .conns = (int)a->o.concurrency,
                        .timeout_ms = timeout_ms,
                        .max_queue = (size_t)a->o.batch,
                        .max_response = 2 * PAY_HTTP_MAX_BODY};
    if (ons_httpc_new(&o, &t->calls) != 0)
        t->calls = NULL;
    return t->calls;
}

/* pay_relay_io.post: the n calls over the thread's pool, at most
 * payments.concurrency at once, each with its own deadline. */
static void gateway_post(void *ctx, void *conn, pay_call *calls, size_t n, int timeout_ms)
{
    app *a = ctx;
    pay_thread *t = conn;
    ons_httpc *pool = thread_pool(t, timeout_ms);
    call_wait *waits = calloc(n, sizeof *waits);
    char path[512];
    for (size_t i = 0; i < n; i++) {
        calls[i].rc = pool && waits ? ONS_EIO : ONS_ENOMEM;
        if (!pool || !waits)
            continue;
        waits[i] = (call_wait){&calls[i], timeout_ms, 0};
        snprintf(path, sizeof path, "%s%s", a->url.base, calls[i].path);
        ons_httpc_req req = {
            .method = "POST", .path = path, .headers = calls[i].headers, .body = calls[i].body};
        if (ons_httpc_request(pool, &req, call_answered, &waits[i]) != 0)
            waits[i].answered = 1; /* not sent: ONS_EIO, tried again later */
    }
    /* Every queued call's callback runs by its deadline (a refused or reset
     * connection sooner). An epoll failure drops the pool: the calls still
     * out keep ONS_EIO (tried again later, same key) and the next batch
     * opens new connections. */
    while (pool && waits && ons_httpc_pending(pool) > 0)
        if (ons_httpc_poll(pool, 100) != 0) {
            ons_httpc_free(pool);
            t->calls = NULL;
            break;
        }
    free(waits);
}

static void produce(void *ctx, const q_msg *ms, size_t n, int *rcs)
{
    app *a = ctx;
    (void)pay_produce_results(a->prod, ms, n, rcs);
}

static int stopping(void *ctx)
{
    (void)ctx;
    return ons_stop_requested != 0;
}

/* ---- the loop ---------------------------------------------------------------------- */

/* An idle thread's wait: until a writer notifies that outbox rows were
 * written (migration 0015), one of this process's retries comes due, or
 * payments.poll_ms passed (other processes' retries, expired leases, a
 * notification lost with its connection), in
 * slices of SIGNAL_POLL_MS so that a stop is noticed. A session that only
 * starts listening now looks at the outbox first: what was notified before
 * was not heard. */
static void wait_for_rows(app *a, ons_pg *c, pay_listen *l)
{
    int rc = pay_outbox_listen(c, l);
    if (rc == 1)
        return;
    if (rc < 0) { /* no LISTEN (PostgreSQL away): the plain poll */
        sleep_ms(a->o.poll_ms);
        return;
    }
    int64_t wait = idle_wait_ms(a), end = ons_mono_ms() + wait;
    for (int64_t left = wait; left > 0 && !ons_stop_requested; left = end - ons_mono_ms()) {
        rc = pay_outbox_wait(c, (int)(left < SIGNAL_POLL_MS ? left : SIGNAL_POLL_MS));
        if (rc == 1)
            return;
        if (rc < 0) { /* broken: the next claim reconnects, after the rest of the poll */
            sleep_ms(left);
            return;
        }
    }
}

static void *thread_main(void *arg)
{
    app *a = arg;
    ons_pg c;
    ons_pg_opts po;
    ons_pg_opts_default(&po, a->o.pg_dsn, "onsale-payments");
    pay_thread t = {a, &c, NULL};
    unsigned seed = (unsigned)(ons_mono_ms() ^ (int64_t)(uintptr_t)&c);
    pay_row *rows = calloc((size_t)a->o.batch, sizeof *rows);
    if (!rows || ons_pg_init(&c, &po)) {
        ons_log_error("out of memory");
        free(rows);
        return NULL;
    }
    pay_listen l = {0};
    while (!ons_stop_requested) {
        int n = 0;
        int rc = pay_outbox_claim(&c, a->o.lease_ms, rows, (int)a->o.batch, &n);
        if (rc)
            sleep_ms(DB_RETRY_MS);
        else if (n > 0)
            pay_relay_rows(&a->relay, &outbox_ops, &t, rows, (size_t)n, &seed);
        else
            wait_for_rows(a, &c, &l);
    }
    free(rows);
    ons_httpc_free(t.calls);
    ons_pg_fini(&c);
    return NULL;
}

/* ---- main ---------------------------------------------------------------------------- */

static int setup_relay(app *a)
{
    a->m = ons_metrics_new();
    if (!a->m)
        return ONS_ENOMEM;
    pay_breaker_init(&a->br, (int)a->o.breaker_failures, a->o.breaker_open_ms, a->m);
    pay_relay_cfg cfg = {a->o.backoff_base_ms, a->o.backoff_max_ms, a->o.breaker_open_ms,
                         (int)a->o.timeout_ms, a->o.api_key,        a->o.key_prefix,
                         a->o.ids_secret};
    pay_relay_io io = {gateway_post, produce, stopping, a};
    return pay_relay_init(&a->relay, &cfg, &io, &a->br, a->m);
}

static const ons_opt_secret secrets[] = {{"payments.api_key", ONS_GATEWAY_KEY_DEV}};
static const ons_start start_cfg = {
    .cli = {"onsale-payments", "config",
            "usage: onsale-payments [--config FILE] [--KEY=VALUE ...]\n"
            "The checkout saga's outbox relay and payment worker.\n\nOptions:\n"},
    .log_name = "payments",
    .secrets = secrets,
    .nsecrets = 1};

/* Builds everything but the threads: metrics, breaker, relay, the metrics
 * endpoint, the producer. 0 or an error (logged); stop() undoes it. */
static int start(app *a)
{
    if (pay_url_parse(a->o.gateway_url, &a->url) != 0) {
        ons_log_error("payments.gateway_url must be http://host[:port][/path]");
        return ONS_EINVAL;
    }
    if (setup_relay(a) != 0) {
        ons_log_error("out of memory");
        return ONS_ENOMEM;
    }
    if (a->o.metrics_port > 0 && wk_httpd_start((int)a->o.metrics_port, a->m, &a->httpd) != 0)
        return ONS_EIO;
    q_producer_opts po = {.brokers = a->o.brokers,
                          .topic = a->o.topic,
                          .linger_ms = PRODUCER_LINGER_MS,
                          .delivery_timeout_ms = (int)a->o.produce_timeout_ms,
                          .max_inflight = PRODUCER_MAX_INFLIGHT,
                          .control_topic = a->o.control_topic,
                          /* nothing else refreshes the relay's metadata */
                          .refresh_unknown = 1,
                          .sec = {a->o.security_protocol, a->o.ssl_ca_location}};
    if (q_producer_new(&po, &a->prod) != 0) {
        ons_log_error("cannot create the Kafka producer");
        return ONS_EKAFKA;
    }
    return 0;
}

static void stop(app *a)
{
    q_producer_free(a->prod, PRODUCER_FLUSH_MS);
    wk_httpd_stop(a->httpd);
    if (a->m)
        pay_breaker_fini(&a->br);
    ons_metrics_free(a->m);
}

int main(int argc, char **argv)
{
    app a;
    memset(&a, 0, sizeof a);
    pthread_mutex_init(&a.due_mu, NULL);
    int prc = ons_opts_start(opt_table, NOPTS, &a.o, argc, argv, &start_cfg);
    if (prc)
        return ons_opts_exit(prc);
    ons_signals_stop_flag_on();
    int code = 1;
    pthread_t *th = NULL;
    size_t nth = 0;
    if (start(&a) == 0 && (th = calloc((size_t)a.o.threads, sizeof *th)) != NULL) {
        for (; nth < (size_t)a.o.threads; nth++)
            if (pthread_create(&th[nth], NULL, thread_main, &a) != 0)
                break;
        ons_log_info("payments: %zu threads, gateway %s, breaker %lld failures / %lld ms", nth,
                     a.o.gateway_url, a.o.breaker_failures, a.o.breaker_open_ms);
        while (!ons_stop_requested)
            sleep_ms(SIGNAL_POLL_MS);
        code = 0;
        for (size_t i = 0; i < nth; i++)
            pthread_join(th[i], NULL);
    }
    free(th);
    stop(&a);
    ons_opts_free(opt_table, NOPTS, &a.o);
    pthread_mutex_destroy(&a.due_mu);
    ons_log_info("payments: stopped");
    return code;
}
