/* replica.c - reads from the PostgreSQL replica while it is fresh; see replica.h. */
#include "ingress/replica.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/pg.h"

#include <pthread.h>
#include <stdlib.h>

static const char *replica_dsn = "";
static double max_lag_s = 1.0;
static ons_gauge *lag_gauge;
static ons_counter *reads[2]; /* replica, primary */
static pthread_key_t conn_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

/* Per job thread: its replica connection and the last freshness verdict.
 * Closed by the thread-exit destructor of conn_key. */
typedef struct reader {
    ons_pg pg;         /* no backoff of its own: checks come every ING_REPLICA_CHECK_MS */
    double checked_at; /* monotonic seconds; 0 = never */
    int fresh;
} reader;

static void reader_free(void *p)
{
    reader *r = p;
    if (r)
        ons_pg_fini(&r->pg);
    free(r);
}

static void make_key(void)
{
    pthread_key_create(&conn_key, reader_free);
}

void ing_replica_init(const char *dsn, long long max_lag_ms, ons_metrics *m)
{
    pthread_once(&key_once, make_key);
    replica_dsn = dsn ? dsn : "";
    max_lag_s = (double)max_lag_ms / 1000.0;
    if (m && replica_dsn[0]) {
        lag_gauge = ons_metrics_gauge(m, "onsale_ingress_replica_lag_seconds",
                                      "Replay lag of the read replica at the last check "
                                      "(unreachable or not streaming: 1e9).",
                                      "");
        reads[0] =
            ons_metrics_counter(m, "onsale_ingress_reads_total",
                                "Replica-eligible reads by where they ran.", "target=\"replica\"");
        reads[1] =
            ons_metrics_counter(m, "onsale_ingress_reads_total",
                                "Replica-eligible reads by where they ran.", "target=\"primary\"");
    }
}

/* The replica's lag in seconds: 0 when it replayed all it received, else the
 * age of its last replayed transaction; 1e9 when it is not a streaming
 * standby. */
static const char *const lag_sql =
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0 "
    "  WHEN coalesce((SELECT status FROM pg_stat_wal_receiver), '') <> 'streaming' THEN 1e9 "
    "  WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "  ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 1e9) END";

static reader *this_reader(void)
{
    reader *r = pthread_getspecific(conn_key);
    if (!r) {
        ons_pg_opts po;
        ons_pg_opts_default(&po, replica_dsn, "ingress replica reader");
        po.backoff_min_ms = 0;
        r = calloc(1, sizeof *r);
        if (r && (ons_pg_init(&r->pg, &po) || pthread_setspecific(conn_key, r))) {
            reader_free(r);
            r = NULL;
        }
    }
    return r;
}

/* Reconnects when needed and re-checks freshness every ING_REPLICA_CHECK_MS.
 * Returns the connection to read from, or NULL for the primary. */
static PGconn *fresh_replica(reader *r)
{
    double now = ons_mono_s();
    if (r->checked_at > 0 && now - r->checked_at < ING_REPLICA_CHECK_MS / 1000.0)
        return r->fresh ? r->pg.conn : NULL;
    r->checked_at = now;
    r->fresh = 0;
    /* Unreachable: logged once per outage by ons_pg; reads go to the primary. */
    PGresult *res;
    double lag = 1e9;
    if (ons_pg_query(&r->pg, PGRES_TUPLES_OK, "read replica lag", lag_sql, 0, NULL, &res) == 0) {
        if (PQntuples(res) != 1 || ons_pg_get_f64(res, 0, 0, &lag))
            lag = 1e9;
        PQclear(res);
    }
    if (lag_gauge)
        ons_gauge_set(lag_gauge, lag);
    r->fresh = lag <= max_lag_s;
    return r->fresh ? r->pg.conn : NULL;
}

PGresult *ing_read_query(ing_worker *w, const char *sql, int nparams, const char *const *params)
{
    reader *r = replica_dsn[0] ? this_reader() : NULL;
    PGconn *pg = r ? fresh_replica(r) : NULL;
    if (pg) {
        PGresult *res = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
        /* An empty answer is confirmed on the primary: what was just written
         * (an event created a moment ago) may not be replayed yet, and a
         * 404 must not depend on which copy answered. */
        if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0) {
            if (reads[0])
                ons_counter_add(reads[0], 1);
            return res;
        }
        if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
            /* A replica that fails mid-read (restart, conflict with recovery)
             * is skipped until the next check; the read goes to the primary. */
            ons_log_warn("postgres read replica: %s",
                         res ? PQresultErrorMessage(res) : "no result");
            r->fresh = 0;
        }
        PQclear(res);
    }
    if (reads[1] && replica_dsn[0])
        ons_counter_add(reads[1], 1);
    return ing_worker_query(w, sql, nparams, params);
}
