/*
 * report.c - the simulator's report: a table for people, a JSON file for
 * tools (bench/, CI), and an SVG chart of the run over time (queue depth,
 * seats held and sold, consumer lag; the server's numbers from
 * GET /v1/admin/queues when it answered, else the simulator's own).
 */
#include "admin/sim/sim.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *stop_reason(int by)
{
    static const char *r[] = {"every fan finished", "the rest were waiting and nothing changed",
                              "max_seconds reached", "interrupted"};
    return by >= 0 && by < 4 ? r[by] : "?";
}

/* "12.3 s" or "never" into buf. */
static const char *secs(char *buf, size_t cap, int64_t ms)
{
    if (ms < 0)
        snprintf(buf, cap, "never");
    else
        snprintf(buf, cap, "%.2f s", (double)ms / 1000.0);
    return buf;
}

typedef struct lat3 {
    double p50, p95, p99;
} lat3;

static lat3 lat(sim_samples *sm)
{
    lat3 l = {sim_samples_pct(sm, 50), sim_samples_pct(sm, 95), sim_samples_pct(sm, 99)};
    return l;
}

/* The span over which accepted intents left the queue, and its rate. */
static double drain_rate(const sim *s, int64_t *span_ms)
{
    int64_t first = -1, last = -1;
    long long served = 0;
    for (size_t i = 0; i < s->nfans; i++) {
        const sim_fan *f = &s->fans[i];
        if (f->intent_id[0] == '\0' || f->served_ms < 0)
            continue;
        served++;
        if (first < 0 || f->join_ms < first)
            first = f->join_ms;
        if (f->served_ms > last)
            last = f->served_ms;
    }
    *span_ms = first >= 0 ? last - first : -1;
    return *span_ms > 0 ? (double)served * 1000.0 / (double)*span_ms : 0;
}

/* How far the first ETA each queued fan was shown missed the moment the
 * fan left the queue. The first answer past the queue says that moment
 * (left_queue_at, the owner's clock), and the ETA's answer the moment it
 * promised (eta_at, the answering node's clock: the estimate is judged
 * from when it was made, not from when the answer reached the fan); without it (an owner restarted)
 * the sim knows it only between two answers: after the last one that said queued and by the first
 * one that did not. The error is the distance from the promised moment (shown at + ETA) to that
 * moment, or to that window: 0 when the promise falls inside it, > 0 when the fan was reached later
 * than promised, < 0 earlier; exact counts the fans measured exactly. seen_* is the cruder
 * figure a fan feels: the wait until the first answer past the queue minus
 * the ETA, which also counts the poll interval. rel = |error| / the wait
 * as seen, floored at one second so that a fan served at once does not
 * dominate. window_p50_ms is the window's median width (the resolution, 0
 * for an exact measure).
 *
 * by_position and by_shown split the same fans into ETA_BUCKETS groups of
 * equal size, by the position the first ETA was given for and by when it
 * was given (ms since the first join): where in the queue, and when in
 * the sale, the estimate goes wrong, and which way. */
#define ETA_BUCKETS 10

typedef struct eta_bucket {
    size_t n;
    double from, to; /* the group's range of the key */
    double p50_rel, p90_rel, p50_signed_ms, p50_wait_ms, p50_eta_ms;
} eta_bucket;

typedef struct eta_error {
    size_t fans, exact;
    double p50_abs_ms, p90_abs_ms, p50_rel, p90_rel, p50_signed_ms;
    double seen_p50_abs_ms, seen_p50_rel, seen_p90_rel, window_p50_ms;
    size_t nbuckets;
    eta_bucket by_position[ETA_BUCKETS], by_shown[ETA_BUCKETS];
} eta_error;

/* One fan measured by eta_errors. */
typedef struct eta_fan {
    double position, shown_ms, eta_ms, wait_ms, err_ms, rel;
} eta_fan;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The p-th percentile of v[0..n) (sorts v; n > 0). */
static double pct_of(double *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    return v[i ? i - 1 : 0];
}

static int by_position_cmp(const void *a, const void *b)
{
    const eta_fan *x = a, *y = b;
    return (x->position > y->position) - (x->position < y->position);
}

static int by_shown_cmp(const void *a, const void *b)
{
    const eta_fan *x = a, *y = b;
    return (x->shown_ms > y->shown_ms) - (x->shown_ms < y->shown_ms);
}

/* Sorts f[0..n) by cmp and fills out[0..ETA_BUCKETS) with equal-count
 * groups (key: the position, or shown_ms - t0); tmp has room for n. */
static void eta_buckets(eta_fan *f, size_t n, int (*cmp)(const void *, const void *), double t0,
                        double *tmp, eta_bucket *out)
{
    qsort(f, n, sizeof *f, cmp);
    for (size_t b = 0; b < ETA_BUCKETS; b++) {
        size_t lo = n * b / ETA_BUCKETS, hi = n * (b + 1) / ETA_BUCKETS;
        eta_bucket *o = &out[b];
        memset(o, 0, sizeof *o);
        o->n = hi - lo;
        if (hi == lo)
            continue;
        int pos = cmp == by_position_cmp;
        o->from = pos ? f[lo].position : f[lo].shown_ms - t0;
        o->to = pos ? f[hi - 1].position : f[hi - 1].shown_ms - t0;
        for (size_t i = lo; i < hi; i++)
            tmp[i - lo] = f[i].rel;
        o->p50_rel = pct_of(tmp, hi - lo, 50);
        o->p90_rel = pct_of(tmp, hi - lo, 90);
        for (size_t i = lo; i < hi; i++)
            tmp[i - lo] = f[i].err_ms;
        o->p50_signed_ms = pct_of(tmp, hi - lo, 50);
        for (size_t i = lo; i < hi; i++)
            tmp[i - lo] = f[i].wait_ms;
        o->p50_wait_ms = pct_of(tmp, hi - lo, 50);
        for (size_t i = lo; i < hi; i++)
            tmp[i - lo] = f[i].eta_ms;
        o->p50_eta_ms = pct_of(tmp, hi - lo, 50);
    }
}

/* The measured fans ef[0..e->fans) in ten groups by the position their
 * first ETA was for and ten by when it was shown (e->by_position,
 * e->by_shown); none when there are too few fans. */
static void eta_split(sim *s, eta_fan *ef, eta_error *e)
{
    double *tmp = e->fans >= ETA_BUCKETS ? malloc(e->fans * sizeof *tmp) : NULL;
    if (!tmp)
        return;
    double t0 = s->first_join_ms >= 0 ? (double)s->first_join_ms : 0;
    eta_buckets(ef, e->fans, by_position_cmp, t0, tmp, e->by_position);
    eta_buckets(ef, e->fans, by_shown_cmp, t0, tmp, e->by_shown);
    e->nbuckets = ETA_BUCKETS;
    free(tmp);
}

/* When fan f's first ETA was shown and what moment it promised, and the
 * span [lo, hi] in which the fan left the queue: 1 when measured exactly
 * (left_queue_at: lo = hi), 0 from the window between its last queued answer
 * and its first answer past the queue, -1 when f cannot be judged. */
static int fan_bounds(const sim_fan *f, double *shown, double *promised, double *lo, double *hi)
{
    if (f->eta_ms < 0 || f->served_ms < 0 || f->served_ms < f->eta_at_ms ||
        f->queued_seen_ms < f->eta_at_ms)
        return -1;
    *shown = (double)f->eta_at_ms;
    *promised = *shown + (double)f->eta_ms;
    *lo = (double)f->queued_seen_ms;
    *hi = (double)f->served_ms;
    if (f->left_ms < 0)
        return 0;
    *lo = *hi = (double)f->left_ms;
    if (f->eta_due_ms >= 0) { /* both on the server's clock */
        *promised = (double)f->eta_due_ms;
        *shown = *promised - (double)f->eta_ms;
    }
    return 1;
}

/* Fills *e from the fans; when fans_out is not NULL it receives the
 * measured fans (malloc'd, *nout of them; the caller frees). */
static eta_error eta_errors_fans(sim *s, eta_fan **fans_out, size_t *nout)
{
    eta_error e = {0, 0, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, 0, {{0}}, {{0}}};
    sim_samples abs_ms = {0}, rel = {0}, signed_ms = {0}, seen_abs = {0}, seen_rel = {0},
                window = {0};
    eta_fan *ef = calloc(s->nfans ? s->nfans : 1, sizeof *ef);
    for (size_t i = 0; i < s->nfans; i++) {
        const sim_fan *f = &s->fans[i];
        double shown, promised, lo, hi;
        int how = fan_bounds(f, &shown, &promised, &lo, &hi);
        if (how < 0)
            continue;
        e.exact += (size_t)how;
        double err = promised < lo ? lo - promised : promised > hi ? hi - promised : 0;
        double wait = hi - shown;
        double seen_wait = (double)(f->served_ms - f->eta_at_ms);
        double seen = seen_wait - (double)f->eta_ms;
        double r = fabs(err) / (wait > 1000.0 ? wait : 1000.0);
        sim_samples_add(&abs_ms, fabs(err), &s->rng);
        sim_samples_add(&rel, r, &s->rng);
        sim_samples_add(&signed_ms, err, &s->rng);
        sim_samples_add(&seen_abs, fabs(seen), &s->rng);
        sim_samples_add(&seen_rel, fabs(seen) / (seen_wait > 1000.0 ? seen_wait : 1000.0), &s->rng);
        sim_samples_add(&window, hi - lo, &s->rng);
        if (ef)
            ef[e.fans] = (eta_fan){(double)f->eta_pos, shown, (double)f->eta_ms, wait, err, r};
        e.fans++;
    }
    if (e.fans) {
        e.p50_abs_ms = sim_samples_pct(&abs_ms, 50);
        e.p90_abs_ms = sim_samples_pct(&abs_ms, 90);
        e.p50_rel = sim_samples_pct(&rel, 50);
        e.p90_rel = sim_samples_pct(&rel, 90);
        e.p50_signed_ms = sim_samples_pct(&signed_ms, 50);
        e.seen_p50_abs_ms = sim_samples_pct(&seen_abs, 50);
        e.seen_p50_rel = sim_samples_pct(&seen_rel, 50);
        e.seen_p90_rel = sim_samples_pct(&seen_rel, 90);
        e.window_p50_ms = sim_samples_pct(&window, 50);
    }
    if (ef)
        eta_split(s, ef, &e);
    sim_samples *all[] = {&abs_ms, &rel, &signed_ms, &seen_abs, &seen_rel, &window};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]->v);
    if (fans_out && ef) {
        *fans_out = ef;
        *nout = e.fans;
    } else {
        free(ef);
    }
    return e;
}

static eta_error eta_errors(sim *s)
{
    return eta_errors_fans(s, NULL, NULL);
}

int sim_report_eta_log(sim *s, const char *path)
{
    eta_fan *ef = NULL;
    size_t n = 0;
    eta_errors_fans(s, &ef, &n);
    FILE *out = fopen(path, "w");
    if (!out) {
        free(ef);
        fprintf(stderr, "onsale-sim: cannot write %s\n", path);
        return -1;
    }
    double t0 = s->first_join_ms >= 0 ? (double)s->first_join_ms : 0;
    fprintf(out, "# shown_ms\tposition\teta_ms\twait_ms\terror_ms\n");
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%.0f\t%.0f\t%.0f\t%.0f\t%.0f\n", ef[i].shown_ms - t0, ef[i].position,
                ef[i].eta_ms, ef[i].wait_ms, ef[i].err_ms);
    free(ef);
    int rc = fclose(out);
    if (rc != 0)
        fprintf(stderr, "onsale-sim: cannot write %s\n", path);
    return rc == 0 ? 0 : -1;
}

/* The report's counts: joins, codes, and how each fan ended. */
static void print_counts(sim *s, FILE *out)
{
    long long refused = s->joins_sent - s->joins_accepted;
    fprintf(out, "  joins sent               %lld (%lld retries after 429/503)\n", s->joins_sent,
            s->join_retries);
    fprintf(out, "  joins accepted (202)     %lld\n", s->joins_accepted);
    fprintf(out, "  joins refused            %lld\n", refused < 0 ? 0 : refused);
    if (s->pow_solves > 0) {
        lat3 wl = lat(&s->pow_ms);
        fprintf(out,
                "  proof of work solved     %lld times, %.1f / %.1f ms (p50 / p99, this CPU)\n",
                s->pow_solves, wl.p50, wl.p99);
    }
    for (int i = 0; i < s->ncodes; i++)
        fprintf(out, "      %-30s %lld\n", s->codes[i].code, s->codes[i].n);
    fprintf(out, "  reserved                 %lld fans, %lld seats\n", s->reserved_ever,
            s->seats_reserved_ever);
    fprintf(out, "  purchased                %lld\n", s->outcome[O_PURCHASED]);
    fprintf(out, "  sold_out answers         %lld (%lld of them the page's first view: no join)\n",
            s->sold_out_answers, s->sold_out_views);
    fprintf(out, "  kept holds               %lld\n", s->outcome[O_KEPT]);
    fprintf(out, "  released (abandoned)     %lld\n", s->outcome[O_RELEASED]);
    fprintf(out, "  expired                  %lld\n", s->outcome[O_EXPIRED]);
    fprintf(out, "  rejected (other)         %lld\n", s->outcome[O_REJECTED]);
    fprintf(out, "  waiting at the end       %lld\n", s->outcome[O_WAITING]);
    fprintf(out, "  queued at the end        %lld\n", s->outcome[O_QUEUED]);
    fprintf(out, "  errors                   %lld (poll errors %lld)\n", s->outcome[O_ERROR],
            s->poll_errors);
}

/* Whether checkout was available and with which gateway knobs. */
static void print_checkout(const sim *s, FILE *out)
{
    char knobs[160];
    snprintf(knobs, sizeof knobs, "gateway knobs: decline %.2f, error %.2f, lost %.2f, +%lld ms",
             s->o.gateway_decline_rate, s->o.gateway_error_rate, s->o.gateway_lost_response_rate,
             s->o.gateway_latency_ms);
    if (s->checkout < 0)
        fprintf(out,
                "  checkout                 not available (POST /v1/reservations/{id}/checkout "
                "404/405): %lld fans kept their holds instead; %s (not used)\n",
                s->checkout_skipped, knobs);
    else if (s->checkout == 0)
        fprintf(out, "  checkout                 not tried (no fan chose it)\n");
    else
        fprintf(out,
                "  checkout                 available; %lld errors, %lld retried; %lld order "
                "polls (%lld errors); %s (%s)\n",
                s->checkout_errors, s->checkout_retries, s->order_polls, s->order_poll_errors,
                knobs,
                s->gateway_knobs > 0    ? "set on the gateway"
                : s->gateway_knobs == 0 ? "defaults"
                                        : "could not be set");
}

/* The ETA error's groups (eta_error.by_position, by_shown), one line each. */
static void print_eta_buckets(const eta_error *e, FILE *out)
{
    if (!e->nbuckets)
        return;
    const char *head[] = {"ETA error by position", "ETA error by when shown"};
    const eta_bucket *g[] = {e->by_position, e->by_shown};
    for (int k = 0; k < 2; k++) {
        fprintf(out,
                "  %s (%s; median / p90 share of the wait, median signed error, median "
                "ETA and wait):\n",
                head[k], k ? "seconds after the first join" : "position the first ETA was for");
        for (size_t b = 0; b < e->nbuckets; b++) {
            const eta_bucket *x = &g[k][b];
            if (k)
                fprintf(out, "    %7.2f-%7.2f s", x->from / 1000, x->to / 1000);
            else
                fprintf(out, "    %7.0f-%7.0f  ", x->from, x->to);
            fprintf(out, " %4.0f %% / %4.0f %%  %+7.0f ms  eta %6.0f ms  wait %6.0f ms  (%zu)\n",
                    x->p50_rel * 100, x->p90_rel * 100, x->p50_signed_ms, x->p50_eta_ms,
                    x->p50_wait_ms, x->n);
        }
    }
}

/* Latencies of joins, polls, views and answers, and the ETA's error. */
static void print_latencies(sim *s, FILE *out)
{
    lat3 jl = lat(&s->join_lat), pl = lat(&s->poll_lat), al = lat(&s->answer_lat),
         vl = lat(&s->view_lat);
    fprintf(out,
            "  join latency             p50 %.1f ms  p95 %.1f ms  p99 %.1f ms  (%zu samples)\n",
            jl.p50, jl.p95, jl.p99, s->join_lat.seen);
    fprintf(out,
            "  poll latency             p50 %.1f ms  p95 %.1f ms  p99 %.1f ms  (%zu samples)\n",
            pl.p50, pl.p95, pl.p99, s->poll_lat.seen);
    fprintf(out,
            "  event view latency       p50 %.1f ms  p95 %.1f ms  p99 %.1f ms  (%lld views, "
            "%lld failed; every %lld ms per fan or the view's refresh_after_ms, last %lld)\n",
            vl.p50, vl.p95, vl.p99, s->views, s->view_errors, s->o.event_view_ms,
            (long long)s->view_refresh_ms);
    fprintf(out,
            "  time to an answer        p50 %.2f s  p95 %.2f s  p99 %.2f s  (join to "
            "reserved/rejected/sold out)\n",
            al.p50 / 1000, al.p95 / 1000, al.p99 / 1000);
    eta_error ee = eta_errors(s);
    if (ee.fans)
        fprintf(out,
                "  ETA error                median |error| %.2f s (%.0f %% of the wait), p90 "
                "%.2f s (%.0f %%), median %+.2f s (+: later than promised); %zu fans (first ETA "
                "while queued vs when the fan left the queue: %zu exactly (left_queue_at), the "
                "rest within a window, median width %.2f s)\n"
                "  ETA error as seen        median %.2f s (%.0f %% of the wait), p90 %.0f %% "
                "(vs the first answer past the queue: includes the poll interval)\n",
                ee.p50_abs_ms / 1000, ee.p50_rel * 100, ee.p90_abs_ms / 1000, ee.p90_rel * 100,
                ee.p50_signed_ms / 1000, ee.fans, ee.exact, ee.window_p50_ms / 1000,
                ee.seen_p50_abs_ms / 1000, ee.seen_p50_rel * 100, ee.seen_p90_rel * 100);
    else
        fprintf(out, "  ETA error                no queued fan was shown an ETA and served\n");
    print_eta_buckets(&ee, out);
}

/* Polls per fan, how fast the seats went, and the drain rate. */
static void print_pace(sim *s, FILE *out)
{
    char b1[32], b2[32];
    int64_t span;
    double rate = drain_rate(s, &span);
    fprintf(out, "  polls per fan            %.2f (%lld polls / %lld accepted)\n",
            s->joins_accepted ? (double)s->polls / (double)s->joins_accepted : 0.0, s->polls,
            s->joins_accepted);
    fprintf(out, "  first join -> sold out   %s\n",
            secs(b1, sizeof b1,
                 s->sold_out_ms >= 0 && s->first_join_ms >= 0 ? s->sold_out_ms - s->first_join_ms
                                                              : -1));
    fprintf(out, "  first join -> all held   %s (no seat available)\n",
            secs(b2, sizeof b2,
                 s->all_taken_ms >= 0 && s->first_join_ms >= 0 ? s->all_taken_ms - s->first_join_ms
                                                               : -1));
    fprintf(out,
            "  drain rate               %.0f intents/s over %s (accepted joins served); "
            "server peak %.0f msg/s\n",
            rate, secs(b1, sizeof b1, span), s->max_drain_rate);
}

void sim_report_print(sim *s, FILE *out)
{
    fprintf(out, "\nflash sale report: event %" PRId64 ", %" PRId64 " seats, %zu fans\n",
            s->event_id, s->seats_total, s->nfans);
    fprintf(out, "  run                      %.2f s, ended because %s\n",
            (double)s->end_ms / 1000.0, stop_reason(s->stopped_by));
    print_counts(s, out);
    print_checkout(s, out);
    print_latencies(s, out);
    print_pace(s, out);
    fprintf(out, "  connections opened       %lld\n", ons_httpc_connects(s->http));
    for (int l = 0; l < SIM_LANES; l++) {
        const sim_lane *ln = &s->lanes.lane[l];
        fprintf(out,
                "  %-24s %zu connections, %lld sent, waited in the simulator mean %.0f / max %.0f "
                "ms, at most %lld queued\n",
                l == SIM_LANE_ARRIVE ? "arrivals' lane" : "joined fans' lane", ln->cap, ln->sent,
                ln->sent ? ln->wait_sum_ms / (double)ln->sent : 0.0, ln->wait_max_ms,
                ln->max_queued);
    }
}

static json_t *lat_json(sim_samples *sm)
{
    lat3 l = lat(sm);
    return json_pack("{s:f, s:f, s:f, s:I}", "p50", isnan(l.p50) ? 0 : l.p50, "p95",
                     isnan(l.p95) ? 0 : l.p95, "p99", isnan(l.p99) ? 0 : l.p99, "samples",
                     (json_int_t)sm->seen);
}

/* The sampled timeline: one object per sim_point. */
static json_t *timeline_json(const sim *s)
{
    json_t *tl = json_array();
    for (size_t i = 0; tl && i < s->npoints; i++) {
        const sim_point *p = &s->points[i];
        json_array_append_new(
            tl,
            json_pack("{s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "t_s", p->t_s,
                      "fans_queued", (json_int_t)p->fans_queued, "fans_waiting",
                      (json_int_t)p->fans_waiting, "fans_reserved", (json_int_t)p->fans_reserved,
                      "fans_done", (json_int_t)p->fans_done, "queued", (json_int_t)p->queued,
                      "waiting", (json_int_t)p->waiting, "held", (json_int_t)p->held, "sold",
                      (json_int_t)p->sold, "available", (json_int_t)p->available, "lag",
                      (json_int_t)p->lag, "drain_rate", p->drain_rate));
    }
    return tl;
}

/* The audit's verdict and checks, or JSON null when it did not run. */
static json_t *audit_json(const sim *s)
{
    json_t *audit = NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = s->audit_ran ? open_memstream(&buf, &len) : NULL;
    if (m) {
        adm_audit_write_json(&s->audit, m);
        fclose(m);
        json_t *checks = json_loads(buf, 0, NULL);
        audit = json_pack("{s:b, s:I, s:o}", "passed", s->audit_rc == 0 && s->audit.violations == 0,
                          "violations", (json_int_t)s->audit.violations, "checks",
                          checks ? checks : json_array());
    }
    free(buf);
    return audit ? audit : json_null();
}

/* The run's configuration. */
static json_t *config_json(const sim *s)
{
    return json_pack("{s:f, s:I, s:I, s:f, s:f, s:s, s:I, s:I}", "burst_fraction",
                     s->o.burst_fraction, "burst_ms", (json_int_t)s->o.burst_ms, "tail_seconds",
                     (json_int_t)s->o.tail_seconds, "checkout_prob", s->o.checkout_prob,
                     "abandon_prob", s->o.abandon_prob, "abandon_mode", s->o.abandon_mode,
                     "max_quantity", (json_int_t)s->o.max_quantity, "connections",
                     (json_int_t)s->o.connections);
}

/* Joins sent, accepted, retried and refused, with the refusals by code. */
static json_t *joins_json(const sim *s)
{
    json_t *codes = json_object();
    for (int i = 0; codes && i < s->ncodes; i++)
        json_object_set_new(codes, s->codes[i].code, json_integer(s->codes[i].n));
    return json_pack("{s:I, s:I, s:I, s:I, s:o}", "sent", (json_int_t)s->joins_sent, "accepted",
                     (json_int_t)s->joins_accepted, "retries", (json_int_t)s->join_retries,
                     "refused", (json_int_t)(s->joins_sent - s->joins_accepted), "by_code", codes);
}

/* How each fan ended, by outcome name. */
static json_t *outcomes_json(const sim *s)
{
    json_t *outcomes = json_object();
    for (int i = 1; outcomes && i < O_COUNT; i++)
        json_object_set_new(outcomes, sim_outcome_names[i], json_integer(s->outcome[i]));
    return outcomes;
}

/* Whether checkout was available, and the gateway knobs of the run. */
static json_t *checkout_json(const sim *s)
{
    return json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:I, s:b}", "status",
        s->checkout < 0   ? "not_available"
        : s->checkout > 0 ? "available"
                          : "unknown",
        "skipped", (json_int_t)s->checkout_skipped, "errors", (json_int_t)s->checkout_errors,
        "retries", (json_int_t)s->checkout_retries, "order_polls", (json_int_t)s->order_polls,
        "order_poll_errors", (json_int_t)s->order_poll_errors, "gateway_decline_rate",
        s->o.gateway_decline_rate, "gateway_error_rate", s->o.gateway_error_rate,
        "gateway_lost_response_rate", s->o.gateway_lost_response_rate, "gateway_latency_ms",
        (json_int_t)s->o.gateway_latency_ms, "gateway_knobs_set", s->gateway_knobs > 0);
}

/* The ETA error's groups as a JSON array (key: from/to). */
static json_t *eta_buckets_json(const eta_bucket *g, size_t n)
{
    json_t *a = json_array();
    for (size_t b = 0; a && b < n; b++)
        json_array_append_new(a, json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "fans",
                                           (json_int_t)g[b].n, "from", g[b].from, "to", g[b].to,
                                           "p50_rel", g[b].p50_rel, "p90_rel", g[b].p90_rel,
                                           "p50_signed_ms", g[b].p50_signed_ms, "p50_wait_ms",
                                           g[b].p50_wait_ms, "p50_eta_ms", g[b].p50_eta_ms));
    return a;
}

/* The ETA's error over the fans shown one, or JSON null. by_position's
 * from/to are positions, by_shown's ms since the first join. */
static json_t *eta_json(sim *s)
{
    eta_error ee = eta_errors(s);
    json_t *j =
        ee.fans ? json_pack("{s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "fans",
                            (json_int_t)ee.fans, "exact_fans", (json_int_t)ee.exact, "p50_abs_ms",
                            ee.p50_abs_ms, "p90_abs_ms", ee.p90_abs_ms, "p50_rel", ee.p50_rel,
                            "p90_rel", ee.p90_rel, "p50_signed_ms", ee.p50_signed_ms,
                            "seen_p50_abs_ms", ee.seen_p50_abs_ms, "seen_p50_rel", ee.seen_p50_rel,
                            "seen_p90_rel", ee.seen_p90_rel, "window_p50_ms", ee.window_p50_ms)
                : json_null();
    if (ee.fans && j) {
        json_object_set_new(j, "by_position", eta_buckets_json(ee.by_position, ee.nbuckets));
        json_object_set_new(j, "by_shown", eta_buckets_json(ee.by_shown, ee.nbuckets));
    }
    return j;
}

/* Milliseconds from the first join to the moment at_ms, or -1. */
static json_int_t since_first_join(const sim *s, int64_t at_ms)
{
    return at_ms >= 0 && s->first_join_ms >= 0 ? at_ms - s->first_join_ms : -1;
}

/* The report document (json_pack steals the "o" values, on failure too:
 * jansson >= 2.11). */
static json_t *report_doc(sim *s)
{
    int64_t span;
    double rate = drain_rate(s, &span);
    return json_pack(
        "{s:I, s:I, s:I, s:o, s:f, s:s, s:o, s:I, s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:I, s:o,"
        " s:I, s:I, s:f, s:I, s:I, s:f, s:f, s:I, s:o, s:o}",
        "event_id", (json_int_t)s->event_id, "seats", (json_int_t)s->seats_total, "fans",
        (json_int_t)s->nfans, "config", config_json(s), "run_seconds", (double)s->end_ms / 1000.0,
        "stopped", stop_reason(s->stopped_by), "joins", joins_json(s), "reserved",
        (json_int_t)s->reserved_ever, "seats_reserved", (json_int_t)s->seats_reserved_ever,
        "sold_out_answers", (json_int_t)s->sold_out_answers, "sold_out_views",
        (json_int_t)s->sold_out_views, "outcomes", outcomes_json(s), "checkout", checkout_json(s),
        "join_latency_ms", lat_json(&s->join_lat), "poll_latency_ms", lat_json(&s->poll_lat),
        "answer_latency_ms", lat_json(&s->answer_lat), "polls", (json_int_t)s->polls,
        "event_view_latency_ms", lat_json(&s->view_lat), "event_views", (json_int_t)s->views,
        "event_view_errors", (json_int_t)s->view_errors, "polls_per_fan",
        s->joins_accepted ? (double)s->polls / (double)s->joins_accepted : 0.0,
        "first_join_to_sold_out_ms", since_first_join(s, s->sold_out_ms),
        "first_join_to_all_held_ms", since_first_join(s, s->all_taken_ms), "drain_rate", rate,
        "server_peak_drain_rate", s->max_drain_rate, "drain_span_ms", (json_int_t)span, "timeline",
        timeline_json(s), "audit", audit_json(s));
}

/* What each lane's requests waited in the simulator before a connection
 * took them (lanes.h). */
static json_t *lanes_json(const sim *s)
{
    json_t *o = json_object();
    for (int l = 0; o && l < SIM_LANES; l++) {
        const sim_lane *ln = &s->lanes.lane[l];
        json_object_set_new(
            o, l == SIM_LANE_ARRIVE ? "arrive" : "fan",
            json_pack("{s:I, s:I, s:f, s:f, s:I}", "connections", (json_int_t)ln->cap, "sent",
                      (json_int_t)ln->sent, "wait_mean_ms",
                      ln->sent ? ln->wait_sum_ms / (double)ln->sent : 0.0, "wait_max_ms",
                      ln->wait_max_ms, "max_queued", (json_int_t)ln->max_queued));
    }
    return o;
}

int sim_report_json(sim *s, const char *path)
{
    json_t *doc = report_doc(s);
    if (doc) {
        json_object_set_new(doc, "eta_error", eta_json(s));
        json_object_set_new(doc, "lanes", lanes_json(s));
    }
    if (doc && s->pow_solves > 0) {
        json_t *pw = lat_json(&s->pow_ms);
        json_object_set_new(pw, "solves", json_integer(s->pow_solves));
        json_object_set_new(pw, "difficulty", json_integer(s->o.pow_difficulty));
        json_object_set_new(doc, "pow_solve_ms", pw);
    }
    int rc = doc ? json_dump_file(doc, path, JSON_INDENT(2)) : -1;
    json_decref(doc);
    if (rc != 0)
        fprintf(stderr, "onsale-sim: cannot write %s\n", path);
    return rc == 0 ? 0 : -1;
}

/* ---- SVG --------------------------------------------------------------------------- */

#define W      900
#define H      420
#define LEFT   70
#define RIGHT  20
#define TOP    40
#define BOTTOM 50

typedef struct series {
    const char *name, *color;
    long long (*get)(const sim_point *p, int admin);
} series;

static long long get_depth(const sim_point *p, int admin)
{
    return admin && p->queued >= 0 ? p->queued + (p->waiting > 0 ? p->waiting : 0)
                                   : p->fans_queued + p->fans_waiting;
}
static long long get_held(const sim_point *p, int admin)
{
    return admin ? p->held : p->fans_reserved;
}
static long long get_sold(const sim_point *p, int admin)
{
    return admin ? p->sold : -1;
}
static long long get_lag(const sim_point *p, int admin)
{
    return admin ? p->lag : -1;
}

static const series svg_series[] = {
    {"queue depth (queued + waiting)", "#1f77b4", get_depth},
    {"seats held", "#ff7f0e", get_held},
    {"seats sold", "#2ca02c", get_sold},
    {"consumer lag (messages)", "#d62728", get_lag},
};
#define NSERIES (sizeof svg_series / sizeof svg_series[0])

/* The plot's extent: the last sample's time and the largest value. */
static void svg_extent(const sim *s, int admin, double *tmax, double *ymax)
{
    *tmax = *ymax = 1;
    for (size_t i = 0; i < s->npoints; i++) {
        if (s->points[i].t_s > *tmax)
            *tmax = s->points[i].t_s;
        for (size_t k = 0; k < NSERIES; k++) {
            long long v = svg_series[k].get(&s->points[i], admin);
            if (v > *ymax)
                *ymax = (double)v;
        }
    }
}

/* The title, grid, axis labels and frame. */
static void svg_frame(const sim *s, FILE *f, int admin, double tmax, double ymax)
{
    double pw = W - LEFT - RIGHT, ph = H - TOP - BOTTOM;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%d\" y=\"22\" font-size=\"15\">Flash sale: event %" PRId64 ", %" PRId64
            " seats, %zu fans%s</text>\n",
            W, H, LEFT, s->event_id, s->seats_total, s->nfans,
            admin ? "" : " (simulator's view; admin endpoint not available)");
    for (int g = 0; g <= 5; g++) { /* grid and axis labels */
        double y = TOP + ph - ph * g / 5.0, x = LEFT + pw * g / 5.0;
        fprintf(f,
                "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>\n",
                LEFT, y, W - RIGHT, y, LEFT - 6, y + 4, ymax * g / 5.0);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.0f s</text>\n", x,
                H - BOTTOM + 18, tmax * g / 5.0);
    }
    fprintf(f,
            "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
            "stroke=\"#888\"/>\n",
            LEFT, TOP, pw, ph);
}

/* Series k's line and legend entry. */
static void svg_line(const sim *s, FILE *f, size_t k, int admin, double tmax, double ymax)
{
    double pw = W - LEFT - RIGHT, ph = H - TOP - BOTTOM;
    int started = 0;
    fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
            svg_series[k].color);
    for (size_t i = 0; i < s->npoints; i++) {
        long long v = svg_series[k].get(&s->points[i], admin);
        if (v < 0)
            continue;
        fprintf(f, "%s%.1f,%.1f", started ? " " : "", LEFT + pw * s->points[i].t_s / tmax,
                TOP + ph - ph * (double)v / ymax);
        started = 1;
    }
    fprintf(f, "\"/>\n");
    fprintf(f,
            "<rect x=\"%d\" y=\"%zu\" width=\"12\" height=\"3\" fill=\"%s\"/>"
            "<text x=\"%d\" y=\"%zu\">%s</text>\n",
            LEFT + 10 + (int)k * 200, (size_t)(H - 14), svg_series[k].color,
            LEFT + 26 + (int)k * 200, (size_t)(H - 10), svg_series[k].name);
}

int sim_report_svg(const sim *s, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "onsale-sim: cannot write %s\n", path);
        return -1;
    }
    int admin = s->admin_ok > 0;
    double tmax, ymax;
    svg_extent(s, admin, &tmax, &ymax);
    svg_frame(s, f, admin, tmax, ymax);
    for (size_t k = 0; k < NSERIES; k++)
        svg_line(s, f, k, admin, tmax, ymax);
    fprintf(f, "</svg>\n");
    int rc = ferror(f) ? -1 : 0;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}
