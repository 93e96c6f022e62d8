/* event_cache.c - event sale-state cache and intent → event map; see
 * event_cache.h. */
#include "common/clock.h"
#include "ingress/cache_store.h"
#include "ingress/event_cache.h"
#include "queue/states.h"
#include "common/err.h"
#include "common/log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct slot {
    int64_t event_id; /* 0 = empty */
    int64_t fetched_ms;
    q_event_state st;
} slot;

/* Slots are guarded by stripes of locks (slot index % STRIPES), so polls of
 * different events on different nng threads do not queue on one lock. */
#define STRIPES 64

struct ing_events {
    pthread_mutex_t mu[STRIPES];
    int ttl_ms;
    size_t n;
    slot *slots;
};

int ing_events_new(int ttl_ms, size_t slots, ing_events **out)
{
    ing_events *c = calloc(1, sizeof *c);
    if (!c || slots == 0 || !(c->slots = calloc(slots, sizeof *c->slots))) {
        free(c);
        return ONS_ENOMEM;
    }
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&c->mu[i], NULL);
    c->ttl_ms = ttl_ms;
    c->n = slots;
    *out = c;
    return 0;
}

void ing_events_free(ing_events *c)
{
    if (!c)
        return;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&c->mu[i]);
    free(c->slots);
    free(c);
}

static size_t event_slot(const ing_events *c, int64_t id)
{
    return (size_t)((uint64_t)id % c->n);
}

static pthread_mutex_t *slot_lock(ing_events *c, size_t i)
{
    return &c->mu[i % STRIPES];
}

void ing_events_forget(ing_events *c, int64_t id)
{
    size_t i = event_slot(c, id);
    pthread_mutex_lock(slot_lock(c, i));
    if (c->slots[i].event_id == id)
        c->slots[i].event_id = 0;
    pthread_mutex_unlock(slot_lock(c, i));
}

static void put(ing_events *c, int64_t id, const q_event_state *st)
{
    size_t i = event_slot(c, id);
    pthread_mutex_lock(slot_lock(c, i));
    slot *s = &c->slots[i];
    s->event_id = id;
    s->fetched_ms = ons_mono_ms();
    s->st = *st;
    pthread_mutex_unlock(slot_lock(c, i));
}

int ing_events_lookup(ing_events *c, int64_t id, q_event_state *out, int *fresh)
{
    size_t i = event_slot(c, id);
    pthread_mutex_lock(slot_lock(c, i));
    const slot *s = &c->slots[i];
    int hit = s->event_id == id;
    int young = hit && ons_mono_ms() - s->fetched_ms < c->ttl_ms;
    if (hit && out)
        *out = s->st;
    pthread_mutex_unlock(slot_lock(c, i));
    if (fresh)
        *fresh = young;
    return hit ? 0 : ONS_ENOTFOUND;
}

int ing_events_peek(ing_events *c, int64_t id, q_event_state *out)
{
    return ing_events_lookup(c, id, out, NULL);
}

int ing_events_fresh(ing_events *c, int64_t id)
{
    int fresh = 0;
    (void)ing_events_lookup(c, id, NULL, &fresh);
    return fresh;
}

int ing_events_get(ing_events *c, ing_worker *w, int64_t id, q_event_state *out)
{
    int fresh = 0;
    if (ing_events_lookup(c, id, out, &fresh) == 0 && fresh)
        return 0;

    q_event_state st;
    int rrc = q_status_event_get(w->st, id, &st);
    if (rrc == 0 && st.status[0] && st.max_per_user > 0 && st.pow_difficulty >= 0) {
        put(c, id, &st);
        *out = st;
        return 0;
    }
    if (rrc != 0) {
        memset(&st, 0, sizeof st);
        st.available = st.held = st.sold = st.waiting = -1;
    }
    /* Redis has no sale state (or is down): PostgreSQL is the truth. The
     * worker's counters and sold_out flag, if Redis had them, are kept. */
    int prc = ing_cache_event_state(w, id, &st);
    if (prc == ONS_ENOTFOUND)
        return ONS_ENOTFOUND;
    if (prc)
        return ONS_EUNAVAIL;
    if (rrc != ONS_EREDIS) {
        q_status_event_set(w->st, id, st.status, st.onsale_at_ms, st.max_per_user);
        q_status_event_set_fair(w->st, id, st.prequeue_opens_at_ms, st.max_active_holds,
                                st.admissions_per_minute);
        q_status_event_set_pow(w->st, id, st.pow_difficulty);
    }
    put(c, id, &st);
    *out = st;
    return 0;
}

/* ---- intent → event --------------------------------------------------------- */

struct ing_seqmap {
    pthread_mutex_t mu[STRIPES]; /* slot index % STRIPES */
    size_t n;
    int64_t (*pairs)[2]; /* {seq + 1, event_id}; 0 = empty */
};

int ing_seqmap_new(size_t slots, ing_seqmap **out)
{
    ing_seqmap *m = calloc(1, sizeof *m);
    if (!m || slots == 0 || !(m->pairs = calloc(slots, sizeof *m->pairs))) {
        free(m);
        return ONS_ENOMEM;
    }
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&m->mu[i], NULL);
    m->n = slots;
    *out = m;
    return 0;
}

void ing_seqmap_free(ing_seqmap *m)
{
    if (!m)
        return;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&m->mu[i]);
    free(m->pairs);
    free(m);
}

static size_t seq_slot(const ing_seqmap *m, int64_t seq)
{
    uint64_t x = (uint64_t)seq * 0x9E3779B97F4A7C15ULL;
    return (size_t)((x ^ (x >> 29)) % m->n);
}

void ing_seqmap_put(ing_seqmap *m, int64_t seq, int64_t event_id)
{
    size_t i = seq_slot(m, seq);
    pthread_mutex_lock(&m->mu[i % STRIPES]);
    m->pairs[i][0] = seq + 1;
    m->pairs[i][1] = event_id;
    pthread_mutex_unlock(&m->mu[i % STRIPES]);
}

int ing_seqmap_get(ing_seqmap *m, int64_t seq, int64_t *event_id)
{
    size_t i = seq_slot(m, seq);
    pthread_mutex_lock(&m->mu[i % STRIPES]);
    int rc = ONS_ENOTFOUND;
    if (m->pairs[i][0] == seq + 1) {
        *event_id = m->pairs[i][1];
        rc = 0;
    }
    pthread_mutex_unlock(&m->mu[i % STRIPES]);
    return rc;
}

void ing_seqmap_scan(ing_seqmap *m, void (*fn)(int64_t seq, int64_t event_id, void *arg), void *arg)
{
    for (size_t i = 0; i < m->n; i++) {
        pthread_mutex_lock(&m->mu[i % STRIPES]);
        int64_t seq1 = m->pairs[i][0], ev = m->pairs[i][1];
        pthread_mutex_unlock(&m->mu[i % STRIPES]);
        if (seq1)
            fn(seq1 - 1, ev, arg);
    }
}
