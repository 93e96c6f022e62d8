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
 * finished and just frees. The cancel routine is given the live list, never
 * the request, so a racing reply cannot leave it a dangling pointer.
 */
#include "admin/gateway/gateway.h"
#include "common/err.h"
#include "common/httpd.h"
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Statuses with their own metric series; anything else counts as "other".
 * "0" stands for a dropped connection (no response). */
static const int tracked_status[] = {0, 200, 400, 401, 402, 404, 405, 409, 413, 415, 422, 500, 503};

/* The route table as the HTTP module reads it. count is filled at start:
 * gw_route_count is not a constant. */
static ons_httpd_table route_table = ONS_HTTPD_TABLE_INIT(gw_routes, 0, gw_route, 0);

struct gw_server {
    gw_app *app;
    nng_http_server *http;
    ons_httpd_live live; /* deferred requests whose aio is not finished */
    ons_httpd_stats *stats;
    ons_httpd_rid rid;
};

int64_t gw_mono_ns(void)
{
    return ons_httpd_mono_ns();
}

/* ---- metrics and logs ------------------------------------------------------------- */

/* Counts and times one finished request (status 0: dropped) and logs it. */
static void account(gw_req *r, int status)
{
    gw_server *s = r->srv;
    double secs = (double)(gw_mono_ns() - r->t0_ns) / 1e9;
    ons_httpd_stats_observe(s->stats, r->route ? r->route - gw_routes : -1, status, secs);
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
    ons_httpd_finish(&r->srv->live, &r->pend, res, rv);
    req_free(r);
}

void gw_reply(gw_req *r, int status, const char *json_text, int replayed)
{
    gw_reply_text(r, status, "application/json", json_text, replayed);
}

void gw_reply_text(gw_req *r, int status, const char *content_type, const char *text, int replayed)
{
    const char *h[11] = {"Request-Id", r->rid, "Cache-Control", "no-store"};
    size_t n = 4;
    if (r->allow[0]) {
        h[n++] = "Allow";
        h[n++] = r->allow;
    }
    if (r->idem[0]) {
        h[n++] = "Idempotency-Key";
        h[n++] = r->idem;
    }
    if (replayed) {
        h[n++] = "Idempotent-Replayed";
        h[n++] = "true";
    }
    h[n] = NULL;
    nng_http_res *res =
        ons_httpd_res_new(status, h, content_type, text, text ? strlen(text) : 0, 0);
    account(r, res ? status : 0);
    finish(r, res, res ? 0 : NNG_ENOMEM);
}

void gw_reply_error(gw_req *r, int status, const char *code, const char *field, const char *fmt,
                    ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *e = ons_httpd_error_body(code, field, fmt, ap);
    va_end(ap);
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
    ons_httpd_live_add(&r->srv->live, &r->pend);
    r->on_timer = fn;
    /* After a successful add the timer thread may already own r. */
    return gw_timer_add(r->app->timer, delay_ms, on_timer, r);
}

/* ---- routing -------------------------------------------------------------------------- */

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
    const char *params[1] = {NULL};
    int nparams = 0;
    ons_httpd_err e;
    long ri = ons_httpd_route(&route_table, hreq, r->method, sizeof r->method, r->path, r->segs,
                              sizeof r->path, params, 1, &nparams, &e);
    if (ri < 0) {
        snprintf(r->allow, sizeof r->allow, "%s", e.allow);
        gw_reply_error(r, e.status, e.code, NULL, "%s", e.message);
        return;
    }
    const gw_route *route = &gw_routes[ri];
    r->route = route;
    r->param = params[0];
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
        if (ons_httpd_body_check(hreq, app->o.max_body, 1, &data, &len, &e) ||
            ons_httpd_body_parse(data, len, &r->body, &e)) {
            gw_reply_error(r, e.status, e.code, NULL, "%s", e.message);
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
    r->pend.aio = aio;
    ons_httpd_rid_next(&s->rid, "req_", r->rid, sizeof r->rid);
    dispatch(s, r, hreq);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

int gw_server_start(gw_app *app, gw_server **out)
{
    gw_server *s = calloc(1, sizeof *s);
    if (!s)
        return ONS_ENOMEM;
    ons_httpd_live_init(&s->live);
    ons_httpd_rid_init(&s->rid);
    s->app = app;
    route_table.count = gw_route_count;
    ons_httpd_stats_opts so = {
        .metrics = app->metrics,
        .requests_name = "onsale_gateway_requests_total",
        .requests_help = "HTTP requests by route and status (0: connection dropped without a "
                         "response).",
        .seconds_name = "onsale_gateway_request_seconds",
        .seconds_help = "HTTP request latency by route, seconds (injected delays included).",
        .tracked = tracked_status,
        .ntracked = sizeof tracked_status / sizeof *tracked_status,
    };
    if (ons_httpd_stats_new(&so, &route_table, &s->stats))
        goto nomem;
    int rc =
        ons_httpd_listen(app->o.bind, app->o.port, app->o.body_read_limit, on_http, s, &s->http);
    if (rc) {
        gw_server_free(s);
        return rc;
    }
    *out = s;
    return 0;
nomem:
    gw_server_free(s);
    return ONS_ENOMEM;
}

void gw_server_stop(gw_server *s)
{
    if (s)
        ons_httpd_close(&s->http);
}

void gw_server_free(gw_server *s)
{
    if (!s)
        return;
    gw_server_stop(s);
    ons_httpd_stats_free(s->stats);
    ons_httpd_live_fini(&s->live);
    free(s);
}
