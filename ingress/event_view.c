/* event_view.c - the event view cache and GET /v1/events/{id}; see
 * event_view.h. */
#include "ingress/event_view.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/hash.h"
#include "ingress/event_store.h"
#include "ingress/json_io.h"
#include "ingress/routes.h"
#include "queue/states.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A refresh that has not finished after this long (its job thread lost the
 * request, or PostgreSQL hangs past its statement timeout) no longer keeps
 * other requests from starting one. */
#define REFRESH_STUCK_MS 5000
/* Free-seat lists as the owner publishes them: 200 sections at most. */
#define SECTIONS_TEXT_MAX 10000
/* How long a status change sent through this node (ing_views_expect) keeps
 * views of the status before it from being served: the owner applies it
 * behind the intents queued before it, normally within milliseconds; past
 * this the view is cached again whatever it says (a change the owner
 * dropped never shows). */
#define EXPECT_MS 10000

/* A rendered view, shared by the cache and the replies in flight. */
typedef struct view_body {
    atomic_int refs;
    int pg_status; /* events.status as read (q_event_status_parse) */
    size_t len;
    char etag[ONS_ETAG_SIZE];
    char data[];
} view_body;

typedef struct slot {
    int64_t event_id; /* 0 = empty */
    int64_t built_ms;
    int64_t refresh_ms; /* > 0: a refresh started then and has not finished */
    /* When the body's reads began (monotonic ns): a render whose reads
     * began earlier never replaces it, so the view never goes back. */
    int64_t read_ns;
    /* A status change this node sent: until expect_until_ms (wall), a body
     * whose status is not expect_status is outdated (ing_views_expect). */
    int expect_status;
    int64_t expect_until_ms;
    view_body *body; /* NULL: none yet (or dropped for an expectation) */
} slot;

/* Slots are guarded by stripes of locks (slot index % STRIPES): every view
 * request takes one, on whichever nng thread it arrived. */
#define STRIPES 64

struct ing_views {
    pthread_mutex_t mu[STRIPES];
    int ttl_ms;
    atomic_int builds; /* renders finished, for debug.view_first_build_delay_ms */
    ing_view_refresh refresh;
    char cache_control[32];
    size_t n;
    slot *slots;
};

static void body_release(view_body *b)
{
    if (b && atomic_fetch_sub(&b->refs, 1) == 1)
        free(b);
}

static view_body *body_hold(view_body *b)
{
    atomic_fetch_add(&b->refs, 1);
    return b;
}

int64_t ing_view_refresh_ms(const ing_view_refresh *cfg, int64_t crowd)
{
    int64_t ms = cfg->min_ms;
    if (crowd > cfg->max_ms * cfg->views_per_s / 1000) /* no overflow below */
        crowd = cfg->max_ms * cfg->views_per_s / 1000 + 1;
    if (crowd > 0 && cfg->views_per_s > 0) {
        int64_t spread = (crowd * 1000 + cfg->views_per_s - 1) / cfg->views_per_s;
        if (spread > ms)
            ms = spread;
    }
    if (ms > cfg->max_ms)
        ms = cfg->max_ms;
    return (ms + 999) / 1000 * 1000;
}

int ing_views_new(int ttl_ms, size_t slots, const ing_view_refresh *refresh, ing_views **out)
{
    ing_views *v = calloc(1, sizeof *v);
    if (!v || slots == 0 || !(v->slots = calloc(slots, sizeof *v->slots))) {
        free(v);
        return ONS_ENOMEM;
    }
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&v->mu[i], NULL);
    v->ttl_ms = ttl_ms;
    v->refresh = *refresh;
    v->n = slots;
    /* Shared caches (a CDN) may keep it as long as we do, whole seconds. */
    snprintf(v->cache_control, sizeof v->cache_control, "public, max-age=%d", ttl_ms / 1000);
    *out = v;
    return 0;
}

void ing_views_free(ing_views *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n; i++)
        body_release(v->slots[i].body);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&v->mu[i]);
    free(v->slots);
    free(v);
}

/* Returns a held body to answer with, or NULL when the caller must build
 * one. A fresh body is returned as is; a stale one only while another
 * refresh is running (at most one per event); otherwise, when claim, the
 * caller is recorded as the refresher, and gets NULL. A body older than a
 * status change sent here (ing_views_expect) is not fresh, however young:
 * it is answered only while a render that may read the change runs (one
 * at a time, back to back until one reads it), so the crowd's views of an
 * event paused mid-sale wait for no more than one render each and never
 * become a render each. */
static view_body *lookup(ing_views *v, int64_t event_id, int64_t now, int claim)
{
    view_body *b = NULL;
    size_t i = (size_t)((uint64_t)event_id % v->n);
    pthread_mutex_lock(&v->mu[i % STRIPES]);
    slot *s = &v->slots[i];
    int outdated = s->event_id == event_id && s->body && now < s->expect_until_ms &&
                   s->body->pg_status != s->expect_status;
    if (s->event_id == event_id && s->body) {
        int fresh = !outdated && now - s->built_ms < v->ttl_ms;
        int refreshing = s->refresh_ms > 0 && now - s->refresh_ms < REFRESH_STUCK_MS;
        if (fresh || refreshing)
            b = body_hold(s->body);
        else if (claim)
            s->refresh_ms = now;
    }
    pthread_mutex_unlock(&v->mu[i % STRIPES]);
    return b;
}

/* Stores b, rendered from reads that began at read_ns (monotonic ns: two
 * renders in one millisecond are still ordered), as
 * event_id's view (the cache takes its own reference), unless the slot
 * holds a render whose reads began later: renders race (several run while
 * a change is expected, or after a refresh was stuck), and one finishing
 * late must not put an older state back (unchecked: it may, the pre-fix
 * behaviour for a test's control). Returns the body to answer with,
 * held: b, or the newer one kept. */
static view_body *store(ing_views *v, int64_t event_id, view_body *b, int64_t read_ns, int64_t now,
                        int unchecked)
{
    size_t i = (size_t)((uint64_t)event_id % v->n);
    pthread_mutex_lock(&v->mu[i % STRIPES]);
    slot *s = &v->slots[i];
    view_body *old = NULL, *answer;
    s->refresh_ms = 0;
    if (!unchecked && s->event_id == event_id && s->body && s->read_ns > read_ns) {
        answer = body_hold(s->body);
    } else {
        if (s->event_id != event_id)
            s->expect_until_ms = 0;
        old = s->body;
        s->event_id = event_id;
        s->built_ms = now;
        s->read_ns = read_ns;
        s->body = body_hold(b);
        if (b->pg_status == s->expect_status)
            s->expect_until_ms = 0; /* the change is applied: cache again */
        answer = body_hold(b);
    }
    pthread_mutex_unlock(&v->mu[i % STRIPES]);
    body_release(old);
    return answer;
}

void ing_views_expect(ing_views *v, int64_t event_id, const char *status)
{
    size_t i = (size_t)((uint64_t)event_id % v->n);
    view_body *old = NULL;
    pthread_mutex_lock(&v->mu[i % STRIPES]);
    slot *s = &v->slots[i];
    if (s->event_id != event_id) { /* evict, so that no older render lands unnoticed */
        old = s->body;
        s->body = NULL;
        s->event_id = event_id;
        s->read_ns = 0;
        s->refresh_ms = 0;
    }
    s->expect_status = q_event_status_parse(status);
    s->expect_until_ms = ing_now_ms() + EXPECT_MS;
    pthread_mutex_unlock(&v->mu[i % STRIPES]);
    body_release(old);
}

/* The refresh of event_id ended without a new body: let the next request
 * try again. Returns the old body, held, to answer with, or NULL. */
static view_body *refresh_failed(ing_views *v, int64_t event_id)
{
    view_body *b = NULL;
    size_t i = (size_t)((uint64_t)event_id % v->n);
    pthread_mutex_lock(&v->mu[i % STRIPES]);
    slot *s = &v->slots[i];
    if (s->event_id == event_id) {
        s->refresh_ms = 0;
        if (s->body)
            b = body_hold(s->body);
    }
    pthread_mutex_unlock(&v->mu[i % STRIPES]);
    return b;
}

/* 200 with the body, or 304 when If-None-Match names its ETag. */
static void reply_view(ing_req *r, view_body *b)
{
    const char *headers[] = {"Cache-Control", r->app->views->cache_control, NULL};
    ing_reply_etag(r, "application/json", b->data, b->len, b->etag, headers);
}

/* ---- building a view ---------------------------------------------------------------------------
 */

/* The status fans see: a sale whose show is over (ends_ms passed) has
 * ended, even before its owner wrote so; a scheduled sale whose time has
 * come is on sale; an on-sale event the owner marked sold out is sold out. */
static const char *effective_status(const char *pg_status, int64_t onsale_ms, int64_t ends_ms,
                                    int sold_out)
{
    int64_t now = ing_now_ms();
    int status = q_event_status_parse(pg_status);
    if (status != Q_EVENT_CANCELLED && now >= ends_ms)
        return q_event_status_name(Q_EVENT_ENDED);
    if (status == Q_EVENT_SCHEDULED && now >= onsale_ms)
        status = Q_EVENT_ON_SALE;
    if (status == Q_EVENT_ON_SALE && sold_out)
        return q_event_status_name(Q_EVENT_SOLD_OUT);
    return status < 0 ? pg_status : q_event_status_name(status);
}

/* The free seats of section_id in the owner's "id:free,..." list, or -1. */
static int64_t section_free(const char *list, int64_t section_id)
{
    for (const char *p = list; p && *p;) {
        char *end;
        long long id = strtoll(p, &end, 10);
        if (*end != ':')
            return -1;
        long long nfree = strtoll(end + 1, &end, 10);
        if (id == section_id)
            return nfree;
        p = *end == ',' ? end + 1 : NULL;
    }
    return -1;
}

/* Availability of an event the owner has not published: counted in
 * PostgreSQL (once per ttl, not per request). Fills the totals and each
 * tier's count into *list as the owner would publish it. */
static int counts_from_postgres(ing_worker *w, int64_t event_id, q_event_state *ev, char *list,
                                size_t cap)
{
    ing_section_free *secs = NULL;
    size_t n = 0;
    int64_t available, held, sold;
    if (ing_event_seat_counts(w, event_id, &available, &held, &sold, &secs, &n))
        return ONS_EDB;
    ev->available = available;
    ev->held = held;
    ev->sold = sold;
    size_t at = 0;
    list[0] = '\0';
    for (size_t i = 0; i < n && at < cap; i++)
        at += (size_t)snprintf(list + at, cap - at, "%s%" PRId64 ":%" PRId64, i ? "," : "",
                               secs[i].section_id, secs[i].available);
    free(secs);
    return 0;
}

static view_body *body_new(const char *text, int pg_status)
{
    size_t len = strlen(text);
    view_body *b = malloc(sizeof *b + len + 1);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->pg_status = pg_status;
    b->len = len;
    memcpy(b->data, text, len + 1);
    ons_etag(b->data, len, b->etag);
    return b;
}

/* The venue object of the view. */
static json_t *venue_json(const ing_event_view_row *v)
{
    json_t *venue = json_pack("{s:I, s:s, s:s, s:s}", "venue_id", (json_int_t)v->venue_id, "name",
                              v->venue_name, "city", v->city, "country", v->country);
    if (venue && v->has_lat)
        json_object_set_new(venue, "lat", json_real(v->lat));
    if (venue && v->has_lon)
        json_object_set_new(venue, "lon", json_real(v->lon));
    if (venue && v->has_address)
        json_object_set_new(venue, "address", json_string(v->address));
    return venue;
}

/* The view of v with availability st (and the per-section list). */
static json_t *view_json(int64_t event_id, const ing_event_view_row *v, const q_event_state *st,
                         const char *list, const char *status, int64_t refresh_after_ms)
{
    json_t *tarr = json_array();
    for (size_t i = 0; tarr && i < v->ntiers; i++) {
        const ing_view_tier *t = &v->tiers[i];
        int64_t nfree = section_free(list, t->section_id);
        json_array_append_new(tarr, json_pack("{s:s, s:I, s:I, s:I}", "section", t->section,
                                              "price_cents", (json_int_t)t->price_cents, "seats",
                                              (json_int_t)t->seats, "available",
                                              (json_int_t)(nfree < 0 ? 0 : nfree)));
    }
    json_t *body = json_pack(
        "{s:I, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:I, s:o, s:o, s:I, s:I, s:I}",
        "event_id", (json_int_t)event_id, "name", v->name, "category", v->category, "description",
        v->description, "starts_at", v->starts_at, "onsale_at", v->onsale_at, "max_per_user",
        v->max_per_user, "hold_seconds", v->hold_seconds, "currency", v->currency, "status", status,
        "seats_total", (json_int_t)v->seats_total, "venue", venue_json(v), "tiers", tarr,
        "available", (json_int_t)st->available, "held", (json_int_t)st->held, "sold",
        (json_int_t)st->sold);
    /* The draw (docs/fairness.md): the commitment from creation, the seed
     * once the sale opened (a view cached across onsale_at lacks it for at
     * most event_view.ttl_ms). */
    if (body && v->draw_commitment[0]) {
        int reveal = ing_now_ms() >= v->onsale_ms && v->draw_seed[0];
        json_object_set_new(body, "draw",
                            json_pack("{s:s, s:o}", "commitment", v->draw_commitment, "seed",
                                      reveal ? json_string(v->draw_seed) : json_null()));
    }
    if (body && v->has_prequeue)
        json_object_set_new(body, "prequeue_opens_at", json_string(v->prequeue_opens_at));
    /* Proof of work before a join (docs/fairness.md "Bot friction"). */
    if (body)
        json_object_set_new(body, "pow_difficulty", json_integer(v->pow_difficulty));
    if (body)
        json_object_set_new(body, "refresh_after_ms", json_integer(refresh_after_ms));
    return body;
}

/* Builds event_id's view. Returns 0 and *out (held), ONS_ENOTFOUND or
 * ONS_EDB / ONS_ENOMEM. */
static int build(ing_worker *w, const ing_views *views, int64_t event_id, int64_t end_grace_ms,
                 view_body **out)
{
    ing_event_view_row *v = malloc(sizeof *v);
    char *list = malloc(SECTIONS_TEXT_MAX);
    int rc = ONS_ENOMEM;
    if (!v || !list)
        goto out;
    rc = ing_event_view_get(w, event_id, v);
    if (rc == ONS_ENOTFOUND)
        goto out;
    if (rc) {
        rc = rc == ONS_ENOMEM ? rc : ONS_EDB;
        goto out;
    }
    /* Availability: the owner's projection, else a count (see the header). */
    q_event_state st;
    int in_redis = q_status_event_view_get(w->st, event_id, &st, list, SECTIONS_TEXT_MAX) == 0;
    int sold_out = in_redis && st.sold_out; /* only the owner says sold out */
    rc = ONS_EDB;
    if ((in_redis && st.available >= 0 && list[0]) ||
        counts_from_postgres(w, event_id, &st, list, SECTIONS_TEXT_MAX) == 0) {
        const char *status =
            effective_status(v->status, v->onsale_ms, v->starts_ms + end_grace_ms, sold_out);
        /* The crowd as the owner last published it; a count from
         * PostgreSQL knows neither (waiting -1, holds_active 0). */
        int64_t crowd = (st.waiting > 0 ? st.waiting : 0) + st.holds_active;
        json_t *body =
            view_json(event_id, v, &st, list, status, ing_view_refresh_ms(&views->refresh, crowd));
        /* The view's only reals are the venue's lat and lon: 15 digits
         * give back what the seller sent (52.09, not jansson's 17-digit
         * 52.090000000000003) and keep far below a millimetre. */
        char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
        json_decref(body);
        rc = text && (*out = body_new(text, q_event_status_parse(v->status))) != NULL ? 0
                                                                                      : ONS_ENOMEM;
        free(text);
    }
    ing_event_view_clear(v);
out:
    free(v);
    free(list);
    return rc;
}

/* ---- the route --------------------------------------------------------------------------------
 */

static void view_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    ing_views *v = r->app->views;
    int64_t event_id = *(int64_t *)r->job;
    view_body *b = NULL;
    int64_t read_ns = ons_mono_ns();
    ons_counter_add(r->app->view_renders, 1);
    int rc = build(w, v, event_id, (int64_t)r->app->o.events_end_grace_s * 1000, &b);
    /* Test hooks: the process's first render, or every render, finishes
     * late (a race). */
    int64_t delay = r->app->o.debug_view_first_build_delay_ms;
    if (delay > 0 && atomic_fetch_add(&v->builds, 1) != 0)
        delay = 0;
    delay += r->app->o.debug_view_build_delay_ms;
    if (delay > 0) {
        struct timespec ts = {(time_t)(delay / 1000), (long)(delay % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (rc == 0) {
        view_body *answer =
            store(v, event_id, b, read_ns, ing_now_ms(), r->app->o.debug_view_store_unchecked);
        body_release(b);
        reply_view(r, answer);
        body_release(answer);
        return;
    }
    b = refresh_failed(v, event_id);
    if (rc == ONS_ENOTFOUND) {
        body_release(b);
        ing_fail(r, w, ING_E_EVENT_NOT_FOUND, NULL);
    } else if (b) {
        /* The database is away: the last view beats no view. */
        reply_view(r, b);
        body_release(b);
    } else {
        ing_fail(r, w, ING_E_UNAVAILABLE, NULL);
    }
}

/* The body the route's now hook found (the accept gate) for its handler. */
typedef struct view_plan {
    view_body *b;
} view_plan;

void ing_route_event_get_now_end(void *arg)
{
    view_plan *p = arg;
    body_release(p->b);
    p->b = NULL;
}

int ing_route_event_get_now(ing_req *r)
{
    static _Thread_local view_plan plan;
    int64_t id;
    if (ing_path_id_parse(r->params[0], &id))
        return 1; /* the handler's 400 */
    /* No claim: a stale view whose refresh nobody runs is left for nng's
     * path, whose lookup starts the refresh job. */
    plan.b = lookup(r->app->views, id, ing_now_ms(), 0);
    if (!plan.b)
        return 0;
    r->now = &plan;
    return 1;
}

void ing_route_event_get(ing_req *r)
{
    int64_t id;
    if (ing_path_id(r, r->params[0], &id))
        return;
    view_plan *p = r->now;
    view_body *b = p ? p->b : lookup(r->app->views, id, ing_now_ms(), 1);
    if (p) {
        p->b = NULL;
        r->now = NULL;
    }
    if (b) {
        reply_view(r, b);
        body_release(b);
        return;
    }
    int64_t *job = ing_req_job(r, sizeof *job, NULL);
    if (!job)
        return;
    *job = id;
    ing_req_submit(r, view_job);
}
