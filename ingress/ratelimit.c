/* ratelimit.c - route classes, the per-node poll buckets, the shared
 * Redis buckets and the 429 with its headers; see ratelimit.h. */
#include "ingress/ratelimit.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/log.h"
#include "ingress/client_addr.h"
#include "ingress/json_io.h"
#include "ingress/server.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Which routes are limited, and as what. */
static const struct {
    const char *route;
    ing_rl_class cls;
} route_classes[] = {
    {"join", ING_RL_JOIN},
    {"intent_get", ING_RL_POLL},
    {"event_challenge", ING_RL_POLL}, /* cheap, per node: a fan asks once per join */
    {"checkout", ING_RL_CHECKOUT},
    {"events_list", ING_RL_CATALOG},
    {"event_get", ING_RL_CATALOG},
    {"event_draw", ING_RL_CATALOG}, /* charged when rendered, not when served from memory */
    {"session_create", ING_RL_LOGIN},
    {"session_refresh", ING_RL_LOGIN},
    {"user_create", ING_RL_LOGIN},
    {"session_delete", ING_RL_LOGIN},
    /* Sellers' and admins' writes: each is PostgreSQL work (an event's
     * creation writes a row per seat), rare for a person, and a stolen
     * token would otherwise send them as fast as the box answers. */
    {"venue_create", ING_RL_SELLER},
    {"venue_scanners_list", ING_RL_SELLER},
    {"venue_scanner_put", ING_RL_SELLER},
    {"venue_scanner_delete", ING_RL_SELLER},
    {"event_scanners_list", ING_RL_SELLER},
    {"event_scanner_put", ING_RL_SELLER},
    {"event_scanner_delete", ING_RL_SELLER},
    {"event_create", ING_RL_SELLER},
    {"event_update", ING_RL_SELLER},
    {"event_pause", ING_RL_SELLER},
    {"event_resume", ING_RL_SELLER},
    {"event_cancel", ING_RL_SELLER},
    {"event_admission", ING_RL_SELLER},
    {"event_pow", ING_RL_SELLER},
    {"user_roles_grant", ING_RL_SELLER},
    /* A scan is a read and an UPDATE of the ticket, per scanner account. */
    {"scan", ING_RL_SCAN},
    /* A fan's changes: each claims a row and/or sends a record to the
     * event's partition owner. */
    {"ticket_transfer", ING_RL_CHANGE},
    {"ticket_cancel", ING_RL_CHANGE},
    {"intent_delete", ING_RL_CHANGE},
    {"reservation_delete", ING_RL_CHANGE},
    /* A signed-in user's own reads: each a PostgreSQL read on a job thread
     * (the node's few: pool.threads), so one account in a loop could hold
     * them all. Kept per node, like the poll: what they protect is the
     * node's job threads, and an order polled every second while it is
     * paid costs no Redis round trip. */
    {"order_get", ING_RL_READ},
    {"my_tickets", ING_RL_READ},
    {"ticket_code", ING_RL_READ},
    {"me", ING_RL_READ},
};

static const char *const class_names[ING_RL_NCLASS] = {
    "join", "poll", "checkout", "catalog", "login", "seller", "scan", "change", "read", "draw"};

/* The classes whose buckets live in this node's memory (ing_ratelimit_admit
 * charges them on the nng thread); the others' live in Redis. */
static int in_memory(int cls)
{
    return cls == ING_RL_POLL || cls == ING_RL_READ || cls == ING_RL_DRAW;
}
_Static_assert(sizeof((ing_opts *)0)->ratelimit / sizeof *((ing_opts *)0)->ratelimit ==
                   ING_RL_NCLASS,
               "ing_opts.ratelimit has a row per class");

#define STRIPES 64

typedef struct ing_ratelimit ing_ratelimit;
static void policies_init(ing_ratelimit *rl);

typedef struct bucket {
    uint64_t id; /* hash of class, kind and subject; 0 = empty */
    int64_t tat_ms;
} bucket;

struct ing_ratelimit {
    ing_app *app;
    /* RateLimit-Policy of each class for each set of buckets it can have
     * (bit 0: per user, bit 1: per address), formatted once: the values
     * are options, fixed for the process. */
    char policy[ING_RL_NCLASS][4][160];
    signed char *route_class; /* [ing_route_count] */
    bucket *slots;
    size_t nslots;
    pthread_mutex_t lock[STRIPES];
    ons_counter *refused[ING_RL_NCLASS];
};

const char *ing_ratelimit_class_name(ing_rl_class c)
{
    return c >= 0 && c < ING_RL_NCLASS ? class_names[c] : "none";
}

ing_rl_class ing_ratelimit_class_of(const ing_route *route)
{
    for (size_t i = 0; route && i < sizeof route_classes / sizeof *route_classes; i++)
        if (strcmp(route->name, route_classes[i].route) == 0)
            return route_classes[i].cls;
    return ING_RL_NONE;
}

int ing_ratelimit_new(ing_app *app, size_t slots, ing_ratelimit **out)
{
    ing_ratelimit *rl = calloc(1, sizeof *rl);
    if (!rl)
        return ONS_ENOMEM;
    rl->app = app;
    rl->nslots = slots ? slots : 1;
    rl->slots = calloc(rl->nslots, sizeof *rl->slots);
    rl->route_class = calloc(ing_route_count ? ing_route_count : 1, 1);
    if (!rl->slots || !rl->route_class) {
        free(rl->slots);
        free(rl->route_class);
        free(rl);
        return ONS_ENOMEM;
    }
    for (size_t i = 0; i < ing_route_count; i++)
        rl->route_class[i] = (signed char)ing_ratelimit_class_of(&ing_routes[i]);
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&rl->lock[i], NULL);
    policies_init(rl);
    for (int c = 0; c < ING_RL_NCLASS && app->metrics; c++) {
        char labels[48];
        snprintf(labels, sizeof labels, "class=\"%s\"", class_names[c]);
        rl->refused[c] =
            ons_metrics_counter(app->metrics, "onsale_ingress_rate_limited_total",
                                "Requests refused with 429 rate_limited, by route class.", labels);
    }
    *out = rl;
    return 0;
}

void ing_ratelimit_free(ing_ratelimit *rl)
{
    if (!rl)
        return;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&rl->lock[i]);
    free(rl->slots);
    free(rl->route_class);
    free(rl);
}

/* ---- the request's buckets ----------------------------------------------------- */

/* One bucket of a request: its name (class, kind, subject) for a shared
 * bucket, or the hash of the same for one kept in memory; period, burst. */
typedef struct rl_bucket {
    char name[80];    /* shared buckets only ("" in memory) */
    uint64_t id;      /* memory buckets only: hash of class, kind, subject; never 0 */
    const char *kind; /* "user" or "addr" */
    int64_t period_ms, burst;
} rl_bucket;

static uint64_t hash_name(const char *s);

/* The memory id of a user's bucket of class cls: a mix of the numbers,
 * no text formatted (this runs on every poll). */
static uint64_t user_bucket_id(int cls, int64_t user_id)
{
    uint64_t x = (uint64_t)user_id * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)cls + 1) << 56;
    x ^= x >> 31;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x ? x : 1;
}

/* Fills up to two buckets of r's class: per user (authenticated routes)
 * and per client address (when known). named: shared buckets (their Redis
 * names); else memory ones (ids). Returns how many; *mask gets bit 0 for
 * a user bucket and bit 1 for an address bucket. */
static size_t buckets_of(ing_req *r, rl_bucket *b, int named, unsigned *mask)
{
    const long long *p = r->app->o.ratelimit[r->rl_class];
    const char *cls = class_names[r->rl_class];
    size_t n = 0;
    *mask = 0;
    if (r->who.user_id > 0 && p[ING_RL_USER_PER_MIN] > 0) {
        if (named)
            snprintf(b[n].name, sizeof b[n].name, "rl:%s:u:%" PRId64, cls, r->who.user_id);
        else
            b[n].id = user_bucket_id(r->rl_class, r->who.user_id);
        b[n].kind = "user";
        b[n].period_ms = 60000 / p[ING_RL_USER_PER_MIN];
        b[n].burst = p[ING_RL_USER_BURST];
        *mask |= 1;
        n++;
    }
    char addr[ING_CLIENT_ADDR_MAX];
    if (p[ING_RL_ADDR_PER_MIN] > 0 && ing_client_addr(r, addr, sizeof addr) == 0) {
        snprintf(b[n].name, sizeof b[n].name, "rl:%s:a:%s", cls, addr);
        if (!named) {
            b[n].id = hash_name(b[n].name);
            b[n].name[0] = '\0';
        }
        b[n].kind = "addr";
        b[n].period_ms = 60000 / p[ING_RL_ADDR_PER_MIN];
        b[n].burst = p[ING_RL_ADDR_BURST];
        *mask |= 2;
        n++;
    }
    for (size_t i = 0; i < n; i++)
        if (b[i].period_ms < 1)
            b[i].period_ms = 1;
    return n;
}

/* Formats the RateLimit-Policy of every class and bucket set once. */
static void policies_init(ing_ratelimit *rl)
{
    for (int c = 0; c < ING_RL_NCLASS; c++) {
        const long long *p = rl->app->o.ratelimit[c];
        for (unsigned mask = 1; mask < 4; mask++) {
            char *out = rl->policy[c][mask];
            size_t len = 0, cap = sizeof rl->policy[c][mask];
            for (int k = 0; k < 2; k++) {
                if (!(mask & (1u << k)))
                    continue;
                long long per_min = p[k ? ING_RL_ADDR_PER_MIN : ING_RL_USER_PER_MIN];
                long long burst = p[k ? ING_RL_ADDR_BURST : ING_RL_USER_BURST];
                int64_t period = per_min > 0 ? 60000 / per_min : 1;
                if (period < 1)
                    period = 1;
                if (len < cap)
                    len += (size_t)snprintf(out + len, cap - len, "%s\"%s-%s\";q=%lld;w=%lld",
                                            len ? ", " : "", class_names[c], k ? "addr" : "user",
                                            burst, (long long)((burst * period + 999) / 1000));
            }
        }
    }
}

/* Decimal digits of v >= 0 at out; returns the end. */
static char *put_i64(char *out, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? 0 : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (n)
        *out++ = tmp[--n];
    return out;
}

static char *put_str(char *out, const char *s)
{
    size_t n = strlen(s);
    memcpy(out, s, n);
    return out + n;
}

/* The headers: RateLimit-Policy lists every bucket ("join-user";q=burst;
 * w=seconds to refill it), RateLimit names the deciding one with what is
 * left (r) and when it resets (t, seconds). Formatted without printf: a
 * poll passes here every time. */
static int note(ing_req *r, const rl_bucket *b, size_t n, unsigned mask, const q_rate_out *o)
{
    const char *cls = class_names[r->rl_class];
    r->rl_policy = r->app->ratelimit->policy[r->rl_class][mask & 3];
    int k = o->key >= 0 && (size_t)o->key < n ? o->key : 0;
    int64_t secs = (o->ms + 999) / 1000;
    if (n) {
        /* "<class>-<kind>";r=<n>;t=<n>: at most 8 + 1 + 4 + 4 + 2 * 20 + 5 < 80 */
        _Static_assert(sizeof r->rl_state >= 64, "rl_state");
        char *w = r->rl_state;
        *w++ = '"';
        w = put_str(w, cls);
        *w++ = '-';
        w = put_str(w, b[k].kind);
        w = put_str(w, "\";r=");
        w = put_i64(w, o->limited ? 0 : o->remaining);
        w = put_str(w, ";t=");
        w = put_i64(w, secs);
        *w = '\0';
    }
    if (o->limited) {
        r->retry_after = secs < 1 ? 1 : (int)secs;
        ons_counter *c = r->app->ratelimit->refused[r->rl_class];
        if (c)
            ons_counter_add(c, 1);
    }
    return o->limited;
}

/* ---- per node (polls) ------------------------------------------------------------ */

static uint64_t hash_name(const char *s)
{
    uint64_t h = ons_hash64(0, s, strlen(s));
    return h ? h : 1;
}

/* The same GCRA as the Redis script (queue/status.c), over the node's
 * slots: every bucket is checked before any is charged. */
static void memory_check(ing_ratelimit *rl, const rl_bucket *b, size_t n, q_rate_out *o)
{
    int64_t now = ing_mono_ns() / 1000000;
    uint64_t id[2];
    size_t slot[2], stripe[2];
    int64_t next[2];
    for (size_t i = 0; i < n; i++) {
        id[i] = b[i].id;
        slot[i] = id[i] % rl->nslots;
        stripe[i] = slot[i] % STRIPES;
    }
    /* Lock in stripe order (a shared stripe once). */
    size_t lo = n == 2 && stripe[1] < stripe[0] ? 1 : 0;
    pthread_mutex_lock(&rl->lock[stripe[lo]]);
    if (n == 2 && stripe[0] != stripe[1])
        pthread_mutex_lock(&rl->lock[stripe[1 - lo]]);
    memset(o, 0, sizeof *o);
    o->key = -1;
    int64_t worst = 0, fewest = -1;
    for (size_t i = 0; i < n; i++) {
        bucket *s = &rl->slots[slot[i]];
        int64_t tat = s->id == id[i] && s->tat_ms > now ? s->tat_ms : now;
        next[i] = tat + b[i].period_ms;
        int64_t over = next[i] - now - b[i].burst * b[i].period_ms;
        if (over > worst) {
            worst = over;
            o->limited = 1;
            o->key = (int)i;
            o->ms = over;
        }
        int64_t left = (b[i].burst * b[i].period_ms - (next[i] - now)) / b[i].period_ms;
        if (!o->limited && (fewest < 0 || left < fewest)) {
            fewest = left;
            o->key = (int)i;
            o->remaining = left;
            o->ms = next[i] - now;
        }
    }
    if (!o->limited)
        for (size_t i = 0; i < n; i++) {
            rl->slots[slot[i]].id = id[i];
            rl->slots[slot[i]].tat_ms = next[i];
        }
    if (n == 2 && stripe[0] != stripe[1])
        pthread_mutex_unlock(&rl->lock[stripe[1 - lo]]);
    pthread_mutex_unlock(&rl->lock[stripe[lo]]);
}

/* Charges r's buckets of its class, kept in memory: 0, or -1 having
 * replied 429. */
static int charge_memory(ing_ratelimit *rl, ing_req *r)
{
    rl_bucket b[2];
    unsigned mask;
    size_t n = buckets_of(r, b, 0, &mask);
    if (n == 0)
        return 0;
    q_rate_out o;
    memory_check(rl, b, n, &o);
    if (!note(r, b, n, mask, &o))
        return 0;
    ing_failf(r, NULL, ING_E_RATE_LIMITED, NULL, ING_RL_MESSAGE);
    return -1;
}

int ing_ratelimit_admit(ing_req *r)
{
    ing_ratelimit *rl = r->app->ratelimit;
    r->rl_class = ING_RL_NONE;
    if (!rl || !r->app->o.ratelimit_enabled || !r->route)
        return 0;
    r->rl_class = rl->route_class[r->route - ing_routes];
    return in_memory(r->rl_class) ? charge_memory(rl, r) : 0;
}

int ing_ratelimit_charge_node(ing_req *r, ing_rl_class cls)
{
    ing_ratelimit *rl = r->app->ratelimit;
    if (!rl || !r->app->o.ratelimit_enabled || !in_memory(cls))
        return 0;
    r->rl_class = cls;
    return charge_memory(rl, r);
}

/* ---- shared (Redis) ----------------------------------------------------------------- */

size_t ing_ratelimit_keys(ing_req *r, q_rate_key *keys)
{
    if (r->rl_class < 0 || in_memory(r->rl_class))
        return 0;
    rl_bucket b[2];
    unsigned mask;
    size_t n = buckets_of(r, b, 1, &mask);
    for (size_t i = 0; i < n; i++) {
        _Static_assert(sizeof r->rl_names[i] == sizeof b[i].name, "bucket names");
        memcpy(r->rl_names[i], b[i].name, sizeof b[i].name);
        keys[i] = (q_rate_key){r->rl_names[i], b[i].period_ms, b[i].burst};
    }
    return n;
}

int ing_ratelimit_note(ing_req *r, const q_rate_key *keys, const q_rate_out *o)
{
    rl_bucket b[2];
    unsigned mask;
    size_t n = buckets_of(r, b, 1, &mask);
    (void)keys;
    return note(r, b, n, mask, o);
}

size_t ing_ratelimit_charge_many(ing_worker *w, ing_req **rs, size_t n)
{
    q_rate_key keys[ING_RL_ROUND_MAX][Q_RATE_KEYS_MAX];
    q_rate_check checks[ING_RL_ROUND_MAX];
    size_t kept = 0;
    for (size_t base = 0; base < n; base += ING_RL_ROUND_MAX) {
        size_t m = n - base < ING_RL_ROUND_MAX ? n - base : ING_RL_ROUND_MAX;
        for (size_t i = 0; i < m; i++)
            checks[i] = (q_rate_check){keys[i], ing_ratelimit_keys(rs[base + i], keys[i]), 0, {0}};
        int rc = q_status_rate_check_many(w->st, checks, m);
        for (size_t i = 0; i < m; i++) {
            ing_req *r = rs[base + i];
            /* Redis down: admitted (fail open), as the header says. */
            if (checks[i].rc)
                ons_logk(ONS_LOG_DEBUG, "request_id", r->rid, "rate limit not checked: %s",
                         ons_strerror(rc ? rc : checks[i].rc));
            if (checks[i].rc == 0 && checks[i].n > 0 &&
                ing_ratelimit_note(r, keys[i], &checks[i].out)) {
                ing_failf(r, w, ING_E_RATE_LIMITED, NULL, ING_RL_MESSAGE);
                continue;
            }
            rs[kept++] = r;
        }
    }
    return kept;
}

static void shared_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    if (ing_ratelimit_charge_many(w, &r, 1))
        r->rl_next(w, r);
}

ing_job_fn ing_ratelimit_wrap(ing_req *r, ing_job_fn fn)
{
    if (r->rl_class < 0 || in_memory(r->rl_class) || r->rl_class == ING_RL_JOIN || r->rl_next)
        return fn;
    r->rl_next = fn;
    return shared_job;
}
