/* prometheus.c - query_range over the one HTTP client (common/httpc.h); see
 * prometheus.h. */
#include "ingress/prometheus.h"
#include "common/err.h"
#include "common/log.h"

#include "common/httpc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Percent-encodes s into out (cap bytes, NUL-ended). -1 when it does not fit. */
static int url_encode(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == '~';
        if (n + (plain ? 1 : 3) >= cap)
            return -1;
        if (plain) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
    return 0;
}

/* Query answers are small (about 120 samples): anything larger is refused. */
#define PROM_MAX_ANSWER (1024 * 1024)

/* One GET of path on base_url: 0 with the 200 body in *body (the caller
 * frees it), or an ONS_E code (logged). */
static int http_get(const char *base_url, const char *path, int timeout_ms, char **body)
{
    ons_httpc_url u;
    ons_httpc_resp resp;
    *body = NULL;
    if (ons_httpc_url_parse(base_url, &u))
        return ONS_EINVAL;
    ons_httpc_req req = {.method = "GET", .path = path};
    int rc = ons_httpc_call(&u, &req, timeout_ms, PROM_MAX_ANSWER, &resp);
    if (rc) {
        ons_log_warn("prometheus %s: %s", base_url, ons_strerror(rc));
        return rc;
    }
    if (resp.status != 200) {
        ons_log_warn("prometheus %s: HTTP %d", base_url, resp.status);
        free((void *)resp.body);
        return ONS_EIO;
    }
    *body = (char *)resp.body;
    return 0;
}

/* [[t, "v"], ...] of Prometheus -> [[t, v], ...] with numbers (null: NaN, Inf). */
static json_t *samples(json_t *values)
{
    json_t *arr = json_array(), *pair;
    size_t i;
    json_array_foreach(values, i, pair)
    {
        json_t *t = json_array_get(pair, 0), *v = json_array_get(pair, 1);
        if (!arr || !json_is_number(t) || !json_is_string(v))
            continue;
        double d = strtod(json_string_value(v), NULL);
        json_array_append_new(arr, json_pack("[f, o]", json_number_value(t),
                                             isfinite(d) ? json_real(d) : json_null()));
    }
    return arr;
}

int ing_prom_range(const char *base_url, const char *expr, int64_t start_s, int64_t end_s,
                   int step_s, int timeout_ms, json_t **out)
{
    char q[1024], path[1200];
    *out = NULL;
    if (!base_url || !*base_url || step_s < 1 || end_s < start_s || url_encode(expr, q, sizeof q) ||
        snprintf(path, sizeof path, "/api/v1/query_range?query=%s&start=%lld&end=%lld&step=%d", q,
                 (long long)start_s, (long long)end_s, step_s) >= (int)sizeof path)
        return ONS_EINVAL;
    char *body;
    int rc = http_get(base_url, path, timeout_ms, &body);
    if (rc)
        return rc;
    json_t *doc = json_loads(body, 0, NULL);
    free(body);
    json_t *data = json_object_get(doc, "data");
    json_t *result = json_object_get(data, "result");
    const char *type = json_string_value(json_object_get(data, "resultType"));
    if (!json_is_array(result) || !type || strcmp(type, "matrix") != 0) {
        ons_log_warn("prometheus: not a matrix answer for %s", expr);
        json_decref(doc);
        return ONS_EIO;
    }
    json_t *series = json_array_get(result, 0);
    *out = series ? samples(json_object_get(series, "values")) : json_array();
    json_decref(doc);
    return *out ? 0 : ONS_ENOMEM;
}
