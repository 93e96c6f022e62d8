/* produce.c - Kafka send with a job-thread continuation; see produce.h. */
#include "ingress/produce.h"
#include "common/err.h"
#include "common/log.h"
#include "ingress/json_io.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct pending {
    struct pending *next;
    ing_req *r;
    ing_job_fn done;
    ing_batch_fn batch; /* set: continue on the finisher thread */
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
            while (list && list->batch == fn && n < ING_FINISH_BATCH) {
                pending *pd = list;
                list = pd->next;
                rs[n++] = pd->r;
                free(pd);
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
    f->w.index = -1;
    f->w.pg_dsn = app->o.pg_dsn;
    f->w.statement_timeout_ms = (int)app->o.pg_statement_timeout_ms;
    app->finisher = f;
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
    if (f->w.pg)
        PQfinish(f->w.pg);
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
    r->produce_err = err;
    r->produced_partition = partition;
    r->produced_offset = offset;
    if (err && r->app->produce_errors)
        ons_counter_add(r->app->produce_errors, 1);
    if (!err && r->app->produced)
        ons_counter_add(r->app->produced, 1);
    int rc = pd->batch ? finisher_push(r->app->finisher, pd)
                       : ing_pool_submit(r->app->pool, run_done, pd, 1);
    if (rc != 0) {
        free(pd);
        r->retry_after = 1;
        ing_reply_error(r, 503, "unavailable", NULL, "The server is shutting down.");
    }
}

static int produce(ing_req *r, const q_msg *m, ing_job_fn done, ing_batch_fn batch)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = q_msg_encode(m, &buf, &len);
    if (rc)
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
    rc = q_producer_send(r->app->producer, m->event_id, buf, len, on_delivered, pd);
    free(buf);
    if (rc) {
        free(pd);
        if (r->app->produce_errors)
            ons_counter_add(r->app->produce_errors, 1);
    }
    return rc;
}

int ing_produce(ing_req *r, const q_msg *m, ing_job_fn done)
{
    return produce(r, m, done, NULL);
}

int ing_produce_batched(ing_req *r, const q_msg *m, ing_batch_fn done)
{
    return produce(r, m, NULL, done);
}
