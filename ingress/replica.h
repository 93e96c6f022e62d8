/*
 * replica.h - whether reads may come from the PostgreSQL read replica.
 *
 * Ticket history and the event view read through ing_read_query()
 * (replica_store.h): it runs the statement on the replica (pg.read_dsn) when
 * ing_replica_fresh() says the replica is fresh enough, else on the job
 * thread's primary connection. Fresh enough means, checked on the replica at
 * most every ING_REPLICA_CHECK_MS per job thread: it is in recovery and its
 * WAL receiver is streaming, and either it has replayed all the WAL it
 * received or its last replayed transaction is at most pg.read_max_lag_ms
 * old. A replica that is down, cut off from the primary or replaying slowly
 * is skipped until a check finds it fresh again; a read never fails because
 * of the replica.
 */
#ifndef ONSALE_INGRESS_REPLICA_H
#define ONSALE_INGRESS_REPLICA_H

#include "common/metrics.h"
#include "common/pg.h"

#define ING_REPLICA_CHECK_MS 100

/* Sets the replica's connection string ("" = no replica: every read goes to
 * the primary), the freshness bound and the metrics
 * (onsale_ingress_replica_lag_seconds, onsale_ingress_reads_total{target}).
 * Call once before the job threads start; m may be NULL. */
void ing_replica_init(const char *dsn, long long max_lag_ms, ons_metrics *m);

/* The calling job thread's replica connection when the replica is fresh
 * enough (re-checked every ING_REPLICA_CHECK_MS), or NULL: read from the
 * primary (no replica configured, unreachable, lagging, out of memory).
 * Owned by the thread; closed when it exits. Job threads only. */
ons_pg *ing_replica_fresh(void);

/* After a read the replica failed (restart, conflict with recovery): the
 * calling thread skips it until its next check. */
void ing_replica_failed(void);

/* Counts one replica-eligible read by where it ran (replica 1: the
 * replica, 0: the primary). Nothing when no replica is configured. */
void ing_replica_count(int replica);

#endif
