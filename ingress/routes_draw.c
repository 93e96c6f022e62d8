/*
 * routes_draw.c - GET /v1/events/{id}/draw: the pre-queue's draw, for
 * anyone to check (docs/fairness.md).
 *
 * {"commitment": hex SHA-256(seed), "seed": hex seed or null before
 * onsale_at, "entries": [intent_id, ...]} with the entries (every intent
 * whose join was sent in the pre-queue window, except duplicates the owner
 * refused) in draw order: ascending hex HMAC-SHA256(seed, intent_id), by
 * q_draw_order, the function the owner draws with (workers/partition.c
 * make_draw); before onsale_at the seed and the entries are withheld.
 *
 * The route is public and its answer is the same for everyone, while one
 * answer reads every entrant and computes an HMAC each (a 100,000-entry
 * draw: about 0.25 s of a job thread and 3.5 MB). So each node keeps the
 * last answer per event (draw.cache_events entries, found by event id) and
 * serves it from the nng thread for draw.cache_ttl_ms; past that, one
 * request renders it again while the others are served the previous
 * answer, so an event costs at most one render at a time per node however
 * many ask, whatever other events share the table (an event whose entries
 * all hold fresh answers of others keeps its render mark aside, and is
 * rendered at each request once the previous render is done, until one
 * expires). While an event with no
 * answer yet on this node is being rendered, the others asking for it get
 * 503 unavailable with Retry-After: 1 rather than a render each.
 */
#include "common/clock.h"
#include "common/err.h"
#include "ingress/event_store.h"
#include "ingress/json_io.h"
#include "ingress/ratelimit.h"
#include "ingress/routes.h"
#include "queue/draw.h"
#include "queue/intent_id.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the answer cache --------------------------------------------------------------- */

/* An answer's JSON text, shared by the cache and the requests being served
 * it: a hit takes a reference under the table's lock and copies the text
 * into its reply outside it, so no request copies 3.5 MB while holding the
 * lock, and a text replaced meanwhile lives until its last reader is done. */
typedef struct draw_body {
    atomic_int refs;
    size_t len;
    char text[];
} draw_body;

static draw_body *body_new(const char *text)
{
    size_t len = strlen(text);
    draw_body *b = malloc(sizeof *b + len + 1);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->len = len;
    memcpy(b->text, text, len + 1);
    return b;
}

static void body_release(draw_body *b)
{
    if (b && atomic_fetch_sub(&b->refs, 1) == 1)
        free(b);
}

/* One event's place in the table, found by its event id (not by a slot the
 * id hashes to alone: two events never share an entry). */
typedef struct draw_entry {
    int64_t event_id;   /* 0: free */
    draw_body *body;    /* the last 200 answer (NULL: none yet) */
    int64_t expires_ms; /* monotonic; past it the body is served only while rendering */
    int rendering;      /* a job is rendering this event's answer; never evicted meanwhile */
} draw_entry;

/* An event's entry is one of DRAW_WAYS consecutive entries from where its
 * id hashes (all of them when draw.cache_events is smaller): a lookup reads
 * at most DRAW_WAYS entries under the one lock. */
#define DRAW_WAYS 8

/* How a request marked its event as being rendered (draw_job_args.renders). */
enum { MARK_NONE, MARK_ENTRY, MARK_ASIDE };

/* The node's cache of draw answers (app->draws), made at start. */
struct ing_draws {
    pthread_mutex_t mu;
    draw_entry *e;
    size_t n, ways;
    int64_t ttl_ms;
    /* Events being rendered that have no entry (every one they may take
     * holds a fresh answer, which another event's request does not evict:
     * a request for a missing id would otherwise cost a large draw a render),
     * at most n, unordered. */
    int64_t *aside;
    size_t naside;
};

int ing_draws_new(int64_t ttl_ms, size_t slots, ing_draws **out)
{
    ing_draws *c = calloc(1, sizeof *c);
    if (!c)
        return ONS_ENOMEM;
    pthread_mutex_init(&c->mu, NULL);
    if (ttl_ms > 0 && slots > 0) {
        c->e = calloc(slots, sizeof *c->e);
        c->aside = calloc(slots, sizeof *c->aside);
        if (!c->e || !c->aside) {
            ing_draws_free(c);
            return ONS_ENOMEM;
        }
        c->n = slots;
        c->ways = slots < DRAW_WAYS ? slots : DRAW_WAYS;
        c->ttl_ms = ttl_ms;
    }
    *out = c;
    return 0;
}

void ing_draws_free(ing_draws *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        body_release(c->e[i].body);
    free(c->e);
    free(c->aside);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static size_t way_start(const ing_draws *cache, int64_t event_id)
{
    uint64_t x = (uint64_t)event_id * 0x9E3779B97F4A7C15ULL;
    return (size_t)((x ^ x >> 29) % cache->n);
}

/* event_id's entry, or NULL. Under cache->mu. */
static draw_entry *entry_find(ing_draws *cache, int64_t event_id)
{
    size_t at = way_start(cache, event_id);
    for (size_t i = 0; i < cache->ways; i++) {
        draw_entry *e = &cache->e[(at + i) % cache->n];
        if (e->event_id == event_id)
            return e;
    }
    return NULL;
}

/* The entry event_id may take: a free one, else an expired one not being
 * rendered (the first expired); NULL when every one holds a fresh answer or
 * is being rendered. Its old body goes to *old (the caller releases it
 * outside the lock). Under cache->mu. */
static draw_entry *entry_take(ing_draws *cache, int64_t event_id, draw_body **old)
{
    size_t at = way_start(cache, event_id);
    draw_entry *v = NULL;
    for (size_t i = 0; i < cache->ways; i++) {
        draw_entry *e = &cache->e[(at + i) % cache->n];
        if (e->event_id == 0) {
            v = e;
            break;
        }
        if (!e->rendering && (!v || e->expires_ms < v->expires_ms))
            v = e;
    }
    if (!v || (v->event_id && ons_mono_ms() < v->expires_ms))
        return NULL;
    *old = v->body;
    *v = (draw_entry){.event_id = event_id};
    return v;
}

/* The aside marks (cache->aside): whether event_id has one, adding one
 * (0, or -1 when full), removing one. Under cache->mu. */
static int aside_has(const ing_draws *cache, int64_t event_id)
{
    for (size_t i = 0; i < cache->naside; i++)
        if (cache->aside[i] == event_id)
            return 1;
    return 0;
}

static int aside_add(ing_draws *cache, int64_t event_id)
{
    if (cache->naside == cache->n)
        return -1;
    cache->aside[cache->naside++] = event_id;
    return 0;
}

static void aside_remove(ing_draws *cache, int64_t event_id)
{
    for (size_t i = 0; i < cache->naside; i++)
        if (cache->aside[i] == event_id) {
            cache->aside[i] = cache->aside[--cache->naside];
            return;
        }
}

/* What cache_lookup found for a request. */
typedef enum { DRAW_RENDER, DRAW_HIT, DRAW_BUSY } draw_found;

/* On the nng thread: DRAW_HIT with a reference to event_id's answer in
 * *hit when it is fresh, or being rendered again; DRAW_BUSY when it is
 * being rendered and there is no earlier answer to serve; else
 * DRAW_RENDER, with *mark how the request marked the event as rendering
 * (its job renders and clears the mark): in the event's entry, in an entry
 * it takes (free or expired), or aside when every entry it may take holds
 * a fresh answer (MARK_NONE only when draw.cache_events events are aside
 * at once). The mark is per event whatever shares the table, so a crowd
 * asking for an event renders once at a time. */
static draw_found cache_lookup(ing_draws *cache, int64_t event_id, draw_body **hit, int *mark)
{
    *hit = NULL;
    *mark = MARK_NONE;
    if (!cache || !cache->n)
        return DRAW_RENDER;
    draw_body *old = NULL;
    draw_found f = DRAW_RENDER;
    pthread_mutex_lock(&cache->mu);
    draw_entry *e = entry_find(cache, event_id);
    if (e && e->body && (e->rendering || ons_mono_ms() < e->expires_ms)) {
        atomic_fetch_add(&e->body->refs, 1);
        *hit = e->body;
        f = DRAW_HIT;
    } else if ((e && e->rendering) || (!e && aside_has(cache, event_id))) {
        f = DRAW_BUSY;
    } else {
        if (!e)
            e = entry_take(cache, event_id, &old);
        if (e)
            e->rendering = 1;
        *mark = e ? MARK_ENTRY : aside_add(cache, event_id) == 0 ? MARK_ASIDE : MARK_NONE;
    }
    pthread_mutex_unlock(&cache->mu);
    body_release(old);
    return f;
}

/* A job's answer for event_id (text NULL: none), its request's mark
 * cleared. The answer goes to the event's entry, or to an entry free or
 * expired (never evicting a fresh answer). An entry left without an answer
 * or a mark (a missing event) is freed. */
static void cache_store(ing_draws *cache, int64_t event_id, const char *text, int mark)
{
    if (!cache || !cache->n)
        return;
    draw_body *b = text ? body_new(text) : NULL, *old = NULL;
    pthread_mutex_lock(&cache->mu);
    if (mark == MARK_ASIDE)
        aside_remove(cache, event_id);
    draw_entry *e = entry_find(cache, event_id);
    if (e && mark == MARK_ENTRY)
        e->rendering = 0;
    if (!e && b)
        e = entry_take(cache, event_id, &old);
    if (e && b) {
        if (!old)
            old = e->body;
        e->body = b;
        e->expires_ms = ons_mono_ms() + cache->ttl_ms;
        b = NULL;
    } else if (e && !e->body && !e->rendering) {
        e->event_id = 0;
    }
    pthread_mutex_unlock(&cache->mu);
    body_release(old);
    body_release(b);
}

/* ---- the answer --------------------------------------------------------------------- */

/* The entrants in draw order as a JSON array of intent ids (NULL: out of
 * memory or an id that cannot be made). */
static json_t *entries_json(ing_app *app, const uint8_t *seed, const q_draw_entrant *in, size_t n)
{
    q_draw_entry *e = n ? malloc(n * sizeof *e) : NULL;
    json_t *a = json_array();
    if ((n && !e) || !a || q_draw_order(seed, app->o.ids_secret, in, n, e))
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(a, json_string(e[i].id)))
            goto fail;
    free(e);
    return a;
fail:
    free(e);
    json_decref(a);
    return NULL;
}

/* The entries of an open draw with a seed; NULL when unavailable. */
static json_t *draw_entries(ing_req *r, ing_worker *w, int64_t event_id, const uint8_t *seed)
{
    q_draw_entrant *in = NULL;
    size_t n = 0;
    if (ing_event_draw_entrants(w, event_id, &in, &n))
        return NULL;
    json_t *a = entries_json(r->app, seed, in, n);
    free(in);
    return a;
}

typedef struct draw_job_args {
    ing_draws *cache;
    int64_t event_id;
    int renders; /* MARK_*: how this request marked the event as rendering (not yet cleared) */
} draw_job_args;

/* The request's end: a render mark the job did not clear (the job never
 * ran: refused by a rate limit, a full pool, a cancelled request) is
 * cleared, so the next request renders. */
static void draw_job_free(void *p)
{
    draw_job_args *j = p;
    if (j && j->renders)
        cache_store(j->cache, j->event_id, NULL, j->renders);
    free(j);
}

/* The answer's JSON text (caller frees), or NULL with *err set. */
static char *draw_render(ing_req *r, ing_worker *w, int64_t event_id, ing_api_err *err)
{
    ing_event_draw d;
    int rc = ing_event_draw_get(w, event_id, &d);
    *err = rc == ONS_ENOTFOUND ? ING_E_EVENT_NOT_FOUND : ING_E_UNAVAILABLE;
    if (rc == ONS_ENOTFOUND)
        return NULL;
    uint8_t seed[Q_DRAW_SEED_LEN];
    int have_seed = rc == 0 && q_draw_seed_parse(d.pub.seed_hex, seed) == 0;
    json_t *entries = rc                                  ? NULL
                      : d.open && have_seed && d.prequeue ? draw_entries(r, w, event_id, seed)
                                                          : json_array();
    if (!entries)
        return NULL;
    json_t *body = json_pack(
        "{s:I, s:o, s:o, s:o}", "event_id", (json_int_t)event_id, "commitment",
        d.pub.commitment[0] ? json_string(d.pub.commitment) : json_null(), "seed",
        d.open && have_seed ? json_string(d.pub.seed_hex) : json_null(), "entries", entries);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return text;
}

static void draw_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    draw_job_args *j = r->job;
    int64_t event_id = j->event_id;
    ing_api_err err;
    char *text = draw_render(r, w, event_id, &err);
    cache_store(j->cache, event_id, text, j->renders);
    j->renders = 0;
    if (!text)
        ing_fail(r, w, err, NULL);
    else
        ing_reply_raw(r, 200, text);
    free(text);
}

/* A hit: charged to the draw class's per-node bucket of the client's
 * address (429 past it: each hit is a copy of the answer held until the
 * client reads it), then copied into the reply outside the lock. */
static void reply_hit(ing_req *r, draw_body *b)
{
    if (ing_ratelimit_charge_node(r, ING_RL_DRAW) == 0)
        ing_reply_text(r, 200, "application/json", b->text, b->len);
    body_release(b);
}

void ing_route_event_draw(ing_req *r)
{
    int64_t id;
    if (ing_path_id(r, r->params[0], &id))
        return;
    ing_draws *cache = r->app->draws;
    int renders;
    draw_body *hit;
    draw_found f = cache_lookup(cache, id, &hit, &renders);
    if (f == DRAW_HIT) {
        reply_hit(r, hit);
        return;
    }
    if (f == DRAW_BUSY) {
        r->retry_after = 1;
        ing_failf(r, NULL, ING_E_UNAVAILABLE, NULL,
                  "The draw is being rendered; retry after the time in Retry-After.");
        return;
    }
    draw_job_args *job = ing_req_job(r, sizeof *job, draw_job_free);
    if (!job) {
        if (renders)
            cache_store(cache, id, NULL, renders);
        return;
    }
    *job = (draw_job_args){cache, id, renders};
    ing_req_submit(r, draw_job);
}
