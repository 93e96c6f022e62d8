/* test_metrics.c - the Prometheus registry: exact text exposition of
 * counters, gauges and histograms with and without labels, find-or-create
 * rules, and lock-free updates from many threads summing correctly. */
#include "common/metrics.h"

#include "tests/check_run.h"
#include "tests/metrics_check.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Renders m and compares with want exactly. */
static void assert_render(ons_metrics *m, const char *want)
{
    char *got = ons_metrics_render(m);
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(got, want);
    free(got);
}

START_TEST(empty_registry)
{
    ons_metrics *m = ons_metrics_new();
    ck_assert_ptr_nonnull(m);
    assert_render(m, "");
    ons_metrics_free(m);
}
END_TEST

START_TEST(counter_without_labels)
{
    ons_metrics *m = ons_metrics_new();
    ons_counter *c = ons_metrics_counter(m, "onsale_joins_total", "Joins accepted.", "");
    ck_assert_ptr_nonnull(c);
    assert_render(m, "# HELP onsale_joins_total Joins accepted.\n"
                     "# TYPE onsale_joins_total counter\n"
                     "onsale_joins_total 0\n");
    ons_counter_add(c, 1);
    ons_counter_add(c, 2);
    ons_counter_add(c, 0.5);
    assert_render(m, "# HELP onsale_joins_total Joins accepted.\n"
                     "# TYPE onsale_joins_total counter\n"
                     "onsale_joins_total 3.5\n");
    /* NULL labels mean no labels: the same series. */
    ck_assert_ptr_eq(ons_metrics_counter(m, "onsale_joins_total", "Joins accepted.", NULL), c);
    ons_metrics_free(m);
}
END_TEST

START_TEST(counter_with_labels)
{
    ons_metrics *m = ons_metrics_new();
    ons_counter *a =
        ons_metrics_counter(m, "http_requests_total", "Requests.", "route=\"join\",status=\"202\"");
    ons_counter *b =
        ons_metrics_counter(m, "http_requests_total", "Requests.", "route=\"join\",status=\"409\"");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_ptr_ne(a, b);
    ck_assert_ptr_eq(
        ons_metrics_counter(m, "http_requests_total", "Requests.", "route=\"join\",status=\"202\""),
        a);
    ons_counter_add(a, 7);
    ons_counter_add(b, 1);
    assert_render(m, "# HELP http_requests_total Requests.\n"
                     "# TYPE http_requests_total counter\n"
                     "http_requests_total{route=\"join\",status=\"202\"} 7\n"
                     "http_requests_total{route=\"join\",status=\"409\"} 1\n");
    ons_metrics_free(m);
}
END_TEST

START_TEST(gauge_set_and_add)
{
    ons_metrics *m = ons_metrics_new();
    ons_gauge *g = ons_metrics_gauge(m, "queue_depth", "Messages queued.", "");
    ons_gauge *l = ons_metrics_gauge(m, "consumer_lag", "Lag.", "partition=\"3\"");
    ons_gauge_set(g, 10);
    ons_gauge_add(g, -12.25);
    ons_gauge_set(l, 1e21);
    assert_render(m, "# HELP queue_depth Messages queued.\n"
                     "# TYPE queue_depth gauge\n"
                     "queue_depth -2.25\n"
                     "# HELP consumer_lag Lag.\n"
                     "# TYPE consumer_lag gauge\n"
                     "consumer_lag{partition=\"3\"} 1e+21\n");
    ons_gauge_set(g, INFINITY);
    ons_gauge_set(l, NAN);
    assert_render(m, "# HELP queue_depth Messages queued.\n"
                     "# TYPE queue_depth gauge\n"
                     "queue_depth +Inf\n"
                     "# HELP consumer_lag Lag.\n"
                     "# TYPE consumer_lag gauge\n"
                     "consumer_lag{partition=\"3\"} NaN\n");
    ons_gauge_set(g, 0.1);
    ons_gauge_set(l, -INFINITY);
    assert_render(m, "# HELP queue_depth Messages queued.\n"
                     "# TYPE queue_depth gauge\n"
                     "queue_depth 0.1\n"
                     "# HELP consumer_lag Lag.\n"
                     "# TYPE consumer_lag gauge\n"
                     "consumer_lag{partition=\"3\"} -Inf\n");
    ons_metrics_free(m);
}
END_TEST

static const double bounds[] = {0.5, 1, 2.5};

START_TEST(histogram_without_labels)
{
    ons_metrics *m = ons_metrics_new();
    ons_histogram *h = ons_metrics_histogram(m, "commit_seconds", "Commit time.", "", bounds, 3);
    ck_assert_ptr_nonnull(h);
    ons_histogram_observe(h, 0.25);
    ons_histogram_observe(h, 0.5); /* le is inclusive */
    ons_histogram_observe(h, 0.75);
    ons_histogram_observe(h, 4);
    assert_render(m, "# HELP commit_seconds Commit time.\n"
                     "# TYPE commit_seconds histogram\n"
                     "commit_seconds_bucket{le=\"0.5\"} 2\n"
                     "commit_seconds_bucket{le=\"1\"} 3\n"
                     "commit_seconds_bucket{le=\"2.5\"} 3\n"
                     "commit_seconds_bucket{le=\"+Inf\"} 4\n"
                     "commit_seconds_sum 5.5\n"
                     "commit_seconds_count 4\n");
    ons_metrics_free(m);
}
END_TEST

START_TEST(histogram_with_labels)
{
    ons_metrics *m = ons_metrics_new();
    ons_histogram *j =
        ons_metrics_histogram(m, "http_seconds", "Latency.", "route=\"join\"", bounds, 3);
    ons_histogram *s =
        ons_metrics_histogram(m, "http_seconds", "Latency.", "route=\"status\"", bounds, 3);
    ck_assert_ptr_nonnull(j);
    ck_assert_ptr_nonnull(s);
    ons_histogram_observe(j, 2);
    ons_histogram_observe(s, 0.125);
    ons_histogram_observe(s, 100);
    assert_render(m, "# HELP http_seconds Latency.\n"
                     "# TYPE http_seconds histogram\n"
                     "http_seconds_bucket{route=\"join\",le=\"0.5\"} 0\n"
                     "http_seconds_bucket{route=\"join\",le=\"1\"} 0\n"
                     "http_seconds_bucket{route=\"join\",le=\"2.5\"} 1\n"
                     "http_seconds_bucket{route=\"join\",le=\"+Inf\"} 1\n"
                     "http_seconds_sum{route=\"join\"} 2\n"
                     "http_seconds_count{route=\"join\"} 1\n"
                     "http_seconds_bucket{route=\"status\",le=\"0.5\"} 1\n"
                     "http_seconds_bucket{route=\"status\",le=\"1\"} 1\n"
                     "http_seconds_bucket{route=\"status\",le=\"2.5\"} 1\n"
                     "http_seconds_bucket{route=\"status\",le=\"+Inf\"} 2\n"
                     "http_seconds_sum{route=\"status\"} 100.125\n"
                     "http_seconds_count{route=\"status\"} 2\n");
    ons_metrics_free(m);
}
END_TEST

START_TEST(latency_buckets)
{
    ck_assert_uint_eq(ons_latency_buckets_n, 14);
    ck_assert(ons_latency_buckets[0] == 0.0005);
    ck_assert(ons_latency_buckets[ons_latency_buckets_n - 1] == 10);
    for (size_t i = 1; i < ons_latency_buckets_n; i++)
        ck_assert(ons_latency_buckets[i] > ons_latency_buckets[i - 1]);
    ons_metrics *m = ons_metrics_new();
    ons_histogram *h =
        ons_metrics_histogram(m, "x_seconds", "x", "", ons_latency_buckets, ons_latency_buckets_n);
    ons_histogram_observe(h, 0.003);
    ons_check_rendered(m, "x_seconds_bucket{le=\"0.0005\"} 0\n",
                       "x_seconds_bucket{le=\"0.0025\"} 0\n", "x_seconds_bucket{le=\"0.005\"} 1\n",
                       "x_seconds_bucket{le=\"10\"} 1\n", NULL);
    ons_metrics_free(m);
}
END_TEST

START_TEST(help_once_and_escaped)
{
    ons_metrics *m = ons_metrics_new();
    ons_metrics_counter(m, "a_total", "Line one\nback\\slash", "k=\"1\"");
    ons_metrics_counter(m, "a_total", "ignored: first help wins", "k=\"2\"");
    assert_render(m, "# HELP a_total Line one\\nback\\\\slash\n"
                     "# TYPE a_total counter\n"
                     "a_total{k=\"1\"} 0\n"
                     "a_total{k=\"2\"} 0\n");
    ons_metrics_free(m);
}
END_TEST

START_TEST(lookup_rules)
{
    ons_metrics *m = ons_metrics_new();
    ck_assert_ptr_nonnull(ons_metrics_counter(m, "x_total", "x", ""));
    /* A name keeps its type. */
    ck_assert_ptr_null(ons_metrics_gauge(m, "x_total", "x", ""));
    ck_assert_ptr_null(ons_metrics_histogram(m, "x_total", "x", "", bounds, 3));
    /* A histogram family keeps its bounds. */
    ck_assert_ptr_nonnull(ons_metrics_histogram(m, "h", "h", "a=\"1\"", bounds, 3));
    ck_assert_ptr_null(ons_metrics_histogram(m, "h", "h", "a=\"2\"", bounds, 2));
    /* Names and bounds are validated. */
    ck_assert_ptr_null(ons_metrics_counter(m, "9lives", "x", ""));
    ck_assert_ptr_null(ons_metrics_counter(m, "has-dash", "x", ""));
    ck_assert_ptr_null(ons_metrics_counter(m, "", "x", ""));
    ck_assert_ptr_nonnull(ons_metrics_gauge(m, "ns:sub_name", "x", ""));
    static const double desc[] = {1, 0.5};
    static const double dup[] = {1, 1};
    static const double inf[] = {1, INFINITY};
    ck_assert_ptr_null(ons_metrics_histogram(m, "d", "x", "", desc, 2));
    ck_assert_ptr_null(ons_metrics_histogram(m, "e", "x", "", dup, 2));
    ck_assert_ptr_null(ons_metrics_histogram(m, "f", "x", "", inf, 2));
    /* Zero bounds: only +Inf. */
    ons_histogram *z = ons_metrics_histogram(m, "z", "z", "", NULL, 0);
    ck_assert_ptr_nonnull(z);
    ons_histogram_observe(z, 3);
    char *out = ons_metrics_render(m);
    ck_assert_ptr_nonnull(strstr(out, "z_bucket{le=\"+Inf\"} 1\nz_sum 3\nz_count 1\n"));
    /* Refused names left nothing behind. */
    ck_assert_ptr_null(strstr(out, "9lives"));
    ck_assert_ptr_null(strstr(out, "# TYPE d "));
    free(out);
    ons_metrics_free(m);
}
END_TEST

#define THREADS 8
#define ITERS   100000

static ons_metrics *shared;

/* Each worker looks its series up itself (racing find-or-create), then
 * hammers counter, gauge and histogram; thread 0 also renders meanwhile. */
static void *worker(void *arg)
{
    long id = (long)arg;
    ons_counter *c = ons_metrics_counter(shared, "ops_total", "ops", "");
    ons_counter *mine = NULL;
    char labels[32];
    snprintf(labels, sizeof labels, "thread=\"%ld\"", id);
    mine = ons_metrics_counter(shared, "per_thread_total", "ops", labels);
    ons_gauge *g = ons_metrics_gauge(shared, "inflight", "inflight", "");
    ons_histogram *h = ons_metrics_histogram(shared, "lat", "lat", "", bounds, 3);
    if (!c || !mine || !g || !h)
        return (void *)1;
    for (long i = 0; i < ITERS; i++) {
        ons_counter_add(c, 1);
        ons_counter_add(mine, 0.5);
        ons_gauge_add(g, 1);
        ons_histogram_observe(h, (i & 1) ? 0.25 : 2);
        ons_gauge_add(g, -1);
        if (id == 0 && i % 10000 == 0)
            free(ons_metrics_render(shared));
    }
    return NULL;
}

START_TEST(concurrent_updates_sum)
{
    shared = ons_metrics_new();
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, worker, (void *)i), 0);
    for (int i = 0; i < THREADS; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        ck_assert_ptr_null(ret);
    }
    char *out = ons_metrics_render(shared);
    char want[256];
    snprintf(want, sizeof want, "\nops_total %d\n", THREADS * ITERS);
    ck_assert_msg(strstr(out, want), "missing %s in\n%s", want, out);
    ck_assert_ptr_nonnull(strstr(out, "\ninflight 0\n"));
    for (int i = 0; i < THREADS; i++) {
        snprintf(want, sizeof want, "\nper_thread_total{thread=\"%d\"} %d\n", i, ITERS / 2);
        ck_assert_msg(strstr(out, want), "missing %s", want);
    }
    snprintf(want, sizeof want,
             "lat_bucket{le=\"0.5\"} %d\nlat_bucket{le=\"1\"} %d\nlat_bucket{le=\"2.5\"} %d\n"
             "lat_bucket{le=\"+Inf\"} %d\nlat_sum %d\nlat_count %d\n",
             THREADS * ITERS / 2, THREADS * ITERS / 2, THREADS * ITERS, THREADS * ITERS,
             THREADS * ITERS / 2 * 2 + THREADS * ITERS / 2 / 4, THREADS * ITERS);
    ck_assert_msg(strstr(out, want), "missing %s in\n%s", want, out);
    /* Families were created once despite the race. */
    char *first = strstr(out, "# TYPE ops_total");
    ck_assert_ptr_nonnull(first);
    ck_assert_ptr_null(strstr(first + 1, "# TYPE ops_total"));
    free(out);
    ons_metrics_free(shared);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"empty", empty_registry},
        {"counter", counter_without_labels},
        {"counter_labels", counter_with_labels},
        {"gauge", gauge_set_and_add},
        {"histogram", histogram_without_labels},
        {"histogram_labels", histogram_with_labels},
        {"latency_buckets", latency_buckets},
        {"help", help_once_and_escaped},
        {"lookup_rules", lookup_rules},
        {"concurrency", concurrent_updates_sum},
    };
    return ons_check_run("metrics", cases, sizeof cases / sizeof *cases, 60);
}
