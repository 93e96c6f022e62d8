/*
 * replica_store.h - the statements of the read replica (replica.h decides
 * when it is used): its replay lag, and a read that prefers it. For
 * ingress's data modules only (through pg_row.h's ing_pg_query_i64); no
 * other ingress file sees a PGresult.
 */
#ifndef ONSALE_INGRESS_REPLICA_STORE_H
#define ONSALE_INGRESS_REPLICA_STORE_H

#include <libpq-fe.h>

#include "common/pg.h"
#include "ingress/pool.h"

/* The replica's lag in seconds into *lag_s: 0 when it replayed all it
 * received (or is no standby at all), else the age of its last replayed
 * transaction; 1e9 when it is not a streaming standby. Returns 0,
 * ONS_EUNAVAIL (unreachable: logged once per outage by common/pg), ONS_EDB
 * (the statement failed) or ONS_EPARSE (the answer did not read). */
int ing_replica_lag(ons_pg *pg, double *lag_s);

/* Like ing_worker_query(), on the replica when ing_replica_fresh() gives
 * one. An empty answer from the replica is asked again of the primary, and
 * a replica that fails mid-read is skipped (ing_replica_failed) and the
 * read goes to the primary. Job threads only. */
PGresult *ing_read_query(ing_worker *w, const char *sql, int nparams, const char *const *params);

#endif
