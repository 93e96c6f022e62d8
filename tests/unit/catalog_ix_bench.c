/*
 * catalog_ix_bench.c - the catalog index alone, against a database of
 * events (bench/NOTES.md "Catalog speed at a million events"): loads the
 * index the way ingress does (cat_feed), then for each file of query
 * strings (one per line, as scripts/bench's shapes) runs every query
 * `rounds` times through cat_parse and cat_ix_search and prints the
 * microseconds of this thread's CPU per search (mean, p50, p99) per file. With `dump`, prints
 * instead each query's first three pages (event ids, cursor keys, mode),
 * following the cursors: two builds' dumps must be equal.
 *
 * usage: catalog_ix_bench DSN time ROUNDS FILE...
 *        catalog_ix_bench DSN dump FILE...
 */
#include "common/clock.h"
#include "ingress/catalog_index_store.h"
#include "ingress/catalog_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const cat_limits LIM = {20, 100, 8, 1000};
static const cat_ix_params PARAMS = {50, 8, 0};

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

/* This thread's CPU time: what a search costs, whatever else runs on the
 * box (a wall clock on a shared machine mostly measures the others). */
static int64_t cpu_ns(void)
{
    return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

static char **read_lines(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    char **lines = NULL, buf[4096];
    *n = 0;
    if (!f)
        return NULL;
    while (fgets(buf, sizeof buf, f)) {
        buf[strcspn(buf, "\n")] = '\0';
        if (!buf[0])
            continue;
        lines = realloc(lines, (*n + 1) * sizeof *lines);
        lines[(*n)++] = strdup(buf);
    }
    fclose(f);
    return lines;
}

/* One page of qs; 0 or -1 (refused or failed). */
static int one(cat_ix *ix, const char *qs, cat_page *pg, cat_query *q)
{
    cat_error err;
    if (cat_parse(qs, &LIM, q, &err)) {
        fprintf(stderr, "refused: %s: %s\n", qs, err.message);
        return -1;
    }
    if (cat_ix_search(ix, q, &PARAMS, 1800000000000000, pg)) {
        cat_query_clear(q);
        return -1;
    }
    return 0;
}

/* CATALOG_IX_BENCH_SLOW_US: searches at least this slow are named on stderr. */
static int64_t slow_us;

static void time_file(cat_ix *ix, const char *path, int rounds)
{
    size_t n;
    char **lines = read_lines(path, &n);
    if (!n)
        return;
    int64_t *us = malloc(n * (size_t)rounds * sizeof *us), total = 0;
    size_t m = 0;
    for (int r = 0; r < rounds; r++)
        for (size_t i = 0; i < n; i++) {
            cat_page pg;
            cat_query q;
            int64_t t0 = cpu_ns();
            if (one(ix, lines[i], &pg, &q))
                continue;
            int64_t t = cpu_ns() - t0;
            if (slow_us && t / 1000 >= slow_us)
                fprintf(stderr, "slow: %" PRId64 " us %s\n", t / 1000, lines[i]);
            cat_page_clear(&pg);
            cat_query_clear(&q);
            us[m++] = t;
            total += t;
        }
    qsort(us, m, sizeof *us, cmp_i64);
    const char *base = strrchr(path, '/');
    printf("%-20s n %5zu  CPU mean %8.1f us  p50 %8.1f us  p99 %8.1f us  max %8.1f us\n",
           base ? base + 1 : path, m, (double)total / (double)m / 1000, (double)us[m / 2] / 1000,
           (double)us[m * 99 / 100] / 1000, (double)us[m - 1] / 1000);
    free(us);
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    free(lines);
}

static void dump_file(cat_ix *ix, const char *path)
{
    size_t n;
    char **lines = read_lines(path, &n);
    for (size_t i = 0; i < n; i++) {
        char qs[4096];
        snprintf(qs, sizeof qs, "%s", lines[i]);
        for (int page = 0; page < 3; page++) {
            cat_page pg;
            cat_query q;
            if (one(ix, qs, &pg, &q)) {
                printf("%s ERROR\n", qs);
                break;
            }
            printf("%s mode=%d more=%d:", qs, (int)pg.mode, pg.more);
            for (size_t k = 0; k < pg.n; k++)
                printf(" %" PRId64 "/%s/%.2f/%s", pg.rows[k].event_id, pg.rows[k].cursor_key,
                       pg.rows[k].distance_km, pg.rows[k].status);
            printf("\n");
            int more = pg.more && pg.n;
            char cur[96];
            if (more)
                cat_cursor_encode(q.sort, pg.mode, pg.rows[pg.n - 1].cursor_key,
                                  pg.rows[pg.n - 1].event_id, cur);
            cat_page_clear(&pg);
            cat_query_clear(&q);
            if (!more)
                break;
            snprintf(qs, sizeof qs, "%s&cursor=%s", lines[i], cur);
        }
        free(lines[i]);
    }
    free(lines);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: catalog_ix_bench DSN time ROUNDS FILE... | DSN dump FILE...\n");
        return 2;
    }
    const char *slow = getenv("CATALOG_IX_BENCH_SLOW_US");
    slow_us = slow ? atoll(slow) : 0;
    cat_feed_opts o = {argv[1], 100000000, 250, 0, 100000000, 20000, NULL};
    cat_feed *f;
    if (cat_feed_start(&o, &f))
        return 1;
    int64_t t0 = now_ns();
    cat_ix *ix;
    while (!(ix = cat_feed_index(f)))
        usleep(100000);
    fprintf(stderr, "index ready after %.1f s, %zu events\n", (double)(now_ns() - t0) / 1e9,
            cat_ix_count(ix));
    if (!strcmp(argv[2], "dump")) {
        for (int i = 3; i < argc; i++)
            dump_file(ix, argv[i]);
    } else {
        int rounds = atoi(argv[3]);
        for (int i = 4; i < argc; i++)
            time_file(ix, argv[i], rounds);
    }
    cat_feed_stop(f);
    return 0;
}
