/* test_sim_lanes.c - the simulator's request lanes (admin/sim/lanes.h) over
 * a fake pool that records what it was handed: a fan's request never waits
 * behind other fans' queued joins (the control: the same requests on one
 * lane wait behind all of them, the simulator's old single FIFO), urgent
 * requests go before a lane's others, a lane never has more in flight than
 * its connections, a refusal is answered as a transport error, and clear
 * frees what is queued or in flight. */
#include "admin/sim/lanes.h"
#include "common/err.h"

#include "tests/check_run.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAXSENT 256

/* The fake pool: what it was handed, in order, and their callbacks. */
typedef struct fake {
    struct {
        ons_httpc_cb cb;
        void *arg;
        char path[64], token[64];
    } sent[MAXSENT];
    int nsent, refuse;
} fake;

static int fake_send(void *ctx, const ons_httpc_req *req, ons_httpc_cb cb, void *arg)
{
    fake *f = ctx;
    if (f->refuse)
        return ONS_EFULL;
    ck_assert_int_lt(f->nsent, MAXSENT);
    f->sent[f->nsent].cb = cb;
    f->sent[f->nsent].arg = arg;
    snprintf(f->sent[f->nsent].path, sizeof f->sent[f->nsent].path, "%s", req->path);
    snprintf(f->sent[f->nsent].token, sizeof f->sent[f->nsent].token, "%s",
             req->token ? req->token : "");
    f->nsent++;
    return 0;
}

/* Answers the i-th request the pool was handed. */
static void answer(fake *f, int i, int status)
{
    ons_httpc_resp r = {.status = status, .retry_after_s = -1, .body = ""};
    f->sent[i].cb(f->sent[i].arg, &r);
}

static int answers, last_status;
static void on_answer(void *arg, const ons_httpc_resp *r)
{
    (void)arg;
    answers++;
    last_status = r->status;
}

static void request(sim_lanes *ls, int lane, int urgent, const char *path)
{
    ons_httpc_req q = {.method = "GET", .path = path, .idem_key = "k", .body = "{}"};
    ck_assert_int_eq(sim_lanes_request(ls, lane, urgent, &q, on_answer, NULL), 0);
}

/* The position at which the pool was handed path, or -1. */
static int sent_at(const fake *f, const char *path)
{
    for (int i = 0; i < f->nsent; i++)
        if (strcmp(f->sent[i].path, path) == 0)
            return i;
    return -1;
}

/* 100 joins queue on 2 arrival connections, then a reserved fan's poll and
 * checkout: the fan's lane sends them at once. fan_lane is the lane the
 * fan's requests take, urgent whether the checkout is urgent
 * (SIM_LANE_ARRIVE, 0: the control, one FIFO for all). */
static int checkout_position(int fan_lane, int urgent)
{
    fake f = {0};
    sim_lanes ls;
    sim_lanes_init(&ls, (size_t[SIM_LANES]){2, 2}, fake_send, &f);
    char path[32];
    for (int i = 0; i < 100; i++) {
        snprintf(path, sizeof path, "/join/%d", i);
        request(&ls, SIM_LANE_ARRIVE, 0, path);
    }
    request(&ls, fan_lane, 0, "/poll");
    request(&ls, fan_lane, urgent, "/checkout");
    ck_assert_uint_eq(sim_lanes_pending(&ls), 102);
    /* answer everything in the order it was sent until the checkout goes */
    for (int i = 0; sent_at(&f, "/checkout") < 0; i++) {
        ck_assert_int_lt(i, f.nsent);
        answer(&f, i, 200);
    }
    int at = sent_at(&f, "/checkout");
    sim_lanes_clear(&ls);
    return at;
}

START_TEST(fans_requests_do_not_wait_behind_joins)
{
    int at = checkout_position(SIM_LANE_FAN, 1);
    ck_assert_int_le(at, 3); /* two joins in flight, then the fan's lane */
    /* control: on the joins' lane it goes out after every join */
    ck_assert_int_ge(checkout_position(SIM_LANE_ARRIVE, 0), 100);
}
END_TEST

START_TEST(urgent_first_and_lane_caps_hold)
{
    fake f = {0};
    sim_lanes ls;
    sim_lanes_init(&ls, (size_t[SIM_LANES]){1, 2}, fake_send, &f);
    request(&ls, SIM_LANE_FAN, 0, "/p1");
    request(&ls, SIM_LANE_FAN, 0, "/p2");
    request(&ls, SIM_LANE_FAN, 0, "/p3");
    request(&ls, SIM_LANE_FAN, 0, "/p4");
    request(&ls, SIM_LANE_FAN, 1, "/c1");
    request(&ls, SIM_LANE_FAN, 1, "/c2");
    ck_assert_int_eq(f.nsent, 2); /* the lane's two connections */
    answer(&f, 0, 200);
    ck_assert_int_eq(f.nsent, 3);
    ck_assert_str_eq(f.sent[2].path, "/c1"); /* urgent ones first, in order */
    answer(&f, 1, 200);
    ck_assert_str_eq(f.sent[3].path, "/c2");
    answer(&f, 2, 200);
    ck_assert_str_eq(f.sent[4].path, "/p3");
    ck_assert_int_eq(answers, 3);
    ck_assert_uint_eq(sim_lanes_pending(&ls), 3); /* p4 queued, c2 and p3 in flight */
    sim_lanes_clear(&ls);                         /* frees both kinds (ASan: no leak) */
    ck_assert_uint_eq(sim_lanes_pending(&ls), 0);
}
END_TEST

START_TEST(a_refusal_is_a_transport_error)
{
    fake f = {.refuse = 1};
    sim_lanes ls;
    sim_lanes_init(&ls, (size_t[SIM_LANES]){1, 1}, fake_send, &f);
    answers = 0;
    last_status = -1;
    request(&ls, SIM_LANE_ARRIVE, 0, "/join");
    ck_assert_int_eq(answers, 1);
    ck_assert_int_eq(last_status, 0);
    ck_assert_uint_eq(sim_lanes_pending(&ls), 0);
}
END_TEST

/* A fan ends, and frees its token, while another of its requests still
 * waits in its lane (an order poll behind the poll that said purchased):
 * the queued request goes out with the token it was given, not with what
 * the freed memory holds by then (ASan: no use after free). */
START_TEST(a_queued_request_keeps_its_token)
{
    fake f = {0};
    sim_lanes ls;
    sim_lanes_init(&ls, (size_t[SIM_LANES]){1, 1}, fake_send, &f);
    request(&ls, SIM_LANE_FAN, 0, "/busy"); /* the lane's one connection */
    char *token = strdup("fan-token-1");
    ck_assert_ptr_nonnull(token);
    ons_httpc_req q = {.method = "GET", .path = "/v1/orders/o1", .token = token};
    ck_assert_int_eq(sim_lanes_request(&ls, SIM_LANE_FAN, 0, &q, on_answer, NULL), 0);
    ck_assert_int_eq(f.nsent, 1); /* queued behind /busy */
    memset(token, 'x', strlen(token));
    free(token); /* the fan ended */
    answer(&f, 0, 200);
    ck_assert_int_eq(f.nsent, 2);
    ck_assert_str_eq(f.sent[1].path, "/v1/orders/o1");
    ck_assert_str_eq(f.sent[1].token, "fan-token-1");
    sim_lanes_clear(&ls);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"fans_requests_do_not_wait_behind_joins", fans_requests_do_not_wait_behind_joins},
        {"urgent_first_and_lane_caps_hold", urgent_first_and_lane_caps_hold},
        {"a_refusal_is_a_transport_error", a_refusal_is_a_transport_error},
        {"a_queued_request_keeps_its_token", a_queued_request_keeps_its_token},
    };
    return ons_check_run("sim_lanes", cases, sizeof cases / sizeof *cases, 30);
}
