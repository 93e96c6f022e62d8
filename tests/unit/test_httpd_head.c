/* test_httpd_head.c - the accept gate's request-stream scanner
 * (common/httpd_head.h): what passes to nng, what is refused with which
 * JSON error, how bodies and pipelined requests are framed, and that the
 * answer does not depend on how the bytes are split across reads. */
#include "common/httpd_head.h"

#include "tests/check_run.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#define LINE_MAX_ 4096
#define HEAD_MAX  8000

/* The refusal of raw fed in one piece and byte by byte (both must agree),
 * or NULL; *requests the heads completed. */
static const ons_http_refusal *feed(const char *raw, size_t n, int *requests)
{
    static ons_http_head whole, bytes;
    ons_http_head_init(&whole);
    ons_http_head_init(&bytes);
    const ons_http_refusal *a =
        ons_http_head_feed(&whole, (const unsigned char *)raw, n, LINE_MAX_, HEAD_MAX);
    const ons_http_refusal *b = NULL;
    for (size_t i = 0; i < n && !b; i++)
        b = ons_http_head_feed(&bytes, (const unsigned char *)raw + i, 1, LINE_MAX_, HEAD_MAX);
    ck_assert_msg((a == NULL) == (b == NULL), "split reads disagree on %s", raw);
    if (a) {
        ck_assert_str_eq(a->code, b->code);
        ck_assert_int_eq(whole.head_from, bytes.head_from);
    }
    ck_assert_int_eq(atomic_load(&whole.requests), atomic_load(&bytes.requests));
    if (requests)
        *requests = atomic_load(&whole.requests);
    return a;
}

static void passes(const char *raw, size_t len, int heads)
{
    int n = -1;
    const ons_http_refusal *r = feed(raw, len, &n);
    ck_assert_msg(r == NULL, "refused (%s): %s", r ? r->code : "", raw);
    ck_assert_msg(n == heads, "%d heads, not %d: %s", n, heads, raw);
}

static void refused(const char *raw, size_t n, int status, const char *code)
{
    const ons_http_refusal *r = feed(raw, n, NULL);
    ck_assert_msg(r != NULL, "passed: %s", raw);
    ck_assert_int_eq(r->status, status);
    ck_assert_str_eq(r->code, code);
    ck_assert_ptr_null(strchr(r->message, '"')); /* written into JSON as is */
}

/* For string literals, which may hold NULs. */
#define PASSES(lit, heads)         passes(lit, sizeof lit - 1, heads)
#define REFUSED(lit, status, code) refused(lit, sizeof lit - 1, status, code)

START_TEST(plain_heads_pass)
{
    PASSES("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 1);
    PASSES("GET /healthz HTTP/1.0\r\n\r\n", 1);                             /* no Host needed */
    PASSES("GET /v1/events?q=%41%zz&x=%#? HTTP/1.1\r\nHost: x\r\n\r\n", 1); /* query */
    PASSES("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length:  3 \r\n\r\nabc"
           "GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
           2);
    /* A body is not judged: CRLFs, '%' and NULs inside it are bytes. */
    PASSES("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n\r\n%\0GET /%", 1);
    PASSES("DELETE /a HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nA-B_c.d~!: v: w\r\n\r\n", 1);
    /* Host values: empty, names, addresses, ports, spaces around them */
    PASSES("GET /a HTTP/1.1\r\nHost:\r\n\r\n", 1);
    PASSES("GET /a HTTP/1.1\r\nHost:   api.example-1.com:8080  \r\n\r\n", 1);
    PASSES("GET /a HTTP/1.1\r\nHost: [::1]:80\r\nhost-x: a b/c@d\r\n\r\n", 1);
    PASSES("GET /a HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 1);
    /* What clients send (bench/NOTES.md, seventeenth round's review: curl,
     * Python, wrk, node, Chromium, haproxy, Prometheus): a zone id, a
     * trailing dot, any case, a port alone, IDNA, '_'; HTTP/1.0 with an
     * empty Host (haproxy's check sends none, above) */
    const char *hosts[] = {"[fe80::1%25eth0]:8080", "[fe80::1%eth0]", "Example.COM.:443", ":8080",
                           "xn--bcher-kva.example", "a_b.local",      "localhost:9101"};
    for (size_t i = 0; i < sizeof hosts / sizeof *hosts; i++) {
        char head[128];
        snprintf(head, sizeof head, "GET /metrics HTTP/1.1\r\nHost: %s\r\nUser-Agent: x\r\n\r\n",
                 hosts[i]);
        passes(head, strlen(head), 1);
    }
    PASSES("GET /x HTTP/1.0\r\nHost:\r\nUser-Agent: curl/7.88.1\r\n\r\n", 1);
}
END_TEST

START_TEST(path_nng_decodes_is_refused_with_a_percent)
{
    /* nng decodes up to the first '?', '#' included, and reads past its
     * buffer when the path ends in an escape (nng#1594). */
    REFUSED("GET /healthz#%41 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_path");
    REFUSED("GET /a%41 HTTP/1.1\r\n", 400, "invalid_path");
    REFUSED("GET http://x/a%41 HTTP/1.1\r\n", 400, "invalid_path");
    REFUSED("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_path");
    REFUSED("GET healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid_path");
}
END_TEST

START_TEST(header_names_nng_misfiles_are_refused)
{
    /* nng files "Content-Length :" under "Content-Length ": the server saw
     * no length and nng parsed the body as a second request. */
    const char *cl = "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length : 30\r\n\r\n"
                     "GET /healthz HTTP/1.1\r\nHost: y\r\n\r\n";
    refused(cl, strlen(cl), 400, "malformed_request");
    const char *te = "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding\t: chunked\r\n\r\n";
    refused(te, strlen(te), 400, "malformed_request");
    const char *fold = "GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  b\r\n\r\n";
    refused(fold, strlen(fold), 400, "malformed_request");
    const char *nocolon = "GET /a HTTP/1.1\r\nHost: x\r\nX-A\r\n\r\n";
    refused(nocolon, strlen(nocolon), 400, "malformed_request");
    const char *noname = "GET /a HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n";
    refused(noname, strlen(noname), 400, "malformed_request");
}
END_TEST

START_TEST(bytes_nng_cannot_parse_are_refused)
{
    static const char nul[] = "GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n";
    refused(nul, sizeof nul - 1, 400, "malformed_request");
    const char *cases[] = {
        "GET /a HTTP/1.1\r\nHost: x\r\nX-A:\tb\r\n\r\n",       /* TAB: nng refuses it */
        "GET /a HTTP/1.1\r\nHost: x\r\nX-A: \xc3\xa9\r\n\r\n", /* UTF-8 */
        "GET /a\xff HTTP/1.1\r\nHost: x\r\n\r\n",              /* in the path */
        "GET /a HTTP/1.1\r\nHost: x\r\nX-A: \x7f\r\n\r\n",     /* DEL */
        "GET /a HTTP/1.1\rHost: x\r\n\r\n",                    /* CR without LF */
        "\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n",              /* nng: an empty head */
        "GET /a HTTP/1.1\nHost: x\n\n",                        /* bare LF line ends */
        "GET /a HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n",          /* one bare LF among CRLFs */
        "GET /a HTTP/1.1\r\nHost: x\r\n\n",                    /* the empty line's */
        "GET /a HTTP/1.1\nHost: x\r\n\r\n",                    /* the request line's */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        refused(cases[i], strlen(cases[i]), 400, "malformed_request");
}
END_TEST

START_TEST(request_lines_that_are_not_http_1_are_refused)
{
    const char *cases[] = {
        "GET /a\r\n\r\n", /* HTTP/0.9 */
        "GET\r\n\r\n",
        "GET /a HTTP/2.0\r\nHost: x\r\n\r\n",
        "GET /a FOO\r\nHost: x\r\n\r\n",
        "GET /a HTTP/1.1 \r\nHost: x\r\n\r\n", /* nng: version "HTTP/1.1 " */
        "GET /a HTTP/1.11\r\nHost: x\r\n\r\n",
        " GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
        "G(T /a HTTP/1.1\r\nHost: x\r\n\r\n", /* not a token */
        "GET /a HTTP/1.1\r\n\r\n",            /* HTTP/1.1 without Host */
        "GET /a HTTP/1.1\r\nHost: x\r\nhost: y\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: a b\r\n\r\n", /* an invalid Host value */
        "GET /a HTTP/1.1\r\nHost: a/b\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: u@h\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: h?x\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: h#x\r\n\r\n",
        "GET /a HTTP/1.0\r\nHost: \"h\"\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        refused(cases[i], strlen(cases[i]), 400, "malformed_request");
    /* A double space makes the target empty: not a path. */
    REFUSED("GET  /a HTTP/1.1\r\n", 400, "invalid_path");
}
END_TEST

START_TEST(size_limits)
{
    static char line[LINE_MAX_ + 64], head[HEAD_MAX + 200];
    int n = snprintf(line, sizeof line, "GET /%0*d HTTP/1.1\r\n", LINE_MAX_, 0);
    refused(line, (size_t)n, 414, "uri_too_long");
    n = snprintf(head, sizeof head, "GET / HTTP/1.1\r\nHost: x\r\nX-F: %0*d\r\n\r\n", HEAD_MAX, 0);
    refused(head, (size_t)n, 431, "headers_too_large");
    /* exactly HEAD_MAX bytes, the line ends counted, passes; one more is
     * refused (the line ends after the last header byte were not counted:
     * a head of HEAD_MAX + 4 passed) */
    const char *start = "GET / HTTP/1.1\r\nHost: x\r\nX-F: ";
    int fill = HEAD_MAX - (int)strlen(start) - 4;
    n = snprintf(head, sizeof head, "%s%0*d\r\n\r\n", start, fill, 0);
    ck_assert_int_eq(n, HEAD_MAX);
    ck_assert_msg(!feed(head, (size_t)n, NULL), "a head of %d bytes refused", n);
    for (int extra = 1; extra <= 4; extra++) {
        n = snprintf(head, sizeof head, "%s%0*d\r\n\r\n", start, fill + extra, 0);
        ck_assert_int_eq(n, HEAD_MAX + extra);
        const ons_http_refusal *r = feed(head, (size_t)n, NULL);
        ck_assert_msg(r && r->status == 431, "a head of %d bytes passed", n);
    }
}
END_TEST

START_TEST(framing_is_judged_as_the_server_judges_it)
{
    /* Refused here, as ons_httpd_framing() refuses them. */
    const char *te = "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    refused(te, strlen(te), 411, "length_required");
    const char *bad[] = {
        "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0x1\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        refused(bad[i], strlen(bad[i]), 400, "invalid_content_length");
    /* Accepted by the server, so framed here: leading zeros past 19 digits
     * and a value padded past any buffer are still one number, and the
     * head after the body is judged (before, the scanner gave up on them
     * and the '%' path behind reached nng). */
    static char pad[256];
    snprintf(pad, sizeof pad,
             "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length:%*s5 \r\n\r\nhello"
             "GET /a%%41 HTTP/1.1\r\n",
             100, "");
    const char *zeros = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 00000000000000000000005\r\n"
                        "\r\nhelloGET /a%41 HTTP/1.1\r\n";
    int n = 0;
    ck_assert_ptr_nonnull(feed(pad, strlen(pad), &n));
    ck_assert_int_eq(n, 1);
    ck_assert_ptr_nonnull(feed(zeros, strlen(zeros), &n));
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(feed(zeros, strlen(zeros), NULL)->code, "invalid_path");
    /* A length too large for any body still frames (the server says 413). */
    PASSES("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999999\r\n\r\n"
           "GET /%41",
           1);
}
END_TEST

/* Where the refused head began in the stream: the gate gives nng the
 * requests before it, to answer before the refusal (httpd_gate.c). */
START_TEST(a_refused_head_is_located_in_the_stream)
{
    static const char *const good[] = {
        "GET /a HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    };
    static const char *const bad[] = {
        "GET /a HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n",
        "\r\nGET /a HTTP/1.1\r\n",
        "GET /%41 HTTP/1.1\r\n",
        "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        "lo\r\n\r\n", /* the rest of a body longer than the 5 declared */
    };
    char raw[512];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int n = snprintf(raw, sizeof raw, "%s%s%s%s", good[0], good[1], good[1], bad[i]);
        size_t at = strlen(good[0]) + 2 * strlen(good[1]);
        int heads = 0;
        ons_http_head h;
        ons_http_head_init(&h);
        ck_assert_ptr_nonnull(feed(raw, (size_t)n, &heads));
        ck_assert_int_eq(heads, 3);
        /* In two reads, the second starting inside the second request. */
        ck_assert_ptr_null(
            ons_http_head_feed(&h, (const unsigned char *)raw, 40, LINE_MAX_, HEAD_MAX));
        ck_assert_ptr_nonnull(ons_http_head_feed(&h, (const unsigned char *)raw + 40,
                                                 (size_t)n - 40, LINE_MAX_, HEAD_MAX));
        ck_assert_uint_eq(h.head_from, at);
    }
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        ONS_CHECK_CASE(plain_heads_pass),
        ONS_CHECK_CASE(path_nng_decodes_is_refused_with_a_percent),
        ONS_CHECK_CASE(header_names_nng_misfiles_are_refused),
        ONS_CHECK_CASE(bytes_nng_cannot_parse_are_refused),
        ONS_CHECK_CASE(request_lines_that_are_not_http_1_are_refused),
        ONS_CHECK_CASE(size_limits),
        ONS_CHECK_CASE(framing_is_judged_as_the_server_judges_it),
        ONS_CHECK_CASE(a_refused_head_is_located_in_the_stream),
    };
    return ons_check_run("httpd_head", cases, sizeof cases / sizeof *cases, 30);
}
