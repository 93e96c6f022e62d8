/*
 * main.c - onsale-sim, the flash-sale simulator: N virtual fans against the
 * real HTTP API through ingress, then a report and the invariant audit.
 *
 *   onsale-sim --fans 20000 --seats 5000 [--scenario FILE] [--key value ...]
 *
 * Options come from options.def: defaults, then the scenario file
 * (--scenario FILE: "key = value" lines, or ONSALE_CONFIG), then ONSALE_<KEY>
 * environment variables, then command-line flags (--burst-fraction 0.5 sets
 * burst_fraction). Without --event the simulator creates a venue and an
 * event of exactly --seats seats through the API with a seller token it mints
 * from auth.secret.
 *
 * Exit status: 0 the run finished and the audit passed (or was switched
 * off), 1 the audit found a violation or could not run, or the run failed,
 * 2 usage error.
 */
#include "admin/sim/sim.h"
#include "common/auth.h"
#include "common/err.h"
#include "common/opts.h"
#include "queue/states.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE     2
#define SELLER_ID      900000001
#define ADMIN_ID       900000002
#define ROWS_PER_SECT  1000
#define SEATS_PER_ROW  1000
#define SIM_LOG_BUF    (1 << 20)
#define MAX_RESPONSE   (1 << 20)
#define USER_BASE_SPAN 10000000LL /* auto user ids: a fresh block per second */

/* The options (admin/sim/options.def), one row each. */
static const ons_opt opt_table[] = {
#define X(...) ONS_OPT_TABLE_ROW(sim_opts, __VA_ARGS__)
#include "admin/sim/options.def"
#undef X
};
#define NOPTS ONS_OPT_COUNT(opt_table)

static const ons_cli cli = {
    "onsale-sim", "scenario",
    "usage: onsale-sim [--scenario FILE] [--KEY VALUE ...]\n"
    "  e.g. onsale-sim --fans 20000 --seats 5000 --json report.json --svg chart.svg\n"
    "options (flags use '-' or '_'; scenario lines 'key = value'; env ONSALE_KEY):\n"};

static int validate(sim_opts *o, char *err, size_t errlen)
{
    if (strcmp(o->abandon_mode, "delete") != 0 && strcmp(o->abandon_mode, "expire") != 0) {
        snprintf(err, errlen, "option abandon_mode: '%s' is not delete or expire", o->abandon_mode);
        return ONS_EINVAL;
    }
    int port = 0, n = 0;
    if (sscanf(o->ingress, "http://%255[^:/]:%d%n", o->host, &port, &n) != 2 ||
        (o->ingress[n] != '\0' && strcmp(o->ingress + n, "/") != 0) || port < 1 || port > 65535) {
        snprintf(err, errlen, "option ingress: '%s' is not http://HOST:PORT", o->ingress);
        return ONS_EINVAL;
    }
    o->port = port;
    return 0;
}

/* Fills s->o from defaults, scenario, environment and argv. Returns 0,
 * EXIT_USAGE (bad flag or value), with a message on stderr; -1 for --help. */
static int load_options(sim *s, int argc, char **argv)
{
    char err[512];
    int rc = ons_opts_from_args(opt_table, NOPTS, &s->o, argc, argv, &cli, err, sizeof err);
    if (rc != 0)
        return rc == ONS_OPTS_HELP ? -1 : EXIT_USAGE;
    if (validate(&s->o, err, sizeof err) != 0) {
        fprintf(stderr, "onsale-sim: %s\n", err);
        return EXIT_USAGE;
    }
    /* The gateway's key matters only when the knobs are set. */
    const sim_opts *o = &s->o;
    int knobs = o->gateway_decline_rate != 0 || o->gateway_error_rate != 0 ||
                o->gateway_lost_response_rate != 0 || o->gateway_latency_ms != 0;
    static const ons_opt_secret secrets[] = {{"auth.secret", ONS_AUTH_SECRET_DEV},
                                             {"gateway.api_key", ONS_GATEWAY_KEY_DEV}};
    if (ons_opts_check_secrets(opt_table, NOPTS, o, secrets, knobs ? 2 : 1, err, sizeof err)) {
        fprintf(stderr, "onsale-sim: %s\n", err);
        return EXIT_USAGE;
    }
    if (err[0])
        fprintf(stderr, "onsale-sim: warning: %s\n", err);
    return 0;
}

/* ---- synchronous calls for setup ------------------------------------------------ */

typedef struct sync_call {
    int done, status;
    json_t *j;
} sync_call;

static void sync_cb(void *arg, const ons_httpc_resp *r)
{
    sync_call *c = arg;
    c->done = 1;
    c->status = r->status;
    c->j = r->body_len ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
}

/* One request, waited for. c->j is the caller's to json_decref. */
static int http_sync(sim *s, const char *method, const char *path, const char *token,
                     const char *body, sync_call *c)
{
    memset(c, 0, sizeof *c);
    int rc = ons_httpc_request(
        s->http, &(ons_httpc_req){.method = method, .path = path, .token = token, .body = body},
        sync_cb, c);
    while (rc == 0 && !c->done)
        rc = ons_httpc_poll(s->http, 100);
    return rc;
}

static void describe_error(const char *what, const sync_call *c)
{
    char *text = c->j ? json_dumps(c->j, JSON_COMPACT) : NULL;
    fprintf(stderr, "onsale-sim: %s answered %d %s\n", what, c->status, text ? text : "");
    free(text);
}

/* Builds the venue request: rows of up to SEATS_PER_ROW seats in sections
 * A (20% of the rows), B (30%), C (the rest) and, for a remainder, a
 * one-row section D; exactly `seats` seats. Returns a new JSON object and the
 * tiers array through *tiers (both the caller's). */
static json_t *venue_body(long long seats, json_t **tiers)
{
    long long spr = (seats + 1999) / 2000;
    if (spr < 20)
        spr = 20;
    if (spr > seats)
        spr = seats;
    long long rows = seats / spr, rem = seats % spr;
    long long ra = rows >= 3 ? rows / 5 : 0, rb = rows >= 3 ? rows * 3 / 10 : 0;
    if (rows >= 3 && ra == 0)
        ra = 1;
    if (rows >= 3 && rb == 0)
        rb = 1;
    long long rc = rows - ra - rb;
    struct {
        const char *name;
        long long rows, per_row, price;
    } sec[4] = {{"A", ra, spr, 15000},
                {"B", rb, spr, 9000},
                {"C", rc, spr, 5000},
                {"D", rem ? 1 : 0, rem, 3000}};
    json_t *sections = json_array();
    *tiers = json_array();
    for (int i = 0; i < 4; i++) {
        if (sec[i].rows <= 0 || sec[i].per_row <= 0)
            continue;
        json_array_append_new(sections, json_pack("{s:s, s:I, s:I}", "name", sec[i].name, "rows",
                                                  (json_int_t)sec[i].rows, "seats_per_row",
                                                  (json_int_t)sec[i].per_row));
        json_array_append_new(*tiers, json_pack("{s:s, s:I}", "section", sec[i].name, "price_cents",
                                                (json_int_t)sec[i].price));
    }
    return json_pack("{s:s, s:s, s:s, s:o}", "name", "Onsale Sim Arena", "city", "Utrecht",
                     "country", "NL", "sections", sections);
}

/* Creates the venue and the event over HTTP; sets s->event_id and
 * s->seats_total. Returns 0 or ONS_EIO (message on stderr). */
static int create_event(sim *s)
{
    json_t *tiers = NULL, *vb = venue_body(s->o.seats, &tiers), *eb = NULL;
    char *text = NULL, starts[32];
    sync_call c = {0};
    int rc = ONS_EIO;

    if (!vb || !tiers)
        goto done;
    text = json_dumps(vb, JSON_COMPACT);
    if (!text || http_sync(s, "POST", "/v1/venues", s->seller_token, text, &c) != 0)
        goto done;
    if (c.status != 201 || !json_is_integer(json_object_get(c.j, "venue_id"))) {
        describe_error("POST /v1/venues", &c);
        goto done;
    }
    json_int_t venue = json_integer_value(json_object_get(c.j, "venue_id"));
    json_decref(c.j);
    c.j = NULL;
    free(text);
    time_t t = time(NULL) + 30 * 24 * 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(starts, sizeof starts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    eb = json_pack("{s:I, s:s, s:s, s:s, s:I, s:I, s:O, s:I}", "venue_id", venue, "name",
                   "Onsale flash sale (simulated)", "category", "concert", "starts_at", starts,
                   "max_per_user", (json_int_t)s->o.max_quantity, "hold_seconds",
                   (json_int_t)s->o.hold_seconds, "tiers", tiers, "pow_difficulty",
                   (json_int_t)s->o.pow_difficulty);
    text = eb ? json_dumps(eb, JSON_COMPACT) : NULL;
    if (!text || http_sync(s, "POST", "/v1/events", s->seller_token, text, &c) != 0)
        goto done;
    if (c.status != 201 || !json_is_integer(json_object_get(c.j, "event_id"))) {
        describe_error("POST /v1/events", &c);
        goto done;
    }
    s->event_id = json_integer_value(json_object_get(c.j, "event_id"));
    s->seats_total = json_is_integer(json_object_get(c.j, "seats_total"))
                         ? json_integer_value(json_object_get(c.j, "seats_total"))
                         : s->o.seats;
    rc = 0;
done:
    if (rc && !c.done)
        fprintf(stderr, "onsale-sim: cannot create the event at %s\n", s->o.ingress);
    json_decref(c.j);
    json_decref(vb);
    json_decref(eb);
    json_decref(tiers);
    free(text);
    return rc;
}

/* Reads an existing event's size (GET /v1/events/{id}). */
static int load_event(sim *s)
{
    char path[64];
    sync_call c;
    s->event_id = s->o.event;
    snprintf(path, sizeof path, "/v1/events/%" PRId64, s->event_id);
    if (http_sync(s, "GET", path, NULL, NULL, &c) != 0 || c.status != 200) {
        describe_error(path, &c);
        json_decref(c.j);
        return ONS_EIO;
    }
    json_t *n = json_object_get(c.j, "seats_total");
    s->seats_total = json_is_integer(n) ? json_integer_value(n) : s->o.seats;
    json_decref(c.j);
    return 0;
}

/* Sets the gateway simulator's fault knobs (POST /v1/_faults) when any is
 * non-zero. Called once, when the first checkout is accepted: before that
 * there is no payment path to disturb. Blocks up to a few seconds. */
void sim_gateway_knobs(sim *s)
{
    const sim_opts *o = &s->o;
    char host[256], body[256];
    int port = 0, n = 0;
    ons_httpc *gw = NULL;
    sync_call c = {0};

    if (o->gateway_decline_rate == 0 && o->gateway_error_rate == 0 &&
        o->gateway_lost_response_rate == 0 && o->gateway_latency_ms == 0)
        return;
    s->gateway_knobs = -1;
    if (sscanf(o->gateway_url, "http://%255[^:/]:%d%n", host, &port, &n) != 2 || port < 1 ||
        port > 65535) {
        fprintf(stderr, "onsale-sim: gateway_url '%s' is not http://HOST:PORT\n", o->gateway_url);
        return;
    }
    ons_httpc_opts ho = {.host = host,
                         .port = port,
                         .conns = 1,
                         .timeout_ms = 5000,
                         .max_queue = 4,
                         .max_response = MAX_RESPONSE};
    snprintf(body, sizeof body,
             "{\"latency_ms\":%lld,\"decline_rate\":%g,\"error_rate\":%g,"
             "\"lost_response_rate\":%g}",
             o->gateway_latency_ms, o->gateway_decline_rate, o->gateway_error_rate,
             o->gateway_lost_response_rate);
    if (ons_httpc_new(&ho, &gw) == 0 &&
        ons_httpc_request(
            gw,
            &(ons_httpc_req){
                .method = "POST", .path = "/v1/_faults", .token = o->gateway_api_key, .body = body},
            sync_cb, &c) == 0)
        while (!c.done && ons_httpc_poll(gw, 100) == 0)
            ;
    if (c.status == 200)
        s->gateway_knobs = 1;
    else
        fprintf(stderr, "onsale-sim: could not set the gateway knobs at %s (status %d)\n",
                o->gateway_url, c.status);
    json_decref(c.j);
    ons_httpc_free(gw);
}

/* ---- main ------------------------------------------------------------------------ */

static int open_log(sim *s)
{
    if (s->o.log[0]) {
        snprintf(s->log_path, sizeof s->log_path, "%s", s->o.log);
        s->log = fopen(s->log_path, "w");
    } else {
        snprintf(s->log_path, sizeof s->log_path, "/tmp/onsale-sim-XXXXXX");
        int fd = mkstemp(s->log_path);
        s->log = fd >= 0 ? fdopen(fd, "w") : NULL;
        s->log_is_temp = 1;
    }
    if (!s->log) {
        fprintf(stderr, "onsale-sim: cannot write the sim log %s\n", s->log_path);
        return ONS_EIO;
    }
    setvbuf(s->log, NULL, _IOFBF, SIM_LOG_BUF);
    fprintf(s->log, "# onsale-sim log: fan intent_id t_ms state position\n");
    return 0;
}

static int run_audit(sim *s)
{
    adm_audit_opts ao = {.pg_dsn = s->o.pg_dsn,
                         .kafka_brokers = s->o.kafka_brokers,
                         .kafka_sec = {s->o.kafka_security_protocol, s->o.kafka_ssl_ca_location},
                         .kafka_topic = s->o.kafka_topic,
                         .event_id = s->event_id,
                         .sim_log = s->log_path,
                         .wait_s = (int)s->o.audit_wait_s,
                         .max_log_intents = s->o.fans + 16};
    printf("\n");
    s->audit_rc = adm_audit_run(&ao, stdout, &s->audit);
    s->audit_ran = 1;
    if (s->audit_rc != 0)
        fprintf(stderr, "onsale-sim: the audit could not run: %s\n", ons_strerror(s->audit_rc));
    return s->audit_rc == 0 && s->audit.violations == 0 ? 0 : 1;
}

/* The monotonic clock now, in ns: the simulator's t = 0. */
static int64_t mono_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Sets the run's t = 0 on both clocks. */
static void sim_clock_start(sim *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    s->start_ns = mono_now_ns();
    s->start_wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The lanes' way to the pool (lanes.h). */
static int send_http(void *ctx, const ons_httpc_req *req, ons_httpc_cb cb, void *arg)
{
    return ons_httpc_request(ctx, req, cb, arg);
}

/* Seeds the simulator, opens its HTTP client and mints the seller's and
 * the admin's tokens; 0 or nonzero after saying why. */
static int set_up(sim *s)
{
    sim_clock_start(s);
    s->rng = s->o.seed ? (uint64_t)s->o.seed : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    s->rng |= 1;
    if (s->o.user_base == 0)
        s->o.user_base = ((long long)time(NULL) % 900000) * USER_BASE_SPAN + 1;
    if (s->o.fan_connections == 0)
        s->o.fan_connections = s->o.connections;
    ons_httpc_opts ho = {.host = s->o.host,
                         .port = s->o.port,
                         .conns = (int)(s->o.connections + s->o.fan_connections),
                         .timeout_ms = (int)s->o.request_timeout_ms,
                         .max_queue = 2 * (size_t)s->o.fans + 1024, /* + one view per fan */
                         .max_response = MAX_RESPONSE};
    int rc = ons_httpc_new(&ho, &s->http);
    if (rc != 0) {
        fprintf(stderr, "onsale-sim: cannot set up HTTP to %s: %s\n", s->o.ingress,
                ons_strerror(rc));
        return rc;
    }
    sim_lanes_init(&s->lanes,
                   (size_t[SIM_LANES]){[SIM_LANE_ARRIVE] = (size_t)s->o.connections,
                                       [SIM_LANE_FAN] = (size_t)s->o.fan_connections},
                   send_http, s->http);
    int64_t now = (int64_t)time(NULL), ttl = s->o.max_seconds + 3600;
    if (ons_auth_mint(s->o.auth_secret, SELLER_ID, ONS_ROLE_SELLER, now, ttl, &s->seller_token) ||
        ons_auth_mint(s->o.auth_secret, ADMIN_ID, ONS_ROLE_ADMIN, now, ttl, &s->admin_token)) {
        fprintf(stderr, "onsale-sim: cannot mint tokens (auth.secret)\n");
        return -1;
    }
    return 0;
}

/* Runs the fans from the on-sale moment (t = 0) to the end; 0 or nonzero
 * after saying why. */
static int run_sale(sim *s)
{
    printf("onsale-sim: %lld fans for event %" PRId64 " (%" PRId64
           " seats) at %s; %.0f%% in a %lld ms burst, the rest over %lld s; %lld connections "
           "(+ %lld for joined fans)\n",
           s->o.fans, s->event_id, s->seats_total, s->o.ingress, s->o.burst_fraction * 100,
           s->o.burst_ms, s->o.tail_seconds, s->o.connections, s->o.fan_connections);
    fflush(stdout);
    sim_clock_start(s); /* t = 0 is the on-sale moment */
    int rc;
    if ((rc = sim_fans_init(s)) != 0 || (rc = sim_fans_run(s)) != 0) {
        fprintf(stderr, "onsale-sim: run failed: %s\n", ons_strerror(rc));
        return rc;
    }
    if (fflush(s->log) != 0) {
        fprintf(stderr, "onsale-sim: cannot write the sim log %s\n", s->log_path);
        return -1;
    }
    return 0;
}

/* Prints the report, runs the audit if asked and writes the JSON and SVG
 * reports; the exit status. */
static int report(sim *s)
{
    int status = 0;
    sim_report_print(s, stdout);
    if (s->o.audit)
        status = run_audit(s);
    if (s->o.json[0] && sim_report_json(s, s->o.json) != 0)
        status = 1;
    if (s->o.svg[0] && sim_report_svg(s, s->o.svg) != 0)
        status = 1;
    if (s->o.eta_log[0] && sim_report_eta_log(s, s->o.eta_log) != 0)
        status = 1;
    return status;
}

/* Closes the sim log (deleted after a run that passed) and frees s. */
static void clean_up(sim *s, int status)
{
    if (s->log)
        fclose(s->log);
    if (s->log_is_temp) {
        if (status == 0)
            unlink(s->log_path);
        else
            fprintf(stderr, "onsale-sim: sim log kept at %s\n", s->log_path);
    }
    sim_fans_fini(s);
    ons_httpc_free(s->http);
    free(s->seller_token);
    free(s->admin_token);
    ons_opts_free(opt_table, NOPTS, &s->o);
}

int main(int argc, char **argv)
{
    sim s = {0};
    int status = 1;
    int rc = load_options(&s, argc, argv);
    if (rc != 0)
        status = rc < 0 ? 0 : rc;
    else if (set_up(&s) == 0 && (s.o.event ? load_event(&s) : create_event(&s)) == 0 &&
             open_log(&s) == 0 && run_sale(&s) == 0)
        status = report(&s);
    clean_up(&s, status);
    return status;
}
