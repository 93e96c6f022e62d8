/*
 * gateway.h - shared types of onsale-gateway, the payment gateway simulator.
 *
 * The simulator is the one stand-in Onsale has: a separate process that
 * behaves like a Stripe-style card gateway (charges, refunds, idempotency
 * keys, test payment methods, a ledger) and can misbehave on purpose
 * (latency, declines, 5xx, hangs, lost responses). Modules:
 *   options.def its options, one line each (gw_opts and the table)
 *   gateway.c  options table and main (start, wait for a signal, stop)
 *   server.c   nng HTTP plumbing: routing, auth, body checks, replies,
 *              delayed and dropped replies through the timer thread
 *   api.c      the route table and its handlers
 *   store.c    charges, refunds and idempotency records (one mutex)
 *   faults.c   fault knobs and seeded dice
 *   timer.c    the delay thread
 *
 * Threads: handlers run on nng's task threads and never block; delayed
 * work runs on the timer thread. A request (gw_req) belongs to whichever
 * thread currently holds it and is freed by the reply that ends it.
 */
#ifndef ONSALE_ADMIN_GATEWAY_GATEWAY_H
#define ONSALE_ADMIN_GATEWAY_GATEWAY_H

#include "admin/gateway/faults.h"
#include "admin/gateway/store.h"
#include "admin/gateway/timer.h"
#include "common/httpd.h"
#include "common/metrics.h"
#include "common/opts.h"

#include <jansson.h>
#include <nng/nng.h>
#include <stddef.h>
#include <stdint.h>

#define GW_KEY_MAX 255 /* Idempotency-Key length */

/* The options: a field per line of options.def; the fault knobs' lines
 * fill faults. */
typedef struct gw_opts {
#define X(...)    ONS_OPT_FIELD(__VA_ARGS__)
#define X_IN(...) /* in faults */
#include "admin/gateway/options.def"
#undef X
#undef X_IN
    gw_faults faults; /* the fault knobs' starting values (POST /v1/_faults changes them) */
} gw_opts;

typedef struct gw_server gw_server;

typedef struct gw_app {
    gw_opts o;
    gw_store *store;
    gw_timer *timer;
    gw_chaos *chaos;
    ons_metrics *metrics;
    gw_server *server;
    ons_counter *replays;      /* idempotent replays served */
    ons_counter *in_progress;  /* 409 idempotency_in_progress */
    ons_counter *mismatches;   /* 422 idempotency_mismatch */
    ons_gauge *ledger_charges; /* refreshed on each scrape */
    ons_gauge *ledger_refunds;
    ons_gauge *idem_keys;
    ons_gauge *pending; /* replies waiting on the timer */
} gw_app;

typedef struct gw_req gw_req;
typedef void (*gw_handler)(gw_req *r);

enum gw_route_flags {
    GW_AUTH = 1, /* Authorization: Bearer <gateway.api_key> */
    GW_BODY = 2, /* a JSON object body (Content-Type, size, parse) */
    GW_IDEM = 4, /* a valid Idempotency-Key header */
};

typedef struct gw_route {
    const char *name; /* metric label */
    const char *method;
    const char *pattern; /* "/v1/charges/{}": {} is one path segment */
    gw_handler handler;
    int flags;
} gw_route;

extern const gw_route gw_routes[];
extern const size_t gw_route_count;

struct gw_req {
    gw_app *app;
    gw_server *srv;
    const gw_route *route;
    char method[8];
    char path[256];
    char segs[256];    /* path split into segments */
    const char *param; /* the {} segment, inside segs */
    char rid[24];      /* Request-Id */
    char idem[GW_KEY_MAX + 1];
    char allow[64]; /* a 405's methods, sent as Allow (RFC 9110 15.5.6), else "" */
    json_t *body;   /* GW_BODY routes: the parsed object, owned */
    int64_t t0_ns;
    /* The handler's state across a deferral; freed with the request. */
    void *ctx;
    void (*ctx_free)(void *);
    void (*on_timer)(gw_req *r);
    int early;              /* on_timer runs before its time: the process is stopping */
    ons_httpd_pending pend; /* server.c only: the aio and its live-list place */
};

/* Sends status with a JSON body (NULL: none), then frees r. replayed adds
 * "Idempotent-Replayed: true". Any thread; exactly one reply per request. */
void gw_reply(gw_req *r, int status, const char *json_text, int replayed);

/* Like gw_reply with another Content-Type (text is NUL-terminated). */
void gw_reply_text(gw_req *r, int status, const char *content_type, const char *text, int replayed);

/* Sends {"error":{"code","message","field"}} (field may be NULL). */
void gw_reply_error(gw_req *r, int status, const char *code, const char *field, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));

/* Closes the connection without an answer (a lost response), then frees r. */
void gw_drop(gw_req *r);

/* Calls fn(r) on the timer thread after delay_ms; r stays alive. Returns
 * 0, or ONS_EFULL / ONS_ECLOSED with r still the caller's. */
int gw_defer(gw_req *r, int64_t delay_ms, void (*fn)(gw_req *r));

int64_t gw_mono_ns(void);

int gw_server_start(gw_app *app, gw_server **out);
/* Stops accepting and closes every connection (deferred requests are
 * finished by nng's cancellation; their timer entries free them later). */
void gw_server_stop(gw_server *s);
void gw_server_free(gw_server *s);

/* api.c: registers the metric series the handlers use. */
int gw_api_init(gw_app *app);

#endif
