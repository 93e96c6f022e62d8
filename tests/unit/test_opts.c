/* test_opts.c - option tables: defaults, config file, environment, ranges,
 * command-line flags. */
#include "common/auth.h"
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

/* The table loaded from the environment and the file at path (NULL: none),
 * which must succeed. */
static cfg loaded(const char *path)
{
    cfg c = {0};
    char err[256];
    ck_assert_int_eq(ons_opts_load(table, N, &c, path, err, sizeof err), 0);
    return c;
}

START_TEST(defaults_apply)
{
    clear_env();
    cfg c = loaded(NULL);
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
    cfg c = loaded(path);
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
    cfg c = loaded(NULL);
    char err[256];
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

/* A fraction: a whole number in 0..1, its default included; anything
 * else is refused, naming the key, and changes nothing. */
START_TEST(fractions_are_numbers_in_0_to_1)
{
    typedef struct share_cfg {
        double share;
    } share_cfg;
    static const ons_opt frac[] = {
        {"share", ONS_OPT_FRAC, offsetof(share_cfg, share), 0, 1, "0.25", "a share"}};
    unsetenv("ONSALE_SHARE");
    unsetenv("ONSALE_CONFIG");
    share_cfg c = {0};
    char err[256];
    ck_assert_int_eq(ons_opts_load(frac, 1, &c, NULL, err, sizeof err), 0);
    ck_assert(c.share == 0.25);
    ck_assert_int_eq(ons_opts_set(frac, 1, &c, "share", "1", err, sizeof err), 0);
    ck_assert(c.share == 1.0);
    ck_assert_int_eq(ons_opts_set(frac, 1, &c, "share", "0", err, sizeof err), 0);
    ck_assert(c.share == 0.0);
    const char *bad[] = {"1.5", "-0.1", "", "0.5x", "nan", "inf", "1e400"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        ck_assert_int_eq(ons_opts_set(frac, 1, &c, "share", bad[i], err, sizeof err), ONS_EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "option share:"));
        ck_assert_ptr_nonnull(strstr(err, "0..1"));
    }
    ck_assert(c.share == 0.0);
    setenv("ONSALE_SHARE", "2", 1);
    ck_assert_int_eq(ons_opts_load(frac, 1, &c, NULL, err, sizeof err), ONS_EINVAL);
    unsetenv("ONSALE_SHARE");
    ons_opts_free(frac, 1, &c);
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

/* A server's table with secrets, dev_mode and log.level, for ons_opts_start. */
typedef struct srv {
    char *key, *other, *level;
    int dev_mode;
} srv;

static const ons_opt srv_table[] = {
    {"api.key", ONS_OPT_STR, offsetof(srv, key), 0, 64, "dev-key", "a secret"},
    {"other.key", ONS_OPT_STR, offsetof(srv, other), 0, 64, "other-dev", "another"},
    {"log.level", ONS_OPT_STR, offsetof(srv, level), 1, 8, "info", "level"},
    {"dev_mode", ONS_OPT_BOOL, offsetof(srv, dev_mode), 0, 1, "false", "dev"},
};
#define SRV_N ONS_OPT_COUNT(srv_table)
static const ons_opt_secret srv_secrets[] = {{"api.key", "dev-key"}, {"other.key", "other-dev"}};
static const ons_start srv_start = {.cli = {NULL, "config", "usage: srv\n"},
                                    .log_name = "test",
                                    .secrets = srv_secrets,
                                    .nsecrets = 2};

static int start_with(srv *c, const char *const *args, int n)
{
    char *argv[8] = {"srv"};
    for (int i = 0; i < n; i++)
        argv[i + 1] = (char *)args[i];
    memset(c, 0, sizeof *c);
    return ons_opts_start(srv_table, SRV_N, c, n + 1, argv, &srv_start);
}

START_TEST(check_secrets_reads_the_loaded_values_by_name)
{
    clear_env();
    srv c = {0};
    char err[512];
    ck_assert_int_eq(ons_opts_load(srv_table, SRV_N, &c, NULL, err, sizeof err), 0);
    /* the development defaults are refused outside dev_mode */
    ck_assert_int_eq(ons_opts_check_secrets(srv_table, SRV_N, &c, srv_secrets, 2, err, sizeof err),
                     ONS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "api.key"));
    ck_assert_ptr_nonnull(strstr(err, "ONSALE_API_KEY"));
    /* accepted with a warning in dev_mode */
    c.dev_mode = 1;
    ck_assert_int_eq(ons_opts_check_secrets(srv_table, SRV_N, &c, srv_secrets, 2, err, sizeof err),
                     0);
    ck_assert_ptr_nonnull(strstr(err, "dev_mode"));
    c.dev_mode = 0;
    ons_opts_set(srv_table, SRV_N, &c, "api.key", "a-real-secret", err, sizeof err);
    ons_opts_set(srv_table, SRV_N, &c, "other.key", "a-real-secret", err, sizeof err);
    /* one key, one purpose */
    ck_assert_int_eq(ons_opts_check_secrets(srv_table, SRV_N, &c, srv_secrets, 2, err, sizeof err),
                     ONS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "same value"));
    /* only the first: fine */
    ck_assert_int_eq(ons_opts_check_secrets(srv_table, SRV_N, &c, srv_secrets, 1, err, sizeof err),
                     0);
    ck_assert_str_eq(err, "");
    /* a secret the table does not have is missing */
    static const ons_opt_secret nosuch[] = {{"no.such", NULL}};
    ck_assert_int_eq(ons_opts_check_secrets(srv_table, SRV_N, &c, nosuch, 1, err, sizeof err),
                     ONS_EINVAL);
    ons_opts_free(srv_table, SRV_N, &c);
}
END_TEST

static int level_not_debug(const void *dst, void *arg, char *err, size_t errlen)
{
    const srv *c = dst;
    ++*(int *)arg;
    if (strcmp(c->level, "debug") == 0) {
        snprintf(err, errlen, "no debug here");
        return ONS_EINVAL;
    }
    return 0;
}

/* The validate hook runs after loading and before the secrets: its error
 * is the one reported when both are wrong. */
START_TEST(start_validates_before_the_secrets)
{
    clear_env();
    int calls = 0;
    ons_start st = srv_start;
    st.validate = level_not_debug;
    st.validate_arg = &calls;
    srv c;
    memset(&c, 0, sizeof c);
    char *argv[] = {"srv", "--log.level=debug"};
    ck_assert_int_eq(ons_opts_start(srv_table, SRV_N, &c, 2, argv, &st), ONS_EINVAL);
    ck_assert_int_eq(calls, 1);
    ck_assert_ptr_null(c.level);
    char *ok[] = {"srv", "--dev_mode=1"};
    ck_assert_int_eq(ons_opts_start(srv_table, SRV_N, &c, 2, ok, &st), 0);
    ck_assert_int_eq(calls, 2);
    ons_opts_free(srv_table, SRV_N, &c);
}
END_TEST

START_TEST(start_loads_checks_and_frees_on_refusal)
{
    clear_env();
    srv c;
    const char *help[] = {"--help"};
    ck_assert_int_eq(start_with(&c, help, 1), ONS_OPTS_HELP);
    ck_assert_int_eq(ons_opts_exit(ONS_OPTS_HELP), 0);
    const char *bad[] = {"--log.level=verbose-too-long"};
    ck_assert_int_eq(start_with(&c, bad, 1), ONS_EINVAL);
    ck_assert_int_eq(ons_opts_exit(ONS_EINVAL), 2);
    /* refused secrets: an error, and the struct released */
    ck_assert_int_eq(start_with(&c, NULL, 0), ONS_EINVAL);
    ck_assert_ptr_null(c.key);
    ck_assert_ptr_null(c.level);
    /* good secrets: loaded, the logger up at the table's level */
    const char *good[] = {"--api.key=k1-secret", "--other.key=k2-secret", "--log.level=warn"};
    ck_assert_int_eq(start_with(&c, good, 3), 0);
    ck_assert_str_eq(c.key, "k1-secret");
    ons_opts_free(srv_table, SRV_N, &c);
    /* dev_mode lets the defaults through */
    const char *dev[] = {"--dev_mode=true"};
    ck_assert_int_eq(start_with(&c, dev, 1), 0);
    ck_assert_str_eq(c.key, "dev-key");
    ons_opts_free(srv_table, SRV_N, &c);
}
END_TEST

/* An enum option: one of the listed values, the first by default; a bad
 * value's error names the key and every allowed value. */
typedef struct link_cfg {
    char *protocol;
} link_cfg;
static const ons_opt link_table[] = {
    {"kafka.security_protocol", ONS_OPT_ENUM, offsetof(link_cfg, protocol), 0, 0, "plaintext|ssl",
     "how to reach the brokers"},
};

START_TEST(enum_default_choices_and_error)
{
    clear_env();
    unsetenv("ONSALE_KAFKA_SECURITY_PROTOCOL");
    link_cfg c = {0};
    char err[256] = "";
    ck_assert_int_eq(ons_opts_load(link_table, 1, &c, NULL, err, sizeof err), 0);
    ck_assert_str_eq(c.protocol, "plaintext");
    ck_assert_int_eq(
        ons_opts_set(link_table, 1, &c, "kafka.security_protocol", "ssl", err, sizeof err), 0);
    ck_assert_str_eq(c.protocol, "ssl");
    for (size_t i = 0; i < 4; i++) {
        static const char *bad[] = {"SSL", "ss", "sasl_ssl", ""};
        ck_assert_int_eq(
            ons_opts_set(link_table, 1, &c, "kafka.security_protocol", bad[i], err, sizeof err),
            ONS_EINVAL);
        ck_assert_str_eq(c.protocol, "ssl"); /* a failed set changes nothing */
    }
    ck_assert_str_eq(err, "option kafka.security_protocol: '' is not one of plaintext, ssl");
    ons_opts_free(link_table, 1, &c);
    ck_assert_ptr_null(c.protocol);

    setenv("ONSALE_KAFKA_SECURITY_PROTOCOL", "tls", 1);
    ck_assert_int_eq(ons_opts_load(link_table, 1, &c, NULL, err, sizeof err), ONS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "'tls' is not one of plaintext, ssl"));
    ck_assert_ptr_nonnull(strstr(err, "ONSALE_KAFKA_SECURITY_PROTOCOL"));
    ons_opts_free(link_table, 1, &c);
    unsetenv("ONSALE_KAFKA_SECURITY_PROTOCOL");
}
END_TEST

/* A struct and its table, both from the lines of test_opts.def. */
typedef struct def_cfg {
#define X(...)    ONS_OPT_FIELD(__VA_ARGS__)
#define X_IN(...) /* limits[], below */
#include "tests/unit/test_opts.def"
#undef X
#undef X_IN
    long long limits[3];
} def_cfg;

static const ons_opt def_table[] = {
#define X(...)    ONS_OPT_TABLE_ROW(def_cfg, __VA_ARGS__)
#define X_IN(...) ONS_OPT_TABLE_ROW(def_cfg, __VA_ARGS__)
#include "tests/unit/test_opts.def"
#undef X
#undef X_IN
};

/* The C type the loader writes, as a name. */
#define CTYPE_NAME(e)                                                                              \
    _Generic((e), long long: "long long", int: "int", char *: "char *", double: "double",        \
             default: "other")

START_TEST(declared_once_makes_fields_and_rows)
{
    clear_env();
    unsetenv("ONSALE_LIMIT_B");
    def_cfg c = {0};
    ck_assert_str_eq(CTYPE_NAME(c.port), "long long");
    ck_assert_str_eq(CTYPE_NAME(c.name), "char *");
    ck_assert_str_eq(CTYPE_NAME(c.share), "double");
    ck_assert_str_eq(CTYPE_NAME(c.dev_mode), "int");
    ck_assert_str_eq(CTYPE_NAME(c.brokers), "char *");
    ck_assert_str_eq(CTYPE_NAME(c.level), "char *");

    /* One row per line, in the .def's order, shared rows included. */
    static const char *names[] = {"http.port",     "name",        "share",   "dev_mode",
                                  "kafka.brokers", "kafka.topic", "limit.b", "level"};
    size_t n = ONS_OPT_COUNT(def_table);
    ck_assert_uint_eq(n, sizeof names / sizeof *names);
    for (size_t i = 0; i < n; i++)
        ck_assert_str_eq(def_table[i].name, names[i]);
    ck_assert_uint_eq(def_table[6].offset, offsetof(def_cfg, limits[1]));

    char err[256] = "";
    /* The defaults, not a stack's: scripts/test exports ONSALE_KAFKA_BROKERS
     * and others for its own ports. */
    unsetenv("ONSALE_KAFKA_BROKERS");
    unsetenv("ONSALE_KAFKA_TOPIC");
    unsetenv("ONSALE_DEV_MODE");
    unsetenv("ONSALE_SHARE");
    unsetenv("ONSALE_LEVEL");
    setenv("ONSALE_LIMIT_B", "3", 1);
    ck_assert_int_eq(ons_opts_load(def_table, n, &c, NULL, err, sizeof err), 0);
    ck_assert_int_eq(c.port, 8080);
    ck_assert_str_eq(c.name, "onsale");
    ck_assert(c.share == 0.25);
    ck_assert_int_eq(c.dev_mode, 0);
    ck_assert_str_eq(c.brokers, "127.0.0.1:19092");
    ck_assert_str_eq(c.topic, "intents");
    ck_assert_int_eq(c.limits[0], 0);
    ck_assert_int_eq(c.limits[1], 3);
    ck_assert_int_eq(c.limits[2], 0);
    ck_assert_str_eq(c.level, "low");
    ons_opts_free(def_table, n, &c);
    unsetenv("ONSALE_LIMIT_B");
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"defaults_apply", defaults_apply},
        {"env_overrides_file_overrides_default", env_overrides_file_overrides_default},
        {"out_of_range_names_key_and_range", out_of_range_names_key_and_range},
        {"garbage_and_bad_types_rejected", garbage_and_bad_types_rejected},
        {"fractions_are_numbers_in_0_to_1", fractions_are_numbers_in_0_to_1},
        {"unknown_key_in_file_is_an_error", unknown_key_in_file_is_an_error},
        {"error_table_complete", error_table_complete},
        {"args_both_flag_forms_and_dash_names", args_both_flag_forms_and_dash_names},
        {"args_override_env_override_file", args_override_env_override_file},
        {"args_errors_name_the_flag", args_errors_name_the_flag},
        {"args_help_wins_and_loads_nothing", args_help_wins_and_loads_nothing},
        {"check_secrets_reads_the_loaded_values_by_name",
         check_secrets_reads_the_loaded_values_by_name},
        {"start_loads_checks_and_frees_on_refusal", start_loads_checks_and_frees_on_refusal},
        {"start_validates_before_the_secrets", start_validates_before_the_secrets},
        {"enum_default_choices_and_error", enum_default_choices_and_error},
        {"declared_once_makes_fields_and_rows", declared_once_makes_fields_and_rows},
    };
    return ons_check_run("opts", cases, sizeof cases / sizeof *cases, 60);
}
