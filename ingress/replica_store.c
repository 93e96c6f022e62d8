/* replica_store.c - the read replica's statements; see replica_store.h. */
#include "ingress/replica_store.h"

#include "common/err.h"
#include "ingress/pg_row.h"
#include "common/log.h"
#include "ingress/replica.h"

/* 0 when the replica replayed all it received, else the age of its last
 * replayed transaction; 1e9 when it is not a streaming standby. */
static const char *const lag_sql =
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0 "
    "  WHEN coalesce((SELECT status FROM pg_stat_wal_receiver), '') <> 'streaming' THEN 1e9 "
    "  WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "  ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 1e9) END";

int ing_replica_lag(ons_pg *pg, double *lag_s)
{
    PGresult *res;
    int rc = ons_pg_query(pg, PGRES_TUPLES_OK, "read replica lag", lag_sql, 0, NULL, &res);
    if (rc)
        return rc;
    if (PQntuples(res) != 1 || ons_pg_get_f64(res, 0, 0, lag_s))
        rc = ONS_EPARSE;
    PQclear(res);
    return rc;
}

PGresult *ing_read_query(ing_worker *w, const char *sql, int nparams, const char *const *params)
{
    ons_pg *rp = ing_replica_fresh();
    if (rp) {
        PGresult *res = PQexecParams(rp->conn, sql, nparams, NULL, params, NULL, NULL, 0);
        /* An empty answer is confirmed on the primary: what was just written
         * (an event created a moment ago) may not be replayed yet, and a
         * 404 must not depend on which copy answered. */
        if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0) {
            ing_replica_count(1);
            return res;
        }
        if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
            /* A replica that fails mid-read (restart, conflict with recovery)
             * is skipped until the next check; the read goes to the primary. */
            ons_log_warn("postgres read replica: %s",
                         res ? PQresultErrorMessage(res) : "no result");
            ing_replica_failed();
        }
        PQclear(res);
    }
    ing_replica_count(0);
    return ing_worker_query(w, sql, nparams, params);
}
