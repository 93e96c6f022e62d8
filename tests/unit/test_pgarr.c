/* test_pgarr.c - PostgreSQL array literals: elements, NULLs, quoting, reuse. */
#include "common/err.h"
#include "common/pgarr.h"

#include "tests/check_run.h"

#include <check.h>
#include <string.h>

START_TEST(empty_is_braces)
{
    ons_pgarr a = {0};
    ck_assert_str_eq(ons_pgarr_end(&a), "{}");
    ons_pgarrs_fini(&a, 1);
}
END_TEST

START_TEST(ints_and_nulls)
{
    ons_pgarr a = {0};
    ons_pgarr_int(&a, 1);
    ons_pgarr_int(&a, -9223372036854775807LL - 1);
    ons_pgarr_int0(&a, 0);
    ons_pgarr_int0(&a, 7);
    ons_pgarr_null(&a);
    ck_assert_str_eq(ons_pgarr_end(&a), "{1,-9223372036854775808,NULL,7,NULL}");
    ons_pgarrs_fini(&a, 1);
}
END_TEST

START_TEST(text_is_quoted_and_escaped)
{
    ons_pgarr a = {0};
    ons_pgarr_text(&a, "a b");
    ons_pgarr_text(&a, "q\"b\\s");
    ons_pgarr_text(&a, NULL);
    ons_pgarr_text(&a, "");
    ons_pgarr_text0(&a, "");
    ons_pgarr_text0(&a, NULL);
    ons_pgarr_text0(&a, "x");
    ck_assert_str_eq(ons_pgarr_end(&a), "{\"a b\",\"q\\\"b\\\\s\",NULL,\"\",NULL,NULL,\"x\"}");
    ons_pgarrs_fini(&a, 1);
}
END_TEST

START_TEST(reset_reuses_and_params_close_all)
{
    ons_pgarr a[2];
    memset(a, 0, sizeof a);
    for (int i = 0; i < 1000; i++)
        ons_pgarr_int(&a[0], i);
    ons_pgarr_text(&a[1], "x");
    const char *v[2];
    ck_assert_int_eq(ons_pgarrs_params(a, 2, v), 0);
    ck_assert_int_eq(strncmp(v[0], "{0,1,2,", 7), 0);
    ck_assert_str_eq(v[1], "{\"x\"}");
    ons_pgarrs_reset(a, 2);
    ons_pgarr_int(&a[0], 5);
    ck_assert_int_eq(ons_pgarrs_params(a, 2, v), 0);
    ck_assert_str_eq(v[0], "{5}");
    ck_assert_str_eq(v[1], "{}");
    a[1].oom = 1;
    ck_assert_int_eq(ons_pgarrs_params(a, 2, v), ONS_ENOMEM);
    ons_pgarrs_fini(a, 2);
    ck_assert_ptr_null(a[0].s);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"empty_is_braces", empty_is_braces},
        {"ints_and_nulls", ints_and_nulls},
        {"text_is_quoted_and_escaped", text_is_quoted_and_escaped},
        {"reset_reuses_and_params_close_all", reset_reuses_and_params_close_all},
    };
    return ons_check_run("pgarr", cases, sizeof cases / sizeof *cases, 60);
}
