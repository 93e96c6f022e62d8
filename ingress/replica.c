/* replica.c - whether reads may come from the PostgreSQL replica; see
 * replica.h (its statements are in replica_store.c). */
#include "ingress/replica.h"

#include "common/clock.h"
#include "common/log.h"
#include "ingress/replica_store.h"

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
static ons_pg *fresh_replica(reader *r)
{
    double now = ons_mono_s();
    if (r->checked_at > 0 && now - r->checked_at < ING_REPLICA_CHECK_MS / 1000.0)
        return r->fresh ? &r->pg : NULL;
    r->checked_at = now;
    r->fresh = 0;
    /* Unreachable: logged once per outage by ons_pg; reads go to the primary. */
    double lag = 1e9;
    if (ing_replica_lag(&r->pg, &lag))
        lag = 1e9;
    if (lag_gauge)
        ons_gauge_set(lag_gauge, lag);
    r->fresh = lag <= max_lag_s;
    return r->fresh ? &r->pg : NULL;
}

ons_pg *ing_replica_fresh(void)
{
    reader *r = replica_dsn[0] ? this_reader() : NULL;
    return r ? fresh_replica(r) : NULL;
}

void ing_replica_failed(void)
{
    reader *r = replica_dsn[0] ? pthread_getspecific(conn_key) : NULL;
    if (r)
        r->fresh = 0;
}

void ing_replica_count(int replica)
{
    ons_counter *c = reads[replica ? 0 : 1];
    if (c && replica_dsn[0])
        ons_counter_add(c, 1);
}
