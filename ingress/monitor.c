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
    atomic_int topic_n;   /* the topic's partition count as last read; 0: not yet */
    atomic_int control_n; /* the control lane's, as last read; 0: not yet */
    _Atomic int64_t last_ms;
    _Atomic int64_t kafka_down_since;     /* monotonic ms of a failed streak's first check; 0: up */
    _Atomic int64_t *high[Q_TOPIC_COUNT]; /* per lane, per partition */
    /* The last ING_MONITOR_ROUNDS rounds' watermarks, for "settled since"
     * (ing_monitor_high_since): round r % ROUNDS started at round_wall_ms
     * and read round_high[(r % ROUNDS) * Q_TOPIC_COUNT * n + lane * n + p]
     * (-1: not read). rounds counts the rounds kept so far. */
    pthread_mutex_t ring_mu;
    int64_t round_wall_ms[ING_MONITOR_ROUNDS];
    int64_t *round_high;
    int64_t rounds;
    int64_t *round_read; /* the running round's reads, [lane * n + p]; monitor thread only */
    atomic_int stop;
    pthread_t thread;
    int started;
};

/* 1 when PostgreSQL answers a trivial query, connecting first if needed. */
static int check_pg(ing_monitor *m)
{
    return ons_pg_query(&m->pg, PGRES_TUPLES_OK, "health check", "SELECT 1", 0, NULL, NULL) == 0;
}

/* Keeps the round that started at wall_ms (its watermarks are the latest
 * ones of m->high now) in the ring. */
static void keep_round(ing_monitor *m, int64_t wall_ms)
{
    pthread_mutex_lock(&m->ring_mu);
    size_t slot = (size_t)(m->rounds % ING_MONITOR_ROUNDS);
    int64_t *h = m->round_high + slot * Q_TOPIC_COUNT * (size_t)m->n;
    for (int lane = 0; lane < Q_TOPIC_COUNT; lane++)
        for (int p = 0; p < m->n; p++)
            h[lane * m->n + p] = m->round_read[lane * m->n + p];
    m->round_wall_ms[slot] = wall_ms;
    m->rounds++;
    pthread_mutex_unlock(&m->ring_mu);
}

/* Keeps the topics' counts as the brokers told them, and says when they
 * change. Grown topics (docs/scaling.md "Growing the topics") are sound:
 * every event keeps its home partition, and this node keeps watching and
 * creating events on its m->n until restarted. Fewer partitions than m->n
 * (kafka.partitions set by hand above the count), or a control lane not
 * co-partitioned with the intents topic, are errors: records of an event
 * homed on a missing partition cannot be sent. */
static void note_partitions(ing_monitor *m, int np, int nc)
{
    int was = atomic_exchange(&m->topic_n, np), was_c = atomic_exchange(&m->control_n, nc);
    if (was == np && was_c == nc)
        return;
    if (np < m->n || (nc > 0 && nc < m->n))
        ons_log_error("this node works with %d partitions but the topic has %d and its control "
                      "lane %d: records of events homed on the missing ones cannot be sent, and "
                      "no stale claim or unknown outcome is settled until they agree",
                      m->n, np, nc);
    else if (nc > 0 && nc != np)
        ons_log_error("the topic has %d partitions but its control lane %d: grow the smaller "
                      "to match (they must stay co-partitioned)",
                      np, nc);
    else if (np != m->n)
        ons_log_warn("the topics have grown to %d partitions; this node watches and creates "
                     "events on the first %d until it is restarted (events keep their home "
                     "partitions either way)",
                     np, m->n);
}

static void *monitor_main(void *arg)
{
    ing_monitor *m = arg;
    while (!atomic_load(&m->stop)) {
        int64_t t0 = ons_mono_ms(), wall0 = ons_wall_ms();
        atomic_store(&m->redis_ok, q_status_ping(m->st) == 0);
        atomic_store(&m->pg_ok, check_pg(m));
        int np = 0, nc = 0;
        int kok = q_producer_partitions(m->producer, 1000, &np) == 0;
        atomic_store(&m->kafka_ok, kok);
        if (kok) {
            atomic_store(&m->kafka_down_since, 0);
            if (q_producer_partitions_of(m->producer, Q_TOPIC_CONTROL, 1000, &nc) != 0)
                nc = 0; /* not known this round: judged on the intents topic alone */
            note_partitions(m, np, nc);
        } else if (atomic_load(&m->kafka_down_since) == 0)
            atomic_store(&m->kafka_down_since, t0);
        /* After one watermark query fails, the round reads no more: with
         * the broker dying, librdkafka can hold each query well past its
         * timeout (a request queued for a connection that never comes), and
         * a round held for every partition in turn left /readyz stale for
         * over 45 s (test_disk_full). The partitions not read count as
         * failed reads (keep_round), as the one that failed does. */
        int reading = kok;
        for (int lane = 0; lane < Q_TOPIC_COUNT; lane++)
            for (int p = 0; p < m->n; p++) {
                int64_t lo, hi = -1;
                if (reading && !atomic_load(&m->stop) &&
                    q_producer_watermarks(m->producer, lane, p, 1000, &lo, &hi) == 0)
                    atomic_store(&m->high[lane][p], hi);
                else {
                    hi = -1;
                    reading = 0;
                }
                m->round_read[lane * m->n + p] = hi;
            }
        keep_round(m, wall0);
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
    pthread_mutex_init(&m->ring_mu, NULL);
    m->producer = producer;
    m->n = partitions;
    m->interval_ms = interval_ms;
    ons_pg_opts po;
    ons_pg_opts_default(&po, pg_dsn, "ingress monitor");
    po.backoff_min_ms = 0;
    if (ons_pg_init(&m->pg, &po) || q_status_new(redis, &m->st))
        goto fail;
    size_t cells = (size_t)Q_TOPIC_COUNT * (size_t)partitions;
    m->round_high = malloc(ING_MONITOR_ROUNDS * cells * sizeof *m->round_high);
    m->round_read = malloc(cells * sizeof *m->round_read);
    if (!m->round_high || !m->round_read)
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

int ing_monitor_partitions_differ(ing_monitor *m)
{
    int np = atomic_load(&m->topic_n);
    return np > 0 && np != m->n ? np : 0;
}

int ing_monitor_topic_partitions(ing_monitor *m)
{
    return atomic_load(&m->topic_n);
}

int ing_monitor_home_partitions(ing_monitor *m)
{
    int np = atomic_load(&m->topic_n), nc = atomic_load(&m->control_n);
    return np > 0 && nc > 0 ? (np < nc ? np : nc) : 0;
}

int ing_monitor_partitions_short(ing_monitor *m)
{
    int np = atomic_load(&m->topic_n), nc = atomic_load(&m->control_n);
    return (np > 0 && np < m->n) || (nc > 0 && (nc < m->n || (np > 0 && nc != np)));
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
    free(m->round_high);
    free(m->round_read);
    pthread_mutex_destroy(&m->ring_mu);
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

int64_t ing_monitor_high_since(ing_monitor *m, int lane, int32_t p, int64_t since_wall_ms,
                               int64_t quiet_ms)
{
    if (lane < 0 || lane >= Q_TOPIC_COUNT || p < 0 || p >= m->n)
        return -1;
    int64_t high = -1, failed = INT64_MIN / 2;
    pthread_mutex_lock(&m->ring_mu);
    int64_t first = m->rounds > ING_MONITOR_ROUNDS ? m->rounds - ING_MONITOR_ROUNDS : 0;
    for (int64_t r = first; r < m->rounds && high < 0; r++) {
        size_t slot = (size_t)(r % ING_MONITOR_ROUNDS);
        int64_t wall = m->round_wall_ms[slot];
        int64_t h = m->round_high[(slot * Q_TOPIC_COUNT + (size_t)lane) * (size_t)m->n + (size_t)p];
        if (h < 0)
            failed = wall;
        else if (wall > since_wall_ms && wall > failed + quiet_ms)
            high = h;
    }
    pthread_mutex_unlock(&m->ring_mu);
    return high;
}
