/*
 * httpd_head.h - the request-stream scanner of the accept gate
 * (httpd_gate.c): follows the bytes of one client connection (request
 * line, header lines, a Content-Length body) and judges each request head
 * before nng 1.5.2 parses it.
 *
 * A head is refused when nng would misread it or answer it with anything
 * but the API's JSON error (nng closes a connection without a word on a
 * control or non-ASCII byte, a line without ':' or an HTTP/0.9 request
 * line; answers a head with no Host, a leading empty line or another
 * version with an HTML page; keeps "Content-Length :" as a header named
 * "Content-Length " that the server never sees, so the body is parsed as
 * the next request; decodes a path up to '?' only, '#' included, and reads
 * past its buffer on one ending in a percent-escape, nanomsg/nng#1594).
 * What passes is what both nng and the server frame the same way:
 *   request line   METHOD SP /target SP HTTP/1.0|HTTP/1.1 CRLF
 *                  METHOD a token; the target starts with '/' and holds no
 *                  '%' before its first '?'
 *   header lines   name ':' value, the name a token (no space before the
 *                  colon, no folded line), CRLF; at most one Host, a Host
 *                  when HTTP/1.1, its value a host and optional port
 *                  (RFC 3986 characters, spaces only around it)
 *   every byte     printable ASCII or SP, CR only right before LF, LF only
 *                  right after CR
 * plus the size limits (414 request line, 431 head).
 *
 * Framing is judged here too, as the server judges it (ons_httpd_framing),
 * so the two never disagree on where a request ends (a disagreement would
 * let the next head reach nng unjudged): Transfer-Encoding is 411
 * length_required, a second Content-Length or one that is not a decimal
 * number (spaces around it allowed, any number of digits) is 400
 * invalid_content_length; a body of the declared length is skipped. A
 * length over the server's limit passes here and is refused (413, closed)
 * by the server.
 *
 * Threads: a scanner belongs to the one thread reading its connection;
 * phase and requests may be read by any thread.
 */
#ifndef ONSALE_COMMON_HTTPD_HEAD_H
#define ONSALE_COMMON_HTTPD_HEAD_H

#include <stdatomic.h>
#include <stddef.h>

/* Where a connection's request stream is. */
enum {
    ONS_HEAD_IDLE = 0, /* between requests (or before the first byte) */
    ONS_HEAD_IN,       /* some bytes of a request head */
    ONS_HEAD_BODY,     /* a Content-Length body */
    ONS_HEAD_DRAIN,    /* refused: nothing more is judged */
};

/* Why a head was refused: the JSON error the gate answers with. */
typedef struct ons_http_refusal {
    int status;
    const char *reason; /* the status line's reason phrase */
    const char *code;
    const char *message;
} ons_http_refusal;

typedef struct ons_http_head {
    atomic_int phase;
    atomic_int requests; /* heads completed */
    /* The reader's state. */
    unsigned line_len, head_len, hdr_len, ver_len;
    int part; /* 0 method, 1 path, 2 query, 3 version, 4 header lines */
    int cr;   /* the previous byte was CR */
    int colon, cl_seen, host_seen, http11;
    int kind;     /* the current header line: 0 other, 1 Host, 2 Content-Length */
    int cl_state; /* its value (Host, Content-Length): 0 leading spaces, 1 the value, 2 trailing
                     spaces */
    unsigned long long cl, body_left;
    /* Stream offsets: bytes fed so far, and where the head being read (or
     * refused) began; the gate answers the requests before a refused head
     * first (httpd_gate.c, readv). */
    unsigned long long fed, head_from;
    /* The first body whose head ended since the caller last set body_at to
     * 0 (0: none): its stream offset and declared length. The gate uses it
     * to hand a small body to the server with its head (httpd_gate.c). */
    unsigned long long body_at, body_len;
    char ver[9];
    char hdr[32]; /* the first bytes of the current header line */
    ons_http_refusal refusal;
} ons_http_head;

/* A new connection's scanner. */
void ons_http_head_init(ons_http_head *h);

/* Follows p[0..n) through the stream. Returns NULL, or the refusal of the
 * head being read (the scanner is then in ONS_HEAD_DRAIN and judges
 * nothing more). max_request_line and max_head are byte limits. */
const ons_http_refusal *ons_http_head_feed(ons_http_head *h, const unsigned char *p, size_t n,
                                           unsigned max_request_line, unsigned max_head);

#endif
