/*
 * server.h - the nng HTTP front door: one tree handler for every path, our
 * own route table {method, pattern, handler, roles, body}, and the one place
 * a request's nng aio is finished.
 *
 * Threads: the route handler runs on an nng task thread (or, for a route
 * with a now hook answered at the accept gate, nng's poller thread, inside
 * its read: http.gate_answers) and must not block.
 * It either replies at once (pure memory: errors, queued polls, health) or
 * hands the request to a job thread with ing_req_submit(); the job replies
 * when done, from any thread. A client that closes its connection while a
 * job runs cancels the aio: the reply is then dropped, and the job still owns
 * and frees the request. Each request is replied to exactly once; after
 * ing_reply_*() returns, the request is freed and must not be touched.
 *
 * Before calling a route handler the server has checked, in this order:
 * - before nng parses the head (the accept gate, common/httpd.h): the
 *   request line fits http.max_request_line (414), the head fits
 *   http.max_head (431), the path holds no '%' (400 invalid_path);
 * - with the head only, before any body byte is read: no
 *   Transfer-Encoding (411), a decimal Content-Length (400
 *   invalid_content_length) of at most http.max_body (413); these replies
 *   close the connection. A declared body is then read, within
 *   http.body_timeout_ms (else nng closes the connection);
 * - the route exists (404) and allows the method (405), the bearer token
 *   (401) and role (403), and for routes with a body the Content-Type
 *   (415), the size (413) and that the body is a JSON object (400
 *   invalid_json). Path parameters are validated by the handler (400
 *   invalid_id). A body sent to a route without one is read and ignored.
 */
#ifndef ONSALE_INGRESS_SERVER_H
#define ONSALE_INGRESS_SERVER_H

#include <jansson.h>
#include <stdint.h>

#include "common/auth.h"
#include "common/clock.h"
#include "common/httpd.h"
#include "ingress/app.h"
#include "ingress/pool.h"

#define ING_MAX_PARAMS 2
#define ING_PATH_MAX   256
#define ING_IDEM_MAX   128

typedef struct ing_req ing_req;
typedef void (*ing_handler_fn)(ing_req *r);

/* One row of the route table. pattern segments "{}" match one path segment,
 * handed to the handler as params[i]. roles: 0 = public, else a mask of
 * enum ons_role. */
typedef struct ing_route {
    const char *name; /* metrics/log label */
    const char *method;
    const char *pattern;
    ing_handler_fn handler;
    int roles;
    /* 1: a JSON object body is required (parsed before the handler);
     * ING_BODY_OWN: required too, its size and type checked, but the
     * handler parses it (the join reads its common shape without jansson
     * and parses anything else itself, with the same 400s) */
    int body;
    /* The handler's synchronous test, for answers at the accept gate
     * (http.gate_answers; NULL: the route is never answered there). Runs
     * after authentication and before the rate limit, with the request's
     * headers readable: returns 1 when the handler will answer r at once
     * from memory (no job), having kept what it read in r->now for the
     * handler (so the answer is the one it tested), or 0 having done
     * nothing; r then goes to nng's path whole. */
    int (*now)(ing_req *r);
    /* Lets go of what now kept in r->now when the handler did not take it
     * (r was answered before it: 429, a bad header); NULL: no need. */
    void (*now_end)(void *now);
    /* 1: a request of this route with its whole body may be taken at the
     * accept gate and answered later (http.gate_joins): its handler runs
     * on the gate's thread as for a request nng parsed and hands it on
     * (ing_req_submit_batch, ing_req_submit); the gate holds the
     * connection until the answer is sent. One with an Idempotency-Key
     * goes to nng. */
    int later;
} ing_route;

#define ING_BODY_OWN 2

/* The route table (routes.c). */
extern const ing_route ing_routes[];
extern const size_t ing_route_count;

struct ing_req {
    ing_app *app;
    const ing_route *route;
    char rid[17]; /* request id, echoed as X-Request-Id */
    const char *params[ING_MAX_PARAMS];
    int nparams;
    ons_principal who; /* filled when route->roles != 0 */
    json_t *body;      /* the JSON object body, or NULL; freed with the request */
    char *raw;         /* the body bytes, NUL-terminated, or NULL */
    size_t raw_len;
    /* raw, when a body the gate read fits: a join's {"quantity":1} rides
     * in the (recycled) request rather than in a malloc freed on another
     * thread */
    char raw_inline[64];
    char idem[ING_IDEM_MAX + 1]; /* Idempotency-Key, "" when absent */
    /* The client's address (client_addr.h), "" when unknown: read from the
     * headers on the nng thread before the handler, because a job thread
     * must not touch hreq (nng frees it when the connection goes away). */
    char client_addr[48]; /* >= ING_CLIENT_ADDR_MAX + 1 */
    int retry_after;      /* seconds; > 0 adds Retry-After to the reply */
    char idem_hash[65];   /* body hash while this request owns its idempotency key */
    int idem_owned;
    /* The claim time its in-flight Idempotency-Key record names (a join's
     * sent_ms, set before the claim); 0: the claim sets it to now. */
    int64_t idem_at_ms;
    int produce_err; /* ing_produce() outcome, read by its continuation */
    int32_t produced_partition;
    int64_t produced_offset;
    void *job; /* route-private state, freed with job_free */
    void (*job_free)(void *);
    /* Rate limits (ratelimit.h): the route's class (-1 none), the shared
     * bucket names, the job the limit check runs before, and the
     * RateLimit-Policy / RateLimit header values (NULL or "" = not sent;
     * the policy is the app's string for the class, not a copy, which keeps
     * a request within malloc's per-thread cache sizes). */
    int rl_class;
    char rl_names[2][80];
    /* What the route's now hook kept for its handler (NULL: nothing); see
     * ing_route.now. */
    void *now;
    ing_job_fn rl_next;
    const char *rl_policy;
    char rl_state[80];

    /* Private to server.c. */
    /* The nng request while the handler runs on nng's thread; NULL once r
     * is handed to a job thread (nng frees it with the connection, which a
     * stop or a cancel may close before the job replies). */
    void *hreq;
    char *inm; /* If-None-Match, copied when hreq is let go (NULL none) */
    char pathbuf[ING_PATH_MAX];
    char method[8];
    int64_t t0_ns;
    struct ing_server *srv;
    ons_httpd_pending pend; /* the nng aio and its place on the live list */
    nng_aio *body_aio;      /* reads the body, when one was declared */
    int close;              /* reply with Connection: close (body not read) */
    int keep_alive;         /* nng keeps the connection: the reply may be direct */
};

/* Starts listening on http.bind:http.port. *out is owned by the caller
 * (ing_server_free). Returns 0, ONS_EIO (cannot listen) or ONS_ENOMEM. */
int ing_server_start(ing_app *app, ing_server **out);
/* Stops accepting and closes connections, cancelling requests in flight;
 * jobs holding requests may still reply (the replies are dropped). */
void ing_server_stop(ing_server *s);
/* Frees the server; call after the job threads have stopped. */
void ing_server_free(ing_server *s);

/* Hands r to a job thread: fn(worker, r) runs later and must reply. When the
 * pool's queue is full, replies 503 overloaded itself. nng threads only
 * (it registers the cancel routine). */
void ing_req_submit(ing_req *r, ing_job_fn fn);

/* ing_req_submit onto a batch thread (pool.h): r becomes one of the items
 * its round gets, and must be replied to there (or handed on). No rate
 * limit wrap: the round charges its own. A full queue replies 503
 * overloaded. nng threads only. */
void ing_req_submit_batch(ing_req *r, ing_batcher *b);

/* The value of r's header name, or NULL (absent, or r was handed to a job
 * thread). nng threads, before the handler hands r on. */
static inline const char *ing_req_header(const ing_req *r, const char *name)
{
    if (r->hreq)
        return nng_http_req_get_header((nng_http_req *)r->hreq, name);
    return r->pend.sink && r->pend.sink->view ? ons_httpd_view_header(r->pend.sink->view, name)
                                              : NULL;
}

/* Replies with status and body (stolen; NULL = no body) and frees r. */
void ing_reply_json(ing_req *r, int status, json_t *body);
/* Same with extra headers: name/value pairs, NULL-terminated, or NULL. */
void ing_reply_json_headers(ing_req *r, int status, json_t *body, const char *const *headers);
/* Same with a body that is already JSON text (copied). */
void ing_reply_raw(ing_req *r, int status, const char *json_text);
/* Same with any content type (e.g. Prometheus text). */
void ing_reply_text(ing_req *r, int status, const char *content_type, const char *text, size_t len);

/* At most this many extra header pairs in ing_reply_static(). */
#define ING_STATIC_HEADERS_MAX 8
/* Replies 200 with a body that lives as long as the process (not copied:
 * embedded assets), or 304 with no body when the request's If-None-Match
 * names etag. headers: extra name/value pairs, NULL-terminated, or NULL; a
 * Cache-Control among them replaces the default no-store. Frees r. */
void ing_reply_static(ing_req *r, const char *content_type, const void *data, size_t len,
                      const char *etag, const char *const *headers);

/* Like ing_reply_static for a body that may not outlive the call (copied):
 * 200 with the body and its ETag, or 304 on a matching If-None-Match. */
void ing_reply_etag(ing_req *r, const char *content_type, const void *data, size_t len,
                    const char *etag, const char *const *headers);

/* Current time helpers shared by the routes. */
static inline int64_t ing_now_ms(void)
{
    return ons_wall_ms();
}
static inline int64_t ing_mono_ns(void)
{
    return ons_mono_ns();
}

#endif
