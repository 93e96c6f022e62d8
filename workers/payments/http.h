/*
 * http.h - how onsale-payments reaches the gateway: its URL, and the bound
 * on an answer. The calls themselves go over each charger thread's pool of
 * keep-alive connections (common/httpc.h, main.c's gateway_post), JSON
 * bodies only, each with a deadline over the whole exchange.
 */
#ifndef ONSALE_PAYMENTS_HTTP_H
#define ONSALE_PAYMENTS_HTTP_H

#include "common/httpc.h"

#include <stddef.h>

/* Bytes of an answer's body the gateway may send (a head is small: a pool
 * reads at most twice this per answer). */
#define PAY_HTTP_MAX_BODY 65536

typedef ons_httpc_url pay_url;

/* Parses "http://host[:port][/prefix]" (ons_httpc_url_parse). */
int pay_url_parse(const char *url, pay_url *out);

#endif
