/* test_httpd.c - the HTTP server module (common/httpd.h): the routing steps
 * before a handler (ons_httpd_route: 404, 400 invalid_path, 405, params,
 * the path kept whole), the per-route request metrics, and the workers'
 * endpoint (workers/httpd.c) served through it, called with the common
 * client. */
#include "common/err.h"
#include "common/httpc.h"
#include "common/httpd.h"
#include "common/metrics.h"
#include "workers/httpd.h"

#include "tests/check_run.h"
#include "tests/metrics_check.h"

#include <check.h>
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct row {
    const char *name, *method, *pattern;
} row;

static const row rows[] = {
    {"list", "GET", "/v1/things"},
    {"get", "GET", "/v1/things/{}"},
    {"put", "PUT", "/v1/things/{}"},
    {"sub", "GET", "/v1/things/{}/parts/{}"},
};

static ons_httpd_table table(int dots)
{
    ons_httpd_table t = ONS_HTTPD_TABLE_INIT(rows, sizeof rows / sizeof *rows, row, dots);
    return t;
}

/* Routes method uri through t. Returns the index or -status. */
static long route(const ons_httpd_table *t, const char *method, const char *uri, char *path,
                  char *segs, const char **params, int *np, ons_httpd_err *e)
{
    nng_http_req *req = NULL;
    ck_assert_int_eq(nng_http_req_alloc(&req, NULL), 0);
    ck_assert_int_eq(nng_http_req_set_method(req, method), 0);
    ck_assert_int_eq(nng_http_req_set_uri(req, uri), 0);
    char m[8];
    long ri = ons_httpd_route(t, req, m, sizeof m, path, segs, 64, params, 2, np, e);
    nng_http_req_free(req);
    if (ri >= 0)
        ck_assert_str_eq(m, method);
    return ri >= 0 ? ri : -e->status;
}

START_TEST(route_finds_rows_and_params)
{
    ons_httpd_table t = table(1);
    char path[64], segs[64];
    const char *p[2];
    int np = -1;
    ons_httpd_err e;
    ck_assert_int_eq(route(&t, "GET", "/v1/things?x=1", path, NULL, p, &np, &e), 0);
    ck_assert_int_eq(np, 0);
    ck_assert_int_eq(route(&t, "PUT", "/v1/things/t1", path, NULL, p, &np, &e), 2);
    ck_assert_int_eq(np, 1);
    ck_assert_str_eq(p[0], "t1");
    ck_assert_int_eq(route(&t, "GET", "/v1/things/a.b/parts/c", path, segs, p, &np, &e), 3);
    ck_assert_int_eq(np, 2);
    ck_assert_str_eq(p[0], "a.b");
    ck_assert_str_eq(p[1], "c");
    ck_assert_str_eq(path, "/v1/things/a.b/parts/c"); /* split in segs, kept whole */
    ck_assert_str_eq(ons_httpd_route_name(&t, 3), "sub");
    ck_assert_str_eq(ons_httpd_route_name(&t, -1), "unmatched");
}
END_TEST

START_TEST(route_refuses_in_order)
{
    ons_httpd_table t = table(1);
    char path[64];
    const char *p[2];
    int np;
    ons_httpd_err e;
    ck_assert_int_eq(route(&t, "GET", "/v1/nothing", path, NULL, p, &np, &e), -404);
    ck_assert_str_eq(e.code, "not_found");
    ck_assert_str_eq(e.allow, "");
    ck_assert_int_eq(route(&t, "DELETE", "/v1/things/t1", path, NULL, p, &np, &e), -405);
    ck_assert_str_eq(e.code, "method_not_allowed");
    ck_assert_str_eq(e.allow, "GET, HEAD, PUT"); /* the 405's Allow, each method once */
    ck_assert_int_eq(route(&t, "POST", "/v1/things", path, NULL, p, &np, &e), -405);
    ck_assert_str_eq(e.allow, "GET, HEAD");
    /* HEAD is answered where GET is, and only there. */
    ck_assert_int_eq(route(&t, "HEAD", "/v1/things?x=1", path, NULL, p, &np, &e), 0);
    ck_assert_int_eq(route(&t, "HEAD", "/v1/things/t1/parts/c", path, NULL, p, &np, &e), 3);
    ck_assert_int_eq(route(&t, "HEAD", "/v1/nothing", path, NULL, p, &np, &e), -404);
    ck_assert_int_eq(route(&t, "GET", "/v1/things/%41", path, NULL, p, &np, &e), -400);
    ck_assert_str_eq(e.code, "invalid_path");
    ck_assert_int_eq(route(&t, "GET", "/v1/things/.hidden", path, NULL, p, &np, &e), -400);
    char longuri[128];
    memset(longuri, 'a', sizeof longuri - 1);
    longuri[0] = '/';
    longuri[sizeof longuri - 1] = '\0';
    ck_assert_int_eq(route(&t, "GET", longuri, path, NULL, p, &np, &e), -404); /* > 64 bytes */
    /* Without dots a '.' or '%' is just not a resource. */
    t = table(0);
    ck_assert_int_eq(route(&t, "GET", "/v1/things/a.b", path, NULL, p, &np, &e), -404);
    ck_assert_int_eq(route(&t, "GET", "/v1/things/%41", path, NULL, p, &np, &e), -404);
}
END_TEST

static const int tracked[] = {200, 404};

START_TEST(stats_count_by_route_and_status)
{
    ons_metrics *m = ons_metrics_new();
    ons_httpd_table t = table(1);
    ons_httpd_stats_opts o = {.metrics = m,
                              .requests_name = "t_requests_total",
                              .requests_help = "Requests.",
                              .seconds_name = "t_request_seconds",
                              .seconds_help = "Latency.",
                              .seconds_by_status = 1,
                              .tracked = tracked,
                              .ntracked = 2};
    ons_httpd_stats *s = NULL;
    ck_assert_int_eq(ons_httpd_stats_new(&o, &t, &s), 0);
    char *text = ons_metrics_render(m);
    ck_assert_ptr_null(strstr(text, "t_request")); /* by status: nothing before a request */
    free(text);
    ons_httpd_stats_observe(s, 1, 200, 0.001);
    ons_httpd_stats_observe(s, 1, 200, 0.002);
    ons_httpd_stats_observe(s, -1, 404, 0.001);
    ons_httpd_stats_observe(s, 3, 418, 0.001);
    ons_check_rendered(m, "t_requests_total{route=\"get\",status=\"200\"} 2\n",
                       "t_requests_total{route=\"unmatched\",status=\"404\"} 1\n",
                       "t_requests_total{route=\"sub\",status=\"other\"} 1\n",
                       "t_request_seconds_count{route=\"get\",status=\"200\"} 2\n", NULL);
    ons_httpd_stats_free(s);

    /* By route: every route's histogram exists from the start. */
    ons_metrics *m2 = ons_metrics_new();
    o.metrics = m2;
    o.seconds_by_status = 0;
    ck_assert_int_eq(ons_httpd_stats_new(&o, &t, &s), 0);
    ons_httpd_stats_observe(s, 0, 200, 0.001);
    ons_check_rendered(m2, "t_request_seconds_count{route=\"put\"} 0\n",
                       "t_request_seconds_count{route=\"unmatched\"} 0\n",
                       "t_request_seconds_count{route=\"list\"} 1\n",
                       "t_requests_total{route=\"list\",status=\"200\"} 1\n", NULL);
    ons_httpd_stats_free(s);
    ons_metrics_free(m);
    ons_metrics_free(m2);
}
END_TEST

/* ---- the workers' endpoint ---------------------------------------------------------------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int get(int port, const char *method, const char *path, ons_httpc_resp *r)
{
    char s[64];
    ons_httpc_url u;
    snprintf(s, sizeof s, "http://127.0.0.1:%d", port);
    ck_assert_int_eq(ons_httpc_url_parse(s, &u), 0);
    ons_httpc_req req = {.method = method, .path = path};
    return ons_httpc_call(&u, &req, 3000, 1 << 20, r);
}

START_TEST(worker_endpoint_serves_metrics_and_health)
{
    ons_metrics *m = ons_metrics_new();
    ons_counter_add(ons_metrics_counter(m, "w_things_total", "Things.", ""), 3);
    int port = free_port();
    wk_httpd *h = NULL;
    ck_assert_int_eq(wk_httpd_start(port, m, &h), 0);
    struct {
        const char *method, *path;
        int status;
        const char *body_has;
    } want[] = {
        {"GET", "/metrics", 200, "w_things_total 3\n"},
        {"GET", "/healthz", 200, "{\"status\":\"ok\"}\n"},
        {"GET", "/nope", 404, "\"code\":\"not_found\""},
        {"POST", "/metrics", 405, "\"code\":\"method_not_allowed\""},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        ons_httpc_resp r;
        ck_assert_int_eq(get(port, want[i].method, want[i].path, &r), 0);
        ck_assert_int_eq(r.status, want[i].status);
        ck_assert_msg(strstr(r.body, want[i].body_has), "%s %s: %s", want[i].method, want[i].path,
                      r.body);
        free((void *)r.body);
    }
    wk_httpd_stop(h);
    ons_metrics_free(m);
}
END_TEST

START_TEST(copy_and_request_ids_without_printf)
{
    /* ons_httpd_copy cuts as snprintf("%s") does. */
    const char *srcs[] = {"", "GET", "DELETE", "0123456789abcdef0123"};
    for (size_t i = 0; i < sizeof srcs / sizeof *srcs; i++) {
        for (size_t size = 1; size <= 24; size++) {
            char a[32], b[32];
            memset(a, 'x', sizeof a);
            memset(b, 'x', sizeof b);
            size_t n = ons_httpd_copy(a, size, srcs[i]);
            snprintf(b, size, "%s", srcs[i]);
            ck_assert(memcmp(a, b, sizeof a) == 0);
            ck_assert_uint_eq(n, strlen(b));
        }
    }
    /* Request ids: the prefix, then 16 lowercase hex digits; distinct. */
    ons_httpd_rid g;
    ons_httpd_rid_init(&g);
    char seen[64][32];
    for (int i = 0; i < 64; i++) {
        ons_httpd_rid_next(&g, "req_", seen[i], sizeof seen[i]);
        ck_assert_uint_eq(strlen(seen[i]), 20);
        ck_assert(strncmp(seen[i], "req_", 4) == 0);
        ck_assert_uint_eq(strspn(seen[i] + 4, "0123456789abcdef"), 16);
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(seen[i], seen[j]);
    }
    char small[17];
    ons_httpd_rid_next(&g, "", small, sizeof small);
    ck_assert_uint_eq(strlen(small), 16);
    ons_httpd_rid_next(&g, "req_", small, sizeof small); /* cut to fit */
    ck_assert_uint_eq(strlen(small), 16);
}
END_TEST

START_TEST(direct_reply_rules)
{
    ck_assert_str_eq(ons_httpd_reason(200), "OK");
    ck_assert_str_eq(ons_httpd_reason(304), "Not Modified");
    ck_assert_str_eq(ons_httpd_reason(431), "Request Header Fields Too Large");
    ck_assert_ptr_null(ons_httpd_reason(299));
    /* nng's path names a status as the direct path does. */
    static const int statuses[] = {200, 202, 304, 404, 413, 414, 422, 429, 431, 502, 503};
    for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++) {
        nng_http_res *res = ons_httpd_res_new(statuses[i], NULL, "application/json", "{}", 2, 1);
        ck_assert_ptr_nonnull(res);
        ck_assert_str_eq(nng_http_res_get_reason(res), ons_httpd_reason(statuses[i]));
        nng_http_res_free(res);
    }
    /* Keep-alive as nng 1.5.2 judges it: HTTP/1.1, not HEAD, no "close"
     * anywhere in Connection, any case. */
    static const struct {
        const char *method, *version, *connection;
        int keeps;
    } cases[] = {
        {"GET", "HTTP/1.1", NULL, 1},
        {"POST", "HTTP/1.1", "keep-alive", 1},
        {"GET", "HTTP/1.0", NULL, 0},
        {"GET", "HTTP/1.0", "keep-alive", 0},
        {"HEAD", "HTTP/1.1", NULL, 0},
        {"GET", "HTTP/1.1", "close", 0},
        {"GET", "HTTP/1.1", "Keep-Alive, CLOSE", 0},
        {"GET", "HTTP/1.1", "upgrade", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nng_http_req *req;
        ck_assert_int_eq(nng_http_req_alloc(&req, NULL), 0);
        ck_assert_int_eq(nng_http_req_set_method(req, cases[i].method), 0);
        ck_assert_int_eq(nng_http_req_set_version(req, cases[i].version), 0);
        if (cases[i].connection)
            ck_assert_int_eq(nng_http_req_set_header(req, "Connection", cases[i].connection), 0);
        ck_assert_msg(ons_httpd_keeps_alive(req) == cases[i].keeps, "case %zu", i);
        nng_http_req_free(req);
    }
}
END_TEST

/* ---- direct answers sent on the socket ---------------------------------------- */

/* A server whose handler answers every request with ons_httpd_finish_direct:
 * "/small" with "hello", "/big" with BIG_LEN bytes of a pattern; the X-N
 * header echoes the request's "?n=" value, so the client sees the order. */
#define BIG_LEN (1000 * 1000)
static char big_body[BIG_LEN];
static atomic_int answers, on_socket;

/* HUGE_LEN bytes, more than a socket takes at once (net.core.wmem_max is
 * 4 MB here): byte i is 'a' + i % 26. */
#define HUGE_LEN (40u << 20)
static const char *huge_body(void)
{
    static char *b;
    if (!b) {
        b = malloc(HUGE_LEN);
        ck_assert_ptr_nonnull(b);
        for (size_t i = 0; i < HUGE_LEN; i++)
            b[i] = (char)('a' + i % 26);
    }
    return b;
}

/* The answer to uri, wherever it is made: X-N the "?n=" value or the last
 * segment, body BIG_LEN bytes when "big" is in the path, else "hello". */
static int answer_uri(ons_httpd_pending *p, const char *uri)
{
    const char *q = strstr(uri, "?n=");
    const char *h[] = {"X-N", q ? q + 3 : strrchr(uri, '/') + 1, NULL};
    if (strstr(uri, "huge"))
        return ons_httpd_finish_direct(p, 200, h, "text/plain", huge_body(), HUGE_LEN);
    int big = strstr(uri, "big") != NULL;
    return ons_httpd_finish_direct(p, 200, h, "text/plain", big ? big_body : "hello",
                                   big ? BIG_LEN : 5);
}

/* The gate's answer hook: "/g/..." answered at the gate, the rest left to
 * nng. */
static atomic_int at_gate, on_gate_threads, later_taken, later_sent;

/* A request taken for later ("/later/<n>/<ms>" with a body): answered
 * <ms> later from a thread of its own, X-N n, the body echoed. */
typedef struct later_job {
    ons_httpd_sink *k;
    char n[16], body[64];
    size_t len;
    int ms;
} later_job;

static void *later_answer(void *arg)
{
    later_job *j = arg;
    if (j->ms > 0)
        usleep((useconds_t)j->ms * 1000);
    const char *h[] = {"X-N", j->n, NULL};
    ons_httpd_pending p = {.sink = j->k};
    ck_assert_int_eq(ons_httpd_finish_direct(&p, 200, h, "text/plain", j->body, j->len), 1);
    ons_httpd_later_done(j->k);
    atomic_fetch_add(&later_sent, 1);
    free(j);
    return NULL;
}

static int take_later(ons_httpd_sink *out)
{
    const ons_httpd_view *v = out->view;
    later_job *j = calloc(1, sizeof *j);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(sscanf(v->target, "/later/%15[^/]/%d", j->n, &j->ms), 2);
    ck_assert_uint_lt(v->body_len, sizeof j->body);
    memcpy(j->body, v->body, v->body_len);
    j->len = v->body_len;
    j->k = ons_httpd_later(out);
    ck_assert_ptr_nonnull(j->k);
    ck_assert_ptr_null(ons_httpd_later(out)); /* once per request */
    atomic_fetch_add(&later_taken, 1);
    if (j->ms < 0) { /* answered before the hook returns (a full queue's 503) */
        later_answer(j);
        return 1;
    }
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, later_answer, j), 0);
    pthread_detach(t);
    return 1;
}

static int gate_hook(void *arg, ons_httpd_sink *out)
{
    (void)arg;
    if (out->view->body)
        return strncmp(out->view->target, "/later/", 7) == 0 ? take_later(out) : 0;
    if (strncmp(out->view->target, "/g/", 3) != 0)
        return 0;
    atomic_fetch_add(&at_gate, 1);
    char name[16] = "";
    pthread_getname_np(pthread_self(), name, sizeof name);
    if (strcmp(name, "gate:read") == 0)
        atomic_fetch_add(&on_gate_threads, 1);
    ons_httpd_pending p = {.sink = out};
    ck_assert_int_eq(answer_uri(&p, out->view->target), 1);
    return 1;
}

/* "/shut": the socket its conn names before and after the handler shuts
 * it down as nng does first when it closes a connection (-1: none; -2:
 * not yet). */
static atomic_int shut_before = -2, shut_after = -2;

static void shut_cb(nng_aio *aio, nng_http_conn *conn, int (*fd_of)(nng_http_conn *))
{
    int fd = fd_of ? fd_of(conn) : -1;
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR); /* the gate's wrapper, as nng calls it */
    atomic_store(&shut_after, fd_of ? fd_of(conn) : -1);
    atomic_store(&shut_before, fd);
    nng_aio_set_output(aio, 0, NULL);
    nng_aio_finish(aio, NNG_ECONNRESET); /* nng closes the connection */
}

static void direct_cb(nng_aio *aio)
{
    nng_http_req *req = nng_aio_get_input(aio, 0);
    nng_http_conn *conn = nng_aio_get_input(aio, 2);
    const char *uri = nng_http_req_get_uri(req);
    int (*fd_of)(nng_http_conn *) = atomic_load(&ons_httpd_conn_fd);
    if (strcmp(uri, "/shut") == 0) {
        shut_cb(aio, conn, fd_of);
        return;
    }
    if (fd_of && fd_of(conn) >= 0)
        atomic_fetch_add(&on_socket, 1);
    atomic_fetch_add(&answers, 1);
    ons_httpd_pending p = {.aio = aio, .conn = conn};
    ck_assert_int_eq(answer_uri(&p, uri), 1);
}

static int dial(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf)
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void send_all(int fd, const char *s)
{
    for (size_t n = strlen(s), off = 0; off < n;) {
        ssize_t k = send(fd, s + off, n - off, MSG_NOSIGNAL);
        ck_assert_int_gt(k, 0);
        off += (size_t)k;
    }
}

/* Reads one whole answer from fd and checks it: 200, X-N: n, body. */
static void expect_answer(int fd, const char *n, const char *body, size_t len)
{
    static char buf[BIG_LEN + 1024];
    size_t have = 0, head = 0, want = 0;
    for (;;) {
        ssize_t k = recv(fd, buf + have, head ? want - have : 1, 0);
        ck_assert_int_gt(k, 0);
        have += (size_t)k;
        if (!head && have >= 4 && memcmp(buf + have - 4, "\r\n\r\n", 4) == 0) {
            buf[have] = '\0';
            head = have;
            char line[64];
            snprintf(line, sizeof line, "\r\nX-N: %s\r\n", n);
            ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", buf);
            ck_assert_msg(strstr(buf, line) != NULL, "want X-N %s in %s", n, buf);
            const char *cl = strstr(buf, "Content-Length: ");
            ck_assert_ptr_nonnull(cl);
            ck_assert_uint_eq(strtoul(cl + 16, NULL, 10), len);
            want = head + len;
        }
        if (head && have == want)
            break;
    }
    ck_assert(memcmp(buf + head, body, len) == 0);
}

/* Sends n requests for BIG_LEN answers (target: a printf format of the
 * request line's method and target, taking the index), then tail, in one
 * write; reads nothing for 300 ms (the send buffer fills), then expects the
 * n big answers in order, X-N their index. tail's answers are the
 * caller's to read. */
static void pipeline_bigs(int fd, const char *target, int n, const char *tail)
{
    char pipeline[1024] = "";
    for (int i = 0; i < n; i++) {
        char line[64], req[96];
        snprintf(line, sizeof line, target, i);
        snprintf(req, sizeof req, "%s HTTP/1.1\r\nHost: x\r\n\r\n", line);
        strcat(pipeline, req);
    }
    strcat(pipeline, tail);
    send_all(fd, pipeline);
    usleep(300 * 1000);
    for (int i = 0; i < n; i++) {
        char x[16];
        snprintf(x, sizeof x, "%d", i);
        expect_answer(fd, x, big_body, BIG_LEN);
    }
}

/* A body the handler reads: from the gate's hold when it came with its
 * head, else through nng; answered with the body echoed and X-Taken. */
static atomic_int taken;

typedef struct body_read {
    nng_aio *handler, *aio;
    nng_http_conn *conn;
    char buf[64];
    size_t len;
} body_read;

static void echo(nng_aio *handler, nng_http_conn *conn, const char *body, size_t len, int from_gate)
{
    const char *h[] = {"X-N", "post", "X-Taken", from_gate ? "1" : "0", NULL};
    ons_httpd_pending p = {.aio = handler, .conn = conn};
    ck_assert_int_eq(ons_httpd_finish_direct(&p, 200, h, "text/plain", body, len), 1);
}

static void body_done(void *arg)
{
    body_read *b = arg;
    ck_assert_int_eq(nng_aio_result(b->aio), 0);
    echo(b->handler, b->conn, b->buf, b->len, 0);
    nng_aio_reap(b->aio);
    free(b);
}

static void body_cb(nng_aio *aio)
{
    nng_http_req *req = nng_aio_get_input(aio, 0);
    nng_http_conn *conn = nng_aio_get_input(aio, 2);
    const char *cl = nng_http_req_get_header(req, "Content-Length");
    if (!cl) {
        direct_cb(aio);
        return;
    }
    body_read *b = calloc(1, sizeof *b);
    b->handler = aio;
    b->conn = conn;
    b->len = strtoul(cl, NULL, 10);
    ck_assert_uint_le(b->len, sizeof b->buf);
    if (ons_httpd_take_body(conn, b->buf, b->len) == (ssize_t)b->len) {
        atomic_fetch_add(&taken, 1);
        echo(aio, conn, b->buf, b->len, 1);
        free(b);
        return;
    }
    ck_assert_int_eq(nng_aio_alloc(&b->aio, body_done, b), 0);
    nng_iov iov = {.iov_buf = b->buf, .iov_len = b->len};
    ck_assert_int_eq(nng_aio_set_iov(b->aio, 1, &iov), 0);
    ons_httpd_read_body(conn, b->aio);
}

static int start_gated_server(nng_http_server **srv, int hook);

/* Starts the body_cb server on a free port with the gate in front of it;
 * the counters start at 0. Returns the port. */
static int start_direct_server(nng_http_server **srv)
{
    return start_gated_server(srv, 0);
}

/* The gate's reader threads for the next start_gated_server (0: answers
 * at the gate on nng's thread only), and its test-only control. */
static int gate_threads, gate_unparked, gate_conn_kept, later_unheld;

/* Starts the gate in front of the server listening on port, with the
 * knobs above (the counters are left as they are). */
static void gate_start_on(int port, int hook)
{
    ons_httpd_gate_opts go = {.max_connections = 64,
                              .reserved_fds = 16,
                              .max_request_line = 4096,
                              .max_head = 8000,
                              .header_timeout_ms = 10000,
                              .idle_timeout_ms = 10000,
                              .crowded_timeout_ms = 10000,
                              .answer = hook ? gate_hook : NULL,
                              .answer_threads = gate_threads,
                              .answer_later = hook,
                              .debug_later_unheld = later_unheld,
                              .debug_hold_unparked = gate_unparked,
                              .debug_conn_kept_at_shutdown = gate_conn_kept};
    ck_assert_int_eq(ons_httpd_gate_start(&go, port), 0);
}

static int start_gated_server(nng_http_server **srv, int hook)
{
    atomic_store(&at_gate, 0);
    atomic_store(&on_gate_threads, 0);
    atomic_store(&answers, 0);
    atomic_store(&on_socket, 0);
    atomic_store(&taken, 0);
    atomic_store(&later_taken, 0);
    atomic_store(&later_sent, 0);
    for (size_t i = 0; i < BIG_LEN; i++)
        big_body[i] = (char)('a' + i * 7 % 26);
    int port = free_port();
    ck_assert_int_eq(ons_httpd_listen("127.0.0.1", port, 0, body_cb, NULL, srv), 0);
    gate_start_on(port, hook);
    return port;
}

static void stop_direct_server(nng_http_server **srv)
{
    ons_httpd_close(srv);
    ons_httpd_gate_stop();
}

/* One request at a time: the first answer goes through nng's write, which
 * tells the gate the connection's socket; the next are sent on it at once. */
START_TEST(direct_answers_go_on_the_socket)
{
    nng_http_server *srv = NULL;
    int fd = dial(start_direct_server(&srv), 0);
    for (int i = 0; i < 5; i++) {
        char n[8], req[96];
        snprintf(n, sizeof n, "%d", i);
        snprintf(req, sizeof req, "GET /small?n=%s HTTP/1.1\r\nHost: x\r\n\r\n", n);
        send_all(fd, req);
        expect_answer(fd, n, "hello", 5);
    }
    ck_assert_int_eq(atomic_load(&answers), 5);
    ck_assert_int_eq(atomic_load(&on_socket), 4);
    close(fd);
    stop_direct_server(&srv);
}
END_TEST

/* A client that pipelines large answers and reads nothing for a while (a
 * 4 KiB receive buffer): the socket takes part of an answer, the rest
 * waits in nng's write queue; every answer arrives whole, in order. */
START_TEST(direct_answers_past_a_full_send_buffer_in_order)
{
    nng_http_server *srv = NULL;
    int fd = dial(start_direct_server(&srv), 4096);
    pipeline_bigs(fd, "GET /big?n=%d", 8, "GET /small?n=last HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_answer(fd, "last", "hello", 5);
    ck_assert_int_eq(atomic_load(&on_socket), 8); /* all but the connection's first */
    close(fd);
    stop_direct_server(&srv);
}
END_TEST

/* nng shuts a closing connection's socket down, frees its nng_http_conn
 * and closes the descriptor later (its reaper): from the shutdown on, the
 * gate finds no socket for that conn, or a new connection given the freed
 * conn's address was answered on the old socket (EPIPE) and closed with no
 * answer (tests/integration/test_ingress_back_to_back.py). Control
 * (debug_conn_kept_at_shutdown, the code before): still found after the
 * shutdown. */
START_TEST(a_shut_down_socket_is_not_found_by_its_conn)
{
    for (int control = 0; control <= 1; control++) {
        gate_conn_kept = control;
        atomic_store(&shut_before, -2);
        atomic_store(&shut_after, -2);
        nng_http_server *srv = NULL;
        int fd = dial(start_direct_server(&srv), 0);
        send_all(fd, "GET /small?n=0 HTTP/1.1\r\nHost: x\r\n\r\n");
        expect_answer(fd, "0", "hello", 5); /* through nng: the gate learns the socket */
        send_all(fd, "GET /shut HTTP/1.1\r\nHost: x\r\n\r\n");
        char c;
        ck_assert_int_le(recv(fd, &c, 1, 0), 0); /* closed with no answer */
        for (int i = 0; i < 200 && atomic_load(&shut_before) == -2; i++)
            usleep(10 * 1000);
        ck_assert_int_ge(atomic_load(&shut_before), 0);
        ck_assert_int_eq(atomic_load(&shut_after), control ? atomic_load(&shut_before) : -1);
        close(fd);
        stop_direct_server(&srv);
    }
    gate_conn_kept = 0;
}
END_TEST

/* Small bodies, each POST sent whole with its head: the first is read
 * through nng (which tells the gate the socket), the gate holds the next
 * ones for the handler. Then a pipeline in one write, GET, POST, POST,
 * GET: the first POST's body is held, the rest given to nng; every body
 * and answer in order either way. */
START_TEST(small_bodies_are_held_with_their_head)
{
    nng_http_server *srv = NULL;
    int fd = dial(start_direct_server(&srv), 0);
    for (int i = 0; i < 4; i++) {
        char req[160], body[16];
        snprintf(body, sizeof body, "{\"q\":%d}", i);
        snprintf(req, sizeof req, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
                 strlen(body), body);
        send_all(fd, req);
        expect_answer(fd, "post", body, strlen(body));
    }
    ck_assert_int_eq(atomic_load(&taken), 3);
    send_all(fd, "GET /small?n=a HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nfirst"
                 "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nsecond"
                 "GET /small?n=b HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_answer(fd, "a", "hello", 5);
    expect_answer(fd, "post", "first", 5);
    expect_answer(fd, "post", "second", 6);
    expect_answer(fd, "b", "hello", 5);
    ck_assert_int_eq(atomic_load(&taken), 4);
    close(fd);
    stop_direct_server(&srv);
}
END_TEST

/* Answers at the gate (gate_hook): one request at a time, every "/g/" one
 * is answered there, none reaches nng. Then a client with a 4 KiB receive
 * buffer pipelines large answers at the gate, requests for nng and more for
 * the gate, and reads nothing for a while: the socket takes the first
 * answer in part, the gate keeps its rest and leaves the other requests to
 * nng, whose answers wait behind that rest; all arrive whole, in order.
 * With gate_hook off (the control) nng answers all. */
static void gate_answers_in_order(int threads)
{
    gate_threads = threads;
    for (int hook = 1; hook >= 0; hook--) {
        nng_http_server *srv = NULL;
        int fd = dial(start_gated_server(&srv, hook), 0);
        for (int i = 0; i < 5; i++) {
            char n[8], req[96];
            snprintf(n, sizeof n, "%d", i);
            snprintf(req, sizeof req, "GET /g/small/%s HTTP/1.1\r\nHost: x\r\n\r\n", n);
            send_all(fd, req);
            expect_answer(fd, n, "hello", 5);
        }
        ck_assert_int_eq(atomic_load(&at_gate), hook ? 5 : 0);
        ck_assert_int_eq(atomic_load(&answers), hook ? 0 : 5);
        /* the first may come before nng's first read ends (then nng's thread answers it) */
        int threaded = atomic_load(&on_gate_threads);
        ck_assert(hook && gate_threads ? threaded >= 4 : threaded == 0);
        close(fd);
        stop_direct_server(&srv);

        fd = dial(start_gated_server(&srv, hook), 4096);
        /* 6 MB for the gate: more than any send buffer takes at once */
        pipeline_bigs(fd, "GET /g/big/%d", 6,
                      "GET /small?n=6 HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /g/small/7 HTTP/1.1\r\nHost: x\r\n\r\n");
        expect_answer(fd, "6", "hello", 5);
        expect_answer(fd, "7", "hello", 5);
        /* hook: the first ones at the gate until the socket took one in
         * part (its rest kept); nng answers the others, "/g/small/7" too */
        int gated = atomic_load(&at_gate);
        ck_assert(hook ? gated >= 1 && gated < 6 : gated == 0);
        ck_assert_int_eq(gated + atomic_load(&answers), 8);
        close(fd);
        stop_direct_server(&srv);
    }
    gate_threads = 0;
}

START_TEST(answers_at_the_gate_in_order)
{
    gate_answers_in_order(0);
}
END_TEST

/* The same with the gate's own reader threads: every answer at the gate
 * is made on one of them, in the same order. */
START_TEST(answers_at_the_gate_threads_in_order)
{
    gate_answers_in_order(2);
}
END_TEST

/* Reads one whole answer from fd: its X-N value into xn and its body into
 * body (NUL-terminated; both at most cap bytes). */
static void read_answer(int fd, char *xn, char *body, size_t cap)
{
    char buf[4096];
    size_t have = 0, head = 0, want = 0;
    for (;;) {
        ck_assert_uint_lt(have, sizeof buf - 1);
        ssize_t k = recv(fd, buf + have, head ? want - have : 1, 0);
        ck_assert_msg(k > 0, "the connection ended after %zu bytes", have);
        have += (size_t)k;
        if (!head && have >= 4 && memcmp(buf + have - 4, "\r\n\r\n", 4) == 0) {
            buf[have] = '\0';
            head = have;
            const char *cl = strstr(buf, "Content-Length: "), *x = strstr(buf, "\r\nX-N: ");
            ck_assert_ptr_nonnull(cl);
            ck_assert_ptr_nonnull(x);
            size_t xl = strcspn(x + 7, "\r");
            ck_assert_uint_lt(xl, cap);
            memcpy(xn, x + 7, xl);
            xn[xl] = '\0';
            want = head + strtoul(cl + 16, NULL, 10);
            ck_assert_uint_lt(want - head, cap);
        }
        if (head && have == want)
            break;
    }
    memcpy(body, buf + head, want - head);
    body[want - head] = '\0';
}

/* The gate's reader threads (http.gate_threads) with many connections at
 * once: each gets pipelines of a request answered at the gate, a POST with
 * a body, one for nng and another for the gate, sometimes with the first
 * head sent in two pieces; every answer arrives in order on its
 * connection, and the answers at the gate ran on the gate's threads. */
START_TEST(gate_threads_keep_each_connection_in_order)
{
    gate_threads = 2;
    nng_http_server *srv = NULL;
    int port = start_gated_server(&srv, 1);
    enum { CONNS = 16, ROUNDS = 12 };
    int fds[CONNS];
    for (int c = 0; c < CONNS; c++)
        fds[c] = dial(port, 0);
    for (int r = 0; r < ROUNDS; r++) {
        for (int c = 0; c < CONNS; c++) {
            char req[512], body[16];
            snprintf(body, sizeof body, "{\"c\":%d}", c);
            int n = snprintf(req, sizeof req,
                             "GET /g/small/a%d HTTP/1.1\r\nHost: x\r\n\r\n"
                             "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s"
                             "GET /small?n=b%d HTTP/1.1\r\nHost: x\r\n\r\n"
                             "GET /g/small/c%d HTTP/1.1\r\nHost: x\r\n\r\n",
                             r, strlen(body), body, r, r);
            ck_assert_int_lt(n, (int)sizeof req);
            if (r % 3 == 2) {
                /* a head in two pieces: the gate's read ends inside it */
                char first[16];
                snprintf(first, sizeof first, "%.9s", req);
                send_all(fds[c], first);
                usleep(2000);
                send_all(fds[c], req + 9);
            } else if (r % 3 == 1) {
                /* one request at a time */
                char one[96];
                snprintf(one, sizeof one, "GET /g/small/a%d HTTP/1.1\r\nHost: x\r\n\r\n", r);
                send_all(fds[c], one);
                char a[8];
                snprintf(a, sizeof a, "a%d", r);
                expect_answer(fds[c], a, "hello", 5);
                send_all(fds[c], strstr(req, "POST"));
            } else {
                send_all(fds[c], req);
            }
        }
        for (int c = 0; c < CONNS; c++) {
            char a[8], b[8], cc[8], body[16];
            snprintf(a, sizeof a, "a%d", r);
            snprintf(b, sizeof b, "b%d", r);
            snprintf(cc, sizeof cc, "c%d", r);
            snprintf(body, sizeof body, "{\"c\":%d}", c);
            if (r % 3 != 1)
                expect_answer(fds[c], a, "hello", 5);
            expect_answer(fds[c], "post", body, strlen(body));
            expect_answer(fds[c], b, "hello", 5);
            expect_answer(fds[c], cc, "hello", 5);
        }
    }
    ck_assert_int_ge(atomic_load(&on_gate_threads), CONNS);
    for (int c = 0; c < CONNS; c++)
        close(fds[c]);
    stop_direct_server(&srv);
    gate_threads = 0;
}
END_TEST

/* A body that looks like a request, sent after its head while nng waits
 * for it, is the body: the gate's threads take only connections parked
 * between requests. Control (debug_hold_unparked, the gate's threads take
 * any connection nng arms for input): the gate answers the body as a
 * request of its own (a smuggled request). */
START_TEST(gate_threads_leave_a_body_to_nng)
{
    const char *inner = "GET /g/small/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    for (int control = 0; control <= 1; control++) {
        gate_threads = 2;
        gate_unparked = control;
        nng_http_server *srv = NULL;
        int fd = dial(start_gated_server(&srv, 1), 0);
        send_all(fd, "GET /g/small/first HTTP/1.1\r\nHost: x\r\n\r\n");
        expect_answer(fd, "first", "hello", 5);
        char head[128];
        snprintf(head, sizeof head, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
                 strlen(inner));
        send_all(fd, head);
        usleep(200 * 1000); /* nng has the head and waits for the body */
        send_all(fd, inner);
        char xn[64], body[256];
        read_answer(fd, xn, body, sizeof body);
        if (!control) {
            ck_assert_str_eq(xn, "post");
            ck_assert_str_eq(body, inner);
        } else {
            ck_assert_str_eq(xn, "smuggled");
            /* end nng's body read so the server stops cleanly */
            char pad[64];
            memset(pad, 'x', strlen(inner));
            pad[strlen(inner)] = '\0';
            send_all(fd, pad);
            read_answer(fd, xn, body, sizeof body);
            ck_assert_str_eq(xn, "post");
        }
        close(fd);
        stop_direct_server(&srv);
    }
    gate_threads = gate_unparked = 0;
}
END_TEST

/* A fresh connection gets a pipeline of gate and nng answers in order. */
static int still_answers(int port)
{
    int fd = dial(port, 0);
    send_all(fd, "GET /g/small/1 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /small?n=2 HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /g/small/3 HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_answer(fd, "1", "hello", 5);
    expect_answer(fd, "2", "hello", 5);
    expect_answer(fd, "3", "hello", 5);
    return fd;
}

/* Clients that leave while the gate's threads hold their connections:
 * closing right after a request, after a pipeline, after a half close;
 * every one is let go (ASan: no use of a freed or reused descriptor's
 * state). Then clients that reset the connection right after a request
 * (nng 1.5.2 lets go of some of those only at the idle timeout, with or
 * without the gate's threads): the server goes on answering in order. */
START_TEST(gate_threads_let_go_of_closed_connections)
{
    gate_threads = 2;
    nng_http_server *srv = NULL;
    int port = start_gated_server(&srv, 1);
    for (int i = 0; i < 300; i++) {
        /* The cap is 64 connections: under load the server lets go of
         * closed ones slower than this loop makes them, so it waits for
         * them every 40 (the same check as at the end, on the way). */
        for (int t = 0; i % 40 == 0 && t < 300 && ons_httpd_gate_open() > 8; t++)
            usleep(10 * 1000);
        int fd = dial(port, 0);
        switch (i % 3) {
        case 0:
            send_all(fd, "GET /g/small/x HTTP/1.1\r\nHost: x\r\n\r\n");
            break;
        case 1:
            send_all(fd, "GET /g/small/x HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /small?n=y HTTP/1.1\r\nHost: x\r\n\r\n"
                         "GET /g/small/z HTTP/1.1\r\nHost: x\r\n\r\n");
            break;
        default:
            send_all(fd, "GET /g/small/x HTTP/1.1\r\nHost: x\r\n\r\n");
            expect_answer(fd, "x", "hello", 5);
            shutdown(fd, SHUT_WR);
            break;
        }
        close(fd);
    }
    int fd = still_answers(port);
    int open_now = 0;
    for (int t = 0; t < 300 && (open_now = ons_httpd_gate_open()) > 1; t++)
        usleep(10 * 1000);
    ck_assert_int_eq(open_now, 1);
    ck_assert_int_gt(atomic_load(&on_gate_threads), 0);
    close(fd);
    for (int i = 0; i < 40; i++) {
        fd = dial(port, 0);
        struct linger l = {.l_onoff = 1, .l_linger = 0}; /* close sends a reset */
        ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l), 0);
        send_all(fd, i % 2 ? "GET /g/big/x HTTP/1.1\r\nHost: x\r\n\r\n"
                           : "GET /g/small/x HTTP/1.1\r\nHost: x\r\n\r\n");
        usleep(i % 4 < 2 ? 1000 : 0);
        close(fd);
    }
    close(still_answers(port));
    stop_direct_server(&srv);
    gate_threads = 0;
}
END_TEST

/* An answer the socket takes only in part goes on as the client reads it
 * (the flusher), not a socket's worth per tick of the sweeper (250 ms) or
 * at nng's next write, which a client waiting for its answer never
 * causes. 40 MB is ten socket-fulls or more: at a tick each they would
 * take 2.5 s or more; as the client reads, well under a second on this
 * box (the bound leaves room for a loaded one). */
START_TEST(a_kept_answer_goes_as_the_client_reads)
{
    nng_http_server *srv = NULL;
    int fd = dial(start_gated_server(&srv, 1), 0);
    send_all(fd, "GET /g/huge/0 HTTP/1.1\r\nHost: x\r\n\r\n");
    static char buf[1 << 16];
    size_t have = 0, body = 0;
    unsigned last4 = 0; /* the head's last four bytes, read one by one */
    size_t wrong = 0;   /* reads whose bytes are not the body's */
    int64_t t0 = ons_httpd_mono_ns();
    while (!body || have < body + HUGE_LEN) {
        ssize_t k = recv(fd, buf, body ? sizeof buf : 1, 0);
        ck_assert_msg(k > 0, "the answer ended after %zu bytes (head %zu)", have, body);
        if (body) /* one check at the end: a ck_assert per read costs more than the read */
            wrong += memcmp(buf, huge_body() + (have - body), (size_t)k) != 0;
        have += (size_t)k;
        last4 = body ? last4 : last4 << 8 | (unsigned char)buf[0];
        if (!body && last4 == 0x0d0a0d0a) /* "\r\n\r\n" */
            body = have;
    }
    double ms = (double)(ons_httpd_mono_ns() - t0) / 1e6;
    ck_assert_uint_eq(wrong, 0);
    ck_assert_int_eq(atomic_load(&at_gate), 1);
    ck_assert_msg(ms < 2000, "40 MB kept in part took %.0f ms", ms);
    close(fd);
    stop_direct_server(&srv);
}
END_TEST

/* Waits (at most 3 s) until ons_httpd_unsent_bytes() is at least lo and at
 * most hi; returns it. */
static long long unsent_within(long long lo, long long hi)
{
    long long v = ons_httpd_unsent_bytes();
    for (int t = 0; t < 300 && (v < lo || v > hi); t++) {
        usleep(10 * 1000);
        v = ons_httpd_unsent_bytes();
    }
    return v;
}

/* ons_httpd_unsent_bytes (http.unsent_budget's count): an answer made at
 * the gate that the socket took in part counts its kept rest while the
 * client does not read, and nothing once the client read it all; the
 * same when the client leaves without reading (the close drops it). */
START_TEST(unsent_bytes_follow_the_unread_answer)
{
    nng_http_server *srv = NULL;
    int port = start_gated_server(&srv, 1);
    ck_assert_int_eq(unsent_within(0, 0), 0);
    for (int leave = 0; leave < 2; leave++) {
        int fd = dial(port, 4096);
        send_all(fd, "GET /g/huge/0 HTTP/1.1\r\nHost: x\r\n\r\n");
        long long v = unsent_within(HUGE_LEN / 2, HUGE_LEN + 4096);
        ck_assert_msg(v >= HUGE_LEN / 2 && v <= HUGE_LEN + 4096, "unsent %lld", v);
        static char buf[1 << 16];
        for (size_t have = 0; !leave && have < HUGE_LEN;) {
            ssize_t k = recv(fd, buf, sizeof buf, 0);
            ck_assert_int_gt(k, 0);
            have += (size_t)k;
        }
        close(fd);
        ck_assert_int_eq(unsent_within(0, 0), 0);
    }
    stop_direct_server(&srv);
}
END_TEST

/* Reservations for answers whose socket is not known yet (fd -1, a fresh
 * connection's answer): past the 64 the table keeps, the rest are still
 * counted (an overflow total), so answers reserved at once never pass a
 * budget together, and the sweeper releases them all once no send did
 * (2 s). Before, the 65th on came back 2 and its caller released it at
 * once: 70 reserved against a budget of 66 all passed, 64 counted. */
START_TEST(reservations_past_the_float_table_are_counted)
{
    nng_http_server *srv = NULL;
    (void)start_gated_server(&srv, 1);
    ck_assert_int_eq(unsent_within(0, 0), 0);
    const long long len = 1 << 20, budget = 66 * len;
    int passed = 0;
    for (int i = 0; i < 70; i++) {
        int how = ons_httpd_unsent_reserve(len, budget, -1);
        if (how == 2)
            ons_httpd_unsent_release(len); /* as the ingress's caller does */
        passed += how != 0;
    }
    ck_assert_int_eq(passed, 66);
    ck_assert_int_eq(ons_httpd_unsent_bytes(), budget);
    usleep(2100 * 1000); /* FLOAT_MAX_MS, then the sweeper's tick */
    ck_assert_int_eq(unsent_within(0, 0), 0);
    stop_direct_server(&srv);
}
END_TEST

/* ---- requests taken at the gate and answered later (a join) ------------------ */

/* Waits (at most 3 s) until every request taken for later was answered. */
static void wait_later_sent(void)
{
    for (int t = 0; t < 300 && atomic_load(&later_sent) < atomic_load(&later_taken); t++)
        usleep(10 * 1000);
    ck_assert_int_eq(atomic_load(&later_sent), atomic_load(&later_taken));
}

/* A POST with its body taken at the gate and answered 150 ms later from
 * another thread, with a gate GET, an nng GET and an nng POST pipelined
 * behind it in the same write: the answers come in the requests' order
 * (the gate holds the connection until the later answer is sent). One at
 * a time too. Control (debug_later_unheld: what came behind is read on
 * at once): the GET behind it is answered first. */
static void later_keeps_order(int threads, int control)
{
    gate_threads = threads;
    later_unheld = control;
    nng_http_server *srv = NULL;
    int fd = dial(start_gated_server(&srv, 1), 0);
    for (int i = 0; i < 3 && !control; i++) {
        char req[160], n[8];
        snprintf(n, sizeof n, "one%d", i);
        snprintf(req, sizeof req,
                 "POST /later/%s/0 HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{\"a\":%d}", n,
                 i);
        send_all(fd, req);
        char body[8];
        snprintf(body, sizeof body, "{\"a\":%d}", i);
        expect_answer(fd, n, body, 7);
    }
    send_all(fd, "POST /later/p/150 HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n{\"p\":1}"
                 "GET /g/small/q HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /small?n=r HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    char xn[64], body[256];
    read_answer(fd, xn, body, sizeof body);
    if (control) {
        ck_assert_str_eq(xn, "q"); /* before the POST's: out of order */
        for (int i = 0; i < 3; i++)
            read_answer(fd, xn, body, sizeof body);
    } else {
        ck_assert_str_eq(xn, "p");
        ck_assert_str_eq(body, "{\"p\":1}");
        expect_answer(fd, "q", "hello", 5);
        expect_answer(fd, "r", "hello", 5);
        expect_answer(fd, "post", "hello", 5);
        ck_assert_int_eq(atomic_load(&later_taken), 4);
    }
    wait_later_sent();
    close(fd);
    stop_direct_server(&srv);
    gate_threads = later_unheld = 0;
}

START_TEST(later_answers_keep_order)
{
    later_keeps_order(0, 0);
}
END_TEST

START_TEST(later_answers_keep_order_threads)
{
    later_keeps_order(2, 0);
}
END_TEST

START_TEST(later_answers_control_unheld)
{
    later_keeps_order(0, 1);
    later_keeps_order(2, 1);
}
END_TEST

/* A request taken for later and answered inside the hook that took it
 * (ingress: the claimer's queue full, a 503 at once), on nng's thread (a
 * connection's first read) and on the gate's threads (the next ones, which
 * hold the connection's lock then): answered, in order with what follows,
 * and the connection goes on. */
START_TEST(later_answered_inside_the_hook)
{
    gate_threads = 2;
    nng_http_server *srv = NULL;
    int fd = dial(start_gated_server(&srv, 1), 0);
    for (int i = 0; i < 4; i++) {
        char n[8], req[256];
        snprintf(n, sizeof n, "s%d", i);
        snprintf(req, sizeof req,
                 "POST /later/%s/-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
                 "GET /g/small/t%d HTTP/1.1\r\nHost: x\r\n\r\n",
                 n, i);
        send_all(fd, req);
        expect_answer(fd, n, "{}", 2);
        char t[8];
        snprintf(t, sizeof t, "t%d", i);
        expect_answer(fd, t, "hello", 5);
    }
    ck_assert_int_eq(atomic_load(&later_sent), 4);
    close(fd);
    stop_direct_server(&srv);
    gate_threads = 0;
}
END_TEST

/* A POST whose head and body come in two reads, or whose body is not
 * complete in the first, is not taken at the gate: nng reads it whole and
 * answers it, and the connection goes on (a later POST is taken again). */
START_TEST(later_leaves_split_bodies_to_nng)
{
    gate_threads = 2;
    nng_http_server *srv = NULL;
    int fd = dial(start_gated_server(&srv, 1), 0);
    const char *head = "POST /later/s/0 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n";
    send_all(fd, head);
    usleep(50 * 1000);
    send_all(fd, "0123456789");
    expect_answer(fd, "post", "0123456789", 10);
    send_all(fd, "POST /later/s/0 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234");
    usleep(50 * 1000);
    send_all(fd, "56789");
    expect_answer(fd, "post", "0123456789", 10);
    ck_assert_int_eq(atomic_load(&later_taken), 0);
    send_all(fd, "POST /later/t/0 HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789");
    expect_answer(fd, "t", "0123456789", 10);
    ck_assert_int_eq(atomic_load(&later_taken), 1);
    wait_later_sent();
    close(fd);
    stop_direct_server(&srv);
    gate_threads = 0;
}
END_TEST

/* Clients that leave before their later answer (250 ms): the answer is
 * dropped, never sent to a new connection that got the same descriptor
 * meanwhile (each new one gets exactly its own answers, and nothing more
 * once the late ones were made), and every connection is let go. */

/* The n connections got no byte more than their answers (a late answer
 * that went to the wrong connection would show here); closes them. */
static void close_with_nothing_more(const int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        char c;
        ssize_t k = recv(fds[i], &c, 1, MSG_DONTWAIT);
        ck_assert_msg(k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK),
                      "connection %d got %zd more bytes", i, k);
        close(fds[i]);
    }
}

START_TEST(later_answer_after_the_client_left)
{
    for (int threads = 0; threads <= 2; threads += 2) {
        gate_threads = threads;
        nng_http_server *srv = NULL;
        int port = start_gated_server(&srv, 1);
        for (int i = 0; i < 8; i++) {
            int fd = dial(port, 0);
            send_all(fd, "POST /later/gone/250 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
                         "GET /g/small/behind HTTP/1.1\r\nHost: x\r\n\r\n");
            usleep(5 * 1000);
            close(fd);
        }
        usleep(50 * 1000); /* nng closes them; their descriptors are free again */
        int fds[8];
        for (int i = 0; i < 8; i++) {
            fds[i] = dial(port, 0);
            char req[96], n[8];
            snprintf(n, sizeof n, "n%d", i);
            snprintf(req, sizeof req, "GET /g/small/%s HTTP/1.1\r\nHost: x\r\n\r\n", n);
            send_all(fds[i], req);
            expect_answer(fds[i], n, "hello", 5);
        }
        wait_later_sent();
        ck_assert_int_eq(atomic_load(&later_taken), 8);
        close_with_nothing_more(fds, 8);
        close(still_answers(port));
        int open_now = 0;
        for (int t = 0; t < 300 && (open_now = ons_httpd_gate_open()) > 0; t++)
            usleep(10 * 1000);
        ck_assert_int_eq(open_now, 0);
        stop_direct_server(&srv);
    }
    gate_threads = 0;
}
END_TEST

/* The server stops (nng closes every connection) while later answers are
 * owed; a new server's clients, on the same descriptors, whose own later
 * answers are owed when the old ones are made, get only theirs: an answer
 * for a closed connection is dropped (the slot's generation), never sent
 * on a new one. (Without the generation check the old answers come
 * first.) */
START_TEST(later_answer_after_the_server_stopped)
{
    nng_http_server *srv = NULL;
    int port = start_gated_server(&srv, 1);
    int old[8];
    for (int i = 0; i < 8; i++) {
        old[i] = dial(port, 0);
        send_all(old[i],
                 "POST /later/stopped/300 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
    }
    for (int t = 0; t < 100 && atomic_load(&later_taken) < 8; t++)
        usleep(10 * 1000);
    ck_assert_int_eq(atomic_load(&later_taken), 8);
    stop_direct_server(&srv); /* the answers are still owed */
    for (int i = 0; i < 8; i++)
        close(old[i]);
    nng_http_server *srv2 = NULL;
    ons_httpd_listen("127.0.0.1", port = free_port(), 0, body_cb, NULL, &srv2);
    gate_start_on(port, 1); /* later_sent kept: the old answers count too */
    /* the new clients' own answers are owed when the old ones are made */
    int fds[8];
    for (int i = 0; i < 8; i++) {
        fds[i] = dial(port, 0);
        send_all(fds[i], "POST /later/mine/600 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n"
                         "mine");
    }
    for (int i = 0; i < 8; i++)
        expect_answer(fds[i], "mine", "mine", 4);
    for (int t = 0; t < 300 && atomic_load(&later_sent) < 16; t++)
        usleep(10 * 1000);
    ck_assert_int_eq(atomic_load(&later_sent), 16);
    close_with_nothing_more(fds, 8);
    stop_direct_server(&srv2);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"route", route_finds_rows_and_params},
        {"route_refusals", route_refuses_in_order},
        {"stats", stats_count_by_route_and_status},
        {"worker_endpoint", worker_endpoint_serves_metrics_and_health},
        {"copy_and_ids", copy_and_request_ids_without_printf},
        {"direct_rules", direct_reply_rules},
        {"direct_on_socket", direct_answers_go_on_the_socket},
        {"direct_full_buffer", direct_answers_past_a_full_send_buffer_in_order},
        {"direct_shut_forgotten", a_shut_down_socket_is_not_found_by_its_conn},
        {"held_bodies", small_bodies_are_held_with_their_head},
        {"gate_answers", answers_at_the_gate_in_order},
        {"gate_threads_answers", answers_at_the_gate_threads_in_order},
        {"gate_threads_order", gate_threads_keep_each_connection_in_order},
        {"gate_threads_body", gate_threads_leave_a_body_to_nng},
        {"gate_threads_close", gate_threads_let_go_of_closed_connections},
        {"gate_kept_answer", a_kept_answer_goes_as_the_client_reads},
        {"unsent_bytes", unsent_bytes_follow_the_unread_answer},
        {"float_overflow", reservations_past_the_float_table_are_counted},
        {"later_order", later_answers_keep_order},
        {"later_order_threads", later_answers_keep_order_threads},
        {"later_control_unheld", later_answers_control_unheld},
        {"later_split_bodies", later_leaves_split_bodies_to_nng},
        {"later_inside_the_hook", later_answered_inside_the_hook},
        {"later_client_left", later_answer_after_the_client_left},
        {"later_server_stopped", later_answer_after_the_server_stopped},
    };
    return ons_check_run("httpd", cases, sizeof cases / sizeof *cases, 30);
}
