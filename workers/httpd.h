/*
 * httpd.h - the worker's small HTTP endpoint on 127.0.0.1: GET /metrics
 * (Prometheus text, rendered from the registry) and GET /healthz.
 *
 * Served by the common HTTP server module (common/httpd.h) on nng's task
 * threads; a handler only renders the registry (a short critical section)
 * and never blocks. Other paths get a JSON 404, other methods a 405.
 */
#ifndef ONSALE_WORKERS_HTTPD_H
#define ONSALE_WORKERS_HTTPD_H

#include "common/metrics.h"

typedef struct wk_httpd wk_httpd;

/* The metrics.port line of an options.def (common/opts.h: X is the .def's
 * X) whose struct holds the port in field, def its default:
 * wk_httpd_start's port. */
#define WK_HTTPD_PORT_ROW(X, field, def)                                                           \
    X(field, ONS_OPT_INT, "metrics.port", 0, 65535, def,                                           \
      "GET /metrics and /healthz on 127.0.0.1 (0 = off)")

/* Starts serving on 127.0.0.1:port. *out is owned by the caller
 * (wk_httpd_stop). Returns 0 or ONS_EIO (could not listen). */
int wk_httpd_start(int port, ons_metrics *m, wk_httpd **out);

/* Stops serving and frees. NULL is fine. */
void wk_httpd_stop(wk_httpd *h);

#endif
