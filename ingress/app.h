/*
 * app.h - the ingress process's context: its options and the long-lived
 * parts every request handler reaches through ing_req.app.
 *
 * The app is built once in main.c, before the HTTP server starts, and torn
 * down after it stopped; handlers only read its pointers.
 */
#ifndef ONSALE_INGRESS_APP_H
#define ONSALE_INGRESS_APP_H

#include <stddef.h>

#include "common/auth.h"
#include "common/metrics.h"
#include "common/opts.h"
#include "ingress/node_live.h"
#include "queue/producer.h"
#include "queue/states.h"

typedef struct ing_pool ing_pool;
typedef struct ing_cursors ing_cursors;
typedef struct ing_events ing_events;
typedef struct ing_views ing_views;
typedef struct ing_draws ing_draws;
typedef struct ing_seqmap ing_seqmap;
typedef struct ing_monitor ing_monitor;
typedef struct ing_server ing_server;
typedef struct ing_finisher ing_finisher;
typedef struct ing_batcher ing_batcher;
typedef struct ing_accounts ing_accounts;
typedef struct ing_ratelimit ing_ratelimit;
typedef struct ing_log_reader ing_log_reader;
typedef struct cat_feed cat_feed;

/* Every limit and address of the process (`--help`): a field per line of
 * options.def; its ratelimit.* lines fill ratelimit. */
typedef struct ing_opts {
#define X(...)    ONS_OPT_FIELD(__VA_ARGS__)
#define X_IN(...) /* in ratelimit */
#include "ingress/options.def"
#undef X
#undef X_IN
    long long ratelimit[10][4]; /* [ing_rl_class][ING_RL_USER_PER_MIN ...]; ratelimit.c checks */
} ing_opts;

extern const ons_opt ing_opt_table[];
extern const size_t ing_opt_count;

typedef struct ing_app {
    ing_opts o;
    /* Partitions new events are spread over (events.partitions): the
     * topics' count at start (kafka.partitions or metadata). An event's
     * records go to its home partition (ing_event_home), not to this. */
    int partitions;
    /* The smaller of the two topics' counts as read from the brokers at
     * start (0: not read, kafka.partitions_check_ms 0 or the brokers
     * silent): what event creation trusts until the monitor has read it
     * (ing_partitions_verified). */
    int partitions_read;
    ons_metrics *metrics;
    ons_auth_cache *auth_cache;
    ing_pool *pool;
    ing_finisher *finisher;
    ing_batcher *claimer; /* joins' active-key claims, pipelined (routes_queue.c); NULL: off */
    ing_batcher *result_reader; /* processed intents' polls, MGET (routes_queue.c); NULL: off */

    /* Checkouts in rounds (routes_orders.c); NULL: off. */
    ing_batcher *checkout_claimer;

    q_producer *producer;
    ing_cursors *cursors;
    ing_events *events;
    ing_views *views;
    ing_draws *draws; /* routes_draw.c */
    ing_seqmap *seqs;
    ing_seqmap *homes; /* event_id -> events.partitions (ing_event_home) */
    ing_monitor *monitor;
    /* This process's liveness key, named in its in-flight Idempotency-Key
     * records (idem.c); NULL (unit tests): records name no node. */
    ing_node_live *node_live;
    ing_server *server;
    ing_accounts *accounts;
    ing_ratelimit *ratelimit;
    ing_log_reader *log_reader; /* cancels of intents other nodes accepted */
    cat_feed *catalog_feed;     /* the catalog index and its refresher; NULL: off */

    /* Hot-path metric handles, looked up once at start. */
    ons_counter *produce_errors;
    ons_counter *produced;
    ons_counter *join_claim_rounds; /* claims / rounds = joins per Redis round trip */
    ons_counter *join_claims;
    ons_counter *result_rounds; /* reads / rounds = polls per Redis round trip */
    ons_counter *result_reads;

    /* round_items / rounds = checkouts per round. */
    ons_counter *checkout_rounds, *checkout_round_items;

    ons_counter *cancelled_requests;
    ons_counter *view_renders; /* event views rendered (each reads PostgreSQL and Redis) */
    ons_gauge *inflight;
} ing_app;

#endif
