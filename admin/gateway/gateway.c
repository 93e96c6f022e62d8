/*
 * gateway.c - onsale-gateway, the payment gateway simulator: options and
 * main. See gateway.h for what the simulator is and how it is split up.
 *
 *   onsale-gateway [--config FILE]      serve until SIGTERM or SIGINT
 *   onsale-gateway --help               list every option
 *
 * Options come from the table below: defaults, then the config file, then
 * ONSALE_<KEY> environment variables (gateway.port -> ONSALE_GATEWAY_PORT).
 * The fault knobs here are only the starting values; POST /v1/_faults
 * changes them while the process runs.
 *
 * State is in memory only: a restart forgets every charge, refund and
 * idempotency key, so a restart in the middle of a test is a "gateway lost
 * its data" scenario, which no real gateway would do.
 */
#include "admin/gateway/gateway.h"
#include "common/auth.h"
#include "common/err.h"
#include "common/log.h"
#include "common/opts.h"
#include "common/signals.h"

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPT(...) ONS_OPT_ROW(gw_opts, __VA_ARGS__)
/* A shared row (common/opts.h) as a row of this table. */
#define SHARED_ROW(...) ONS_OPT_TABLE_ROW(gw_opts, __VA_ARGS__)

/* The shared rows end in their own commas. */
/* clang-format off */
static const ons_opt opt_table[] = {
    OPT("gateway.port", ONS_OPT_INT, port, 0, 65535, "9300", "HTTP listen port"),
    OPT("gateway.bind", ONS_OPT_STR, bind, 1, 255, "127.0.0.1", "HTTP listen address"),
    ONS_OPT_GATEWAY_KEY_ROW(SHARED_ROW, "gateway.api_key", api_key,
        "secret API key clients send as Authorization: Bearer <key> (else 401)")
    ONS_OPT_DEV_MODE_ROW(SHARED_ROW, dev_mode)
    OPT("gateway.max_body", ONS_OPT_INT, max_body, 256, 1048576, "8192",
        "largest accepted request body in bytes (larger: 413)"),
    OPT("gateway.body_read_limit", ONS_OPT_INT, body_read_limit, 256, 16777216, "1048576",
        "bodies declared larger than this are refused by nng itself (400) without being read"),
    OPT("gateway.max_records", ONS_OPT_INT, max_records, 1, 10000000, "1000000",
        "bound of each in-memory store (charges, refunds, idempotency keys); full: 503"),
    OPT("gateway.max_pending", ONS_OPT_INT, max_pending, 1, 1000000, "65536",
        "requests that may wait on injected latency or hangs at once; more: 503"),
    OPT("gateway.max_amount_cents", ONS_OPT_INT, max_amount_cents, 1, 1000000000000LL, "99999999",
        "largest amount_cents of a charge or refund"),
    OPT("gateway.latency_ms", ONS_OPT_INT, faults.latency_ms, 0, GW_DELAY_MAX_MS, "0",
        "fault: delay before each first attempt is processed"),
    OPT("gateway.latency_jitter_ms", ONS_OPT_INT, faults.latency_jitter_ms, 0, GW_DELAY_MAX_MS, "0",
        "fault: plus a uniform random 0..jitter ms"),
    OPT("gateway.decline_rate", ONS_OPT_FRAC, faults.decline_rate, 0, 1, "0",
        "fault: fraction 0..1 of charges declined (generic_decline) whatever the card"),
    OPT("gateway.error_rate", ONS_OPT_FRAC, faults.error_rate, 0, 1, "0",
        "fault: fraction 0..1 answered 500/503 without charging (the key stays free)"),
    OPT("gateway.hang_rate", ONS_OPT_FRAC, faults.hang_rate, 0, 1, "0",
        "fault: fraction 0..1 never answered; the connection closes after gateway.hang_ms"),
    OPT("gateway.hang_after_charge", ONS_OPT_BOOL, faults.hang_after_charge, 0, 1, "true",
        "fault: a hang charges first (charged, response lost); false: nothing is charged"),
    OPT("gateway.hang_ms", ONS_OPT_INT, faults.hang_ms, 1, GW_DELAY_MAX_MS, "60000",
        "fault: how long a hang holds the connection before closing it"),
    OPT("gateway.lost_response_rate", ONS_OPT_FRAC, faults.lost_response_rate, 0, 1, "0",
        "fault: fraction 0..1 charged and stored, but the connection closes unanswered"),
    OPT("gateway.seed", ONS_OPT_INT, seed, 0, 9007199254740991LL, "0",
        "seed of the fault dice (same seed and request order: same faults); 0: from the clock"),
    OPT("log.requests", ONS_OPT_BOOL, log_requests, 0, 1, "true", "log one line per request"),
    ONS_OPT_LOG_LEVEL_ROW(SHARED_ROW, log_level, 16)
};
/* clang-format on */
#define NOPTS ONS_OPT_COUNT(opt_table)

static int start(gw_app *app, const gw_faults *f)
{
    uint64_t seed = 0;
    int rc;
    app->metrics = ons_metrics_new();
    if (!app->metrics)
        return ONS_ENOMEM;
    if ((rc = gw_api_init(app)) || (rc = gw_store_new((size_t)app->o.max_records, &app->store)) ||
        (rc = gw_chaos_new(f, (uint64_t)app->o.seed, &seed, &app->chaos)) ||
        (rc = gw_timer_new((size_t)app->o.max_pending, &app->timer)))
        return rc;
    ons_log_info("fault dice seed %llu", (unsigned long long)seed);
    return gw_server_start(app, &app->server);
}

/* Tears down in dependency order: close every connection (nng finishes
 * deferred requests through their cancel routine), then let the timer run
 * what is left early so those requests are freed, then the rest. */
static void stop(gw_app *app)
{
    gw_server_stop(app->server);
    gw_timer_free(app->timer);
    gw_server_free(app->server);
    gw_chaos_free(app->chaos);
    gw_store_free(app->store);
    if (app->metrics)
        ons_metrics_free(app->metrics);
}

int main(int argc, char **argv)
{
    gw_app app;
    int status = 2;
    memset(&app, 0, sizeof app);
    static const ons_opt_secret secrets[] = {{"gateway.api_key", ONS_GATEWAY_KEY_DEV}};
    const ons_start start_cfg = {
        .cli = {"onsale-gateway", "config",
                "usage: onsale-gateway [--config FILE] [--KEY=VALUE ...]\n"
                "A Stripe-like payment gateway simulator with fault injection.\n"
                "Options (config file key = value, environment ONSALE_<KEY>, or --key=value):\n"},
        .log_name = "gateway",
        .secrets = secrets,
        .nsecrets = 1};
    int prc = ons_opts_start(opt_table, NOPTS, &app.o, argc, argv, &start_cfg);
    if (prc)
        return ons_opts_exit(prc);

    /* Signals are taken synchronously by this thread; every thread started
     * below inherits the mask. */
    sigset_t set;
    ons_signals_block_stop(&set);

    int rc = start(&app, &app.o.faults);
    if (rc) {
        ons_log_error("gateway failed to start: %s", ons_strerror(rc));
        stop(&app);
        status = 1;
        goto done;
    }
    ons_log_info("gateway ready on %s:%lld", app.o.bind, app.o.port);
    ons_log_info("signal %d: shutting down", ons_signals_wait_stop(&set));
    stop(&app);
    status = 0;
done:
    ons_opts_free(opt_table, NOPTS, &app.o);
    return status;
}
