/*
 * metrics.h - Prometheus metrics (text exposition format 0.0.4).
 *
 * A registry holds families (one name, one type, one help) and, per family,
 * series keyed by a label string such as `route="join",status="202"` ("" for
 * none). Lookups (find-or-create) take the registry mutex: do them once and
 * keep the returned pointer on hot paths. Updates (add/set/observe) are
 * lock-free atomics and may come from any thread. Series live as long as the
 * registry.
 */
#ifndef ONSALE_COMMON_METRICS_H
#define ONSALE_COMMON_METRICS_H

#include <stddef.h>

typedef struct ons_metrics ons_metrics;
typedef struct ons_counter ons_counter;
typedef struct ons_gauge ons_gauge;
typedef struct ons_histogram ons_histogram;

/* Returns a new registry, or NULL on allocation failure. */
ons_metrics *ons_metrics_new(void);
void ons_metrics_free(ons_metrics *m);

/* Find-or-create. Return NULL on allocation failure, when name is not a
 * valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*), or when name is already
 * registered with another type (or, for histograms, other bounds). help is
 * taken from the first call; labels (NULL = none) are written verbatim
 * between braces, so label values must already be escaped. */
ons_counter *ons_metrics_counter(ons_metrics *m, const char *name, const char *help,
                                 const char *labels);
ons_gauge *ons_metrics_gauge(ons_metrics *m, const char *name, const char *help,
                             const char *labels);
/* bounds: finite, strictly ascending upper bounds (without +Inf); copied. */
ons_histogram *ons_metrics_histogram(ons_metrics *m, const char *name, const char *help,
                                     const char *labels, const double *bounds, size_t nbounds);

/* v >= 0: a counter never goes down. A negative or NaN v is a caller bug:
 * asserted, and ignored when assertions are off. */
void ons_counter_add(ons_counter *c, double v);
void ons_gauge_set(ons_gauge *g, double v);
void ons_gauge_add(ons_gauge *g, double v);
void ons_histogram_observe(ons_histogram *h, double v);

/* Latency buckets in seconds, 0.5 ms .. 10 s, for request/commit histograms. */
extern const double ons_latency_buckets[];
extern const size_t ons_latency_buckets_n;

/* Renders every family as Prometheus text. Returns a heap string the caller
 * frees, or NULL on allocation failure. */
char *ons_metrics_render(ons_metrics *m);

#endif
