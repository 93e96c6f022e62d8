/*
 * onsalectl.c - the operator's command line.
 *
 *   onsalectl [--config FILE] COMMAND [ARGS]
 *
 * Commands are rows of one table {name, args, summary, run}; adding one (audit,
 * queue views, pause/resume) is a new row and a run function. Options come
 * from the common/opts.h table below: defaults, then the config file
 * (--config FILE or ONSALE_CONFIG), then ONSALE_<KEY> environment variables.
 *
 * Exit status: 0 success, 1 failure while running (including a bad option
 * value), 2 usage error (unknown command or flag, missing or malformed
 * argument), with a message on stderr.
 */
#include "admin/audit.h"
#include "common/auth.h"
#include "common/err.h"
#include "common/opts.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_USAGE 2

#define TOKEN_TTL_DEFAULT 3600
#define TOKEN_TTL_MAX     (366LL * 24 * 3600)

/* The options: a field per line of onsalectl_options.def. */
typedef struct ctl_opts {
#define X(...) ONS_OPT_FIELD(__VA_ARGS__)
#include "admin/onsalectl_options.def"
#undef X
} ctl_opts;

/* The options (admin/onsalectl_options.def), one row each. */
static const ons_opt opt_table[] = {
#define X(...) ONS_OPT_TABLE_ROW(ctl_opts, __VA_ARGS__)
#include "admin/onsalectl_options.def"
#undef X
};

typedef struct ctl {
    const char *config; /* --config FILE, or NULL */
    ctl_opts opts;
} ctl;

typedef struct command {
    const char *name;
    const char *args;
    const char *summary;
    int needs_opts; /* load the options table before run */
    int (*run)(ctl *c, int argc, char **argv);
} command;

static int cmd_help(ctl *c, int argc, char **argv);
static int cmd_token(ctl *c, int argc, char **argv);
static int cmd_audit(ctl *c, int argc, char **argv);
static int cmd_verify_draw(ctl *c, int argc, char **argv);

static const command commands[] = {
    {"token", "--user ID --role fan|seller|scanner|admin [--ttl SECONDS]",
     "print a JWT for user ID with ROLE, valid for SECONDS (default 3600, at most 366 days)", 1,
     cmd_token},
    {"audit", "[--event ID] [--sim-log FILE]",
     "check the invariants (no seat held or sold twice, sold <= capacity, every accepted intent "
     "reached a consistent state, FIFO, positions never increased, charges = tickets + refunds); "
     "exit 1 on any violation",
     1, cmd_audit},
    {"verify-draw", "--event ID",
     "recompute the event's pre-queue draw (seed vs commitment, order by HMAC-SHA256(seed, "
     "intent_id)) and audit that grants followed it; prints pass or fail, exit 1 on fail",
     1, cmd_verify_draw},
    {"help", "[COMMAND]", "show this help, or one command's usage", 0, cmd_help},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* Writes the full usage (commands and options) to out. */
static void usage(FILE *out)
{
    fprintf(out, "usage: onsalectl [--config FILE] COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  onsalectl %s %s\n      %s\n", commands[i].name, commands[i].args,
                commands[i].summary);
    if (out == stdout) {
        printf("\noptions (config file lines 'key = value', or the environment):\n");
        ons_opts_usage(opt_table, ONS_OPT_COUNT(opt_table));
    }
}

/* Reports a usage error about command cmd (NULL: the global syntax) and
 * returns the usage exit status. */
static int usage_error(const command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_error(const command *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "onsalectl: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (cmd)
        fprintf(stderr, "\nusage: onsalectl %s %s\n", cmd->name, cmd->args);
    else
        fprintf(stderr, "\nrun 'onsalectl help' for the list of commands\n");
    return EXIT_USAGE;
}

/* The answer to a flag every command reads alike: --help, a flag missing
 * its value (':'), an unknown flag. */
static int shared_flag(const command *self, int opt, char **argv)
{
    switch (opt) {
    case 'h':
        printf("usage: onsalectl %s %s\n    %s\n", self->name, self->args, self->summary);
        return 0;
    case ':':
        return usage_error(self, "%s needs a value", argv[optind - 1]);
    default:
        return usage_error(self, "unknown flag '%s'", argv[optind - 1]);
    }
}

/* onsalectl help [COMMAND]: prints usage to stdout. */
/* A value flag given twice (--user 5 --user 6) is refused, not the last
 * one taken: a token minted for the wrong user or role is worse than none.
 * seen: the flags met so far, one bit per letter (longopts' val). Returns
 * 1 (usage printed) or 0. */
static int flag_repeated(const command *self, const struct option *longopts, int opt,
                         unsigned *seen)
{
    if (opt < 'a' || opt > 'z')
        return 0;
    unsigned bit = 1u << (opt - 'a');
    if (*seen & bit) {
        const char *name = "a flag";
        for (const struct option *o = longopts; o->name; o++)
            if (o->val == opt)
                name = o->name;
        usage_error(self, "--%s is given more than once", name);
        return 1;
    }
    *seen |= bit;
    return 0;
}

static int cmd_help(ctl *c, int argc, char **argv)
{
    (void)c;
    if (argc > 2)
        return usage_error(find_command("help"), "too many arguments");
    if (argc == 2) {
        const command *cmd = find_command(argv[1]);
        if (!cmd)
            return usage_error(NULL, "unknown command '%s'", argv[1]);
        printf("usage: onsalectl %s %s\n    %s\n", cmd->name, cmd->args, cmd->summary);
        return 0;
    }
    usage(stdout);
    return 0;
}

/* Parses a decimal integer in min..max. Returns 0 or ONS_EINVAL. */
static int parse_ll(const char *s, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < min || v > max)
        return ONS_EINVAL;
    *out = v;
    return 0;
}

/* onsalectl token --user ID --role ROLE [--ttl S]: mints a JWT with
 * auth.secret and prints it on one line. */
/* What onsalectl token was asked for. */
typedef struct token_args {
    int64_t user_id;
    enum ons_role role;
    long long ttl;
} token_args;

/* Reads token's flags into t; -1 when all are there and valid, else the
 * exit status (0 after --help). */
static int token_flags(int argc, char **argv, token_args *t)
{
    static const struct option longopts[] = {
        {"user", required_argument, NULL, 'u'},
        {"role", required_argument, NULL, 'r'},
        {"ttl", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const command *self = find_command("token");
    int have_user = 0, have_role = 0, opt;
    unsigned seen = 0;
    optind = 0; /* glibc: rescan from argv[1] */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:", longopts, NULL)) != -1) {
        if (flag_repeated(self, longopts, opt, &seen))
            return EXIT_USAGE;
        switch (opt) {
        case 'u':
            if (ons_user_id_parse(optarg, &t->user_id) != 0)
                return usage_error(self, "--user '%s' is not a positive 64-bit integer", optarg);
            have_user = 1;
            break;
        case 'r':
            if (ons_role_parse(optarg, &t->role) != 0)
                return usage_error(self, "--role '%s' is not one of fan, seller, scanner, admin",
                                   optarg);
            have_role = 1;
            break;
        case 't':
            if (parse_ll(optarg, 1, TOKEN_TTL_MAX, &t->ttl) != 0)
                return usage_error(self, "--ttl '%s' is not a number of seconds in 1..%lld", optarg,
                                   TOKEN_TTL_MAX);
            break;
        default:
            return shared_flag(self, opt, argv);
        }
    }
    if (optind < argc)
        return usage_error(self, "unexpected argument '%s'", argv[optind]);
    if (!have_user)
        return usage_error(self, "missing --user");
    if (!have_role)
        return usage_error(self, "missing --role");
    return -1;
}

static int cmd_token(ctl *c, int argc, char **argv)
{
    token_args t = {.ttl = TOKEN_TTL_DEFAULT};
    int status = token_flags(argc, argv, &t);
    if (status >= 0)
        return status;
    char err[512], *token = NULL;
    static const ons_opt_secret secrets[] = {{"auth.secret", ONS_AUTH_SECRET_DEV}};
    if (ons_opts_check_secrets(opt_table, ONS_OPT_COUNT(opt_table), &c->opts, secrets, 1, err,
                               sizeof err)) {
        fprintf(stderr, "onsalectl: %s\n", err);
        return EXIT_USAGE;
    }
    if (err[0])
        fprintf(stderr, "onsalectl: warning: %s\n", err);
    int rc =
        ons_auth_mint(c->opts.auth_secret, t.user_id, t.role, (int64_t)time(NULL), t.ttl, &token);
    if (rc != 0)
        fprintf(stderr, "onsalectl: cannot mint token: %s\n", ons_strerror(rc));
    else
        printf("%s\n", token);
    free(token);
    return rc == 0 ? 0 : 1;
}

/* The flags of the commands that read an event's records: --event ID
 * (a positive integer; 0 when absent) and --sim-log FILE (audit only: the
 * other's longopts lack it). */
typedef struct event_flags {
    long long event;
    const char *sim_log;
} event_flags;

/* Reads self's flags (longopts) into f; -1 when they read well, else the
 * exit status (0 after --help). */
static int read_event_flags(const command *self, const struct option *longopts, int argc,
                            char **argv, event_flags *f)
{
    int opt;
    unsigned seen = 0;
    optind = 0; /* glibc: rescan from argv[1] */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:", longopts, NULL)) != -1) {
        if (flag_repeated(self, longopts, opt, &seen))
            return EXIT_USAGE;
        switch (opt) {
        case 'e':
            if (parse_ll(optarg, 1, INT64_MAX, &f->event) != 0)
                return usage_error(self, "--event '%s' is not a positive integer", optarg);
            break;
        case 'l':
            f->sim_log = optarg;
            break;
        default:
            return shared_flag(self, opt, argv);
        }
    }
    if (optind < argc)
        return usage_error(self, "unexpected argument '%s'", argv[optind]);
    return -1;
}

/* ids.secret, or NULL (with a note on stderr) while it is the development
 * key outside dev mode: draws then cannot be recomputed. */
static const char *ids_secret_or_null(ctl *c)
{
    char err[512];
    static const ons_opt_secret secrets[] = {{"ids.secret", ONS_IDS_SECRET_DEV}};
    if (ons_opts_check_secrets(opt_table, ONS_OPT_COUNT(opt_table), &c->opts, secrets, 1, err,
                               sizeof err)) {
        fprintf(stderr, "onsalectl: %s (draws are not recomputed)\n", err);
        return NULL;
    }
    return c->opts.ids_secret;
}

/* onsalectl audit [--event ID] [--sim-log FILE]: runs admin/audit.c and
 * exits 1 when any invariant is violated (or the audit could not run). */
static int cmd_audit(ctl *c, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"event", required_argument, NULL, 'e'},
        {"sim-log", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const command *self = find_command("audit");
    adm_audit_opts ao = {
        .pg_dsn = c->opts.pg_dsn,
        .kafka_brokers = c->opts.kafka_brokers,
        .kafka_sec = {c->opts.kafka_security_protocol, c->opts.kafka_ssl_ca_location},
        .kafka_topic = c->opts.kafka_topic,
        .kafka_control_topic = c->opts.kafka_control_topic,
        .wait_s = (int)c->opts.audit_wait_s,
        .max_log_intents = 50LL * 1000 * 1000};
    adm_audit_result res;
    event_flags f = {0};
    int status = read_event_flags(self, longopts, argc, argv, &f);
    if (status >= 0)
        return status;
    ao.event_id = f.event;
    ao.sim_log = f.sim_log;
    ao.ids_secret = ids_secret_or_null(c);
    int rc = adm_audit_run(&ao, stdout, &res);
    if (rc != 0) {
        fprintf(stderr, "onsalectl: audit could not run: %s\n", ons_strerror(rc));
        return 1;
    }
    return res.violations ? 1 : 0;
}

/* onsalectl verify-draw --event ID: adm_verify_draw; exit 0 pass, 1 fail. */
static int cmd_verify_draw(ctl *c, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"event", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const command *self = find_command("verify-draw");
    event_flags f = {0};
    int status = read_event_flags(self, longopts, argc, argv, &f);
    if (status >= 0)
        return status;
    long long ev = f.event;
    if (ev == 0)
        return usage_error(self, "missing --event");
    const char *ids = ids_secret_or_null(c);
    if (!ids)
        return EXIT_USAGE;
    int passed = 0;
    int rc = adm_verify_draw(c->opts.pg_dsn, ids, ev, stdout, &passed);
    if (rc == ONS_ENOTFOUND) {
        fprintf(stderr, "onsalectl: no event %lld\n", ev);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "onsalectl: verify-draw could not run: %s\n", ons_strerror(rc));
        return 1;
    }
    return passed ? 0 : 1;
}

int main(int argc, char **argv)
{
    ctl c = {0};
    char err[512];
    int i = 1, status;

    /* Global flags come before the command. */
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            c.config = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            c.config = argv[i] + 9;
        } else if (strcmp(argv[i], "--config") == 0) {
            return usage_error(NULL, "--config needs a FILE");
        } else {
            return usage_error(NULL, "unknown flag '%s'", argv[i]);
        }
    }
    if (i == argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const command *cmd = find_command(argv[i]);
    if (!cmd)
        return usage_error(NULL, "unknown command '%s'", argv[i]);

    if (cmd->needs_opts && ons_opts_load(opt_table, ONS_OPT_COUNT(opt_table), &c.opts, c.config,
                                         err, sizeof err) != 0) {
        fprintf(stderr, "onsalectl: %s\n", err);
        status = 1;
        goto done;
    }
    status = cmd->run(&c, argc - i, argv + i);
done:
    ons_opts_free(opt_table, ONS_OPT_COUNT(opt_table), &c.opts);
    return status;
}
