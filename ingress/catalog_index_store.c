/* catalog_index_store.c - loading the catalog index and keeping it fresh;
 * see catalog_index_store.h. */
#include "ingress/catalog_index_store.h"

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/pg.h"
#include "common/vec.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A poll's watermark: every catalog_seq up to seq had been taken by at_ms. */
typedef struct mark {
    int64_t at_ms, seq;
} mark;

/* The feed's gauges, set together after each refresh (publish). */
enum { FEED_EVENTS, FEED_DELTA, FEED_READY, FEED_SEQ, FEED_NGAUGES };
static const struct {
    const char *name, *help;
} feed_gauges[FEED_NGAUGES] = {
    [FEED_EVENTS] = {"onsale_catalog_index_events", "events the in-memory catalog index serves"},
    [FEED_DELTA] = {"onsale_catalog_index_delta",
                    "events changed since the index's base was loaded"},
    [FEED_READY] = {"onsale_catalog_index_ready", "1: searches use the index; 0: the database"},
    [FEED_SEQ] = {"onsale_catalog_index_seq",
                  "the highest events.catalog_seq the index has applied"},
};

struct cat_feed {
    cat_feed_opts o;
    char *dsn;
    ons_pg pg;
    cat_ix *ix;              /* owned; built by the thread */
    _Atomic(cat_ix *) ready; /* ix once it serves */
    atomic_int stop;
    pthread_t thread;
    mark *marks; /* oldest first */
    size_t nmarks, capmarks;
    int64_t seen;                    /* the highest catalog_seq read so far */
    int64_t ready_at;                /* monotonic ms from which the index may serve */
    ons_gauge *gauges[FEED_NGAUGES]; /* feed_gauges[]; all NULL or none */
    ons_counter *c_applied, *c_loads;
};

/* The columns every statement below selects, in cat_ix_row order. */
#define ROW_COLUMNS                                                                                \
    "SELECT e.event_id, e.venue_id, e.catalog_seq, e.name, e.category, "                           \
    "coalesce(e.city_key, ''), e.status, coalesce(e.search::text, ''), v.name, v.city, "           \
    "(extract(epoch FROM e.starts_at) * 1000000)::bigint, "                                        \
    "(extract(epoch FROM e.onsale_at) * 1000000)::bigint, e.price_min, e.price_max, v.lat, v.lon " \
    "FROM events e JOIN venues v ON v.venue_id = e.venue_id "

static const char LOAD_PAGE[] =
    ROW_COLUMNS "WHERE e.event_id > $1::bigint ORDER BY e.event_id LIMIT $2::bigint";
static const char FEED_PAGE[] =
    ROW_COLUMNS "WHERE e.catalog_seq > $1::bigint ORDER BY e.catalog_seq LIMIT $2::bigint";

/* Row i of res as a cat_ix_row (strings owned by res). 0 or ONS_EDB. */
static int read_row(const PGresult *res, int i, cat_ix_row *r)
{
    ons_pg_row rw = ons_pg_row_at(res, i);
    memset(r, 0, sizeof *r);
    r->event_id = ons_pg_row_i64(&rw, 0);
    r->venue_id = ons_pg_row_i64(&rw, 1);
    r->seq = ons_pg_row_i64(&rw, 2);
    r->name = ons_pg_row_str(&rw, 3, 0);
    r->category = ons_pg_row_str(&rw, 4, 0);
    r->city_key = ons_pg_row_str(&rw, 5, 0);
    r->status = ons_pg_row_str(&rw, 6, 0);
    r->search = ons_pg_row_str(&rw, 7, 0);
    r->venue_name = ons_pg_row_str(&rw, 8, 0);
    r->city = ons_pg_row_str(&rw, 9, 0);
    r->starts_us = ons_pg_row_i64(&rw, 10);
    r->onsale_us = ons_pg_row_i64(&rw, 11);
    r->has_price = !ons_pg_isnull(res, i, 12) && !ons_pg_isnull(res, i, 13);
    r->price_min = ons_pg_row_i64_or(&rw, 12, 0);
    r->price_max = ons_pg_row_i64_or(&rw, 13, 0);
    r->has_pos = !ons_pg_isnull(res, i, 14) && !ons_pg_isnull(res, i, 15);
    if (r->has_pos && (ons_pg_get_f64(res, i, 14, &r->lat) || ons_pg_get_f64(res, i, 15, &r->lon)))
        return ONS_EDB;
    return ons_pg_row_done(&rw, "catalog index row") ? ONS_EDB : 0;
}

/* One page of sql after key: its rows, the last row's column col (the
 * next page's key), and how many. 0 or an ONS_E code (logged). */
static int fetch_page(cat_feed *f, const char *sql, int64_t after, int col, PGresult **res,
                      int64_t *last, int *n)
{
    char a[24], l[24];
    snprintf(a, sizeof a, "%" PRId64, after);
    snprintf(l, sizeof l, "%lld", f->o.page_rows);
    const char *v[] = {a, l};
    int rc = ons_pg_query(&f->pg, PGRES_TUPLES_OK, "catalog index", sql, 2, v, res);
    if (rc)
        return rc;
    *n = PQntuples(*res);
    *last = after;
    if (*n > 0 && ons_pg_get_i64(*res, *n - 1, col, last)) {
        PQclear(*res);
        return ONS_EDB;
    }
    return 0;
}

static int command(cat_feed *f, const char *sql)
{
    return ons_pg_query(&f->pg, PGRES_COMMAND_OK, "catalog index", sql, 0, NULL, NULL);
}

/* How many events there are, in the open snapshot. */
static int count_events(cat_feed *f, int64_t *n)
{
    PGresult *res;
    int rc = ons_pg_query(&f->pg, PGRES_TUPLES_OK, "catalog index count",
                          "SELECT count(*) FROM events", 0, NULL, &res);
    if (rc)
        return rc;
    rc = ons_pg_get_i64(res, 0, 0, n) ? ONS_EDB : 0;
    PQclear(res);
    return rc;
}

/* Adds every row of res to b; the highest seq into *seq. */
static int add_rows(cat_ix_builder *b, const PGresult *res, int n, int64_t *seq)
{
    for (int i = 0; i < n; i++) {
        cat_ix_row r;
        int rc = read_row(res, i, &r);
        if (rc || (rc = cat_ix_builder_add(b, &r)))
            return rc;
        if (r.seq > *seq)
            *seq = r.seq;
    }
    return 0;
}

/* Every event, in pages of event ids, in one snapshot. ONS_EFULL: more
 * than max_events (logged). */
static int load_rows(cat_feed *f, cat_ix_builder *b, int64_t *seq)
{
    int64_t total = 0, after = 0;
    int rc = count_events(f, &total);
    if (!rc && total > f->o.max_events) {
        ons_log_warn("catalog index: %" PRId64 " events, more than catalog.index_max_events "
                     "(%lld): searches use the database",
                     total, f->o.max_events);
        return ONS_EFULL;
    }
    for (int n = (int)f->o.page_rows; !rc && n == (int)f->o.page_rows && !atomic_load(&f->stop);) {
        PGresult *res;
        if ((rc = fetch_page(f, LOAD_PAGE, after, 0, &res, &after, &n)))
            break;
        rc = add_rows(b, res, n, seq);
        PQclear(res);
    }
    return atomic_load(&f->stop) ? ONS_ECLOSED : rc;
}

/* A base of every event, as of one snapshot. */
static int load_base(cat_feed *f, cat_ix_base **out)
{
    int64_t t0 = ons_mono_ms(), seq = 0;
    cat_ix_builder *b = cat_ix_builder_new();
    if (!b)
        return ONS_ENOMEM;
    int rc = command(f, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (!rc)
        rc = load_rows(f, b, &seq);
    if (command(f, rc ? "ROLLBACK" : "COMMIT") && !rc)
        rc = ONS_EDB;
    size_t n = cat_ix_builder_count(b);
    if (rc) {
        cat_ix_builder_free(b);
        return rc;
    }
    int64_t t1 = ons_mono_ms();
    if (!(*out = cat_ix_builder_finish(b)))
        return ONS_ENOMEM;
    ons_log_info("catalog index: %zu events read in %" PRId64 " ms, indexed in %" PRId64
                 " ms, %zu MB",
                 n, t1 - t0, ons_mono_ms() - t1, cat_ix_base_bytes(*out) >> 20);
    if (f->c_loads)
        ons_counter_add(f->c_loads, 1);
    return 0;
}

/* ---- the change feed ---------------------------------------------------------------- */

static int push_mark(cat_feed *f, int64_t seq)
{
    if (ONS_VEC_RESERVE(f->marks, f->capmarks, f->nmarks + 1, 16))
        return ONS_ENOMEM;
    f->marks[f->nmarks++] = (mark){ons_mono_ms(), seq};
    return 0;
}

/* The poll's lower bound at now: the seq of the newest mark at least
 * lookback_ms old (older marks are dropped), or the oldest mark's. */
static int64_t lower_bound(cat_feed *f, int64_t now)
{
    size_t k = f->nmarks;
    while (k > 0 && f->marks[k - 1].at_ms > now - f->o.lookback_ms)
        k--;
    if (k == 0)
        return f->marks[0].seq;
    memmove(f->marks, f->marks + (k - 1), (f->nmarks - (k - 1)) * sizeof *f->marks);
    f->nmarks -= k - 1;
    return f->marks[0].seq;
}

/* Applies one page of changed rows. */
static int apply_page(cat_feed *f, const PGresult *res, int n)
{
    cat_ix_row *rows = calloc((size_t)n + 1, sizeof *rows);
    if (!rows)
        return ONS_ENOMEM;
    int rc = 0;
    for (int i = 0; !rc && i < n; i++)
        rc = read_row(res, i, &rows[i]);
    if (!rc) {
        int applied = cat_ix_apply(f->ix, rows, (size_t)n);
        rc = applied < 0 ? applied : 0;
        if (applied > 0 && f->c_applied)
            ons_counter_add(f->c_applied, applied);
    }
    free(rows);
    return rc;
}

/* Reads the events changed since the lower bound, in pages, into the
 * delta, and marks what was seen. */
static int poll_changes(cat_feed *f)
{
    int64_t after = lower_bound(f, ons_mono_ms());
    int rc = 0, n = (int)f->o.page_rows;
    while (!rc && n == (int)f->o.page_rows && !atomic_load(&f->stop)) {
        PGresult *res;
        int64_t last;
        if ((rc = fetch_page(f, FEED_PAGE, after, 2, &res, &last, &n)))
            break;
        rc = apply_page(f, res, n);
        PQclear(res);
        after = last;
        if (last > f->seen)
            f->seen = last;
    }
    return rc ? rc : push_mark(f, f->seen);
}

/* The first load: the mark before it, then the base. */
static int first_load(cat_feed *f)
{
    PGresult *res;
    int64_t seq = 0;
    int rc = ons_pg_query(&f->pg, PGRES_TUPLES_OK, "catalog index",
                          "SELECT coalesce(max(catalog_seq), 0) FROM events", 0, NULL, &res);
    if (rc)
        return rc;
    rc = ons_pg_get_i64(res, 0, 0, &seq) ? ONS_EDB : 0;
    PQclear(res);
    cat_ix_base *base = NULL;
    if (rc || (rc = push_mark(f, seq)) || (rc = load_base(f, &base)))
        return rc;
    f->seen = seq;
    f->ready_at = f->marks[0].at_ms + f->o.lookback_ms;
    if (!(f->ix = cat_ix_new(base))) {
        cat_ix_base_free(base);
        return ONS_ENOMEM;
    }
    return 0;
}

/* A delta past delta_max: a new base (the old one serves meanwhile). */
static void maybe_rebase(cat_feed *f)
{
    if (cat_ix_delta_count(f->ix) <= (size_t)f->o.delta_max)
        return;
    cat_ix_base *nb = NULL;
    if (load_base(f, &nb) == 0)
        cat_ix_swap_base(f->ix, nb);
}

static void publish(cat_feed *f)
{
    size_t n = cat_ix_count(f->ix);
    int serve = ons_mono_ms() >= f->ready_at && n <= (size_t)f->o.max_events;
    if (!serve && atomic_load(&f->ready))
        ons_log_warn("catalog index: %zu events, more than catalog.index_max_events: "
                     "searches use the database",
                     n);
    atomic_store(&f->ready, serve ? f->ix : NULL);
    if (!f->gauges[0])
        return; /* no metrics: skip the delta count's read lock */
    const double v[FEED_NGAUGES] = {[FEED_EVENTS] = (double)n,
                                    [FEED_DELTA] = (double)cat_ix_delta_count(f->ix),
                                    [FEED_READY] = serve,
                                    [FEED_SEQ] = (double)f->seen};
    for (int i = 0; i < FEED_NGAUGES; i++)
        ons_gauge_set(f->gauges[i], v[i]);
}

static void nap(cat_feed *f, int64_t ms)
{
    for (int64_t end = ons_mono_ms() + ms; !atomic_load(&f->stop) && ons_mono_ms() < end;) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static void *feed_main(void *arg)
{
    cat_feed *f = arg;
    while (!atomic_load(&f->stop)) {
        if (!f->ix) {
            int rc = first_load(f);
            if (rc == ONS_EFULL)
                break; /* logged: the database answers until a restart */
            if (rc) {
                f->nmarks = 0;
                nap(f, 1000);
                continue;
            }
        }
        if (poll_changes(f) == 0) {
            maybe_rebase(f);
            publish(f);
        }
        nap(f, f->o.refresh_ms);
    }
    ons_pg_fini(&f->pg);
    return NULL;
}

static void feed_metrics(cat_feed *f, ons_metrics *m)
{
    if (!m)
        return;
    int all = 1;
    for (int i = 0; i < FEED_NGAUGES; i++)
        all &= (f->gauges[i] =
                    ons_metrics_gauge(m, feed_gauges[i].name, feed_gauges[i].help, NULL)) != NULL;
    if (!all)
        f->gauges[0] = NULL; /* publish sets all or none */
    f->c_applied = ons_metrics_counter(m, "onsale_catalog_index_changes_total",
                                       "changed events applied to the index", NULL);
    f->c_loads = ons_metrics_counter(m, "onsale_catalog_index_loads_total",
                                     "full loads of the index's base", NULL);
}

int cat_feed_start(const cat_feed_opts *o, cat_feed **out)
{
    *out = NULL;
    if (!o->pg_dsn || o->page_rows < 1 || o->refresh_ms < 1)
        return ONS_EINVAL;
    cat_feed *f = calloc(1, sizeof *f);
    if (!f)
        return ONS_ENOMEM;
    f->o = *o;
    ons_pg_opts po;
    ons_pg_opts_default(&po, o->pg_dsn, "ingress catalog index");
    feed_metrics(f, o->metrics);
    if (ons_pg_init(&f->pg, &po) || pthread_create(&f->thread, NULL, feed_main, f)) {
        ons_pg_fini(&f->pg);
        free(f);
        return ONS_ENOMEM;
    }
    *out = f;
    return 0;
}

void cat_feed_stop(cat_feed *f)
{
    if (!f)
        return;
    atomic_store(&f->stop, 1);
    pthread_join(f->thread, NULL);
    cat_ix_free(f->ix);
    free(f->marks);
    free(f);
}

cat_ix *cat_feed_index(cat_feed *f)
{
    return f ? atomic_load(&f->ready) : NULL;
}
