/* test_opts.c - option tables: defaults, config file, environment, ranges,
 * command-line flags. */
#include "common/err.h"
#include "common/opts.h"

#include "tests/check_run.h"

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

/* argv for ons_opts_from_args: a program name, then the arguments. */
#define ARGV(...)                                                                                  \
    (char *[])                                                                                     \
    {                                                                                              \
        "prog", __VA_ARGS__, NULL                                                                  \
    }

/* Runs ons_opts_from_args on a NULL-terminated argv. */
static int from_args(cfg *c, char **argv, char *err, size_t errlen)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    static const ons_cli cli = {NULL, "config", "usage: prog\n"};
    return ons_opts_from_args(table, N, c, argc, argv, &cli, err, errlen);
}

START_TEST(args_both_flag_forms_and_dash_names)
{
    clear_env();
    cfg c = {0};
    char err[256] = "";
    char **v = ARGV("--http-port", "9001", "--verbose=yes", "--name=flag");
    ck_assert_int_eq(from_args(&c, v, err, sizeof err), 0);
    ck_assert_int_eq(c.port, 9001);
    ck_assert_int_eq(c.verbose, 1);
    ck_assert_str_eq(c.name, "flag");
    ons_opts_free(table, N, &c);
    char **w = ARGV("--http.port=9002", "--http_port", "9003");
    ck_assert_int_eq(from_args(&c, w, err, sizeof err), 0);
    ck_assert_int_eq(c.port, 9003); /* the last one wins */
    ons_opts_free(table, N, &c);
}
END_TEST

START_TEST(args_override_env_override_file)
{
    clear_env();
    char *path = write_file("http.port = 9000\nname = filed\nverbose = yes\n");
    setenv("ONSALE_NAME", "env", 1);
    setenv("ONSALE_VERBOSE", "no", 1);
    cfg c = {0};
    char err[256] = "";
    char **v = ARGV("--config", path, "--verbose", "true");
    ck_assert_int_eq(from_args(&c, v, err, sizeof err), 0);
    ck_assert_int_eq(c.port, 9000);  /* file */
    ck_assert_str_eq(c.name, "env"); /* env over file */
    ck_assert_int_eq(c.verbose, 1);  /* flag over env */
    ons_opts_free(table, N, &c);
    char cfgflag[128];
    snprintf(cfgflag, sizeof cfgflag, "--config=%s", path);
    char **w = ARGV(cfgflag);
    ck_assert_int_eq(from_args(&c, w, err, sizeof err), 0);
    ck_assert_int_eq(c.port, 9000);
    ons_opts_free(table, N, &c);
    unlink(path);
}
END_TEST

START_TEST(args_errors_name_the_flag)
{
    clear_env();
    cfg c = {0};
    char err[256] = "";
    char **unknown = ARGV("--nope=1");
    ck_assert_int_eq(from_args(&c, unknown, err, sizeof err), ONS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "--nope"));
    ck_assert_ptr_null(c.name); /* released on error */
    ons_opts_free(table, N, &c);
    char **bad = ARGV("--http-port", "0");
    ck_assert_int_eq(from_args(&c, bad, err, sizeof err), ONS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "1..65535"));
    ons_opts_free(table, N, &c);
    char **stray = ARGV("stray");
    ck_assert_int_eq(from_args(&c, stray, err, sizeof err), ONS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "stray"));
    ons_opts_free(table, N, &c);
    char **novalue = ARGV("--name");
    ck_assert_int_eq(from_args(&c, novalue, err, sizeof err), ONS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "needs a value"));
    ons_opts_free(table, N, &c);
    char **nofile = ARGV("--config", "/nonexistent/onsale.conf");
    ck_assert_int_eq(from_args(&c, nofile, err, sizeof err), ONS_EIO);
    ons_opts_free(table, N, &c);
    setenv("ONSALE_HTTP_PORT", "x", 1); /* a bad environment fails even if a flag fixes it */
    char **fix = ARGV("--http-port", "80");
    ck_assert_int_eq(from_args(&c, fix, err, sizeof err), ONS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "ONSALE_HTTP_PORT"));
    ons_opts_free(table, N, &c);
}
END_TEST

START_TEST(args_help_wins_and_loads_nothing)
{
    clear_env();
    ck_assert_ptr_nonnull(freopen("/dev/null", "w", stdout)); /* the help text */
    cfg c = {0};
    char err[256] = "";
    char **v = ARGV("--nope", "--help");
    ck_assert_int_eq(from_args(&c, v, err, sizeof err), ONS_OPTS_HELP);
    ck_assert_ptr_null(c.name);
    char **h = ARGV("-h");
    ck_assert_int_eq(from_args(&c, h, err, sizeof err), ONS_OPTS_HELP);
    char **none = (char *[]){"prog", NULL};
    ck_assert_int_eq(from_args(&c, none, err, sizeof err), 0);
    ck_assert_str_eq(c.name, "onsale");
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
    const ons_check_case cases[] = {
        {"defaults_apply", defaults_apply},
        {"env_overrides_file_overrides_default", env_overrides_file_overrides_default},
        {"out_of_range_names_key_and_range", out_of_range_names_key_and_range},
        {"garbage_and_bad_types_rejected", garbage_and_bad_types_rejected},
        {"unknown_key_in_file_is_an_error", unknown_key_in_file_is_an_error},
        {"error_table_complete", error_table_complete},
        {"args_both_flag_forms_and_dash_names", args_both_flag_forms_and_dash_names},
        {"args_override_env_override_file", args_override_env_override_file},
        {"args_errors_name_the_flag", args_errors_name_the_flag},
        {"args_help_wins_and_loads_nothing", args_help_wins_and_loads_nothing},
    };
    return ons_check_run("opts", cases, sizeof cases / sizeof *cases, 60);
}
