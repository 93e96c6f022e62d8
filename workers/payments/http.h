/*
 * http.h - how onsale-payments calls the gateway: one POST per connection
 * over the common HTTP client (common/httpc.h), with a deadline over the
 * whole exchange (connect, send, receive), JSON bodies only.
 *
 * Thread-safe: no shared state; each call owns its socket. The caller owns
 * resp->body (free()).
 */
#ifndef ONSALE_PAYMENTS_HTTP_H
#define ONSALE_PAYMENTS_HTTP_H

#include "common/httpc.h"

#include <stddef.h>

/* Bytes of an answer's body the gateway may send. */
#define PAY_HTTP_MAX_BODY 65536

typedef ons_httpc_url pay_url;

typedef struct pay_http_resp {
    int status;
    char *body; /* NUL-terminated, or NULL */
    size_t len;
} pay_http_resp;

/* Parses "http://host[:port][/prefix]" (ons_httpc_url_parse). */
int pay_url_parse(const char *url, pay_url *out);

/* POSTs body (JSON) to base + path with the given headers (each a full
 * "Name: value" line without CRLF; NULL-terminated list). Returns 0 with
 * *resp filled (any status), ONS_ETIMEDOUT (deadline passed; the request
 * may or may not have been processed), ONS_EIO (connection failed or closed
 * without a complete answer) or ONS_ENOMEM. */
int pay_http_post(const pay_url *u, const char *path, const char *const *headers, const char *body,
                  int timeout_ms, pay_http_resp *resp);

#endif
