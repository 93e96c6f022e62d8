/* monitor.c - dependency checks and watermarks on a background thread; see
 * monitor.h. */
#include "common/clock.h"
#include "ingress/monitor.h"
#include "common/err.h"
#include "common/log.h"
#include "common/pg.h"
#include "queue/msg.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ing_monitor {
    q_producer *producer;
    int n;
    int interval_ms;
    q_status *st;
    ons_pg pg; /* no backoff of its own: the check interval is the retry period */
    atomic_int redis_ok, pg_ok, kafka_ok;
    _Atomic int64_t last_ms;
    _Atomic int64_t kafka_down_since;     /* monotonic ms of a failed streak's first check; 0: up */
    _Atomic int64_t *high[Q_TOPIC_COUNT]; /* per lane, per partition */
    atomic_int stop;
    pthread_t thread;
    int started;
};

/* 1 when PostgreSQL answers a trivial query, connecting first if needed. */
static int check_pg(ing_monitor *m)
{
    return ons_pg_query(&m->pg, PGRES_TUPLES_OK, "health check", "SELECT 1", 0, NULL, NULL) == 0;
}

static void *monitor_main(void *arg)
{
    ing_monitor *m = arg;
    while (!atomic_load(&m->stop)) {
        int64_t t0 = ons_mono_ms();
        atomic_store(&m->redis_ok, q_status_ping(m->st) == 0);
        atomic_store(&m->pg_ok, check_pg(m));
        int np = 0;
        int kok = q_producer_partitions(m->producer, 1000, &np) == 0;
        atomic_store(&m->kafka_ok, kok);
        if (kok)
            atomic_store(&m->kafka_down_since, 0);
        else if (atomic_load(&m->kafka_down_since) == 0)
            atomic_store(&m->kafka_down_since, t0);
        for (int lane = 0; lane < Q_TOPIC_COUNT; lane++)
            for (int p = 0; kok && p < m->n && !atomic_load(&m->stop); p++) {
                int64_t lo, hi;
                if (q_producer_watermarks(m->producer, lane, p, 1000, &lo, &hi) == 0)
                    atomic_store(&m->high[lane][p], hi);
            }
        atomic_store(&m->last_ms, ons_mono_ms());
        int64_t left = m->interval_ms - (ons_mono_ms() - t0);
        while (left > 0 && !atomic_load(&m->stop)) {
            int step = left > 100 ? 100 : (int)left;
            struct timespec ts = {0, (long)step * 1000000L};
            nanosleep(&ts, NULL);
            left -= step;
        }
    }
    return NULL;
}

int ing_monitor_new(q_producer *producer, int partitions, const q_status_opts *redis,
                    const char *pg_dsn, int interval_ms, ing_monitor **out)
{
    ing_monitor *m = calloc(1, sizeof *m);
    if (!m)
        return ONS_ENOMEM;
    m->producer = producer;
    m->n = partitions;
    m->interval_ms = interval_ms;
    ons_pg_opts po;
    ons_pg_opts_default(&po, pg_dsn, "ingress monitor");
    po.backoff_min_ms = 0;
    if (ons_pg_init(&m->pg, &po) || q_status_new(redis, &m->st))
        goto fail;
    for (int lane = 0; lane < Q_TOPIC_COUNT; lane++) {
        m->high[lane] = calloc((size_t)partitions, sizeof *m->high[lane]);
        if (!m->high[lane])
            goto fail;
        for (int p = 0; p < partitions; p++)
            atomic_store(&m->high[lane][p], -1);
    }
    if (pthread_create(&m->thread, NULL, monitor_main, m))
        goto fail;
    m->started = 1;
    *out = m;
    return 0;
fail:
    ing_monitor_free(m);
    return ONS_ENOMEM;
}

void ing_monitor_stop(ing_monitor *m)
{
    if (!m)
        return;
    atomic_store(&m->stop, 1);
    if (m->started)
        pthread_join(m->thread, NULL);
    m->started = 0;
}

void ing_monitor_free(ing_monitor *m)
{
    if (!m)
        return;
    ing_monitor_stop(m);
    q_status_free(m->st);
    ons_pg_fini(&m->pg);
    for (int lane = 0; lane < Q_TOPIC_COUNT; lane++)
        free(m->high[lane]);
    free(m);
}

void ing_monitor_health(ing_monitor *m, ing_health *out)
{
    out->redis_ok = atomic_load(&m->redis_ok);
    out->pg_ok = atomic_load(&m->pg_ok);
    out->kafka_ok = atomic_load(&m->kafka_ok);
    int64_t t = atomic_load(&m->last_ms);
    out->age_ms = t ? ons_mono_ms() - t : -1;
    int64_t down = atomic_load(&m->kafka_down_since);
    out->kafka_down_ms = down ? ons_mono_ms() - down : 0;
}

int64_t ing_monitor_high(ing_monitor *m, int lane, int32_t p)
{
    return lane >= 0 && lane < Q_TOPIC_COUNT && p >= 0 && p < m->n ? atomic_load(&m->high[lane][p])
                                                                   : -1;
}
