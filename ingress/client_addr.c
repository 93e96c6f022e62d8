/* client_addr.c - the client's address from a trusted forwarded-for
 * header; see client_addr.h for why not from the socket. */
#include "ingress/client_addr.h"
#include "common/err.h"
#include "ingress/server.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <openssl/crypto.h>
#include <string.h>

/* An address in network order: 4 bytes (v4) or 16 (v6). */
typedef struct addr {
    int family;
    unsigned char b[16];
} addr;

/* Parses the text in [s, s+n), trimmed of spaces. Returns 0 or -1. */
static int parse_addr(const char *s, size_t n, addr *a)
{
    char buf[ING_CLIENT_ADDR_MAX + 1];
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET, buf, a->b) == 1) {
        a->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, a->b) == 1) {
        a->family = AF_INET6;
        return 0;
    }
    return -1;
}

/* Does block [s, s+n) ("addr" or "addr/bits") contain a? -1 when the
 * block is malformed. */
static int block_contains(const char *s, size_t n, const addr *a)
{
    const char *slash = memchr(s, '/', n);
    addr net;
    if (parse_addr(s, slash ? (size_t)(slash - s) : n, &net))
        return -1;
    int width = net.family == AF_INET ? 32 : 128;
    long bits = width;
    if (slash) {
        char digits[8];
        size_t dn = n - (size_t)(slash + 1 - s);
        if (dn == 0 || dn >= sizeof digits || strspn(slash + 1, "0123456789") < dn)
            return -1;
        memcpy(digits, slash + 1, dn);
        digits[dn] = '\0';
        bits = strtol(digits, NULL, 10);
        if (bits > width)
            return -1;
    }
    if (!a || a->family != net.family)
        return 0;
    for (long i = 0; i < bits; i++) {
        unsigned char m = (unsigned char)(0x80u >> (i % 8));
        if ((a->b[i / 8] & m) != (net.b[i / 8] & m))
            return 0;
    }
    return 1;
}

/* Calls block_contains for each entry of the list: 1 if one contains a,
 * 0 if none, -1 if an entry is malformed. */
static int list_contains(const char *list, const addr *a)
{
    int found = 0;
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n && (*p == ' ' || *p == '\t'))
            p++, n--;
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        int c = block_contains(p, n, a);
        if (c < 0)
            return -1;
        found |= c;
        p = end ? end + 1 : p + strlen(p);
    }
    return found;
}

int ing_client_addr_trusted_ok(const char *trusted)
{
    return list_contains(trusted, NULL) < 0 ? -1 : 0;
}

int ing_client_addr_from(const char *value, const char *trusted, char *out, size_t cap)
{
    if (cap)
        out[0] = '\0';
    if (!value || !trusted || !*trusted || cap < ING_CLIENT_ADDR_MAX)
        return ONS_ENOTFOUND;
    /* Right to left: skip our own proxies, stop at the first other entry. */
    size_t end = strlen(value);
    while (end > 0) {
        size_t start = end;
        while (start > 0 && value[start - 1] != ',')
            start--;
        addr a;
        if (parse_addr(value + start, end - start, &a))
            return ONS_ENOTFOUND;
        if (list_contains(trusted, &a) != 1) {
            inet_ntop(a.family, a.b, out, (socklen_t)cap);
            return 0;
        }
        end = start ? start - 1 : 0;
    }
    return ONS_ENOTFOUND;
}

/* Whether r carries the proxy's token (compared in constant time: it is a
 * secret), or none is configured. */
static int proxy_token_ok(const ing_req *r)
{
    const char *want = r->app->o.http_proxy_token;
    if (!want || !*want)
        return 1;
    const char *got = ing_req_header(r, ING_PROXY_TOKEN_HEADER);
    size_t n = strlen(want);
    return got && strlen(got) == n && CRYPTO_memcmp(got, want, n) == 0;
}

void ing_client_addr_resolve(ing_req *r)
{
    const ing_opts *o = &r->app->o;
    const char *v = NULL;
    r->client_addr[0] = '\0';
    if (o->client_addr_header && *o->client_addr_header && proxy_token_ok(r))
        v = ing_req_header(r, o->client_addr_header);
    if (ing_client_addr_from(v, o->client_trusted_proxies, r->client_addr, sizeof r->client_addr))
        r->client_addr[0] = '\0';
}

int ing_client_addr(const ing_req *r, char *out, size_t cap)
{
    if (!r->client_addr[0] || strlen(r->client_addr) >= cap) {
        if (cap)
            out[0] = '\0';
        return ONS_ENOTFOUND;
    }
    memcpy(out, r->client_addr, strlen(r->client_addr) + 1);
    return 0;
}
