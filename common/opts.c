/* opts.c - loader and validator for option tables; see opts.h. */
#include "common/opts.h"
#include "common/auth.h"
#include "common/err.h"
#include "common/log.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const ons_opt *find_opt(const ons_opt *table, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

static int parse_bool(const char *v, int *out)
{
    static const char *yes[] = {"1", "true", "yes", "on"};
    static const char *no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return ONS_EINVAL;
}

/* Is value one of the '|'-separated choices? */
static int enum_has(const char *choices, const char *value)
{
    size_t len = strlen(value);
    for (const char *c = choices; c; c = strchr(c, '|') ? strchr(c, '|') + 1 : NULL) {
        const char *end = strchr(c, '|');
        size_t clen = end ? (size_t)(end - c) : strlen(c);
        if (clen == len && strncmp(c, value, len) == 0)
            return 1;
    }
    return 0;
}

/* An enum's choices "a|b|c" as "a, b, c" into buf (cap bytes). */
static const char *enum_list(const char *choices, char *buf, size_t cap)
{
    size_t i = 0;
    for (const char *c = choices; *c && i + 3 < cap; c++) {
        if (*c == '|') {
            buf[i++] = ',';
            buf[i++] = ' ';
        } else {
            buf[i++] = *c;
        }
    }
    buf[i] = '\0';
    return buf;
}

/* The default of option o as text into buf: def, or an enum's first choice. */
static const char *default_of(const ons_opt *o, char *buf, size_t cap)
{
    if (o->type != ONS_OPT_ENUM)
        return o->def;
    snprintf(buf, cap, "%.*s", (int)strcspn(o->def, "|"), o->def);
    return buf;
}

static int store_str(void *field, const char *value)
{
    char *copy = strdup(value);
    if (!copy)
        return ONS_ENOMEM;
    free(*(char **)field);
    *(char **)field = copy;
    return 0;
}

static int set_one(const ons_opt *o, void *dst, const char *value, char *errbuf, size_t errlen)
{
    char *field = (char *)dst + o->offset;
    switch (o->type) {
    case ONS_OPT_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end != '\0' || v < o->min || v > o->max) {
            snprintf(errbuf, errlen, "option %s: '%s' is not an integer in %lld..%lld", o->name,
                     value, o->min, o->max);
            return ONS_EINVAL;
        }
        *(long long *)field = v;
        return 0;
    }
    case ONS_OPT_BOOL: {
        int b;
        if (parse_bool(value, &b)) {
            snprintf(errbuf, errlen, "option %s: '%s' is not a boolean (true/false)", o->name,
                     value);
            return ONS_EINVAL;
        }
        *(int *)field = b;
        return 0;
    }
    case ONS_OPT_STR: {
        size_t len = strlen(value);
        if ((long long)len < o->min || (long long)len > o->max) {
            snprintf(errbuf, errlen, "option %s: length %zu is outside %lld..%lld", o->name, len,
                     o->min, o->max);
            return ONS_EINVAL;
        }
        return store_str(field, value);
    }
    case ONS_OPT_FRAC: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end != '\0' || !(v >= 0.0 && v <= 1.0)) {
            snprintf(errbuf, errlen, "option %s: '%s' is not a number in 0..1", o->name, value);
            return ONS_EINVAL;
        }
        *(double *)field = v;
        return 0;
    }
    case ONS_OPT_ENUM:
        if (!enum_has(o->def, value)) {
            char list[256];
            snprintf(errbuf, errlen, "option %s: '%s' is not one of %s", o->name, value,
                     enum_list(o->def, list, sizeof list));
            return ONS_EINVAL;
        }
        return store_str(field, value);
    }
    return ONS_EINVAL;
}

int ons_opts_set(const ons_opt *table, size_t n, void *dst, const char *name, const char *value,
                 char *errbuf, size_t errlen)
{
    const ons_opt *o = find_opt(table, n, name);
    if (!o) {
        snprintf(errbuf, errlen, "unknown option '%s'", name);
        return ONS_ENOTFOUND;
    }
    return set_one(o, dst, value, errbuf, errlen);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int load_file(const ons_opt *table, size_t n, void *dst, const char *path, char *errbuf,
                     size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(errbuf, errlen, "config file %s: %s", path, strerror(errno));
        return ONS_EIO;
    }
    char line[1024];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(errbuf, errlen, "config file %s:%d: expected 'key = value'", path, lineno);
            rc = ONS_EINVAL;
            break;
        }
        *eq = '\0';
        rc = ons_opts_set(table, n, dst, trim(s), trim(eq + 1), errbuf, errlen);
        if (rc == ONS_ENOTFOUND)
            rc = ONS_EINVAL; /* a typo in a config file must not pass silently */
    }
    fclose(f);
    return rc;
}

/* "kafka.brokers" -> "ONSALE_KAFKA_BROKERS" */
static void env_name(const char *name, char *out, size_t cap)
{
    size_t len = (size_t)snprintf(out, cap, "ONSALE_");
    for (; *name && len + 1 < cap; name++)
        out[len++] = (*name == '.' || *name == '-') ? '_' : (char)toupper((unsigned char)*name);
    out[len] = '\0';
}

int ons_opts_load(const ons_opt *table, size_t n, void *dst, const char *file, char *errbuf,
                  size_t errlen)
{
    int rc;
    char def[256];
    for (size_t i = 0; i < n; i++)
        if ((rc = set_one(&table[i], dst, default_of(&table[i], def, sizeof def), errbuf,
                          errlen)) != 0)
            return rc;
    if (!file)
        file = getenv("ONSALE_CONFIG");
    if (file && *file && (rc = load_file(table, n, dst, file, errbuf, errlen)) != 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        char env[128];
        env_name(table[i].name, env, sizeof env);
        const char *v = getenv(env);
        if (v && (rc = set_one(&table[i], dst, v, errbuf, errlen)) != 0) {
            size_t used = strlen(errbuf);
            snprintf(errbuf + used, errlen - used, " (from %s)", env);
            return rc;
        }
    }
    return 0;
}

void ons_opts_free(const ons_opt *table, size_t n, void *dst)
{
    for (size_t i = 0; i < n; i++) {
        if (table[i].type != ONS_OPT_STR && table[i].type != ONS_OPT_ENUM)
            continue;
        char **field = (char **)((char *)dst + table[i].offset);
        free(*field);
        *field = NULL;
    }
}

void ons_opts_usage(const ons_opt *table, size_t n)
{
    static const char *types[] = {"int", "bool", "string", "0..1", "enum"};
    for (size_t i = 0; i < n; i++) {
        char env[128], def[256];
        env_name(table[i].name, env, sizeof env);
        printf("  %-28s %-6s", table[i].name, types[table[i].type]);
        if (table[i].type == ONS_OPT_INT)
            printf(" %lld..%lld", table[i].min, table[i].max);
        if (table[i].type == ONS_OPT_ENUM)
            printf(" %s", table[i].def);
        printf(" [default %s] (%s)\n      %s\n", default_of(&table[i], def, sizeof def), env,
               table[i].help);
    }
}

/* Does flag (klen bytes, from the command line) name option name? A '-' or
 * '_' in the flag stands for any of '-', '_', '.'. */
static int flag_matches(const char *name, const char *flag, size_t klen)
{
    size_t i = 0;
    for (; i < klen && name[i]; i++) {
        char f = flag[i], c = name[i];
        if (f == c)
            continue;
        if ((f == '-' || f == '_') && (c == '-' || c == '_' || c == '.'))
            continue;
        return 0;
    }
    return i == klen && name[i] == '\0';
}

/* One command-line flag: "--key=value" or "--key value". */
typedef struct flag {
    const char *key; /* after the dashes, klen bytes */
    size_t klen;
    const char *value;
} flag;

/* Reads the flag at argv[*i] and advances *i past its value. Returns 0 or
 * ONS_EINVAL (errbuf says why). */
static int next_flag(int argc, char **argv, int *i, flag *f, char *errbuf, size_t errlen)
{
    const char *a = argv[*i];
    if (strncmp(a, "--", 2) != 0 || a[2] == '\0' || a[2] == '=') {
        snprintf(errbuf, errlen, "unexpected argument '%s' (see --help)", a);
        return ONS_EINVAL;
    }
    f->key = a + 2;
    const char *eq = strchr(f->key, '=');
    f->klen = eq ? (size_t)(eq - f->key) : strlen(f->key);
    if (eq) {
        f->value = eq + 1;
    } else if (*i + 1 < argc) {
        f->value = argv[++*i];
    } else {
        snprintf(errbuf, errlen, "%s needs a value", a);
        return ONS_EINVAL;
    }
    return 0;
}

/* Sets the option flag f names. Returns 0 or an error (errbuf says why). */
static int set_flag(const ons_opt *table, size_t n, void *dst, const flag *f, char *errbuf,
                    size_t errlen)
{
    for (size_t k = 0; k < n; k++)
        if (strncmp(table[k].name, f->key, f->klen) == 0 && table[k].name[f->klen] == '\0')
            return set_one(&table[k], dst, f->value, errbuf, errlen);
    for (size_t k = 0; k < n; k++)
        if (flag_matches(table[k].name, f->key, f->klen))
            return set_one(&table[k], dst, f->value, errbuf, errlen);
    snprintf(errbuf, errlen, "unknown option '--%.*s' (see --help)", (int)f->klen, f->key);
    return ONS_EINVAL;
}

/* The config file named on the command line, or NULL. Returns 0 or
 * ONS_EINVAL (a malformed argument; errbuf says which). */
static int find_config(int argc, char **argv, const char *config_flag, const char **config,
                       char *errbuf, size_t errlen)
{
    flag f;
    int rc;
    *config = NULL;
    for (int i = 1; i < argc; i++) {
        if ((rc = next_flag(argc, argv, &i, &f, errbuf, errlen)) != 0)
            return rc;
        if (strlen(config_flag) == f.klen && strncmp(f.key, config_flag, f.klen) == 0)
            *config = f.value;
    }
    return 0;
}

int ons_opts_from_args(const ons_opt *table, size_t n, void *dst, int argc, char **argv,
                       const ons_cli *cli, char *errbuf, size_t errlen)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(cli->usage, stdout);
            ons_opts_usage(table, n);
            return ONS_OPTS_HELP;
        }
    }
    /* The file first: it comes before the environment and the flags. */
    const char *config;
    int rc = find_config(argc, argv, cli->config_flag, &config, errbuf, errlen);
    if (rc == 0)
        rc = ons_opts_load(table, n, dst, config, errbuf, errlen);
    for (int i = 1; rc == 0 && i < argc; i++) {
        flag f;
        next_flag(argc, argv, &i, &f, errbuf, errlen); /* find_config checked them all */
        if (strlen(cli->config_flag) != f.klen || strncmp(f.key, cli->config_flag, f.klen) != 0)
            rc = set_flag(table, n, dst, &f, errbuf, errlen);
    }
    if (rc != 0) {
        if (cli->prog)
            fprintf(stderr, "%s: %s\n", cli->prog, errbuf);
        ons_opts_free(table, n, dst);
    }
    return rc;
}

/* The string option name of dst, or NULL (no such string option). */
static const char *str_opt(const ons_opt *table, size_t n, const void *dst, const char *name)
{
    const ons_opt *o = find_opt(table, n, name);
    if (!o || o->type != ONS_OPT_STR)
        return NULL;
    return *(char *const *)((const char *)dst + o->offset);
}

int ons_opts_check_secrets(const ons_opt *table, size_t n, const void *dst, const ons_opt_secret *s,
                           size_t ns, char *errbuf, size_t errlen)
{
    /* Like ons_secrets_check's: a binary has a handful of secrets. */
    enum { MAX_SECRETS = 8 };
    ons_secret v[MAX_SECRETS];
    if (ns > MAX_SECRETS) {
        snprintf(errbuf, errlen, "more than %d secret options", (int)MAX_SECRETS);
        return ONS_EINVAL;
    }
    for (size_t i = 0; i < ns; i++) {
        v[i].option = s[i].option;
        v[i].value = str_opt(table, n, dst, s[i].option);
        v[i].dev_default = s[i].dev_default;
    }
    const ons_opt *dev = find_opt(table, n, "dev_mode");
    int dev_mode =
        dev && dev->type == ONS_OPT_BOOL ? *(const int *)((const char *)dst + dev->offset) : 0;
    return ons_secrets_check(v, ns, dev_mode, errbuf, errlen);
}

/* Does o's value in dst differ from its default? */
static int differs_from_default(const ons_opt *o, const void *dst)
{
    const char *field = (const char *)dst + o->offset;
    const char *def = o->def ? o->def : "";
    int b = 0;
    char buf[256];
    switch (o->type) {
    case ONS_OPT_INT:
        return *(const long long *)(const void *)field != strtoll(def, NULL, 10);
    case ONS_OPT_BOOL:
        return parse_bool(def, &b) == 0 && *(const int *)(const void *)field != b;
    case ONS_OPT_FRAC:
        return *(const double *)(const void *)field != strtod(def, NULL);
    default: {
        const char *v = *(char *const *)(const void *)field, *d = default_of(o, buf, sizeof buf);
        return strcmp(v ? v : "", d ? d : "") != 0;
    }
    }
}

/* Every debug.* option (test-only switches: some re-enable a fixed hazard
 * as a test's control) set away from its default is said at start, so a
 * production node running with one is seen in its first log lines. */
static void warn_debug_options(const ons_opt *table, size_t n, const void *dst)
{
    for (size_t i = 0; i < n; i++)
        if (strncmp(table[i].name, "debug.", 6) == 0 && differs_from_default(&table[i], dst))
            ons_log_warn("%s is set away from its default: a test-only option, never for "
                         "production",
                         table[i].name);
}

int ons_opts_start(const ons_opt *table, size_t n, void *dst, int argc, char **argv,
                   const ons_start *st)
{
    char err[512];
    int rc = ons_opts_from_args(table, n, dst, argc, argv, &st->cli, err, sizeof err);
    if (rc)
        return rc;
    err[0] = '\0';
    if (st->validate)
        rc = st->validate(dst, st->validate_arg, err, sizeof err);
    if (rc == 0 && st->nsecrets)
        rc = ons_opts_check_secrets(table, n, dst, st->secrets, st->nsecrets, err, sizeof err);
    if (rc) {
        if (st->cli.prog)
            fprintf(stderr, "%s: %s\n", st->cli.prog, err);
        ons_opts_free(table, n, dst);
        return rc;
    }
    const char *level = str_opt(table, n, dst, "log.level");
    ons_log_init(st->log_name, level ? level : "info");
    if (err[0])
        ons_log_warn("%s", err);
    warn_debug_options(table, n, dst);
    return 0;
}
