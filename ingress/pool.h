/*
 * pool.h - the job threads of ingress: every Redis, PostgreSQL and Kafka call
 * of a request runs here, never on nng's task threads.
 *
 * A fixed number of threads take jobs from one bounded FIFO queue. Each
 * thread owns an ing_worker: its own PostgreSQL connection and its own Redis
 * status-store connection, used by that thread only, so no job ever shares
 * a connection. A full queue refuses new work (ONS_EFULL → 503), except for
 * continuations (submitted with force), which finish work already admitted
 * and are bounded by the producer's in-flight limit.
 */
#ifndef ONSALE_INGRESS_POOL_H
#define ONSALE_INGRESS_POOL_H

#include <libpq-fe.h>
#include <stdint.h>

#include "common/pg.h"
#include "queue/status.h"

typedef struct ing_pool ing_pool;

/* A job thread's private connections. */
typedef struct ing_worker {
    int index;
    ons_pg pg;    /* reconnects at most once a second (ING_PG_RETRY_MS) */
    q_status *st; /* reconnects by itself on the next call */
} ing_worker;

/* How long a job thread waits between connect attempts while PostgreSQL is
 * unreachable. */
#define ING_PG_RETRY_MS 1000

typedef void (*ing_job_fn)(ing_worker *w, void *arg);

typedef struct ing_pool_opts {
    int threads;
    int queue_depth;
    const char *pg_dsn;
    int statement_timeout_ms; /* set on every connection; 0 = server default */
    q_status_opts redis;
} ing_pool_opts;

/* Starts the threads. *out is owned by the caller (ing_pool_free). Returns 0,
 * ONS_EINVAL or ONS_ENOMEM. */
int ing_pool_new(const ing_pool_opts *o, ing_pool **out);

/* Stops the threads after the queued jobs ran, closes the connections and
 * frees the pool. */
void ing_pool_free(ing_pool *p);

/* Queues fn(worker, arg). Returns 0 (fn will run exactly once), ONS_EFULL
 * (queue at its depth and !force), ONS_ECLOSED or ONS_ENOMEM; on an error fn
 * never runs and arg stays the caller's. Any thread. */
int ing_pool_submit(ing_pool *p, ing_job_fn fn, void *arg, int force);

/* Jobs waiting in the queue (not counting those running). */
int ing_pool_depth(ing_pool *p);

/* Sets up w's PostgreSQL side (not connected yet; the first ing_worker_pg()
 * connects): dsn, the statement timeout of its sessions (0: the server's),
 * index for log lines. Returns 0, ONS_EINVAL or ONS_ENOMEM. The pool does
 * this for its threads; other threads that run jobs (the finisher) call it
 * for their own ing_worker and ing_worker_fini() at the end. */
int ing_worker_init(ing_worker *w, int index, const char *dsn, int statement_timeout_ms);

/* Closes w's PostgreSQL connection (not its status store). */
void ing_worker_fini(ing_worker *w);

/* Returns the worker's PostgreSQL connection, reconnecting if it is broken
 * (at most once a second), or NULL when PostgreSQL is unreachable. Job
 * threads only. */
PGconn *ing_worker_pg(ing_worker *w);

/* Tells the worker its connection failed (a statement returned a
 * connection-level error): the next ing_worker_pg() reconnects. */
void ing_worker_pg_failed(ing_worker *w);

/* A batch thread: one thread with its own ing_worker (Redis, PostgreSQL)
 * that takes every item queued since its last round, up to max_batch, and
 * hands them to fn at once, so their Redis calls can share one pipelined
 * round trip and their Kafka sends arrive together. Under load a round
 * gathers what arrived while the previous one ran; idle, an item runs at
 * once (no added wait). fn must finish or hand on every item. */
typedef struct ing_batcher ing_batcher;
typedef void (*ing_batch_run_fn)(ing_worker *w, void *arg, void **items, size_t n);

/* o->queue_depth bounds the items waiting; o->threads is ignored (one
 * thread); name names its PostgreSQL sessions in logs. Returns 0,
 * ONS_EINVAL or ONS_ENOMEM. */
int ing_batcher_new(const ing_pool_opts *o, const char *name, ing_batch_run_fn fn, void *arg,
                    size_t max_batch, ing_batcher **out);

/* Queues item. Returns 0 (fn will see it exactly once), ONS_EFULL (queue
 * at its depth) or ONS_ECLOSED; on an error the item stays the caller's.
 * Any thread. */
int ing_batcher_submit(ing_batcher *b, void *item);

/* Items waiting (not counting the round being run). */
int ing_batcher_depth(ing_batcher *b);

/* Stops the thread after the queued items ran, closes its connections and
 * frees it. NULL is a no-op. */
void ing_batcher_free(ing_batcher *b);

#endif
