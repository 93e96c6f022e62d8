/* test_produce_refuse.c - when ingress refuses a record at once instead of
 * handing it to librdkafka (ing_produce_refuse, ingress/produce.h;
 * docs/scaling.md "Failures": a broker's volume full): only on a fresh
 * monitor round that has found Kafka unreachable for kafka.fail_fast_ms. */
#include "ingress/produce.h"

#include <check.h>
#include <stdlib.h>

static ing_health health(int kafka_ok, int64_t age_ms, int64_t down_ms)
{
    ing_health h = {1, 1, kafka_ok, age_ms, down_ms};
    return h;
}

START_TEST(refuses_while_kafka_is_down_long_enough)
{
    ing_health h = health(0, 200, 2500);
    ck_assert_int_eq(ing_produce_refuse(&h, 2000, 1000), 1);
    h = health(0, 200, 2000); /* exactly the threshold */
    ck_assert_int_eq(ing_produce_refuse(&h, 2000, 1000), 1);
}
END_TEST

START_TEST(sends_when_kafka_is_up_or_just_failed)
{
    ing_health h = health(1, 200, 0);
    ck_assert_int_eq(ing_produce_refuse(&h, 2000, 1000), 0);
    h = health(0, 200, 1999); /* one slow metadata request is not an outage */
    ck_assert_int_eq(ing_produce_refuse(&h, 2000, 1000), 0);
}
END_TEST

START_TEST(sends_when_the_monitor_cannot_be_trusted)
{
    ing_health h = health(0, -1, 0); /* no round completed yet */
    ck_assert_int_eq(ing_produce_refuse(&h, 2000, 1000), 0);
    h = health(0, 7000, 9000); /* the monitor stalled: 5 intervals + 2 s */
    ck_assert_int_eq(ing_produce_refuse(&h, 2000, 1000), 0);
    h = health(0, 6999, 9000);
    ck_assert_int_eq(ing_produce_refuse(&h, 2000, 1000), 1);
}
END_TEST

START_TEST(zero_turns_it_off)
{
    ing_health h = health(0, 200, 60000);
    ck_assert_int_eq(ing_produce_refuse(&h, 0, 1000), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("produce_refuse");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, refuses_while_kafka_is_down_long_enough);
    tcase_add_test(tc, sends_when_kafka_is_up_or_just_failed);
    tcase_add_test(tc, sends_when_the_monitor_cannot_be_trusted);
    tcase_add_test(tc, zero_turns_it_off);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
