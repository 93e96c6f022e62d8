/* produce.c - Kafka send with a job-thread continuation; see produce.h. */
#include "ingress/produce.h"
#include "common/err.h"
#include "common/log.h"
#include "common/clock.h"
#include "ingress/cursor_cache.h"
#include "ingress/event_cache.h"
#include "ingress/event_store.h"
#include "ingress/json_io.h"
#include "ingress/monitor.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct pending {
    struct pending *next;
    ing_req *r;
    ing_job_fn done;
    ing_batch_fn batch;           /* set: continue on the finisher thread */
    ing_delivered_fn at_delivery; /* NULL or run on the delivery report */
    int64_t due_ms;               /* debug.finisher_delay_ms: finish no earlier (monotonic) */
    int report_unknown;           /* debug.unknown_outcome: a success is reported as unknown */
} pending;

struct ing_finisher {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pending *head, *tail;
    int closing;
    pthread_t thread;
    int started;
    ing_worker w;
};

static void *finisher_main(void *arg)
{
    ing_finisher *f = arg;
    ing_req *rs[ING_FINISH_BATCH];
    pthread_setname_np(pthread_self(), "ing:finisher");
    for (;;) {
        pthread_mutex_lock(&f->mu);
        while (!f->head && !f->closing)
            pthread_cond_wait(&f->cv, &f->mu);
        pending *list = f->head;
        f->head = f->tail = NULL;
        pthread_mutex_unlock(&f->mu);
        if (!list)
            break; /* closing and drained */
        while (list) {
            ing_batch_fn fn = list->batch;
            size_t n = 0;
            int64_t due = 0;
            while (list && list->batch == fn && n < ING_FINISH_BATCH) {
                pending *pd = list;
                list = pd->next;
                rs[n++] = pd->r;
                if (pd->due_ms > due)
                    due = pd->due_ms;
                free(pd);
            }
            /* Test only (debug.finisher_delay_ms): a lagging finisher, so
             * the worker's delete of an ended intent's key lands first. */
            int64_t wait = due - ons_mono_ms();
            if (wait > 0) {
                struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000L};
                nanosleep(&ts, NULL);
            }
            fn(&f->w, rs, n);
        }
    }
    return NULL;
}

int ing_finisher_new(ing_app *app, const q_status_opts *redis)
{
    ing_finisher *f = calloc(1, sizeof *f);
    if (!f)
        return ONS_ENOMEM;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    app->finisher = f;
    int rc = ing_worker_init(&f->w, -1, app->o.pg_dsn, (int)app->o.pg_statement_timeout_ms);
    if (rc)
        return rc;
    if (q_status_new(redis, &f->w.st) || pthread_create(&f->thread, NULL, finisher_main, f))
        return ONS_ENOMEM;
    f->started = 1;
    return 0;
}

void ing_finisher_free(ing_app *app)
{
    ing_finisher *f = app->finisher;
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->closing = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    if (f->started)
        pthread_join(f->thread, NULL);
    q_status_free(f->w.st);
    ing_worker_fini(&f->w);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
    app->finisher = NULL;
}

/* Queues pd for the finisher. 0, or ONS_ECLOSED when it stopped. */
static int finisher_push(ing_finisher *f, pending *pd)
{
    pthread_mutex_lock(&f->mu);
    if (f->closing) {
        pthread_mutex_unlock(&f->mu);
        return ONS_ECLOSED;
    }
    pd->next = NULL;
    if (f->tail)
        f->tail->next = pd;
    else
        f->head = pd;
    f->tail = pd;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static void run_done(ing_worker *w, void *arg)
{
    pending *pd = arg;
    ing_req *r = pd->r;
    ing_job_fn done = pd->done;
    free(pd);
    done(w, r);
}

/* Delivery report, on the producer's poll thread: hand over to a job thread
 * (forced past the queue bound: this request was already admitted). */
static void on_delivered(void *arg, int err, int32_t partition, int64_t offset)
{
    pending *pd = arg;
    ing_req *r = pd->r;
    if (err == 0 && pd->report_unknown) {
        err = ONS_EUNKNOWN; /* test only: as if the acknowledgement was lost */
        offset = -1;
    }
    r->produce_err = err;
    r->produced_partition = partition;
    r->produced_offset = offset;
    pd->due_ms = ons_mono_ms() + r->app->o.debug_finisher_delay_ms;
    if (pd->at_delivery)
        pd->at_delivery(r);
    if (err && r->app->produce_errors)
        ons_counter_add(r->app->produce_errors, 1);
    if (!err && r->app->produced)
        ons_counter_add(r->app->produced, 1);
    int rc = pd->batch ? finisher_push(r->app->finisher, pd)
                       : ing_pool_submit(r->app->pool, run_done, pd, 1);
    if (rc != 0) {
        free(pd);
        ing_failf(r, NULL, ING_E_UNAVAILABLE, NULL, "The server is shutting down.");
    }
}

/* Does debug.unknown_outcome name this record type ("join", "checkout")? */
static int debug_unknown(const ing_app *app, enum q_msg_type type)
{
    const char *list = app->o.debug_unknown_outcome;
    const char *want = type == Q_MSG_INTENT ? "join" : type == Q_MSG_CHECKOUT ? "checkout" : NULL;
    if (!list || !list[0] || !want)
        return 0;
    size_t n = strlen(want);
    for (const char *p = strstr(list, want); p; p = strstr(p + 1, want))
        if ((p == list || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return 1;
    return 0;
}

int ing_produce_refuse(const ing_health *h, int64_t fail_fast_ms, int64_t monitor_interval_ms)
{
    return fail_fast_ms > 0 && h->age_ms >= 0 && h->age_ms < 5 * monitor_interval_ms + 2000 &&
           !h->kafka_ok && h->kafka_down_ms >= fail_fast_ms;
}

int ing_event_home(ing_app *app, ing_worker *w, int64_t event_id, int32_t *partition)
{
    int64_t n = 0;
    if (ing_seqmap_get(app->homes, event_id, &n) != 0) {
        int parts = 0;
        int rc = w ? ing_event_partitions(w, event_id, &parts) : ONS_EUNAVAIL;
        if (rc)
            return rc;
        n = parts;
        ing_seqmap_put(app->homes, event_id, n);
    }
    *partition = q_partition_of_event(event_id, (int)n);
    return 0;
}

int ing_partitions_verified(ing_app *app)
{
    int n = app->monitor ? ing_monitor_home_partitions(app->monitor) : 0;
    if (n == 0)
        n = app->partitions_read;
    return n >= app->partitions;
}

int ing_partitions_known(ing_app *app)
{
    int topic = app->monitor ? ing_monitor_topic_partitions(app->monitor) : 0;
    return topic > app->partitions ? topic : app->partitions;
}

/* Sends m to its event's home: over partitions (> 0) when the caller
 * knows the event's count, else as ing_event_home finds it. */
static int produce(ing_req *r, ing_worker *w, const q_msg *m, int partitions, ing_job_fn done,
                   ing_batch_fn batch, ing_delivered_fn at_delivery)
{
    if (r->app->monitor && r->app->o.kafka_fail_fast_ms > 0) {
        ing_health h;
        ing_monitor_health(r->app->monitor, &h);
        if (ing_produce_refuse(&h, r->app->o.kafka_fail_fast_ms, r->app->o.monitor_interval_ms)) {
            if (r->app->produce_errors)
                ons_counter_add(r->app->produce_errors, 1);
            return ONS_EKAFKA;
        }
    }
    int32_t home = -1;
    int rc = 0;
    if (partitions > 0)
        home = q_partition_of_event(m->event_id, partitions);
    else
        rc = ing_event_home(r->app, w, m->event_id, &home);
    if (rc)
        return rc == ONS_ENOTFOUND ? ONS_EINVAL : ONS_EUNAVAIL;
    char *buf = NULL;
    size_t len = 0;
    if ((rc = q_msg_encode(m, &buf, &len)) != 0)
        return rc;
    pending *pd = malloc(sizeof *pd);
    if (!pd) {
        free(buf);
        return ONS_ENOMEM;
    }
    pd->next = NULL;
    pd->r = r;
    pd->done = done;
    pd->batch = batch;
    pd->at_delivery = at_delivery;
    pd->due_ms = 0;
    pd->report_unknown = debug_unknown(r->app, m->type);
    rc = q_producer_send_at(r->app->producer, q_msg_topic(m->type), home, m->event_id, buf, len,
                            r->rid, on_delivered, pd);
    free(buf);
    if (rc) {
        free(pd);
        if (r->app->produce_errors)
            ons_counter_add(r->app->produce_errors, 1);
    }
    return rc;
}

int ing_produce(ing_req *r, ing_worker *w, const q_msg *m, ing_job_fn done)
{
    return produce(r, w, m, 0, done, NULL, NULL);
}

int ing_produce_batched(ing_req *r, ing_worker *w, const q_msg *m, int partitions,
                        ing_batch_fn done, ing_delivered_fn at_delivery)
{
    return produce(r, w, m, partitions, NULL, done, at_delivery);
}

static int64_t cached_served(void *arg, int32_t partition)
{
    return ing_cursors_served(arg, partition);
}

int ing_produce_settled(ing_app *app, int lane, int32_t partition, int64_t at_ms,
                        ing_served_fn served, void *arg)
{
    if (!served) {
        served = cached_served;
        arg = app->cursors;
    }
    /* A partition this node does not watch (homed there by a node that
     * knew more of grown topics), or topics short of this node's count:
     * nothing is settled (claims wait) rather than judged blind. */
    if (partition >= app->partitions || !app->monitor || ing_monitor_partitions_short(app->monitor))
        return 0;
    int64_t settle = 2 * app->o.kafka_produce_timeout_ms + app->o.kafka_request_timeout_ms;
    /* Partition unknown (the record was never assigned one): all of them. */
    int32_t first = partition < 0 ? 0 : partition;
    int32_t last = partition < 0 ? app->partitions - 1 : partition;
    for (int32_t p = first; p <= last; p++) {
        /* The watermark a monitor round read after the settle point (the
         * broker answering then, and for a settle time before it), not the
         * latest: a partition that keeps taking records is settled once
         * its cursor passes that one. */
        int64_t high = ing_monitor_high_since(app->monitor, lane, p, at_ms + settle, settle);
        if (high < 0 || served(arg, p) < high)
            return 0;
    }
    return 1;
}
