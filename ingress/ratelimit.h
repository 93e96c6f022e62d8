/*
 * ratelimit.h - per-user and per-address request limits by route class
 * (docs/fairness.md "Rate limits").
 *
 * Each limited route belongs to a class (join, poll, checkout, catalog,
 * login, seller, scan, change, read; the table in ratelimit.c); draw is no
 * route's class: a handler charges it (ing_ratelimit_charge_node) for an
 * answer it makes from memory. A class has two buckets per
 * request: one per user (when the route is authenticated) and one per client address (when it is
 * known: client_addr.h), each a GCRA token bucket of ratelimit.<class>.{user,addr}_per_min with a
 * burst of ratelimit.<class>.{user,addr}_burst (per_min 0: no such bucket). Where the buckets live:
 *   join      Redis, shared by every node, checked inside the join's claim
 *             of its active key (the same round trip; routes_queue.c);
 *   poll      this node's memory (a queued poll costs no Redis round trip,
 *             so neither may its limit): N nodes admit up to N times the
 *             rate when a client spreads its polls over them;
 *   read      this node's memory too: it protects the node's job threads;
 *   draw      this node's memory: GET /v1/events/{id}/draw served from the
 *             node's cache (a copy of up to megabytes per answer), per
 *             client address (the route is public);
 *   others    Redis, shared, one EVALSHA on the job thread before the
 *             handler's job runs (ing_ratelimit_wrap).
 * Over the limit: 429 rate_limited with Retry-After, RateLimit-Policy and
 * RateLimit (draft-ietf-httpapi-ratelimit-headers). When Redis is down the
 * shared limits admit (fail open): the queue store's outage already fails
 * the request or is logged elsewhere.
 */
#ifndef ONSALE_INGRESS_RATELIMIT_H
#define ONSALE_INGRESS_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "ingress/pool.h"
#include "queue/status.h"

typedef struct ing_req ing_req;
typedef struct ing_app ing_app;
typedef struct ing_route ing_route;

typedef enum ing_rl_class {
    ING_RL_NONE = -1,
    ING_RL_JOIN,
    ING_RL_POLL,
    ING_RL_CHECKOUT,
    ING_RL_CATALOG,
    ING_RL_LOGIN,
    ING_RL_SELLER,
    ING_RL_SCAN,
    ING_RL_CHANGE,
    ING_RL_READ,
    ING_RL_DRAW, /* no route's class: a draw answer served from memory (routes_draw.c) */
    ING_RL_NCLASS
} ing_rl_class;

/* The four numbers of a class, in ing_opts.ratelimit[class][...]. */
enum {
    ING_RL_USER_PER_MIN,
    ING_RL_USER_BURST,
    ING_RL_ADDR_PER_MIN,
    ING_RL_ADDR_BURST,
    ING_RL_NPARAM
};

typedef struct ing_ratelimit ing_ratelimit;

/* Builds the per-node buckets (slots entries; a collision evicts the older
 * bucket, which then starts full) and the route → class map. *out owned by
 * the caller (ing_ratelimit_free). Returns 0 or ONS_ENOMEM. */
int ing_ratelimit_new(ing_app *app, size_t slots, ing_ratelimit **out);
void ing_ratelimit_free(ing_ratelimit *rl);

/* The class of a route (ING_RL_NONE: not limited). */
ing_rl_class ing_ratelimit_class_of(const ing_route *route);
/* "join", "poll", ... */
const char *ing_ratelimit_class_name(ing_rl_class c);

/* Server hook, nng thread, after authentication: for a class kept in
 * memory (poll, read), charges its buckets now. Returns 0 (go on) or -1 (replied 429;
 * r is freed). Shared classes pass here and are charged later. */
int ing_ratelimit_admit(ing_req *r);

/* nng thread: charges r's buckets of cls, a class kept in memory, in place
 * of its route's (whose shared buckets are then not charged): for an answer
 * a handler makes from memory at a cost of its own (a draw from the node's
 * cache). Returns 0 (go on: r->rl_class is cls, the RateLimit headers are
 * set) or -1 (replied 429; r is freed). Limits off or no bucket: 0. */
int ing_ratelimit_charge_node(ing_req *r, ing_rl_class cls);

/* Server hook in ing_req_submit: fn itself, or (a shared class other than
 * join) a job that charges the buckets first and replies 429 or runs fn. */
ing_job_fn ing_ratelimit_wrap(ing_req *r, ing_job_fn fn);

/* Charges the shared buckets of n requests of a shared class (a batch
 * thread's round; any count) in one pipelined Redis round trip per
 * ING_RL_ROUND_MAX. Answers 429 to each refused request; keeps the
 * admitted ones, in order, at the front of rs and returns their count.
 * Redis down admits (fail open), as ing_ratelimit_wrap's job does; a
 * request without shared buckets is admitted. */
#define ING_RL_ROUND_MAX 256
size_t ing_ratelimit_charge_many(ing_worker *w, ing_req **rs, size_t n);

/* The shared buckets of r (at most Q_RATE_KEYS_MAX) for a check folded
 * into another script; names live in r. Returns how many. */
size_t ing_ratelimit_keys(ing_req *r, q_rate_key *keys);
/* Records the outcome of a check over those keys on r: the RateLimit
 * headers, and on a refusal Retry-After. Returns o->limited. */
int ing_ratelimit_note(ing_req *r, const q_rate_key *keys, const q_rate_out *o);

/* The 429 message for a refused request. */
#define ING_RL_MESSAGE "Too many requests; retry after the time in Retry-After."

#endif
