/*
 * gateway.c - onsale-gateway, the payment gateway simulator: options and
 * main. See gateway.h for what the simulator is and how it is split up.
 *
 *   onsale-gateway [--config FILE]      serve until SIGTERM or SIGINT
 *   onsale-gateway --help               list every option
 *
 * Options come from options.def (one line each): defaults, then the
 * config file, then ONSALE_<KEY> environment variables (gateway.port ->
 * ONSALE_GATEWAY_PORT). The fault knobs there are only the starting
 * values; POST /v1/_faults changes them while the process runs.
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

/* The options (admin/gateway/options.def), one row each. */
static const ons_opt opt_table[] = {
#define X(...)    ONS_OPT_TABLE_ROW(gw_opts, __VA_ARGS__)
#define X_IN(...) ONS_OPT_TABLE_ROW(gw_opts, __VA_ARGS__)
#include "admin/gateway/options.def"
#undef X
#undef X_IN
};
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
