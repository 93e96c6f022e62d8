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

#define OPT(...) ONS_OPT_ROW(ing_opts, __VA_ARGS__)

/* The four ratelimit.<cls>.* rows of rate-limit class c (ingress/ratelimit.h),
 * their defaults given: a sustained rate and a burst, per user and per client
 * address. */
#define ING_RL_OPT_ROWS(cls, c, user_per_min, user_burst, addr_per_min, addr_burst)                \
    OPT("ratelimit." cls ".user_per_min", ONS_OPT_INT, ratelimit[c][ING_RL_USER_PER_MIN], 0,       \
        6000000, user_per_min,                                                                     \
        cls " requests per minute per user, sustained (0: no per-user limit)"),                    \
        OPT("ratelimit." cls ".user_burst", ONS_OPT_INT, ratelimit[c][ING_RL_USER_BURST], 1,       \
            1000000, user_burst,                                                                   \
            cls " requests per user admitted at once before the rate applies"),                    \
        OPT("ratelimit." cls ".addr_per_min", ONS_OPT_INT, ratelimit[c][ING_RL_ADDR_PER_MIN], 0,   \
            6000000, addr_per_min,                                                                 \
            cls " requests per minute per client address, sustained (0: no per-address limit)"),   \
        OPT("ratelimit." cls ".addr_burst", ONS_OPT_INT, ratelimit[c][ING_RL_ADDR_BURST], 1,       \
            1000000, addr_burst,                                                                   \
            cls " requests per client address admitted at once before the rate applies")

const ons_opt ing_opt_table[] = {
    OPT("http.port", ONS_OPT_INT, http_port, 0, 65535, "8080", "HTTP listen port"),
    OPT("http.bind", ONS_OPT_STR, http_bind, 1, 255, "127.0.0.1", "HTTP listen address"),
    OPT("http.max_body", ONS_OPT_INT, http_max_body, 64, 1048576, "16384",
        "largest request body in bytes; a larger declared Content-Length is refused (413) "
        "before any of it is read"),
    OPT("http.body_budget", ONS_OPT_INT, http_body_budget, 64, 1LL << 40, "8388608",
        "bytes of request bodies being received at once (declared lengths); a body that does "
        "not fit is refused (503 overloaded, closed) before any of it is read"),
    OPT("http.body_timeout_ms", ONS_OPT_INT, http_body_timeout_ms, 100, 600000, "10000",
        "a declared body must arrive within this time after its head (else 408, closed)"),
    OPT("http.max_connections", ONS_OPT_INT, http_max_connections, 16, 1000000, "16384",
        "open client connections; more are answered 503 and closed at once"),
    OPT("http.reserved_fds", ONS_OPT_INT, http_reserved_fds, 64, 1000000, "1024",
        "descriptors never given to clients (PostgreSQL, Redis, Kafka, files); the open-file "
        "limit is set to http.max_connections + this"),
    OPT("http.max_request_line", ONS_OPT_INT, http_max_request_line, 256, 8000, "4096",
        "longest request line in bytes (longer: 414, closed)"),
    OPT("http.max_head", ONS_OPT_INT, http_max_head, 1024, 8000, "8000",
        "largest request head (request line and headers) in bytes (larger: 431, closed); at "
        "most 8000, as nng 1.5.2 drops heads over 8192 bytes unanswered"),
    OPT("http.header_timeout_ms", ONS_OPT_INT, http_header_timeout_ms, 100, 600000, "10000",
        "a connection that has not sent a complete request head in this time is closed"),
    OPT("http.idle_timeout_ms", ONS_OPT_INT, http_idle_timeout_ms, 100, 3600000, "60000",
        "a connection silent this long between requests is closed"),
    OPT("http.crowded_timeout_ms", ONS_OPT_INT, http_crowded_timeout_ms, 100, 600000, "2000",
        "the header timeout while 90% of http.max_connections are open or a client was just "
        "refused"),
    OPT("http.gate", ONS_OPT_BOOL, http_gate, 0, 1, "true",
        "the accept gate (connection cap, head checks, timeouts); false leaves nng 1.5.2 alone "
        "and is for comparison only"),
    OPT("http.direct_replies", ONS_OPT_BOOL, http_direct_replies, 0, 1, "true",
        "answers made on nng's thread for a keep-alive connection are written whole by "
        "ingress (one buffer, one write, pooled) instead of through nng's response object; "
        "false for comparison (docs/http-edge.md)"),
    OPT("http.gate_answers", ONS_OPT_BOOL, http_gate_answers, 0, 1, "true",
        "the hot GETs answered at once from memory (a queued poll, a cached event view) are "
        "answered by the accept gate as it reads them, without nng's request parse and task "
        "hand-offs (needs http.gate and http.direct_replies); false for comparison "
        "(docs/http-edge.md)"),
    OPT("pool.threads", ONS_OPT_INT, pool_threads, 1, 256, "4",
        "job threads (each owns one PostgreSQL and one Redis connection)"),
    OPT("pool.queue_depth", ONS_OPT_INT, pool_queue_depth, 1, 1000000, "4096",
        "jobs waiting for a thread before requests get 503; also the joins waiting for the "
        "join claimer, the polls waiting for the result reader and the checkouts waiting for the "
        "checkout claimer"),
    OPT("join.round_max", ONS_OPT_INT, join_round_max, 0, ING_JOIN_ROUND_MAX, "256",
        "joins whose Idempotency-Key records, then whose active-key claims, share one pipelined "
        "Redis round trip each on the join claimer thread (0: no claimer, each join goes alone "
        "on a job thread)"),
    OPT("checkout.round_max", ONS_OPT_INT, checkout_round_max, 0, ING_CHECKOUT_ROUND_MAX, "256",
        "checkouts whose rate limits and Idempotency-Key records share one pipelined Redis round "
        "trip each, and whose reservations one PostgreSQL read, on the checkout claimer thread "
        "(0: no claimer, each checkout goes alone on a job thread)"),
    OPT("status.eta_catch_up_ms", ONS_OPT_INT, status_eta_catch_up_ms, 0, 10000, "500",
        "the ETA counts the owner's drain since it published its cursor (status.eta_owner_drain) "
        "or since this node saw the cursor rise, up to this long (a stalled owner is not assumed "
        "to move; 0: the ETA counts from now)"),
    OPT("status.eta_owner_drain", ONS_OPT_BOOL, status_eta_owner_drain, 0, 1, "true",
        "the ETA counts the owner's batches from the moment its cursor was reached (its "
        "published drain: when, records per busy second, busy time per batch; docs/fairness.md); "
        "false: position / the owner's smoothed rate, counted from when this node saw the cursor "
        "rise"),
    OPT("status.eta_at_delivery", ONS_OPT_BOOL, status_eta_at_delivery, 0, 1, "true",
        "a join's position and ETA are estimated the moment its delivery report arrives (the "
        "join is in the log and the owner may reach it), not when its 202 is written after the "
        "finisher's Redis round trips"),
    OPT("status.round_max", ONS_OPT_INT, status_round_max, 0, ING_RESULT_ROUND_MAX, "256",
        "polls of processed intents whose result documents share one Redis MGET on the result "
        "reader thread (0: no reader, each poll reads alone on a job thread)"),
    ONS_OPT_KAFKA_ROWS(ing_opts, kafka_brokers, kafka_topic),
    Q_KSEC_OPT_ROWS(ing_opts, kafka_security_protocol, kafka_ssl_ca_location),
    ONS_OPT_KAFKA_CONTROL_TOPIC_ROW(
        ing_opts, kafka_control_topic,
        "topic of checkouts, payments, cancels and status records (\"\": <kafka.topic>.control)"),
    OPT("kafka.partitions", ONS_OPT_INT, kafka_partitions, 0, 65536, "0",
        "partitions of the topic (0: read from the broker's metadata at start)"),
    OPT("kafka.produce_timeout_ms", ONS_OPT_INT, kafka_produce_timeout_ms, 100, 300000, "5000",
        "a join not acknowledged by Kafka within this time gets 503"),
    OPT("kafka.request_timeout_ms", ONS_OPT_INT, kafka_request_timeout_ms, 1000, 300000, "30000",
        "librdkafka's request.timeout.ms and socket.timeout.ms: a request unanswered by then is "
        "given up; an unknown outcome is settled after twice kafka.produce_timeout_ms plus this"),
    OPT("kafka.fail_fast_ms", ONS_OPT_INT, kafka_fail_fast_ms, 0, 600000, "2000",
        "records are refused at once (503 queue_unavailable) while the monitor has found Kafka "
        "unreachable for this long (0: never; each waits for its produce timeout)"),
    OPT("kafka.linger_ms", ONS_OPT_INT, kafka_linger_ms, 0, 1000, "2", "producer batching delay"),
    OPT("kafka.max_inflight", ONS_OPT_INT, kafka_max_inflight, 1, 1000000, "20000",
        "records sent and not yet acknowledged before joins get 503"),
    OPT("debug.join_delay_ms", ONS_OPT_INT, debug_join_delay_ms, 0, 60000, "0",
        "test only: a join's job sleeps this long before producing"),
    OPT("debug.checkout_round_delay_ms", ONS_OPT_INT, debug_checkout_round_delay_ms, 0, 60000, "0",
        "test only: the checkout claimer waits this long before each round, so the checkouts "
        "sent meanwhile gather in the next one"),
    OPT("debug.finisher_delay_ms", ONS_OPT_INT, debug_finisher_delay_ms, 0, 60000, "0",
        "test only: delivered joins are finished this long after their delivery report"),
    OPT("debug.active_unchecked", ONS_OPT_BOOL, debug_active_unchecked, 0, 1, "false",
        "test only: write the active key unconditionally and never take over a finished "
        "intent's key (the pre-fix behaviour, for race controls)"),
    OPT("debug.cancel_local_only", ONS_OPT_BOOL, debug_cancel_local_only, 0, 1, "false",
        "test only: a cancel finds a still-queued intent's event only in this node's memory "
        "(the pre-fix behaviour: 409 not_cancellable_yet on other nodes)"),
    OPT("debug.unknown_outcome", ONS_OPT_STR, debug_unknown_outcome, 0, 64, "",
        "test only: successful deliveries of these records (join, checkout) are treated as "
        "possibly persisted"),
    ONS_OPT_PG_DSN_ROW(ing_opts, pg_dsn, ONS_PG_DSN_LOCAL " connect_timeout=5",
                       "PostgreSQL connection string"),
    OPT("pg.statement_timeout_ms", ONS_OPT_INT, pg_statement_timeout_ms, 0, 600000, "10000",
        "statement_timeout of the job threads' connections"),
    OPT("pg.read_dsn", ONS_OPT_STR, pg_read_dsn, 0, 1024, "",
        "read replica for ticket history and event views; empty: pg.dsn"),
    OPT("pg.read_max_lag_ms", ONS_OPT_INT, pg_read_max_lag_ms, 0, 3600000, "1000",
        "reads use the replica only while its replay lag is at most this (else the primary)"),
    OPT("http.proxy_token", ONS_OPT_STR, http_proxy_token, 0, 255, "",
        "secret the proxy in front sends in X-Onsale-Proxy-Token; when set, the client-address "
        "header (client.addr_header) is believed only on requests carrying it"),
    ONS_OPT_REDIS_ROWS(ing_opts, redis_host, redis_port, redis_prefix, redis_timeout_ms),
    ONS_OPT_AUTH_SECRET_ROW(ing_opts, auth_secret,
                            "HS256 key of the bearer tokens (JWTs); docs/security.md"),
    ONS_OPT_IDS_SECRET_ROW(
        ing_opts, ids_secret,
        "HMAC key of the public ids (intents, reservations, orders); the workers' ids.secret"),
    ONS_OPT_DEV_MODE_ROW(ing_opts, dev_mode),
    OPT("auth.cache_size", ONS_OPT_INT, auth_cache_size, 0, 10000000, "16384",
        "verified bearer tokens remembered until their exp (0: verify every request)"),
    OPT("status.refresh_ms", ONS_OPT_INT, status_refresh_ms, 5, 10000, "50",
        "how often the served cursors are read from Redis"),
    OPT("status.poll_min_ms", ONS_OPT_INT, status_poll_min_ms, 50, 600000, "500",
        "smallest poll_after_ms given to a client"),
    OPT("status.poll_max_ms", ONS_OPT_INT, status_poll_max_ms, 50, 600000, "10000",
        "largest poll_after_ms given to a client"),
    OPT("status.poll_ms_per_position", ONS_OPT_INT, status_poll_ms_per_position, 0, 10000, "2",
        "poll_after_ms grows by this much per place in the queue"),
    OPT("status.assumed_rate", ONS_OPT_INT, status_assumed_rate, 1, 10000000, "1000",
        "drain rate (intents/s) assumed for eta_seconds before a worker reported one"),
    OPT("status.seq_cache", ONS_OPT_INT, status_seq_cache, 1024, 100000000, "262144",
        "intents whose event this process remembers (for polls and cancels)"),
    OPT("pow.challenge_ttl_s", ONS_OPT_INT, pow_challenge_ttl_s, 5, 3600, "120",
        "how long a proof-of-work challenge (GET /v1/events/{id}/challenge) may be used"),
    OPT("event_cache.ttl_ms", ONS_OPT_INT, event_cache_ms, 0, 60000, "250",
        "how long an event's sale state is cached in memory"),
    OPT("event_view.ttl_ms", ONS_OPT_INT, event_view_ttl_ms, 0, 60000, "1000",
        "how long a rendered event view (GET /v1/events/{id}) is served from memory"),
    OPT("event_view.slots", ONS_OPT_INT, event_view_slots, 1, 10000000, "16384",
        "event views kept in memory (one per slot; a collision evicts)"),
    OPT("event_view.refresh_min_ms", ONS_OPT_INT, event_view_refresh_min_ms, 1000, 600000, "5000",
        "refresh_after_ms the view tells the fan page while its event is quiet"),
    OPT("event_view.refresh_max_ms", ONS_OPT_INT, event_view_refresh_max_ms, 1000, 600000, "60000",
        "the longest refresh_after_ms the view tells the fan page, however big the crowd"),
    OPT("event_view.views_per_s", ONS_OPT_INT, event_view_views_per_s, 1, 10000000, "2000",
        "view refreshes per second one event's crowd (waiting + holding) is spread to"),
    OPT("idem.ttl_s", ONS_OPT_INT, idem_ttl_s, 60, 604800, "86400",
        "how long an Idempotency-Key's response is kept for replay"),
    OPT("idem.inflight_ttl_s", ONS_OPT_INT, idem_inflight_ttl_s, 5, 3600, "60",
        "how long a key stays claimed by a request that never finished"),
    OPT("monitor.interval_ms", ONS_OPT_INT, monitor_interval_ms, 100, 60000, "1000",
        "how often /readyz dependencies and watermarks are checked"),
    OPT("ops.prometheus_url", ONS_OPT_STR, ops_prometheus_url, 0, 255, "",
        "Prometheus that scrapes the stack, e.g. http://127.0.0.1:29090: the ops dashboard's "
        "history (GET /v1/admin/history); \"\": none"),
    OPT("ops.prometheus_timeout_ms", ONS_OPT_INT, ops_prometheus_timeout_ms, 100, 30000, "2000",
        "how long one history query may take"),
    Q_END_GRACE_OPT_ROW(
        ing_opts, events_end_grace_s,
        "an event's sale ends this long after its starts_at (same value as the worker's)"),
    Q_REFUND_CUTOFF_OPT_ROW(ing_opts, tickets_refund_cutoff_s),
    OPT("tickets.secret", ONS_OPT_STR, tickets_secret, ONS_AUTH_SECRET_MIN, ONS_AUTH_SECRET_MAX,
        ING_TICKETS_SECRET_DEV,
        "HMAC key from which every ticket's rotating gate code is derived; docs/security.md"),
    OPT("tickets.code_step_s", ONS_OPT_INT, tickets_code_step_s, 5, 3600, "30",
        "a ticket's gate code changes every this many seconds"),
    OPT("tickets.code_grace_steps", ONS_OPT_INT, tickets_code_grace_steps, 0, 10, "1",
        "steps either side of now whose code still admits (clock skew, a code shown just "
        "before it turned)"),
    OPT("tickets.code_versions_back", ONS_OPT_INT, tickets_code_versions_back, 0, 64, "8",
        "transfers back a scanned code is recognised as a transferred ticket's (409 "
        "ticket_transferred rather than 400 code_invalid)"),
    OPT("debug.scan_unchecked", ONS_OPT_BOOL, debug_scan_unchecked, 0, 1, "false",
        "test only: admit without the once-only guard (the race control)"),
    OPT("debug.scan_delay_ms", ONS_OPT_INT, debug_scan_delay_ms, 0, 60000, "0",
        "test only: a scan sleeps this long between reading the ticket and admitting it"),
    OPT("catalog.default_limit", ONS_OPT_INT, catalog_default_limit, 1, 1000, "20",
        "events per catalog page without limit="),
    OPT("catalog.max_limit", ONS_OPT_INT, catalog_max_limit, 1, 1000, "100",
        "largest limit= of a catalog page"),
    OPT("catalog.max_terms", ONS_OPT_INT, catalog_max_terms, 1, 100, "8",
        "words a catalog q= may hold (more: 400)"),
    OPT("catalog.max_km", ONS_OPT_INT, catalog_max_km, 1, 20040, "1000",
        "largest km= of the catalog's distance filter"),
    OPT("catalog.rank_window", ONS_OPT_INT, catalog_rank_window, 10, 1000000, "500",
        "matches a relevance sort ranks at most (the first in index order; bounds a broad q)"),
    OPT("catalog.fuzzy_threshold_pct", ONS_OPT_INT, catalog_fuzzy_threshold_pct, 10, 100, "50",
        "trigram word similarity (percent) a name needs to match a q whose words found nothing"),
    OPT("catalog.max_age_s", ONS_OPT_INT, catalog_max_age_s, 0, 60, "1",
        "Cache-Control max-age of catalog answers (a CDN may serve them this long)"),
    OPT("catalog.cache_ttl_ms", ONS_OPT_INT, catalog_cache_ttl_ms, 0, 60000, "1000",
        "how long a node serves a catalog answer from memory (at most max_age_s; 0: off)"),
    OPT("catalog.cache_slots", ONS_OPT_INT, catalog_cache_slots, 1, 10000000, "4096",
        "catalog answers kept in memory (one per slot; a collision evicts)"),
    OPT("catalog.index", ONS_OPT_BOOL, catalog_index, 0, 1, "true",
        "answer searches from an in-memory index of every event (false: from PostgreSQL)"),
    OPT("catalog.index_max_events", ONS_OPT_INT, catalog_index_max_events, 0, 100000000, "5000000",
        "events the index may hold (more: searches use PostgreSQL, logged)"),
    OPT("catalog.index_refresh_ms", ONS_OPT_INT, catalog_index_refresh_ms, 10, 60000, "250",
        "how often the index reads changed events (a change shows within about this)"),
    OPT("catalog.index_lookback_ms", ONS_OPT_INT, catalog_index_lookback_ms, 0, 600000, "5000",
        "changes re-read for late commits (0: none, test only: late commits are missed)"),
    OPT("catalog.index_delta_max", ONS_OPT_INT, catalog_index_delta_max, 1, 10000000, "20000",
        "changed events held beside the index's base before a new base is loaded"),
    OPT("catalog.index_page_rows", ONS_OPT_INT, catalog_index_page_rows, 1, 1000000, "20000",
        "rows per statement when the index loads and reads changes"),
    OPT("catalog.fuzzy_max_words", ONS_OPT_INT, catalog_fuzzy_max_words, 1, 10000, "8",
        "lexicon words one misspelt word may stand for in the index (the most similar)"),
    OPT("log.requests", ONS_OPT_BOOL, log_requests, 0, 1, "true",
        "log one line per request (at debug level; 5xx at warn)"),
    ONS_OPT_LOG_LEVEL_ROW(ing_opts, log_level, 16),
    OPT("cancel.lookup_timeout_ms", ONS_OPT_INT, cancel_lookup_timeout_ms, 100, 60000, "2000",
        "a cancel of a still-queued intent another node accepted reads its record back from "
        "Kafka for at most this long (then 409 not_cancellable_yet)"),
    OPT("log.intents", ONS_OPT_BOOL, log_intents, 0, 1, "false",
        "log every accepted join and checkout at info with its intent_id and request_id (the "
        "intent's trail across processes; else joins at debug)"),
    /* Accounts (docs/accounts.md). The hash defaults are libsodium's argon2id
     * interactive limits; raising them rehashes each password at its next
     * successful login. */
    OPT("accounts.hash_ops", ONS_OPT_INT, accounts_hash_ops, ONS_PASSWORD_OPS_MIN,
        ONS_PASSWORD_OPS_MAX, "2", "argon2id passes per password hash"),
    OPT("accounts.hash_mem_kib", ONS_OPT_INT, accounts_hash_mem_kib, ONS_PASSWORD_MEM_KIB_MIN,
        ONS_PASSWORD_MEM_KIB_MAX, "65536", "argon2id memory per password hash, KiB"),
    OPT("accounts.hash_concurrency", ONS_OPT_INT, accounts_hash_concurrency, 1, 256, "2",
        "password hashes (logins, sign-ups) queued or running at once; more get 503 "
        "(keep below pool.threads so joins always find a thread)"),
    OPT("accounts.access_ttl_s", ONS_OPT_INT, accounts_access_ttl_s, 60, 86400, "900",
        "lifetime of an access token issued at login or refresh"),
    OPT("accounts.refresh_ttl_s", ONS_OPT_INT, accounts_refresh_ttl_s, 300, 31622400, "2592000",
        "lifetime of a refresh token (each refresh issues a new one)"),
    OPT("accounts.login_account_failures", ONS_OPT_INT, accounts_login_account_failures, 1, 1000000,
        "5", "failed logins per email per window before 429"),
    OPT("accounts.login_addr_failures", ONS_OPT_INT, accounts_login_addr_failures, 1, 1000000, "50",
        "failed logins per client address per window before 429"),
    OPT("accounts.login_window_s", ONS_OPT_INT, accounts_login_window_s, 1, 86400, "900",
        "window of the failed-login counters, from a key's first failure"),
    /* Client addresses and rate limits (docs/fairness.md). */
    OPT("client.addr_header", ONS_OPT_STR, client_addr_header, 0, 64, "X-Forwarded-For",
        "header the trusted proxies append the client's address to"),
    OPT("client.trusted_proxies", ONS_OPT_STR, client_trusted_proxies, 0, 1024, "",
        "addresses or CIDR blocks of the proxies in front of ingress, comma-separated; the "
        "client is the rightmost client.addr_header entry not among them; empty: the header is "
        "ignored and per-address limits are off (nng 1.5.2 does not expose the socket's peer)"),
    OPT("ratelimit.enabled", ONS_OPT_BOOL, ratelimit_enabled, 0, 1, "true",
        "refuse requests over the per-user and per-address limits below with 429 rate_limited"),
    OPT("ratelimit.memory_slots", ONS_OPT_INT, ratelimit_memory_slots, 1, 100000000, "262144",
        "per-node poll buckets kept in memory (a collision evicts the older one)"),
    ING_RL_OPT_ROWS("join", ING_RL_JOIN, "60", "20", "6000", "1000"),
    ING_RL_OPT_ROWS("poll", ING_RL_POLL, "1200", "120", "60000", "6000"),
    ING_RL_OPT_ROWS("checkout", ING_RL_CHECKOUT, "60", "20", "6000", "1000"),
    ING_RL_OPT_ROWS("catalog", ING_RL_CATALOG, "600", "100", "6000", "1000"),
    ING_RL_OPT_ROWS("login", ING_RL_LOGIN, "0", "1", "300", "100"),
};
const size_t ing_opt_count = ONS_OPT_COUNT(ing_opt_table);

/* Sets the soft open-file limit to the client cap plus the descriptors
 * reserved for everything else (the accept gate keeps clients below the
 * reserve, common/httpd.h). */
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

/* The registry and ingress's own counters (the modules add theirs). */
static int start_metrics(ing_app *app)
{
    app->metrics = ons_metrics_new();
    if (!app->metrics)
        return ONS_ENOMEM;
    app->produce_errors = ons_metrics_counter(app->metrics, "onsale_ingress_produce_errors_total",
                                              "Records Kafka did not take.", "");
    app->produced = ons_metrics_counter(app->metrics, "onsale_ingress_produced_total",
                                        "Records acknowledged by Kafka.", "");
    app->join_claim_rounds =
        ons_metrics_counter(app->metrics, "onsale_ingress_join_claim_rounds_total",
                            "Pipelined Redis round trips of the join claimer.", "");
    app->join_claims = ons_metrics_counter(app->metrics, "onsale_ingress_join_claims_total",
                                           "Active-key claims sent by the join claimer.", "");
    app->result_rounds =
        ons_metrics_counter(app->metrics, "onsale_ingress_result_rounds_total",
                            "MGETs of the result reader (polls of processed intents).", "");
    app->result_reads = ons_metrics_counter(app->metrics, "onsale_ingress_result_reads_total",
                                            "Result documents asked for by the result reader.", "");
    app->checkout_rounds =
        ons_metrics_counter(app->metrics, "onsale_ingress_checkout_rounds_total",
                            "Rounds of the checkout claimer (one PostgreSQL read each).", "");
    app->checkout_round_items =
        ons_metrics_counter(app->metrics, "onsale_ingress_checkout_round_items_total",
                            "Checkouts taken by the checkout claimer's rounds.", "");
    app->cancelled_requests =
        ons_metrics_counter(app->metrics, "onsale_ingress_cancelled_requests_total",
                            "Requests whose client left before the reply.", "");
    app->inflight = ons_metrics_gauge(app->metrics, "onsale_ingress_produce_inflight",
                                      "Records sent to Kafka and not yet acknowledged.", "");
    return 0;
}

/* The Kafka producer, and the topic's partition count (configured, or
 * read from the brokers). */
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
    if (app->partitions == 0 &&
        (rc = q_producer_partitions(app->producer, 10000, &app->partitions)) != 0) {
        ons_log_error("cannot read the partition count of topic %s: %s", app->o.kafka_topic,
                      ons_strerror(rc));
        return rc;
    }
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
    q_status_opts redis = {app->o.redis_host, (int)app->o.redis_port, app->o.redis_prefix,
                           (int)app->o.redis_timeout_ms, 3600};
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
        (rc = ing_seqmap_new((size_t)app->o.status_seq_cache, &app->seqs)) ||
        (rc = ing_log_reader_new(
             app->o.kafka_brokers,
             &(q_ksec){app->o.kafka_security_protocol, app->o.kafka_ssl_ca_location},
             app->o.kafka_topic, &app->log_reader)) ||
        (rc = ing_monitor_new(app->producer, app->partitions, &redis, app->o.pg_dsn,
                              (int)app->o.monitor_interval_ms, &app->monitor)) ||
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
    ing_monitor_free(app->monitor); /* job threads read its health until now */
    q_producer_free(app->producer, 0);
    ing_server_free(app->server);
    cat_feed_stop(app->catalog_feed); /* searches are over */
    ing_cursors_free(app->cursors);
    ing_events_free(app->events);
    ing_views_free(app->views);
    ing_seqmap_free(app->seqs);
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
