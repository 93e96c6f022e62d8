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
    /* When the reads of st began (monotonic ms); for a forgotten entry,
     * when it was forgotten. A fill whose reads began earlier never
     * replaces it: fills race on job threads, and one finishing late must
     * not put back a state older than the one cached (or forgotten). */
    int64_t fetched_ms;
    int forgotten; /* 1: st is no longer served (ing_events_forget) */
    q_event_state st;
    /* The names of the sections event_id prices (q_section_names_encode;
     * heap), NULL when not known. Fixed for an event's life, so kept
     * through forgets and newer fills of the same event. */
    char *names;
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
    for (size_t i = 0; i < c->n; i++)
        free(c->slots[i].names);
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

/* Gives slot s to event id (under its lock): another event's names go. */
static void slot_take(slot *s, int64_t id)
{
    if (s->event_id != id) {
        free(s->names);
        s->names = NULL;
    }
    s->event_id = id;
}

void ing_events_forget(ing_events *c, int64_t id)
{
    size_t i = event_slot(c, id);
    pthread_mutex_lock(slot_lock(c, i));
    slot *s = &c->slots[i];
    /* Taken even when it holds another event (or none): a fill of id that
     * is running now began before this call and must not land either. */
    slot_take(s, id);
    s->forgotten = 1;
    s->fetched_ms = ons_mono_ms(); /* fills that began before do not count */
    pthread_mutex_unlock(slot_lock(c, i));
}

/* ing_events_put, with the event's section names (stolen; NULL: not
 * known), which the slot keeps if it has none yet, even from an older
 * fill: they never change. */
static int put_named(ing_events *c, int64_t id, const q_event_state *st, int64_t read_ms,
                     char *names)
{
    size_t i = event_slot(c, id);
    pthread_mutex_lock(slot_lock(c, i));
    slot *s = &c->slots[i];
    /* A fill that began in the millisecond of a forget counts as before it
     * (a refused fill costs a read; a kept older one, a status gone back). */
    int older = s->event_id == id &&
                (read_ms < s->fetched_ms || (s->forgotten && read_ms == s->fetched_ms));
    if (!older) {
        slot_take(s, id);
        s->fetched_ms = read_ms;
        s->forgotten = 0;
        s->st = *st;
    }
    if (s->event_id == id && !s->names) {
        s->names = names;
        names = NULL;
    }
    pthread_mutex_unlock(slot_lock(c, i));
    free(names);
    return older ? ONS_ECONFLICT : 0;
}

int ing_events_put(ing_events *c, int64_t id, const q_event_state *st, int64_t read_ms)
{
    return put_named(c, id, st, read_ms, NULL);
}

int ing_events_section_priced(ing_events *c, int64_t id, const char *section)
{
    size_t i = event_slot(c, id);
    pthread_mutex_lock(slot_lock(c, i));
    const slot *s = &c->slots[i];
    int priced = s->event_id == id && s->names ? q_section_names_has(s->names, section) : -1;
    pthread_mutex_unlock(slot_lock(c, i));
    return priced;
}

int ing_events_lookup(ing_events *c, int64_t id, q_event_state *out, int *fresh)
{
    size_t i = event_slot(c, id);
    pthread_mutex_lock(slot_lock(c, i));
    const slot *s = &c->slots[i];
    int hit = s->event_id == id && !s->forgotten;
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

/* Caches st (read from read_ms on) and names (stolen) and answers st,
 * or, when a fill that began later got there first, answers that one. */
static int put_or_newer(ing_events *c, int64_t id, const q_event_state *st, int64_t read_ms,
                        char *names, q_event_state *out)
{
    if (put_named(c, id, st, read_ms, names) == 0 || ing_events_lookup(c, id, out, NULL) != 0)
        *out = *st;
    return 0;
}

/* Writes what PostgreSQL gave (st, names) back to Redis, so the next
 * reader finds it there; a status (and max_per_user) the owner published
 * (published[0]) is kept. */
static void write_back(ing_worker *w, int64_t id, const q_event_state *st, const char *published,
                       int published_mpu, const char *names)
{
    if (!published_mpu)
        q_status_event_set(w->st, id, published[0] ? published : st->status, st->onsale_at_ms,
                           st->max_per_user);
    q_status_event_set_fair(w->st, id, st->prequeue_opens_at_ms, st->max_active_holds,
                            st->admissions_per_minute);
    q_status_event_set_pow(w->st, id, st->pow_difficulty);
    q_status_event_set_partitions(w->st, id, st->partitions);
    q_status_event_set_section_names(w->st, id, names);
}

/* Redis gave a complete sale state (st) but not the section names (an
 * event made before they were written, or whose HSET at creation failed).
 * They are read from PostgreSQL and only they are written back: a
 * fair-access, pow or partitions change Redis already holds is never put
 * back to an older PostgreSQL read. PostgreSQL down: st is cached and
 * answered with the names unknown (the join is queued as before), so
 * PostgreSQL is asked again when the entry goes stale, not on every join. */
static int fill_names(ing_events *c, ing_worker *w, int64_t id, const q_event_state *st,
                      int64_t read_ms, q_event_state *out)
{
    q_event_state pg;
    char *names;
    int prc = ing_cache_event_state(w, id, &pg, &names);
    if (prc == ONS_ENOTFOUND)
        return ONS_ENOTFOUND;
    if (prc == 0)
        q_status_event_set_section_names(w->st, id, names);
    return put_or_newer(c, id, st, read_ms, names, out);
}

int ing_events_get(ing_events *c, ing_worker *w, int64_t id, q_event_state *out)
{
    int fresh = 0;
    if (ing_events_lookup(c, id, out, &fresh) == 0 && fresh)
        return 0;

    q_event_state st;
    char *names = NULL;
    int64_t read_ms = ons_mono_ms();
    int rrc = q_status_event_get_names(w->st, id, &st, &names);
    int complete = rrc == 0 && st.status[0] && st.max_per_user > 0 && st.pow_difficulty >= 0 &&
                   st.partitions > 0;
    if (complete && names)
        return put_or_newer(c, id, &st, read_ms, names, out);
    free(names);
    if (complete)
        return fill_names(c, w, id, &st, read_ms, out);
    if (rrc != 0) {
        memset(&st, 0, sizeof st);
        st.available = st.held = st.sold = st.waiting = -1;
    }
    /* The status the owner published, if any: its projection follows its
     * commit, and the PostgreSQL read below may predate a newer one, so
     * the write-back never puts PostgreSQL's over it (Redis lacked only
     * pow_difficulty or max_per_user). */
    char published[sizeof st.status];
    snprintf(published, sizeof published, "%s", st.status);
    int published_mpu = published[0] && st.max_per_user > 0;
    /* Redis has no sale state (or is down): PostgreSQL is the truth. The
     * worker's counters and sold_out flag, if Redis had them, are kept. */
    int prc = ing_cache_event_state(w, id, &st, &names);
    if (prc == ONS_ENOTFOUND)
        return ONS_ENOTFOUND;
    if (prc)
        return ONS_EUNAVAIL;
    if (rrc != ONS_EREDIS)
        write_back(w, id, &st, published, published_mpu, names);
    return put_or_newer(c, id, &st, read_ms, names, out);
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
