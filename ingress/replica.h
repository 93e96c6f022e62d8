/*
 * replica.h - reads that may come from the PostgreSQL read replica.
 *
 * Ticket history and the event view read through
 * ing_read_query(): it runs the statement on the replica (pg.read_dsn) when
 * the replica is fresh enough, else on the job thread's primary connection.
 * Fresh enough means, checked on the replica at most every
 * ING_REPLICA_CHECK_MS per job thread: it is in recovery and its WAL
 * receiver is streaming, and either it has replayed all the WAL it received
 * or its last replayed transaction is at most pg.read_max_lag_ms old. A
 * replica that is down, cut off from the primary or replaying slowly is
 * skipped until a check finds it fresh again; a read never fails because of
 * the replica.
 */
#ifndef ONSALE_INGRESS_REPLICA_H
#define ONSALE_INGRESS_REPLICA_H

#include <libpq-fe.h>

#include "common/metrics.h"
#include "ingress/pool.h"

#define ING_REPLICA_CHECK_MS 100

/* Sets the replica's connection string ("" = no replica: every read goes to
 * the primary), the freshness bound and the metrics
 * (onsale_ingress_replica_lag_seconds, onsale_ingress_reads_total{target}).
 * Call once before the job threads start; m may be NULL. */
void ing_replica_init(const char *dsn, long long max_lag_ms, ons_metrics *m);

/* Like ing_worker_query(), on the replica when it is fresh enough. Job
 * threads only (each keeps its own replica connection). */
PGresult *ing_read_query(ing_worker *w, const char *sql, int nparams, const char *const *params);

#endif
