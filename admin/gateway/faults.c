/* faults.c - fault knobs and seeded fault decisions; see faults.h. */
#include "admin/gateway/faults.h"
#include "common/err.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct gw_chaos {
    pthread_mutex_t mu;
    gw_faults f;
    uint64_t state; /* splitmix64 */
};

int gw_chaos_new(const gw_faults *initial, uint64_t seed, uint64_t *seed_used, gw_chaos **out)
{
    gw_chaos *c = calloc(1, sizeof *c);
    if (!c)
        return ONS_ENOMEM;
    pthread_mutex_init(&c->mu, NULL);
    c->f = *initial;
    if (seed == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec;
        if (seed == 0)
            seed = 1;
    }
    c->state = seed;
    *seed_used = seed;
    *out = c;
    return 0;
}

void gw_chaos_free(gw_chaos *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void gw_chaos_get(gw_chaos *c, gw_faults *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->f;
    pthread_mutex_unlock(&c->mu);
}

void gw_chaos_set(gw_chaos *c, const gw_faults *f)
{
    pthread_mutex_lock(&c->mu);
    c->f = *f;
    pthread_mutex_unlock(&c->mu);
}

/* A uniform double in [0, 1). Caller holds mu. */
static double roll(gw_chaos *c)
{
    uint64_t z = (c->state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

void gw_chaos_plan(gw_chaos *c, int is_charge, gw_plan *out)
{
    pthread_mutex_lock(&c->mu);
    /* Always six draws, in this order, whatever the outcome. */
    double jitter = roll(c), err = roll(c), err_kind = roll(c), hang = roll(c), lost = roll(c),
           decline = roll(c);
    const gw_faults *f = &c->f;
    memset(out, 0, sizeof *out);
    out->delay_ms = f->latency_ms + (int64_t)(jitter * (double)(f->latency_jitter_ms + 1));
    if (err < f->error_rate) {
        out->fault = GW_FAULT_ERROR;
        out->error_status = err_kind < 0.5 ? 500 : 503;
    } else if (hang < f->hang_rate) {
        out->fault = GW_FAULT_HANG;
    } else if (lost < f->lost_response_rate) {
        out->fault = GW_FAULT_LOST;
    }
    out->decline = is_charge && decline < f->decline_rate;
    out->hang_after_charge = f->hang_after_charge;
    out->hang_ms = f->hang_ms;
    pthread_mutex_unlock(&c->mu);
}

json_t *gw_faults_json(const gw_faults *f)
{
    return json_pack("{s:I, s:I, s:f, s:f, s:f, s:b, s:I, s:f}", "latency_ms",
                     (json_int_t)f->latency_ms, "latency_jitter_ms",
                     (json_int_t)f->latency_jitter_ms, "decline_rate", f->decline_rate,
                     "error_rate", f->error_rate, "hang_rate", f->hang_rate, "hang_after_charge",
                     f->hang_after_charge, "hang_ms", (json_int_t)f->hang_ms, "lost_response_rate",
                     f->lost_response_rate);
}

int gw_rate_parse(const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end != '\0' || !isfinite(v) || v < 0 || v > 1)
        return ONS_EINVAL;
    *out = v;
    return 0;
}

typedef struct knob {
    const char *name;
    enum { MS, MS_POSITIVE, RATE, BOOL } kind;
    size_t offset;
} knob;

static const knob knobs[] = {
    {"latency_ms", MS, offsetof(gw_faults, latency_ms)},
    {"latency_jitter_ms", MS, offsetof(gw_faults, latency_jitter_ms)},
    {"hang_ms", MS_POSITIVE, offsetof(gw_faults, hang_ms)},
    {"decline_rate", RATE, offsetof(gw_faults, decline_rate)},
    {"error_rate", RATE, offsetof(gw_faults, error_rate)},
    {"hang_rate", RATE, offsetof(gw_faults, hang_rate)},
    {"hang_after_charge", BOOL, offsetof(gw_faults, hang_after_charge)},
    {"lost_response_rate", RATE, offsetof(gw_faults, lost_response_rate)},
};
#define NKNOBS (sizeof knobs / sizeof knobs[0])

int gw_faults_patch(gw_faults *f, json_t *patch, const char **field, char *msg, size_t msglen)
{
    gw_faults next = *f;
    const char *name;
    json_t *v;
    json_object_foreach(patch, name, v)
    {
        const knob *k = NULL;
        for (size_t i = 0; i < NKNOBS; i++)
            if (strcmp(knobs[i].name, name) == 0)
                k = &knobs[i];
        *field = name;
        if (!k) {
            snprintf(msg, msglen, "Unknown field '%s'.", name);
            return ONS_ENOTFOUND;
        }
        char *dst = (char *)&next + k->offset;
        switch (k->kind) {
        case MS:
        case MS_POSITIVE: {
            long long lo = k->kind == MS ? 0 : 1;
            if (!json_is_integer(v) || json_integer_value(v) < lo ||
                json_integer_value(v) > GW_DELAY_MAX_MS) {
                snprintf(msg, msglen, "Must be an integer number of milliseconds in %lld..%d.", lo,
                         GW_DELAY_MAX_MS);
                return ONS_EINVAL;
            }
            *(long long *)dst = json_integer_value(v);
            break;
        }
        case RATE:
            if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1) {
                snprintf(msg, msglen, "Must be a number in 0..1.");
                return ONS_EINVAL;
            }
            *(double *)dst = json_number_value(v);
            break;
        case BOOL:
            if (!json_is_boolean(v)) {
                snprintf(msg, msglen, "Must be true or false.");
                return ONS_EINVAL;
            }
            *(int *)dst = json_is_true(v);
            break;
        }
    }
    *field = NULL;
    *f = next;
    return 0;
}
