/*
 * prometheus.h - reading history back from Prometheus (the ops dashboard's
 * history panel, GET /v1/admin/history; docs/scaling.md "Monitoring").
 *
 * One blocking HTTP GET of /api/v1/query_range per call, over the one HTTP
 * client (common/httpc.h): call it from a job thread only. The expression must yield at
 * most one series (aggregate it: sum(), max()); its samples come back as a
 * JSON array of [unix_seconds, value] pairs, value a number (NaN and
 * infinities as null).
 */
#ifndef ONSALE_INGRESS_PROMETHEUS_H
#define ONSALE_INGRESS_PROMETHEUS_H

#include <jansson.h>
#include <stdint.h>

/* *out := the samples of expr from start_s to end_s every step_s seconds
 * (an empty array when Prometheus has none). base_url: "http://host:port"
 * (a path prefix is kept). Returns 0, ONS_EINVAL (bad URL or arguments),
 * ONS_ETIMEDOUT (no answer within timeout_ms), ONS_EIO (unreachable, not
 * 200, or not a matrix answer; logged) or ONS_ENOMEM. */
int ing_prom_range(const char *base_url, const char *expr, int64_t start_s, int64_t end_s,
                   int step_s, int timeout_ms, json_t **out);

#endif
