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

/* allow() when the wait it would give does not matter. */
static int allows(int64_t now)
{
    int64_t w;
    return allow(now, &w);
}

/* The call at now is refused: the caller waits wait ms. */
static void refused_for(int64_t now, int64_t wait)
{
    int64_t w;
    ck_assert(!allow(now, &w));
    ck_assert_int_eq(w, wait);
}

/* Opens the breaker at t (three failed calls). */
static void open_at(int64_t t)
{
    for (int i = 0; i < 3; i++) {
        ck_assert(allows(t));
        pay_breaker_report(&b, 0, t);
    }
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_OPEN);
}

START_TEST(closed_until_threshold_consecutive_failures)
{
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_CLOSED);
    for (int i = 0; i < 2; i++) {
        ck_assert(allows(10));
        pay_breaker_report(&b, 0, 10);
    }
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_CLOSED);
    /* a definitive answer resets the count */
    ck_assert(allows(11));
    pay_breaker_report(&b, 1, 11);
    for (int i = 0; i < 2; i++) {
        ck_assert(allows(12));
        pay_breaker_report(&b, 0, 12);
    }
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_CLOSED);
    ck_assert(allows(13));
    pay_breaker_report(&b, 0, 13);
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_OPEN);
}
END_TEST

START_TEST(open_fails_fast_for_open_ms)
{
    open_at(100);
    refused_for(100, OPEN_MS);
    refused_for(600, 500);
    refused_for(100 + OPEN_MS - 1, 1);
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_OPEN);
}
END_TEST

START_TEST(half_open_lets_one_probe_through)
{
    open_at(100);
    ck_assert(allows(100 + OPEN_MS)); /* the probe */
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_HALF_OPEN);
    refused_for(100 + OPEN_MS, OPEN_MS / 4 + 1); /* the others wait for its answer */
    ck_assert(!allows(100 + OPEN_MS + 50));
}
END_TEST

START_TEST(probe_success_closes)
{
    open_at(100);
    ck_assert(allows(2000));
    pay_breaker_report(&b, 1, 2001);
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_CLOSED);
    ck_assert(allows(2002));
    ck_assert(allows(2002));
    /* the failure count started again: two failures do not open it */
    pay_breaker_report(&b, 0, 2003);
    pay_breaker_report(&b, 0, 2003);
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_CLOSED);
}
END_TEST

START_TEST(probe_failure_opens_again_for_a_full_period)
{
    open_at(100);
    ck_assert(allows(1500));
    pay_breaker_report(&b, 0, 1600); /* one failure is enough for a probe */
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_OPEN);
    refused_for(1600 + OPEN_MS - 1, 1);
    ck_assert(allows(1600 + OPEN_MS)); /* the next probe */
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_HALF_OPEN);
}
END_TEST

/* A call let through before the breaker opened that answers definitively
 * afterwards shows the gateway healthy: it closes the breaker. */
START_TEST(late_definitive_answer_closes)
{
    ck_assert(allows(50)); /* a slow call */
    open_at(100);
    pay_breaker_report(&b, 1, 150);
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_CLOSED);
    ck_assert(allows(151));
}
END_TEST

START_TEST(limits_are_at_least_one)
{
    pay_breaker_fini(&b);
    pay_breaker_init(&b, 0, 0, NULL);
    ck_assert(allows(10));
    pay_breaker_report(&b, 0, 10); /* threshold 1 */
    ck_assert_int_eq(pay_breaker_state(&b), PAY_BR_OPEN);
    refused_for(10, 1);
    ck_assert(allows(11)); /* open 1 ms */
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
