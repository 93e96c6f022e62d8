/* server.c - nng HTTP server, route matching, auth and body checks, reply
 * and aio completion; see server.h. */
#include "ingress/server.h"
#include "common/err.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/recycle.h"
#include "ingress/json_io.h"
#include "ingress/client_addr.h"
#include "ingress/ratelimit.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Statuses with their own metric series; anything else counts as "other". */
static const int tracked_status[] = {200, 201, 202, 204, 400, 401, 403, 404, 405,
                                     408, 409, 411, 413, 415, 422, 429, 500, 503};

/* The route table as the HTTP module reads it ('.' allowed inside a name:
 * assets). count is filled at start: ing_route_count is not a constant. */
static ons_httpd_table route_table = ONS_HTTPD_TABLE_INIT(ing_routes, 0, ing_route, 1);

struct ing_server {
    ing_app *app;
    nng_http_server *http;
    ons_httpd_live live; /* deferred requests whose aio is not finished */
    ons_httpd_stats *stats;
    ons_httpd_rid rid;
    atomic_int body_reads; /* body reads whose callback has not finished */
    /* Declared bytes of the bodies being read (http.body_budget): what
     * clients, authenticated or not, can make ingress hold before a
     * handler runs. */
    atomic_llong body_bytes;
    ons_counter *unsent_refused; /* GET answers refused for http.unsent_budget */
    /* Stopping closes the connections, and nng frees a request's head with
     * its connection: on_body may read that head (dispatch) only while
     * stopping is 0, and the stop waits for the dispatches under way
     * before it closes anything. */
    atomic_int stopping;
    atomic_int dispatching;
    int gated;
};

/* ---- replies ------------------------------------------------------------------ */

static void req_free(ing_req *r)
{
    if (r->now && r->route && r->route->now_end)
        r->route->now_end(r->now);
    if (r->job && r->job_free)
        r->job_free(r->job);
    json_decref(r->body);
    if (r->raw != r->raw_inline)
        free(r->raw);
    free(r->inm);
    if (r->body_aio)
        nng_aio_reap(r->body_aio); /* may be running its own callback */
    ons_recycle_free(r);
}

/* Finishes the aio with res unless the client went away first, then frees
 * r. Runs on any thread, exactly once per request. */
static void finish(ing_req *r, nng_http_res *res)
{
    ing_server *s = r->srv;
    if (!ons_httpd_finish(&s->live, &r->pend, res, 0) && s->app->cancelled_requests)
        ons_counter_add(s->app->cancelled_requests, 1);
    req_free(r);
}

/* The most header lines a reply sends: the caller's and the server's own. */
#define REPLY_HEADERS_MAX (2 * ING_STATIC_HEADERS_MAX + 16)
/* Room for Retry-After's digits. */
#define RETRY_AFTER_LEN 16

/* Every header of r's reply into h (name/value pairs, NULL-terminated):
 * X-Request-Id, the caller's headers (a "Cache-Control" among them replaces
 * the default no-store), Cache-Control, and Connection, Retry-After and the
 * rate-limit headers when r has them. ra holds Retry-After's digits. */
static void reply_headers(const ing_req *r, const char *const *headers,
                          const char *h[REPLY_HEADERS_MAX], char ra[RETRY_AFTER_LEN])
{
    const char *cache = "no-store";
    size_t n = 0;
    h[n++] = "X-Request-Id";
    h[n++] = r->rid;
    for (size_t i = 0; headers && headers[i] && headers[i + 1] && n + 12 < REPLY_HEADERS_MAX;
         i += 2) {
        if (strcasecmp(headers[i], "Cache-Control") == 0) {
            cache = headers[i + 1];
        } else {
            h[n++] = headers[i];
            h[n++] = headers[i + 1];
        }
    }
    h[n++] = "Cache-Control";
    h[n++] = cache;
    if (r->close) {
        h[n++] = "Connection";
        h[n++] = "close";
    }
    if (r->retry_after > 0) {
        snprintf(ra, RETRY_AFTER_LEN, "%d", r->retry_after);
        h[n++] = "Retry-After";
        h[n++] = ra;
    }
    if (r->rl_policy && r->rl_policy[0] && r->rl_state[0]) {
        h[n++] = "RateLimit-Policy";
        h[n++] = r->rl_policy;
        h[n++] = "RateLimit";
        h[n++] = r->rl_state;
    }
    h[n] = NULL;
}

/* Whether r's answer of len body bytes counts against the node's budget
 * of answer bytes not yet taken by their sockets (http.unsent_budget): a
 * GET (a read the client may repeat; a write's answer is never replaced)
 * larger than http.unsent_small, but /metrics (it shows the attack). */
static int budgeted(const ing_req *r, const void *data, size_t len)
{
    return data && (long long)len > r->app->o.http_unsent_small && strcmp(r->method, "GET") == 0 &&
           !(r->route && strcmp(r->route->name, "metrics") == 0);
}

/* Reserves len bytes of http.unsent_budget for r's answer, the check and
 * the charge one atomic step (ons_httpd_unsent_reserve: the gate releases
 * the reservation once a send counts the answer, so two answers made at
 * once cannot both pass a budget that fits one); returns what it returned
 * (0: refused, counted). A large answer is refused rather than a stalled
 * reader cut: the refusal is small, costs the client one retry and never
 * harms a client that reads; http.send_timeout_ms and http.send_min_rate
 * reclaim what stalled readers hold. */
static int unsent_admit(ing_req *r, size_t len)
{
    int how = ons_httpd_unsent_reserve((long long)len, r->app->o.http_unsent_budget,
                                       ons_httpd_pending_fd(&r->pend));
    if (!how && r->srv->unsent_refused)
        ons_counter_add(r->srv->unsent_refused, 1);
    return how;
}

static void reply_now(ing_req *r, int status, const char *content_type, const void *data,
                      size_t len, int static_body, const char *const *headers);

/* The one reply path. static_body: data outlives the server (not copied).
 * headers: name/value pairs, NULL-terminated, or NULL; a "Cache-Control"
 * among them replaces the default no-store. A large GET answer past
 * http.unsent_budget is a 503 overloaded instead. */
static void reply(ing_req *r, int status, const char *content_type, const void *data, size_t len,
                  int static_body, const char *const *headers)
{
    if (!budgeted(r, data, len)) {
        reply_now(r, status, content_type, data, len, static_body, headers);
        return;
    }
    int how = unsent_admit(r, len);
    if (!how) {
        ing_failf(r, NULL, ING_E_OVERLOADED, NULL,
                  "Too many answers are waiting for their clients to read them; retry shortly.");
        return;
    }
    /* r is freed by the reply; its first send is counted by the gate */
    reply_now(r, status, content_type, data, len, static_body, headers);
    if (how == 2)
        ons_httpd_unsent_release((long long)len);
}

static void reply_now(ing_req *r, int status, const char *content_type, const void *data,
                      size_t len, int static_body, const char *const *headers)
{
    ing_server *s = r->srv;
    const char *h[REPLY_HEADERS_MAX];
    char ra[RETRY_AFTER_LEN];
    reply_headers(r, headers, h, ra);
    double secs = (double)(ing_mono_ns() - r->t0_ns) / 1e9;
    ons_httpd_stats_observe(s->stats, r->route ? r->route - ing_routes : -1, status, secs);
    /* One line per request at debug level (an info line per request cost
     * ~10% of a poll's CPU); failures still log at warn, with the id. */
    if (s->app->o.log_requests || status >= 500)
        ons_logk(status >= 500 ? ONS_LOG_WARN : ONS_LOG_DEBUG, "request_id", r->rid,
                 "%s %s %d %.2fms user=%lld", r->method, r->route ? r->route->name : "unmatched",
                 status, secs * 1e3, (long long)r->who.user_id);
    if (r->pend.sink) {
        /* Answered at the accept gate: the same bytes as below, into the
         * gate's buffer (an empty one: the gate closes the connection);
         * one taken for later is sent by the gate now. */
        ons_httpd_sink *k = r->pend.sink;
        if (ons_httpd_finish_direct(&r->pend, status, h, content_type, data, len) != 1)
            k->len = 0;
        if (k->is_later)
            ons_httpd_later_done(k);
        req_free(r);
        return;
    }
    /* Answered in nng's callback on a connection nng keeps open: the
     * response is written whole, without nng's response object
     * (common/httpd.h, ons_httpd_finish_direct). A deferred answer, one
     * after which the connection closes, or a status the direct path does
     * not name goes through nng. */
    if (r->keep_alive && !r->close && !r->pend.deferred &&
        ons_httpd_finish_direct(&r->pend, status, h, content_type, data, len) == 1) {
        req_free(r);
        return;
    }
    finish(r, ons_httpd_res_new(status, h, content_type, data, len, static_body));
}

void ing_reply_text(ing_req *r, int status, const char *content_type, const char *text, size_t len)
{
    reply(r, status, content_type, text, len, 0, NULL);
}

/* 200 with data and its ETag, or 304 when If-None-Match names it. */
static void reply_etag(ing_req *r, const char *content_type, const void *data, size_t len,
                       const char *etag, const char *const *headers, int static_body)
{
    const char *inm = r->hreq || r->pend.sink ? ing_req_header(r, "If-None-Match") : r->inm;
    const char *h[2 * ING_STATIC_HEADERS_MAX + 3];
    size_t n = 0;
    for (size_t i = 0;
         headers && headers[i] && headers[i + 1] && n + 2 < 2 * ING_STATIC_HEADERS_MAX; i += 2) {
        h[n++] = headers[i];
        h[n++] = headers[i + 1];
    }
    if (etag) {
        h[n++] = "ETag";
        h[n++] = etag;
    }
    h[n] = NULL;
    if (etag && inm && strstr(inm, etag))
        reply(r, 304, NULL, NULL, 0, 1, h);
    else
        reply(r, 200, content_type, data, len, static_body, h);
}

void ing_reply_static(ing_req *r, const char *content_type, const void *data, size_t len,
                      const char *etag, const char *const *headers)
{
    reply_etag(r, content_type, data, len, etag, headers, 1);
}

void ing_reply_etag(ing_req *r, const char *content_type, const void *data, size_t len,
                    const char *etag, const char *const *headers)
{
    reply_etag(r, content_type, data, len, etag, headers, 0);
}

void ing_reply_raw(ing_req *r, int status, const char *json_text)
{
    ing_reply_text(r, status, "application/json", json_text, json_text ? strlen(json_text) : 0);
}

void ing_reply_json_headers(ing_req *r, int status, json_t *body, const char *const *headers)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (body && !text) {
        r->retry_after = 1;
        ing_reply_raw(r, 503,
                      "{\"error\":{\"code\":\"unavailable\",\"message\":\"Out of memory.\"}}");
        return;
    }
    reply(r, status, "application/json", text, text ? strlen(text) : 0, 0, headers);
    free(text);
}

void ing_reply_json(ing_req *r, int status, json_t *body)
{
    ing_reply_json_headers(r, status, body, NULL);
}

/* r leaves nng's thread: what a reply reads from the request is copied
 * (If-None-Match, for reply_etag; out of memory only turns a 304 into a
 * 200) and the request let go. */
static void let_go_of_request(ing_req *r)
{
    const char *inm = ing_req_header(r, "If-None-Match");
    if (inm && !r->inm)
        r->inm = strdup(inm);
    r->hreq = NULL;
}

/* A request answered at the gate has no aio to defer: its route's now
 * hook promised an answer at once. Should a handler break that promise,
 * the client gets a 503 rather than no answer. 1 when r was answered. */
static int broken_promise(ing_req *r)
{
    ons_log_error("http: %s was to be answered at once but went to a job",
                  r->route ? r->route->name : "?");
    ing_failf(r, NULL, ING_E_UNAVAILABLE, NULL, "Retry shortly.");
    return 1;
}

/* r leaves the thread that read it for a job: nng's request is let go and
 * r put on the live list (nng may cancel it); a request taken at the gate
 * for later (a join, ing_route.later) gets the sink its answer goes to
 * (ons_httpd_later). 0, or 1 when r was answered (a broken promise). */
static int hand_off(ing_server *s, ing_req *r)
{
    if (!r->pend.sink) {
        let_go_of_request(r);
        ons_httpd_live_add(&s->live, &r->pend);
        return 0;
    }
    ons_httpd_sink *k = r->route && r->route->later ? ons_httpd_later(r->pend.sink) : NULL;
    if (!k)
        return broken_promise(r);
    r->pend.sink = k;
    return 0;
}

void ing_req_submit(ing_req *r, ing_job_fn fn)
{
    ing_server *s = r->srv;
    if (hand_off(s, r))
        return;
    fn = ing_ratelimit_wrap(r, fn);
    if (ing_pool_submit(s->app->pool, fn, r, 0) != 0) {
        ing_failf(r, NULL, ING_E_OVERLOADED, NULL, "The server is busy; retry shortly.");
    }
}

void ing_req_submit_batch(ing_req *r, ing_batcher *b)
{
    ing_server *s = r->srv;
    if (hand_off(s, r))
        return;
    if (ing_batcher_submit(b, r) != 0)
        ing_failf(r, NULL, ING_E_OVERLOADED, NULL, "The server is busy; retry shortly.");
}

/* ---- routing -------------------------------------------------------------------- */

/* The route of r's method and path (r->params filled), or NULL when r was
 * finished (404, 400 invalid_path, 405). */
static const ing_route *route_of(ing_req *r, nng_http_req *hreq)
{
    ons_httpd_err e;
    long ri =
        hreq ? ons_httpd_route(&route_table, hreq, r->method, sizeof r->method, r->pathbuf, NULL,
                               sizeof r->pathbuf, r->params, ING_MAX_PARAMS, &r->nparams, &e)
             : ons_httpd_route_uri(&route_table, r->pend.sink->view->method,
                                   r->pend.sink->view->target, r->method, sizeof r->method,
                                   r->pathbuf, NULL, sizeof r->pathbuf, r->params, ING_MAX_PARAMS,
                                   &r->nparams, &e);
    if (ri < 0) {
        ing_fail_httpd(r, &e);
        return NULL;
    }
    return &ing_routes[ri];
}

/* The bearer token (401) and its role (403) for a route that is not
 * public. 0, or -1 when r was finished. */
static int authorize(ing_app *app, ing_req *r)
{
    if (!r->route->roles)
        return 0;
    const char *authz = ing_req_header(r, "Authorization");
    if (!authz || ons_auth_verify_cached(app->auth_cache, authz, ing_now_ms() / 1000, &r->who)) {
        memset(&r->who, 0, sizeof r->who);
        ing_fail(r, NULL, ING_E_UNAUTHORIZED, NULL);
        return -1;
    }
    if (!(r->route->roles & (int)r->who.role)) {
        ing_fail(r, NULL, ING_E_FORBIDDEN, NULL);
        return -1;
    }
    return 0;
}

/* The Idempotency-Key (400 when malformed) and, for routes with a body,
 * its size and JSON object shape. 0, or -1 when r was finished. */
static int headers_and_body(ing_app *app, ing_req *r, nng_http_req *hreq)
{
    const char *idem = ing_req_header(r, "Idempotency-Key");
    if (idem) {
        if (!ing_idem_key_valid(idem)) {
            ing_fail(r, NULL, ING_E_INVALID_IDEMPOTENCY_KEY, NULL);
            return -1;
        }
        ons_httpd_copy(r->idem, sizeof r->idem, idem);
    }
    if (!r->route->body)
        return 0;
    ons_httpd_err e;
    if ((hreq ? ons_httpd_body_check_len(hreq, r->raw_len, app->o.http_max_body, 0, &e)
              : ons_httpd_body_check_type(ing_req_header(r, "Content-Type"), r->raw_len,
                                          app->o.http_max_body, 0, &e)) ||
        (r->route->body != ING_BODY_OWN &&
         ons_httpd_body_parse(r->raw, r->raw_len, &r->body, &e))) {
        ing_fail_httpd(r, &e);
        return -1;
    }
    return 0;
}

/* May a request framed at the gate (r->pend.sink) of route be handled
 * there? A GET whose route has a now hook (asked after authentication),
 * or a request with its body of a route answered later (a join) with no
 * Idempotency-Key (its record's path stays on nng's); else nng gets it,
 * r untouched. */
static int at_gate(ing_req *r, const ing_route *route)
{
    const ons_httpd_view *v = r->pend.sink->view;
    if (!v->body)
        return route->now != NULL;
    return route->later && r->raw && !ons_httpd_view_header(v, "Idempotency-Key");
}

/* Everything before the route handler after the body arrived: see
 * server.h for the order. hreq is NULL for a request at the accept gate
 * (r->pend.sink): there, a route without a now hook, or whose hook says its
 * handler cannot answer at once, is left alone (r is not touched after
 * the route is found, nothing is charged) and 0 returned; else 1: r was
 * answered or handed on. */
static int dispatch(ing_server *s, ing_req *r, nng_http_req *hreq)
{
    const ing_route *route = route_of(r, hreq);
    if (!route)
        return 1;
    if (!hreq && !at_gate(r, route))
        return 0;
    r->route = route;
    r->hreq = hreq;
    ing_client_addr_resolve(r);
    if (authorize(s->app, r))
        return 1;
    if (!hreq && route->now && !route->now(r))
        return 0;
    if (ing_ratelimit_admit(r) || headers_and_body(s->app, r, hreq))
        return 1;
    route->handler(r);
    return 1;
}

/* The body arrived (or did not: timeout, the client left, the server
 * stops). Runs on an nng thread. */
static void on_body(void *arg)
{
    ing_req *r = arg;
    ing_server *s = r->srv;
    long long declared = (long long)r->raw_len; /* r may be freed by the reply */
    int rv = nng_aio_result(r->body_aio);
    int whole = rv == 0 && nng_aio_count(r->body_aio) == r->raw_len;
    atomic_fetch_add(&s->dispatching, 1);
    if (whole && !atomic_load(&s->stopping)) {
        r->raw[r->raw_len] = '\0';
        dispatch(s, r, r->hreq);
        atomic_fetch_sub(&s->dispatching, 1);
    } else if (whole) {
        atomic_fetch_sub(&s->dispatching, 1);
        r->close = 1;
        ing_failf(r, NULL, ING_E_UNAVAILABLE, NULL, "The server is shutting down.");
    } else {
        atomic_fetch_sub(&s->dispatching, 1);
        /* Timed out or the connection went away: nng closes it, so this
         * reply is counted (as 408) and reaches the client only when it
         * wins that race. */
        r->close = 1;
        ing_failf(r, NULL, ING_E_REQUEST_TIMEOUT, NULL, "The body did not arrive within %lld ms.",
                  s->app->o.http_body_timeout_ms);
    }
    atomic_fetch_sub(&s->body_bytes, declared);
    atomic_fetch_sub(&s->body_reads, 1);
}

/* The interim answer a client that sent "Expect: 100-continue" waits for
 * before it sends its body (RFC 9110, 10.1.1). nng writes from it. */
static char continue_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* What hreq's Expect header asks: 0 nothing (none, or HTTP/1.0, where the
 * RFC says to ignore it), 1 100-continue, -1 another expectation (417). */
static int expectation(nng_http_req *hreq)
{
    const char *ex = nng_http_req_get_header(hreq, "Expect");
    if (!ex || strcmp(nng_http_req_get_version(hreq), "HTTP/1.1") != 0)
        return 0;
    return strcasecmp(ex, "100-continue") == 0 ? 1 : -1;
}

typedef struct continue_write {
    nng_aio *aio;
} continue_write;

/* The 100's write owns itself: it ends here, however it ends, never with
 * its request. Freeing it with the request cancelled a write still under
 * way (a socket that took no bytes yet), and nng then closed the
 * connection with the final answer queued behind it. */
static void continue_done(void *arg)
{
    continue_write *c = arg;
    nng_aio_reap(c->aio);
    free(c);
}

/* Tells a client that waits for it to send its body: the body will be
 * read (its length fits http.max_body and http.body_budget). Before the
 * body read, on nng's write queue: a client that sends its body without
 * waiting meets no harm (a 100 before the final answer is always
 * allowed). Should the write fail, the body read fails or times out as
 * any. */
static void send_continue(nng_http_conn *conn)
{
    continue_write *c = malloc(sizeof *c);
    if (!c)
        return;
    if (nng_aio_alloc(&c->aio, continue_done, c) != 0) {
        free(c);
        return;
    }
    nng_iov iov = {.iov_buf = continue_100, .iov_len = sizeof continue_100 - 1};
    nng_aio_set_iov(c->aio, 1, &iov);
    nng_http_conn_write_all(conn, c->aio);
}

/* Reads r's declared body of len bytes (then on_body dispatches it), or
 * refuses it when the server holds too many bodies already. expect: the
 * client waits for a 100 Continue before it sends the body. */
static void read_body(ing_server *s, ing_req *r, nng_http_conn *conn, size_t len, int expect)
{
    /* Half-sent bodies by the thousand must not grow memory: past the
     * budget a body is refused from its head, as one over http.max_body. */
    long long held = atomic_fetch_add(&s->body_bytes, (long long)len) + (long long)len;
    if (held > s->app->o.http_body_budget) {
        atomic_fetch_sub(&s->body_bytes, (long long)len);
        r->close = 1;
        ing_failf(r, NULL, ING_E_OVERLOADED, NULL,
                  "Too many request bodies are being received; retry shortly.");
        return;
    }
    r->raw = malloc(len + 1);
    r->raw_len = len;
    if (r->raw && ons_httpd_take_body(conn, r->raw, len) == (ssize_t)len) {
        /* It came with the head and the gate held it: dispatched here, on
         * nng's thread, as a request without a body is. */
        atomic_fetch_sub(&s->body_bytes, (long long)len);
        r->raw[len] = '\0';
        dispatch(s, r, r->hreq);
        return;
    }
    if (!r->raw || nng_aio_alloc(&r->body_aio, on_body, r) != 0) {
        atomic_fetch_sub(&s->body_bytes, (long long)len);
        r->close = 1;
        ing_fail(r, NULL, ING_E_OVERLOADED, NULL);
        return;
    }
    nng_iov iov = {.iov_buf = r->raw, .iov_len = len};
    nng_aio_set_iov(r->body_aio, 1, &iov);
    nng_aio_set_timeout(r->body_aio, (nng_duration)s->app->o.http_body_timeout_ms);
    /* From here nng may cancel the request (the client leaves, the server
     * stops); on_body then still runs once and its reply is dropped. */
    ons_httpd_live_add(&s->live, &r->pend);
    atomic_fetch_add(&s->body_reads, 1);
    if (expect)
        send_continue(conn);
    ons_httpd_read_body(conn, r->body_aio);
}

/* A new request of s, its clock and id started; NULL when out of memory. */
static ing_req *req_new(ing_server *s)
{
    /* One per request, from this thread's recycled requests (common/recycle.h):
     * a join is freed on the finisher's thread, so glibc's per-thread cache
     * of this one never refilled and each request took the arena's path. */
    ing_req *r = ons_recycle_alloc(ONS_RECYCLE_ING_REQ, sizeof *r);
    if (!r)
        return NULL;
    memset(r, 0, sizeof *r);
    r->t0_ns = ing_mono_ns();
    r->srv = s;
    r->app = s->app;
    ons_httpd_rid_next(&s->rid, "", r->rid, sizeof r->rid);
    return r;
}

/* A body the gate read with its head (a join), copied into r->raw as
 * read_body would, when it is one the server takes at the gate
 * (http.gate_joins, at most http.max_body: a larger one gets its 413 from
 * nng's path). Bodies that came whole never wait, so http.body_budget
 * (bodies being received) does not count them. 1 when r may be
 * dispatched at the gate (no body, or its body taken), else 0. */
static int take_view_body(ing_server *s, ing_req *r, const ons_httpd_view *v)
{
    if (!v->body)
        return 1;
    if (!s->app->o.http_gate_joins || (long long)v->body_len > s->app->o.http_max_body)
        return 0;
    r->raw = v->body_len < sizeof r->raw_inline ? r->raw_inline : malloc(v->body_len + 1);
    if (!r->raw)
        return 0;
    memcpy(r->raw, v->body, v->body_len);
    r->raw[v->body_len] = '\0';
    r->raw_len = v->body_len;
    return 1;
}

/* The accept gate's answer hook (ons_httpd_gate_opts.answer): the request
 * in out->view goes through the same steps as one nng parsed (dispatch), on the
 * gate's thread, and is answered into out when its route's now hook says
 * the handler answers it at once; else 0 and nng gets it. Its reply is
 * the bytes ons_httpd_finish_direct writes on nng's path, its metrics and
 * log line the same. */
static int gate_answer(void *arg, ons_httpd_sink *out)
{
    ing_server *s = arg;
    int answered = 0;
    atomic_fetch_add(&s->dispatching, 1); /* the stop waits for it */
    ing_req *r = atomic_load(&s->stopping) ? NULL : req_new(s);
    if (r) {
        r->pend.sink = out;
        r->keep_alive = 1; /* the gate offers keep-alive requests only */
        ons_httpd_copy(r->method, sizeof r->method, out->view->method);
        answered = take_view_body(s, r, out->view) && dispatch(s, r, NULL);
        if (!answered)
            req_free(r);
    }
    atomic_fetch_sub(&s->dispatching, 1);
    return answered;
}

/* Called by nng with the request head only (no body read yet): checks the
 * framing and the expectation (a 100 Continue is sent only for a body
 * that will be read; one refused from its head, 413 or 503, gets none),
 * then reads a declared body of at most http.max_body bytes
 * with a deadline, then dispatches. A body is never read before its
 * length is known to fit. */
static void on_http(nng_aio *aio)
{
    nng_http_req *hreq = nng_aio_get_input(aio, 0);
    nng_http_handler *h = nng_aio_get_input(aio, 1);
    nng_http_conn *conn = nng_aio_get_input(aio, 2);
    ing_server *s = nng_http_handler_get_data(h);
    ing_req *r = req_new(s);
    if (!r) {
        nng_aio_finish(aio, NNG_ENOMEM);
        return;
    }
    r->pend.aio = aio;
    r->pend.conn = conn;
    r->hreq = hreq;
    r->keep_alive = ons_httpd_keeps_alive(hreq) && s->app->o.http_direct_replies;
    ons_httpd_copy(r->method, sizeof r->method, nng_http_req_get_method(hreq));

    size_t len = 0;
    ons_httpd_err e;
    if (ons_httpd_framing(hreq, s->app->o.http_max_body, &len, &e)) {
        r->close = 1;
        ing_fail_httpd(r, &e);
        return;
    }
    /* An expectation is about a body (RFC 9110 lets a server ignore it
     * otherwise): a request without one pays no header lookup. */
    int expect = len > 0 ? expectation(hreq) : 0;
    if (expect < 0) {
        r->close = 1; /* the body may follow or not: it cannot be framed */
        ing_fail(r, NULL, ING_E_EXPECTATION_FAILED, NULL);
    } else if (len == 0) {
        dispatch(s, r, hreq);
    } else {
        read_body(s, r, conn, len, expect);
    }
}

/* ---- lifecycle ---------------------------------------------------------------------- */

/* The accept gate in front of nng (common/httpd.h), from the http.*
 * options; 0 or its error. */
static int start_gate(ing_server *s, ing_app *app)
{
    if (app->o.debug_gate_start_delay_ms > 0) {
        long long ms = app->o.debug_gate_start_delay_ms;
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    ons_httpd_gate_opts g = {
        .max_connections = app->o.http_max_connections,
        .reserved_fds = app->o.http_reserved_fds,
        .max_request_line = app->o.http_max_request_line,
        .max_head = app->o.http_max_head,
        .header_timeout_ms = app->o.http_header_timeout_ms,
        .idle_timeout_ms = app->o.http_idle_timeout_ms,
        .crowded_timeout_ms = app->o.http_crowded_timeout_ms,
        .send_timeout_ms = app->o.http_send_timeout_ms,
        .send_min_rate = app->o.http_send_min_rate,
        .send_min_owed = app->o.http_unsent_small,
        .send_buffer = app->o.http_send_buffer,
        .stalled = ons_metrics_counter(
            app->metrics, "onsale_ingress_connections_send_stalled_total",
            "Connections closed because their answer made no progress into the socket for "
            "http.send_timeout_ms (a client that stopped reading).",
            ""),
        .slow_drain = ons_metrics_counter(
            app->metrics, "onsale_ingress_connections_slow_drain_total",
            "Connections closed because their client drained fewer than http.send_min_rate "
            "bytes a second over a window of http.send_timeout_ms while owing answer bytes.",
            ""),
        .refused = ons_metrics_counter(app->metrics, "onsale_ingress_connections_refused_total",
                                       "Clients refused at accept: connection cap or reserve.", ""),
        .timed_out =
            ons_metrics_counter(app->metrics, "onsale_ingress_connections_timed_out_total",
                                "Connections closed for silence (header or idle timeout).", ""),
        .bad_heads =
            ons_metrics_counter(app->metrics, "onsale_ingress_bad_heads_total",
                                "Request heads refused before parsing (414, 431, '%' path).", ""),
        .debug_conn_kept_at_shutdown = app->o.debug_gate_conn_kept,
    };
    if (app->o.http_gate_answers && app->o.http_direct_replies) {
        g.answer = gate_answer;
        g.answer_arg = s;
        g.answer_threads = (int)app->o.http_gate_threads;
        g.answer_later = app->o.http_gate_joins;
        g.taken = ons_metrics_counter(
            app->metrics, "onsale_ingress_gate_joins_total",
            "Joins taken by the accept gate as it read them, answered once queued "
            "(http.gate_joins).",
            "");
        g.answered = ons_metrics_counter(
            app->metrics, "onsale_ingress_gate_answers_total",
            "Requests answered by the accept gate as it read them (http.gate_answers).", "");
    }
    return ons_httpd_gate_start(&g, (int)app->o.http_port);
}

int ing_server_start(ing_app *app, ing_server **out)
{
    if (app->o.http_body_budget < app->o.http_max_body) {
        ons_log_error("http.body_budget (%lld) must be at least http.max_body (%lld)",
                      app->o.http_body_budget, app->o.http_max_body);
        return ONS_EINVAL;
    }
    ing_server *s = calloc(1, sizeof *s);
    if (!s)
        return ONS_ENOMEM;
    ons_httpd_live_init(&s->live);
    ons_httpd_rid_init(&s->rid);
    s->app = app;
    route_table.count = ing_route_count;
    ons_httpd_stats_opts so = {
        .metrics = app->metrics,
        .requests_name = "onsale_ingress_requests_total",
        .requests_help = "HTTP requests by route and status.",
        .seconds_name = "onsale_ingress_request_seconds",
        .seconds_help = "HTTP request latency by route and status, seconds.",
        .seconds_by_status = 1,
        .tracked = tracked_status,
        .ntracked = sizeof tracked_status / sizeof *tracked_status,
    };
    if (ons_httpd_stats_new(&so, &route_table, &s->stats)) {
        ing_server_free(s);
        return ONS_ENOMEM;
    }
    s->unsent_refused = ons_metrics_counter(
        app->metrics, "onsale_ingress_unsent_refused_total",
        "GET answers refused (503 overloaded) because the answers clients have not read "
        "filled http.unsent_budget.",
        "");
    atomic_init(&s->body_reads, 0);
    atomic_init(&s->body_bytes, 0);
    atomic_init(&s->stopping, 0);
    atomic_init(&s->dispatching, 0);
    if (app->o.http_gate)
        ons_httpd_gate_arm((int)app->o.http_port); /* no client served before the gate */
    int rc = ons_httpd_listen(app->o.http_bind, app->o.http_port, 0, on_http, s, &s->http);
    if (rc) {
        ons_httpd_gate_arm(0);
        ing_server_free(s);
        return rc;
    }
    if (app->o.http_gate) {
        rc = start_gate(s, app);
        if (rc) {
            ing_server_free(s);
            return rc;
        }
        s->gated = 1;
    }
    *out = s;
    return 0;
}

void ing_server_stop(ing_server *s)
{
    if (!s)
        return;
    /* No body dispatch may read a request head the close below frees. */
    atomic_store(&s->stopping, 1);
    while (atomic_load(&s->dispatching) > 0) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    ons_httpd_close(&s->http);
    /* Closing the connections aborted the body reads; their callbacks
     * still touch s, so wait for them (bounded: they are already queued). */
    for (int i = 0; i < 5000 && atomic_load(&s->body_reads) > 0; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (s->gated)
        ons_httpd_gate_stop();
    s->gated = 0;
}

void ing_server_free(ing_server *s)
{
    if (!s)
        return;
    ing_server_stop(s);
    ons_httpd_stats_free(s->stats);
    ons_httpd_live_fini(&s->live);
    free(s);
}
