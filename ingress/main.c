/*
 * main.c - onsale-ingress: the HTTP front door. Loads the options, builds
 * the app (producer, job threads, caches, monitor), serves until SIGTERM or
 * SIGINT, then shuts down in dependency order.
 */
#include "common/auth.h"
#include "common/err.h"
#include "common/log.h"
#include "common/opts.h"
#include "common/signals.h"
#include "common/password.h"
#include "common/recycle.h"
#include "ingress/accounts.h"
#include "ingress/app.h"
#include "ingress/cursor_cache.h"
#include "ingress/event_cache.h"
#include "ingress/event_view.h"
#include "ingress/log_reader.h"
#include "ingress/monitor.h"
#include "ingress/pool.h"
#include "ingress/produce.h"
#include "ingress/ratelimit.h"
#include "ingress/client_addr.h"
#include "ingress/catalog_index_store.h"
#include "ingress/replica.h"
#include "ingress/routes.h"
#include "ingress/server.h"
#include "ingress/ticket_code.h"

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* The options (ingress/options.def), one row each. */
const ons_opt ing_opt_table[] = {
#define X(...)    ONS_OPT_TABLE_ROW(ing_opts, __VA_ARGS__)
#define X_IN(...) ONS_OPT_TABLE_ROW(ing_opts, __VA_ARGS__)
#include "ingress/options.def"
#undef X
#undef X_IN
};
const size_t ing_opt_count = ONS_OPT_COUNT(ing_opt_table);

/* Sets the soft open-file limit to the client cap plus the descriptors
 * reserved for everything else (the accept gate admits at most the limit
 * less the reserve, common/httpd.h). */
static void limit_files(long long max_connections, long long reserved)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return;
    rlim_t want = (rlim_t)max_connections + (rlim_t)reserved;
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
        want = rl.rlim_max;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl))
        ons_log_warn("cannot set the open-file limit to %llu", (unsigned long long)want);
}

/* 0, or a compile error when ing_app's field is not an ons_counter *. */
#define IS_COUNTER(field)                                                                          \
    (0 * sizeof(char[_Generic(((ing_app *)0)->field, ons_counter * : 1, default : -1)]))
/* A counter of ingress's own: the field of ing_app it is kept in, its name
 * and help. */
#define ING_COUNTER(field, name, help)                                                             \
    {                                                                                              \
        offsetof(ing_app, field) + IS_COUNTER(field), name, help                                   \
    }
static const struct {
    size_t field;
    const char *name, *help;
} ing_counters[] = {
    ING_COUNTER(produce_errors, "onsale_ingress_produce_errors_total",
                "Records Kafka did not take."),
    ING_COUNTER(produced, "onsale_ingress_produced_total", "Records acknowledged by Kafka."),
    ING_COUNTER(join_claim_rounds, "onsale_ingress_join_claim_rounds_total",
                "Pipelined Redis round trips of the join claimer."),
    ING_COUNTER(join_claims, "onsale_ingress_join_claims_total",
                "Active-key claims sent by the join claimer."),
    ING_COUNTER(result_rounds, "onsale_ingress_result_rounds_total",
                "MGETs of the result reader (polls of processed intents)."),
    ING_COUNTER(result_reads, "onsale_ingress_result_reads_total",
                "Result documents asked for by the result reader."),
    ING_COUNTER(checkout_rounds, "onsale_ingress_checkout_rounds_total",
                "Rounds of the checkout claimer (one PostgreSQL read each)."),
    ING_COUNTER(checkout_round_items, "onsale_ingress_checkout_round_items_total",
                "Checkouts taken by the checkout claimer's rounds."),
    ING_COUNTER(cancelled_requests, "onsale_ingress_cancelled_requests_total",
                "Requests whose client left before the reply."),
    ING_COUNTER(view_renders, "onsale_ingress_event_view_renders_total",
                "Event views rendered, each a read of the event in PostgreSQL and of its counts "
                "(the rest are answered from the view cache)."),
};

/* The registry and ingress's own counters (the modules add theirs). */
static int start_metrics(ing_app *app)
{
    app->metrics = ons_metrics_new();
    if (!app->metrics)
        return ONS_ENOMEM;
    for (size_t i = 0; i < sizeof ing_counters / sizeof *ing_counters; i++)
        *(ons_counter **)((char *)app + ing_counters[i].field) =
            ons_metrics_counter(app->metrics, ing_counters[i].name, ing_counters[i].help, "");
    app->inflight = ons_metrics_gauge(app->metrics, "onsale_ingress_produce_inflight",
                                      "Records sent to Kafka and not yet acknowledged.", "");
    return 0;
}

/* The partitions both topics have (the intents topic and its control
 * lane, co-partitioned: an event's records go to the same home partition
 * on both): the smaller count, with an error when they differ. */
static int topics_partitions(ing_app *app, int timeout_ms, int *n)
{
    int ni = 0, nc = 0;
    int rc = q_producer_partitions_of(app->producer, Q_TOPIC_INTENTS, timeout_ms, &ni);
    if (rc == 0)
        rc = q_producer_partitions_of(app->producer, Q_TOPIC_CONTROL, timeout_ms, &nc);
    if (rc)
        return rc;
    if (nc != ni)
        ons_log_error("topic %s has %d partitions but its control lane %d: grow the smaller to "
                      "match; events are created on the first %d",
                      app->o.kafka_topic, ni, nc, ni < nc ? ni : nc);
    *n = ni < nc ? ni : nc;
    return 0;
}

/* kafka.partitions set by hand is the count new events are spread over
 * (events.partitions): more than the topics have would home events on
 * partitions that do not exist, and refuses to start; fewer (the topics
 * grown since the setting was written) is sound, since every event keeps
 * the home partition it was created with (docs/scaling.md "Growing the
 * topics"). Brokers that do not answer within kafka.partitions_check_ms do
 * not stop the start (the option lets a node start without them); the
 * monitor checks the count every round (ing_monitor_partitions_short). */
static int check_partitions(ing_app *app)
{
    int n = 0;
    if (app->o.kafka_partitions_check_ms == 0)
        return 0;
    int rc = topics_partitions(app, (int)app->o.kafka_partitions_check_ms, &n);
    if (rc) {
        ons_log_warn("kafka.partitions %d not checked against topic %s (%s): started on it",
                     app->partitions, app->o.kafka_topic, ons_strerror(rc));
        return 0;
    }
    app->partitions_read = n;
    if (n == app->partitions)
        return 0;
    if (n > app->partitions) {
        ons_log_warn("kafka.partitions is %d but topic %s has %d partitions: new events are "
                     "spread over the first %d (set kafka.partitions to %d, or 0, to use all)",
                     app->partitions, app->o.kafka_topic, n, app->partitions, n);
        return 0;
    }
    ons_log_error("kafka.partitions is %d but topic %s has %d partitions: set kafka.partitions "
                  "to %d, or 0 to read it from the brokers",
                  app->partitions, app->o.kafka_topic, n, n);
    return ONS_EINVAL;
}

/* The Kafka producer, and the topic's partition count (configured and
 * checked, or read from the brokers). */
static int start_producer(ing_app *app)
{
    q_producer_opts po = {.brokers = app->o.kafka_brokers,
                          .topic = app->o.kafka_topic,
                          .linger_ms = (int)app->o.kafka_linger_ms,
                          .delivery_timeout_ms = (int)app->o.kafka_produce_timeout_ms,
                          .max_inflight = (int)app->o.kafka_max_inflight,
                          .control_topic = app->o.kafka_control_topic,
                          .request_timeout_ms = (int)app->o.kafka_request_timeout_ms,
                          .sec = {app->o.kafka_security_protocol, app->o.kafka_ssl_ca_location}};
    int rc = q_producer_new(&po, &app->producer);
    if (rc)
        return rc;
    app->partitions = (int)app->o.kafka_partitions;
    if (app->partitions > 0)
        return check_partitions(app);
    if ((rc = topics_partitions(app, 10000, &app->partitions)) != 0) {
        ons_log_error("cannot read the partition count of topic %s: %s", app->o.kafka_topic,
                      ons_strerror(rc));
        return rc;
    }
    app->partitions_read = app->partitions;
    return 0;
}

/* The catalog index's refresher, when catalog.index is on. */
static int start_catalog_index(ing_app *app)
{
    const ing_opts *o = &app->o;
    if (!o->catalog_index)
        return 0;
    cat_feed_opts fo = {o->pg_dsn,
                        o->catalog_index_max_events,
                        o->catalog_index_refresh_ms,
                        o->catalog_index_lookback_ms,
                        o->catalog_index_delta_max,
                        o->catalog_index_page_rows,
                        app->metrics};
    return cat_feed_start(&fo, &app->catalog_feed);
}

/* The modules that serve requests: the PostgreSQL pool, the finisher, the
 * cursors, the caches, the log reader, the monitor and the rate limit. */
static int start_modules(ing_app *app)
{
    q_status_opts redis = {.host = app->o.redis_host,
                           .port = (int)app->o.redis_port,
                           .prefix = app->o.redis_prefix,
                           .timeout_ms = (int)app->o.redis_timeout_ms,
                           .result_ttl_s = 3600,
                           .down_ms = (int)app->o.redis_down_ms};
    ing_replica_init(app->o.pg_read_dsn, app->o.pg_read_max_lag_ms, app->metrics);
    ing_pool_opts pool = {(int)app->o.pool_threads, (int)app->o.pool_queue_depth, app->o.pg_dsn,
                          (int)app->o.pg_statement_timeout_ms, redis};
    int rc;
    if ((rc = ing_pool_new(&pool, &app->pool)) || (rc = ing_finisher_new(app, &redis)) ||
        (app->o.join_round_max > 0 &&
         (rc = ing_batcher_new(&pool, "ingress join claimer", ing_join_claim_round, app,
                               (size_t)app->o.join_round_max, &app->claimer))) ||
        (app->o.checkout_round_max > 0 &&
         (rc = ing_batcher_new(&pool, "ingress checkout claimer", ing_checkout_round, app,
                               (size_t)app->o.checkout_round_max, &app->checkout_claimer))) ||
        (app->o.status_round_max > 0 &&
         (rc = ing_batcher_new(&pool, "ingress result reader", ing_result_round, app,
                               (size_t)app->o.status_round_max, &app->result_reader))) ||
        (rc = ing_cursors_new(app->partitions, &redis, app->o.pg_dsn, (int)app->o.status_refresh_ms,
                              &app->cursors)) ||
        (rc = ing_events_new((int)app->o.event_cache_ms, 4096, &app->events)) ||
        (rc = ing_views_new((int)app->o.event_view_ttl_ms, (size_t)app->o.event_view_slots,
                            &(ing_view_refresh){app->o.event_view_refresh_min_ms,
                                                app->o.event_view_refresh_max_ms,
                                                app->o.event_view_views_per_s},
                            &app->views)) ||
        (rc = ing_draws_new(app->o.draw_cache_ttl_ms, (size_t)app->o.draw_cache_events,
                            &app->draws)) ||
        (rc = ing_seqmap_new((size_t)app->o.status_seq_cache, &app->seqs)) ||
        (rc = ing_seqmap_new((size_t)app->o.kafka_home_cache, &app->homes)) ||
        (rc = ing_log_reader_new(
             app->o.kafka_brokers,
             &(q_ksec){app->o.kafka_security_protocol, app->o.kafka_ssl_ca_location},
             app->o.kafka_topic, &app->log_reader)) ||
        (rc = ing_monitor_new(app->producer, app->partitions, &redis, app->o.pg_dsn,
                              (int)app->o.monitor_interval_ms, &app->monitor)) ||
        (rc = ing_node_live_new(&redis, (int)app->o.idem_node_ttl_ms, &app->node_live)) ||
        (rc = ing_ratelimit_new(app, (size_t)app->o.ratelimit_memory_slots, &app->ratelimit)))
        return rc;
    return start_catalog_index(app);
}

static int start(ing_app *app)
{
    int rc;
    if ((rc = start_metrics(app)) != 0 ||
        (rc = ons_auth_cache_new(app->o.auth_secret, (size_t)app->o.auth_cache_size,
                                 &app->auth_cache)) != 0 ||
        (rc = ing_accounts_new(
             (uint64_t)app->o.accounts_hash_ops, (uint64_t)app->o.accounts_hash_mem_kib,
             (int)app->o.accounts_hash_concurrency, app->metrics, &app->accounts)) != 0 ||
        (rc = start_producer(app)) != 0 || (rc = start_modules(app)) != 0)
        return rc;
    return ing_server_start(app, &app->server);
}

/* Tears down in dependency order: no new requests, no background readers
 * of the producer; close the producer (its last completions run into the
 * finisher and the job threads, so both are still up); stop the join
 * claimer (its last joins find the producer closed: 503; it hands joins on
 * to the job threads, so they are still up), the finisher and the job
 * threads (a queued job that sends now gets ONS_ECLOSED from the
 * closed producer, not freed memory); only then free the producer and what
 * the threads used. */
static void stop(ing_app *app)
{
    ing_server_stop(app->server);
    ing_monitor_stop(app->monitor);
    q_producer_close(app->producer, 2000);
    ing_batcher_free(app->claimer);
    ing_batcher_free(app->checkout_claimer); /* hands taken keys on to the job threads */
    ing_batcher_free(app->result_reader);    /* hands polls on to the job threads */
    ing_finisher_free(app);
    ing_pool_free(app->pool);
    ing_monitor_free(app->monitor);     /* job threads read its health until now */
    ing_node_live_free(app->node_live); /* and named this node in their keys */
    q_producer_free(app->producer, 0);
    ing_server_free(app->server);
    cat_feed_stop(app->catalog_feed); /* searches are over */
    ing_cursors_free(app->cursors);
    ing_events_free(app->events);
    ing_views_free(app->views);
    ing_draws_free(app->draws);
    ing_seqmap_free(app->seqs);
    ing_seqmap_free(app->homes);
    ing_log_reader_free(app->log_reader);
    ons_auth_cache_free(app->auth_cache);
    ing_accounts_free(app->accounts);
    ing_ratelimit_free(app->ratelimit);
    if (app->metrics)
        ons_metrics_free(app->metrics);
}

/* Checks that span options (an ons_start validate hook). */
static int check_options(const void *opts, void *arg, char *err, size_t errlen)
{
    const ing_opts *o = opts;
    (void)arg;
    if (o->status_poll_min_ms > o->status_poll_max_ms) {
        snprintf(err, errlen, "status.poll_min_ms must not exceed status.poll_max_ms");
        return ONS_EINVAL;
    }
    if (o->event_view_refresh_min_ms > o->event_view_refresh_max_ms) {
        snprintf(err, errlen,
                 "event_view.refresh_min_ms must not exceed event_view.refresh_max_ms");
        return ONS_EINVAL;
    }
    if (ing_client_addr_trusted_ok(o->client_trusted_proxies)) {
        snprintf(err, errlen,
                 "client.trusted_proxies must be addresses or CIDR blocks separated "
                 "by commas");
        return ONS_EINVAL;
    }
    return 0;
}

int main(int argc, char **argv)
{
    ing_app app;
    memset(&app, 0, sizeof app);
    static const ons_opt_secret secrets[] = {{"auth.secret", ONS_AUTH_SECRET_DEV},
                                             {"ids.secret", ONS_IDS_SECRET_DEV},
                                             {"tickets.secret", ING_TICKETS_SECRET_DEV}};
    static const ons_start start_cfg = {
        .cli = {"onsale-ingress", "config",
                "usage: onsale-ingress [--config FILE] [--KEY=VALUE ...]\n"
                "Options (config file key = value, environment ONSALE_<KEY>, or --key=value):\n"},
        .log_name = "ingress",
        .secrets = secrets,
        .nsecrets = 3,
        .validate = check_options,
        .validate_arg = NULL};
    int prc = ons_opts_start(ing_opt_table, ing_opt_count, &app.o, argc, argv, &start_cfg);
    if (prc)
        return ons_opts_exit(prc);
    if (app.o.accounts_hash_concurrency >= app.o.pool_threads)
        ons_log_warn("accounts.hash_concurrency (%lld) >= pool.threads (%lld): a login flood can "
                     "occupy every job thread",
                     app.o.accounts_hash_concurrency, app.o.pool_threads);
    limit_files(app.o.http_max_connections, app.o.http_reserved_fds);
    ons_recycle_set_keep((size_t)app.o.http_recycle_keep);

    /* Signals are taken synchronously by this thread; every thread started
     * below inherits the mask. */
    sigset_t set;
    ons_signals_block_stop(&set);

    int rc = start(&app);
    if (rc) {
        ons_log_error("ingress failed to start: %s", ons_strerror(rc));
        stop(&app);
        ons_opts_free(ing_opt_table, ing_opt_count, &app.o);
        return 1;
    }
    ons_log_info("ingress ready: topic %s with %d partitions", app.o.kafka_topic, app.partitions);
    ons_log_info("signal %d: shutting down", ons_signals_wait_stop(&set));
    stop(&app);
    ons_opts_free(ing_opt_table, ing_opt_count, &app.o);
    return 0;
}
