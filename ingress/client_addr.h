/*
 * client_addr.h - which address a request came from, for per-address limits
 * (ratelimit.c) and anything else that must tell clients apart.
 *
 * nng 1.5.2 does not hand the HTTP server's handler the connection's peer
 * address (nanomsg/nng#1868: no sockaddr on the request or the connection),
 * so the socket cannot be read. The address therefore comes only from the
 * forwarded-for header (client.addr_header) and only when proxies are
 * configured (client.trusted_proxies): the client is the rightmost entry
 * that is not one of those proxies (each proxy appends the address it saw,
 * so entries left of the first untrusted one may be forged by the client).
 * Configure client.trusted_proxies only when ingress is reachable through
 * those proxies alone (a private bind address): ingress cannot check that
 * the peer is one of them. Without trusted proxies the address is unknown
 * and per-address limits do not apply (per-user limits still do).
 *
 * When http.proxy_token is set, the header is believed only on requests
 * that also carry that secret in X-Onsale-Proxy-Token (the proxy in front
 * sets it and drops any copy a client sent): a request that reached the
 * node some other way cannot pass a forged address.
 *
 * ing_client_addr_resolve reads the request's headers (nng threads);
 * ing_client_addr reads what it stored (any thread).
 */
#ifndef ONSALE_INGRESS_CLIENT_ADDR_H
#define ONSALE_INGRESS_CLIENT_ADDR_H

#include <stddef.h>

typedef struct ing_req ing_req;

/* The header carrying http.proxy_token. */
#define ING_PROXY_TOKEN_HEADER "X-Onsale-Proxy-Token"

/* Room for any address ing_client_addr writes (an IPv6 text form). */
#define ING_CLIENT_ADDR_MAX 46

/* Reads r's client address from its headers into r->client_addr ("" when
 * unknown: no trusted proxy configured, no header, no untrusted valid
 * entry, or http.proxy_token set and not presented). nng threads only,
 * while r->hreq is valid: the server calls it before the route handler. */
void ing_client_addr_resolve(ing_req *r);

/* Writes r's client address (as resolved) into out (cap >=
 * ING_CLIENT_ADDR_MAX). Returns 0, or ONS_ENOTFOUND (unknown): out is then
 * "". Any thread. */
int ing_client_addr(const ing_req *r, char *out, size_t cap);

/* The rule behind ing_client_addr, on text: value is the header (may be
 * NULL), trusted a comma-separated list of addresses and CIDR blocks
 * ("10.0.0.0/8,::1"; "" = none: nothing is trusted, the result is
 * ONS_ENOTFOUND). An entry that is not an address ends the walk (the
 * header is malformed left of it: nothing there is believed). Returns 0 or
 * ONS_ENOTFOUND. */
int ing_client_addr_from(const char *value, const char *trusted, char *out, size_t cap);

/* Checks a trusted-proxies list: 0, or -1 when an entry is not an address
 * or CIDR block (the option validator in main.c names it). */
int ing_client_addr_trusted_ok(const char *trusted);

#endif
