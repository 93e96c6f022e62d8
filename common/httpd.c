/* httpd.c - the HTTP server module over nng (ingress, onsale-gateway and
 * the workers' metrics endpoint); see httpd.h. */
#include "common/clock.h"
#include "common/httpd.h"
#include "common/err.h"
#include "common/hex.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

int64_t ons_httpd_mono_ns(void)
{
    return ons_mono_ns();
}

/* ---- listening ---------------------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define ONS_HTTPD_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ONS_HTTPD_LSAN 1
#endif
#endif
#ifdef ONS_HTTPD_LSAN
/* Sanitizer builds only. nng 1.5.2 takes a reference on the route handler
 * before it dispatches a request (http_sconn_rxdone, "finish:") and drops
 * it only in that dispatch's completion; when the server is stopped while
 * a request's body read completes, the dispatch is refused (its aio was
 * closed) and the reference is never dropped, so the one handler object
 * this function registers outlives the server. That is nng's, once per
 * process at exit, not per request: it is named here so that LeakSanitizer
 * keeps reporting every other leak (tests/integration/
 * test_ingress_small_fixes.py stops ingress under join load). */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:ons_httpd_listen\n";
}
#endif

int ons_httpd_listen(const char *bind, long long port, long long read_limit, void (*cb)(nng_aio *),
                     void *data, nng_http_server **out)
{
    nng_http_handler *handler = NULL;
    nng_url *u = NULL;
    char url[300];
    *out = NULL;
    snprintf(url, sizeof url, "http://%s:%lld", bind, port);
    int rv = nng_url_parse(&u, url);
    if (rv == 0)
        rv = nng_http_server_hold(out, u);
    nng_url_free(u);
    if (rv == 0)
        rv = nng_http_handler_alloc(&handler, "/", cb);
    if (rv == 0) {
        nng_http_handler_set_method(handler, NULL);
        nng_http_handler_set_tree(handler);
        nng_http_handler_collect_body(handler, read_limit > 0, (size_t)read_limit);
        nng_http_handler_set_data(handler, data, NULL);
        rv = nng_http_server_add_handler(*out, handler);
        if (rv)
            nng_http_handler_free(handler); /* else the server owns it */
    }
    if (rv == 0)
        rv = nng_http_server_start(*out);
    if (rv) {
        ons_log_error("http: cannot serve %s: %s", url, nng_strerror(rv));
        ons_httpd_close(out);
        return ONS_EIO;
    }
    ons_log_info("http: listening on %s", url);
    return 0;
}

void ons_httpd_close(nng_http_server **http)
{
    if (*http) {
        nng_http_server_stop(*http);
        nng_http_server_release(*http);
        *http = NULL;
        ons_httpd_direct_drain();
    }
}

/* ---- request ids ----------------------------------------------------------------- */

void ons_httpd_rid_init(ons_httpd_rid *g)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    g->seed = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
    atomic_init(&g->next, 0);
}

size_t ons_httpd_copy(char *dst, size_t size, const char *src)
{
    if (size == 0)
        return 0;
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}

/* Per request, without printf (every request has one). */
void ons_httpd_rid_next(ons_httpd_rid *g, const char *prefix, char *buf, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t x = g->seed + atomic_fetch_add(&g->next, 1) * 0x9E3779B97F4A7C15ULL;
    x ^= x >> 31;
    char id[17];
    for (int i = 15; i >= 0; i--, x >>= 4)
        id[i] = hex[x & 15];
    id[16] = '\0';
    size_t n = ons_httpd_copy(buf, size, prefix);
    ons_httpd_copy(buf + n, size - n, id);
}

/* ---- routing ----------------------------------------------------------------------- */

static int target_of(const char *m, const char *uri, char *method, size_t method_size, char *path,
                     size_t path_size);

int ons_httpd_req_target(nng_http_req *hreq, char *method, size_t method_size, char *path,
                         size_t path_size)
{
    return target_of(nng_http_req_get_method(hreq), nng_http_req_get_uri(hreq), method, method_size,
                     path, path_size);
}

int ons_httpd_path_ok(const char *path, int allow_dots)
{
    for (size_t i = 0; path[i]; i++) {
        char c = path[i];
        if (c == '.' && allow_dots && i > 0 && path[i - 1] != '/')
            continue;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '/' || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/* Splits path (in place) into at most max segments. Returns the count or
 * -1. */
static int split(char *path, char **segs, int max)
{
    if (path[0] != '/')
        return -1;
    int n = 0;
    char *p = path + 1;
    for (;;) {
        if (n == max)
            return -1;
        segs[n++] = p;
        char *slash = strchr(p, '/');
        if (!slash)
            break;
        *slash = '\0';
        p = slash + 1;
    }
    return n;
}

/* Matches pattern against segments; fills params. */
static int match(const char *pattern, char **segs, int nseg, const char **params, int max_params,
                 int *nparams)
{
    const char *p = pattern + 1;
    int i = 0, np = 0;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (i >= nseg)
            return 0;
        if (len == 2 && p[0] == '{' && p[1] == '}') {
            if (segs[i][0] == '\0' || np == max_params)
                return 0;
            params[np++] = segs[i];
        } else if (strlen(segs[i]) != len || strncmp(segs[i], p, len) != 0) {
            return 0;
        }
        i++;
        if (!end)
            break;
        p = end + 1;
    }
    if (i != nseg)
        return 0;
    *nparams = np;
    return 1;
}

static const char *row_str(const ons_httpd_table *t, size_t i, size_t off)
{
    const char *row = (const char *)t->rows + i * t->stride;
    const char *s;
    memcpy(&s, row + off, sizeof s);
    return s;
}

/* Appends method to allow ("GET, POST") unless it is there already. */
static void allow_add(char *allow, size_t size, const char *method)
{
    size_t used = strlen(allow), mlen = strlen(method);
    for (const char *p = allow; (p = strstr(p, method)) != NULL; p += mlen)
        if ((p == allow || p[-1] == ' ') && (p[mlen] == ',' || p[mlen] == '\0'))
            return;
    if (used + mlen + 3 > size)
        return;
    if (used) {
        memcpy(allow + used, ", ", 2);
        used += 2;
    }
    memcpy(allow + used, method, mlen + 1);
}

/* The first row whose pattern matches path and whose method is method.
 * path is split into segments in place; params[] point into it, one per
 * "{}", at most max_params. Returns the row's index, or -404 (no pattern
 * matches) or -405 (a pattern matches but not with this method); on -405,
 * allow (when not NULL) gets the methods the path has, in table order. */
static long route_find(const ons_httpd_table *t, const char *method, char *path,
                       const char **params, int max_params, int *nparams, char *allow,
                       size_t allow_size)
{
    char *segs[ONS_HTTPD_MAX_SEGS];
    int nseg = split(path, segs, ONS_HTTPD_MAX_SEGS);
    /* HEAD is GET without the body (RFC 9110 9.3.2: every server supports
     * both): it runs the GET row, and nng writes the answer's head alone.
     * That holds because no HEAD is answered directly: the gate reads only
     * GET and POST heads, and ons_httpd_keeps_alive() is 0 for a HEAD, so
     * its answer never takes the direct path that writes bodies itself. */
    if (strcmp(method, "HEAD") == 0)
        method = "GET";
    /* The method first (one strcmp) and the pattern only on rows with that
     * method; the other rows' patterns only when none matched, to tell 405
     * from 404. The same row wins as in one pass over both. */
    for (size_t i = 0; nseg > 0 && i < t->count; i++)
        if (strcmp(row_str(t, i, t->method_off), method) == 0 &&
            match(row_str(t, i, t->pattern_off), segs, nseg, params, max_params, nparams))
            return (long)i;
    long ri = -404;
    if (allow && allow_size)
        allow[0] = '\0';
    for (size_t i = 0; nseg > 0 && i < t->count; i++)
        if (match(row_str(t, i, t->pattern_off), segs, nseg, params, max_params, nparams)) {
            ri = -405;
            if (!allow)
                break;
            const char *m = row_str(t, i, t->method_off);
            allow_add(allow, allow_size, m);
            if (strcmp(m, "GET") == 0)
                allow_add(allow, allow_size, "HEAD");
        }
    return ri;
}

const char *ons_httpd_route_name(const ons_httpd_table *t, long i)
{
    return i >= 0 && (size_t)i < t->count ? row_str(t, (size_t)i, t->name_off) : "unmatched";
}

static int fail(ons_httpd_err *e, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The method and path of a request line's parts (ons_httpd_req_target). */
static int target_of(const char *m, const char *uri, char *method, size_t method_size, char *path,
                     size_t path_size)
{
    ons_httpd_copy(method, method_size, m ? m : "?");
    size_t n = strcspn(uri ? uri : "", "?");
    if (!uri || n == 0 || n >= path_size)
        return ONS_ENOTFOUND;
    memcpy(path, uri, n);
    path[n] = '\0';
    return 0;
}

long ons_httpd_route(const ons_httpd_table *t, nng_http_req *hreq, char *method, size_t method_size,
                     char *path, char *segs, size_t path_size, const char **params, int max_params,
                     int *nparams, ons_httpd_err *e)
{
    return ons_httpd_route_uri(t, nng_http_req_get_method(hreq), nng_http_req_get_uri(hreq), method,
                               method_size, path, segs, path_size, params, max_params, nparams, e);
}

long ons_httpd_route_uri(const ons_httpd_table *t, const char *m, const char *uri, char *method,
                         size_t method_size, char *path, char *segs, size_t path_size,
                         const char **params, int max_params, int *nparams, ons_httpd_err *e)
{
    *nparams = 0;
    if (target_of(m, uri, method, method_size, path, path_size))
        return fail(e, 404, "not_found", "No such resource.");
    if (!ons_httpd_path_ok(path, t->path_dots)) {
        if (!t->path_dots)
            return fail(e, 404, "not_found", "No such resource.");
        return fail(e, 400, "invalid_path",
                    "The path may contain only letters, digits, '-', '_', '/' and '.' "
                    "inside a name.");
    }
    if (segs)
        memcpy(segs, path, path_size);
    char allow[sizeof e->allow];
    long ri =
        route_find(t, method, segs ? segs : path, params, max_params, nparams, allow, sizeof allow);
    if (ri == -405) {
        fail(e, 405, "method_not_allowed", "This method is not allowed on this resource.");
        memcpy(e->allow, allow, sizeof allow);
        return -1;
    }
    if (ri < 0)
        return fail(e, 404, "not_found", "No such resource.");
    return ri;
}

/* ---- request metrics ------------------------------------------------------------------ */

/* The series of one route: [ntracked + 1], the last "other". */
typedef struct route_series {
    _Atomic(ons_counter *) *count;
    _Atomic(ons_histogram *) *latency; /* by status, or [0] alone */
} route_series;

struct ons_httpd_stats {
    ons_httpd_stats_opts o;
    const ons_httpd_table *t;
    size_t nroutes; /* t->count + 1: the last is "unmatched" */
    route_series *routes;
};

void ons_httpd_stats_free(ons_httpd_stats *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->routes && i < s->nroutes; i++) {
        free(s->routes[i].count);
        free(s->routes[i].latency);
    }
    free(s->routes);
    free(s);
}

int ons_httpd_stats_new(const ons_httpd_stats_opts *o, const ons_httpd_table *t,
                        ons_httpd_stats **out)
{
    *out = NULL;
    ons_httpd_stats *s = calloc(1, sizeof *s);
    if (!s)
        return ONS_ENOMEM;
    s->o = *o;
    s->t = t;
    s->nroutes = t->count + 1;
    s->routes = calloc(s->nroutes, sizeof *s->routes);
    size_t nst = o->ntracked + 1;
    for (size_t i = 0; s->routes && i < s->nroutes; i++) {
        route_series *rs = &s->routes[i];
        rs->count = calloc(nst, sizeof *rs->count);
        rs->latency = calloc(o->seconds_by_status ? nst : 1, sizeof *rs->latency);
        if (!rs->count || !rs->latency)
            goto nomem;
        if (o->seconds_by_status)
            continue;
        char labels[96];
        snprintf(labels, sizeof labels, "route=\"%s\"", ons_httpd_route_name(t, (long)i));
        ons_histogram *h =
            ons_metrics_histogram(o->metrics, o->seconds_name, o->seconds_help, labels,
                                  ons_latency_buckets, ons_latency_buckets_n);
        if (!h)
            goto nomem;
        atomic_init(&rs->latency[0], h);
    }
    if (!s->routes)
        goto nomem;
    *out = s;
    return 0;
nomem:
    ons_httpd_stats_free(s);
    return ONS_ENOMEM;
}

static size_t status_index(const ons_httpd_stats *s, int status)
{
    for (size_t i = 0; i < s->o.ntracked; i++)
        if (s->o.tracked[i] == status)
            return i;
    return s->o.ntracked;
}

void ons_httpd_stats_observe(ons_httpd_stats *s, long route, int status, double seconds)
{
    size_t ri = route >= 0 && (size_t)route < s->t->count ? (size_t)route : s->t->count;
    size_t si = status_index(s, status);
    route_series *rs = &s->routes[ri];
    _Atomic(ons_histogram *) *hp = &rs->latency[s->o.seconds_by_status ? si : 0];
    ons_counter *c = atomic_load(&rs->count[si]);
    ons_histogram *h = atomic_load(hp);
    if (!c || !h) {
        char labels[96], st[8];
        if (si == s->o.ntracked)
            snprintf(st, sizeof st, "other");
        else
            snprintf(st, sizeof st, "%d", status);
        snprintf(labels, sizeof labels, "route=\"%s\",status=\"%s\"",
                 ons_httpd_route_name(s->t, (long)ri), st);
        c = ons_metrics_counter(s->o.metrics, s->o.requests_name, s->o.requests_help, labels);
        atomic_store(&rs->count[si], c);
        if (!h) {
            h = ons_metrics_histogram(s->o.metrics, s->o.seconds_name, s->o.seconds_help, labels,
                                      ons_latency_buckets, ons_latency_buckets_n);
            atomic_store(hp, h);
        }
    }
    if (c)
        ons_counter_add(c, 1);
    if (h)
        ons_histogram_observe(h, seconds);
}

/* ---- bodies -------------------------------------------------------------------------- */

static int is_json_type(const char *ct)
{
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    size_t n = strlen("application/json");
    if (strncasecmp(ct, "application/json", n) != 0)
        return 0;
    ct += n;
    while (*ct == ' ')
        ct++;
    return *ct == '\0' || *ct == ';';
}

static int fail(ons_httpd_err *e, int status, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    e->allow[0] = '\0';
    e->status = status;
    e->code = code;
    return -1;
}

int ons_httpd_framing(nng_http_req *hreq, long long max, size_t *len, ons_httpd_err *e)
{
    *len = 0;
    if (nng_http_req_get_header(hreq, "Transfer-Encoding"))
        return fail(e, 411, "length_required",
                    "Transfer-Encoding is not supported; send the body with Content-Length.");
    const char *cl = nng_http_req_get_header(hreq, "Content-Length");
    if (!cl)
        return 0;
    while (*cl == ' ' || *cl == '\t')
        cl++;
    unsigned long long v = 0;
    size_t digits = 0;
    for (; *cl >= '0' && *cl <= '9'; cl++, digits++) {
        if (v > (unsigned long long)max)
            break; /* already too large; do not overflow */
        v = v * 10 + (unsigned long long)(*cl - '0');
    }
    if (*cl >= '0' && *cl <= '9') {
        while (*cl >= '0' && *cl <= '9')
            cl++;
        v = (unsigned long long)max + 1;
    }
    while (*cl == ' ' || *cl == '\t')
        cl++;
    if (!digits || *cl)
        return fail(e, 400, "invalid_content_length", "Content-Length must be one decimal number.");
    if (v > (unsigned long long)max)
        return fail(e, 413, "payload_too_large", "The body is larger than %lld bytes.", max);
    *len = (size_t)v;
    return 0;
}

int ons_httpd_body_check_len(nng_http_req *hreq, size_t len, long long max, int size_first,
                             ons_httpd_err *e)
{
    return ons_httpd_body_check_type(nng_http_req_get_header(hreq, "Content-Type"), len, max,
                                     size_first, e);
}

int ons_httpd_body_check_type(const char *content_type, size_t len, long long max, int size_first,
                              ons_httpd_err *e)
{
    int too_big = len > (size_t)max;
    if (too_big && size_first)
        return fail(e, 413, "payload_too_large", "The body is larger than %lld bytes.", max);
    if (!is_json_type(content_type))
        return fail(e, 415, "unsupported_media_type",
                    "The body must be sent as Content-Type: application/json.");
    if (too_big)
        return fail(e, 413, "payload_too_large", "The body is larger than %lld bytes.", max);
    return 0;
}

int ons_httpd_body_check(nng_http_req *hreq, long long max, int size_first, void **data,
                         size_t *len, ons_httpd_err *e)
{
    *data = NULL;
    *len = 0;
    nng_http_req_get_data(hreq, data, len);
    return ons_httpd_body_check_len(hreq, *len, max, size_first, e);
}

int ons_httpd_body_parse(const char *data, size_t len, json_t **out, ons_httpd_err *e)
{
    json_error_t jerr;
    *out = json_loadb(data ? data : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!*out || !json_is_object(*out))
        return fail(e, 400, "invalid_json", "The body must be one JSON object (%s).",
                    *out ? "not an object" : jerr.text);
    return 0;
}

/* JSON's whitespace (RFC 8259: space, tab, LF, CR; jansson's lexer
 * skips these four only). */
static size_t json_ws(const char *p, size_t i, size_t len)
{
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
        i++;
    return i;
}

int ons_httpd_body_sole_int(const char *data, size_t len, const char *key, int64_t *out)
{
    size_t klen = strlen(key);
    size_t i = data ? json_ws(data, 0, len) : len;
    if (i >= len || data[i++] != '{')
        return 0;
    i = json_ws(data, i, len);
    /* the key, byte for byte: an escaped or other key is jansson's to judge */
    if (len - i < klen + 2 || data[i] != '"' || memcmp(data + i + 1, key, klen) != 0 ||
        data[i + 1 + klen] != '"')
        return 0;
    i = json_ws(data, i + klen + 2, len);
    if (i >= len || data[i++] != ':')
        return 0;
    i = json_ws(data, i, len);
    /* 1-18 digits, no leading zero: fits int64_t, and jansson reads the
     * same digits as the same integer (a sign, a fraction or an exponent
     * would make the value another kind or another number) */
    int64_t v = 0;
    size_t d0 = i;
    while (i < len && data[i] >= '0' && data[i] <= '9' && i - d0 < 18)
        v = v * 10 + (data[i++] - '0');
    if (i == d0 || data[d0] == '0' || (i < len && data[i] >= '0' && data[i] <= '9'))
        return 0;
    i = json_ws(data, i, len);
    if (i >= len || data[i++] != '}')
        return 0;
    if (json_ws(data, i, len) != len)
        return 0;
    *out = v;
    return 1;
}

/* Replaces each byte of s that does not belong to a well-formed UTF-8
 * sequence (RFC 3629: no overlong forms, surrogates or code points past
 * U+10FFFF) with '?'. A message or field cut to fit its buffer can end inside
 * a character, and jansson refuses to pack a string that is not UTF-8. */
static void utf8_repair(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        int extra = c < 0x80                 ? 0
                    : c >= 0xc2 && c <= 0xdf ? 1
                    : c >= 0xe0 && c <= 0xef ? 2
                    : c >= 0xf0 && c <= 0xf4 ? 3
                                             : -1;
        int ok = extra >= 0;
        unsigned cp = extra == 1 ? c & 0x1f : extra == 2 ? c & 0x0f : c & 0x07;
        for (int k = 1; ok && k <= extra; k++) {
            ok = (p[k] & 0xc0) == 0x80;
            cp = (cp << 6) | (p[k] & 0x3f);
        }
        if (ok && extra == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
            ok = 0;
        if (ok && extra == 3 && (cp < 0x10000 || cp > 0x10ffff))
            ok = 0;
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += 1 + extra;
    }
}

json_t *ons_httpd_error_body(const char *code, const char *field, const char *fmt, va_list ap)
{
    char msg[256], fld[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    utf8_repair(msg);
    if (field) {
        snprintf(fld, sizeof fld, "%s", field);
        utf8_repair(fld);
    }
    return json_pack("{s:{s:s, s:s, s:s*}}", "error", "code", code, "message", msg, "field",
                     field ? fld : NULL);
}

/* ---- responses ---------------------------------------------------------------------- */

nng_http_res *ons_httpd_res_new(int status, const char *const *headers, const char *content_type,
                                const void *data, size_t len, int static_body)
{
    nng_http_res *res = NULL;
    if (nng_http_res_alloc(&res) != 0)
        return NULL;
    int rc = nng_http_res_set_status(res, (uint16_t)status);
    /* The reason a direct response gives (nng 1.5.2 names 413, 422 and 502
     * "Unknown HTTP Status" and 414 and 431 by older names); set only where
     * nng's differs, as setting one copies it. */
    const char *reason = ons_httpd_reason(status);
    if (reason && strcmp(nng_http_res_get_reason(res), reason) != 0)
        rc |= nng_http_res_set_reason(res, reason);
    for (size_t i = 0; headers && headers[i] && headers[i + 1]; i += 2)
        rc |= nng_http_res_set_header(res, headers[i], headers[i + 1]);
    if (data) {
        rc |= nng_http_res_set_header(res, "Content-Type", content_type);
        if (static_body)
            rc |= nng_http_res_set_data(res, data, len);
        else
            rc |= nng_http_res_copy_data(res, data, len);
    }
    if (rc) {
        nng_http_res_free(res);
        res = NULL;
    }
    return res;
}

/* ---- deferred requests ------------------------------------------------------------------ */

void ons_httpd_live_init(ons_httpd_live *l)
{
    pthread_mutex_init(&l->mu, NULL);
    l->head = NULL;
}

void ons_httpd_live_fini(ons_httpd_live *l)
{
    pthread_mutex_destroy(&l->mu);
}

/* Unlinks p; the caller holds l->mu. */
static void unlink_locked(ons_httpd_live *l, ons_httpd_pending *p)
{
    p->finished = 1;
    if (p->prev)
        p->prev->next = p->next;
    else
        l->head = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

/* nng's cancel routine: finish the aio now; the request is freed later by
 * its own reply, which then finds the aio finished. */
static void on_cancel(nng_aio *aio, void *arg, int rv)
{
    ons_httpd_live *l = arg;
    ons_httpd_pending *p;
    pthread_mutex_lock(&l->mu);
    for (p = l->head; p; p = p->next)
        if (p->aio == aio && !p->finished)
            break;
    if (p)
        unlink_locked(l, p);
    pthread_mutex_unlock(&l->mu);
    if (p)
        nng_aio_finish(aio, rv);
}

void ons_httpd_live_add(ons_httpd_live *l, ons_httpd_pending *p)
{
    if (p->deferred)
        return;
    pthread_mutex_lock(&l->mu);
    p->deferred = 1;
    p->prev = NULL;
    p->next = l->head;
    if (l->head)
        l->head->prev = p;
    l->head = p;
    pthread_mutex_unlock(&l->mu);
    nng_aio_defer(p->aio, on_cancel, l);
}

int ons_httpd_finish(ons_httpd_live *l, ons_httpd_pending *p, nng_http_res *res, int rv)
{
    int mine = 1;
    if (p->deferred) {
        pthread_mutex_lock(&l->mu);
        mine = !p->finished;
        if (mine)
            unlink_locked(l, p);
        pthread_mutex_unlock(&l->mu);
    }
    if (mine && res && rv == 0) {
        nng_aio_set_output(p->aio, 0, res);
        nng_aio_finish(p->aio, 0);
        return 1;
    }
    if (res)
        nng_http_res_free(res);
    if (mine)
        nng_aio_finish(p->aio, rv ? rv : NNG_ENOMEM);
    return mine;
}

/* ---- direct responses ------------------------------------------------------------------ */

int ons_httpd_keeps_alive(nng_http_req *req)
{
    const char *v = nng_http_req_get_version(req);
    if (!v || strcmp(v, "HTTP/1.1") != 0 || strcmp(nng_http_req_get_method(req), "HEAD") == 0)
        return 0;
    const char *c = nng_http_req_get_header(req, "Connection");
    for (; c && *c; c++)
        if (strncasecmp(c, "close", 5) == 0)
            return 0;
    return 1;
}

const char *ons_httpd_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 417:
        return "Expectation Failed";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Entity";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return NULL;
    }
}

/* One response's bytes and the aio that writes them; pooled. */
typedef struct direct_out {
    nng_aio *aio;
    char *buf;
    size_t cap;
    /* The request's handler aio, finished when the write is: until then
     * nng reads nothing more from the connection. */
    nng_aio *handler;
    struct direct_out *next;
} direct_out;

/* Idle buffers at most (a few per connection in flight is plenty) and the
 * largest buffer kept when one comes back (an event view can be large). */
#define DIRECT_POOL_MAX 1024
#define DIRECT_KEEP_CAP (16 * 1024)

static struct {
    pthread_mutex_t mu;
    direct_out *idle;
    size_t nidle;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void direct_free(direct_out *o)
{
    if (o->aio)
        nng_aio_reap(o->aio); /* may be running its own callback */
    free(o->buf);
    free(o);
}

/* Puts o back in the pool (or frees it when the pool is full). */
static void direct_put(direct_out *o)
{
    o->handler = NULL;
    if (o->cap > DIRECT_KEEP_CAP) {
        free(o->buf);
        o->buf = NULL;
        o->cap = 0;
    }
    pthread_mutex_lock(&pool.mu);
    if (pool.nidle < DIRECT_POOL_MAX) {
        o->next = pool.idle;
        pool.idle = o;
        pool.nidle++;
        o = NULL;
    }
    pthread_mutex_unlock(&pool.mu);
    if (o)
        direct_free(o);
}

/* The write finished, or failed (the peer left, the connection was closed
 * under it): o goes back to the pool first (so that once the server has
 * stopped, every buffer is idle and ons_httpd_direct_drain frees it), then
 * the handler's aio is finished: with no response after a whole write, so
 * nng reads the connection's next request; with the write's error, so nng
 * closes the connection. nng's reaper waits for that aio, so the
 * connection and its request outlive the write. Runs on an nng thread, as
 * the write aio's callback. */
static void direct_done(void *arg)
{
    direct_out *o = arg;
    nng_aio *handler = o->handler;
    int rv = nng_aio_result(o->aio);
    direct_put(o);
    if (handler)
        nng_aio_finish(handler, rv);
}

/* An idle buffer of at least need bytes, or NULL when out of memory. */
static direct_out *direct_get(size_t need)
{
    pthread_mutex_lock(&pool.mu);
    direct_out *o = pool.idle;
    if (o) {
        pool.idle = o->next;
        pool.nidle--;
    }
    pthread_mutex_unlock(&pool.mu);
    if (!o) {
        o = calloc(1, sizeof *o);
        if (!o || nng_aio_alloc(&o->aio, direct_done, o) != 0) {
            free(o);
            return NULL;
        }
    }
    if (o->cap < need) {
        size_t cap = need < 1024 ? 1024 : need;
        char *b = realloc(o->buf, cap);
        if (!b) {
            direct_put(o);
            return NULL;
        }
        o->buf = b;
        o->cap = cap;
    }
    return o;
}

void ons_httpd_direct_drain(void)
{
    pthread_mutex_lock(&pool.mu);
    direct_out *o = pool.idle;
    pool.idle = NULL;
    pool.nidle = 0;
    pthread_mutex_unlock(&pool.mu);
    while (o) {
        direct_out *next = o->next;
        direct_free(o);
        o = next;
    }
}

static char *put(char *w, const char *s, size_t n)
{
    memcpy(w, s, n);
    return w + n;
}

/* "name: value\r\n" */
static char *put_header(char *w, const char *name, size_t nl, const char *value, size_t vl)
{
    w = put(w, name, nl);
    w = put(w, ": ", 2);
    w = put(w, value, vl);
    return put(w, "\r\n", 2);
}

_Thread_local nng_http_conn *ons_httpd_io;
_Thread_local int ons_httpd_uncounted;
int (*_Atomic ons_httpd_conn_fd)(nng_http_conn *conn);

int ons_httpd_pending_fd(const ons_httpd_pending *p)
{
    if (p->sink)
        return p->sink->fd;
    int (*fd_of)(nng_http_conn *) = atomic_load_explicit(&ons_httpd_conn_fd, memory_order_acquire);
    return fd_of && p->conn ? fd_of(p->conn) : -1;
}
ssize_t (*_Atomic ons_httpd_held_body)(nng_http_conn *conn, void *buf, size_t len);

ssize_t ons_httpd_take_body(nng_http_conn *conn, void *buf, size_t len)
{
    ssize_t (*take)(nng_http_conn *, void *, size_t) =
        atomic_load_explicit(&ons_httpd_held_body, memory_order_acquire);
    return take ? take(conn, buf, len) : -1;
}

void ons_httpd_read_body(nng_http_conn *conn, nng_aio *aio)
{
    ons_httpd_io = conn;
    nng_http_conn_read_all(conn, aio);
    ons_httpd_io = NULL;
}

/* A direct answer's head: status line, headers, Content-Type and
 * Content-Length when there is a body, the empty line. */
typedef struct direct_head {
    int status;
    const char *reason;
    const char *const *headers;
    const char *content_type;
    int has_body;
    size_t len; /* the body's */
} direct_head;

/* The bytes format_head writes at most. */
static size_t head_size(const direct_head *h)
{
    size_t need = 9 + 4 + strlen(h->reason) + 2 + 2; /* "HTTP/1.1 200 OK\r\n" ... "\r\n" */
    for (size_t i = 0; h->headers && h->headers[i] && h->headers[i + 1]; i += 2)
        need += strlen(h->headers[i]) + strlen(h->headers[i + 1]) + 4;
    if (h->has_body)
        need += 14 + strlen(h->content_type) + 2 + 16 + 20 + 2; /* Content-Type, -Length */
    return need;
}

/* Writes h at w (head_size bytes free); returns the end. */
static char *format_head(char *w, const direct_head *h)
{
    w = put(w, "HTTP/1.1 ", 9);
    *w++ = (char)('0' + h->status / 100);
    *w++ = (char)('0' + h->status / 10 % 10);
    *w++ = (char)('0' + h->status % 10);
    *w++ = ' ';
    w = put(w, h->reason, strlen(h->reason));
    w = put(w, "\r\n", 2);
    for (size_t i = 0; h->headers && h->headers[i] && h->headers[i + 1]; i += 2)
        w = put_header(w, h->headers[i], strlen(h->headers[i]), h->headers[i + 1],
                       strlen(h->headers[i + 1]));
    if (h->has_body) {
        w = put_header(w, "Content-Type", 12, h->content_type, strlen(h->content_type));
        w = put(w, "Content-Length: ", 16);
        w = ons_put_dec(w, h->len);
        w = put(w, "\r\n", 2);
    }
    return put(w, "\r\n", 2);
}

/* Queues o's size bytes on p's connection through nng; p->aio is finished
 * when the write is (direct_done). With ons_httpd_io set, the gate
 * learns the connection's socket from nng's sendmsg. */
static void write_through_nng(ons_httpd_pending *p, direct_out *o, size_t size)
{
    nng_iov iov = {.iov_buf = o->buf, .iov_len = size};
    nng_aio_set_iov(o->aio, 1, &iov);
    nng_aio_set_output(p->aio, 0, NULL);
    o->handler = p->aio;
    /* From here o and p->aio are the write's: direct_done may already be
     * running on another thread. */
    ons_httpd_io = p->conn;
    nng_http_conn_write_all(p->conn, o->aio);
    ons_httpd_io = NULL;
}

/* Head bytes that fit the stack buffer of send_now; a larger head (many
 * or long headers) goes through nng. */
#define DIRECT_STACK_HEAD 1024

/* Sends h and the body on fd at once (see ons_httpd_finish_direct).
 * Returns 1 (answered: all sent, the rest queued through nng, or the
 * connection failed and its aio with it) or -1 (nothing sent: the caller
 * answers another way). */
static int send_now(ons_httpd_pending *p, int fd, const direct_head *h, const void *data)
{
    char head[DIRECT_STACK_HEAD];
    size_t hl = (size_t)(format_head(head, h) - head);
    size_t bl = h->has_body ? h->len : 0;
    struct iovec iov[2] = {{.iov_base = head, .iov_len = hl},
                           {.iov_base = (void *)data, .iov_len = bl}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = bl ? 2 : 1};
    ons_httpd_uncounted = 1;
    ssize_t n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    ons_httpd_uncounted = 0;
    if (n == (ssize_t)(hl + bl)) {
        nng_aio_set_output(p->aio, 0, NULL);
        nng_aio_finish(p->aio, 0); /* nng reads the next request */
        return 1;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        nng_aio_set_output(p->aio, 0, NULL);
        nng_aio_finish(p->aio, NNG_ECONNRESET); /* nng closes the connection */
        return 1;
    }
    /* The send buffer is full (a client not reading): the rest waits in
     * nng's write queue, in order, as any queued answer. */
    size_t sent = n > 0 ? (size_t)n : 0, rest = hl + bl - sent;
    direct_out *o = direct_get(rest);
    if (!o) {
        if (sent == 0)
            return -1;
        nng_aio_set_output(p->aio, 0, NULL);
        nng_aio_finish(p->aio, NNG_ENOMEM); /* half an answer: close */
        return 1;
    }
    char *w = o->buf;
    if (sent < hl)
        w = put(w, head + sent, hl - sent);
    size_t skip = sent > hl ? sent - hl : 0;
    if (bl > skip)
        w = put(w, (const char *)data + skip, bl - skip);
    write_through_nng(p, o, rest);
    return 1;
}

/* A direct answer made at the gate: the whole response into the gate's
 * buffer, or a heap one when it does not fit. Returns 1, or -1 when out
 * of memory (nothing written). */
static int to_sink(ons_httpd_sink *k, const direct_head *h, const void *data, size_t hneed)
{
    size_t need = hneed + (data ? h->len : 0);
    if (need > k->cap) {
        char *b = malloc(need);
        if (!b)
            return -1;
        free(k->heap);
        k->heap = k->buf = b;
        k->cap = need;
    }
    char *w = format_head(k->buf, h);
    if (data)
        w = put(w, data, h->len);
    k->len = (size_t)(w - k->buf);
    return 1;
}

const char *ons_httpd_view_header(const ons_httpd_view *v, const char *name)
{
    for (size_t i = 0; i < v->nhdrs; i++)
        if (strcasecmp(v->names[i], name) == 0)
            return v->values[i];
    return NULL;
}

int ons_httpd_finish_direct(ons_httpd_pending *p, int status, const char *const *headers,
                            const char *content_type, const void *data, size_t len)
{
    direct_head h = {.status = status,
                     .reason = ons_httpd_reason(status),
                     .headers = headers,
                     .content_type = content_type,
                     .has_body = data != NULL,
                     .len = len};
    if (!h.reason || status < 100 || status > 999)
        return -1;
    size_t hneed = head_size(&h);
    if (p->sink)
        return to_sink(p->sink, &h, data, hneed);
    if (!p->conn || p->deferred)
        return -1;
    int (*fd_of)(nng_http_conn *) = atomic_load_explicit(&ons_httpd_conn_fd, memory_order_acquire);
    int fd = fd_of ? fd_of(p->conn) : -1;
    if (fd >= 0 && hneed <= DIRECT_STACK_HEAD && send_now(p, fd, &h, data) == 1)
        return 1;
    direct_out *o = direct_get(hneed + (data ? len : 0));
    if (!o)
        return -1;
    char *w = format_head(o->buf, &h);
    if (data)
        w = put(w, data, len);
    write_through_nng(p, o, (size_t)(w - o->buf));
    return 1;
}
