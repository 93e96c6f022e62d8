/*
 * metrics.c - a Prometheus registry rendered as text exposition 0.0.4; see
 * metrics.h.
 *
 * The registry mutex guards only the shape (families and their series
 * lists): find-or-create and render take it. Values are C11 atomics: doubles
 * are kept as their IEEE-754 bits in an atomic uint64 and updated with a
 * compare-and-swap loop; histogram buckets are plain atomic counters, one per
 * bucket (not cumulative), summed while rendering so that the +Inf bucket and
 * _count always agree in one scrape. Series are allocated one by one and
 * never move, so the pointers handed out stay valid until ons_metrics_free().
 */
#include "common/metrics.h"
#include "common/vec.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

/* One labelled series. Counters and gauges use value; histograms use sum and
 * buckets (nbounds + 1 entries, the last one +Inf), and see their family's
 * bounds, which never change or move once the family exists. */
typedef struct series {
    char *labels;
    _Atomic uint64_t value; /* double bits */
    _Atomic uint64_t sum;   /* double bits */
    _Atomic unsigned long long *buckets;
    const double *bounds;
    size_t nbounds;
} series;

typedef struct family {
    char *name, *help;
    enum kind kind;
    double *bounds; /* histograms: shared by every series of the family */
    size_t nbounds;
    series **series;
    size_t nseries, cap;
} family;

struct ons_metrics {
    pthread_mutex_t lock;
    family **families;
    size_t nfamilies, cap;
};

/* The counter, gauge and histogram handles are series in disguise: each
 * wraps a series as its only member, so a series pointer converts to any. */
struct ons_counter {
    series s;
};
struct ons_gauge {
    series s;
};
struct ons_histogram {
    series s;
};

const double ons_latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                      0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const size_t ons_latency_buckets_n = sizeof ons_latency_buckets / sizeof ons_latency_buckets[0];

static uint64_t d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* Adds v to the double stored in *a, lock-free. */
static void atomic_add_double(_Atomic uint64_t *a, double v)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, d2u(u2d(old) + v), memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

ons_metrics *ons_metrics_new(void)
{
    ons_metrics *m = calloc(1, sizeof *m);
    if (!m)
        goto fail;
    if (pthread_mutex_init(&m->lock, NULL) != 0)
        goto fail;
    return m;
fail:
    free(m);
    return NULL;
}

static void series_free(series *s)
{
    if (!s)
        return;
    free(s->labels);
    free((void *)s->buckets);
    free(s);
}

static void family_free(family *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->nseries; i++)
        series_free(f->series[i]);
    free(f->series);
    free(f->bounds);
    free(f->name);
    free(f->help);
    free(f);
}

void ons_metrics_free(ons_metrics *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nfamilies; i++)
        family_free(m->families[i]);
    free(m->families);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* True when name is a valid metric name: [a-zA-Z_:][a-zA-Z0-9_:]*. */
static int valid_name(const char *name)
{
    if (!name || !*name || (*name >= '0' && *name <= '9'))
        return 0;
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == ':'))
            return 0;
    }
    return 1;
}

static int same_bounds(const family *f, const double *bounds, size_t n)
{
    return f->nbounds == n && (n == 0 || memcmp(f->bounds, bounds, n * sizeof *bounds) == 0);
}

/* Finds or creates family name of kind k. Called with the lock held. Returns
 * NULL when name is taken by another kind (or other histogram bounds), is
 * not a valid metric name, or memory runs out. */
static family *family_get(ons_metrics *m, const char *name, const char *help, enum kind k,
                          const double *bounds, size_t nbounds)
{
    family *f = NULL;
    for (size_t i = 0; i < m->nfamilies; i++) {
        family *old = m->families[i];
        if (strcmp(old->name, name) != 0)
            continue;
        if (old->kind != k || (k == KIND_HISTOGRAM && !same_bounds(old, bounds, nbounds)))
            return NULL;
        return old;
    }
    if (!valid_name(name))
        return NULL;
    if (ONS_VEC_RESERVE(m->families, m->cap, m->nfamilies + 1, 8))
        return NULL;
    if (!(f = calloc(1, sizeof *f)))
        goto fail;
    f->kind = k;
    if (!(f->name = strdup(name)) || !(f->help = strdup(help ? help : "")))
        goto fail;
    if (k == KIND_HISTOGRAM) {
        for (size_t i = 0; i < nbounds; i++)
            if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1])))
                goto fail; /* finite and strictly ascending */
        if (nbounds && !(f->bounds = malloc(nbounds * sizeof *bounds)))
            goto fail;
        if (nbounds)
            memcpy(f->bounds, bounds, nbounds * sizeof *bounds);
        f->nbounds = nbounds;
    }
    m->families[m->nfamilies++] = f;
    return f;
fail:
    family_free(f);
    return NULL;
}

/* Finds or creates the series of f with these labels. Called with the lock
 * held. Returns NULL when memory runs out. */
static series *series_get(family *f, const char *labels)
{
    series *s = NULL;
    if (!labels)
        labels = "";
    for (size_t i = 0; i < f->nseries; i++)
        if (strcmp(f->series[i]->labels, labels) == 0)
            return f->series[i];
    if (ONS_VEC_RESERVE(f->series, f->cap, f->nseries + 1, 8))
        return NULL;
    if (!(s = calloc(1, sizeof *s)))
        goto fail;
    if (!(s->labels = strdup(labels)))
        goto fail;
    atomic_init(&s->value, d2u(0.0));
    atomic_init(&s->sum, d2u(0.0));
    if (f->kind == KIND_HISTOGRAM) {
        s->buckets = calloc(f->nbounds + 1, sizeof *s->buckets);
        if (!s->buckets)
            goto fail;
        for (size_t i = 0; i <= f->nbounds; i++)
            atomic_init(&s->buckets[i], 0);
        s->bounds = f->bounds;
        s->nbounds = f->nbounds;
    }
    f->series[f->nseries++] = s;
    return s;
fail:
    series_free(s);
    return NULL;
}

/* The find-or-create behind the three public lookups. */
static series *lookup(ons_metrics *m, const char *name, const char *help, const char *labels,
                      enum kind k, const double *bounds, size_t nbounds)
{
    series *s = NULL;
    pthread_mutex_lock(&m->lock);
    family *f = family_get(m, name, help, k, bounds, nbounds);
    if (f)
        s = series_get(f, labels);
    pthread_mutex_unlock(&m->lock);
    return s;
}

ons_counter *ons_metrics_counter(ons_metrics *m, const char *name, const char *help,
                                 const char *labels)
{
    return (ons_counter *)lookup(m, name, help, labels, KIND_COUNTER, NULL, 0);
}

ons_gauge *ons_metrics_gauge(ons_metrics *m, const char *name, const char *help, const char *labels)
{
    return (ons_gauge *)lookup(m, name, help, labels, KIND_GAUGE, NULL, 0);
}

ons_histogram *ons_metrics_histogram(ons_metrics *m, const char *name, const char *help,
                                     const char *labels, const double *bounds, size_t nbounds)
{
    return (ons_histogram *)lookup(m, name, help, labels, KIND_HISTOGRAM, bounds, nbounds);
}

void ons_counter_add(ons_counter *c, double v)
{
    /* A counter only goes up: a negative or NaN step is a caller bug. */
    assert(v >= 0);
    if (!(v >= 0))
        return;
    atomic_add_double(&c->s.value, v);
}

void ons_gauge_set(ons_gauge *g, double v)
{
    atomic_store_explicit(&g->s.value, d2u(v), memory_order_relaxed);
}

void ons_gauge_add(ons_gauge *g, double v)
{
    atomic_add_double(&g->s.value, v);
}

void ons_histogram_observe(ons_histogram *h, double v)
{
    series *s = &h->s;
    /* First bucket whose upper bound is >= v (le is inclusive); NaN and
     * values above every bound land in +Inf. */
    size_t lo = 0, hi = s->nbounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= s->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_fetch_add_explicit(&s->buckets[lo], 1, memory_order_relaxed);
    atomic_add_double(&s->sum, v);
}

/* A growable output buffer; after the first failure every append is a no-op
 * and the render returns NULL. */
typedef struct sbuf {
    char *buf;
    size_t len, cap;
    int failed;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(sbuf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        if (ONS_VEC_RESERVE(b->buf, b->cap, b->len + (size_t)n + 1, 256)) {
            b->failed = 1;
            return;
        }
    }
}

/* Formats v as Prometheus reads it: whole numbers below 2^53 in plain
 * digits, others as the shortest decimal that reads back as the same double,
 * "+Inf", "-Inf" or "NaN". */
static const char *fmt_double(char out[32], double v)
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    if (v == trunc(v) && fabs(v) < 9007199254740992.0) {
        snprintf(out, 32, "%.0f", v);
        return out;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    return out;
}

/* Writes help with backslash and newline escaped, as 0.0.4 asks. */
static void put_help(sbuf *b, const char *help)
{
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            sb_printf(b, "\\\\");
        else if (*p == '\n')
            sb_printf(b, "\\n");
        else
            sb_printf(b, "%c", *p);
    }
}

/* Writes "name{labels} value" (no braces without labels). */
static void put_sample(sbuf *b, const char *name, const char *suffix, const char *labels,
                       const char *value)
{
    if (*labels)
        sb_printf(b, "%s%s{%s} %s\n", name, suffix, labels, value);
    else
        sb_printf(b, "%s%s %s\n", name, suffix, value);
}

static void put_histogram(sbuf *b, const family *f, const series *s)
{
    char num[32], le[32];
    unsigned long long cum = 0;
    const char *sep = *s->labels ? "," : "";
    for (size_t i = 0; i <= f->nbounds; i++) {
        cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
        const char *bound = i < f->nbounds ? fmt_double(le, f->bounds[i]) : "+Inf";
        sb_printf(b, "%s_bucket{%s%sle=\"%s\"} %llu\n", f->name, s->labels, sep, bound, cum);
    }
    put_sample(b, f->name, "_sum", s->labels,
               fmt_double(num, u2d(atomic_load_explicit(&s->sum, memory_order_relaxed))));
    snprintf(num, sizeof num, "%llu", cum);
    put_sample(b, f->name, "_count", s->labels, num);
}

char *ons_metrics_render(ons_metrics *m)
{
    sbuf b = {0};
    char num[32];

    if (!(b.buf = malloc(4096)))
        return NULL;
    b.cap = 4096;
    b.buf[0] = '\0';
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nfamilies; i++) {
        const family *f = m->families[i];
        sb_printf(&b, "# HELP %s ", f->name);
        put_help(&b, f->help);
        sb_printf(&b, "\n# TYPE %s %s\n", f->name, kind_names[f->kind]);
        for (size_t j = 0; j < f->nseries; j++) {
            const series *s = f->series[j];
            if (f->kind == KIND_HISTOGRAM)
                put_histogram(&b, f, s);
            else
                put_sample(
                    &b, f->name, "", s->labels,
                    fmt_double(num, u2d(atomic_load_explicit(&s->value, memory_order_relaxed))));
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (b.failed) {
        free(b.buf);
        return NULL;
    }
    return b.buf;
}
