/*
 * fuzz_request.c - libFuzzer target for request validation in ingress: the
 * path (ids, route lookup), the query strings (catalog search, ticket
 * history cursors), the Idempotency-Key header and the JSON bodies, through
 * the real route handlers of ingress/routes_*.c and ingress/json_io.c.
 *
 * Input, as text:
 *   METHOD URI\n
 *   Idempotency-Key: value\n        (optional; other header lines ignored)
 *   \n
 *   body
 * In the URI, "{intent:N}", "{reservation:N}" and "{order:N}" become the
 * public id of seq N for the test user (queue/intent_id.c), so the fuzzer
 * gets past the ids' HMAC to what follows them.
 *
 * The target stands in for ingress/server.c, whose job is nng's: it builds a
 * real nng_http_req, then runs the steps of server.c's dispatch() in order
 * with the same functions (ons_httpd_route, ing_idem_key_valid, ons_httpd_body_check,
 * ons_httpd_body_parse) and calls the route's handler. The bearer token is
 * fuzz_jwt's: here the caller is user 42 with the first role the route
 * allows. Its ing_reply_* and ing_req_submit below replace server.c's (the
 * linker never pulls server.o out of onsale_ingress): a reply is checked and
 * dropped, a submitted job is freed without running (jobs talk to
 * PostgreSQL, Redis and Kafka). readyz and metrics read process state, take
 * no input, and are not called.
 *
 * Oracle, besides ASan/UBSan/LSan: each request is answered exactly once
 * (replied or submitted); every 4xx/5xx carries the API's error shape
 * {"error":{"code":"...","message":"..."}} as JSON; no 500.
 */
#include "common/err.h"
#include "common/httpd.h"
#include "ingress/cursor_cache.h"
#include "ingress/event_cache.h"
#include "ingress/event_view.h"
#include "ingress/json_io.h"
#include "ingress/routes.h"
#include "ingress/server.h"
#include "queue/intent_id.h"
#include "tests/reply_stubs.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SECRET     "fuzz-secret-0123456789abcdef"
#define IDS_SECRET "fuzz-ids-secret-0123456789abcdef"
#define USER_ID    42
#define MAX_BODY   16384
#define MAX_INPUT  65536

static ing_app app;
static nng_aio *aio;
static int answers;          /* replies + submissions of the current request */
static const char *cur_text; /* the current input, for failure messages */

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_request: %s\n  detail: %s\n  input: %s\n", what, detail ? detail : "-",
            cur_text ? cur_text : "-");
    abort();
}

/* ---- the stand-in for server.c ------------------------------------------------ */

/* An error reply must be {"error":{"code":"...","message":"...",...}}. */
static void check_error_body(int status, const char *text, size_t len)
{
    char detail[64];
    snprintf(detail, sizeof detail, "status %d", status);
    if (!text || !len)
        fail("an error reply without a body", detail);
    json_t *o = json_loadb(text, len, 0, NULL);
    json_t *e = json_object_get(o, "error");
    json_t *code = json_object_get(e, "code"), *msg = json_object_get(e, "message");
    int ok = json_is_object(e) && json_is_string(code) && json_string_length(code) > 0 &&
             json_is_string(msg) && json_string_length(msg) > 0;
    json_decref(o);
    if (!ok)
        fail("an error reply without the error shape", text);
}

void ing_reply_text(ing_req *r, int status, const char *content_type, const char *text, size_t len)
{
    answers++;
    if (status < 200 || status > 599)
        fail("a reply with an impossible status", NULL);
    if (status == 500)
        fail("a 500 from request validation", text);
    if (status >= 400) {
        if (!content_type || strcmp(content_type, "application/json") != 0)
            fail("an error reply that is not JSON", content_type);
        check_error_body(status, text, len);
    }
    stub_req_free(r);
}

void ing_reply_static(ing_req *r, const char *content_type, const void *data, size_t len,
                      const char *etag, const char *const *headers)
{
    (void)etag;
    (void)headers;
    if (!content_type || (len && !data))
        fail("a static reply without content", NULL);
    ing_reply_text(r, 200, content_type, data, len);
}

void ing_req_submit(ing_req *r, ing_job_fn fn)
{
    (void)fn;
    answers++;
    stub_req_free(r);
}

/* ---- setup ------------------------------------------------------------------------- */

static void setup(void)
{
    app.o.auth_secret = SECRET;
    app.o.ids_secret = IDS_SECRET;
    app.o.http_max_body = MAX_BODY;
    app.o.pg_read_dsn = "";
    app.o.status_poll_min_ms = 250;
    app.o.status_poll_max_ms = 5000;
    app.o.status_poll_ms_per_position = 2;
    app.o.status_assumed_rate = 500;
    app.o.kafka_produce_timeout_ms = 5000;
    app.o.monitor_interval_ms = 1000;
    app.partitions = 4;
    /* Redis and PostgreSQL unreachable on purpose: the refresh thread fails
     * once, then sleeps; the cursors below are set by hand. */
    q_status_opts st = {.host = "127.0.0.1", .port = 1, .prefix = "fuzz:", .timeout_ms = 50};
    if (ing_cursors_new(app.partitions, &st, "host=/nonexistent-onsale-fuzz connect_timeout=1",
                        1 << 30, &app.cursors) ||
        ing_seqmap_new(1024, &app.seqs) || ing_views_new(1000, 64, &(ing_view_refresh){5000, 60000, 2000}, &app.views) ||
        ing_events_new(250, 64, &app.events) || nng_aio_alloc(&aio, NULL, NULL))
        abort();
    ing_cursors_raise(app.cursors, 0, 1000); /* partition 0: served up to 1000 */
    ing_cursors_raise(app.cursors, 1, 0);    /* 1: known, nothing served; 2, 3: unknown */
    ing_seqmap_put(app.seqs, q_seq_make(0, 1500), 7);
}

/* ---- input --------------------------------------------------------------------------- */

/* Copies uri into out, replacing {intent:N} / {reservation:N} / {order:N}
 * with the public id of seq N for USER_ID. */
static void expand_ids(const char *uri, char *out, size_t cap)
{
    static const struct {
        const char *tag;
        enum q_id_kind kind;
    } kinds[] = {
        {"{intent:", Q_ID_INTENT}, {"{reservation:", Q_ID_RESERVATION}, {"{order:", Q_ID_ORDER}};
    size_t o = 0;
    for (const char *s = uri; *s && o + 1 < cap;) {
        int done = 0;
        for (size_t k = 0; k < 3 && !done; k++) {
            size_t tl = strlen(kinds[k].tag);
            if (strncmp(s, kinds[k].tag, tl) != 0)
                continue;
            char *end;
            long long seq = strtoll(s + tl, &end, 10);
            char id[Q_ID_LEN + 1];
            if (*end != '}' || q_id_encode(IDS_SECRET, kinds[k].kind, seq, USER_ID, id))
                continue;
            size_t n = strlen(id);
            if (o + n >= cap)
                break;
            memcpy(out + o, id, n);
            o += n;
            s = end + 1;
            done = 1;
        }
        if (!done)
            out[o++] = *s++;
    }
    out[o] = '\0';
}

/* The first role of the route's mask (fan, seller, admin), 0 when public. */
static enum ons_role first_role(int roles)
{
    for (int b = ONS_ROLE_FAN; b <= ONS_ROLE_ADMIN; b <<= 1)
        if (roles & b)
            return (enum ons_role)b;
    return 0;
}

/* server.c's dispatch(), less the bearer token: see the top of the file. */
static void dispatch(ing_req *r, nng_http_req *hreq)
{
    static ons_httpd_table table = ONS_HTTPD_TABLE_INIT(ing_routes, 0, ing_route, 1);
    table.count = ing_route_count;
    ons_httpd_err e;
    long ri = ons_httpd_route(&table, hreq, r->method, sizeof r->method, r->pathbuf, NULL,
                              sizeof r->pathbuf, r->params, ING_MAX_PARAMS, &r->nparams, &e);
    if (ri < 0) {
        ing_fail_httpd(r, &e);
        return;
    }
    const ing_route *route = &ing_routes[ri];
    r->route = route;
    r->hreq = hreq;
    if (strcmp(route->name, "readyz") == 0 || strcmp(route->name, "metrics") == 0) {
        ing_reply_raw(r, 200, "{}");
        return;
    }
    if (route->roles) {
        r->who.user_id = USER_ID;
        r->who.role = first_role(route->roles);
        r->who.exp = INT64_MAX;
    }
    const char *idem = nng_http_req_get_header(hreq, "Idempotency-Key");
    if (idem) {
        if (!ing_idem_key_valid(idem)) {
            ing_fail(r, NULL, ING_E_INVALID_IDEMPOTENCY_KEY, NULL);
            return;
        }
        snprintf(r->idem, sizeof r->idem, "%s", idem);
    }
    if (route->body) {
        void *data = NULL;
        size_t len = 0;
        if (ons_httpd_body_check(hreq, app.o.http_max_body, 0, &data, &len, &e)) {
            ing_fail_httpd(r, &e);
            return;
        }
        r->raw = malloc(len + 1);
        if (!r->raw)
            abort();
        if (len)
            memcpy(r->raw, data, len);
        r->raw[len] = '\0';
        r->raw_len = len;
        if (route->body != ING_BODY_OWN && ons_httpd_body_parse(r->raw, len, &r->body, &e)) {
            ing_fail_httpd(r, &e);
            return;
        }
    }
    route->handler(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!app.cursors)
        setup();
    if (size > MAX_INPUT)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    cur_text = text;

    /* Request line, headers, body. */
    size_t hlen = size;
    const char *body = "";
    size_t blen = 0;
    char *sep = strstr(text, "\n\n");
    if (sep) {
        hlen = (size_t)(sep - text);
        body = sep + 2;
        blen = size - hlen - 2;
    }
    char *head = strndup(text, hlen);
    char *save = NULL;
    char *line = head ? strtok_r(head, "\n", &save) : NULL;
    char *sp = line ? strchr(line, ' ') : NULL;
    nng_http_req *hreq = NULL;
    if (!sp || nng_http_req_alloc(&hreq, NULL) != 0)
        goto out;
    *sp = '\0';
    char uri[4096];
    expand_ids(sp + 1, uri, sizeof uri);
    if (!line[0] || !uri[0] || nng_http_req_set_method(hreq, line) != 0 ||
        nng_http_req_set_uri(hreq, uri) != 0)
        goto out;
    while ((line = strtok_r(NULL, "\n", &save)) != NULL) {
        if (strncasecmp(line, "Idempotency-Key:", 16) == 0) {
            const char *v = line + 16;
            while (*v == ' ')
                v++;
            nng_http_req_set_header(hreq, "Idempotency-Key", v);
        }
    }
    nng_http_req_set_header(hreq, "Content-Type", "application/json");
    if (blen && nng_http_req_copy_data(hreq, body, blen) != 0)
        goto out;
    nng_aio_set_input(aio, 0, hreq);

    ing_req *r = calloc(1, sizeof *r);
    if (!r)
        goto out;
    r->app = &app;
    r->pend.aio = aio;
    r->t0_ns = ing_mono_ns();
    snprintf(r->rid, sizeof r->rid, "fuzz");
    answers = 0;
    dispatch(r, hreq);
    if (answers != 1) {
        char n[32];
        snprintf(n, sizeof n, "%d answers", answers);
        fail("a request not answered exactly once", n);
    }
out:
    nng_aio_set_input(aio, 0, NULL);
    if (hreq)
        nng_http_req_free(hreq);
    free(head);
    free(text);
    cur_text = NULL;
    return 0;
}
