/* test_opts.c - option tables: defaults, config file, environment, ranges. */
#include "common/err.h"
#include "common/opts.h"

#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct cfg {
    long long port;
    int verbose;
    char *name;
} cfg;

static const ons_opt table[] = {
    {"http.port", ONS_OPT_INT, offsetof(cfg, port), 1, 65535, "8080", "port"},
    {"verbose", ONS_OPT_BOOL, offsetof(cfg, verbose), 0, 1, "false", "chatty"},
    {"name", ONS_OPT_STR, offsetof(cfg, name), 1, 8, "onsale", "a name"},
};
#define N ONS_OPT_COUNT(table)

static void clear_env(void)
{
    unsetenv("ONSALE_HTTP_PORT");
    unsetenv("ONSALE_VERBOSE");
    unsetenv("ONSALE_NAME");
    unsetenv("ONSALE_CONFIG");
}

static char *write_file(const char *text)
{
    static char path[64];
    strcpy(path, "/tmp/onsale-opts-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

START_TEST(defaults_apply)
{
    clear_env();
    cfg c = {0};
    char err[256];
    ck_assert_int_eq(ons_opts_load(table, N, &c, NULL, err, sizeof err), 0);
    ck_assert_int_eq(c.port, 8080);
    ck_assert_int_eq(c.verbose, 0);
    ck_assert_str_eq(c.name, "onsale");
    ons_opts_free(table, N, &c);
    ck_assert_ptr_null(c.name);
}
END_TEST

START_TEST(env_overrides_file_overrides_default)
{
    clear_env();
    char *path = write_file("# comment\nhttp.port = 9000\nname=filed\n\nverbose = yes\n");
    setenv("ONSALE_NAME", "env", 1);
    cfg c = {0};
    char err[256];
    ck_assert_int_eq(ons_opts_load(table, N, &c, path, err, sizeof err), 0);
    ck_assert_int_eq(c.port, 9000);
    ck_assert_int_eq(c.verbose, 1);
    ck_assert_str_eq(c.name, "env");
    ons_opts_free(table, N, &c);
    unlink(path);
}
END_TEST

START_TEST(out_of_range_names_key_and_range)
{
    clear_env();
    setenv("ONSALE_HTTP_PORT", "70000", 1);
    cfg c = {0};
    char err[256] = "";
    ck_assert_int_eq(ons_opts_load(table, N, &c, NULL, err, sizeof err), ONS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "http.port"));
    ck_assert_ptr_nonnull(strstr(err, "1..65535"));
    ck_assert_ptr_nonnull(strstr(err, "ONSALE_HTTP_PORT"));
    ons_opts_free(table, N, &c);
}
END_TEST

START_TEST(garbage_and_bad_types_rejected)
{
    clear_env();
    cfg c = {0};
    char err[256];
    ck_assert_int_eq(ons_opts_load(table, N, &c, NULL, err, sizeof err), 0);
    ck_assert_int_eq(ons_opts_set(table, N, &c, "http.port", "80x", err, sizeof err), ONS_EINVAL);
    ck_assert_int_eq(ons_opts_set(table, N, &c, "http.port", "", err, sizeof err), ONS_EINVAL);
    ck_assert_int_eq(ons_opts_set(table, N, &c, "verbose", "maybe", err, sizeof err), ONS_EINVAL);
    ck_assert_int_eq(ons_opts_set(table, N, &c, "name", "much-too-long", err, sizeof err),
                     ONS_EINVAL);
    ck_assert_int_eq(ons_opts_set(table, N, &c, "nope", "1", err, sizeof err), ONS_ENOTFOUND);
    ck_assert_int_eq(c.port, 8080); /* failed sets change nothing */
    ck_assert_str_eq(c.name, "onsale");
    ons_opts_free(table, N, &c);
}
END_TEST

START_TEST(unknown_key_in_file_is_an_error)
{
    clear_env();
    char *path = write_file("http.prot = 9000\n");
    cfg c = {0};
    char err[256] = "";
    ck_assert_int_eq(ons_opts_load(table, N, &c, path, err, sizeof err), ONS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "http.prot"));
    ons_opts_free(table, N, &c);
    unlink(path);
    ck_assert_int_eq(ons_opts_load(table, N, &c, "/nonexistent/onsale.conf", err, sizeof err),
                     ONS_EIO);
    ons_opts_free(table, N, &c);
}
END_TEST

START_TEST(error_table_complete)
{
    ck_assert_str_eq(ons_strerror(ONS_OK), "ok");
    ck_assert_str_eq(ons_errname(ONS_EFENCED), "ONS_EFENCED");
    ck_assert_str_eq(ons_strerror(-9999), "unknown error");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("opts");
    TCase *tc = tcase_create("load");
    tcase_add_test(tc, defaults_apply);
    tcase_add_test(tc, env_overrides_file_overrides_default);
    tcase_add_test(tc, out_of_range_names_key_and_range);
    tcase_add_test(tc, garbage_and_bad_types_rejected);
    tcase_add_test(tc, unknown_key_in_file_is_an_error);
    tcase_add_test(tc, error_table_complete);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
