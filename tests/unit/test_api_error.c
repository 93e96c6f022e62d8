/* test_api_error.c - the API error table (ingress/api_error.h) keeps the
 * rules the wire contract needs: one row per code, a client or server
 * error status, snake_case codes, a message, and Retry-After only where a
 * retry is the answer (429, 503, and the four 409s that clear by
 * themselves). */
#include "tests/check_run.h"
#include "ingress/api_error.h"

#include <check.h>
#include <string.h>

static int snake_case(const char *s)
{
    if (!s || !*s || *s < 'a' || *s > 'z')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

START_TEST(codes_unique_and_snake_case)
{
    for (int i = 0; i < ING_E_COUNT; i++) {
        const ing_api_error *a = ing_api_error_row((ing_api_err)i);
        ck_assert_msg(snake_case(a->code), "%s: code '%s'", a->name, a->code);
        ck_assert_msg(a->message && a->message[0], "%s: no message", a->name);
        ck_assert_msg(strncmp(a->name, "ING_E_", 6) == 0, "%s: id prefix", a->name);
        for (int j = i + 1; j < ING_E_COUNT; j++)
            ck_assert_msg(strcmp(a->code, ing_api_errors[j].code) != 0, "%s and %s share '%s'",
                          a->name, ing_api_errors[j].name, a->code);
    }
}
END_TEST

START_TEST(statuses_are_errors)
{
    for (int i = 0; i < ING_E_COUNT; i++) {
        const ing_api_error *a = &ing_api_errors[i];
        ck_assert_msg(a->status >= 400 && a->status <= 599, "%s: status %d", a->name, a->status);
    }
}
END_TEST

/* A 409 may say when to retry only when the conflict ends by itself. */
static int self_clearing_conflict(ing_api_err e)
{
    return e == ING_E_IDEMPOTENCY_IN_PROGRESS || e == ING_E_NOT_CANCELLABLE_YET ||
           e == ING_E_ALREADY_IN_QUEUE ||    /* the fan's earlier join still being queued */
           e == ING_E_TICKET_CHANGE_PENDING; /* the owner applies (or drops) the change */
}

START_TEST(retry_after_only_where_a_retry_is_the_answer)
{
    for (int i = 0; i < ING_E_COUNT; i++) {
        const ing_api_error *a = &ing_api_errors[i];
        ck_assert_msg(a->retry_after_s >= 0 && a->retry_after_s <= 3600, "%s: Retry-After %d",
                      a->name, a->retry_after_s);
        int may = a->status == 429 || a->status == 503 ||
                  (a->status == 409 && self_clearing_conflict((ing_api_err)i));
        if (a->retry_after_s > 0)
            ck_assert_msg(may, "%s: Retry-After on a %d", a->name, a->status);
        /* A 503 always says when to come back (clients back off on it). */
        if (a->status == 503 || a->status == 429)
            ck_assert_msg(a->retry_after_s > 0, "%s: a %d without Retry-After", a->name, a->status);
    }
}
END_TEST

START_TEST(rows_in_enum_order)
{
    ck_assert_str_eq(ing_api_error_row(ING_E_INVALID_ID)->code, "invalid_id");
    ck_assert_int_eq(ing_api_error_row(ING_E_SOLD_OUT)->status, 409);
    ck_assert_str_eq(ing_api_error_row(ING_E_OVERLOADED)->name, "ING_E_OVERLOADED");
    ck_assert_int_eq(ing_api_error_row(ING_E_OUTCOME_UNKNOWN)->retry_after_s, 1);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("api_error");
    TCase *t = tcase_create("table");
    tcase_add_test(t, codes_unique_and_snake_case);
    tcase_add_test(t, statuses_are_errors);
    tcase_add_test(t, retry_after_only_where_a_retry_is_the_answer);
    tcase_add_test(t, rows_in_enum_order);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return ons_check_run_suite(suite());
}
