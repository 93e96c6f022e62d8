/*
 * fuzz_config.c - libFuzzer target for the config reader (common/opts.c):
 * the config file, ONSALE_* environment variables and command-line flags,
 * read by ons_opts_from_args() as every binary's main does.
 *
 * Input: three parts separated by NUL bytes:
 *   <config file text> \0 <env lines KEY=VALUE> \0 <args, one per line>
 * Env keys get the ONSALE_ prefix (ONSALE_CONFIG is skipped: the target owns
 * which file is read); args that would name another config file, and
 * --help/-h (which only prints), are dropped; a non-empty file part is
 * written to a private temporary file passed as --config.
 * The table has every option type and name shape the binaries use (a copy
 * of rows of ingress/main.c's table, plus the extremes of each type).
 * Oracle, besides ASan/UBSan/LSan: on success every value is in its range
 * and every string set; on failure errbuf says why and every string of the
 * struct has been released (opts.h's contract).
 */
#include "common/err.h"
#include "common/opts.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct fz_opts {
    long long http_port;
    char *http_bind;
    long long max_body;
    char *kafka_brokers;
    long long partitions;
    char *pg_read_dsn;
    int log_requests;
    long long burst_ms;
    long long signed_any;
    char *secret;
    int dev_mode;
    double share;
    char *security_protocol;
} fz_opts;

#define OPT(n, t, f, lo, hi, d)                                                                    \
    {                                                                                              \
        n, t, offsetof(fz_opts, f), lo, hi, d, "fuzz"                                              \
    }
static const ons_opt table[] = {
    OPT("http.port", ONS_OPT_INT, http_port, 0, 65535, "8080"),
    OPT("http.bind", ONS_OPT_STR, http_bind, 1, 255, "127.0.0.1"),
    OPT("http.max_body", ONS_OPT_INT, max_body, 64, 1048576, "16384"),
    OPT("kafka.brokers", ONS_OPT_STR, kafka_brokers, 1, 1024, "127.0.0.1:19092"),
    OPT("kafka.partitions", ONS_OPT_INT, partitions, 0, 65536, "0"),
    OPT("pg.read_dsn", ONS_OPT_STR, pg_read_dsn, 0, 1024, ""),
    OPT("log.requests", ONS_OPT_BOOL, log_requests, 0, 1, "false"),
    OPT("burst-ms", ONS_OPT_INT, burst_ms, 1, 3600000, "1000"),
    OPT("x.signed_any", ONS_OPT_INT, signed_any, INT64_MIN, INT64_MAX, "-1"),
    OPT("auth.secret", ONS_OPT_STR, secret, 16, 4096, "onsale-dev-secret-change-me"),
    OPT("dev_mode", ONS_OPT_BOOL, dev_mode, 0, 1, "0"),
    OPT("x.share", ONS_OPT_FRAC, share, 0, 1, "0.5"),
    OPT("kafka.security_protocol", ONS_OPT_ENUM, security_protocol, 0, 0, "plaintext|ssl"),
};
#define NOPT ONS_OPT_COUNT(table)

#define MAX_ENV  16
#define MAX_ARGS 32

static char cfg_path[64];

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_config: %s (%s)\n", what, detail ? detail : "-");
    abort();
}

/* Part k of the input (NUL-separated) as a NUL-terminated heap copy. */
static char *part(const uint8_t *data, size_t size, int k)
{
    size_t i = 0;
    for (int p = 0; p < k; p++) {
        const uint8_t *z = memchr(data + i, 0, size - i);
        if (!z)
            return strdup("");
        i = (size_t)(z - data) + 1;
    }
    const uint8_t *z = memchr(data + i, 0, size - i);
    size_t n = z ? (size_t)(z - (data + i)) : size - i;
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, data + i, n);
        s[n] = '\0';
    }
    return s;
}

/* Would this argument name the config file (or ask for help)? */
static int reserved_arg(const char *a)
{
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
        return 1;
    if (strncmp(a, "--", 2) != 0)
        return 0;
    size_t klen = strcspn(a + 2, "=");
    return klen == 6 && strncmp(a + 2, "config", 6) == 0;
}

static void check_ok(const fz_opts *o)
{
    for (size_t i = 0; i < NOPT; i++) {
        const char *f = (const char *)o + table[i].offset;
        switch (table[i].type) {
        case ONS_OPT_INT: {
            long long v;
            memcpy(&v, f, sizeof v);
            if (v < table[i].min || v > table[i].max)
                fail("an integer out of its range was accepted", table[i].name);
            break;
        }
        case ONS_OPT_BOOL: {
            int v;
            memcpy(&v, f, sizeof v);
            if (v != 0 && v != 1)
                fail("a boolean is neither 0 nor 1", table[i].name);
            break;
        }
        case ONS_OPT_STR: {
            char *s;
            memcpy(&s, f, sizeof s);
            if (!s)
                fail("a string option is unset", table[i].name);
            long long n = (long long)strlen(s);
            if (n < table[i].min || n > table[i].max)
                fail("a string of a length out of range was accepted", table[i].name);
            break;
        }
        case ONS_OPT_FRAC: {
            double v;
            memcpy(&v, f, sizeof v);
            if (!(v >= 0.0 && v <= 1.0))
                fail("a fraction out of 0..1 was accepted", table[i].name);
            break;
        }
        case ONS_OPT_ENUM: {
            char *s;
            memcpy(&s, f, sizeof s);
            if (!s || (strcmp(s, "plaintext") != 0 && strcmp(s, "ssl") != 0))
                fail("an enum option holds a value not listed", table[i].name);
            break;
        }
        }
    }
}

static void remove_cfg(void)
{
    unlink(cfg_path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cfg_path[0]) {
        snprintf(cfg_path, sizeof cfg_path, "/tmp/onsale-fuzz-config-XXXXXX");
        int fd = mkstemp(cfg_path);
        if (fd < 0)
            abort();
        close(fd);
        atexit(remove_cfg);
    }
    unsetenv("ONSALE_CONFIG");
    char *file = part(data, size, 0), *envs = part(data, size, 1), *args = part(data, size, 2);
    if (!file || !envs || !args)
        goto out;

    if (file[0]) {
        FILE *f = fopen(cfg_path, "w");
        if (!f)
            abort();
        fputs(file, f);
        fclose(f);
    }

    char *env_names[MAX_ENV];
    int nenv = 0;
    for (char *save = NULL, *line = strtok_r(envs, "\n", &save); line && nenv < MAX_ENV;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq || eq == line)
            continue;
        *eq = '\0';
        char name[160];
        snprintf(name, sizeof name, "ONSALE_%s", line);
        if (strcmp(name, "ONSALE_CONFIG") == 0 || strchr(name, '='))
            continue;
        if (setenv(name, eq + 1, 1) == 0)
            env_names[nenv++] = strdup(name);
    }

    char *argv[MAX_ARGS + 3];
    int argc = 0;
    argv[argc++] = "fuzz_config";
    for (char *save = NULL, *a = strtok_r(args, "\n", &save); a && argc < MAX_ARGS;
         a = strtok_r(NULL, "\n", &save))
        if (!reserved_arg(a))
            argv[argc++] = a;
    if (file[0]) {
        argv[argc++] = "--config";
        argv[argc++] = cfg_path;
    }
    argv[argc] = NULL;

    fz_opts o;
    memset(&o, 0, sizeof o);
    char err[256] = "";
    static const ons_cli cli = {NULL, "config", "usage: fuzz_config\n"};
    int rc = ons_opts_from_args(table, NOPT, &o, argc, argv, &cli, err, sizeof err);
    if (rc == 0) {
        check_ok(&o);
    } else {
        if (rc == ONS_OPTS_HELP)
            fail("help without --help", NULL);
        if (!err[0] || !memchr(err, '\0', sizeof err))
            fail("an error without a message", NULL);
        if (o.http_bind || o.kafka_brokers || o.pg_read_dsn || o.secret)
            fail("a failed load left strings allocated", err);
    }
    ons_opts_free(table, NOPT, &o);
    ons_opts_free(table, NOPT, &o); /* documented as harmless */

    for (int i = 0; i < nenv; i++) {
        unsetenv(env_names[i]);
        free(env_names[i]);
    }
out:
    free(file);
    free(envs);
    free(args);
    return 0;
}
