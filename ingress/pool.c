/* pool.c - bounded job queue and the threads that own Redis/PostgreSQL
 * connections; see pool.h. */
#include "common/clock.h"
#include "ingress/pool.h"
#include "common/err.h"
#include "common/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct job {
    struct job *next;
    ing_job_fn fn;
    void *arg;
} job;

struct ing_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;
    int depth;
    int max_depth;
    int closing;
    int nthreads, nworkers; /* threads started; workers allocated */
    pthread_t *threads;
    ing_worker *workers;
    char *pg_dsn;
};

/* w's PostgreSQL side, named in log lines as name. */
static int worker_init_named(ing_worker *w, int index, const char *name, const char *dsn,
                             int statement_timeout_ms)
{
    ons_pg_opts o;
    ons_pg_opts_default(&o, dsn, name);
    o.statement_timeout_ms = statement_timeout_ms;
    o.backoff_min_ms = o.backoff_max_ms = ING_PG_RETRY_MS;
    w->index = index;
    return ons_pg_init(&w->pg, &o);
}

int ing_worker_init(ing_worker *w, int index, const char *dsn, int statement_timeout_ms)
{
    char name[32];
    snprintf(name, sizeof name, "ingress job thread %d", index);
    return worker_init_named(w, index, index >= 0 ? name : "ingress finisher", dsn,
                             statement_timeout_ms);
}

void ing_worker_fini(ing_worker *w)
{
    ons_pg_fini(&w->pg);
}

PGconn *ing_worker_pg(ing_worker *w)
{
    return ons_pg_conn(&w->pg);
}

void ing_worker_pg_failed(ing_worker *w)
{
    ons_pg_check(&w->pg);
}

/* Thread entry: which pool and which worker the thread serves. */
typedef struct start_rec {
    ing_pool *pool;
    ing_worker *w;
} start_rec;

static void *run(void *arg)
{
    start_rec *sr = arg;
    ing_pool *p = sr->pool;
    ing_worker *w = sr->w;
    free(sr);
    char name[16]; /* profiles and top -H tell the threads apart */
    snprintf(name, sizeof name, "ing:job%d", w->index);
    pthread_setname_np(pthread_self(), name);
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->closing)
            pthread_cond_wait(&p->cv, &p->mu);
        job *j = p->head;
        if (!j) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        p->depth--;
        pthread_mutex_unlock(&p->mu);
        j->fn(w, j->arg);
        free(j);
    }
    return NULL;
}

int ing_pool_new(const ing_pool_opts *o, ing_pool **out)
{
    if (o->threads < 1 || o->queue_depth < 1 || !o->pg_dsn)
        return ONS_EINVAL;
    ing_pool *p = calloc(1, sizeof *p);
    if (!p)
        return ONS_ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->max_depth = o->queue_depth;
    p->pg_dsn = strdup(o->pg_dsn);
    p->threads = calloc((size_t)o->threads, sizeof *p->threads);
    p->workers = calloc((size_t)o->threads, sizeof *p->workers);
    if (!p->pg_dsn || !p->threads || !p->workers)
        goto fail;
    p->nworkers = o->threads;
    for (int i = 0; i < o->threads; i++) {
        ing_worker *w = &p->workers[i];
        if (ing_worker_init(w, i, p->pg_dsn, o->statement_timeout_ms) ||
            q_status_new(&o->redis, &w->st))
            goto fail;
        start_rec *sr = malloc(sizeof *sr);
        if (!sr)
            goto fail;
        sr->pool = p;
        sr->w = w;
        if (pthread_create(&p->threads[i], NULL, run, sr)) {
            free(sr);
            goto fail;
        }
        p->nthreads++;
    }
    *out = p;
    return 0;
fail:
    ing_pool_free(p);
    return ONS_ENOMEM;
}

void ing_pool_free(ing_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->closing = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    if (p->workers) {
        /* (every worker: one whose thread failed to start may hold some) */
        for (int i = 0; i < p->nworkers; i++) {
            q_status_free(p->workers[i].st);
            ing_worker_fini(&p->workers[i]);
        }
    }
    while (p->head) {
        job *j = p->head;
        p->head = j->next;
        free(j);
    }
    free(p->workers);
    free(p->threads);
    free(p->pg_dsn);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int ing_pool_submit(ing_pool *p, ing_job_fn fn, void *arg, int force)
{
    job *j = malloc(sizeof *j);
    if (!j)
        return ONS_ENOMEM;
    j->next = NULL;
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    if (p->closing)
        rc = ONS_ECLOSED;
    else if (!force && p->depth >= p->max_depth)
        rc = ONS_EFULL;
    if (rc) {
        pthread_mutex_unlock(&p->mu);
        free(j);
        return rc;
    }
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    p->depth++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

int ing_pool_depth(ing_pool *p)
{
    pthread_mutex_lock(&p->mu);
    int d = p->depth;
    pthread_mutex_unlock(&p->mu);
    return d;
}

/* ---- batch thread --------------------------------------------------------- */

struct ing_batcher {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void **ring;  /* cap slots: the items waiting */
    void **batch; /* max_batch slots: the round being run */
    size_t cap, head, count;
    size_t max_batch;
    int closing;
    int started;
    int worker_ready; /* w holds a PostgreSQL setup and a status store to free */
    pthread_t thread;
    ing_batch_run_fn fn;
    void *arg;
    ing_worker w;
};

static void *batcher_main(void *arg)
{
    ing_batcher *b = arg;
    pthread_setname_np(pthread_self(), "ing:batcher");
    for (;;) {
        pthread_mutex_lock(&b->mu);
        while (!b->count && !b->closing)
            pthread_cond_wait(&b->cv, &b->mu);
        size_t n = 0;
        while (b->count && n < b->max_batch) {
            b->batch[n++] = b->ring[b->head];
            b->head = (b->head + 1) % b->cap;
            b->count--;
        }
        pthread_mutex_unlock(&b->mu);
        if (n == 0)
            break; /* closing and drained */
        b->fn(&b->w, b->arg, b->batch, n);
    }
    return NULL;
}

int ing_batcher_new(const ing_pool_opts *o, const char *name, ing_batch_run_fn fn, void *arg,
                    size_t max_batch, ing_batcher **out)
{
    if (o->queue_depth < 1 || !o->pg_dsn || !fn || max_batch < 1)
        return ONS_EINVAL;
    ing_batcher *b = calloc(1, sizeof *b);
    if (!b)
        return ONS_ENOMEM;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->cap = (size_t)o->queue_depth;
    b->max_batch = max_batch;
    b->fn = fn;
    b->arg = arg;
    b->ring = malloc(b->cap * sizeof *b->ring);
    b->batch = malloc(max_batch * sizeof *b->batch);
    if (!b->ring || !b->batch ||
        worker_init_named(&b->w, -1, name, o->pg_dsn, o->statement_timeout_ms))
        goto fail;
    b->worker_ready = 1;
    if (q_status_new(&o->redis, &b->w.st) || pthread_create(&b->thread, NULL, batcher_main, b))
        goto fail;
    b->started = 1;
    *out = b;
    return 0;
fail:
    ing_batcher_free(b);
    return ONS_ENOMEM;
}

int ing_batcher_submit(ing_batcher *b, void *item)
{
    pthread_mutex_lock(&b->mu);
    int rc = 0;
    if (b->closing)
        rc = ONS_ECLOSED;
    else if (b->count >= b->cap)
        rc = ONS_EFULL;
    if (rc == 0) {
        b->ring[(b->head + b->count) % b->cap] = item;
        /* Only the first item of a round wakes the thread: the rest are
         * taken with it. */
        if (b->count++ == 0)
            pthread_cond_signal(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

int ing_batcher_depth(ing_batcher *b)
{
    pthread_mutex_lock(&b->mu);
    int d = (int)b->count;
    pthread_mutex_unlock(&b->mu);
    return d;
}

void ing_batcher_free(ing_batcher *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    b->closing = 1;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    if (b->started)
        pthread_join(b->thread, NULL);
    q_status_free(b->w.st);
    if (b->worker_ready)
        ing_worker_fini(&b->w);
    free(b->ring);
    free(b->batch);
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}
