/*
 * faults.h - the gateway simulator's fault knobs and its seeded dice.
 *
 * The knobs start from the options (gateway.latency_ms, ...) and can be
 * changed at runtime through POST /v1/_faults. Each first attempt of a
 * charge or refund asks for a plan: how long to wait before answering, and
 * which fault (if any) to inject. The dice are one splitmix64 generator
 * seeded from gateway.seed and every plan draws the same number of values,
 * so a run with the same seed and the same request order makes the same
 * decisions. Replays, conflicts and GETs never consult the dice.
 *
 * One mutex guards knobs and generator; every function is thread-safe.
 */
#ifndef ONSALE_ADMIN_GATEWAY_FAULTS_H
#define ONSALE_ADMIN_GATEWAY_FAULTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define GW_DELAY_MAX_MS 600000 /* upper bound of latency, jitter and hang_ms */

typedef struct gw_faults {
    long long latency_ms;        /* added to every first attempt */
    long long latency_jitter_ms; /* plus uniform 0..jitter */
    long long hang_ms;           /* a hang closes the connection after this long */
    double decline_rate;         /* charges: generic_decline regardless of card */
    double error_rate;           /* 500 or 503, nothing charged, key released */
    double hang_rate;            /* no answer within hang_ms, then the connection closes */
    int hang_after_charge;       /* a hang charges first (the response is what is lost) */
    double lost_response_rate;   /* the result is stored, the connection closes unanswered */
} gw_faults;

enum gw_fault { GW_FAULT_NONE, GW_FAULT_ERROR, GW_FAULT_HANG, GW_FAULT_LOST };

typedef struct gw_plan {
    int64_t delay_ms; /* before the request is processed */
    enum gw_fault fault;
    int error_status; /* GW_FAULT_ERROR: 500 or 503 */
    int decline;      /* charges: decline with generic_decline */
    int hang_after_charge;
    int64_t hang_ms;
} gw_plan;

typedef struct gw_chaos gw_chaos;

/* seed 0 picks one from the clock; *seed_used reports it (for the log). */
int gw_chaos_new(const gw_faults *initial, uint64_t seed, uint64_t *seed_used, gw_chaos **out);
void gw_chaos_free(gw_chaos *c);

void gw_chaos_get(gw_chaos *c, gw_faults *out);
void gw_chaos_set(gw_chaos *c, const gw_faults *f);

/* Rolls the dice for one first attempt. is_charge enables decline. */
void gw_chaos_plan(gw_chaos *c, int is_charge, gw_plan *out);

/* The knobs as a new JSON object (NULL on allocation failure). */
json_t *gw_faults_json(const gw_faults *f);

/* Applies the fields present in patch (an object) to *f, after checking
 * all of them. On an unknown field (ONS_ENOTFOUND) or a wrong type or range
 * (ONS_EINVAL) *field names it (borrowed from patch), msg says why and *f
 * is unchanged. */
int gw_faults_patch(gw_faults *f, json_t *patch, const char **field, char *msg, size_t msglen);

/* Parses a rate "0".."1" (decimal). Returns 0 or ONS_EINVAL. */
int gw_rate_parse(const char *text, double *out);

#endif
