/* prometheus.c - query_range over nng's HTTP client; see prometheus.h. */
#include "ingress/prometheus.h"
#include "common/err.h"
#include "common/log.h"

#include <math.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
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

/* One GET: 0 with the 200 body in *body (malloc'd, NUL-ended), or an ONS_E code. */
static int http_get(const char *url_text, int timeout_ms, char **body)
{
    nng_url *url = NULL;
    nng_http_client *cli = NULL;
    nng_http_req *req = NULL;
    nng_http_res *res = NULL;
    nng_aio *aio = NULL;
    int rc = ONS_EINVAL;
    *body = NULL;
    if (nng_url_parse(&url, url_text) != 0)
        goto out;
    rc = ONS_ENOMEM;
    if (nng_http_client_alloc(&cli, url) || nng_http_req_alloc(&req, url) ||
        nng_http_res_alloc(&res) || nng_aio_alloc(&aio, NULL, NULL))
        goto out;
    nng_aio_set_timeout(aio, timeout_ms);
    nng_http_client_transact(cli, req, res, aio);
    nng_aio_wait(aio);
    int err = nng_aio_result(aio);
    if (err) {
        rc = err == NNG_ETIMEDOUT ? ONS_ETIMEDOUT : ONS_EIO;
        ons_log_warn("prometheus %s: %s", url_text, nng_strerror(err));
        goto out;
    }
    if (nng_http_res_get_status(res) != 200) {
        rc = ONS_EIO;
        ons_log_warn("prometheus %s: HTTP %d", url_text, (int)nng_http_res_get_status(res));
        goto out;
    }
    void *data;
    size_t len;
    nng_http_res_get_data(res, &data, &len);
    if (!(*body = malloc(len + 1)))
        goto out;
    memcpy(*body, data, len);
    (*body)[len] = '\0';
    rc = 0;
out:
    nng_aio_free(aio);
    nng_http_res_free(res);
    nng_http_req_free(req);
    nng_http_client_free(cli);
    nng_url_free(url);
    return rc;
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
    char q[1024], url[2048];
    *out = NULL;
    if (!base_url || !*base_url || step_s < 1 || end_s < start_s || url_encode(expr, q, sizeof q) ||
        snprintf(url, sizeof url, "%s/api/v1/query_range?query=%s&start=%lld&end=%lld&step=%d",
                 base_url, q, (long long)start_s, (long long)end_s, step_s) >= (int)sizeof url)
        return ONS_EINVAL;
    char *body;
    int rc = http_get(url, timeout_ms, &body);
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
