/* httpd_head.c - the request-stream scanner of the accept gate; see
 * httpd_head.h for what passes and why. One byte at a time, no allocation:
 * it runs inside readv() on every byte a client sends. */
#include "common/httpd_head.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

#define PATH_MESSAGE                                                                               \
    "The path may contain only letters, digits, '-', '_', '/' and '.' inside a name."

static void head_start(ons_http_head *h)
{
    h->line_len = h->head_len = h->hdr_len = h->ver_len = 0;
    h->part = h->cr = 0;
    h->colon = h->cl_seen = h->host_seen = h->http11 = 0;
    h->kind = h->cl_state = 0;
    h->cl = 0;
    atomic_store_explicit(&h->phase, ONS_HEAD_IDLE, memory_order_relaxed);
}

void ons_http_head_init(ons_http_head *h)
{
    head_start(h);
    h->body_left = 0;
    h->fed = h->head_from = 0;
    h->body_at = h->body_len = 0;
    atomic_store_explicit(&h->requests, 0, memory_order_relaxed);
}

/* Records the refusal and stops judging the stream. Returns 1. */
static int refuse(ons_http_head *h, int status, const char *code, const char *message)
{
    h->refusal.status = status;
    h->refusal.code = code;
    h->refusal.message = message;
    atomic_store_explicit(&h->phase, ONS_HEAD_DRAIN, memory_order_relaxed);
    return 1;
}

static int bad_header(ons_http_head *h)
{
    return refuse(h, 400, "malformed_request",
                  "A header line must be a name, a colon and a value (no space before the colon, "
                  "no folded lines).");
}

static int bad_request_line(ons_http_head *h)
{
    return refuse(h, 400, "malformed_request", "The request line must be METHOD /path HTTP/1.1.");
}

/* RFC 9110 token characters (methods, header names). */
static int tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* One byte of the request line (not CR or LF). hdr_len counts the
 * target's bytes. Returns 0, or 1 when refused. */
static int request_line_byte(ons_http_head *h, unsigned char c, unsigned max_line)
{
    if (++h->line_len > max_line)
        return refuse(h, 414, "uri_too_long", "The request line is too long.");
    switch (h->part) {
    case 0: /* method */
        if (c == ' ' && h->line_len > 1)
            h->part = 1;
        else if (!tchar(c))
            return bad_request_line(h);
        return 0;
    case 1: /* the path: nng decodes it up to the first '?' */
        if (h->hdr_len++ == 0 && c != '/')
            return refuse(h, 400, "invalid_path", PATH_MESSAGE);
        if (c == ' ')
            h->part = 3;
        else if (c == '?')
            h->part = 2;
        else if (c == '%') /* see ons_httpd_path_ok: never valid here */
            return refuse(h, 400, "invalid_path", PATH_MESSAGE);
        return 0;
    case 2: /* the query */
        if (c == ' ')
            h->part = 3;
        return 0;
    default: /* the version */
        if (c == ' ' || h->ver_len >= sizeof h->ver - 1)
            return bad_request_line(h);
        h->ver[h->ver_len++] = (char)c;
        return 0;
    }
}

/* The end of the request line. Returns 0, or 1 when refused. */
static int request_line_done(ons_http_head *h)
{
    if (h->part != 3 || h->ver_len == 0)
        return bad_request_line(h); /* HTTP/0.9, or no target */
    h->ver[h->ver_len] = '\0';
    h->http11 = strcmp(h->ver, "HTTP/1.1") == 0;
    if (!h->http11 && strcmp(h->ver, "HTTP/1.0") != 0)
        return refuse(h, 400, "malformed_request", "Only HTTP/1.0 and HTTP/1.1 are served.");
    h->part = 4;
    h->line_len = h->hdr_len = 0;
    h->colon = 0;
    return 0;
}

static int bad_content_length(ons_http_head *h)
{
    return refuse(h, 400, "invalid_content_length", "Content-Length must be one decimal number.");
}

/* The colon of a header line: what the line is, from its name. Returns 0,
 * or 1 when refused. */
static int header_name(ons_http_head *h)
{
    size_t n = h->hdr_len; /* the name, when it fits in hdr */
    h->kind = 0;
    if (n == strlen("host") && strncasecmp(h->hdr, "host", n) == 0) {
        if (h->host_seen)
            return refuse(h, 400, "malformed_request",
                          "An HTTP/1.1 request needs exactly one Host header.");
        h->host_seen = 1;
        h->kind = 1;
        h->cl_state = 0;
    } else if (n == strlen("transfer-encoding") &&
               strncasecmp(h->hdr, "transfer-encoding", n) == 0) {
        /* nng 1.5.2 never decodes chunked bodies: the chunk bytes would be
         * read as the next request. */
        return refuse(h, 411, "length_required",
                      "Transfer-Encoding is not supported; send the body with Content-Length.");
    } else if (n == strlen("content-length") && strncasecmp(h->hdr, "content-length", n) == 0) {
        if (h->cl_seen)
            return bad_content_length(h); /* nng would join them: "5, 5" */
        h->cl_seen = 1;
        h->kind = 2;
        h->cl_state = 0;
        h->cl = 0;
    }
    return 0;
}

/* One byte of a Content-Length value: SP* DIGIT+ SP*, the value saturated
 * (anything that large is the server's 413). Returns 0, or 1 when refused. */
static int content_length_byte(ons_http_head *h, unsigned char c)
{
    if (c == ' ') {
        if (h->cl_state == 1)
            h->cl_state = 2;
        return 0;
    }
    if (c < '0' || c > '9' || h->cl_state == 2)
        return bad_content_length(h);
    h->cl_state = 1;
    unsigned d = (unsigned)(c - '0');
    h->cl = h->cl > (ULLONG_MAX - d) / 10 ? ULLONG_MAX : h->cl * 10 + d;
    return 0;
}

static int bad_host(ons_http_head *h)
{
    return refuse(h, 400, "malformed_request",
                  "The Host header must be a host name or address and an optional port.");
}

/* One byte of a Host value: SP* host-chars* SP* (RFC 9112 3.2: a server
 * must answer 400 to an invalid Host; empty is valid). host-chars are
 * RFC 3986's reg-name, IP literal and port characters: a space inside, a
 * '/', '@', '?' or '#' could make a proxy or a log read another host.
 * Returns 0, or 1 when refused. */
static int host_byte(ons_http_head *h, unsigned char c)
{
    if (c == ' ') {
        if (h->cl_state == 1)
            h->cl_state = 2;
        return 0;
    }
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             strchr("-._~%!$&'()*+,;=:[]", c) != NULL;
    if (!ok || h->cl_state == 2)
        return bad_host(h);
    h->cl_state = 1;
    return 0;
}

/* The blank line ending a head: what follows is a body or the next
 * request. Returns 0, or 1 when refused. */
static int head_done(ons_http_head *h)
{
    if (h->http11 && !h->host_seen)
        return refuse(h, 400, "malformed_request",
                      "An HTTP/1.1 request needs exactly one Host header.");
    atomic_fetch_add_explicit(&h->requests, 1, memory_order_relaxed);
    if (h->cl > 0) {
        h->body_left = h->cl;
        atomic_store_explicit(&h->phase, ONS_HEAD_BODY, memory_order_relaxed);
    } else {
        head_start(h);
    }
    return 0;
}

/* One byte of the header lines (not CR or LF). Returns 0, or 1 when
 * refused. */
static int header_byte(ons_http_head *h, unsigned char c)
{
    h->line_len++;
    if (h->colon)
        return h->kind == 2 ? content_length_byte(h, c) : h->kind == 1 ? host_byte(h, c) : 0;
    if (c == ':' && h->line_len > 1) {
        h->colon = 1;
        return header_name(h);
    }
    if (!tchar(c))
        return bad_header(h);
    if (h->hdr_len < sizeof h->hdr)
        h->hdr[h->hdr_len++] = (char)c;
    else
        h->hdr_len = sizeof h->hdr + 1; /* longer than any name we look for */
    return 0;
}

/* A line feed: the end of the request line, of a header line or of the
 * head. Returns 0, or 1 when refused. */
static int line_end(ons_http_head *h)
{
    if (h->part < 4)
        return request_line_done(h);
    if (h->line_len == 0)
        return head_done(h);
    if (!h->colon)
        return bad_header(h);
    if (h->kind == 2 && h->cl_state == 0)
        return bad_content_length(h); /* no digits */
    h->line_len = h->hdr_len = 0;
    h->colon = h->kind = 0;
    return 0;
}

/* One byte of a head. Returns 0, or 1 when refused. */
static int head_byte(ons_http_head *h, unsigned char c, unsigned max_line, unsigned max_head)
{
    h->head_len++;
    /* every byte after the request line counts, its CRs and LFs too (a
     * head of max_head + 4 bytes passed when only header bytes did) */
    if (h->part >= 4 && h->head_len > max_head)
        return refuse(h, 431, "headers_too_large", "The request head is too large.");
    if (h->cr && c != '\n')
        return refuse(h, 400, "malformed_request", "A CR in a request head must end its line.");
    /* RFC 9112 2.2 lets a recipient take a bare LF for a line end; a proxy
     * in front that does not (one that keeps it inside a field value) would
     * see other header lines than we do: the shape of request smuggling. */
    if (c == '\n' && !h->cr)
        return refuse(h, 400, "malformed_request",
                      "Every line of a request head must end with CR LF.");
    h->cr = c == '\r';
    if (c == '\r')
        return 0;
    if (c == '\n')
        return line_end(h);
    if (c < 0x20 || c >= 0x7f)
        return refuse(h, 400, "malformed_request",
                      "A request head may hold only printable ASCII characters and spaces.");
    return h->part < 4 ? request_line_byte(h, c, max_line) : header_byte(h, c);
}

const ons_http_refusal *ons_http_head_feed(ons_http_head *h, const unsigned char *p, size_t n,
                                           unsigned max_request_line, unsigned max_head)
{
    for (size_t i = 0; i < n; i++) {
        int ph = atomic_load_explicit(&h->phase, memory_order_relaxed);
        if (ph == ONS_HEAD_DRAIN)
            return NULL;
        if (ph == ONS_HEAD_BODY) {
            size_t take = n - i;
            if (take > h->body_left)
                take = (size_t)h->body_left;
            h->body_left -= take;
            if (h->body_left == 0)
                head_start(h);
            i += take - 1;
            continue;
        }
        if (ph == ONS_HEAD_IDLE) {
            h->head_from = h->fed + i;
            /* nng takes an empty line there for a whole head without a
             * request line (and answers it with an HTML page). */
            if (p[i] == '\r' || p[i] == '\n') {
                refuse(h, 400, "malformed_request",
                       "A request must start with its request line, not an empty line.");
                return &h->refusal;
            }
            atomic_store_explicit(&h->phase, ONS_HEAD_IN, memory_order_relaxed);
        }
        if (h->part == 4 && h->colon && h->kind == 0 && !h->cr) {
            /* A header value we only count (the bulk of a head: tokens,
             * user agents): printable bytes in a run. */
            size_t k = 0;
            while (i + k < n && p[i + k] >= 0x20 && p[i + k] < 0x7f)
                k++;
            if (k > 0) {
                h->head_len += (unsigned)k;
                h->line_len += (unsigned)k;
                if (h->head_len > max_head) {
                    refuse(h, 431, "headers_too_large", "The request head is too large.");
                    return &h->refusal;
                }
                i += k - 1;
                continue;
            }
        }
        if (head_byte(h, p[i], max_request_line, max_head))
            return &h->refusal;
        if (p[i] == '\n' && !h->body_at &&
            atomic_load_explicit(&h->phase, memory_order_relaxed) == ONS_HEAD_BODY) {
            h->body_at = h->fed + i + 1; /* the head ended on this byte */
            h->body_len = h->body_left;
        }
    }
    h->fed += n;
    return NULL;
}
