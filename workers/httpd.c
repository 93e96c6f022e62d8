/* httpd.c - /metrics and /healthz over nng's HTTP server; see httpd.h. */
#include "workers/httpd.h"
#include "common/err.h"
#include "common/log.h"

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct wk_httpd {
    nng_http_server *srv;
    nng_url *url;
};

static void reply(nng_aio *aio, int status, const char *ctype, const char *body)
{
    nng_http_res *res = NULL;
    if (nng_http_res_alloc(&res) != 0) {
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    nng_http_res_set_status(res, (uint16_t)status);
    nng_http_res_set_header(res, "Content-Type", ctype);
    if (nng_http_res_copy_data(res, body, strlen(body)) != 0) {
        nng_http_res_free(res);
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    nng_aio_set_output(aio, 0, res);
    nng_aio_finish(aio, 0);
}

static void on_metrics(nng_aio *aio)
{
    nng_http_handler *h = nng_aio_get_input(aio, 1);
    ons_metrics *m = nng_http_handler_get_data(h);
    char *text = ons_metrics_render(m);
    if (!text) {
        reply(aio, 500, "text/plain", "out of memory\n");
        return;
    }
    reply(aio, 200, "text/plain; version=0.0.4", text);
    free(text);
}

static void on_healthz(nng_aio *aio)
{
    reply(aio, 200, "application/json", "{\"status\":\"ok\"}\n");
}

static int add(nng_http_server *srv, const char *path, void (*cb)(nng_aio *), void *data)
{
    nng_http_handler *h;
    int rv = nng_http_handler_alloc(&h, path, cb);
    if (rv)
        return rv;
    if ((rv = nng_http_handler_set_method(h, "GET")) != 0 ||
        (rv = nng_http_handler_set_data(h, data, NULL)) != 0 ||
        (rv = nng_http_server_add_handler(srv, h)) != 0) {
        nng_http_handler_free(h);
        return rv;
    }
    return 0;
}

int wk_httpd_start(int port, ons_metrics *m, wk_httpd **out)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    wk_httpd *h = calloc(1, sizeof *h);
    if (!h)
        return ONS_ENOMEM;
    int rv;
    if ((rv = nng_url_parse(&h->url, url)) != 0 ||
        (rv = nng_http_server_hold(&h->srv, h->url)) != 0)
        goto fail;
    if ((rv = add(h->srv, "/metrics", on_metrics, m)) != 0 ||
        (rv = add(h->srv, "/healthz", on_healthz, NULL)) != 0 ||
        (rv = nng_http_server_start(h->srv)) != 0)
        goto fail;
    *out = h;
    return 0;
fail:
    ons_log_error("metrics endpoint on %s: %s", url, nng_strerror(rv));
    if (h->srv)
        nng_http_server_release(h->srv);
    if (h->url)
        nng_url_free(h->url);
    free(h);
    return ONS_EIO;
}

void wk_httpd_stop(wk_httpd *h)
{
    if (!h)
        return;
    nng_http_server_stop(h->srv);
    nng_http_server_release(h->srv);
    nng_url_free(h->url);
    free(h);
}
