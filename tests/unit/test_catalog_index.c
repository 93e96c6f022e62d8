/* test_catalog_index.c - the in-memory catalog index without services:
 * tsvector text parsed with weights and escapes, query words folded as
 * to_tsquery('simple') does, a prefix as a range of terms, trigram word
 * similarity, the rank order of fields (name > venue > city > description),
 * typos, every filter, keyset pages that neither repeat nor skip against a
 * brute-force order, and the delta overriding the base. */
#include "ingress/catalog_index.h"
#include "ingress/catalog_index_int.h"

#include "common/err.h"
#include "tests/check_run.h"

#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const cat_limits LIM = {20, 100, 8, 1000};
static const cat_ix_params PARAMS = {50, 64, 0};

typedef struct lex {
    char s[64];
    int w;
} lex;

static int collect(void *arg, const char *s, size_t n, int w)
{
    lex *l = arg;
    while (l->s[0])
        l++;
    snprintf(l->s, sizeof l->s, "%.*s", (int)n, s);
    l->w = w;
    return 0;
}

START_TEST(tsvector_text_parses)
{
    lex l[8] = {{{0}, 0}};
    ck_assert_int_eq(
        cat_ix_parse_tsvector("'eras':3A 'it''s':5,9B 'back\\\\slash' 'x':1C,2", collect, l), 0);
    ck_assert_str_eq(l[0].s, "eras");
    ck_assert_int_eq(l[0].w, 3);
    ck_assert_str_eq(l[1].s, "it's");
    ck_assert_int_eq(l[1].w, 2); /* the best of its positions */
    ck_assert_str_eq(l[2].s, "back\\slash");
    ck_assert_int_eq(l[2].w, 0); /* no position: D */
    ck_assert_str_eq(l[3].s, "x");
    ck_assert_int_eq(l[3].w, 1);
    lex m[4] = {{{0}, 0}};
    ck_assert_int_eq(cat_ix_parse_tsvector("'unterminated", collect, m), ONS_EPARSE);
}
END_TEST

START_TEST(words_fold_and_trigrams)
{
    char out[32];
    cat_ix_fold("TaYLOR", 6, out);
    ck_assert_str_eq(out, "taylor");
    cat_ix_fold("\xc3\x89t\xc3\xa9", 5, out); /* Été -> été */
    ck_assert_str_eq(out, "\xc3\xa9t\xc3\xa9");
    uint32_t t[16];
    ck_assert_uint_eq(cat_ix_trigrams("ab", t), 3);   /* "  a", " ab", "ab " */
    ck_assert_uint_eq(cat_ix_trigrams("aaaa", t), 4); /* "  a" " aa" "aaa" "aa ": once each */
    /* taylr: 6 trigrams, 4 of them in taylor. */
    ck_assert_float_eq_tol(cat_ix_similarity("taylr", "taylor"), 4.0f / 6, 1e-6);
    ck_assert_float_eq(cat_ix_similarity("swift", "swift"), 1.0f);
    ck_assert_float_eq(cat_ix_similarity("qwxz", "swift"), 0.0f);
}
END_TEST

/* starts_at written digit by digit, as strftime wrote it, from before the
 * epoch to past year 9999 (gmtime's path), at each day's edges. */
/* cat_ix_rfc3339(us) prints what gmtime_r + strftime print for its whole
 * second (rounded down, also before 1970). */
static void rfc3339_agrees(int64_t us)
{
    int64_t whole = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    time_t t = (time_t)whole;
    struct tm tm;
    char want[32], got[32];
    ck_assert_ptr_nonnull(gmtime_r(&t, &tm));
    strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cat_ix_rfc3339(us, got);
    ck_assert_str_eq(got, want);
}

START_TEST(starts_at_as_strftime)
{
    static const int64_t days[] = {-719528, -365,  -1,      0,       1,      59,
                                   60,      365,   10957,   11016,   11017,  19722,
                                   20000,   24107, 2932896, 2932897, 2932898};
    for (size_t i = 0; i < sizeof days / sizeof *days; i++)
        for (int64_t sec = -1; sec <= 86400; sec += 3599)
            rfc3339_agrees((days[i] * 86400 + sec) * 1000000 + (sec % 7) * 123457);
    for (int64_t us = -5000000000000000; us < 300000000000000000; us += 987654321987654)
        for (int k = 0; k < 2; k++)
            rfc3339_agrees(us + k * 86399999999);
}
END_TEST

/* ---- a small catalog ---------------------------------------------------------------- */

typedef struct ev {
    int64_t id;
    const char *name, *cat, *city, *venue, *desc;
    int64_t starts_s, pmin, pmax;
    double lat, lon;
} ev;

/* tsvector text of the document, like catalog_document(): name A, category
 * and venue B, city C, description D, lower case words. */
static void document(const ev *e, char *out, size_t cap)
{
    const char *field[] = {e->name, e->cat, e->venue, e->city, e->desc};
    const char wl[] = {'A', 'B', 'B', 'C', 'D'};
    char words[64][32];
    char wts[64];
    int n = 0;
    for (int f = 0; f < 5; f++) {
        for (const char *p = field[f]; p && *p;) {
            while (*p == ' ')
                p++;
            int k = 0;
            char w[32];
            while (*p && *p != ' ' && k < 31)
                w[k++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p), p++;
            w[k] = '\0';
            if (!k)
                continue;
            int j = 0;
            while (j < n && strcmp(words[j], w))
                j++;
            if (j == n) {
                snprintf(words[n], sizeof words[n], "%s", w);
                wts[n++] = wl[f];
            } else if (wl[f] < wts[j]) {
                wts[j] = wl[f];
            }
        }
    }
    size_t o = 0;
    out[0] = '\0';
    for (int j = 0; j < n; j++)
        o += (size_t)snprintf(out + o, cap - o, "%s'%s':%d%c", j ? " " : "", words[j], j + 1,
                              wts[j] == 'D' ? ' ' : wts[j]); /* D: no letter */
}

static cat_ix_row row_of(const ev *e, char *doc, size_t cap)
{
    document(e, doc, cap);
    static char city_key[8][64];
    static int k;
    char *ck = city_key[k++ % 8];
    cat_ix_fold(e->city, strlen(e->city), ck);
    return (cat_ix_row){.event_id = e->id,
                        .venue_id = e->id,
                        .seq = e->id,
                        .name = e->name,
                        .category = e->cat,
                        .city_key = ck,
                        .status = "on_sale",
                        .search = doc,
                        .venue_name = e->venue,
                        .city = e->city,
                        .starts_us = e->starts_s * 1000000,
                        .onsale_us = 0,
                        .price_min = e->pmin,
                        .price_max = e->pmax,
                        .has_price = e->pmax > 0,
                        .has_pos = e->lat != 0,
                        .lat = e->lat,
                        .lon = e->lon};
}

static const ev EVENTS[] = {
    {1, "Taylor Swift Eras Tour", "pop", "Amsterdam", "Ziggo Dome", "stadium pop", 1000, 9000,
     30000, 52.31, 4.94},
    {2, "Taylor Swift Tribute", "pop", "Haarlem", "Patronaat", "", 1100, 2500, 2500, 52.39, 4.65},
    {3, "Aurora", "folk", "Utrecht", "Tivoli", "", 2000, 4000, 4000, 52.09, 5.12},
    {4, "Northern Songs", "folk", "Oslo", "Aurora Hall", "", 2000, 4500, 4500, 59.91, 10.75},
    {5, "Polar Lights", "classical", "Paris", "Pleyel", "songs under the aurora", 2000, 1500, 1500,
     48.88, 2.30},
    {6, "Storm Riders", "rock", "Amsterdam", "Paradiso", "", 3000, 0, 0, 0, 0},
    {7, "Stormy Weather", "jazz", "Amsterdam", "Bimhuis", "", 3000, 3000, 3000, 52.37, 4.91},
    {8, "Story Night", "rock", "aurora", "Cellar", "", 500, 1000, 1200, 52.0, 4.0},
};
#define NEV (sizeof EVENTS / sizeof *EVENTS)

static cat_ix *build(void)
{
    cat_ix_builder *b = cat_ix_builder_new();
    char doc[512];
    for (size_t i = 0; i < NEV; i++) {
        cat_ix_row r = row_of(&EVENTS[i], doc, sizeof doc);
        ck_assert_int_eq(cat_ix_builder_add(b, &r), 0);
    }
    cat_ix_base *base = cat_ix_builder_finish(b);
    ck_assert_ptr_nonnull(base);
    cat_ix *ix = cat_ix_new(base);
    ck_assert_ptr_nonnull(ix);
    return ix;
}

/* The ids of the page answering qs (limit 100); *mode its match. */
static int search_ids(cat_ix *ix, const char *qs, int64_t *out, cat_match *mode, char *cursor)
{
    cat_query q;
    cat_error e;
    ck_assert_msg(cat_parse(qs, &LIM, &q, &e) == 0, "%s: %s", qs, e.message);
    cat_page pg;
    ck_assert_int_eq(cat_ix_search(ix, &q, &PARAMS, 0, &pg), 0);
    for (size_t i = 0; i < pg.n; i++)
        out[i] = pg.rows[i].event_id;
    if (mode)
        *mode = pg.mode;
    if (cursor) {
        cursor[0] = '\0';
        if (pg.more)
            cat_cursor_encode(q.sort, pg.mode, pg.rows[pg.n - 1].cursor_key,
                              pg.rows[pg.n - 1].event_id, cursor);
    }
    int n = (int)pg.n;
    cat_page_clear(&pg);
    cat_query_clear(&q);
    return n;
}

#define EXPECT(ix, qs, ...)                                                                        \
    do {                                                                                           \
        int64_t want_[] = {__VA_ARGS__}, got_[16];                                                 \
        int n_ = search_ids(ix, qs, got_, NULL, NULL);                                             \
        ck_assert_msg(n_ == (int)(sizeof want_ / sizeof *want_), "%s: %d events", qs, n_);         \
        for (int i_ = 0; i_ < n_; i_++)                                                            \
            ck_assert_msg(got_[i_] == want_[i_], "%s: [%d] %" PRId64, qs, i_, got_[i_]);           \
    } while (0)

/* How many events answer qs, asserting the page's match is want. */
static int count_matching(cat_ix *ix, const char *qs, cat_match want)
{
    int64_t got[100];
    cat_match m;
    int n = search_ids(ix, qs, got, &m, NULL);
    ck_assert_msg(m == want, "%s: match %d", qs, (int)m);
    return n;
}

START_TEST(prefix_ranges_and_words)
{
    cat_ix *ix = build();
    EXPECT(ix, "q=taylo", 1, 2);
    EXPECT(ix, "q=swift+TAY", 1, 2);
    EXPECT(ix, "q=taylor+swift+eras", 1);
    /* storm, stormy, story: one prefix range; "storm" exact is one word. */
    EXPECT(ix, "q=stor&sort=date", 8, 6, 7);
    EXPECT(ix, "q=storm+night", 8);
    ck_assert_int_eq(count_matching(ix, "q=storm+rider", CAT_MATCH_TEXT), 1);
    cat_ix_free(ix);
}
END_TEST

/* A prefix is the byte-order range of terms it begins; pseudo-terms (city,
 * category, venue) sort before every lexeme and no prefix reaches them. */
START_TEST(prefix_is_a_term_range)
{
    cat_ix *ix = build();
    const cat_ix_base *b = ix->base;
    uint32_t lo, hi;
    cat_ix_prefix_range(b, "stor", &lo, &hi);
    ck_assert_uint_eq(hi - lo, 3); /* storm, stormy, story */
    ck_assert_str_eq(b->terms[lo], "storm");
    ck_assert_str_eq(b->terms[hi - 1], "story");
    cat_ix_prefix_range(b, "zzz", &lo, &hi);
    ck_assert_uint_eq(lo, hi);
    cat_ix_prefix_range(b, "a", &lo, &hi);
    for (uint32_t t = lo; t < hi; t++)
        ck_assert_int_eq(b->terms[t][0], 'a');
    ck_assert_uint_lt((unsigned char)b->terms[0][0], 'a'); /* a pseudo-term first */
    ck_assert_int_ge(cat_ix_term_find(b, "\001amsterdam"), 0);
    cat_ix_free(ix);
}
END_TEST

START_TEST(rank_orders_fields)
{
    cat_ix *ix = build();
    /* name (A) 1.0 > venue (B) 0.4 > city (C) 0.2 > description (D) 0.1 */
    EXPECT(ix, "q=aurora", 3, 4, 8, 5);
    EXPECT(ix, "q=aurora&sort=date", 8, 3, 4, 5);
    EXPECT(ix, "q=aurora&sort=price", 8, 5, 3, 4);
    cat_ix_free(ix);
}
END_TEST

START_TEST(typos_find_names)
{
    cat_ix *ix = build();
    ck_assert_int_eq(count_matching(ix, "q=taylr+swift", CAT_MATCH_FUZZY), 2);
    ck_assert_int_ge(count_matching(ix, "q=taylor+swfit", CAT_MATCH_FUZZY), 1);
    ck_assert_int_eq(count_matching(ix, "q=qwxz+plmk", CAT_MATCH_FUZZY), 0);
    cat_ix_free(ix);
}
END_TEST

START_TEST(filters)
{
    cat_ix *ix = build();
    EXPECT(ix, "city=AMSTERDAM", 1, 6, 7);
    EXPECT(ix, "city=amsterdam&category=rock", 6);
    EXPECT(ix, "from=1970-01-01T00:33:20Z&to=1970-01-01T00:50:00Z", 3, 4, 5); /* 2000 .. 3000 s */
    EXPECT(ix, "min_price=20000", 1);
    EXPECT(ix, "min_price=2000&max_price=2600", 2);
    EXPECT(ix, "sort=price", 8, 5, 2, 7, 3, 4, 1); /* 6 has no price */
    EXPECT(ix, "lat=52.37&lon=4.90&km=10", 1, 7);
    EXPECT(ix, "lat=52.37&lon=4.90&km=25&sort=price", 2, 7, 1);
    cat_ix_free(ix);
}
END_TEST

/* Every sort pages through the same events in limit-1 steps as in one page. */
START_TEST(keyset_pages_match_one_page)
{
    cat_ix *ix = build();
    const char *qs[] = {"q=aurora",     "q=aurora&sort=date", "q=aurora&sort=price",
                        "sort=price",   "city=amsterdam",     "q=s",
                        "q=taylr+swift"};
    for (size_t k = 0; k < sizeof qs / sizeof *qs; k++) {
        int64_t all[16], got[16], page[4];
        int n = search_ids(ix, qs[k], all, NULL, NULL), m = 0;
        char cursor[128] = "", url[256];
        do {
            snprintf(url, sizeof url, "%s&limit=1%s%s", qs[k], cursor[0] ? "&cursor=" : "", cursor);
            int c = search_ids(ix, url, page, NULL, cursor);
            for (int i = 0; i < c && m < 16; i++)
                got[m++] = page[i];
        } while (cursor[0] && m < 16);
        ck_assert_msg(m == n, "%s: %d paged vs %d", qs[k], m, n);
        for (int i = 0; i < n; i++)
            ck_assert_msg(got[i] == all[i], "%s: page %d", qs[k], i);
    }
    cat_ix_free(ix);
}
END_TEST

START_TEST(delta_overrides_the_base)
{
    cat_ix *ix = build();
    ev changed = EVENTS[2];
    changed.name = "Borealis";
    char doc[512];
    cat_ix_row r = row_of(&changed, doc, sizeof doc);
    r.seq = 100;
    ck_assert_int_eq(cat_ix_apply(ix, &r, 1), 1);
    ck_assert_int_eq(cat_ix_apply(ix, &r, 1), 0); /* the same seq again: skipped */
    EXPECT(ix, "q=aurora", 4, 8, 5);
    EXPECT(ix, "q=borea", 3);
    ev added = {42, "Aurora Rising", "pop", "Bergen", "Grieghallen", "", 100, 10, 20, 60.39, 5.32};
    r = row_of(&added, doc, sizeof doc);
    r.seq = 101;
    ck_assert_int_eq(cat_ix_apply(ix, &r, 1), 1);
    EXPECT(ix, "q=aurora", 42, 4, 8, 5);
    EXPECT(ix, "q=aurora&sort=date", 42, 8, 4, 5);
    ck_assert_uint_eq(cat_ix_count(ix), NEV + 1);
    cat_ix_free(ix);
}
END_TEST

/* ---- the shortcuts against the plain search, at scale ------------------------------- */

/* A catalog large enough for every shortcut: 140,000 events (three blocks
 * of the bitmaps filled as the driver goes), words in 1/30 of the names
 * (dense: a bitmap of their own) and rare ones, 20 cities, 200 venues. */
#define BIG_N 140000

static const char *ADJS[] = {
    "brave", "calm", "dark",  "eager", "fair",   "grim",   "happy",  "icy",  "jolly", "keen",
    "lazy",  "mild", "noble", "odd",   "proud",  "quick",  "rare",   "sad",  "tall",  "ugly",
    "vast",  "warm", "young", "zany",  "bitter", "bright", "broken", "cold", "crazy", "deep"};
static const char *NOUNS[] = {
    "storm", "stormy", "story",  "stone",  "star",  "stars",  "stage", "steam",  "stew",  "sting",
    "stock", "stool",  "street", "stroll", "foxes", "wolves", "bears", "ravens", "owls",  "lions",
    "hawks", "crows",  "kings",  "moons",  "tides", "waves",  "roses", "bells",  "drums", "keys"};
static const char *CATS[] = {"rock", "pop", "jazz", "folk", "opera"};

static uint64_t big_rng(uint64_t *st)
{
    *st = *st * 6364136223846793005ULL + 1442695040888963407ULL;
    return *st >> 33;
}

/* dense_min: 0, the default (the words, cities and categories get a
 * bitmap); more than BIG_N: none does, so every bitmap is filled from postings. */
static cat_ix *build_big(size_t dense_min)
{
    cat_ix_builder *b = cat_ix_builder_new();
    cat_ix_builder_dense_min(b, dense_min);
    uint64_t st = 11;
    static char city[20][16];
    for (int c = 0; c < 20; c++)
        snprintf(city[c], sizeof city[c], "City%02d", c);
    for (int i = 0; i < BIG_N; i++) {
        char name[96], venue[32], desc[96], doc[512];
        const char *a = ADJS[big_rng(&st) % 30], *n = NOUNS[big_rng(&st) % 30];
        int rare = (int)(big_rng(&st) % 500), v = (int)(big_rng(&st) % 200), c = v % 20;
        snprintf(name, sizeof name, "%s %s w%d", a, n, rare);
        snprintf(venue, sizeof venue, "Hall%03d", v);
        snprintf(desc, sizeof desc, "%s %s night", ADJS[big_rng(&st) % 30],
                 NOUNS[big_rng(&st) % 30]);
        ev e = {.id = 1000 + i * 3 + (int64_t)(big_rng(&st) % 3),
                .name = name,
                .cat = CATS[big_rng(&st) % 5],
                .city = city[c],
                .venue = venue,
                .desc = desc,
                .starts_s = 1800000000 + (int64_t)(big_rng(&st) % 5000) * 3600,
                .pmin = (int64_t)(big_rng(&st) % 50) * 100,
                .lat = 40 + c + (v % 7) * 0.05,
                .lon = c + (v % 5) * 0.05};
        e.pmax = e.pmin % 700 ? e.pmin + 500 : 0; /* some without a price */
        cat_ix_row r = row_of(&e, doc, sizeof doc);
        r.venue_id = v;
        ck_assert_int_eq(cat_ix_builder_add(b, &r), 0);
    }
    cat_ix_base *base = cat_ix_builder_finish(b);
    ck_assert_ptr_nonnull(base);
    if (!dense_min)
        ck_assert_uint_gt(base->ndense, 60); /* the words, cities and categories */
    else
        ck_assert_uint_eq(base->ndense, 0);
    cat_ix *ix = cat_ix_new(base);
    ck_assert_ptr_nonnull(ix);
    return ix;
}

/* Pages of qs, by the shortcuts and plainly, hold the same rows (ids,
 * keys, distances, dates) in the same order, and their cursors lead to
 * the same next pages. */
static void same_pages(cat_ix *ix, const char *qs, int pages)
{
    static const cat_ix_params plain = {50, 64, 1};
    char url[512], cursor[2][128] = {"", ""};
    for (int pgno = 0; pgno < pages; pgno++) {
        cat_page pg[2];
        cat_query q[2];
        for (int k = 0; k < 2; k++) {
            cat_error e;
            snprintf(url, sizeof url, "%s%s%s", qs, cursor[k][0] ? "&cursor=" : "", cursor[k]);
            ck_assert_msg(cat_parse(url, &LIM, &q[k], &e) == 0, "%s: %s", url, e.message);
            ck_assert_int_eq(cat_ix_search(ix, &q[k], k ? &plain : &PARAMS, 0, &pg[k]), 0);
        }
        ck_assert_msg(pg[0].n == pg[1].n && pg[0].more == pg[1].more && pg[0].mode == pg[1].mode,
                      "%s page %d: %zu rows (more %d) vs plain %zu (more %d)", qs, pgno, pg[0].n,
                      pg[0].more, pg[1].n, pg[1].more);
        for (size_t i = 0; i < pg[0].n; i++) {
            const cat_row *a = &pg[0].rows[i], *b = &pg[1].rows[i];
            ck_assert_msg(a->event_id == b->event_id && !strcmp(a->cursor_key, b->cursor_key) &&
                              a->distance_km == b->distance_km &&
                              !strcmp(a->starts_at, b->starts_at) && !strcmp(a->name, b->name),
                          "%s page %d row %zu: %" PRId64 " %s vs plain %" PRId64 " %s", qs, pgno, i,
                          a->event_id, a->cursor_key, b->event_id, b->cursor_key);
        }
        int more = pg[0].more && pg[0].n > 0;
        for (int k = 0; k < 2; k++) {
            if (more)
                cat_cursor_encode(q[k].sort, pg[k].mode, pg[k].rows[pg[k].n - 1].cursor_key,
                                  pg[k].rows[pg[k].n - 1].event_id, cursor[k]);
            cat_page_clear(&pg[k]);
            cat_query_clear(&q[k]);
        }
        if (!more)
            break;
        ck_assert_str_eq(cursor[0], cursor[1]);
    }
}

static void shortcuts_vs_plain(size_t dense_min)
{
    cat_ix *ix = build_big(dense_min);
    const char *qs[] = {
        "q=brave+st",                     /* a dense word, a prefix of 14 terms: blocks */
        "q=brave+st&sort=date",           /* blocks, no early stop */
        "q=brave+st&sort=price&limit=50", /* ... by price */
        "q=brave+storm",                  /* two dense words */
        "q=storm",                        /* one word */
        "q=brave+s",                      /* a prefix past 16 terms: forward lists */
        "q=brave&city=city03",            /* a word and a dense city */
        "q=w17&city=city03",              /* a rare word, the city's own bitmap */
        "q=w17+brave",                    /* a rare driver, a dense clause */
        "q=brave&category=jazz&min_price=1000&max_price=3000",
        "city=city07&category=rock", /* date merge */
        "city=city07&category=rock&from=2027-01-20T00:00:00Z&to=2027-03-01T00:00:00Z",
        "category=opera&limit=100",            /* one dense term by date */
        "lat=45.1&lon=5.1&km=30",              /* the circle by date */
        "lat=45.1&lon=5.1&km=30&category=pop", /* ... and a category */
        "lat=45.1&lon=5.1&km=30&sort=price",   /* the circle by price */
        "lat=45.1&lon=5.1&km=30&q=brave",      /* ... and a word */
        "city=city11&sort=price",              /* a pseudo-term by price */
        "q=bravx+stormz",                      /* typos */
        "q=brve+storm&city=city02",            /* ... and a city */
        "q=hapy+wolvs&sort=date",              /* ... by date */
        /* The name lists' pass (relevance: every word in the name first):
         * after the changes below, 40 changed events hold "brave storm
         * w17" in their name. */
        "q=brave+w",    /* a prefix of 500 terms: the pass is skipped (the
                         * changed events alone must not make the page) */
        "q=w17+city03", /* a best rank no event has (the changed rank below) */
        "q=st",         /* every word of several terms: the bitmaps scanned */
    };
    for (size_t i = 0; i < sizeof qs / sizeof *qs; i++)
        same_pages(ix, qs[i], 4);
    /* Every match of selective searches, page after page: none missing. */
    const char *all[] = {
        "q=brave+st&city=city03&sort=date&limit=100", "q=brave+st&city=city03&limit=100",
        "q=calm+storm&sort=price&limit=100",          "q=dark&city=city05&sort=date&limit=100",
        "city=city09&category=folk&limit=100",        "lat=45.1&lon=5.1&km=30&limit=100",
        "q=brve+stone&sort=date&limit=100",
    };
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        same_pages(ix, all[i], 60);
    /* Changed events (the delta) hide their base copy on every path. */
    ev e = {.id = 1003,
            .name = "brave storm w17",
            .cat = "jazz",
            .city = "City03",
            .venue = "Hall003",
            .desc = "",
            .starts_s = 1800000000,
            .pmin = 100,
            .pmax = 200,
            .lat = 43.0,
            .lon = 3.0};
    char doc[512];
    for (int k = 0; k < 40; k++) {
        e.id = 1000 + k * 3000;
        cat_ix_row r = row_of(&e, doc, sizeof doc);
        r.seq = BIG_N + k;
        ck_assert_int_ge(cat_ix_apply(ix, &r, 1), 0);
    }
    for (size_t i = 0; i < sizeof qs / sizeof *qs; i++)
        same_pages(ix, qs[i], 2);
    cat_ix_free(ix);
}

START_TEST(shortcuts_match_the_plain_search)
{
    shortcuts_vs_plain(0);
}
END_TEST

/* The same with no term dense: every bitmap filled from postings. */
START_TEST(shortcuts_match_without_dense_terms)
{
    shortcuts_vs_plain(BIG_N + 1);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"tsvector_text_parses", tsvector_text_parses},
        {"words_fold_and_trigrams", words_fold_and_trigrams},
        {"starts_at_as_strftime", starts_at_as_strftime},
        {"prefix_ranges_and_words", prefix_ranges_and_words},
        {"prefix_is_a_term_range", prefix_is_a_term_range},
        {"rank_orders_fields", rank_orders_fields},
        {"typos_find_names", typos_find_names},
        {"filters", filters},
        {"keyset_pages_match_one_page", keyset_pages_match_one_page},
        {"delta_overrides_the_base", delta_overrides_the_base},
        {"shortcuts_match_the_plain_search", shortcuts_match_the_plain_search},
        {"shortcuts_match_without_dense_terms", shortcuts_match_without_dense_terms},
    };
    return ons_check_run("catalog_index", cases, sizeof cases / sizeof *cases, 60);
}
