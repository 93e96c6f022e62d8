/*
 * httpc.h - the one HTTP/1.1 client of Onsale: onsale-payments calls the
 * payment gateway with it (one blocking exchange per call), onsale-sim drives
 * thousands of fans with it (a keep-alive pool multiplexed by epoll). Both
 * drivers share the URL parser, the request writer and the response parser
 * (Content-Length, chunked, or the end of the connection; Retry-After;
 * Connection: close), so they read answers the same way.
 *
 * Requests carry JSON bodies only. No pipelining, no TLS, no redirects.
 */
#ifndef ONSALE_COMMON_HTTPC_H
#define ONSALE_COMMON_HTTPC_H

#include <stddef.h>

/* ---- requests and answers ----------------------------------------------------------- */

typedef struct ons_httpc_req {
    const char *method;
    const char *path;           /* from '/', query included */
    const char *token;          /* sent as "Authorization: Bearer <token>"; NULL: none */
    const char *idem_key;       /* sent as Idempotency-Key; NULL: none */
    const char *const *headers; /* more "Name: value" lines (no CRLF), NULL-terminated, or NULL */
    const char *body;           /* sent as application/json; NULL: no body */
} ons_httpc_req;

typedef struct ons_httpc_resp {
    int status;        /* HTTP status; 0 on a transport error or timeout */
    int retry_after_s; /* Retry-After in seconds, -1 when absent */
    const char *body;  /* NUL-terminated, never NULL */
    size_t body_len;
    double latency_ms; /* from starting the request to the last byte */
} ons_httpc_resp;

/* ---- URLs ---------------------------------------------------------------------------- */

typedef struct ons_httpc_url {
    char host[256];
    char port[8];
    char base[256]; /* path prefix without a trailing '/', "" for none */
} ons_httpc_url;

/* Parses "http://host[:port][/prefix]". Returns 0 or ONS_EINVAL (https and
 * other schemes are not supported). */
int ons_httpc_url_parse(const char *url, ons_httpc_url *out);

/* ---- one blocking exchange ---------------------------------------------------------------- */

/* Sends req to u (its path after u->base) on a new connection with
 * "Connection: close", trying each address the host resolves to, and waits
 * for the whole answer; timeout_ms bounds everything (connect, send,
 * receive). Returns 0 with *resp filled (any status; resp->body is the
 * caller's, free((void *)resp->body)), ONS_ETIMEDOUT (the request may or
 * may not have been processed), ONS_EIO (could not connect, the connection
 * failed or closed without a complete answer, or the answer was malformed
 * or longer than max_response bytes), ONS_EINVAL (the request head does not
 * fit) or ONS_ENOMEM. Thread-safe: no shared state. */
int ons_httpc_call(const ons_httpc_url *u, const ons_httpc_req *req, int timeout_ms,
                   size_t max_response, ons_httpc_resp *resp);

/* ---- the pool ----------------------------------------------------------------------------- */

/* Many requests over a bounded pool of keep-alive connections to one
 * server, driven by epoll from the caller's single thread. A connection
 * carries one request at a time; requests wait in a FIFO queue (bounded by
 * max_queue) until one is free. A request that fails on a reused
 * connection before any byte of the answer arrived (the server closed an
 * idle connection) is retried once on a fresh one: send an Idempotency-Key
 * with anything that is not safe to repeat.
 *
 * Not thread-safe: a pool belongs to the thread that calls ons_httpc_poll,
 * and callbacks run on it, from inside ons_httpc_poll. */
typedef struct ons_httpc ons_httpc;

typedef struct ons_httpc_opts {
    const char *host; /* numeric IPv4 or a name getaddrinfo resolves (IPv4) */
    int port;
    int conns;           /* connection pool size */
    int timeout_ms;      /* per request, from dispatch to the last byte */
    size_t max_queue;    /* requests waiting for a connection */
    size_t max_response; /* bytes of one response (head + body), at least 1024 */
} ons_httpc_opts;

/* resp and its body are valid only during the call. */
typedef void (*ons_httpc_cb)(void *arg, const ons_httpc_resp *resp);

/* Creates the pool (resolves host; connects lazily). *out is the caller's
 * (ons_httpc_free). Returns 0, ONS_EINVAL (bad host, port or sizes) or
 * ONS_ENOMEM. */
int ons_httpc_new(const ons_httpc_opts *o, ons_httpc **out);
/* Closes every connection. Callbacks of requests still queued or in flight
 * are NOT called. NULL is fine. */
void ons_httpc_free(ons_httpc *h);

/* Queues req (everything copied). cb runs exactly once, later, from
 * ons_httpc_poll (status 0 on a transport error or timeout). Returns 0,
 * ONS_EFULL (queue at max_queue) or ONS_ENOMEM. */
int ons_httpc_request(ons_httpc *h, const ons_httpc_req *req, ons_httpc_cb cb, void *arg);

/* Waits up to timeout_ms for I/O, advances every connection, runs the
 * callbacks of completed requests and starts queued ones. Returns 0 or
 * ONS_EIO (epoll failed). */
int ons_httpc_poll(ons_httpc *h, int timeout_ms);

/* Requests queued or in flight. */
size_t ons_httpc_pending(const ons_httpc *h);
/* Connections opened so far (keep-alive reuse shows as few). */
long long ons_httpc_connects(const ons_httpc *h);

#endif
