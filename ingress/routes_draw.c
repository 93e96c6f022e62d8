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
 * last answer per event (draw.cache_events slots, a collision evicts) and
 * serves it from the nng thread for draw.cache_ttl_ms; past that, one
 * request renders it again while the others are served the previous
 * answer, so an event costs at most one render at a time per node however
 * many ask. Only a node's first answer for an event may be rendered by
 * several requests at once.
 */
#include "common/clock.h"
#include "common/err.h"
#include "ingress/event_store.h"
#include "ingress/json_io.h"
#include "ingress/routes.h"
#include "queue/draw.h"
#include "queue/intent_id.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the answer cache --------------------------------------------------------------- */

typedef struct draw_slot {
    pthread_mutex_t mu;
    int64_t event_id;   /* 0: empty */
    char *body;         /* the last 200 answer's JSON text (NULL: none yet) */
    size_t len;         /* its length */
    int64_t expires_ms; /* monotonic; past it the body is served only while rendering */
    int rendering;      /* a job is rendering this event's answer again */
} draw_slot;

static struct {
    pthread_once_t once;
    draw_slot *slots;
    size_t n;
    int64_t ttl_ms;
} cache = {PTHREAD_ONCE_INIT, NULL, 0, 0};

static size_t cache_slots_wanted;
static int64_t cache_ttl_wanted;

static void cache_init(void)
{
    if (cache_ttl_wanted <= 0 || cache_slots_wanted == 0)
        return;
    cache.slots = calloc(cache_slots_wanted, sizeof *cache.slots);
    if (!cache.slots)
        return; /* no cache: every request renders */
    for (size_t i = 0; i < cache_slots_wanted; i++)
        pthread_mutex_init(&cache.slots[i].mu, NULL);
    cache.n = cache_slots_wanted;
    cache.ttl_ms = cache_ttl_wanted;
}

static draw_slot *cache_slot(int64_t event_id)
{
    return cache.n ? &cache.slots[(uint64_t)event_id % cache.n] : NULL;
}

/* On the nng thread: replies from event_id's slot when it holds a fresh
 * answer for it, or one that is being rendered again. Else, when the slot
 * is event_id's and nobody renders it, marks it as rendering (the caller's
 * job renders and clears the mark: *renders = 1). Returns 1 when it
 * replied. */
static int cache_reply(ing_req *r, int64_t event_id, int *renders)
{
    draw_slot *s = cache_slot(event_id);
    *renders = 0;
    if (!s)
        return 0;
    int hit = 0;
    pthread_mutex_lock(&s->mu);
    if (s->event_id == event_id && s->body && (s->rendering || ons_mono_ms() < s->expires_ms)) {
        ing_reply_raw(r, 200, s->body); /* copies the body */
        hit = 1;
    } else if (s->event_id == event_id && !s->rendering) {
        s->rendering = 1;
        *renders = 1;
    }
    pthread_mutex_unlock(&s->mu);
    return hit;
}

/* A job's answer for event_id (body NULL: none; marked: the job's request
 * marked the slot). The slot is event_id's, or is taken over when it is
 * empty, expired and not being rendered, or holds a shorter answer: a
 * request for a small or missing event (ids that share the slot) cannot
 * evict a large draw's answer while it is fresh, so a large draw is
 * rendered at most about once per ttl however requests alternate. */
static void cache_store(int64_t event_id, const char *body, int marked)
{
    draw_slot *s = cache_slot(event_id);
    if (!s)
        return;
    size_t len = body ? strlen(body) : 0;
    char *copy = body ? strdup(body) : NULL;
    pthread_mutex_lock(&s->mu);
    int mine = s->event_id == event_id;
    if (mine && marked)
        s->rendering = 0;
    if (copy && (mine || s->event_id == 0 || len >= s->len ||
                 (!s->rendering && ons_mono_ms() >= s->expires_ms))) {
        free(s->body);
        s->rendering = mine ? s->rendering : 0; /* another event's mark ends with it */
        s->event_id = event_id;
        s->body = copy;
        s->len = len;
        s->expires_ms = ons_mono_ms() + cache.ttl_ms;
        copy = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    free(copy);
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
    int64_t event_id;
    int renders; /* this request marked the cache slot as rendering, and has not unmarked it */
} draw_job_args;

/* The request's end: a render mark the job did not clear (the job never
 * ran: refused by a rate limit, a full pool, a cancelled request) is
 * cleared, so the next request renders. */
static void draw_job_free(void *p)
{
    draw_job_args *j = p;
    if (j && j->renders)
        cache_store(j->event_id, NULL, 1);
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
    cache_store(event_id, text, j->renders);
    j->renders = 0;
    if (!text)
        ing_fail(r, w, err, NULL);
    else
        ing_reply_raw(r, 200, text);
    free(text);
}

void ing_route_event_draw(ing_req *r)
{
    int64_t id;
    if (ing_path_id(r, r->params[0], &id))
        return;
    cache_ttl_wanted = r->app->o.draw_cache_ttl_ms;
    cache_slots_wanted = (size_t)r->app->o.draw_cache_events;
    pthread_once(&cache.once, cache_init);
    int renders;
    if (cache_reply(r, id, &renders))
        return;
    draw_job_args *job = ing_req_job(r, sizeof *job, draw_job_free);
    if (!job) {
        if (renders)
            cache_store(id, NULL, 1);
        return;
    }
    *job = (draw_job_args){id, renders};
    ing_req_submit(r, draw_job);
}
