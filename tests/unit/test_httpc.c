/* test_httpc.c - the HTTP client (common/httpc.h) against a scripted
 * server: URLs, the request it writes, the three ways an answer ends
 * (Content-Length, chunked, the connection closing), Retry-After, malformed
 * and oversized answers, the deadline, and the pool's keep-alive reuse,
 * its one retry after a stale connection and its per-request timeout. */
#include "common/err.h"
#include "common/httpc.h"
#include "fake_http.h"

#include "tests/check_run.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static ons_httpc_url url_of(const fake_http *f, const char *base)
{
    char s[128];
    ons_httpc_url u;
    snprintf(s, sizeof s, "http://127.0.0.1:%d%s", f->port, base);
    ck_assert_int_eq(ons_httpc_url_parse(s, &u), 0);
    return u;
}

START_TEST(url_parse)
{
    ons_httpc_url u;
    ck_assert_int_eq(ons_httpc_url_parse("http://gw.local:8089/api/", &u), 0);
    ck_assert_str_eq(u.host, "gw.local");
    ck_assert_str_eq(u.port, "8089");
    ck_assert_str_eq(u.base, "/api");
    ck_assert_int_eq(ons_httpc_url_parse("http://gw", &u), 0);
    ck_assert_str_eq(u.port, "80");
    ck_assert_str_eq(u.base, "");
    ck_assert_int_eq(ons_httpc_url_parse("https://gw", &u), ONS_EINVAL);
    ck_assert_int_eq(ons_httpc_url_parse("http://:80", &u), ONS_EINVAL);
    ck_assert_int_eq(ons_httpc_url_parse("http://gw:", &u), ONS_EINVAL);
    ck_assert_int_eq(ons_httpc_url_parse("http://gw:123456789", &u), ONS_EINVAL);
}
END_TEST

/* One blocking call against one scripted answer; returns the call's rc. */
static int call_once(const char *answer, int silent_ms, int timeout_ms, size_t max,
                     ons_httpc_resp *resp, char *request, size_t request_cap)
{
    fake_step step = {answer, 1, silent_ms};
    fake_http f;
    fake_start(&f, &step, 1);
    ons_httpc_url u = url_of(&f, "/base/");
    const char *more[] = {"X-Trace: 7", NULL};
    ons_httpc_req req = {.method = "POST",
                         .path = "/v1/charges",
                         .token = "k3y",
                         .idem_key = "idem-1",
                         .headers = more,
                         .body = "{\"a\":1}"};
    int rc = ons_httpc_call(&u, &req, timeout_ms, max, resp);
    fake_stop(&f);
    if (request)
        snprintf(request, request_cap, "%s", f.last_request);
    return rc;
}

START_TEST(call_writes_the_request_and_reads_content_length)
{
    ons_httpc_resp r;
    char req[8192];
    ck_assert_int_eq(call_once("HTTP/1.1 201 Created\r\nContent-Length: 5\r\nRetry-After: 3\r\n\r\n"
                               "hello",
                               0, 2000, 4096, &r, req, sizeof req),
                     0);
    ck_assert_int_eq(r.status, 201);
    ck_assert_int_eq(r.retry_after_s, 3);
    ck_assert_uint_eq(r.body_len, 5);
    ck_assert_str_eq(r.body, "hello");
    free((void *)r.body);
    ck_assert_msg(strncmp(req, "POST /base/v1/charges HTTP/1.1\r\n", 32) == 0, "%s", req);
    ck_assert_ptr_nonnull(strstr(req, "\r\nConnection: close\r\n"));
    ck_assert_ptr_nonnull(strstr(req, "\r\nAuthorization: Bearer k3y\r\n"));
    ck_assert_ptr_nonnull(strstr(req, "\r\nIdempotency-Key: idem-1\r\n"));
    ck_assert_ptr_nonnull(strstr(req, "\r\nX-Trace: 7\r\n"));
    ck_assert_ptr_nonnull(strstr(req, "\r\nContent-Type: application/json\r\n"));
    ck_assert_ptr_nonnull(strstr(req, "\r\nContent-Length: 7\r\n\r\n{\"a\":1}"));
}
END_TEST

START_TEST(call_reads_chunked_and_until_close)
{
    ons_httpc_resp r;
    ck_assert_int_eq(call_once("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
                               0, 2000, 4096, &r, NULL, 0),
                     0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(r.retry_after_s, -1);
    ck_assert_str_eq(r.body, "abcdefg");
    ck_assert_uint_eq(r.body_len, 7);
    free((void *)r.body);
    ck_assert_int_eq(
        call_once("HTTP/1.0 503 Busy\r\n\r\nuntil the end", 0, 2000, 4096, &r, NULL, 0), 0);
    ck_assert_int_eq(r.status, 503);
    ck_assert_str_eq(r.body, "until the end");
    free((void *)r.body);
}
END_TEST

START_TEST(call_refuses_malformed_short_and_oversized_answers)
{
    ons_httpc_resp r;
    ck_assert_int_eq(call_once("SMTP ready\r\n\r\n", 0, 2000, 4096, &r, NULL, 0), ONS_EIO);
    ck_assert_int_eq(
        call_once("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 0, 2000, 4096, &r, NULL, 0),
        ONS_EIO);
    ck_assert_int_eq(
        call_once("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", 0, 2000, 4096, &r, NULL, 0),
        ONS_EIO);
    ck_assert_int_eq(call_once(NULL, 0, 2000, 4096, &r, NULL, 0), ONS_EIO);
}
END_TEST

START_TEST(call_keeps_its_deadline)
{
    ons_httpc_resp r;
    ck_assert_int_eq(
        call_once("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1500, 200, 4096, &r, NULL, 0),
        ONS_ETIMEDOUT);
    ons_httpc_url u;
    ck_assert_int_eq(ons_httpc_url_parse("http://127.0.0.1:1", &u), 0);
    ons_httpc_req req = {.method = "GET", .path = "/"};
    ck_assert_int_eq(ons_httpc_call(&u, &req, 500, 4096, &r), ONS_EIO); /* refused */
}
END_TEST

/* ---- the pool ---------------------------------------------------------------------------- */

typedef struct got {
    int n;
    int status[8];
    char body[8][64];
} got;

static void on_answer(void *arg, const ons_httpc_resp *r)
{
    got *g = arg;
    g->status[g->n] = r->status;
    snprintf(g->body[g->n], sizeof g->body[0], "%s", r->body);
    g->n++;
}

/* A pool of one connection to a scripted server, and what it answered. */
typedef struct rig {
    fake_http f;
    ons_httpc *h;
    got g;
    fake_step one; /* the script of rig_start_one */
} rig;

static void rig_start(rig *t, const fake_step *steps, int nsteps, int timeout_ms)
{
    memset(&t->g, 0, sizeof t->g);
    fake_start(&t->f, steps, nsteps);
    ons_httpc_opts o = {.host = "127.0.0.1",
                        .port = t->f.port,
                        .conns = 1,
                        .timeout_ms = timeout_ms,
                        .max_queue = 8,
                        .max_response = 4096};
    ck_assert_int_eq(ons_httpc_new(&o, &t->h), 0);
}

/* rig_start with a one-step script: an empty 200 after silent_ms, the
 * connection then kept open or (close_after) closed. */
static void rig_start_one(rig *t, int close_after, int silent_ms, int timeout_ms)
{
    t->one = (fake_step){"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", close_after, silent_ms};
    rig_start(t, &t->one, 1, timeout_ms);
}

/* Queues req n times and polls until every answer came. */
static void rig_send(rig *t, const ons_httpc_req *req, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(ons_httpc_request(t->h, req, on_answer, &t->g), 0);
    for (int i = 0; i < 400 && ons_httpc_pending(t->h) > 0; i++)
        ck_assert_int_eq(ons_httpc_poll(t->h, 10), 0);
    ck_assert_uint_eq(ons_httpc_pending(t->h), 0);
}

static void rig_stop(rig *t)
{
    ons_httpc_free(t->h);
    fake_stop(&t->f);
}

/* One GET of path gets one answer: a failure (status 0). */
static void get_fails(rig *t, const char *path)
{
    rig_send(t, &(ons_httpc_req){.method = "GET", .path = path}, 1);
    ck_assert_int_eq(t->g.n, 1);
    ck_assert_int_eq(t->g.status[0], 0);
}

START_TEST(pool_reuses_one_connection)
{
    fake_step steps[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", 0, 0},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb", 0, 0},
        {"HTTP/1.1 202 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nc", 1, 0}};
    rig t;
    rig_start(&t, steps, 3, 2000);
    rig_send(&t, &(ons_httpc_req){.method = "GET", .path = "/x"}, 3);
    ck_assert_int_eq(t.g.n, 3);
    ck_assert_str_eq(t.g.body[0], "a");
    ck_assert_str_eq(t.g.body[2], "c");
    ck_assert_int_eq(t.g.status[2], 202);
    ck_assert_int_eq(ons_httpc_connects(t.h), 1);
    ck_assert_ptr_null(strstr(t.f.last_request, "Connection: close"));
    rig_stop(&t);
}
END_TEST

START_TEST(pool_retries_once_after_a_stale_connection)
{
    /* The server keeps the connection after the first answer, then drops
     * the second request unanswered (an idle timeout racing the request):
     * the pool sends it again, once, on a fresh connection. */
    fake_step steps[] = {{"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na", 0, 0},
                         {NULL, 1, 0},
                         {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb", 1, 0}};
    rig t;
    rig_start(&t, steps, 3, 2000);
    ons_httpc_req req = {.method = "POST", .path = "/x", .idem_key = "k", .body = "{}"};
    rig_send(&t, &req, 1);
    rig_send(&t, &req, 1);
    ck_assert_int_eq(t.g.n, 2);
    ck_assert_int_eq(t.g.status[1], 200);
    ck_assert_str_eq(t.g.body[1], "b");
    ck_assert_int_eq(ons_httpc_connects(t.h), 2);
    ck_assert_int_eq(atomic_load(&t.f.served), 3);
    rig_stop(&t);
}
END_TEST

/* A fresh connection that fails is not retried: the request fails once. */
START_TEST(pool_does_not_retry_a_fresh_connection)
{
    fake_step steps[] = {{NULL, 1, 0}, {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1, 0}};
    rig t;
    rig_start(&t, steps, 2, 2000);
    get_fails(&t, "/");
    ck_assert_int_eq(atomic_load(&t.f.served), 1);
    rig_stop(&t);
}
END_TEST

START_TEST(pool_times_a_request_out)
{
    rig t;
    rig_start_one(&t, 1, 1000, 150);
    get_fails(&t, "/slow");
    rig_stop(&t);
}
END_TEST

START_TEST(pool_bounds_its_queue)
{
    rig t;
    rig_start_one(&t, 0, 0, 2000);
    ons_httpc_req req = {.method = "GET", .path = "/"};
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(ons_httpc_request(t.h, &req, on_answer, &t.g), 0);
    ck_assert_int_eq(ons_httpc_request(t.h, &req, on_answer, &t.g), ONS_EFULL);
    rig_stop(&t); /* queued callbacks are not called */
    ck_assert_int_eq(t.g.n, 0);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"url", url_parse},
        {"call_request", call_writes_the_request_and_reads_content_length},
        {"call_framing", call_reads_chunked_and_until_close},
        {"call_refusals", call_refuses_malformed_short_and_oversized_answers},
        {"call_deadline", call_keeps_its_deadline},
        {"pool_reuse", pool_reuses_one_connection},
        {"pool_stale_retry", pool_retries_once_after_a_stale_connection},
        {"pool_fresh_no_retry", pool_does_not_retry_a_fresh_connection},
        {"pool_timeout", pool_times_a_request_out},
        {"pool_queue", pool_bounds_its_queue},
    };
    return ons_check_run("httpc", cases, sizeof cases / sizeof *cases, 30);
}
