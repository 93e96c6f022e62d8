/*
 * fuzz_http_head.c - libFuzzer target for the accept gate's request-stream
 * scanner (common/httpd_head.c), which reads every byte a client sends to
 * ingress before nng 1.5.2 parses it.
 *
 * Input: the raw bytes of a connection's stream.
 * Oracle, besides ASan/UBSan:
 *   - the verdict and the count of heads do not depend on how the stream is
 *     split across reads (whole, byte by byte, two pieces);
 *   - a refusal is a JSON error the gate can write as is: a known status
 *     and code, a message without '"' or '\';
 *   - the stream's first head, when it ends with its blank line, is passed
 *     exactly when a plain reference parser (below: lines split on LF, each
 *     ending CR LF, the request line split on spaces, as nng does) finds it
 *     well formed:
 *     METHOD SP /target SP HTTP/1.0|1.1, no '%' in the target before '?',
 *     printable ASCII only, header names tokens followed by ':', one Host
 *     (required for HTTP/1.1) with a host and port's characters, no Transfer-Encoding, at most one
 *     Content-Length, a decimal number.
 */
#include "common/httpd_head.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BIG 1000000 /* limits that never bind, for the reference comparison */

typedef struct verdict {
    int refused, status, requests;
    const char *code;
} verdict;

/* A refusal the gate can write into its JSON answer as is. */
static int known(const ons_http_refusal *r)
{
    static const struct {
        int status;
        const char *code;
    } ok[] = {{400, "malformed_request"}, {400, "invalid_path"}, {400, "invalid_content_length"},
              {411, "length_required"},   {414, "uri_too_long"}, {431, "headers_too_large"}};
    if (strpbrk(r->message, "\"\\"))
        return 0;
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (ok[i].status == r->status && strcmp(ok[i].code, r->code) == 0)
            return 1;
    return 0;
}

static verdict run(const uint8_t *p, size_t n, size_t piece, unsigned max_line, unsigned max_head)
{
    ons_http_head h;
    ons_http_head_init(&h);
    verdict v = {0, 0, 0, NULL};
    for (size_t i = 0; i < n && !v.refused; i += piece) {
        size_t k = n - i < piece ? n - i : piece;
        const ons_http_refusal *r = ons_http_head_feed(&h, p + i, k, max_line, max_head);
        if (r) {
            v.refused = 1;
            v.status = r->status;
            v.code = r->code;
            if (!known(r))
                abort();
        }
    }
    v.requests = atomic_load(&h.requests);
    return v;
}

static int same(verdict a, verdict b)
{
    return a.refused == b.refused && a.status == b.status && a.requests == b.requests &&
           (!a.refused || strcmp(a.code, b.code) == 0);
}

static int tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int all_tchar(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!tchar((unsigned char)s[i]))
            return 0;
    return n > 0;
}

/* 1 when v[0..n) is SP* DIGIT+ SP*. */
static int ref_number(const char *v, size_t n)
{
    size_t i = 0, digits = 0;
    while (i < n && v[i] == ' ')
        i++;
    for (; i < n && v[i] >= '0' && v[i] <= '9'; i++)
        digits++;
    while (i < n && v[i] == ' ')
        i++;
    return digits > 0 && i == n;
}

/* 1 when v[0..n) is SP* host-chars* SP* (RFC 3986 reg-name, IP literal
 * and port characters). */
static int ref_host(const char *v, size_t n)
{
    size_t i = 0;
    while (i < n && v[i] == ' ')
        i++;
    while (i < n && v[i] != ' ' &&
           (isalnum((unsigned char)v[i]) || strchr("-._~%!$&'()*+,;=:[]", v[i])))
        i++;
    while (i < n && v[i] == ' ')
        i++;
    return i == n;
}

/* 1 when the request line is well formed; *http11 says which version. */
static int ref_request_line(const char *l, size_t n, int *http11)
{
    const char *sp1 = memchr(l, ' ', n);
    if (!sp1 || !all_tchar(l, (size_t)(sp1 - l)))
        return 0;
    const char *t = sp1 + 1;
    const char *sp2 = memchr(t, ' ', n - (size_t)(t - l));
    if (!sp2 || sp2 == t || t[0] != '/')
        return 0;
    for (const char *c = t; c < sp2 && *c != '?'; c++)
        if (*c == '%')
            return 0;
    const char *v = sp2 + 1;
    size_t vn = n - (size_t)(v - l);
    *http11 = vn == 8 && memcmp(v, "HTTP/1.1", 8) == 0;
    return *http11 || (vn == 8 && memcmp(v, "HTTP/1.0", 8) == 0);
}

/* 1 when the head h[0..n) (ending with its blank line) is well formed. */
static int ref_head(const char *h, size_t n)
{
    if (n == 0 || h[0] == '\r' || h[0] == '\n')
        return 0;
    int line_no = 0, http11 = 0, hosts = 0, lengths = 0;
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(h + i, '\n', n - i);
        size_t len = (size_t)(nl - (h + i)), end = len;
        if (end == 0 || h[i + end - 1] != '\r')
            return 0; /* a bare LF line end */
        end--;
        const char *l = h + i;
        for (size_t k = 0; k < end; k++)
            if ((unsigned char)l[k] < 0x20 || (unsigned char)l[k] >= 0x7f)
                return 0;
        if (line_no == 0) {
            if (!ref_request_line(l, end, &http11))
                return 0;
        } else if (end == 0) {
            return hosts <= 1 && (!http11 || hosts == 1);
        } else {
            const char *colon = memchr(l, ':', end);
            if (!colon || !all_tchar(l, (size_t)(colon - l)))
                return 0;
            size_t nn = (size_t)(colon - l);
            if (nn == 4 && strncasecmp(l, "host", 4) == 0 &&
                (hosts++, !ref_host(colon + 1, end - nn - 1)))
                return 0;
            if (nn == 17 && strncasecmp(l, "transfer-encoding", 17) == 0)
                return 0;
            if (nn == 14 && strncasecmp(l, "content-length", 14) == 0 &&
                (lengths++ || !ref_number(colon + 1, end - nn - 1)))
                return 0;
        }
        line_no++;
        i += len + 1;
    }
    return 0;
}

/* The length of the stream's first head up to and including its blank
 * line, or 0 when it has none. */
static size_t first_head(const uint8_t *p, size_t n)
{
    int line_no = 0;
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n')
            continue;
        size_t len = i - start;
        int empty = len == 0 || (len == 1 && p[start] == '\r');
        if (empty && line_no > 0)
            return i + 1;
        line_no++;
        start = i + 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Small limits, so 414 and 431 are reached. */
    verdict whole = run(data, size, size ? size : 1, 256, 1024);
    if (!same(whole, run(data, size, 1, 256, 1024)) ||
        !same(whole, run(data, size, size / 2 + 1, 256, 1024)))
        abort();
    size_t hn = first_head(data, size);
    if (hn > 0) {
        verdict v = run(data, hn, hn, BIG, BIG);
        if (v.refused == ref_head((const char *)data, hn)) {
            fprintf(stderr, "scanner %s a head the reference %s\n",
                    v.refused ? "refused" : "passed", v.refused ? "passes" : "refuses");
            abort();
        }
    }
    return 0;
}
