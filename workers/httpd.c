/* httpd.c - /metrics and /healthz over the common HTTP server module
 * (common/httpd.h); see httpd.h. */
#include "workers/httpd.h"
#include "common/err.h"
#include "common/httpd.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of a request body nng reads (and drops: both routes are GETs). */
#define BODY_LIMIT 4096

typedef struct wk_route {
    const char *name;
    const char *method;
    const char *pattern;
    void (*handler)(wk_httpd *h, ons_httpd_pending *p);
} wk_route;

struct wk_httpd {
    nng_http_server *http;
    ons_metrics *m;
    ons_httpd_live live; /* never used to defer: every reply is immediate */
};

/* Finishes the request's aio with status, body and headers (name/value
 * pairs, NULL-terminated, or NULL). */
static void reply(wk_httpd *h, ons_httpd_pending *p, int status, const char *ctype,
                  const char *body, const char *const *headers)
{
    nng_http_res *res = ons_httpd_res_new(status, headers, ctype, body, strlen(body), 0);
    ons_httpd_finish(&h->live, p, res, 0);
}

static void on_metrics(wk_httpd *h, ons_httpd_pending *p)
{
    char *text = ons_metrics_render(h->m);
    if (!text) {
        reply(h, p, 500, "text/plain", "out of memory\n", NULL);
        return;
    }
    reply(h, p, 200, "text/plain; version=0.0.4", text, NULL);
    free(text);
}

static void on_healthz(wk_httpd *h, ons_httpd_pending *p)
{
    reply(h, p, 200, "application/json", "{\"status\":\"ok\"}\n", NULL);
}

static const wk_route routes[] = {
    {"metrics", "GET", "/metrics", on_metrics},
    {"healthz", "GET", "/healthz", on_healthz},
};

static const ons_httpd_table route_table =
    ONS_HTTPD_TABLE_INIT(routes, sizeof routes / sizeof *routes, wk_route, 0);

static json_t *error_body(const char *code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static json_t *error_body(const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *body = ons_httpd_error_body(code, NULL, fmt, ap);
    va_end(ap);
    return body;
}

/* Every request: route it, then answer at once (404/405 as JSON errors). */
static void on_http(nng_aio *aio)
{
    nng_http_req *hreq = nng_aio_get_input(aio, 0);
    wk_httpd *h = nng_http_handler_get_data(nng_aio_get_input(aio, 1));
    ons_httpd_pending p = {.aio = aio};
    char method[8], path[64];
    const char *params[1];
    int nparams;
    ons_httpd_err e;
    long ri = ons_httpd_route(&route_table, hreq, method, sizeof method, path, NULL, sizeof path,
                              params, 1, &nparams, &e);
    if (ri >= 0) {
        routes[ri].handler(h, &p);
        return;
    }
    json_t *body = error_body(e.code, "%s", e.message);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    const char *allow[] = {"Allow", e.allow, NULL}; /* a 405's methods */
    reply(h, &p, e.status, "application/json", text ? text : "", e.allow[0] ? allow : NULL);
    free(text);
}

int wk_httpd_start(int port, ons_metrics *m, wk_httpd **out)
{
    wk_httpd *h = calloc(1, sizeof *h);
    if (!h)
        return ONS_ENOMEM;
    h->m = m;
    ons_httpd_live_init(&h->live);
    int rc = ons_httpd_listen("127.0.0.1", port, BODY_LIMIT, on_http, h, &h->http);
    if (rc) {
        wk_httpd_stop(h);
        return rc;
    }
    *out = h;
    return 0;
}

void wk_httpd_stop(wk_httpd *h)
{
    if (!h)
        return;
    ons_httpd_close(&h->http);
    ons_httpd_live_fini(&h->live);
    free(h);
}
