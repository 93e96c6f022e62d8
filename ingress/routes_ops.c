/*
 * routes_ops.c - health (/healthz), readiness (/readyz), Prometheus metrics
 * (/metrics) and the operators' queue view (GET /v1/admin/queues).
 *
 * /healthz and /readyz answer from memory: readiness is the monitor
 * thread's last round of checks. The queue view combines the cursor cache
 * (served offset, drain rate), the monitor (high watermarks), PostgreSQL
 * (partition owners, the live events and their caps) and the owners' Redis
 * ev: counters; an event's seats are counted in PostgreSQL only when its
 * owner has not published them (a count over a 1,000,000-seat event's rows
 * takes seconds, and the ops page asks every second).
 */
#include "ingress/routes.h"
#include "common/err.h"
#include "ingress/admin_store.h"
#include "ingress/cursor_cache.h"
#include "queue/msg.h"
#include "ingress/event_cache.h"
#include "queue/intent_id.h"
#include "ingress/json_io.h"
#include "ingress/monitor.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ing_route_healthz(ing_req *r)
{
    ing_reply_raw(r, 200, "{\"status\":\"ok\"}");
}

void ing_route_readyz(ing_req *r)
{
    ing_health h;
    ing_monitor_health(r->app->monitor, &h);
    int fresh = h.age_ms >= 0 && h.age_ms < 5 * r->app->o.monitor_interval_ms + 2000;
    int ready = fresh && h.redis_ok && h.pg_ok && h.kafka_ok;
    json_t *body = json_pack("{s:s, s:b, s:b, s:b, s:I}", "status", ready ? "ready" : "not_ready",
                             "redis", h.redis_ok, "postgres", h.pg_ok, "kafka", h.kafka_ok,
                             "checked_ms_ago", (json_int_t)h.age_ms);
    if (!ready)
        r->retry_after = 1;
    ing_reply_json(r, ready ? 200 : 503, body);
}

void ing_route_metrics(ing_req *r)
{
    ing_app *app = r->app;
    if (app->inflight)
        ons_gauge_set(app->inflight, q_producer_inflight(app->producer));
    ons_gauge *g = ons_metrics_gauge(app->metrics, "onsale_ingress_cursor_cache_age_seconds",
                                     "Seconds since the served cursors were refreshed.", "");
    if (g)
        ons_gauge_set(g, (double)ing_cursors_age_ms(app->cursors) / 1000.0);
    g = ons_metrics_gauge(app->metrics, "onsale_ingress_job_queue_depth",
                          "Jobs waiting for a job thread.", "");
    if (g)
        ons_gauge_set(g, ing_pool_depth(app->pool));
    g = ons_metrics_gauge(app->metrics, "onsale_ingress_topic_partitions_differ",
                          "The intents topic's partition count when it differs from the one "
                          "this ingress maps events with (kafka.partitions), else 0: stale "
                          "claims and unknown outcomes wait until a restart.",
                          "");
    if (g)
        ons_gauge_set(g, app->monitor ? ing_monitor_partitions_differ(app->monitor) : 0);
    g = ons_metrics_gauge(app->metrics, "onsale_ingress_unsent_bytes",
                          "Answer bytes made but not yet taken by the clients' sockets "
                          "(http.unsent_budget).",
                          "");
    if (g)
        ons_gauge_set(g, (double)ons_httpd_unsent_bytes());
    g = ons_metrics_gauge(app->metrics, "onsale_ingress_producer_rebuilds",
                          "Kafka producer rebuilds after fatal errors.", "");
    if (g)
        ons_gauge_set(g, (double)q_producer_rebuilds(app->producer));
    for (int p = 0; p < app->partitions; p++) {
        char labels[32];
        snprintf(labels, sizeof labels, "partition=\"%d\"", p);
        g = ons_metrics_gauge(app->metrics, "onsale_ingress_served_offset",
                              "Served cursor per partition, as this ingress sees it.", labels);
        if (g)
            ons_gauge_set(g, (double)ing_cursors_served(app->cursors, p));
    }
    char *text = ons_metrics_render(app->metrics);
    if (!text) {
        ing_failf(r, NULL, ING_E_OVERLOADED, NULL, "Out of memory.");
        return;
    }
    ing_reply_text(r, 200, "text/plain; version=0.0.4", text, strlen(text));
    free(text);
}

/* ---- GET /v1/admin/queues ---------------------------------------------------------------------
 */

/* The partitions: this node's cursors and the monitor's watermarks, with
 * the owners' rows when PostgreSQL answers (else owner null, no epoch). */
static json_t *partitions_json(ing_req *r, ing_worker *w)
{
    ing_app *app = r->app;
    ing_partition_owner *own = NULL;
    size_t nown = 0;
    if (ing_partition_owners(w, &own, &nown))
        nown = 0;
    json_t *arr = json_array();
    for (int p = 0; arr && p < app->partitions; p++) {
        int64_t served = ing_cursors_served(app->cursors, p);
        int64_t high = ing_monitor_high(app->monitor, Q_TOPIC_INTENTS, p);
        json_t *o = json_pack("{s:i, s:I, s:f}", "partition", p, "served_offset",
                              (json_int_t)served, "drain_rate", ing_cursors_rate(app->cursors, p));
        json_object_set_new(o, "high_watermark", high >= 0 ? json_integer(high) : json_null());
        json_object_set_new(o, "lag",
                            high >= 0 && served >= 0
                                ? json_integer(high > served ? high - served : 0)
                                : json_null());
        json_object_set_new(o, "owner", json_null());
        for (size_t i = 0; i < nown; i++) {
            if (own[i].partition != p)
                continue;
            if (own[i].has_owner)
                json_object_set_new(o, "owner", json_string(own[i].owner));
            json_object_set_new(o, "epoch", json_integer(own[i].epoch));
            json_object_set_new(o, "committed_offset", json_integer(own[i].next_offset));
        }
        json_array_append_new(arr, o);
    }
    free(own);
    return arr;
}

/* Intents this process accepted that the worker has not served yet, for
 * the events listed (event ids sorted descending, as the query returns). */
typedef struct queued_count {
    ing_cursors *cursors;
    const int64_t *events;
    int64_t *counts;
    int n;
} queued_count;

static void count_queued(int64_t seq, int64_t event_id, void *arg)
{
    queued_count *q = arg;
    int64_t served = ing_cursors_served(q->cursors, q_seq_partition(seq));
    if (q_seq_offset(seq) < (served < 0 ? 0 : served))
        return;
    int lo = 0, hi = q->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (q->events[mid] == event_id) {
            q->counts[mid]++;
            return;
        }
        if (q->events[mid] > event_id)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
}

/* The owner's published counters of e (fresher than the last commit's
 * rows), when Redis has them; otherwise e's counts stay -1 for
 * ing_event_counts_fill. */
static void counts_from_owner(ing_worker *w, ing_event_counts *e)
{
    q_event_state st;
    if (q_status_event_get(w->st, e->event_id, &st) || st.available < 0 || st.held < 0 ||
        st.sold < 0 || st.waiting < 0)
        return;
    e->available = st.available;
    e->held = st.held;
    e->sold = st.sold;
    e->waiting = st.waiting;
    e->active_holds = st.holds_active;
}

/* One event of the queue view. queued: intents this process accepted and
 * the worker has not reached (behind several ingress nodes, sum theirs;
 * the partitions' lag bounds the total). */
static json_t *event_json(const ing_event_counts *e, int64_t queued)
{
    json_t *row = json_pack("{s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "event_id",
                            (json_int_t)e->event_id, "status", e->status, "queued",
                            (json_int_t)queued, "waiting", (json_int_t)e->waiting, "held",
                            (json_int_t)e->held, "sold", (json_int_t)e->sold, "available",
                            (json_int_t)e->available, "active_holds", (json_int_t)e->active_holds);
    /* Admission control (docs/fairness.md): caps (0 = none). */
    if (row) {
        json_object_set_new(row, "max_active_holds",
                            e->max_active_holds ? json_integer(e->max_active_holds) : json_null());
        json_object_set_new(row, "admissions_per_minute",
                            e->admissions_per_minute ? json_integer(e->admissions_per_minute)
                                                     : json_null());
    }
    return row;
}

static void admin_queues_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    ing_event_counts *ev = NULL;
    size_t n = 0;
    int rc = ing_live_events(w, r->app->o.ops_queue_events, &ev, &n);
    for (size_t i = 0; rc == 0 && i < n; i++)
        counts_from_owner(w, &ev[i]);
    if (rc == 0)
        rc = ing_event_counts_fill(w, ev, n);
    if (rc) {
        free(ev);
        ing_fail(r, w, ING_E_UNAVAILABLE, NULL);
        return;
    }
    json_t *parts = partitions_json(r, w);
    int64_t *ids = calloc(n + 1, sizeof *ids);
    int64_t *queued = calloc(n + 1, sizeof *queued);
    if (ids && queued) {
        for (size_t i = 0; i < n; i++)
            ids[i] = ev[i].event_id;
        queued_count q = {r->app->cursors, ids, queued, (int)n};
        ing_seqmap_scan(r->app->seqs, count_queued, &q);
    }
    json_t *events = json_array();
    for (size_t i = 0; events && i < n; i++)
        json_array_append_new(events, event_json(&ev[i], queued ? queued[i] : 0));
    free(ids);
    free(queued);
    free(ev);
    ing_reply_json(r, 200, json_pack("{s:o, s:o}", "partitions", parts, "events", events));
}

void ing_route_admin_queues(ing_req *r)
{
    ing_req_submit(r, admin_queues_job);
}
