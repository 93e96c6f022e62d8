/* test_breaker.c - the gateway circuit breaker (workers/payments/breaker):
 * when it opens, how long it fails fast, the one half-open probe, and what
 * closes it. Times are given, not read: no sleeping. */
#include "tests/check_run.h"
#include "workers/payments/breaker.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#define OPEN_MS 1000

static pay_breaker b;

static void setup(void)
{
    pay_breaker_init(&b, 3, OPEN_MS, NULL);
}

static void teardown(void)
{
    pay_breaker_fini(&b);
}

static int allow(int64_t now, int64_t *wait)
{
    *wait = -1;
    return pay_breaker_allow(&b, now, wait);
}

/* Opens the breaker at t (three failed calls). */
static void open_at(int64_t t)
{
    int64_t w;
    for (int i = 0; i < 3; i++) {
        ck_assert(allow(t, &w));
        pay_breaker_report(&b, 0, t);
    }
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_OPEN);
}

START_TEST(closed_until_threshold_consecutive_failures)
{
    int64_t w;
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_CLOSED);
    for (int i = 0; i < 2; i++) {
        ck_assert(allow(10, &w));
        pay_breaker_report(&b, 0, 10);
    }
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_CLOSED);
    /* a definitive answer resets the count */
    ck_assert(allow(11, &w));
    pay_breaker_report(&b, 1, 11);
    for (int i = 0; i < 2; i++) {
        ck_assert(allow(12, &w));
        pay_breaker_report(&b, 0, 12);
    }
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_CLOSED);
    ck_assert(allow(13, &w));
    pay_breaker_report(&b, 0, 13);
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_OPEN);
}
END_TEST

START_TEST(open_fails_fast_for_open_ms)
{
    int64_t w;
    open_at(100);
    ck_assert(!allow(100, &w));
    ck_assert_int_eq(w, OPEN_MS);
    ck_assert(!allow(600, &w));
    ck_assert_int_eq(w, 500);
    ck_assert(!allow(100 + OPEN_MS - 1, &w));
    ck_assert_int_eq(w, 1);
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_OPEN);
}
END_TEST

START_TEST(half_open_lets_one_probe_through)
{
    int64_t w;
    open_at(100);
    ck_assert(allow(100 + OPEN_MS, &w)); /* the probe */
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_HALF_OPEN);
    ck_assert(!allow(100 + OPEN_MS, &w)); /* the others wait for its answer */
    ck_assert_int_eq(w, OPEN_MS / 4 + 1);
    ck_assert(!allow(100 + OPEN_MS + 50, &w));
}
END_TEST

START_TEST(probe_success_closes)
{
    int64_t w;
    open_at(100);
    ck_assert(allow(2000, &w));
    pay_breaker_report(&b, 1, 2001);
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_CLOSED);
    ck_assert(allow(2002, &w));
    ck_assert(allow(2002, &w));
    /* the failure count started again: two failures do not open it */
    pay_breaker_report(&b, 0, 2003);
    pay_breaker_report(&b, 0, 2003);
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_CLOSED);
}
END_TEST

START_TEST(probe_failure_opens_again_for_a_full_period)
{
    int64_t w;
    open_at(100);
    ck_assert(allow(1500, &w));
    pay_breaker_report(&b, 0, 1600); /* one failure is enough for a probe */
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_OPEN);
    ck_assert(!allow(1600 + OPEN_MS - 1, &w));
    ck_assert_int_eq(w, 1);
    ck_assert(allow(1600 + OPEN_MS, &w)); /* the next probe */
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_HALF_OPEN);
}
END_TEST

/* A call let through before the breaker opened that answers definitively
 * afterwards shows the gateway healthy: it closes the breaker. */
START_TEST(late_definitive_answer_closes)
{
    int64_t w;
    ck_assert(allow(50, &w)); /* a slow call */
    open_at(100);
    pay_breaker_report(&b, 1, 150);
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_CLOSED);
    ck_assert(allow(151, &w));
}
END_TEST

START_TEST(limits_are_at_least_one)
{
    int64_t w;
    pay_breaker_fini(&b);
    pay_breaker_init(&b, 0, 0, NULL);
    ck_assert(allow(10, &w));
    pay_breaker_report(&b, 0, 10); /* threshold 1 */
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_OPEN);
    ck_assert(!allow(10, &w));
    ck_assert_int_eq(w, 1);
    ck_assert(allow(11, &w)); /* open 1 ms */
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"threshold", closed_until_threshold_consecutive_failures},
        {"open", open_fails_fast_for_open_ms},
        {"half_open", half_open_lets_one_probe_through},
        {"probe_success", probe_success_closes},
        {"probe_failure", probe_failure_opens_again_for_a_full_period},
        {"late_answer", late_definitive_answer_closes},
        {"limits", limits_are_at_least_one},
    };
    return ons_check_run_fixture("breaker", cases, sizeof cases / sizeof *cases, 60, setup,
                                 teardown);
}
