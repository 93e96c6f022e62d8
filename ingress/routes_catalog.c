/*
 * routes_catalog.c - the public catalog search (docs/api.md "Catalog",
 * docs/search.md):
 *   GET /v1/events?q=&city=&category=&from=&to=&min_price=&max_price=
 *                  &lat=&lon=&km=&sort=&limit=&cursor=
 *
 * The query string is parsed and validated on the nng thread
 * (catalog_store.c: unknown parameter -> 400 unknown_field; bad value -> 400
 * invalid_field naming it; a cursor we did not issue for this sort -> 400
 * invalid_cursor). cat_search() then runs on a job thread: full-text first;
 * when q's words match nothing on a first page, the names are searched
 * again by trigram similarity (typos) and the page says "match":"fuzzy" (its
 * cursor keeps later pages fuzzy).
 *
 * Answers carry an ETag and "Cache-Control: public, max-age=catalog.max_age_s";
 * If-None-Match with the current ETag gets 304. Each node also keeps the
 * answer to a query string for catalog.cache_ttl_ms (no longer than max-age),
 * served from the nng thread: a popular search costs PostgreSQL one query per
 * node per ttl, and a new or changed event shows within that ttl.
 */
#include "common/clock.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/log.h"
#include "ingress/catalog_index_store.h"
#include "ingress/catalog_store.h"
#include "ingress/json_io.h"
#include "ingress/routes.h"

#include <inttypes.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the answer cache --------------------------------------------------------------- */

typedef struct cat_slot {
    pthread_mutex_t mu;
    char *key;  /* the raw query string */
    char *body; /* JSON text */
    size_t len;
    char etag[ONS_ETAG_SIZE];
    int64_t expires_ms; /* monotonic */
} cat_slot;

static struct {
    pthread_once_t once;
    cat_slot *slots;
    size_t n;
    int ttl_ms;
} cache = {PTHREAD_ONCE_INIT, NULL, 0, 0};

static size_t cache_slots_wanted;
static int cache_ttl_wanted;

static void cache_init(void)
{
    if (cache_ttl_wanted <= 0 || cache_slots_wanted == 0)
        return;
    cache.slots = calloc(cache_slots_wanted, sizeof *cache.slots);
    if (!cache.slots)
        return; /* no cache: every request asks PostgreSQL */
    for (size_t i = 0; i < cache_slots_wanted; i++)
        pthread_mutex_init(&cache.slots[i].mu, NULL);
    cache.n = cache_slots_wanted;
    cache.ttl_ms = cache_ttl_wanted;
}

static cat_slot *cache_slot(const char *key)
{
    if (!cache.n)
        return NULL;
    return &cache.slots[ons_hash64(0, key, strlen(key)) % cache.n];
}

static void reply_body(ing_req *r, const char *body, size_t len, const char *etag)
{
    char cc[48];
    snprintf(cc, sizeof cc, "public, max-age=%lld", r->app->o.catalog_max_age_s);
    const char *headers[] = {"Cache-Control", cc, NULL};
    ing_reply_etag(r, "application/json", body, len, etag, headers);
}

/* Replies from the cache when it holds a fresh answer to key. */
static int cache_reply(ing_req *r, const char *key)
{
    cat_slot *s = cache_slot(key);
    if (!s)
        return 0;
    int hit = 0;
    pthread_mutex_lock(&s->mu);
    if (s->key && strcmp(s->key, key) == 0 && ons_mono_ms() < s->expires_ms) {
        reply_body(r, s->body, s->len, s->etag); /* copies the body */
        hit = 1;
    }
    pthread_mutex_unlock(&s->mu);
    return hit;
}

static void cache_store(const char *key, const char *body, size_t len, const char *etag)
{
    cat_slot *s = cache_slot(key);
    if (!s)
        return;
    char *k = strdup(key), *b = malloc(len + 1);
    if (!k || !b) {
        free(k);
        free(b);
        return;
    }
    memcpy(b, body, len + 1);
    pthread_mutex_lock(&s->mu);
    free(s->key);
    free(s->body);
    s->key = k;
    s->body = b;
    s->len = len;
    memcpy(s->etag, etag, sizeof s->etag);
    s->expires_ms = ons_mono_ms() + cache.ttl_ms;
    pthread_mutex_unlock(&s->mu);
}

/* ---- the job ------------------------------------------------------------------------ */

typedef struct catalog_job {
    cat_query q;
    char *key; /* the raw query string, the cache key */
} catalog_job;

static void catalog_job_free(void *p)
{
    catalog_job *j = p;
    if (!j)
        return;
    cat_query_clear(&j->q);
    free(j->key);
    free(j);
}

/* Replies with pg's page (rendered, cached, ETag); w: the job thread or NULL. */
static void reply_page(ing_req *r, ing_worker *w, const catalog_job *j, cat_page *pg)
{
    size_t len = 0;
    char *text = cat_page_render(&j->q, pg, &len);
    cat_page_clear(pg);
    if (!text) {
        ing_fail(r, w, ING_E_OVERLOADED, NULL);
        return;
    }
    char etag[ONS_ETAG_SIZE];
    ons_etag(text, len, etag);
    cache_store(j->key, text, len, etag);
    reply_body(r, text, len, etag);
    free(text);
}

static void catalog_job_run(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    catalog_job *j = r->job;
    cat_page pg;
    int rc = cat_search(w, &j->q, (int)r->app->o.catalog_rank_window,
                        r->app->o.catalog_fuzzy_threshold_pct, r->rid, &pg);
    if (rc == ONS_ENOMEM) {
        ing_fail(r, w, ING_E_OVERLOADED, NULL);
        return;
    }
    if (rc) {
        ing_failf(r, w, ING_E_UNAVAILABLE, NULL, "The catalog is unavailable; retry shortly.");
        return;
    }
    reply_page(r, w, j, &pg);
}

/* The search from the node's index, on the nng thread: it takes tens to
 * hundreds of microseconds (docs/search.md "What it costs"), less than
 * handing it to a job thread would. 0: answered; -1: no index serves. */
static int index_reply(ing_req *r, catalog_job *j)
{
    cat_ix *ix = cat_feed_index(r->app->catalog_feed);
    if (!ix)
        return -1;
    const ing_opts *o = &r->app->o;
    cat_ix_params p = {(int)o->catalog_fuzzy_threshold_pct, (int)o->catalog_fuzzy_max_words, 0};
    cat_page pg;
    if (cat_ix_search(ix, &j->q, &p, ons_wall_ms() * 1000, &pg)) {
        ing_fail(r, NULL, ING_E_OVERLOADED, NULL);
        return 0;
    }
    reply_page(r, NULL, j, &pg);
    return 0;
}

/* ---- the handler -------------------------------------------------------------------- */

void ing_route_events_list(ing_req *r)
{
    nng_http_req *hreq = r->hreq;
    const char *uri = hreq ? nng_http_req_get_uri(hreq) : NULL;
    const char *qs = uri ? strchr(uri, '?') : NULL;
    qs = qs ? qs + 1 : "";
    const ing_opts *o = &r->app->o;
    cache_ttl_wanted =
        (int)(o->catalog_cache_ttl_ms < o->catalog_max_age_s * 1000 ? o->catalog_cache_ttl_ms
                                                                    : o->catalog_max_age_s * 1000);
    cache_slots_wanted = (size_t)o->catalog_cache_slots;
    pthread_once(&cache.once, cache_init);
    if (strlen(qs) <= CAT_QUERY_MAX && cache_reply(r, qs))
        return;
    cat_limits lim = {(int)o->catalog_default_limit, (int)o->catalog_max_limit,
                      (int)o->catalog_max_terms, (double)o->catalog_max_km};
    catalog_job *j = ing_req_job(r, sizeof *j, catalog_job_free);
    cat_error err;
    if (!j)
        return;
    if (!(j->key = strdup(qs))) {
        ing_fail(r, NULL, ING_E_OVERLOADED, NULL);
        return;
    }
    if (cat_parse(qs, &lim, &j->q, &err)) {
        ing_failf(r, NULL, err.id, err.field, "%s", err.message);
        return;
    }
    if (index_reply(r, j) == 0)
        return;
    ing_req_submit(r, catalog_job_run);
}
