/* event_view.c - the event view cache and GET /v1/events/{id}; see
 * event_view.h. */
#include "ingress/event_view.h"
#include "common/clock.h"
#include "common/err.h"
#include "ingress/json_io.h"
#include "ingress/replica.h"
#include "ingress/routes.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A refresh that has not finished after this long (its job thread lost the
 * request, or PostgreSQL hangs past its statement timeout) no longer keeps
 * other requests from starting one. */
#define REFRESH_STUCK_MS 5000
/* Free-seat lists as the owner publishes them: 200 sections at most. */
#define SECTIONS_TEXT_MAX 10000

/* A rendered view, shared by the cache and the replies in flight. */
typedef struct view_body {
    atomic_int refs;
    size_t len;
    char etag[24];
    char data[];
} view_body;

typedef struct slot {
    int64_t event_id; /* 0 = empty */
    int64_t built_ms;
    int64_t refresh_ms; /* > 0: a refresh started then and has not finished */
    view_body *body;
} slot;

/* Slots are guarded by stripes of locks (slot index % STRIPES): every view
 * request takes one, on whichever nng thread it arrived. */
#define STRIPES 64

struct ing_views {
    pthread_mutex_t mu[STRIPES];
    int ttl_ms;
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

int ing_views_new(int ttl_ms, size_t slots, ing_views **out)
{
    ing_views *v = calloc(1, sizeof *v);
    if (!v || slots == 0 || !(v->slots = calloc(slots, sizeof *v->slots))) {
        free(v);
        return ONS_ENOMEM;
    }
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&v->mu[i], NULL);
    v->ttl_ms = ttl_ms;
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
 * refresh is running (at most one per event); otherwise the caller is
 * recorded as the refresher and gets NULL. */
static view_body *lookup(ing_views *v, int64_t event_id, int64_t now)
{
    view_body *b = NULL;
    size_t i = (size_t)((uint64_t)event_id % v->n);
    pthread_mutex_lock(&v->mu[i % STRIPES]);
    slot *s = &v->slots[i];
    if (s->event_id == event_id && s->body) {
        int fresh = now - s->built_ms < v->ttl_ms;
        int refreshing = s->refresh_ms > 0 && now - s->refresh_ms < REFRESH_STUCK_MS;
        if (fresh || refreshing)
            b = body_hold(s->body);
        else
            s->refresh_ms = now;
    }
    pthread_mutex_unlock(&v->mu[i % STRIPES]);
    return b;
}

/* Stores b (the cache takes its own reference) as event_id's view. */
static void store(ing_views *v, int64_t event_id, view_body *b, int64_t now)
{
    size_t i = (size_t)((uint64_t)event_id % v->n);
    pthread_mutex_lock(&v->mu[i % STRIPES]);
    slot *s = &v->slots[i];
    view_body *old = s->body;
    s->event_id = event_id;
    s->built_ms = now;
    s->refresh_ms = 0;
    s->body = body_hold(b);
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
    if (strcmp(pg_status, "cancelled") != 0 && now >= ends_ms)
        return "ended";
    if (strcmp(pg_status, "scheduled") == 0 && now >= onsale_ms)
        pg_status = "on_sale";
    if (strcmp(pg_status, "on_sale") == 0 && sold_out)
        return "sold_out";
    return pg_status;
}

static int64_t num(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
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
static int counts_from_postgres(ing_worker *w, const char *const *p, q_event_state *ev, char *list,
                                size_t cap)
{
    PGresult *c = ing_read_query(w,
                                 "SELECT count(*) FILTER (WHERE status = 'available'), "
                                 "count(*) FILTER (WHERE status IN ('held', 'paying')), "
                                 "count(*) FILTER (WHERE status = 'sold') "
                                 "FROM seats WHERE event_id = $1",
                                 1, p);
    PGresult *s = ing_read_query(w,
                                 "SELECT section_id, count(*) FROM seats "
                                 "WHERE event_id = $1 AND status = 'available' GROUP BY 1",
                                 1, p);
    int rc = ONS_EDB;
    if (c && PQresultStatus(c) == PGRES_TUPLES_OK && PQntuples(c) == 1 && s &&
        PQresultStatus(s) == PGRES_TUPLES_OK) {
        ev->available = num(c, 0, 0);
        ev->held = num(c, 0, 1);
        ev->sold = num(c, 0, 2);
        size_t at = 0;
        list[0] = '\0';
        for (int i = 0; i < PQntuples(s) && at < cap; i++)
            at += (size_t)snprintf(list + at, cap - at, "%s%s:%s", i ? "," : "",
                                   PQgetvalue(s, i, 0), PQgetvalue(s, i, 1));
        rc = 0;
    }
    PQclear(c);
    PQclear(s);
    return rc;
}

/* FNV-1a 64 of the body, as a quoted strong ETag. */
static void make_etag(const char *data, size_t len, char out[24])
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)data[i]) * 1099511628211ull;
    snprintf(out, 24, "\"%016" PRIx64 "\"", h);
}

static view_body *body_new(const char *text)
{
    size_t len = strlen(text);
    view_body *b = malloc(sizeof *b + len + 1);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->len = len;
    memcpy(b->data, text, len + 1);
    make_etag(b->data, len, b->etag);
    return b;
}

/* Builds event_id's view. Returns 0 and *out (held), ONS_ENOTFOUND or
 * ONS_EDB / ONS_ENOMEM. */
static int build(ing_worker *w, int64_t event_id, int64_t end_grace_ms, view_body **out)
{
    char ev[24];
    snprintf(ev, sizeof ev, "%" PRId64, event_id);
    const char *p[] = {ev};
    char *list = malloc(SECTIONS_TEXT_MAX);
    json_t *body = NULL;
    int rc = ONS_EDB;
    PGresult *tiers = NULL;
    PGresult *res = ing_read_query(
        w,
        "SELECT e.name, e.category, e.description, "
        "  to_char(e.starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "  to_char(e.onsale_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "  (extract(epoch FROM e.onsale_at) * 1000)::bigint, e.max_per_user, e.hold_seconds, "
        "  e.currency, e.status, e.seats_total, v.venue_id, v.name, v.city, v.country, "
        "  v.lat, v.lon, (extract(epoch FROM e.starts_at) * 1000)::bigint, v.address, "
        "  coalesce(e.draw_commitment, ''), coalesce(encode(e.draw_seed, 'hex'), ''), "
        "  to_char(e.prequeue_opens_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
        "FROM events e JOIN venues v USING (venue_id) WHERE e.event_id = $1",
        1, p);
    if (!list) {
        rc = ONS_ENOMEM;
        goto out;
    }
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        goto out;
    if (PQntuples(res) == 0) {
        rc = ONS_ENOTFOUND;
        goto out;
    }
    tiers = ing_read_query(w,
                           "SELECT s.name, pt.price_cents, s.rows * s.seats_per_row, s.section_id "
                           "FROM price_tiers pt JOIN sections s USING (section_id) "
                           "WHERE pt.event_id = $1 ORDER BY s.position",
                           1, p);
    if (!tiers || PQresultStatus(tiers) != PGRES_TUPLES_OK)
        goto out;

    /* Availability: the owner's projection, else a count (see the header). */
    q_event_state st;
    int in_redis = q_status_event_view_get(w->st, event_id, &st, list, SECTIONS_TEXT_MAX) == 0;
    int sold_out = in_redis && st.sold_out; /* only the owner says sold out */
    if (!(in_redis && st.available >= 0 && list[0]) &&
        counts_from_postgres(w, p, &st, list, SECTIONS_TEXT_MAX))
        goto out;
    const char *status = effective_status(PQgetvalue(res, 0, 9), num(res, 0, 5),
                                          num(res, 0, 17) + end_grace_ms, sold_out);
    json_t *venue = json_pack("{s:I, s:s, s:s, s:s}", "venue_id", (json_int_t)num(res, 0, 11),
                              "name", PQgetvalue(res, 0, 12), "city", PQgetvalue(res, 0, 13),
                              "country", PQgetvalue(res, 0, 14));
    if (venue && !PQgetisnull(res, 0, 15))
        json_object_set_new(venue, "lat", json_real(atof(PQgetvalue(res, 0, 15))));
    if (venue && !PQgetisnull(res, 0, 16))
        json_object_set_new(venue, "lon", json_real(atof(PQgetvalue(res, 0, 16))));
    if (venue && !PQgetisnull(res, 0, 18))
        json_object_set_new(venue, "address", json_string(PQgetvalue(res, 0, 18)));
    json_t *tarr = json_array();
    for (int i = 0; tarr && i < PQntuples(tiers); i++) {
        int64_t nfree = section_free(list, num(tiers, i, 3));
        json_array_append_new(tarr,
                              json_pack("{s:s, s:I, s:I, s:I}", "section", PQgetvalue(tiers, i, 0),
                                        "price_cents", (json_int_t)num(tiers, i, 1), "seats",
                                        (json_int_t)num(tiers, i, 2), "available",
                                        (json_int_t)(nfree < 0 ? 0 : nfree)));
    }
    body = json_pack(
        "{s:I, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:s, s:s, s:I, s:o, s:o, s:I, s:I, s:I}",
        "event_id", (json_int_t)event_id, "name", PQgetvalue(res, 0, 0), "category",
        PQgetvalue(res, 0, 1), "description", PQgetvalue(res, 0, 2), "starts_at",
        PQgetvalue(res, 0, 3), "onsale_at", PQgetvalue(res, 0, 4), "max_per_user",
        (int)num(res, 0, 6), "hold_seconds", (int)num(res, 0, 7), "currency", PQgetvalue(res, 0, 8),
        "status", status, "seats_total", (json_int_t)num(res, 0, 10), "venue", venue, "tiers", tarr,
        "available", (json_int_t)st.available, "held", (json_int_t)st.held, "sold",
        (json_int_t)st.sold);
    /* The draw (docs/fairness.md): the commitment from creation, the seed
     * once the sale opened (a view cached across onsale_at lacks it for at
     * most event_view.ttl_ms). */
    if (body && PQgetvalue(res, 0, 19)[0]) {
        int reveal = ing_now_ms() >= num(res, 0, 5) && PQgetvalue(res, 0, 20)[0];
        json_object_set_new(body, "draw",
                            json_pack("{s:s, s:o}", "commitment", PQgetvalue(res, 0, 19), "seed",
                                      reveal ? json_string(PQgetvalue(res, 0, 20)) : json_null()));
    }
    if (body && !PQgetisnull(res, 0, 21))
        json_object_set_new(body, "prequeue_opens_at", json_string(PQgetvalue(res, 0, 21)));
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    rc = ONS_ENOMEM;
    if (text && (*out = body_new(text)) != NULL)
        rc = 0;
    free(text);
out:
    json_decref(body);
    PQclear(res);
    PQclear(tiers);
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
    int rc = build(w, event_id, (int64_t)r->app->o.events_end_grace_s * 1000, &b);
    if (rc == 0) {
        store(v, event_id, b, ing_now_ms());
        reply_view(r, b);
        body_release(b);
        return;
    }
    b = refresh_failed(v, event_id);
    if (rc == ONS_ENOTFOUND) {
        body_release(b);
        ing_reply_error(r, 404, "event_not_found", NULL, "No such event.");
    } else if (b) {
        /* The database is away: the last view beats no view. */
        reply_view(r, b);
        body_release(b);
    } else {
        r->retry_after = 1;
        ing_reply_error(r, 503, "unavailable", NULL, "The database is unavailable; retry shortly.");
    }
}

void ing_route_event_get(ing_req *r)
{
    int64_t id;
    if (ing_path_id(r, r->params[0], &id))
        return;
    view_body *b = lookup(r->app->views, id, ing_now_ms());
    if (b) {
        reply_view(r, b);
        body_release(b);
        return;
    }
    int64_t *job = malloc(sizeof *job);
    if (!job) {
        r->retry_after = 1;
        ing_reply_error(r, 503, "overloaded", NULL, "Out of memory; retry shortly.");
        return;
    }
    *job = id;
    r->job = job;
    r->job_free = free;
    ing_req_submit(r, view_job);
}
