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
#include "queue/producer.h"

typedef struct ing_pool ing_pool;
typedef struct ing_cursors ing_cursors;
typedef struct ing_events ing_events;
typedef struct ing_views ing_views;
typedef struct ing_seqmap ing_seqmap;
typedef struct ing_monitor ing_monitor;
typedef struct ing_server ing_server;
typedef struct ing_finisher ing_finisher;
typedef struct ing_batcher ing_batcher;
typedef struct ing_accounts ing_accounts;
typedef struct ing_ratelimit ing_ratelimit;
typedef struct ing_log_reader ing_log_reader;
typedef struct cat_feed cat_feed;

/* Every limit and address of the process (table in main.c, `--help`). */
typedef struct ing_opts {
    long long http_port;
    char *http_bind;
    long long http_max_body;
    long long http_body_budget;
    long long http_body_timeout_ms;
    long long http_max_connections;
    long long http_reserved_fds;
    long long http_max_request_line;
    long long http_max_head;
    long long http_header_timeout_ms;
    long long http_idle_timeout_ms;
    long long http_crowded_timeout_ms;
    int http_gate;
    int http_direct_replies;
    int http_gate_answers;
    long long pool_threads;
    long long pool_queue_depth;
    char *kafka_brokers;
    char *kafka_security_protocol, *kafka_ssl_ca_location;
    char *kafka_topic;
    char *kafka_control_topic;
    long long kafka_partitions;
    long long kafka_produce_timeout_ms, kafka_request_timeout_ms;
    long long kafka_fail_fast_ms;
    long long kafka_linger_ms;
    long long kafka_max_inflight;
    long long debug_join_delay_ms;     /* test only */
    long long join_round_max;          /* joins per claimer round; 0: no claimer */
    long long status_round_max;        /* polls per result reader round; 0: no reader */
    long long status_eta_catch_up_ms;  /* the ETA's allowance for the owner's drain since */
    int status_eta_owner_drain;        /* the ETA from the owner's published drain */
    int status_eta_at_delivery;        /* a join's ETA estimated at its delivery report */
    long long debug_finisher_delay_ms; /* test only */
    int debug_active_unchecked;        /* test only */
    char *debug_unknown_outcome;       /* test only: "join", "checkout" */

    /* Checkouts per checkout claimer round (routes_orders.c); 0: none. */
    long long checkout_round_max;
    long long debug_checkout_round_delay_ms; /* test only */

    char *pg_dsn;
    long long pg_statement_timeout_ms;
    char *pg_read_dsn; /* "" = read from pg.dsn */
    long long pg_read_max_lag_ms;
    char *http_proxy_token; /* "" = believe the client-address header from anyone */
    int log_intents;
    long long cancel_lookup_timeout_ms;
    int debug_cancel_local_only;
    /* test only: the pre-fix cancel (node-local map) */ /* accepted joins and checkouts logged
                                                            at info with their intent id */
    char *redis_host;
    long long redis_port;
    char *redis_prefix;
    long long redis_timeout_ms;
    char *auth_secret; /* JWTs only */
    char *ids_secret;  /* public ids only (q_id_encode/q_id_decode) */
    int dev_mode;
    long long auth_cache_size;
    long long status_refresh_ms;
    long long status_poll_min_ms;
    long long status_poll_max_ms;
    long long status_poll_ms_per_position;
    long long status_assumed_rate;
    long long status_seq_cache;
    long long event_cache_ms;
    long long event_view_ttl_ms;
    long long event_view_slots;
    long long event_view_refresh_min_ms, event_view_refresh_max_ms, event_view_views_per_s;
    long long idem_ttl_s;
    long long idem_inflight_ttl_s;
    long long monitor_interval_ms;
    char *ops_prometheus_url; /* "" : no history panel (routes_history.c) */
    long long ops_prometheus_timeout_ms;
    long long events_end_grace_s;      /* a sale ends this long after starts_at */
    long long tickets_refund_cutoff_s; /* ticket cancels refused this close to starts_at */
    /* Gate codes (routes_tickets.c, docs/tickets.md). */
    char *tickets_secret; /* derives every ticket's code secret */
    long long tickets_code_step_s;
    long long tickets_code_grace_steps;
    long long tickets_code_versions_back;
    int debug_scan_unchecked;      /* test only */
    long long debug_scan_delay_ms; /* test only */
    int log_requests;
    char *log_level;
    /* Accounts and logins (routes_accounts.c, docs/accounts.md). */
    long long accounts_hash_ops;
    long long accounts_hash_mem_kib;
    long long accounts_hash_concurrency;
    long long accounts_access_ttl_s;
    long long accounts_refresh_ttl_s;
    long long accounts_login_account_failures;
    long long accounts_login_addr_failures;
    long long accounts_login_window_s;
    /* The catalog search (routes_catalog.c, docs/search.md). */
    long long catalog_default_limit;
    long long catalog_max_limit;
    long long catalog_max_terms;
    long long catalog_max_km;
    long long catalog_rank_window;
    long long catalog_fuzzy_threshold_pct;
    long long catalog_max_age_s;
    long long catalog_cache_ttl_ms;
    long long catalog_cache_slots;
    int catalog_index; /* the in-memory index (catalog_index_store.h); 0: the database */
    long long catalog_index_max_events, catalog_index_refresh_ms, catalog_index_lookback_ms;
    long long catalog_index_delta_max, catalog_index_page_rows, catalog_fuzzy_max_words;
    /* Client addresses (client_addr.h) and rate limits (ratelimit.h). */
    char *client_addr_header;
    char *client_trusted_proxies;
    int ratelimit_enabled;
    long long ratelimit_memory_slots;
    long long ratelimit[5][4]; /* [ing_rl_class][ING_RL_USER_PER_MIN ...] */
    /* Proof of work before a join (routes_pow.c, docs/fairness.md). */
    long long pow_challenge_ttl_s;
} ing_opts;

extern const ons_opt ing_opt_table[];
extern const size_t ing_opt_count;

typedef struct ing_app {
    ing_opts o;
    int partitions; /* topic partition count (kafka.partitions or metadata) */
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
    ing_seqmap *seqs;
    ing_monitor *monitor;
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
    ons_gauge *inflight;
} ing_app;

#endif
