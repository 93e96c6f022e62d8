/*
 * check_run.h - the main() of a Check suite: one test case per named test,
 * each with a timeout, run in one runner; the exit status says whether all
 * passed.
 *
 *     int main(void)
 *     {
 *         const ons_check_case cases[] = {{"order", pops_in_order}, ...};
 *         return ons_check_run("heap", cases, sizeof cases / sizeof *cases, 30);
 *     }
 */
#ifndef ONSALE_TESTS_CHECK_RUN_H
#define ONSALE_TESTS_CHECK_RUN_H

#include <check.h>
#include <stddef.h>
#include <stdlib.h>

typedef struct ons_check_case {
    const char *name;
    const TTest *test;
} ons_check_case;

/* A case named after its test: ONS_CHECK_CASE(pops_in_order). */
#define ONS_CHECK_CASE(test)                                                                       \
    {                                                                                              \
#test, test                                                                                \
    }

/* Runs a suite built by hand (test cases of their own shape). */
static inline int ons_check_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* The same with a checked fixture: setup and teardown (either may be NULL)
 * run in each test's own process around it. */
static inline int ons_check_run_fixture(const char *name, const ons_check_case *cases, size_t n,
                                        double timeout_s, void (*setup)(void),
                                        void (*teardown)(void))
{
    Suite *s = suite_create(name);
    for (size_t i = 0; i < n; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, timeout_s);
        if (setup || teardown)
            tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return ons_check_run_suite(s);
}

static inline int ons_check_run(const char *name, const ons_check_case *cases, size_t n,
                                double timeout_s)
{
    return ons_check_run_fixture(name, cases, n, timeout_s, NULL, NULL);
}

#endif
