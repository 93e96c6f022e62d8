/* test_signals.c - common/signals.h: SIGTERM and SIGINT reach the handler a
 * process installs (and do not end it), or, blocked, the thread that waits
 * for them, or set the process's stop flag; SIGPIPE is ignored. */
#include "common/signals.h"

#include "tests/check_run.h"

#include <check.h>
#include <signal.h>

static volatile sig_atomic_t stops;

static void on_stop(int sig)
{
    (void)sig;
    stops++;
}

START_TEST(term_and_int_call_the_handler)
{
    ons_signals_stop_on(on_stop);
    ck_assert_int_eq(raise(SIGTERM), 0);
    ck_assert_int_eq(stops, 1);
    ck_assert_int_eq(raise(SIGINT), 0);
    ck_assert_int_eq(stops, 2);
}
END_TEST

START_TEST(term_sets_the_stop_flag)
{
    ons_signals_stop_flag_on();
    ck_assert_int_eq(ons_stop_requested, 0);
    ck_assert_int_eq(raise(SIGTERM), 0);
    ck_assert_int_eq(ons_stop_requested, 1);
    ons_stop_requested = 0;
    ck_assert_int_eq(raise(SIGINT), 0);
    ck_assert_int_eq(ons_stop_requested, 1);
    ck_assert_int_eq(raise(SIGPIPE), 0); /* ignored */
}
END_TEST

START_TEST(sigpipe_is_ignored)
{
    ons_signals_stop_on(on_stop);
    ck_assert_int_eq(raise(SIGPIPE), 0); /* the default action would end the test */
    ck_assert_int_eq(stops, 0);
}
END_TEST

START_TEST(blocked_stop_signals_reach_the_waiter)
{
    sigset_t set;
    ons_signals_block_stop(&set);
    ck_assert_int_eq(raise(SIGPIPE), 0); /* ignored */
    ck_assert_int_eq(raise(SIGTERM), 0); /* pending: the default action would end the test */
    ck_assert_int_eq(ons_signals_wait_stop(&set), SIGTERM);
    ck_assert_int_eq(raise(SIGINT), 0);
    ck_assert_int_eq(ons_signals_wait_stop(&set), SIGINT);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        ONS_CHECK_CASE(term_and_int_call_the_handler),
        ONS_CHECK_CASE(term_sets_the_stop_flag),
        ONS_CHECK_CASE(sigpipe_is_ignored),
        ONS_CHECK_CASE(blocked_stop_signals_reach_the_waiter),
    };
    return ons_check_run("signals", cases, sizeof cases / sizeof *cases, 30);
}
