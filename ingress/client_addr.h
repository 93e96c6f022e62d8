/*
 * client_addr.h - the client's address as the proxy in front reports it.
 *
 * nng's HTTP server does not expose the peer address, so an ingress node
 * behind a proxy learns the client's address from the header the proxy
 * appends (accounts.client_addr_header, X-Forwarded-For): its last entry,
 * the one the proxy itself added. A header from anyone else is not
 * believed: when http.proxy_token is set, only requests carrying that
 * secret in X-Onsale-Proxy-Token (haproxy sets it and drops any copy a
 * client sent) have their header read.
 */
#ifndef ONSALE_INGRESS_CLIENT_ADDR_H
#define ONSALE_INGRESS_CLIENT_ADDR_H

#include "ingress/server.h"

#define ING_CLIENT_ADDR_MAX    45 /* longest textual IPv6 address */
#define ING_PROXY_TOKEN_HEADER "X-Onsale-Proxy-Token"

/* Copies the client's address (digits, hex letters, '.' and ':' only) into
 * out and returns out, or returns NULL when the header is unset, absent, not
 * an address, or not believed (no or a wrong proxy token while
 * http.proxy_token is set). nng threads only (reads the request headers). */
const char *ing_client_addr(ing_req *r, char out[ING_CLIENT_ADDR_MAX + 1]);

#endif
