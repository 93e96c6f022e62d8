/*
 * httpd.h - the one HTTP server module of Onsale, over nng: ingress (the
 * front door), onsale-gateway (the payment simulator) and the workers'
 * /metrics endpoint all serve through it. Listening with one tree handler
 * on "/", request ids, path checks, route lookup over a caller's table,
 * per-route request metrics, body checks, JSON error bodies, building a
 * response, the live list that lets nng cancel a deferred request's aio,
 * and (ingress) the accept gate.
 *
 * Each server keeps its own request struct, route table, metrics and reply
 * policy; these helpers hold no per-request state and never reply
 * themselves. Check failures come back as an ons_httpd_err (status, code,
 * message) that the caller turns into its own error reply.
 *
 * Threads: everything here may run on any thread; ons_httpd_live guards
 * itself with its own mutex.
 */
#ifndef ONSALE_COMMON_HTTPD_H
#define ONSALE_COMMON_HTTPD_H

#include <jansson.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include "common/metrics.h"
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Most path segments a route lookup accepts. */
#define ONS_HTTPD_MAX_SEGS 8

/* A check failure, ready to be sent as an error reply. */
typedef struct ons_httpd_err {
    int status;
    const char *code;
    char message[256];
    char allow[64]; /* a 405's Allow value ("GET, POST"), else empty */
} ons_httpd_err;

/* Monotonic clock, nanoseconds. */
int64_t ons_httpd_mono_ns(void);

/* ---- listening ---------------------------------------------------------------- */

/* Holds the nng HTTP server for http://bind:port, adds one tree handler on
 * "/" for every method that calls cb with data as the handler data, and
 * starts it. read_limit > 0: nng collects bodies up to read_limit bytes
 * before calling cb (and answers 400 itself above it). read_limit == 0: cb
 * is called as soon as the request head is parsed, with no body read; the
 * caller checks ons_httpd_framing() and reads the body itself from the
 * connection (nng_aio input 2) with nng_http_conn_read_all(). *out is the
 * caller's (ons_httpd_close). Logs and returns ONS_EIO when it cannot
 * listen. */
int ons_httpd_listen(const char *bind, long long port, long long read_limit, void (*cb)(nng_aio *),
                     void *data, nng_http_server **out);
/* Stops and releases *http (may be NULL) and sets it to NULL. */
void ons_httpd_close(nng_http_server **http);

/* ---- request ids ----------------------------------------------------------------- */

/* A source of request ids unique per process start. */
typedef struct ons_httpd_rid {
    uint64_t seed;
    atomic_uint_fast64_t next;
} ons_httpd_rid;

/* Copies at most size - 1 bytes of src and a NUL into dst (size > 0), as
 * snprintf(dst, size, "%s", src) does without printf's cost. Returns the
 * bytes copied. */
size_t ons_httpd_copy(char *dst, size_t size, const char *src);

/* Seeds g from the clock and the process id. */
void ons_httpd_rid_init(ons_httpd_rid *g);
/* Writes prefix followed by 16 hex digits into buf. Any thread. */
void ons_httpd_rid_next(ons_httpd_rid *g, const char *prefix, char *buf, size_t size);

/* ---- routing ----------------------------------------------------------------------- */

/* Copies the request's method (or "?") into method and its URI up to any
 * '?' into path. Returns 0, or ONS_ENOTFOUND when the path is empty or does
 * not fit. */
int ons_httpd_req_target(nng_http_req *hreq, char *method, size_t method_size, char *path,
                         size_t path_size);

/* 1 when path holds only letters, digits, '-', '_' and '/' (no
 * percent-encoding: nng 1.5.2 decodes URIs with known bugs) and, when
 * allow_dots, a '.' that does not start a segment (so no ".." and no
 * hidden names); else 0. */
int ons_httpd_path_ok(const char *path, int allow_dots);

/* Where the method and pattern strings sit in the caller's route rows. A
 * pattern is "/a/{}/b": each "{}" segment matches one non-empty path
 * segment. */
typedef struct ons_httpd_table {
    const void *rows;
    size_t count;
    size_t stride;      /* sizeof one row */
    size_t method_off;  /* offsetof the row's const char *method */
    size_t pattern_off; /* offsetof the row's const char *pattern */
    size_t name_off;    /* offsetof the row's const char *name (metric label) */
    /* 1: a '.' inside a name is allowed, and a path with a character no
     * path may hold is 400 invalid_path; 0: no '.', and such a path is 404. */
    int path_dots;
} ons_httpd_table;

/* The initializer of a table over count rows of type row_type, whose
 * fields name, method and pattern are const char *. */
#define ONS_HTTPD_TABLE_INIT(row_array, n, row_type, dots)                                         \
    {                                                                                              \
        .rows = (row_array), .count = (n), .stride = sizeof(row_type),                             \
        .method_off = offsetof(row_type, method), .pattern_off = offsetof(row_type, pattern),      \
        .name_off = offsetof(row_type, name), .path_dots = (dots)                                  \
    }

/* The row's name (its metric label), or "unmatched" when i is -1. */
const char *ons_httpd_route_name(const ons_httpd_table *t, long i);

/* Every routing step before a handler, in order: the request's method and
 * path (ons_httpd_req_target, into method and path), the path's characters
 * (ons_httpd_path_ok with t->path_dots) and the route: the first row whose
 * pattern matches the path's segments ("{}" one segment, into params) and
 * whose method is the request's (a 405 when only another method's does).
 * The path is split in segs (path_size bytes) when segs is not NULL, so path
 * stays whole for logs; else in path itself. Returns the row's index with
 * params[] pointing into the split path, or -1 with e filled: 404 not_found,
 * 400 invalid_path (see path_dots) or 405 method_not_allowed. */
long ons_httpd_route(const ons_httpd_table *t, nng_http_req *hreq, char *method, size_t method_size,
                     char *path, char *segs, size_t path_size, const char **params, int max_params,
                     int *nparams, ons_httpd_err *e);

/* ons_httpd_route for a request line's method m and target uri (a request
 * the accept gate framed, ons_httpd_view). */
long ons_httpd_route_uri(const ons_httpd_table *t, const char *m, const char *uri, char *method,
                         size_t method_size, char *path, char *segs, size_t path_size,
                         const char **params, int max_params, int *nparams, ons_httpd_err *e);

/* ---- request metrics ------------------------------------------------------------------ */

/* A counter per (route, status) and a latency histogram per route, or per
 * (route, status) when seconds_by_status, created on first use (a per-route
 * histogram: at ons_httpd_stats_new, so it shows before any request). The
 * statuses in tracked[] get their own series; any other is "other". */
typedef struct ons_httpd_stats_opts {
    ons_metrics *metrics;
    const char *requests_name, *requests_help; /* the counter */
    const char *seconds_name, *seconds_help;   /* the histogram */
    int seconds_by_status;
    const int *tracked;
    size_t ntracked;
} ons_httpd_stats_opts;

typedef struct ons_httpd_stats ons_httpd_stats;

/* Metrics for t's routes plus "unmatched". o's strings and tracked[] must
 * outlive the stats. *out is the caller's (ons_httpd_stats_free). Returns 0
 * or ONS_ENOMEM. */
int ons_httpd_stats_new(const ons_httpd_stats_opts *o, const ons_httpd_table *t,
                        ons_httpd_stats **out);
void ons_httpd_stats_free(ons_httpd_stats *s);
/* Counts one finished request of route (its row index, -1 unmatched) with
 * status and times it. Any thread; lock-free once the series exist. */
void ons_httpd_stats_observe(ons_httpd_stats *s, long route, int status, double seconds);

/* ---- bodies -------------------------------------------------------------------------- */

/* How the request's body is framed, checked before any of it is read:
 * Transfer-Encoding (nng 1.5.2 never decodes chunked bodies, so the chunk
 * bytes would be parsed as the next request) is 411 length_required; a
 * Content-Length that is not one decimal number is 400
 * invalid_content_length; one over max is 413 payload_too_large. On
 * success *len is the declared length (0 without the header) and 0 is
 * returned; else e is filled and -1 returned, and the connection must be
 * closed after the reply (its remaining bytes cannot be framed). */
int ons_httpd_framing(nng_http_req *hreq, long long max, size_t *len, ons_httpd_err *e);

/* Checks a JSON body's Content-Type (415) and size (413, len over max),
 * the size first when size_first. Returns 0, or -1 with e filled. */
int ons_httpd_body_check_len(nng_http_req *hreq, size_t len, long long max, int size_first,
                             ons_httpd_err *e);
/* The same for a request whose Content-Type value (NULL: absent) is at
 * hand (a request framed at the gate, ons_httpd_view). */
int ons_httpd_body_check_type(const char *content_type, size_t len, long long max, int size_first,
                              ons_httpd_err *e);

/* Checks a JSON body's Content-Type (415) and size (413, more than max
 * bytes), the size first when size_first. On success *data and *len are the
 * collected body (owned by hreq) and 0 is returned; else e is filled and
 * -1 returned. */
int ons_httpd_body_check(nng_http_req *hreq, long long max, int size_first, void **data,
                         size_t *len, ons_httpd_err *e);
/* Parses data as one JSON object (duplicate keys rejected). Returns 0 with
 * *out the caller's, or -1 with e filled (400 invalid_json) and *out NULL
 * or a non-object the caller must still json_decref. */
int ons_httpd_body_parse(const char *data, size_t len, json_t **out, ons_httpd_err *e);

/* A small body's common shape read without a JSON parser (the join's
 * {"quantity":1}, parsed on a gate thread per request): 1 when
 * data[0..len) is exactly one JSON object whose only member is key,
 * written plainly (no escapes), with a plain integer value (no sign,
 * fraction, exponent or leading zero, at most 18 digits), JSON
 * whitespace allowed around every token; *out is the integer. 0 for
 * anything else, with nothing said about it: the caller then parses data
 * with ons_httpd_body_parse as before. So what this accepts is a subset
 * of what ons_httpd_body_parse accepts, with the same member and value
 * (tests/unit/test_httpd_sole_int.c compares the two). key: at most 64
 * bytes, none of them '"' or '\\'. */
int ons_httpd_body_sole_int(const char *data, size_t len, const char *key, int64_t *out);

/* {"error":{"code":..,"message":..,"field":..}} with field left out when
 * NULL; the message is fmt formatted (at most 255 bytes). Returns a new
 * reference, or NULL when out of memory. */
json_t *ons_httpd_error_body(const char *code, const char *field, const char *fmt, va_list ap);

/* ---- responses ---------------------------------------------------------------------- */

/* Builds a response: status, headers (name/value pairs, NULL-terminated,
 * set in order), and when data is not NULL a Content-Type and the body
 * (copied unless static_body, when it must outlive the response). Returns
 * the response, owned by the caller, or NULL when nng fails. */
nng_http_res *ons_httpd_res_new(int status, const char *const *headers, const char *content_type,
                                const void *data, size_t len, int static_body);

/* ---- deferred requests ------------------------------------------------------------------ */

/* A request answered at the accept gate (ons_httpd_gate_opts.answer): its
 * head, and where its answer goes: ons_httpd_finish_direct writes the
 * whole response here instead of on a connection. buf starts as the gate's own buffer of cap bytes;
 * a larger response is written to heap (malloc'd by finish_direct, freed by the gate), and buf then
 * points to it. */
typedef struct ons_httpd_sink {
    const struct ons_httpd_view *view; /* the request being answered; NULL in a later sink */
    char *buf;
    size_t len, cap;
    char *heap;
    /* The gate's (ons_httpd_later): the connection the request came on (its
     * descriptor and the slot's generation), may_later: the request may be
     * answered later (a view with a body, ons_httpd_gate_opts.answer_later),
     * taken: ons_httpd_later took it, is_later: this is the heap sink
     * ons_httpd_later made, to be ended by ons_httpd_later_done. */
    int fd;
    unsigned gen;
    int may_later, taken, is_later;
} ons_httpd_sink;

/* Embedded in a request whose reply may come later, from another thread. */
typedef struct ons_httpd_pending {
    /* The gate's sink when the request is answered at the gate (no nng
     * request, aio and conn are NULL), else NULL. */
    ons_httpd_sink *sink;
    nng_aio *aio;
    /* The request's connection (the handler aio's input 2), for
     * ons_httpd_finish_direct; NULL when the server does not use it. */
    nng_http_conn *conn;
    int deferred, finished; /* guarded by the live list's mutex */
    struct ons_httpd_pending *prev, *next;
} ons_httpd_pending;

/* The requests whose aio nng may still cancel (a connection closes, the
 * server stops). The cancel routine is given the list, never the request,
 * so a racing reply cannot leave it a dangling pointer. */
typedef struct ons_httpd_live {
    pthread_mutex_t mu;
    ons_httpd_pending *head;
} ons_httpd_live;

void ons_httpd_live_init(ons_httpd_live *l);
void ons_httpd_live_fini(ons_httpd_live *l);
/* Marks p deferred, links it and registers the cancel routine on p->aio;
 * a no-op when p is already deferred. nng threads only. */
void ons_httpd_live_add(ons_httpd_live *l, ons_httpd_pending *p);
/* The one end of a request's aio, called once by its reply: finishes
 * p->aio with res (stolen), or with rv (NNG_ENOMEM when rv is 0) when res
 * is NULL or rv is not 0. Returns 1, or 0 when nng had cancelled the aio
 * first (res is then just freed). Any thread; the caller frees the
 * request afterwards. */
int ons_httpd_finish(ons_httpd_live *l, ons_httpd_pending *p, nng_http_res *res, int rv);

/* ---- direct responses ------------------------------------------------------------------ */

/* 1 when nng keeps req's connection open after the answer: an HTTP/1.1
 * request that is not HEAD and has no "close" in its Connection header
 * (nng 1.5.2's own test, http_sconn_rxdone). Only such a request may be
 * answered with ons_httpd_finish_direct: nng closes the others as soon as
 * the handler finishes, which would cut a write still under way. */
int ons_httpd_keeps_alive(nng_http_req *req);

/* The reason phrase of status in a direct response, or NULL when the
 * module does not know it (the caller then answers through nng). */
const char *ons_httpd_reason(int status);

/* Answers p as ons_httpd_finish does, but writes the response itself: the
 * status line, the headers (name/value pairs, NULL-terminated, in order),
 * Content-Type and Content-Length when data is not NULL, and the body, in
 * one buffer and one write queued on p->conn. The handler's aio is finished
 * when that write is, as nng does with its own answers: with no response
 * once the bytes are all in the kernel, and nng reads the connection's next
 * request; with the write's error, and nng closes the connection. So nng
 * never reads (nor closes a connection on) a request while an answer
 * before it is still queued: a close cannot cancel one. This skips nng's
 * response object: a header list with three allocations per header and
 * two printf passes over it, a copy of the body, a second iovec. The
 * buffers and their write aios are pooled, so a response allocates
 * nothing once the pool is warm.
 * When the connection's socket is known (ons_httpd_conn_fd), the answer is
 * sent on it at once, on the calling thread, with one sendmsg (the head
 * formatted on the stack, the body from data, not copied), and the
 * handler's aio is finished then: nng's write, its callback and ours (two
 * thread hand-offs per answer) are skipped. What the socket does not take
 * at once (a full send buffer) is written through nng as above; a failed
 * send finishes the aio with an error, and nng closes the connection.
 * Only from the handler's own nng callback (p not deferred: the
 * connection is nng's to free once a deferred aio can be cancelled, and a
 * job thread's write measured slower, bench/NOTES.md), for a request
 * ons_httpd_keeps_alive accepted and a status ons_httpd_reason knows.
 * Returns 1 (sent and finished) or -1 when it cannot (deferred, unknown
 * status, out of memory): then nothing was done and the caller answers
 * through nng (ons_httpd_finish). Header names and values must hold no CR
 * or LF. With p->sink set (an answer made at the gate), the same bytes are
 * written into the sink instead, and nothing else is done; -1 then means
 * an unknown status or out of memory. */
int ons_httpd_finish_direct(ons_httpd_pending *p, int status, const char *const *headers,
                            const char *content_type, const void *data, size_t len);

/* A request head as the accept gate framed it, for an answer made at the
 * gate without nng (ons_httpd_gate_opts.answer): the request line's parts
 * and the header lines, each NUL-terminated. Only heads nng would parse
 * the same way get here: HTTP/1.1, GET, a target of path characters only
 * (no query, no "//", no "/."), no Content-Length or Transfer-Encoding,
 * no header name twice, no value ending in a space, no Connection: close;
 * values have their leading spaces removed, as nng does. With
 * answer_later also a POST so framed but with one plain Content-Length
 * of 1 to ONS_HTTPD_LATER_BODY_MAX bytes, no Expect, and its whole body
 * (body, body_len). */
typedef struct ons_httpd_view {
    const char *method;
    const char *target;
    size_t nhdrs;
    const char *names[32];
    const char *values[32];
    /* A POST's body (ons_httpd_gate_opts.answer_later): all body_len
     * bytes came in the read with the head; not NUL-terminated. NULL for a
     * GET. */
    const char *body;
    size_t body_len;
} ons_httpd_view;

/* The value of header name (any case) in v, or NULL. */
const char *ons_httpd_view_header(const ons_httpd_view *v, const char *name);

/* A request offered at the gate with a body (out->may_later) whose answer
 * comes later, from another thread (a join: answered once its intent is
 * in the log): the gate takes it (its bytes never reach nng) and holds
 * the connection (nothing more of it is read, by nng or the gate's
 * threads) until ons_httpd_later_done has sent the answer; so pipelined
 * requests behind it are answered after it, in order. Returns the sink
 * the answer is to be written into (ons_httpd_finish_direct on a pending
 * whose sink it is; its view is NULL: the head is gone once the answer
 * hook returns), or NULL (not allowed, out of memory): then nothing was
 * taken and the request must be answered now, into out. Only from the
 * answer hook, once per request. */
ons_httpd_sink *ons_httpd_later(ons_httpd_sink *out);
/* Sends the answer written into k (a sink of ons_httpd_later; k->len 0:
 * none could be made, the connection is closed) on its connection, unless
 * it closed meanwhile (the answer is dropped), lets the connection's next
 * request be read, and frees k. Any thread, exactly once per later sink. */
void ons_httpd_later_done(ons_httpd_sink *k);

/* Frees the pooled direct-response buffers that are idle (at exit, after
 * the servers stopped; writes still under way return theirs later). */
void ons_httpd_direct_drain(void);

/* The socket under a connection, for ons_httpd_finish_direct's own send.
 * nng 1.5.2 does not name a connection's descriptor, so the accept gate
 * learns it: a direct answer that goes through nng's write sets
 * ons_httpd_io to its connection around nng_http_conn_write_all (as
 * ons_httpd_read_body does around a body read), and nng, whose write (read)
 * queue is empty then, calls sendmsg (readv) on that descriptor on the same
 * thread before it returns; the gate's wrapper notes the pair.
 * ons_httpd_conn_fd (set by ons_httpd_gate_start, NULL without the gate)
 * returns the descriptor of conn, or -1 when it is not known; it is right
 * while nng's handler aio of a request on conn is unfinished (nng closes
 * the descriptor only when it reaps the connection, after that aio). The
 * gate forgets the pair at nng's shutdown of the socket, which comes
 * before nng frees conn: a later connection given conn's address is never
 * found on the old socket. */
extern _Thread_local nng_http_conn *ons_httpd_io;
/* Set by ons_httpd_finish_direct around its own sendmsg of an answer
 * (whose body it does not copy): the gate does not count what that send
 * leaves in ons_httpd_unsent_bytes, since the rest is copied into a write
 * of nng's, whose sendmsg it counts. */
extern _Thread_local int ons_httpd_uncounted;
extern int (*_Atomic ons_httpd_conn_fd)(nng_http_conn *conn);
/* The gate's side of ons_httpd_take_body (NULL without the gate). */
extern ssize_t (*_Atomic ons_httpd_held_body)(nng_http_conn *conn, void *buf, size_t len);

/* A request's declared body of len bytes, when it came whole with its head
 * and the gate held it for the server (httpd_gate.c: bodies up to 4 KiB,
 * once the connection's socket is known): copied into buf, and len
 * returned, with no read through nng (and no thread hand-off to a read
 * callback). Else -1 and nothing was taken: read it with
 * ons_httpd_read_body. Only from the handler's nng callback, before any
 * read of that body. */
ssize_t ons_httpd_take_body(nng_http_conn *conn, void *buf, size_t len);
/* nng_http_conn_read_all(conn, aio), with ons_httpd_io set around it so
 * the gate learns the connection's socket when nng reads it. */
void ons_httpd_read_body(nng_http_conn *conn, nng_aio *aio);

/* ---- the accept gate -------------------------------------------------------------------- */

/* nng 1.5.2 has no connection cap and no header or idle timeouts, spins on
 * accept when out of descriptors, drops a request head over its 8 KiB
 * buffer without an answer and misreads paths ending in a percent-escape.
 * The gate (httpd_gate.c) sits between nng and the kernel and, for the
 * listening socket it was started on:
 * - admits at most max_connections clients, fewer when the open-file
 *   limit leaves less than reserved_fds descriptors beside them for
 *   PostgreSQL, Redis, Kafka and files; a client over that
 *   cap (or arriving when the process is out of descriptors) gets a 503
 *   JSON answer written at once and is closed, so accept never spins;
 * - answers a request line over max_request_line bytes with 414, a head
 *   over max_head bytes (at most 8000: nng's buffer is 8192) with 431, a
 *   '%' in the path with 400 invalid_path and a head nng would misread or
 *   not answer in JSON with 400 malformed_request (httpd_head.h), before
 *   nng parses the head, then closes the connection;
 * - shuts down a connection silent for header_timeout_ms while it has not
 *   finished a request head (a new connection included), for
 *   idle_timeout_ms between requests, and for crowded_timeout_ms (heads
 *   only) while the cap is 90% full or a client was just refused.
 * It works by providing accept(), readv(), sendmsg(), shutdown(), close(),
 * epoll_ctl() and epoll_wait() in the executable,
 * ahead of libc for libnng's calls; see httpd_gate.c. Counters may be NULL.
 * One gate per process. */
typedef struct ons_httpd_gate_opts {
    long long max_connections;
    long long reserved_fds;
    long long max_request_line;
    long long max_head;
    long long header_timeout_ms;
    long long idle_timeout_ms;
    long long crowded_timeout_ms;
    /* A connection with answer bytes the socket has not taken (nng's
     * write, or the rest of an answer made at the gate) and no send that
     * made progress for this long is shut down (a client that stopped
     * reading). 0: never. */
    long long send_timeout_ms;
    /* > 0: a connection that owes answer bytes for a whole window of
     * send_timeout_ms is shut down too when its client took (TCP acked)
     * fewer than this many bytes a second of that window: a client that
     * drains a segment now and then is no honest slow reader, and would
     * otherwise keep its owed bytes (and its share of the server's budget)
     * for ever. 0: any progress counts (send_timeout_ms alone). Applied
     * only while the connection owes at least send_min_owed bytes of nng's
     * writes: a client that has the last few bytes of an answer to read
     * holds nothing worth a cut. */
    long long send_min_rate;
    long long send_min_owed;
    /* > 0: SO_SNDBUF of each admitted client socket (the kernel doubles
     * it), which bounds the kernel memory a client that does not read can
     * pin (autotuned, up to net.ipv4.tcp_wmem's maximum, otherwise);
     * 0: the kernel's autotuning. */
    long long send_buffer;
    ons_counter *refused;    /* clients refused at accept */
    ons_counter *stalled;    /* connections shut down by send_timeout_ms */
    ons_counter *slow_drain; /* connections shut down by send_min_rate */
    ons_counter *timed_out;  /* connections shut down by a timeout */
    ons_counter *bad_heads;  /* heads answered 400/414/431 by the gate */
    ons_counter *answered;   /* requests answered at the gate (answer) */
    ons_counter *taken;      /* requests taken at the gate to be answered later */
    /* Answers at the gate (NULL: none). When a read starts between
     * requests and nng has no request of the connection unanswered (it
     * reads a head only once the answer before it is written), each whole
     * request at the read's start is offered, in order, as a view: answer
     * returns 1 with the whole response in out (ons_httpd_finish_direct
     * on a pending whose sink is out), or 0 having done nothing, and that
     * request and every one after it in the read go to nng as before. An
     * answered request's bytes never reach nng; the response is sent on
     * the socket at once, and what the socket does not take is sent
     * before anything nng writes on that connection (its sendmsg waits
     * for it), by the gate's flusher as the socket drains, or at the
     * close. Runs on nng's reading thread, or on one of the gate's
     * answer_threads: answer must not block, and may run on several
     * threads at once (for different connections). */
    int (*answer)(void *arg, ons_httpd_sink *out);
    void *answer_arg;
    /* With answer: POSTs whose Content-Length body (at most
     * ONS_HTTPD_LATER_BODY_MAX bytes) came whole in the read are offered
     * too, with the body in the view and out->may_later set: the hook may
     * answer at once, or take the request for later (ons_httpd_later).
     * Chunked bodies, Expect, Connection: close and a body split across
     * reads go to nng as before. */
    int answer_later;
    /* Tests only (the control of test_httpd's later cases): a request
     * taken for later does not hold its connection (what came behind it
     * goes to nng at once). Never set otherwise. */
    int debug_later_unheld;
    /* With answer: connections idle between requests (nng waiting for
     * the next head, nothing of its own in flight) are read by this many
     * threads of the gate's own instead of nng's one poller thread, so
     * answers at the gate run on more than one core; what the gate does
     * not answer is given back to nng in order (httpd_gate.c). 0: only
     * nng's thread reads. At most ONS_HTTPD_GATE_THREADS_MAX. */
    int answer_threads;
    /* Tests only (the control of test_httpd's gate_threads): hold a
     * connection whenever nng arms it for input, parked between requests
     * or not, e.g. while nng waits for a body. Never set otherwise. */
    int debug_hold_unparked;
    /* Tests only (the control of test_httpd's direct_shut_forgotten and
     * of bench/back_to_back.py): a connection's descriptor stays known
     * after nng shuts it down, until its close, as before 2026-11-30 (a
     * new connection may be answered on the old socket). Never set
     * otherwise. */
    int debug_conn_kept_at_shutdown;
} ons_httpd_gate_opts;

#define ONS_HTTPD_GATE_THREADS_MAX 16
/* The largest body a POST may have to be offered at the gate. */
#define ONS_HTTPD_LATER_BODY_MAX 4096

/* Call before the server listens on port (0 lifts it): from then until
 * ons_httpd_gate_start returns, a client accepted on that port waits in
 * accept for the gate, so no connection is ever served ungated (nng
 * accepts as soon as it listens; a connection it took before the gate
 * started was never judged, for its whole life). */
void ons_httpd_gate_arm(int port);
/* Starts gating the listening socket on port (call after the server
 * started), and lifts ons_httpd_gate_arm whatever it returns. Returns 0,
 * ONS_EINVAL (the open-file limit leaves no room for the reserve), ONS_EIO
 * (no such listening socket) or ONS_ENOMEM. */
int ons_httpd_gate_start(const ons_httpd_gate_opts *o, int port);
/* Stops gating and the sweeper; call after the server stopped. */
void ons_httpd_gate_stop(void);
/* Client connections open now. */
int ons_httpd_gate_open(void);
/* The answer bytes accepted but not yet written to the gated sockets,
 * node-wide (0 without the gate): for each connection, the buffer of a
 * write of nng's that the socket has not taken whole (its largest
 * sendmsg offer: nng holds the buffer whole until the write ends) plus
 * the rest of an answer made at the gate that the socket has not taken. A reply made but not yet
 * offered to the socket (microseconds, a few per thread) is not counted. The server refuses large
 * answers past its budget from this (ingress, http.unsent_budget); the gate's send_timeout_ms
 * reclaims what stalled readers hold. Any thread, one atomic load. */
long long ons_httpd_unsent_bytes(void);
/* Reserves len bytes of a budget of unsent answer bytes in one atomic
 * step: the check and the charge (in ons_httpd_unsent_bytes) are one
 * compare-and-swap, so answers made at once on several threads cannot all
 * pass it. Refused (0) when they do not fit beside what is owed and
 * reserved, unless nothing is (one answer larger than the whole budget
 * still goes). 1: reserved; the gate releases it once a send counts that
 * answer's bytes (on fd's connection: the first send of the write that
 * begins next on the socket, the gate's send of an answer it made, or the
 * close; fd -1, not known yet: the first fresh send that carries len
 * bytes, or after 2 s; past 64 such pending, one overflow total released
 * 2 s after its oldest), so there is no gap between the check and the
 * count. 2: the gate does not run (nothing is counted): the caller
 * releases len with ons_httpd_unsent_release once its answer was handed
 * to nng. Any thread. */
int ons_httpd_unsent_reserve(long long len, long long budget, int fd);
void ons_httpd_unsent_release(long long len);
/* The descriptor a pending request's answer goes out on, or -1 when not
 * known (the sink's, or ons_httpd_conn_fd's for its connection). */
int ons_httpd_pending_fd(const ons_httpd_pending *p);

#endif
