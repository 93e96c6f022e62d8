/* test_relay.c - the payments outbox relay (workers/payments/relay):
 * classify for every class of gateway answer, the retry backoff, and what
 * one claimed row becomes (produced, finished, rescheduled) against a fake
 * gateway, producer and outbox. No services. */
#include "tests/check_run.h"
#include "common/err.h"
#include "queue/msg.h"
#include "workers/payments/breaker.h"
#include "workers/payments/relay.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pay_row charge_row(void)
{
    pay_row w;
    memset(&w, 0, sizeof w);
    w.id = 11;
    w.order_id = 500;
    w.reservation_id = 400;
    w.event_id = 7;
    w.amount = 5000;
    w.attempts = 1;
    strcpy(w.currency, "EUR");
    strcpy(w.pm, "pm_card_visa");
    strcpy(w.key, "order-500");
    return w;
}

static pay_row refund_row(const char *charge)
{
    pay_row w = charge_row();
    w.is_refund = 1;
    strcpy(w.charge, charge);
    strcpy(w.key, "refund-500");
    return w;
}

/* ---- classify ------------------------------------------------------------------------ */

static int cls(const pay_row *w, int rc, int status, const char *body, pay_answer *ans)
{
    pay_classify(w, rc, status, body, ans);
    return ans->cls;
}

/* The class pay_classify gives row w for (rc, status, body). */
static int result_of(pay_row w, int rc, int status, const char *body)
{
    pay_answer a;
    return cls(&w, rc, status, body, &a);
}

/* A gateway answer (status, body) to row w classifies as want, for the reason why. */
static void classified(const pay_row *w, int status, const char *body, int want, const char *why)
{
    pay_answer a;
    ck_assert_int_eq(cls(w, 0, status, body, &a), want);
    ck_assert_str_eq(a.why, why);
}

START_TEST(classify_success)
{
    pay_row w = charge_row();
    pay_answer a;
    ck_assert_int_eq(cls(&w, 0, 200, "{\"id\":\"ch_1\",\"amount_cents\":4999}", &a), PAY_SUCCEEDED);
    ck_assert_str_eq(a.charge, "ch_1");
    ck_assert_int_eq(a.amount, 4999);
    /* no amount in the answer: the row's */
    ck_assert_int_eq(cls(&w, 0, 200, "{\"id\":\"ch_2\"}", &a), PAY_SUCCEEDED);
    ck_assert_int_eq(a.amount, 5000);
    pay_row r = refund_row("ch_1");
    ck_assert_int_eq(cls(&r, 0, 200, "{\"id\":\"re_1\"}", &a), PAY_SUCCEEDED);
}
END_TEST

START_TEST(classify_decline_is_final_for_a_charge_only)
{
    pay_row w = charge_row();
    classified(&w, 402, "{\"error\":{\"code\":\"card_declined\",\"decline_code\":\"lost_card\"}}",
               PAY_DECLINED, "declined: lost_card");
    classified(&w, 402, "{\"error\":{\"code\":\"card_declined\"}}", PAY_DECLINED,
               "declined: card_declined");
    /* a refund is never declined: a 402 there is not understood, retried */
    ck_assert_int_eq(result_of(refund_row("ch_1"), 0, 402, "{}"), PAY_RETRY);
}
END_TEST

START_TEST(classify_refused_requests_fail_for_good)
{
    pay_row w = charge_row();
    classified(&w, 400, "{\"error\":{\"code\":\"bad_request\"}}", PAY_FAILED, "400 bad_request");
    ck_assert_int_eq(
        result_of(refund_row("ch_404"), 0, 404, "{\"error\":{\"code\":\"no_such_charge\"}}"),
        PAY_FAILED);
    /* a charge's 404 (a misrouted URL) is a configuration error: retried */
    ck_assert_int_eq(result_of(w, 0, 404, NULL), PAY_RETRY);
}
END_TEST

START_TEST(classify_timeouts_and_transport_errors_retry)
{
    pay_row w = charge_row();
    pay_answer a;
    ck_assert_int_eq(cls(&w, ONS_ETIMEDOUT, 0, NULL, &a), PAY_RETRY);
    ck_assert_ptr_nonnull(strstr(a.why, "gateway call: "));
    ck_assert_int_eq(cls(&w, ONS_EIO, 200, "{\"id\":\"ch_1\"}", &a), PAY_RETRY); /* rc wins */
    ck_assert_int_eq(cls(&w, ONS_ENOMEM, 0, NULL, &a), PAY_RETRY);
}
END_TEST

START_TEST(classify_5xx_and_misconfiguration_retry)
{
    pay_row w = charge_row();
    pay_answer a;
    int statuses[] = {500, 502, 503, 504, 409, 401, 403, 422, 429};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        ck_assert_int_eq(cls(&w, 0, statuses[i], "{\"error\":{\"code\":\"x\"}}", &a), PAY_RETRY);
    ck_assert_str_eq(a.why, "429 x");
}
END_TEST

START_TEST(classify_malformed_answers_retry)
{
    pay_row w = charge_row();
    pay_answer a;
    classified(&w, 200, NULL, PAY_RETRY, "200 without an id");
    ck_assert_int_eq(cls(&w, 0, 200, "not json", &a), PAY_RETRY);
    ck_assert_int_eq(cls(&w, 0, 200, "{\"id\":\"\"}", &a), PAY_RETRY);
    ck_assert_int_eq(cls(&w, 0, 200, "{\"id\":42}", &a), PAY_RETRY);
    char big[Q_MSG_MAX_CHARGE + 32];
    memset(big, 'c', sizeof big);
    memcpy(big, "{\"id\":\"", 7);
    memcpy(big + sizeof big - 3, "\"}", 3);
    ck_assert_int_eq(cls(&w, 0, 200, big, &a), PAY_RETRY); /* an id too long to record */
    /* an error answer without a body still classifies by status */
    ck_assert_int_eq(cls(&w, 0, 402, "garbage", &a), PAY_DECLINED);
    ck_assert_int_eq(cls(&w, 0, 503, "garbage", &a), PAY_RETRY);
}
END_TEST

START_TEST(breaker_health_of_answers)
{
    ck_assert(pay_answer_healthy(0, 200));
    ck_assert(pay_answer_healthy(0, 402));
    ck_assert(pay_answer_healthy(0, 409)); /* in progress: the gateway is up */
    ck_assert(!pay_answer_healthy(0, 500));
    ck_assert(!pay_answer_healthy(0, 503));
    ck_assert(!pay_answer_healthy(ONS_ETIMEDOUT, 0));
}
END_TEST

/* ---- backoff -------------------------------------------------------------------------- */

START_TEST(backoff_doubles_within_bounds_with_jitter)
{
    unsigned seed = 1;
    int64_t cap[] = {200, 400, 800, 1600, 3200, 6400, 10000, 10000};
    for (int attempt = 1; attempt <= 8; attempt++) {
        int64_t d = cap[attempt - 1], lo = d, hi = 0;
        for (int k = 0; k < 2000; k++) {
            int64_t v = pay_backoff_ms(200, 10000, attempt, &seed);
            ck_assert_msg(v >= d / 2 && v <= d, "attempt %d: %lld not in [%lld, %lld]", attempt,
                          (long long)v, (long long)(d / 2), (long long)d);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        /* jitter: the delays spread over the random half */
        ck_assert_int_le(lo, d / 2 + d / 20);
        ck_assert_int_ge(hi, d - d / 20);
    }
    /* very many attempts: still the cap, no overflow */
    for (int k = 0; k < 100; k++) {
        int64_t v = pay_backoff_ms(200, 10000, INT64_MAX / 2, &seed);
        ck_assert(v >= 5000 && v <= 10000);
    }
    /* a new row starts again at the base (attempts 1) */
    for (int k = 0; k < 100; k++) {
        int64_t v = pay_backoff_ms(200, 10000, 1, &seed);
        ck_assert(v >= 100 && v <= 200);
    }
    /* attempts 0 (not claimed yet) behaves as the first */
    ck_assert_int_le(pay_backoff_ms(200, 10000, 0, &seed), 200);
    /* a base above the cap is capped */
    ck_assert_int_le(pay_backoff_ms(50000, 10000, 1, &seed), 10000);
}
END_TEST

/* ---- the relay ------------------------------------------------------------------------- */

/* The fakes: what the gateway and Kafka answer, and what the relay did. */
typedef struct world {
    int post_rc, status;
    const char *body;
    int produce_rc;
    int produce_fail_at; /* > 0: only the result at this 1-based place fails */
    int stopping;
    int posts, produced, finished, rescheduled;
    int post_calls, most_at_once;    /* io.post invocations; the most calls one carried */
    int produce_calls, finish_calls; /* round trips: one each per batch */
    char path[32], idem[160];
    q_msg msg;
    pay_answer fin;
    int64_t delay;
    char why[160];
} world;

static world x;
static pay_breaker br;
static pay_relay relay;

static void fake_post(void *ctx, void *conn, pay_call *calls, size_t n, int timeout_ms)
{
    (void)ctx;
    (void)conn;
    ck_assert_int_eq(timeout_ms, 3000);
    x.post_calls++;
    if ((int)n > x.most_at_once)
        x.most_at_once = (int)n;
    for (size_t i = 0; i < n; i++) {
        pay_call *c = &calls[i];
        x.posts++;
        snprintf(x.path, sizeof x.path, "%s", c->path);
        for (int h = 0; c->headers[h]; h++)
            if (strncmp(c->headers[h], "Idempotency-Key: ", 17) == 0)
                snprintf(x.idem, sizeof x.idem, "%s", c->headers[h] + 17);
        ck_assert_ptr_nonnull(c->body);
        c->rc = x.post_rc;
        if (x.post_rc)
            continue;
        c->status = x.status;
        c->resp = x.body ? strdup(x.body) : NULL;
    }
}

/* The fake gateway answers every call with status and body (NULL: none). */
static void gateway_answers(int status, const char *body)
{
    x.status = status;
    x.body = body;
}

/* One row was finished, with the result cls. */
static void finished_once_as(int cls)
{
    ck_assert_int_eq(x.finished, 1);
    ck_assert_int_eq(x.fin.cls, cls);
}

/* n rows were finished, all in one call. */
static void finished_in_one_call(int n)
{
    ck_assert_int_eq(x.finished, n);
    ck_assert_int_eq(x.finish_calls, 1);
}

/* No row was finished; n were rescheduled. */
static void given_back_unfinished(int n)
{
    ck_assert_int_eq(x.finished, 0);
    ck_assert_int_eq(x.rescheduled, n);
}

static void fake_produce(void *ctx, const q_msg *ms, size_t n, int *rcs)
{
    (void)ctx;
    x.produce_calls++;
    for (size_t i = 0; i < n; i++) {
        x.produced++;
        x.msg = ms[i];
        rcs[i] =
            x.produce_fail_at ? (x.produce_fail_at == x.produced ? ONS_EUNKNOWN : 0) : x.produce_rc;
    }
}

static int fake_stopping(void *ctx)
{
    (void)ctx;
    return x.stopping;
}

static void fake_reschedule(void *conn, const pay_row *w, int64_t delay_ms, const char *why)
{
    (void)conn;
    (void)w;
    x.rescheduled++;
    x.delay = delay_ms;
    snprintf(x.why, sizeof x.why, "%s", why);
}

static int fake_finish(void *conn, const pay_done *done, size_t n)
{
    (void)conn;
    x.finish_calls++;
    for (size_t i = 0; i < n; i++) {
        x.finished++;
        x.fin = *done[i].ans;
    }
    return 0;
}

static const pay_outbox_ops ob = {fake_reschedule, fake_finish};

static void setup(void)
{
    memset(&x, 0, sizeof x);
    pay_breaker_init(&br, 2, 60000, NULL);
    pay_relay_cfg cfg = {200, 10000, 5000, 3000, "sk_test", "dep1-", ""};
    pay_relay_io io = {fake_post, fake_produce, fake_stopping, NULL};
    ck_assert_int_eq(pay_relay_init(&relay, &cfg, &io, &br, NULL), 0);
}

static void teardown(void)
{
    pay_breaker_fini(&br);
}

static void run(const pay_row *w)
{
    unsigned seed = 7;
    pay_relay_rows(&relay, &ob, NULL, w, 1, &seed);
}

static void run_batch(const pay_row *rows, size_t n)
{
    unsigned seed = 7;
    pay_relay_rows(&relay, &ob, NULL, rows, n, &seed);
}

START_TEST(success_is_produced_then_finished)
{
    gateway_answers(200, "{\"id\":\"ch_9\",\"amount_cents\":5000}");
    pay_row w = charge_row();
    run(&w);
    ck_assert_str_eq(x.path, "/v1/charges");
    ck_assert_str_eq(x.idem, "dep1-order-500");
    ck_assert_int_eq(x.produced, 1);
    ck_assert_int_eq(x.msg.type, Q_MSG_PAYMENT_RESULT);
    ck_assert_int_eq(x.msg.outcome, Q_PAY_SUCCEEDED);
    ck_assert_int_eq(x.msg.order_id, 500);
    ck_assert_int_eq(x.msg.reservation_id, 400);
    ck_assert_int_eq(x.msg.event_id, 7);
    ck_assert_int_eq(x.msg.amount_cents, 5000);
    ck_assert_str_eq(x.msg.charge_id, "ch_9");
    finished_once_as(PAY_SUCCEEDED);
    ck_assert_int_eq(x.rescheduled, 0);
}
END_TEST

START_TEST(decline_is_produced_as_declined_then_finished)
{
    gateway_answers(
        402, "{\"error\":{\"code\":\"card_declined\",\"decline_code\":\"insufficient_funds\"}}");
    pay_row w = charge_row();
    run(&w);
    ck_assert_int_eq(x.produced, 1);
    ck_assert_int_eq(x.msg.outcome, Q_PAY_DECLINED);
    ck_assert_int_eq(x.msg.amount_cents, 5000);
    ck_assert_str_eq(x.msg.charge_id, "");
    finished_once_as(PAY_DECLINED);
}
END_TEST

START_TEST(refused_charge_is_produced_as_failed)
{
    x.status = 400;
    pay_row w = charge_row();
    run(&w);
    ck_assert_int_eq(x.msg.outcome, Q_PAY_FAILED);
    ck_assert_int_eq(x.finished, 1);
}
END_TEST

START_TEST(transient_answers_are_rescheduled_with_backoff)
{
    int statuses[] = {503, 500, 409, 0};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        teardown();
        setup();
        if (statuses[i])
            x.status = statuses[i];
        else
            x.post_rc = ONS_ETIMEDOUT;
        pay_row w = charge_row();
        w.attempts = 3; /* cap 800: in [400, 800] */
        run(&w);
        ck_assert_int_eq(x.produced, 0);
        given_back_unfinished(1);
        ck_assert(x.delay >= 400 && x.delay <= 800);
    }
}
END_TEST

START_TEST(result_kafka_did_not_take_is_rescheduled_not_finished)
{
    gateway_answers(200, "{\"id\":\"ch_9\"}");
    x.produce_rc = ONS_EUNKNOWN;
    pay_row w = charge_row();
    run(&w);
    ck_assert_int_eq(x.produced, 1);
    given_back_unfinished(1);
    ck_assert_str_eq(x.why, "kafka");
    ck_assert(x.delay >= 100 && x.delay <= 200);
}
END_TEST

START_TEST(refunds_are_finished_without_a_result)
{
    gateway_answers(200, "{\"id\":\"re_1\"}");
    pay_row w = refund_row("ch_1");
    run(&w);
    ck_assert_str_eq(x.path, "/v1/refunds");
    ck_assert_int_eq(x.produced, 0);
    finished_once_as(PAY_SUCCEEDED);
}
END_TEST

START_TEST(refund_without_a_charge_fails_without_a_call)
{
    pay_row w = refund_row("");
    run(&w);
    ck_assert_int_eq(x.posts, 0);
    ck_assert_int_eq(x.produced, 0);
    finished_once_as(PAY_FAILED);
    ck_assert_str_eq(x.fin.why, "no charge to refund");
}
END_TEST

START_TEST(open_breaker_reschedules_without_calling)
{
    x.status = 503; /* two transient failures open the breaker (threshold 2) */
    pay_row w = charge_row();
    run(&w);
    run(&w);
    ck_assert_int_eq(pay_breaker_state(&br), PAY_BR_OPEN);
    ck_assert_int_eq(x.posts, 2);
    run(&w);
    ck_assert_int_eq(x.posts, 2); /* failed fast */
    ck_assert_int_eq(x.rescheduled, 3);
    ck_assert_str_eq(x.why, "circuit breaker open");
    ck_assert(x.delay > 59000 && x.delay <= 60000); /* until the half-open probe */
    /* definitive answers (4xx) keep it closed */
    teardown();
    setup();
    x.status = 400;
    run(&w);
    run(&w);
    run(&w);
    ck_assert_int_eq(pay_breaker_state(&br), PAY_BR_CLOSED);
}
END_TEST

START_TEST(batch_costs_one_produce_and_one_finish)
{
    gateway_answers(200, "{\"id\":\"ch_9\",\"amount_cents\":5000}");
    pay_row rows[3] = {charge_row(), charge_row(), charge_row()};
    rows[1].order_id = 501;
    rows[2].order_id = 502;
    run_batch(rows, 3);
    ck_assert_int_eq(x.posts, 3);
    ck_assert_int_eq(x.produced, 3);
    ck_assert_int_eq(x.produce_calls, 1);
    ck_assert_int_eq(x.msg.order_id, 502); /* in row order */
    finished_in_one_call(3);
    ck_assert_int_eq(x.rescheduled, 0);
}
END_TEST

START_TEST(batch_calls_the_gateway_at_once)
{
    /* A batch's calls go to io.post together (main.c keeps them in flight
     * at once), each with its row's own Idempotency-Key. */
    gateway_answers(200, "{\"id\":\"ch_9\",\"amount_cents\":5000}");
    pay_row rows[4] = {charge_row(), charge_row(), refund_row(""), refund_row("ch_1")};
    rows[1].order_id = 501;
    snprintf(rows[1].key, sizeof rows[1].key, "order-501");
    run_batch(rows, 4);
    ck_assert_int_eq(x.post_calls, 1);
    ck_assert_int_eq(x.most_at_once, 3);         /* the refund without a charge is not called */
    ck_assert_str_eq(x.idem, "dep1-refund-500"); /* the last call's */
    finished_in_one_call(4);
    /* an open breaker lets none of a batch out */
    teardown();
    setup();
    x.status = 503;
    run_batch(rows, 2); /* two transient failures open it (threshold 2) */
    ck_assert_int_eq(pay_breaker_state(&br), PAY_BR_OPEN);
    run_batch(rows, 2);
    ck_assert_int_eq(x.post_calls, 1);
    ck_assert_int_eq(x.rescheduled, 4);
}
END_TEST

START_TEST(batch_gives_back_only_the_rows_kafka_refused)
{
    /* A charge and a refund without a charge: one result, both finished
     * together. */
    gateway_answers(200, "{\"id\":\"ch_9\"}");
    pay_row rows[2] = {charge_row(), refund_row("")};
    run_batch(rows, 2);
    ck_assert_int_eq(x.produced, 1); /* the refund has no result */
    finished_in_one_call(2);
    /* Kafka refuses the second of three results: that row alone goes back. */
    teardown();
    setup();
    gateway_answers(200, "{\"id\":\"ch_9\"}");
    x.produce_fail_at = 2;
    pay_row three[3] = {charge_row(), charge_row(), charge_row()};
    run_batch(three, 3);
    ck_assert_int_eq(x.produced, 3);
    ck_assert_int_eq(x.rescheduled, 1);
    ck_assert_str_eq(x.why, "kafka");
    finished_in_one_call(2);
}
END_TEST

START_TEST(stopping_gives_the_batch_back_unsent)
{
    x.status = 200;
    x.stopping = 1;
    pay_row rows[2] = {charge_row(), refund_row("ch_1")};
    run_batch(rows, 2);
    ck_assert_int_eq(x.posts, 0);
    ck_assert_int_eq(x.produced, 0);
    given_back_unfinished(2);
    ck_assert_str_eq(x.why, "shutdown");
    ck_assert_int_eq(x.delay, 0);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"classify_success", classify_success},
        {"classify_decline", classify_decline_is_final_for_a_charge_only},
        {"classify_refused", classify_refused_requests_fail_for_good},
        {"classify_timeout", classify_timeouts_and_transport_errors_retry},
        {"classify_5xx", classify_5xx_and_misconfiguration_retry},
        {"classify_malformed", classify_malformed_answers_retry},
        {"breaker_health", breaker_health_of_answers},
        {"backoff", backoff_doubles_within_bounds_with_jitter},
        {"row_success", success_is_produced_then_finished},
        {"row_decline", decline_is_produced_as_declined_then_finished},
        {"row_refused", refused_charge_is_produced_as_failed},
        {"row_transient", transient_answers_are_rescheduled_with_backoff},
        {"row_kafka_down", result_kafka_did_not_take_is_rescheduled_not_finished},
        {"row_refund", refunds_are_finished_without_a_result},
        {"row_refund_no_charge", refund_without_a_charge_fails_without_a_call},
        {"row_breaker_open", open_breaker_reschedules_without_calling},
        {"batch_one_round_trip", batch_costs_one_produce_and_one_finish},
        {"batch_partial", batch_gives_back_only_the_rows_kafka_refused},
        {"batch_at_once", batch_calls_the_gateway_at_once},
        {"batch_stopping", stopping_gives_the_batch_back_unsent},
    };
    return ons_check_run_fixture("relay", cases, sizeof cases / sizeof *cases, 60, setup, teardown);
}
