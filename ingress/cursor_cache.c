/* cursor_cache.c - the served-cursor refresh thread; see cursor_cache.h. */
#include "common/clock.h"
#include "ingress/cache_store.h"
#include "ingress/cursor_cache.h"
#include "common/err.h"
#include "common/log.h"
#include "common/pg.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { DRAIN_VALUES = 14 };

struct ing_cursors {
    int n;
    int refresh_ms;
    _Atomic int64_t *served;
    _Atomic int64_t *rate_milli; /* rate * 1000, to keep it in an integer atomic */
    _Atomic int64_t *moved_ms;   /* monotonic ms when served last rose; 0 never */
    _Atomic int64_t last_ok_ms;  /* monotonic ms of the last good refresh; 0 never */
    /* Each partition's drain, DRAIN_VALUES values under a sequence count
     * (odd while the refresh thread writes them): a reader takes all of
     * one publication. */
    _Atomic uint32_t *drain_seq;
    _Atomic int64_t (*drain)[DRAIN_VALUES]; /* q_status_drain's fields in order, the ms ones
                                               of double in ns */
    q_status_drain *tmp_drain;
    atomic_int stop;
    q_status *st;
    ons_pg pg;          /* no backoff of its own: pg_next_ms gates it */
    int64_t pg_next_ms; /* no PostgreSQL read before this (once a second) */
    int64_t *tmp_served;
    double *tmp_rate;
    pthread_t thread;
    int started;
};

void ing_cursors_raise(ing_cursors *c, int32_t p, int64_t served)
{
    if (p < 0 || p >= c->n)
        return;
    int64_t cur = atomic_load(&c->served[p]);
    while (served > cur && !atomic_compare_exchange_weak(&c->served[p], &cur, served))
        ;
    if (served > cur)
        atomic_store(&c->moved_ms[p], ons_mono_ns() / 1000000);
}

static void drain_store(ing_cursors *c, int32_t p, const q_status_drain *d)
{
    const int64_t v[DRAIN_VALUES] = {d->served,
                                     d->served_at_ms,
                                     (int64_t)(d->batch_ms * 1e6),
                                     (int64_t)(d->record_ms * 1e6),
                                     d->batch_max,
                                     d->window_ms,
                                     d->applying,
                                     d->applying_end,
                                     d->applying_ctl,
                                     (int64_t)(d->ctl_ms * 1e6),
                                     d->ctl_left,
                                     d->ctl_queued,
                                     d->polled_by_ms,
                                     (int64_t)(d->next_ms * 1e6)};
    uint32_t seq = atomic_load_explicit(&c->drain_seq[p], memory_order_relaxed);
    atomic_store_explicit(&c->drain_seq[p], seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    for (int i = 0; i < DRAIN_VALUES; i++)
        atomic_store_explicit(&c->drain[p][i], v[i], memory_order_relaxed);
    atomic_store_explicit(&c->drain_seq[p], seq + 2, memory_order_release);
}

q_status_drain ing_cursors_drain(ing_cursors *c, int32_t p)
{
    q_status_drain d = Q_STATUS_DRAIN_UNKNOWN;
    if (p < 0 || p >= c->n)
        return d;
    for (;;) {
        uint32_t a = atomic_load_explicit(&c->drain_seq[p], memory_order_acquire);
        int64_t v[DRAIN_VALUES];
        for (int i = 0; i < DRAIN_VALUES; i++)
            v[i] = atomic_load_explicit(&c->drain[p][i], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (!(a & 1) && atomic_load_explicit(&c->drain_seq[p], memory_order_relaxed) == a) {
            d = (q_status_drain){v[0],
                                 v[1],
                                 (double)v[2] / 1e6,
                                 (double)v[3] / 1e6,
                                 v[4],
                                 v[5],
                                 v[6],
                                 v[7],
                                 v[8],
                                 (double)v[9] / 1e6,
                                 v[10],
                                 v[11],
                                 v[12],
                                 (double)v[13] / 1e6};
            return d;
        }
    }
}

int64_t ing_cursors_moved_ago_ms(ing_cursors *c, int32_t p)
{
    int64_t at = p >= 0 && p < c->n ? atomic_load(&c->moved_ms[p]) : 0;
    return at > 0 ? ons_mono_ns() / 1000000 - at : -1;
}

/* Fills partitions Redis did not know from partition_owner.next_offset. */
static void from_postgres(ing_cursors *c)
{
    for (int p = 0; p < c->n; p++)
        c->tmp_served[p] = -1;
    if (ing_cache_next_offsets(&c->pg, c->tmp_served, c->n) != 0)
        return;
    for (int p = 0; p < c->n; p++)
        if (c->tmp_served[p] >= 0)
            ing_cursors_raise(c, p, c->tmp_served[p]);
}

static void *refresh_main(void *arg)
{
    ing_cursors *c = arg;
    while (!atomic_load(&c->stop)) {
        int missing = 0;
        if (q_status_read_cursors(c->st, c->tmp_served, c->tmp_rate, c->tmp_drain, c->n) == 0) {
            for (int p = 0; p < c->n; p++) {
                drain_store(c, p, &c->tmp_drain[p]);
                if (c->tmp_served[p] < 0)
                    missing = 1;
                else
                    ing_cursors_raise(c, p, c->tmp_served[p]);
                atomic_store(&c->rate_milli[p], (int64_t)(c->tmp_rate[p] * 1000.0));
            }
            atomic_store(&c->last_ok_ms, ons_mono_ms());
        } else {
            missing = 1;
        }
        int64_t now = ons_mono_ms();
        if (missing && now >= c->pg_next_ms) {
            from_postgres(c);
            c->pg_next_ms = now + 1000;
        }
        struct timespec ts = {c->refresh_ms / 1000, (long)(c->refresh_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

int ing_cursors_new(int partitions, const q_status_opts *redis, const char *pg_dsn, int refresh_ms,
                    ing_cursors **out)
{
    if (partitions < 1 || refresh_ms < 1)
        return ONS_EINVAL;
    ing_cursors *c = calloc(1, sizeof *c);
    if (!c)
        return ONS_ENOMEM;
    c->n = partitions;
    c->refresh_ms = refresh_ms;
    c->served = calloc((size_t)partitions, sizeof *c->served);
    c->rate_milli = calloc((size_t)partitions, sizeof *c->rate_milli);
    c->moved_ms = calloc((size_t)partitions, sizeof *c->moved_ms);
    c->tmp_served = calloc((size_t)partitions, sizeof *c->tmp_served);
    c->tmp_rate = calloc((size_t)partitions, sizeof *c->tmp_rate);
    c->tmp_drain = calloc((size_t)partitions, sizeof *c->tmp_drain);
    c->drain_seq = calloc((size_t)partitions, sizeof *c->drain_seq);
    c->drain = calloc((size_t)partitions, sizeof *c->drain);
    ons_pg_opts po;
    ons_pg_opts_default(&po, pg_dsn, "ingress cursors");
    po.backoff_min_ms = 0;
    if (!c->served || !c->rate_milli || !c->moved_ms || !c->tmp_served || !c->tmp_rate ||
        !c->tmp_drain || !c->drain_seq || !c->drain || ons_pg_init(&c->pg, &po) ||
        q_status_new(redis, &c->st))
        goto fail;
    for (int p = 0; p < partitions; p++) {
        atomic_store(&c->served[p], -1);
        atomic_store(&c->drain[p][0], -1);
        atomic_store(&c->drain[p][6], -1);
        atomic_store(&c->drain[p][10], -1);
        atomic_store(&c->drain[p][11], -1);
    }
    if (pthread_create(&c->thread, NULL, refresh_main, c))
        goto fail;
    c->started = 1;
    *out = c;
    return 0;
fail:
    ing_cursors_free(c);
    return ONS_ENOMEM;
}

void ing_cursors_free(ing_cursors *c)
{
    if (!c)
        return;
    atomic_store(&c->stop, 1);
    if (c->started)
        pthread_join(c->thread, NULL);
    q_status_free(c->st);
    ons_pg_fini(&c->pg);
    free(c->served);
    free(c->rate_milli);
    free(c->moved_ms);
    free(c->tmp_served);
    free(c->tmp_rate);
    free(c->tmp_drain);
    free((void *)c->drain_seq);
    free((void *)c->drain);
    free(c);
}

int ing_cursors_count(const ing_cursors *c)
{
    return c->n;
}

int64_t ing_cursors_served(ing_cursors *c, int32_t p)
{
    return p >= 0 && p < c->n ? atomic_load(&c->served[p]) : -1;
}

double ing_cursors_rate(ing_cursors *c, int32_t p)
{
    return p >= 0 && p < c->n ? (double)atomic_load(&c->rate_milli[p]) / 1000.0 : 0.0;
}

int64_t ing_cursors_age_ms(ing_cursors *c)
{
    int64_t t = atomic_load(&c->last_ok_ms);
    return t ? ons_mono_ms() - t : -1;
}
