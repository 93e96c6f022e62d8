/*
 * routes_history.c - GET /v1/admin/history?minutes=N (admin): the ops
 * dashboard's history panel, read back from Prometheus (ops.prometheus_url)
 * through the recording rules of scripts/ha/rules.yml. Ingress keeps no
 * history of its own: the live panels count from its own /metrics, the
 * past comes from what Prometheus scraped of every process.
 */
#include "common/err.h"
#include "ingress/api_error.h"
#include "ingress/json_io.h"
#include "ingress/prometheus.h"
#include "ingress/routes.h"

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <stdlib.h>
#include <string.h>

#define HISTORY_MINUTES_DEFAULT 30
#define HISTORY_MINUTES_MAX     1440 /* a day: the dashboard's widest view */
#define HISTORY_POINTS          120  /* samples per series, whatever the span */
#define HISTORY_STEP_MIN_S      2    /* Prometheus' scrape interval (prometheus.yml.in) */

/* What the panel shows: one series each (aggregated). */
static const struct {
    const char *name, *expr;
} series[] = {
    {"lag", "onsale:worker_lag:sum"},
    {"drain_rate", "onsale:worker_applied:rate1m"},
    {"requests_rate", "sum(onsale:ingress_requests:rate1m)"},
    {"error_ratio", "onsale:ingress_5xx:ratio_rate1m"},
    {"join_p99_seconds", "onsale:join_latency_seconds:p99_1m"},
    {"replica_lag_seconds", "onsale:replica_lag_seconds:max"},
};

typedef struct history_job {
    int minutes;
} history_job;

/* minutes from the query string: 0, or -1 (replied 400). */
static int parse_query(ing_req *r, const char *qs, int *minutes)
{
    *minutes = HISTORY_MINUTES_DEFAULT;
    int seen = 0;
    while (*qs) {
        size_t len = strcspn(qs, "&");
        const char *eq = memchr(qs, '=', len);
        size_t klen = eq ? (size_t)(eq - qs) : len;
        if (klen != 7 || strncmp(qs, "minutes", 7) != 0) {
            ing_failf(r, NULL, ING_E_UNKNOWN_FIELD, NULL, "Only minutes may be given.");
            return -1;
        }
        char val[16] = "", *end;
        size_t vlen = eq ? len - klen - 1 : 0;
        if (vlen && vlen < sizeof val)
            memcpy(val, eq + 1, vlen);
        long v = strtol(val, &end, 10);
        if (seen++ || !vlen || vlen >= sizeof val || *end || v < 1 || v > HISTORY_MINUTES_MAX) {
            ing_failf(r, NULL, ING_E_INVALID_FIELD, "minutes",
                      "minutes must be given once, an integer from 1 to %d.", HISTORY_MINUTES_MAX);
            return -1;
        }
        *minutes = (int)v;
        qs += len + (qs[len] == '&');
    }
    return 0;
}

static void history_job_run(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    const history_job *j = r->job;
    int64_t end = ing_now_ms() / 1000, start = end - (int64_t)j->minutes * 60;
    int step = j->minutes * 60 / HISTORY_POINTS;
    if (step < HISTORY_STEP_MIN_S)
        step = HISTORY_STEP_MIN_S;
    json_t *out = json_object();
    if (!out) {
        ing_fail(r, w, ING_E_OVERLOADED, NULL);
        return;
    }
    for (size_t i = 0; i < sizeof series / sizeof series[0]; i++) {
        json_t *values;
        int rc = ing_prom_range(r->app->o.ops_prometheus_url, series[i].expr, start, end, step,
                                (int)r->app->o.ops_prometheus_timeout_ms, &values);
        if (rc) {
            json_decref(out);
            ing_failf(r, w, ING_E_UNAVAILABLE, NULL,
                      "Prometheus did not answer (ops.prometheus_url); retry shortly.");
            return;
        }
        json_object_set_new(out, series[i].name, values);
    }
    ing_reply_json(r, 200,
                   json_pack("{s:i, s:i, s:I, s:I, s:o}", "minutes", j->minutes, "step_s", step,
                             "start", (json_int_t)start, "end", (json_int_t)end, "series", out));
}

void ing_route_admin_history(ing_req *r)
{
    nng_http_req *hreq = r->hreq;
    const char *uri = hreq ? nng_http_req_get_uri(hreq) : NULL;
    const char *qs = uri ? strchr(uri, '?') : NULL;
    int minutes;
    if (parse_query(r, qs ? qs + 1 : "", &minutes))
        return;
    if (!r->app->o.ops_prometheus_url[0]) {
        ing_fail(r, NULL, ING_E_HISTORY_NOT_CONFIGURED, NULL);
        return;
    }
    history_job *j = malloc(sizeof *j);
    if (!j) {
        ing_fail(r, NULL, ING_E_OVERLOADED, NULL);
        return;
    }
    j->minutes = minutes;
    r->job = j;
    r->job_free = free;
    ing_req_submit(r, history_job_run);
}
