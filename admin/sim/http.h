/*
 * http.h - a small non-blocking HTTP/1.1 client for the simulator: many
 * requests multiplexed over a bounded pool of keep-alive connections to one
 * server, driven by epoll from the caller's single thread. No pipelining:
 * a connection carries one request at a time; requests wait in a FIFO queue
 * (bounded by max_queue) until a connection is free.
 *
 * A request that fails on a reused keep-alive connection before any byte of
 * the answer arrived (the server closed an idle connection) is retried once
 * on a fresh one; POSTs the simulator sends carry an Idempotency-Key, so the
 * retry is safe. Responses may use Content-Length, chunked encoding, or end
 * at connection close.
 *
 * Not thread-safe: one sim_http belongs to the thread that calls
 * sim_http_poll, and callbacks run on it, from inside sim_http_poll.
 */
#ifndef ONSALE_ADMIN_SIM_HTTP_H
#define ONSALE_ADMIN_SIM_HTTP_H

#include <stddef.h>

typedef struct sim_http sim_http;

typedef struct sim_http_opts {
    const char *host; /* numeric IPv4 or a name getaddrinfo resolves */
    int port;
    int conns;           /* connection pool size */
    int timeout_ms;      /* per request, from dispatch to the last byte */
    size_t max_queue;    /* requests waiting for a connection */
    size_t max_response; /* bytes of one response (headers + body) */
} sim_http_opts;

typedef struct sim_http_resp {
    int status;        /* HTTP status; 0 on a transport error or timeout */
    int retry_after_s; /* Retry-After in seconds, -1 when absent */
    const char *body;  /* NUL-terminated; valid only during the callback */
    size_t body_len;
    double latency_ms; /* from writing the request to the last byte */
} sim_http_resp;

typedef void (*sim_http_cb)(void *arg, const sim_http_resp *resp);

/* Creates the client (resolves host; connects lazily). *out is owned by the
 * caller (sim_http_free). Returns 0, ONS_EINVAL (bad host/port/sizes) or
 * ONS_ENOMEM. */
int sim_http_new(const sim_http_opts *o, sim_http **out);

/* Closes every connection. Callbacks of requests still queued or in flight
 * are NOT called. */
void sim_http_free(sim_http *h);

/* Queues a request. token (may be NULL) becomes "Authorization: Bearer";
 * idem_key (may be NULL) the Idempotency-Key; body (may be NULL) is sent as
 * application/json. Everything is copied. cb runs exactly once, later, from
 * sim_http_poll. Returns 0, ONS_EFULL (queue at max_queue) or ONS_ENOMEM. */
int sim_http_request(sim_http *h, const char *method, const char *path, const char *token,
                     const char *idem_key, const char *body, sim_http_cb cb, void *arg);
/* sim_http_request with one more header, "hname: hvalue" (both NULL: none;
 * the join's Onsale-PoW). */
int sim_http_request_hdr(sim_http *h, const char *method, const char *path, const char *token,
                         const char *idem_key, const char *hname, const char *hvalue,
                         const char *body, sim_http_cb cb, void *arg);

/* Waits up to timeout_ms for I/O, advances every connection, runs the
 * callbacks of completed requests and starts queued ones. Returns 0 or
 * ONS_EIO (epoll failed). */
int sim_http_poll(sim_http *h, int timeout_ms);

/* Requests queued or in flight. */
size_t sim_http_pending(const sim_http *h);

/* Connections opened so far (keep-alive reuse shows as few). */
long long sim_http_connects(const sim_http *h);

#endif
