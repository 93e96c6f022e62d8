/*
 * opts.h - table-driven options: defaults <- config file <- environment.
 *
 * Each binary describes its options struct with a table of ons_opt rows
 * ({name, type, offset, min, max, default, help}). ons_opts_load() fills the
 * struct from the defaults, then a config file of "key = value" lines, then
 * environment variables named ONSALE_<KEY> (key upper-cased, '.' and '-' as
 * '_'), and validates every value against its range. On error it writes a
 * message naming the bad key and the allowed range (or values) into errbuf.
 *
 * ons_opts_from_args() is what every binary's main calls: the same, then
 * command-line flags on top, and --help.
 *
 * Strings are heap copies owned by the struct; ons_opts_free() releases them.
 *
 * Each option is declared once: a binary lists its options in its
 * options.def, one line each,
 *   X(field, type, "name", min, max, "default", "help")
 * (the rows several binaries share: the *_ROW(S) macros below, called with
 * X), and expands that list twice, into the struct's fields and into the
 * table's rows:
 *   typedef struct foo_opts {
 *   #define X(...) ONS_OPT_FIELD(__VA_ARGS__)
 *   #include "foo/options.def"
 *   #undef X
 *   } foo_opts;
 *   static const ons_opt opt_table[] = {
 *   #define X(...) ONS_OPT_TABLE_ROW(foo_opts, __VA_ARGS__)
 *   #include "foo/options.def"
 *   #undef X
 *   };
 * A value held inside a field the struct declares by hand (an array
 * element, a member of a nested struct) is an X_IN(path, type, ...) line:
 * a table row only (#define X_IN(...) ONS_OPT_TABLE_ROW(...) for the table,
 * nothing for the struct). The .def's order is the table's, so --help's.
 */
#ifndef ONSALE_COMMON_OPTS_H
#define ONSALE_COMMON_OPTS_H

#include <stddef.h>

enum ons_opt_type {
    ONS_OPT_INT,  /* long long; min..max inclusive */
    ONS_OPT_BOOL, /* int 0/1; accepts true/false/yes/no/on/off/1/0 */
    ONS_OPT_STR,  /* char *; min..max is the allowed length */
    ONS_OPT_FRAC, /* double, a fraction in 0..1 (a share, a rate); min, max unused */
    ONS_OPT_ENUM, /* char *, one of the values def lists as "a|b|c"; the first is the
                     default (min, max unused) */
};

typedef struct ons_opt {
    const char *name; /* "kafka.brokers" */
    enum ons_opt_type type;
    size_t offset; /* offsetof(struct, field) */
    long long min, max;
    const char *def; /* default, as text */
    const char *help;
} ons_opt;

#define ONS_OPT_COUNT(table) (sizeof(table) / sizeof((table)[0]))

/* The C type of the field that holds an option of type t (ONS_OPT_INT...),
 * as the loader writes it. */
#define ONS_OPT_CTYPE(t)           ONS_OPT_CTYPE_##t
#define ONS_OPT_CTYPE_ONS_OPT_INT  long long
#define ONS_OPT_CTYPE_ONS_OPT_BOOL int
#define ONS_OPT_CTYPE_ONS_OPT_STR  char *
#define ONS_OPT_CTYPE_ONS_OPT_FRAC double
#define ONS_OPT_CTYPE_ONS_OPT_ENUM char *

/* 0, or a compile error when field of struct T is not of the C type of an
 * option of type t (a row that would write past or into the wrong field). */
#define ONS_OPT_TYPE_CHECK(T, field, t)                                                            \
    (0 * sizeof(char[_Generic(((T *)0)->field, ONS_OPT_CTYPE(t) : 1, default : -1)]))

/* One row of an options table for the options struct T, its field's type
 * checked against the option's. */
#define ONS_OPT_ROW(T, name, type, field, min, max, def, help)                                     \
    {                                                                                              \
        name, type, offsetof(T, field) + ONS_OPT_TYPE_CHECK(T, field, type), min, max, def, help   \
    }

/* The two expansions of an options.def line X(field, type, name, min, max,
 * def, help): a field of the struct, and a row of the table for struct T. */
#define ONS_OPT_FIELD(field, type, name, min, max, def, help) ONS_OPT_CTYPE(type) field;
#define ONS_OPT_TABLE_ROW(T, field, type, name, min, max, def, help)                               \
    ONS_OPT_ROW(T, name, type, field, min, max, def, help),

/* Rows that several binaries' tables share, the same in each, as
 * options.def lines: X is the .def's X, field the member that holds the
 * value. */
/* dev_mode, which ons_opts_check_secrets() reads (ONS_DEV_MODE_HELP:
 * common/auth.h). */
#define ONS_OPT_DEV_MODE_ROW(X, field)                                                             \
    X(field, ONS_OPT_BOOL, "dev_mode", 0, 1, "false", ONS_DEV_MODE_HELP)
/* log.level, which ons_opts_start() gives ons_log_init(); at most maxlen
 * characters. */
#define ONS_OPT_LOG_LEVEL_ROW(X, field, maxlen)                                                    \
    X(field, ONS_OPT_STR, "log.level", 1, maxlen, "info", "debug, info, warn or error")

/* redis.host, redis.port, redis.prefix, redis.timeout_ms and redis.down_ms: the Redis a
 * process keeps its status store on (queue/status.h's q_status_opts). */
#define ONS_OPT_REDIS_ROWS(X, host, port, prefix, timeout_ms, down_ms)                             \
    X(host, ONS_OPT_STR, "redis.host", 1, 255, "127.0.0.1", "Redis host")                          \
    X(port, ONS_OPT_INT, "redis.port", 1, 65535, "16379", "Redis port")                            \
    X(prefix, ONS_OPT_STR, "redis.prefix", 0, 64, "onsale:", "prefix of every Redis key")          \
    X(timeout_ms, ONS_OPT_INT, "redis.timeout_ms", 10, 60000, "500",                               \
      "timeout of one Redis round trip")                                                           \
    X(down_ms, ONS_OPT_INT, "redis.down_ms", 0, 60000, "1000",                                     \
      "after a Redis round trip timed out (Redis hung), that connection sends nothing for this "   \
      "long: its calls fail at once meanwhile instead of each waiting redis.timeout_ms (0: "       \
      "every call waits again)")
/* The keys below are read by several processes that must agree on them (the
 * same cluster, topics, database and keys): each row declares the name, type,
 * range and default once; help, where a row takes it, says what that binary
 * does with the value. */
/* kafka.brokers and kafka.topic: the cluster and the topic of intents (the
 * control lane's topic is named after it). */
#define ONS_OPT_KAFKA_BROKERS_ROW(X, field, help)                                                  \
    X(field, ONS_OPT_STR, "kafka.brokers", 1, 1024, "127.0.0.1:19092", help)
#define ONS_OPT_KAFKA_TOPIC_ROW(X, field, help)                                                    \
    X(field, ONS_OPT_STR, "kafka.topic", 1, 249, "intents", help)
#define ONS_OPT_KAFKA_ROWS(X, brokers, topic)                                                      \
    ONS_OPT_KAFKA_BROKERS_ROW(X, brokers, "Kafka bootstrap servers")                               \
    ONS_OPT_KAFKA_TOPIC_ROW(X, topic, "topic of intents")
/* kafka.control_topic: the control lane, co-partitioned with kafka.topic;
 * "" names it <kafka.topic>.control in every process. */
#define ONS_OPT_KAFKA_CONTROL_TOPIC_ROW(X, field, help)                                            \
    X(field, ONS_OPT_STR, "kafka.control_topic", 0, 249, "", help)

/* pg.dsn, a libpq connection string; the local stack's database is
 * ONS_PG_DSN_LOCAL (a default may add connection settings to it). */
#define ONS_PG_DSN_LOCAL                        "host=127.0.0.1 port=15432 dbname=onsale user=postgres"
#define ONS_OPT_PG_DSN_ROW(X, field, def, help) X(field, ONS_OPT_STR, "pg.dsn", 1, 1024, def, help)

/* auth.secret and ids.secret, with the bounds and public development
 * defaults of common/auth.h (ons_opts_check_secrets refuses those outside
 * dev_mode). */
#define ONS_OPT_AUTH_SECRET_ROW(X, field, help)                                                    \
    X(field, ONS_OPT_STR, "auth.secret", ONS_AUTH_SECRET_MIN, ONS_AUTH_SECRET_MAX,                 \
      ONS_AUTH_SECRET_DEV, help)
#define ONS_OPT_IDS_SECRET_ROW(X, field, help)                                                     \
    X(field, ONS_OPT_STR, "ids.secret", ONS_AUTH_SECRET_MIN, ONS_AUTH_SECRET_MAX,                  \
      ONS_IDS_SECRET_DEV, help)
/* The payment gateway's API key, under the name the binary gives it
 * (gateway.api_key, payments.api_key: common/auth.h). */
#define ONS_OPT_GATEWAY_KEY_ROW(X, name, field, help)                                              \
    X(field, ONS_OPT_STR, name, ONS_GATEWAY_KEY_MIN, 255, ONS_GATEWAY_KEY_DEV, help)

/* Fills dst from defaults, then file (may be NULL: then ONSALE_CONFIG names
 * it, if set), then the environment. Returns 0, ONS_EINVAL (bad value; errbuf
 * names the key and range) or ONS_EIO (file unreadable). On error dst is left
 * in a state ons_opts_free() can release. */
int ons_opts_load(const ons_opt *table, size_t n, void *dst, const char *file, char *errbuf,
                  size_t errlen);

/* Sets one option by name from text, validating it. Used by the loader and
 * by command-line flags. Returns 0, ONS_ENOTFOUND (no such key) or
 * ONS_EINVAL (errbuf says why). */
int ons_opts_set(const ons_opt *table, size_t n, void *dst, const char *name, const char *value,
                 char *errbuf, size_t errlen);

/* ons_opts_from_args() returned after printing the help. */
#define ONS_OPTS_HELP 1

/* How a binary's command line reads (see ons_opts_from_args). */
typedef struct ons_cli {
    const char *prog;        /* "onsale-worker": prefixes errors on stderr; NULL: silent */
    const char *config_flag; /* the config file's flag without dashes: "config", "scenario" */
    const char *usage;       /* --help prints it, then the option list */
} ons_cli;

/* Fills dst from defaults <- config file <- environment <- command line, the
 * whole of a binary's argv (argv[0] is skipped):
 *   --help, -h            print cli->usage, then the option list, to stdout
 *                         and return ONS_OPTS_HELP
 *   --CONFIG FILE, --CONFIG=FILE
 *                         the config file (CONFIG is cli->config_flag);
 *                         without it ONSALE_CONFIG, as in ons_opts_load()
 *   --KEY VALUE, --KEY=VALUE
 *                         set option KEY after the file and environment; a
 *                         '-' or '_' in KEY also matches '.', '_' or '-' in
 *                         the name, so --burst-ms, --kafka-brokers and
 *                         --kafka.brokers all work.
 * Returns 0, ONS_OPTS_HELP, or a negative error (ONS_EINVAL: bad value,
 * unknown flag or stray argument; ONS_EIO: unreadable file; ONS_ENOMEM)
 * with errbuf saying what, also printed as "PROG: message" on stderr.
 * Unless it returns 0, dst has been released with ons_opts_free() (freeing
 * it again is harmless): a main returns 0 on ONS_OPTS_HELP, else 2. */
int ons_opts_from_args(const ons_opt *table, size_t n, void *dst, int argc, char **argv,
                       const ons_cli *cli, char *errbuf, size_t errlen);

/* A secret option of a table: its name and its public development default
 * (common/auth.h). */
typedef struct ons_opt_secret {
    const char *option;      /* "ids.secret" */
    const char *dev_default; /* ONS_IDS_SECRET_DEV */
} ons_opt_secret;

/* ons_secrets_check() on the loaded values of the ns secret options named
 * in s (looked up in table, read from dst), with dev_mode the value of
 * dst's "dev_mode" option (off when the table has none). Returns 0, with
 * errbuf "" or a dev_mode warning to show, or ONS_EINVAL with errbuf
 * naming the first bad option. */
int ons_opts_check_secrets(const ons_opt *table, size_t n, const void *dst, const ons_opt_secret *s,
                           size_t ns, char *errbuf, size_t errlen);

/* How a server binary starts (ons_opts_start). */
typedef struct ons_start {
    ons_cli cli;
    const char *log_name;          /* ons_log_init's process name: "worker" */
    const ons_opt_secret *secrets; /* checked after validate (may be NULL) */
    size_t nsecrets;
    /* Checks that span options (may be NULL), before the secrets: 0, or an
     * error with errbuf saying what. arg is validate_arg. */
    int (*validate)(const void *dst, void *arg, char *errbuf, size_t errlen);
    void *validate_arg;
} ons_start;

/* A server's whole option start-up, the same in every main:
 * ons_opts_from_args(), then st->validate and ons_opts_check_secrets()
 * (refused: "PROG: message" on stderr), then ons_log_init(st->log_name, the "log.level"
 * option) and the dev_mode warning, if any, logged. Returns 0 (logger up),
 * ONS_OPTS_HELP, or a negative error with dst released: a main returns 0 on
 * ONS_OPTS_HELP, else 2 (ons_opts_exit). */
int ons_opts_start(const ons_opt *table, size_t n, void *dst, int argc, char **argv,
                   const ons_start *st);

/* The exit status of a main whose ons_opts_start / ons_opts_from_args
 * returned rc != 0: 0 after --help, 2 for bad usage. */
static inline int ons_opts_exit(int rc)
{
    return rc == ONS_OPTS_HELP ? 0 : 2;
}

/* Frees the strings owned by dst. Safe on a zeroed or half-loaded struct. */
void ons_opts_free(const ons_opt *table, size_t n, void *dst);

/* Writes the table as "name (type, range) default: help" lines to stdout. */
void ons_opts_usage(const ons_opt *table, size_t n);

#endif
