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

#include "queue/status.h"

typedef struct ing_pool ing_pool;

/* A job thread's private connections. */
typedef struct ing_worker {
    int index;
    const char *pg_dsn;
    PGconn *pg;          /* NULL or broken: ing_worker_pg() reconnects */
    q_status *st;        /* reconnects by itself on the next call */
    int64_t pg_retry_ms; /* no reconnect attempt before this time */
    int statement_timeout_ms;
} ing_worker;

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

/* Returns the worker's PostgreSQL connection, reconnecting if it is broken
 * (at most once a second), or NULL when PostgreSQL is unreachable. Job
 * threads only. */
PGconn *ing_worker_pg(ing_worker *w);

/* Tells the worker its connection failed (a statement returned a
 * connection-level error): the next ing_worker_pg() reconnects. */
void ing_worker_pg_failed(ing_worker *w);

/* Runs one statement with text parameters (NULL = SQL NULL) on the worker's
 * connection. Returns the result (the caller PQclears it; check its status),
 * or NULL when PostgreSQL is unreachable. Connection failures are noted so
 * the next call reconnects. */
PGresult *ing_worker_query(ing_worker *w, const char *sql, int nparams, const char *const *params);

#endif
