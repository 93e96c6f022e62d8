/*
 * server.c - the HTTP plumbing of onsale-gateway: one nng tree handler on
 * "/" takes every request, matches it against gw_routes, checks auth, body
 * and Idempotency-Key in a fixed order, calls the route's handler and
 * finishes nng's aio with the reply. See gateway.h for the reply contract.
 *
 * Order of checks: route (404/405), auth (401), Idempotency-Key (400),
 * body size (413), Content-Type (415), JSON object (400).
 *
 * A delayed reply stays on a live list so that nng's cancellation (the
 * server stopping) can finish its aio; the request itself is freed only by
 * the reply the handler eventually sends, which then finds the aio already
 * finished and just frees. The cancel routine is given the server, never
 * the request, so a racing reply cannot leave it a dangling pointer.
 */
#include "admin/gateway/gateway.h"
#include "common/err.h"
#include "common/log.h"

#include <nng/supplemental/http/http.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Statuses with their own metric series; anything else counts as "other".
 * "0" stands for a dropped connection (no response). */
static const int tracked_status[] = {0, 200, 400, 401, 402, 404, 405, 409, 413, 415, 422, 500, 503};
#define NSTATUS (sizeof tracked_status / sizeof *tracked_status + 1)

typedef struct route_stats {
    _Atomic(ons_counter *) count[NSTATUS];
    ons_histogram *latency;
} route_stats;

struct gw_server {
    gw_app *app;
    nng_http_server *http;
    pthread_mutex_t mu; /* guards live and every live request's finished */
    gw_req *live;       /* deferred requests whose aio is not finished */
    route_stats *stats; /* [gw_route_count + 1]; the last is "unmatched" */
    uint64_t rid_seed;
    atomic_uint_fast64_t rid_next;
};

int64_t gw_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- metrics and logs ------------------------------------------------------------- */

static size_t status_index(int status)
{
    for (size_t i = 0; i + 1 < NSTATUS; i++)
        if (tracked_status[i] == status)
            return i;
    return NSTATUS - 1;
}

/* Counts and times one finished request (status 0: dropped) and logs it. */
static void account(gw_req *r, int status)
{
    gw_server *s = r->srv;
    size_t ri = r->route ? (size_t)(r->route - gw_routes) : gw_route_count;
    size_t si = status_index(status);
    route_stats *rs = &s->stats[ri];
    ons_counter *c = atomic_load(&rs->count[si]);
    if (!c) {
        char labels[96], st[8];
        if (si == NSTATUS - 1)
            snprintf(st, sizeof st, "other");
        else
            snprintf(st, sizeof st, "%d", status);
        snprintf(labels, sizeof labels, "route=\"%s\",status=\"%s\"",
                 r->route ? r->route->name : "unmatched", st);
        c = ons_metrics_counter(s->app->metrics, "onsale_gateway_requests_total",
                                "HTTP requests by route and status (0: connection dropped "
                                "without a response).",
                                labels);
        atomic_store(&rs->count[si], c);
    }
    double secs = (double)(gw_mono_ns() - r->t0_ns) / 1e9;
    if (c)
        ons_counter_add(c, 1);
    if (rs->latency)
        ons_histogram_observe(rs->latency, secs);
    /* POSTs log at info, reads at debug; server errors always. */
    int post = strcmp(r->method, "POST") == 0;
    if (s->app->o.log_requests || status >= 500) {
        char st[12];
        if (status)
            snprintf(st, sizeof st, "%d", status);
        else
            snprintf(st, sizeof st, "dropped");
        ons_logk(status >= 500 ? ONS_LOG_WARN
                 : post        ? ONS_LOG_INFO
                               : ONS_LOG_DEBUG,
                 r->idem[0] ? "idempotency_key" : "request_id", r->idem[0] ? r->idem : r->rid,
                 "%s %s %s %.1fms request_id=%s", r->method, r->path, st, secs * 1e3, r->rid);
    }
}

/* ---- finishing ---------------------------------------------------------------------- */

static void req_free(gw_req *r)
{
    if (r->ctx && r->ctx_free)
        r->ctx_free(r->ctx);
    json_decref(r->body);
    free(r);
}

/* Finishes the aio with res (rv 0) or with rv (the connection is closed)
 * unless nng cancelled it first, then frees r. Exactly once per request. */
static void finish(gw_req *r, nng_http_res *res, int rv)
{
    gw_server *s = r->srv;
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
    if (mine) {
        if (res && rv == 0) {
            nng_aio_set_output(r->aio, 0, res);
            nng_aio_finish(r->aio, 0);
        } else {
            if (res)
                nng_http_res_free(res);
            nng_aio_finish(r->aio, rv ? rv : NNG_ENOMEM);
        }
    } else if (res) {
        nng_http_res_free(res);
    }
    req_free(r);
}

/* nng's cancel routine (server stopping): finish the aio now; the request
 * is freed later by its own reply. */
static void on_cancel(nng_aio *aio, void *arg, int rv)
{
    gw_server *s = arg;
    gw_req *r;
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

void gw_reply(gw_req *r, int status, const char *json_text, int replayed)
{
    gw_reply_text(r, status, "application/json", json_text, replayed);
}

void gw_reply_text(gw_req *r, int status, const char *content_type, const char *text, int replayed)
{
    nng_http_res *res = NULL;
    int rc = nng_http_res_alloc(&res);
    if (rc == 0) {
        rc |= nng_http_res_set_status(res, (uint16_t)status);
        rc |= nng_http_res_set_header(res, "Request-Id", r->rid);
        rc |= nng_http_res_set_header(res, "Cache-Control", "no-store");
        if (r->idem[0])
            rc |= nng_http_res_set_header(res, "Idempotency-Key", r->idem);
        if (replayed)
            rc |= nng_http_res_set_header(res, "Idempotent-Replayed", "true");
        if (text) {
            rc |= nng_http_res_set_header(res, "Content-Type", content_type);
            rc |= nng_http_res_copy_data(res, text, strlen(text));
        }
    }
    account(r, rc ? 0 : status);
    finish(r, res, rc ? NNG_ENOMEM : 0);
}

void gw_reply_error(gw_req *r, int status, const char *code, const char *field, const char *fmt,
                    ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    json_t *e =
        json_pack("{s:{s:s, s:s, s:s?}}", "error", "code", code, "message", msg, "field", field);
    char *text = e ? json_dumps(e, JSON_COMPACT) : NULL;
    json_decref(e);
    gw_reply(r, status, text, 0);
    free(text);
}

void gw_drop(gw_req *r)
{
    account(r, 0);
    finish(r, NULL, NNG_ECONNRESET);
}

/* The timer's callback: hand the request back to the handler's step. */
static void on_timer(void *arg, int early)
{
    gw_req *r = arg;
    r->early = early;
    r->on_timer(r);
}

int gw_defer(gw_req *r, int64_t delay_ms, void (*fn)(gw_req *r))
{
    gw_server *s = r->srv;
    if (!r->deferred) {
        pthread_mutex_lock(&s->mu);
        r->deferred = 1;
        r->prev = NULL;
        r->next = s->live;
        if (s->live)
            s->live->prev = r;
        s->live = r;
        pthread_mutex_unlock(&s->mu);
        nng_aio_defer(r->aio, on_cancel, s);
    }
    r->on_timer = fn;
    /* After a successful add the timer thread may already own r. */
    return gw_timer_add(r->app->timer, delay_ms, on_timer, r);
}

/* ---- routing -------------------------------------------------------------------------- */

/* Path characters we accept: no percent-encoding, no dot segments (nng
 * 1.5.2's URI decoding has known bugs, so the raw URI is read). */
static int path_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' ||
           c == '-' || c == '_';
}

/* Matches path against pattern; a "{}" segment matches one non-empty
 * segment, returned through *param. */
static int match(const char *pattern, const char *path, const char **param)
{
    while (*pattern && *path) {
        if (pattern[0] == '{' && pattern[1] == '}') {
            size_t n = strcspn(path, "/");
            if (n == 0)
                return 0;
            *param = path;
            path += n;
            pattern += 2;
        } else if (*pattern++ != *path++) {
            return 0;
        }
    }
    return *pattern == '\0' && *path == '\0';
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

/* 1..GW_KEY_MAX printable ASCII characters. */
static int idem_key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > GW_KEY_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (k[i] < 0x20 || k[i] > 0x7e)
            return 0;
    return 1;
}

/* "Bearer <key>" against the configured key, in time independent of where
 * they differ. */
static int authorized(const char *header, const char *key)
{
    if (!header || strncasecmp(header, "Bearer ", 7) != 0)
        return 0;
    const char *got = header + 7;
    size_t n = strlen(key);
    if (strlen(got) != n)
        return 0;
    unsigned char diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(got[i] ^ key[i]);
    return diff == 0;
}

/* Everything before the handler, in the order the file header lists. */
static void dispatch(gw_server *s, gw_req *r, nng_http_req *hreq)
{
    gw_app *app = s->app;
    const char *method = nng_http_req_get_method(hreq);
    const char *uri = nng_http_req_get_uri(hreq);
    snprintf(r->method, sizeof r->method, "%s", method ? method : "?");
    size_t n = strcspn(uri ? uri : "", "?");
    if (!uri || n == 0 || n >= sizeof r->path) {
        gw_reply_error(r, 404, "not_found", NULL, "No such resource.");
        return;
    }
    memcpy(r->path, uri, n);
    r->path[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (!path_char_ok(r->path[i])) {
            gw_reply_error(r, 404, "not_found", NULL, "No such resource.");
            return;
        }
    }
    int wrong_method = 0;
    for (size_t i = 0; i < gw_route_count && !r->route; i++) {
        const char *param = NULL;
        if (!match(gw_routes[i].pattern, r->path, &param))
            continue;
        if (strcmp(gw_routes[i].method, r->method) == 0) {
            r->route = &gw_routes[i];
            r->param = param;
        } else {
            wrong_method = 1;
        }
    }
    const gw_route *route = r->route;
    if (!route) {
        if (wrong_method)
            gw_reply_error(r, 405, "method_not_allowed", NULL,
                           "This method is not allowed on this resource.");
        else
            gw_reply_error(r, 404, "not_found", NULL, "No such resource.");
        return;
    }
    if ((route->flags & GW_AUTH) &&
        !authorized(nng_http_req_get_header(hreq, "Authorization"), app->o.api_key)) {
        gw_reply_error(r, 401, "unauthorized", NULL,
                       "Send the API key as Authorization: Bearer <key>.");
        return;
    }
    if (route->flags & GW_IDEM) {
        const char *key = nng_http_req_get_header(hreq, "Idempotency-Key");
        if (!key) {
            gw_reply_error(r, 400, "missing_idempotency_key", "Idempotency-Key",
                           "This request needs an Idempotency-Key header.");
            return;
        }
        if (!idem_key_ok(key)) {
            gw_reply_error(r, 400, "invalid_idempotency_key", "Idempotency-Key",
                           "Idempotency-Key must be 1 to %d printable ASCII characters.",
                           GW_KEY_MAX);
            return;
        }
        snprintf(r->idem, sizeof r->idem, "%s", key);
    }
    if (route->flags & GW_BODY) {
        void *data = NULL;
        size_t len = 0;
        nng_http_req_get_data(hreq, &data, &len);
        if (len > (size_t)app->o.max_body) {
            gw_reply_error(r, 413, "payload_too_large", NULL, "The body is larger than %lld bytes.",
                           app->o.max_body);
            return;
        }
        if (!is_json_type(nng_http_req_get_header(hreq, "Content-Type"))) {
            gw_reply_error(r, 415, "unsupported_media_type", NULL,
                           "The body must be sent as Content-Type: application/json.");
            return;
        }
        json_error_t jerr;
        r->body = json_loadb(data ? data : "", len, JSON_REJECT_DUPLICATES, &jerr);
        if (!r->body || !json_is_object(r->body)) {
            gw_reply_error(r, 400, "invalid_json", NULL, "The body must be one JSON object (%s).",
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
    gw_server *s = nng_http_handler_get_data(h);
    gw_req *r = calloc(1, sizeof *r);
    if (!r) {
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    r->t0_ns = gw_mono_ns();
    r->srv = s;
    r->app = s->app;
    r->aio = aio;
    uint64_t x = s->rid_seed + atomic_fetch_add(&s->rid_next, 1) * 0x9E3779B97F4A7C15ULL;
    x ^= x >> 31;
    snprintf(r->rid, sizeof r->rid, "req_%016llx", (unsigned long long)x);
    dispatch(s, r, hreq);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

int gw_server_start(gw_app *app, gw_server **out)
{
    nng_http_handler *handler = NULL;
    nng_url *u = NULL;
    char url[300];
    gw_server *s = calloc(1, sizeof *s);
    if (!s)
        return ONS_ENOMEM;
    pthread_mutex_init(&s->mu, NULL);
    s->app = app;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->rid_seed = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
    s->stats = calloc(gw_route_count + 1, sizeof *s->stats);
    if (!s->stats)
        goto nomem;
    for (size_t i = 0; i <= gw_route_count; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "route=\"%s\"",
                 i < gw_route_count ? gw_routes[i].name : "unmatched");
        s->stats[i].latency = ons_metrics_histogram(
            app->metrics, "onsale_gateway_request_seconds",
            "HTTP request latency by route, seconds (injected delays included).", labels,
            ons_latency_buckets, ons_latency_buckets_n);
        if (!s->stats[i].latency)
            goto nomem;
    }
    snprintf(url, sizeof url, "http://%s:%lld", app->o.bind, app->o.port);
    int rv = nng_url_parse(&u, url);
    if (rv == 0)
        rv = nng_http_server_hold(&s->http, u);
    nng_url_free(u);
    if (rv == 0)
        rv = nng_http_handler_alloc(&handler, "/", on_http);
    if (rv == 0) {
        nng_http_handler_set_method(handler, NULL);
        nng_http_handler_set_tree(handler);
        nng_http_handler_collect_body(handler, true, (size_t)app->o.body_read_limit);
        nng_http_handler_set_data(handler, s, NULL);
        rv = nng_http_server_add_handler(s->http, handler);
        if (rv)
            nng_http_handler_free(handler); /* else the server owns it */
    }
    if (rv == 0)
        rv = nng_http_server_start(s->http);
    if (rv) {
        ons_log_error("http: cannot serve %s: %s", url, nng_strerror(rv));
        gw_server_free(s);
        return ONS_EIO;
    }
    ons_log_info("http: listening on %s", url);
    *out = s;
    return 0;
nomem:
    gw_server_free(s);
    return ONS_ENOMEM;
}

void gw_server_stop(gw_server *s)
{
    if (s && s->http) {
        nng_http_server_stop(s->http);
        nng_http_server_release(s->http);
        s->http = NULL;
    }
}

void gw_server_free(gw_server *s)
{
    if (!s)
        return;
    gw_server_stop(s);
    free(s->stats);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
