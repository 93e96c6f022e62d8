/* server.c - nng HTTP server, route matching, auth and body checks, reply
 * and aio completion; see server.h. */
#include "ingress/server.h"
#include "common/err.h"
#include "common/log.h"
#include "ingress/json_io.h"

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Statuses with their own metric series; anything else counts as "other". */
static const int tracked_status[] = {200, 201, 202, 204, 400, 401, 403, 404,
                                     405, 409, 413, 415, 422, 429, 500, 503};
#define NSTATUS (sizeof tracked_status / sizeof *tracked_status + 1)

typedef struct route_stats {
    _Atomic(ons_counter *) count[NSTATUS];
    _Atomic(ons_histogram *) latency[NSTATUS];
} route_stats;

struct ing_server {
    ing_app *app;
    nng_http_server *http;
    nng_http_handler *handler;
    pthread_mutex_t mu; /* guards live and each live request's finished */
    ing_req *live;      /* deferred requests whose aio is not finished */
    route_stats *stats; /* [ing_route_count + 1]; the last is "unmatched" */
    uint64_t rid_seed;
    atomic_uint_fast64_t rid_next;
};

int64_t ing_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ing_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- metrics ---------------------------------------------------------------- */

static size_t status_index(int status)
{
    for (size_t i = 0; i + 1 < NSTATUS; i++)
        if (tracked_status[i] == status)
            return i;
    return NSTATUS - 1;
}

static void observe(ing_server *s, const ing_route *route, int status, double seconds)
{
    size_t ri = route ? (size_t)(route - ing_routes) : ing_route_count;
    size_t si = status_index(status);
    route_stats *rs = &s->stats[ri];
    ons_counter *c = atomic_load(&rs->count[si]);
    ons_histogram *h = atomic_load(&rs->latency[si]);
    if (!c || !h) {
        char labels[96], st[8];
        if (si == NSTATUS - 1)
            snprintf(st, sizeof st, "other");
        else
            snprintf(st, sizeof st, "%d", status);
        snprintf(labels, sizeof labels, "route=\"%s\",status=\"%s\"",
                 route ? route->name : "unmatched", st);
        c = ons_metrics_counter(s->app->metrics, "onsale_ingress_requests_total",
                                "HTTP requests by route and status.", labels);
        h = ons_metrics_histogram(s->app->metrics, "onsale_ingress_request_seconds",
                                  "HTTP request latency by route and status, seconds.", labels,
                                  ons_latency_buckets, ons_latency_buckets_n);
        atomic_store(&rs->count[si], c);
        atomic_store(&rs->latency[si], h);
    }
    if (c)
        ons_counter_add(c, 1);
    if (h)
        ons_histogram_observe(h, seconds);
}

/* ---- replies ------------------------------------------------------------------ */

static void req_free(ing_req *r)
{
    if (r->job && r->job_free)
        r->job_free(r->job);
    json_decref(r->body);
    free(r->raw);
    free(r);
}

/* Finishes the aio with res unless the client went away first, then frees
 * r. Runs on any thread, exactly once per request. */
static void finish(ing_req *r, nng_http_res *res)
{
    ing_server *s = r->srv;
    int mine = 1;
    if (r->deferred) {
        pthread_mutex_lock(&s->mu);
        mine = !r->finished;
        r->finished = 1;
        if (mine) {
            if (r->prev)
                r->prev->next = r->next;
            else
                s->live = r->next;
            if (r->next)
                r->next->prev = r->prev;
        }
        pthread_mutex_unlock(&s->mu);
    }
    nng_aio *aio = r->aio;
    if (mine) {
        if (res) {
            nng_aio_set_output(aio, 0, res);
            nng_aio_finish(aio, 0);
        } else {
            nng_aio_finish(aio, NNG_ENOMEM);
        }
    } else {
        if (res)
            nng_http_res_free(res);
        if (s->app->cancelled_requests)
            ons_counter_add(s->app->cancelled_requests, 1);
    }
    req_free(r);
}

/* The cancel routine nng calls when the connection closes while a job holds
 * the request: finish the aio now; the job frees the request later. */
static void on_cancel(nng_aio *aio, void *arg, int rv)
{
    ing_server *s = arg;
    ing_req *r;
    pthread_mutex_lock(&s->mu);
    for (r = s->live; r; r = r->next)
        if (r->aio == aio && !r->finished)
            break;
    if (r) {
        r->finished = 1;
        if (r->prev)
            r->prev->next = r->next;
        else
            s->live = r->next;
        if (r->next)
            r->next->prev = r->prev;
    }
    pthread_mutex_unlock(&s->mu);
    if (r)
        nng_aio_finish(aio, rv);
}

/* The one reply path. static_body: data outlives the server (not copied).
 * headers: name/value pairs, NULL-terminated, or NULL; a "Cache-Control"
 * among them replaces the default no-store. */
static void reply(ing_req *r, int status, const char *content_type, const void *data, size_t len,
                  int static_body, const char *const *headers)
{
    ing_server *s = r->srv;
    nng_http_res *res = NULL;
    if (nng_http_res_alloc(&res) == 0) {
        char ra[16];
        const char *cache = "no-store";
        int rc = nng_http_res_set_status(res, (uint16_t)status);
        rc |= nng_http_res_set_header(res, "X-Request-Id", r->rid);
        for (size_t i = 0; headers && headers[i] && headers[i + 1]; i += 2) {
            if (strcasecmp(headers[i], "Cache-Control") == 0)
                cache = headers[i + 1];
            else
                rc |= nng_http_res_set_header(res, headers[i], headers[i + 1]);
        }
        rc |= nng_http_res_set_header(res, "Cache-Control", cache);
        if (r->retry_after > 0) {
            snprintf(ra, sizeof ra, "%d", r->retry_after);
            rc |= nng_http_res_set_header(res, "Retry-After", ra);
        }
        if (data) {
            rc |= nng_http_res_set_header(res, "Content-Type", content_type);
            if (static_body)
                rc |= nng_http_res_set_data(res, data, len);
            else
                rc |= nng_http_res_copy_data(res, data, len);
        }
        if (rc) {
            nng_http_res_free(res);
            res = NULL;
        }
    }
    double secs = (double)(ing_mono_ns() - r->t0_ns) / 1e9;
    observe(s, r->route, status, secs);
    /* One line per request at debug level (an info line per request cost
     * ~10% of a poll's CPU); failures still log at warn, with the id. */
    if (s->app->o.log_requests || status >= 500)
        ons_logk(status >= 500 ? ONS_LOG_WARN : ONS_LOG_DEBUG, "request_id", r->rid,
                 "%s %s %d %.2fms user=%lld", r->method, r->route ? r->route->name : "unmatched",
                 status, secs * 1e3, (long long)r->who.user_id);
    finish(r, res);
}

void ing_reply_text(ing_req *r, int status, const char *content_type, const char *text, size_t len)
{
    reply(r, status, content_type, text, len, 0, NULL);
}

void ing_reply_static(ing_req *r, const char *content_type, const void *data, size_t len,
                      const char *etag, const char *const *headers)
{
    const char *inm = r->hreq ? nng_http_req_get_header(r->hreq, "If-None-Match") : NULL;
    const char *h[2 * ING_STATIC_HEADERS_MAX + 3];
    size_t n = 0;
    for (size_t i = 0;
         headers && headers[i] && headers[i + 1] && n + 2 < 2 * ING_STATIC_HEADERS_MAX; i += 2) {
        h[n++] = headers[i];
        h[n++] = headers[i + 1];
    }
    if (etag) {
        h[n++] = "ETag";
        h[n++] = etag;
    }
    h[n] = NULL;
    if (etag && inm && strstr(inm, etag))
        reply(r, 304, NULL, NULL, 0, 1, h);
    else
        reply(r, 200, content_type, data, len, 1, h);
}

void ing_reply_raw(ing_req *r, int status, const char *json_text)
{
    ing_reply_text(r, status, "application/json", json_text, json_text ? strlen(json_text) : 0);
}

void ing_reply_json(ing_req *r, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (body && !text) {
        r->retry_after = 1;
        ing_reply_raw(r, 503,
                      "{\"error\":{\"code\":\"unavailable\",\"message\":\"Out of memory.\"}}");
        return;
    }
    ing_reply_raw(r, status, text);
    free(text);
}

void ing_req_submit(ing_req *r, ing_job_fn fn)
{
    ing_server *s = r->srv;
    pthread_mutex_lock(&s->mu);
    r->deferred = 1;
    r->prev = NULL;
    r->next = s->live;
    if (s->live)
        s->live->prev = r;
    s->live = r;
    pthread_mutex_unlock(&s->mu);
    nng_aio_defer(r->aio, on_cancel, s);
    if (ing_pool_submit(s->app->pool, fn, r, 0) != 0) {
        r->retry_after = 1;
        ing_reply_error(r, 503, "overloaded", NULL, "The server is busy; retry shortly.");
    }
}

/* ---- routing -------------------------------------------------------------------- */

/* Path characters we accept: no percent-encoding. nng 1.5.2 decodes URIs
 * with known bugs, so we read the raw URI ourselves. A '.' is allowed for
 * asset names (fan.js) but never at the start of a segment, so there are no
 * dot segments ("..") and no hidden names. */
static int path_char_ok(const char *path, size_t i)
{
    char c = path[i];
    if (c == '.')
        return i > 0 && path[i - 1] != '/';
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' ||
           c == '-' || c == '_';
}

/* Splits path (in place) into segments. Returns the count or -1. */
static int split(char *path, char **segs, int max)
{
    if (path[0] != '/')
        return -1;
    int n = 0;
    char *p = path + 1;
    for (;;) {
        if (n == max)
            return -1;
        segs[n++] = p;
        char *slash = strchr(p, '/');
        if (!slash)
            break;
        *slash = '\0';
        p = slash + 1;
    }
    return n;
}

/* Matches route pattern against segments; fills params. */
static int match(const char *pattern, char **segs, int nseg, const char **params, int *nparams)
{
    const char *p = pattern + 1;
    int i = 0, np = 0;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (i >= nseg)
            return 0;
        if (len == 2 && p[0] == '{' && p[1] == '}') {
            if (segs[i][0] == '\0' || np == ING_MAX_PARAMS)
                return 0;
            params[np++] = segs[i];
        } else if (strlen(segs[i]) != len || strncmp(segs[i], p, len) != 0) {
            return 0;
        }
        i++;
        if (!end)
            break;
        p = end + 1;
    }
    if (i != nseg)
        return 0;
    *nparams = np;
    return 1;
}

static int is_json_type(const char *ct)
{
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    size_t n = strlen("application/json");
    if (strncasecmp(ct, "application/json", n) != 0)
        return 0;
    ct += n;
    while (*ct == ' ')
        ct++;
    return *ct == '\0' || *ct == ';';
}

/* Everything before the route handler: see server.h for the order. */
static void dispatch(ing_server *s, ing_req *r, nng_http_req *hreq)
{
    ing_app *app = s->app;
    const char *method = nng_http_req_get_method(hreq);
    const char *uri = nng_http_req_get_uri(hreq);
    snprintf(r->method, sizeof r->method, "%s", method ? method : "?");
    size_t n = strcspn(uri ? uri : "", "?");
    if (!uri || n == 0 || n >= sizeof r->pathbuf) {
        ing_reply_error(r, 404, "not_found", NULL, "No such resource.");
        return;
    }
    memcpy(r->pathbuf, uri, n);
    r->pathbuf[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!path_char_ok(r->pathbuf, i)) {
            ing_reply_error(r, 400, "invalid_path", NULL,
                            "The path may contain only letters, digits, '-', '_', '/' and '.' "
                            "inside a name.");
            return;
        }
    }
    char *segs[8];
    int nseg = split(r->pathbuf, segs, 8);
    int wrong_method = 0;
    const ing_route *route = NULL;
    for (size_t i = 0; nseg > 0 && i < ing_route_count; i++) {
        if (!match(ing_routes[i].pattern, segs, nseg, r->params, &r->nparams))
            continue;
        if (strcmp(ing_routes[i].method, r->method) == 0) {
            route = &ing_routes[i];
            break;
        }
        wrong_method = 1;
    }
    if (!route) {
        if (wrong_method)
            ing_reply_error(r, 405, "method_not_allowed", NULL,
                            "This method is not allowed on this resource.");
        else
            ing_reply_error(r, 404, "not_found", NULL, "No such resource.");
        return;
    }
    r->route = route;
    r->hreq = hreq;

    if (route->roles) {
        const char *authz = nng_http_req_get_header(hreq, "Authorization");
        if (!authz ||
            ons_auth_verify_cached(app->auth_cache, authz, ing_now_ms() / 1000, &r->who)) {
            memset(&r->who, 0, sizeof r->who);
            ing_reply_error(r, 401, "unauthorized", NULL, "A valid bearer token is required.");
            return;
        }
        if (!(route->roles & (int)r->who.role)) {
            ing_reply_error(r, 403, "forbidden", NULL, "Your role may not do this.");
            return;
        }
    }

    const char *idem = nng_http_req_get_header(hreq, "Idempotency-Key");
    if (idem) {
        if (!ing_idem_key_valid(idem)) {
            ing_reply_error(r, 400, "invalid_idempotency_key", NULL,
                            "Idempotency-Key must be 1 to 128 printable characters.");
            return;
        }
        snprintf(r->idem, sizeof r->idem, "%s", idem);
    }

    if (route->body) {
        void *data = NULL;
        size_t len = 0;
        nng_http_req_get_data(hreq, &data, &len);
        if (!is_json_type(nng_http_req_get_header(hreq, "Content-Type"))) {
            ing_reply_error(r, 415, "unsupported_media_type", NULL,
                            "The body must be sent as Content-Type: application/json.");
            return;
        }
        if (len > (size_t)app->o.http_max_body) {
            ing_reply_error(r, 413, "payload_too_large", NULL,
                            "The body is larger than %lld bytes.", app->o.http_max_body);
            return;
        }
        r->raw = malloc(len + 1);
        if (!r->raw) {
            r->retry_after = 1;
            ing_reply_error(r, 503, "overloaded", NULL, "Out of memory; retry shortly.");
            return;
        }
        if (len)
            memcpy(r->raw, data, len);
        r->raw[len] = '\0';
        r->raw_len = len;
        json_error_t jerr;
        r->body = json_loadb(r->raw, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!r->body || !json_is_object(r->body)) {
            ing_reply_error(r, 400, "invalid_json", NULL, "The body must be one JSON object (%s).",
                            r->body ? "not an object" : jerr.text);
            return;
        }
    }
    route->handler(r);
}

static void on_http(nng_aio *aio)
{
    nng_http_req *hreq = nng_aio_get_input(aio, 0);
    nng_http_handler *h = nng_aio_get_input(aio, 1);
    ing_server *s = nng_http_handler_get_data(h);
    ing_req *r = calloc(1, sizeof *r);
    if (!r) {
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    r->t0_ns = ing_mono_ns();
    r->srv = s;
    r->app = s->app;
    r->aio = aio;
    uint64_t x = s->rid_seed + atomic_fetch_add(&s->rid_next, 1) * 0x9E3779B97F4A7C15ULL;
    x ^= x >> 31;
    snprintf(r->rid, sizeof r->rid, "%016llx", (unsigned long long)x);
    dispatch(s, r, hreq);
}

/* ---- lifecycle ---------------------------------------------------------------------- */

int ing_server_start(ing_app *app, ing_server **out)
{
    ing_server *s = calloc(1, sizeof *s);
    if (!s)
        return ONS_ENOMEM;
    pthread_mutex_init(&s->mu, NULL);
    s->app = app;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->rid_seed = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
    s->stats = calloc(ing_route_count + 1, sizeof *s->stats);
    if (!s->stats) {
        ing_server_free(s);
        return ONS_ENOMEM;
    }
    char url[300];
    snprintf(url, sizeof url, "http://%s:%lld", app->o.http_bind, app->o.http_port);
    nng_url *u = NULL;
    int rv = nng_url_parse(&u, url);
    if (rv == 0)
        rv = nng_http_server_hold(&s->http, u);
    nng_url_free(u);
    if (rv == 0)
        rv = nng_http_handler_alloc(&s->handler, "/", on_http);
    if (rv == 0) {
        nng_http_handler_set_method(s->handler, NULL);
        nng_http_handler_set_tree(s->handler);
        nng_http_handler_collect_body(s->handler, true, (size_t)app->o.http_body_read_limit);
        nng_http_handler_set_data(s->handler, s, NULL);
        rv = nng_http_server_add_handler(s->http, s->handler);
        if (rv) {
            nng_http_handler_free(s->handler);
        }
        s->handler = NULL; /* owned by the server from now on */
    }
    if (rv == 0)
        rv = nng_http_server_start(s->http);
    if (rv) {
        ons_log_error("http: cannot serve %s: %s", url, nng_strerror(rv));
        ing_server_free(s);
        return ONS_EIO;
    }
    ons_log_info("http: listening on %s", url);
    *out = s;
    return 0;
}

void ing_server_stop(ing_server *s)
{
    if (s && s->http) {
        nng_http_server_stop(s->http);
        nng_http_server_release(s->http);
        s->http = NULL;
    }
}

void ing_server_free(ing_server *s)
{
    if (!s)
        return;
    ing_server_stop(s);
    free(s->stats);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
