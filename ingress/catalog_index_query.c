/* catalog_index_query.c - a catalog search over the index (catalog_index.h,
 * docs/search.md "The index in each node").
 *
 * A search is a conjunction of clauses, each a set of terms an event must
 * hold one of: each word of q (the last one a prefix: a range of term ids;
 * in fuzzy mode the lexicon words similar enough to it), the city and the
 * category (pseudo-terms), and the venues inside the distance circle. The
 * clause with the fewest postings drives: its ordinals are visited in
 * ascending (date) order and every other clause is checked on the event's
 * forward list, which also gives the rank; then the other filters and the
 * keyset, and the page is the best limit + 1 by the sort. Delta records are
 * checked one by one the same way, by their terms' text. */
#include "ingress/catalog_index_int.h"

#include "common/err.h"
#include "common/vec.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EARTH_KM 6371.0088

/* Clauses of few terms are checked (and driven) through their posting
 * lists: one galloping cursor per term. */
#define GALLOP_TERMS 16

/* A union of posting lists at most this large is gathered and sorted; a
 * larger one goes through a bitmap of the base's ordinals. */
#define GATHER_MAX 65536

typedef enum { CL_RANGE, CL_SET, CL_NONE } cl_kind;

struct fzword {
    uint32_t tri[201];
    size_t nt;
};

typedef struct clause {
    cl_kind kind;
    uint32_t lo, hi; /* CL_RANGE: term ids [lo, hi) */
    uint32_t *ids;   /* CL_SET: term ids ascending ... */
    float *score;    /* ... with their similarity (fuzzy), or NULL */
    size_t nids;
    size_t size;       /* postings in the base */
    char *text;        /* the folded word or the pseudo-term */
    int prefix;        /* text begins the term (the last word) */
    int ranked;        /* adds to the rank (q's words) */
    size_t nterms;     /* terms: the range's or the set's */
    size_t *cur;       /* per term, the galloping cursor in its postings, or NULL */
    uint64_t *bits;    /* its events, a bit per base ordinal (a large clause), or NULL ... */
    uint32_t filled;   /* ... filled block by block below this ordinal (fill_upto) ... */
    size_t *fill_at;   /* ... from each term's postings at these places */
    struct fzword *fz; /* fuzzy mode: the word's trigrams */
    int base_only;     /* the circle: the distance filter decides, this only drives */
} clause;

typedef struct hit {
    int64_t key, id; /* id: a delta hit's (a base hit's is its ordinal's) */
    float rank;
    uint32_t ord;
    int in_base;
    double km;
    const cat_ix_ev *ev;
} hit;

typedef struct search {
    const cat_ix *ix;
    const cat_ix_base *b;
    const cat_query *q;
    const cat_ix_params *p;
    cat_match mode;
    clause cl[CAT_MAX_PARAMS];
    int ncl;
    float thr;
    const clause *driver; /* the clause whose postings are visited */
    int reads_event;      /* filters or a sort key that only the event holds */
    int circle_checked;   /* base events reach ev_passes only from the circle's venues */
    size_t fz_total;      /* fuzzy mode: q's trigrams */
    hit *top;             /* the best k so far, in page order */
    int ntop, k;
    int by_date;      /* the driver's terms read in date order (drive_dates) */
    int by_blocks;    /* bitmaps intersected a block at a time (drive_blocks) */
    int names;        /* this pass visits only events with every word in the name (drive_names) */
    int rejected;     /* the last offer did not make the page ... */
    float last_rank;  /* ... and its rank */
    float max_rank;   /* the best rank an event can have (every word in its name) */
    uint32_t cur_ord; /* the first base ordinal whose event id is above the cursor's */
    int64_t cur_pos;  /* date sort: the first place in the date order after the cursor */
} search;

/* ---- the page: the best k by the sort ------------------------------------------------ */

static int64_t hit_id(const search *s, const hit *h)
{
    return h->in_base ? s->b->oid[h->ord] : h->id;
}

/* a's event id below b's: base ordinals are in event id order, so two base
 * hits compare without reading an id. */
static int id_before(const search *s, const hit *a, const hit *b)
{
    if (a->in_base && b->in_base)
        return a->ord < b->ord;
    return hit_id(s, a) < hit_id(s, b);
}

/* A date sort's key of a base hit is its place in the date order (no
 * event read); against a delta hit, both compare by starts_at. */
static int64_t starts_of(const search *s, const hit *h)
{
    return h->in_base ? s->b->ev[h->ord].starts_us : h->key;
}

/* a before b in the page order. */
static int before(const search *s, const hit *a, const hit *b)
{
    cat_sort sort = s->q->sort;
    if (sort == CAT_SORT_RELEVANCE && a->rank != b->rank)
        return a->rank > b->rank;
    if (sort == CAT_SORT_DATE && a->in_base && b->in_base)
        return a->key < b->key; /* places are unique: ties included */
    if (sort == CAT_SORT_DATE && starts_of(s, a) != starts_of(s, b))
        return starts_of(s, a) < starts_of(s, b);
    if (sort == CAT_SORT_PRICE && a->key != b->key)
        return a->key < b->key;
    return id_before(s, a, b);
}

static int id_after_cursor(const search *s, const hit *h)
{
    return h->in_base ? h->ord >= s->cur_ord : h->id > s->q->cur_id;
}

/* Strictly after the cursor's row. */
static int after_cursor(const search *s, const hit *h)
{
    const cat_query *q = s->q;
    if (!q->has_cursor)
        return 1;
    if (q->sort == CAT_SORT_RELEVANCE) {
        float r = (float)q->cur_rank;
        return h->rank < r || (h->rank == r && id_after_cursor(s, h));
    }
    if (q->sort == CAT_SORT_DATE && h->in_base)
        return h->key >= s->cur_pos;
    return h->key > q->cur_key || (h->key == q->cur_key && id_after_cursor(s, h));
}

static void offer(search *s, const hit *h)
{
    s->rejected = 0;
    s->last_rank = h->rank;
    if (!after_cursor(s, h))
        return;
    if (s->ntop == s->k && !before(s, h, &s->top[s->ntop - 1])) {
        s->rejected = 1;
        return;
    }
    int at = s->ntop < s->k ? s->ntop : s->k - 1;
    while (at > 0 && before(s, h, &s->top[at - 1])) {
        s->top[at] = s->top[at - 1];
        at--;
    }
    s->top[at] = *h;
    if (s->ntop < s->k)
        s->ntop++;
}

/* Relevance order, driven in ascending ordinals: the last offer was turned
 * away at the best rank there is, so no later event can make the page. */
static int page_complete(const search *s)
{
    return s->rejected && s->last_rank >= s->max_rank;
}

/* ---- filters ------------------------------------------------------------------------ */

static double distance_km(double lat1, double lon1, double lat2, double lon2)
{
    double r = M_PI / 180.0;
    double a = pow(sin((lat2 - lat1) * r / 2), 2) +
               cos(lat1 * r) * cos(lat2 * r) * pow(sin((lon2 - lon1) * r / 2), 2);
    return 2 * EARTH_KM * asin(fmin(1, sqrt(a)));
}

/* The filters that are not clauses (dates, prices, the circle), and the
 * hit's sort key and distance. Reads a base event only when q needs it: a
 * relevance or date page without those filters orders matches from the
 * posting lists and the date places alone. */
static int ev_passes(const search *s, const cat_ix_ev *e, int base_hit, hit *h)
{
    const cat_query *q = s->q;
    h->km = 0;
    h->ev = e;
    int date_place = q->sort == CAT_SORT_DATE && base_hit;
    if (date_place)
        h->key = s->b->date_pos[e - s->b->ev];
    if (!s->reads_event && base_hit)
        return 1;
    if ((q->has_from && e->starts_us < q->from_ms * 1000) ||
        (q->has_to && e->starts_us >= q->to_ms * 1000))
        return 0;
    if ((q->has_min || q->has_max || q->sort == CAT_SORT_PRICE) && !e->has_price)
        return 0;
    if ((q->has_min && e->price_max < q->min_price) || (q->has_max && e->price_min > q->max_price))
        return 0;
    if (q->has_point && !(base_hit && s->circle_checked)) {
        /* A base event shares its venue's position: when the circle's
         * clause (the venues within km) holds it, it is within km. */
        if (!e->has_pos || (h->km = distance_km(q->lat, q->lon, e->lat, e->lon)) > q->km)
            return 0;
    }
    if (!date_place)
        h->key = q->sort == CAT_SORT_PRICE ? e->price_min : e->starts_us;
    return 1;
}

/* The value of a term for clause c: its weight, or in fuzzy mode its
 * trigrams in common with the word when it is in the name (else -1). */
static float term_value(const clause *c, size_t i, int weight)
{
    if (!c->score)
        return cat_ix_weight[weight];
    return weight == 3 ? c->score[i] : -1;
}

/* The best value of a clause's terms in base event ord, from its forward
 * list (a clause of many terms); -1: none. */
static float base_clause(const search *s, const clause *c, uint32_t ord)
{
    const uint32_t *f = s->b->fwd + s->b->fwd_off[ord], *end = s->b->fwd + s->b->fwd_off[ord + 1];
    float best = -1;
    if (c->kind == CL_RANGE) {
        size_t lo = 0, hi = (size_t)(end - f);
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if ((f[mid] >> 2) < c->lo)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (const uint32_t *x = f + lo; x < end && (*x >> 2) < c->hi; x++)
            if (cat_ix_weight[*x & 3] > best)
                best = cat_ix_weight[*x & 3];
        return best;
    }
    for (size_t i = 0; f < end && i < c->nids;) { /* both ascending */
        uint32_t t = *f >> 2;
        if (t < c->ids[i]) {
            f++;
            continue;
        }
        if (t > c->ids[i]) {
            i++;
            continue;
        }
        float v = term_value(c, i, (int)(*f & 3));
        best = v > best ? v : best;
        f++, i++;
    }
    return best;
}

/* The first index at or after *at in the ascending p[0..n) whose value is
 * not below key, kept in *at (galloping: candidates arrive in ascending
 * order, so each search starts where the last one ended). One body for the
 * two element types: bare ordinals, and (ordinal << 32 | weight) pairs. */
#define DEFINE_GALLOP(name, type)                                                                  \
    static size_t name(const type *p, size_t n, size_t *at, type key)                              \
    {                                                                                              \
        size_t lo = *at, hi = lo, step = 1;                                                        \
        while (hi < n && p[hi] < key) {                                                            \
            lo = hi + 1;                                                                           \
            hi += step;                                                                            \
            step *= 2;                                                                             \
        }                                                                                          \
        if (hi > n)                                                                                \
            hi = n;                                                                                \
        while (lo < hi) {                                                                          \
            size_t mid = (lo + hi) / 2;                                                            \
            if (p[mid] < key)                                                                      \
                lo = mid + 1;                                                                      \
            else                                                                                   \
                hi = mid;                                                                          \
        }                                                                                          \
        *at = lo;                                                                                  \
        return lo;                                                                                 \
    }
DEFINE_GALLOP(gallop, uint32_t)
DEFINE_GALLOP(gallop_u64, uint64_t)

/* The first pair at or after *at in p[0..n) whose ordinal is not below ord. */
static size_t gallop_pairs(const uint64_t *p, size_t n, size_t *at, uint32_t ord)
{
    return gallop_u64(p, n, at, (uint64_t)ord << 32);
}

static uint32_t clause_term(const clause *c, size_t i)
{
    return c->kind == CL_RANGE ? c->lo + (uint32_t)i : c->ids[i];
}

/* The best value of clause c's terms in base event ord: through each term's
 * posting list (few terms: sequential memory, weights beside the ordinals)
 * or the event's forward list (many). -1: none. */
static float clause_value(const search *s, const clause *c, uint32_t ord)
{
    if (!c->cur)
        return base_clause(s, c, ord);
    float best = -1;
    for (size_t i = 0; i < c->nterms; i++) {
        uint32_t t = clause_term(c, i), off = s->b->post_off[t];
        size_t n = s->b->post_off[t + 1] - off;
        size_t k = gallop(s->b->post + off, n, &c->cur[i], ord);
        if (k < n && s->b->post[off + k] == ord) {
            float v = term_value(c, i, s->b->post_w[off + k]);
            best = v > best ? v : best;
        }
    }
    return best;
}

/* The rank from the clauses' values (in clause order, base and delta
 * alike); -1 when fuzzy mode's share of trigrams stays below thr. */
static float rank_of(const search *s, const float *v)
{
    float r = 0;
    for (int i = 0; i < s->ncl; i++)
        if (s->cl[i].ranked)
            r += v[i];
    if (s->mode != CAT_MATCH_FUZZY)
        return r;
    r = s->fz_total ? r / (float)s->fz_total : 0;
    return r >= s->thr ? r : -1;
}

/* Ordinals filled into a clause's bitmap at a time: 8 kB of bits. */
#define FILL_BLOCK 65536u

/* Clause c's term t has a bitmap of its events to read: not for a typo's
 * clause, which holds only the events with the word in their name. */
static int term_dense(const search *s, const clause *c, uint32_t t)
{
    return s->b->dense_of[t] != UINT32_MAX && !s->p->plain && !c->score;
}

/* Fills the block of clause c's bitmap that holds ord (ord >= c->filled:
 * the blocks between are skipped, as ordinals only ascend): a dense term's
 * words, the others' postings (a typo's: those of names only, the only
 * ones term_value counts). */
static void fill_upto(search *s, clause *c, uint32_t ord)
{
    const cat_ix_base *b = s->b;
    uint32_t lo = c->filled, top = (uint32_t)b->words * 64;
    if (ord / FILL_BLOCK > lo / FILL_BLOCK) {
        lo = ord / FILL_BLOCK * FILL_BLOCK;
        for (size_t i = 0; i < c->nterms; i++) {
            uint32_t t = clause_term(c, i), off = b->post_off[t];
            if (!term_dense(s, c, t))
                gallop(b->post + off, b->post_off[t + 1] - off, &c->fill_at[i], lo);
        }
    }
    uint32_t hi = lo + FILL_BLOCK < top ? lo + FILL_BLOCK : top;
    uint64_t *out = c->bits + lo / 64;
    size_t nw = (hi - lo) / 64;
    memset(out, 0, nw * sizeof *out);
    for (size_t i = 0; i < c->nterms; i++) {
        uint32_t t = clause_term(c, i), off = b->post_off[t], end = b->post_off[t + 1];
        if (term_dense(s, c, t)) {
            const uint64_t *d = b->dense + (size_t)b->dense_of[t] * b->words + lo / 64;
            for (size_t w = 0; w < nw; w++)
                out[w] |= d[w];
            continue;
        }
        const uint32_t *p = b->post;
        size_t j = off + c->fill_at[i];
        if (c->score) {
            for (; j < end && p[j] < hi; j++)
                c->bits[p[j] / 64] |= (uint64_t)(b->post_w[j] == 3) << (p[j] % 64);
        } else {
            for (; j < end && p[j] < hi; j++)
                c->bits[p[j] / 64] |= UINT64_C(1) << (p[j] % 64);
        }
        c->fill_at[i] = j - off;
    }
    c->filled = hi;
}

/* Offers base event ord when it holds every clause and passes the
 * filters; dv: the driver's value for it (< 0: not known). */
static void visit_base(search *s, uint32_t ord, float dv)
{
    s->rejected = 0;
    for (int i = 0; i < s->ncl; i++) {
        clause *c = &s->cl[i];
        if (!c->bits)
            continue;
        if (ord >= c->filled)
            fill_upto(s, c, ord);
        if (!(c->bits[ord / 64] >> (ord % 64) & 1))
            return;
    }
    if (s->ix->overridden[ord / 64] >> (ord % 64) & 1)
        return; /* the delta holds its newer copy */
    float v[CAT_MAX_PARAMS];
    for (int i = 0; i < s->ncl; i++) {
        clause *c = &s->cl[i];
        v[i] = 0;
        if (c->base_only)
            continue;
        if (s->names) { /* in drive_names' lists: a word in the name, a filter held */
            v[i] = c->ranked ? CAT_IX_W_A : 0;
            continue;
        }
        v[i] = c == s->driver && dv >= 0 ? dv : clause_value(s, c, ord);
        if (v[i] < 0)
            return;
    }
    hit h;
    if ((h.rank = rank_of(s, v)) < 0)
        return;
    h.in_base = 1;
    h.ord = ord;
    h.id = 0;
    if (ev_passes(s, &s->b->ev[ord], 1, &h))
        offer(s, &h);
}

/* The value of clause c among a delta record's terms (by their text); -1:
 * none. */
static float rec_clause(const search *s, const clause *c, const cat_ix_rec *r)
{
    float best = -1;
    if (c->fz) { /* fuzzy: trigrams in common with a name word */
        for (size_t i = 0; i < r->nterms; i++) {
            if (r->weights[i] != 3 || (unsigned char)r->terms[i][0] <= CAT_IX_T_VENUE)
                continue;
            float sim = cat_ix_similarity(c->text, r->terms[i]);
            float common = sim * (float)c->fz->nt;
            if (sim >= s->thr / 2 && common > best)
                best = common;
        }
        return best < 0 ? -1 : (float)(int)(best + 0.5f);
    }
    size_t n = strlen(c->text), lo = 0, hi = r->nterms;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(r->terms[mid], c->text) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < r->nterms; i++) {
        int hit =
            c->prefix ? strncmp(r->terms[i], c->text, n) == 0 : strcmp(r->terms[i], c->text) == 0;
        if (!hit)
            break;
        if (cat_ix_weight[r->weights[i]] > best)
            best = cat_ix_weight[r->weights[i]];
    }
    return best;
}

static void visit_rec(search *s, const cat_ix_rec *r)
{
    float v[CAT_MAX_PARAMS];
    for (int i = 0; i < s->ncl; i++) {
        const clause *c = &s->cl[i];
        v[i] = 0;
        if (!c->base_only && (v[i] = rec_clause(s, c, r)) < 0)
            return;
    }
    hit h;
    if ((h.rank = rank_of(s, v)) < 0)
        return;
    h.in_base = 0;
    h.ord = 0;
    h.id = r->ev.event_id;
    if (ev_passes(s, &r->ev, 0, &h))
        offer(s, &h);
}

/* ---- driving the base --------------------------------------------------------------- */

/* A search thread's scratch buffers, kept between its searches (a bitmap
 * is n / 8 bytes: 125 kB at a million events) and freed when the thread
 * exits. */
#define BITMAP_CLAUSES 4

typedef struct scratch {
    uint64_t *bits; /* the driver's union */
    size_t nbits;
    uint16_t *counts; /* shared trigrams per lexicon word, left zeroed */
    size_t ncounts;
    uint64_t *cbits[BITMAP_CLAUSES]; /* clauses checked by bitmap */
    size_t cwords[BITMAP_CLAUSES];
    struct name_pass *names; /* drive_names' cursors and block */
} scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
    scratch *t = p;
    free(t->bits);
    free(t->counts);
    for (int i = 0; i < BITMAP_CLAUSES; i++)
        free(t->cbits[i]);
    free(t->names);
    free(t);
}

static void scratch_key_make(void)
{
    pthread_key_create(&scratch_key, scratch_free);
}

/* This thread's scratch, or NULL (out of memory). */
static scratch *scratch_get(void)
{
    pthread_once(&scratch_once, scratch_key_make);
    scratch *t = pthread_getspecific(scratch_key);
    if (!t && (t = calloc(1, sizeof *t)) && pthread_setspecific(scratch_key, t)) {
        free(t);
        t = NULL;
    }
    return t;
}

/* The positions in the date order between which base events may be on a
 * date-sorted page: from= and the cursor, to=. */
static void date_bounds(const search *s, size_t *start, size_t *stop)
{
    const cat_query *q = s->q;
    const cat_ix_ev *ev = s->b->ev;
    const uint32_t *d = s->b->date_ord;
    size_t lo = 0, hi = s->b->n;
    while ((q->has_from || q->has_cursor) && lo < hi) {
        size_t mid = (lo + hi) / 2;
        const cat_ix_ev *e = &ev[d[mid]];
        int below = q->has_cursor && (e->starts_us < q->cur_key ||
                                      (e->starts_us == q->cur_key && e->event_id <= q->cur_id));
        below |= q->has_from && e->starts_us < q->from_ms * 1000;
        if (below)
            lo = mid + 1;
        else
            hi = mid;
    }
    *start = lo;
    hi = s->b->n;
    while (q->has_to && lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ev[d[mid]].starts_us < q->to_ms * 1000)
            lo = mid + 1;
        else
            hi = mid;
    }
    *stop = q->has_to ? lo : s->b->n;
}

static int cmp_ord(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return (a > b) - (a < b);
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

/* The first ordinal at or after ord that every other clause read through
 * its posting lists may hold (the largest of their next postings), so the
 * driver skips what cannot match instead of visiting it: a leapfrog
 * intersection. UINT32_MAX: some clause has no posting left. */
static uint32_t next_possible(search *s, uint32_t ord)
{
    uint32_t need = ord;
    for (int i = 0; i < s->ncl; i++) {
        clause *c = &s->cl[i];
        if (!c->cur || c->bits || c == s->driver)
            continue;
        uint32_t m = UINT32_MAX;
        for (size_t k = 0; k < c->nterms; k++) {
            uint32_t t = clause_term(c, k), off = s->b->post_off[t];
            size_t n = s->b->post_off[t + 1] - off;
            size_t j = gallop(s->b->post + off, n, &c->cur[k], ord);
            if (j < n && s->b->post[off + j] < m)
                m = s->b->post[off + j];
        }
        if (m > need)
            need = m;
    }
    return need;
}

/* The next posting at or after *at in p[0..n), below stop, whose ordinal
 * the other clauses may hold (galloping past those they cannot), kept in
 * *at: its ordinal, or UINT32_MAX when none is left. One body for the two
 * element types, as DEFINE_GALLOP: bare ordinals and (ordinal << 32 |
 * value bits) pairs. */
#define DEFINE_NEXT_CANDIDATE(name, type, ord_of, gallop_to)                                       \
    static uint32_t name(search *s, const type *p, size_t n, size_t *at, uint32_t stop)            \
    {                                                                                              \
        while (*at < n) {                                                                          \
            uint32_t ord = ord_of(p[*at]);                                                         \
            uint32_t need = ord < stop ? next_possible(s, ord) : UINT32_MAX;                       \
            if (need == UINT32_MAX)                                                                \
                return UINT32_MAX;                                                                 \
            if (need <= ord)                                                                       \
                return ord;                                                                        \
            gallop_to(p, n, at, need);                                                             \
        }                                                                                          \
        return UINT32_MAX;                                                                         \
    }

static uint32_t post_ord(uint32_t post)
{
    return post;
}

static uint32_t pair_ord(uint64_t pair)
{
    return (uint32_t)(pair >> 32);
}

DEFINE_NEXT_CANDIDATE(next_post, uint32_t, post_ord, gallop)
DEFINE_NEXT_CANDIDATE(next_pair, uint64_t, pair_ord, gallop_pairs)

/* Visits the driver's ordinals in [start, stop) from (ordinal << 32 |
 * value bits) pairs, ascending: the last pair of an ordinal holds its best
 * value (values are positive floats, whose bits order as they do). */
static void drive_pairs(search *s, const uint64_t *p, size_t n, uint32_t start, uint32_t stop,
                        int early)
{
    size_t i = 0;
    gallop_pairs(p, n, &i, start);
    for (uint32_t ord; (ord = next_pair(s, p, n, &i, stop)) != UINT32_MAX;) {
        while (i + 1 < n && pair_ord(p[i + 1]) == ord)
            i++;
        uint32_t bits = (uint32_t)p[i++];
        float v;
        memcpy(&v, &bits, sizeof v);
        visit_base(s, ord, v);
        if (early && page_complete(s))
            return;
    }
}

/* A driver of one term: its posting list from start, skipping ahead to
 * what the other clauses may hold. */
static void drive_slice(search *s, const clause *d, uint32_t start, uint32_t stop, int early)
{
    uint32_t t = clause_term(d, 0), off = s->b->post_off[t];
    const uint32_t *p = s->b->post + off;
    size_t n = s->b->post_off[t + 1] - off, i = 0;
    gallop(p, n, &i, start);
    for (uint32_t ord; (ord = next_post(s, p, n, &i, stop)) != UINT32_MAX;) {
        float v = term_value(d, 0, s->b->post_w[off + i++]);
        if (v < 0)
            continue;
        visit_base(s, ord, v);
        if (early && page_complete(s))
            return;
    }
}

/* A driver of a few terms (GALLOP_TERMS at most): their posting lists
 * merged in place, each with a galloping cursor, skipping ahead with the
 * other clauses (no gathering, no sort). */
static void drive_merge(search *s, const clause *d, int early)
{
    size_t at[16] = {0}, nt = d->nterms;
    for (;;) {
        uint32_t ord = UINT32_MAX;
        for (size_t k = 0; k < nt; k++) {
            uint32_t t = clause_term(d, k), off = s->b->post_off[t];
            if (at[k] < s->b->post_off[t + 1] - off && s->b->post[off + at[k]] < ord)
                ord = s->b->post[off + at[k]];
        }
        if (ord == UINT32_MAX)
            return;
        uint32_t need = next_possible(s, ord);
        float v = -1;
        for (size_t k = 0; k < nt; k++) { /* every cursor to need; values at ord */
            uint32_t t = clause_term(d, k), off = s->b->post_off[t];
            size_t n = s->b->post_off[t + 1] - off;
            if (at[k] < n && s->b->post[off + at[k]] == ord && need == ord) {
                float w = term_value(d, k, s->b->post_w[off + at[k]]);
                v = w > v ? w : v;
                at[k]++;
            } else if (need > ord) {
                gallop(s->b->post + off, n, &at[k], need == UINT32_MAX ? UINT32_MAX : need);
            }
        }
        if (need == UINT32_MAX)
            return;
        if (need > ord || v < 0)
            continue;
        visit_base(s, ord, v);
        if (early && page_complete(s))
            return;
    }
}

/* The driver's postings with their values, gathered and sorted. */
static int drive_gathered(search *s, const clause *d, uint32_t start, uint32_t stop, int early)
{
    uint64_t *all = malloc((d->size ? d->size : 1) * sizeof *all);
    if (!all)
        return ONS_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < d->nterms; i++) {
        uint32_t t = clause_term(d, i);
        for (uint32_t k = s->b->post_off[t]; k < s->b->post_off[t + 1]; k++) {
            float v = term_value(d, i, s->b->post_w[k]);
            uint32_t bits;
            memcpy(&bits, &v, sizeof bits);
            if (v >= 0 && s->b->post[k] < stop)
                all[n++] = (uint64_t)s->b->post[k] << 32 | bits;
        }
    }
    if (n > 1 && (d->nterms > 1))
        cat_ix_sort(all, n, sizeof *all, cmp_u64);
    drive_pairs(s, all, n, start, stop, early);
    free(all);
    return 0;
}

/* A large union through a bitmap of the base's ordinals (this thread's);
 * the driver's values are then read from each event's forward list. */
static int drive_bitmap(search *s, const clause *d, uint32_t start, uint32_t stop, int early)
{
    size_t words = s->b->n / 64 + 1;
    scratch *sc = scratch_get();
    if (!sc)
        return ONS_ENOMEM;
    if (sc->nbits < words) {
        free(sc->bits);
        sc->nbits = 0;
        if (!(sc->bits = malloc(words * sizeof *sc->bits)))
            return ONS_ENOMEM;
        sc->nbits = words;
    }
    uint64_t *bits = sc->bits;
    memset(bits, 0, words * sizeof *bits);
    for (size_t i = 0; i < d->nterms; i++) {
        uint32_t t = clause_term(d, i);
        for (uint32_t k = s->b->post_off[t]; k < s->b->post_off[t + 1]; k++)
            bits[s->b->post[k] / 64] |= UINT64_C(1) << (s->b->post[k] % 64);
    }
    for (size_t w = start / 64; w < words && w * 64 < stop; w++) {
        for (uint64_t x = bits[w]; x; x &= x - 1) {
            uint32_t ord = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(x));
            if (ord < start || ord >= stop)
                continue;
            visit_base(s, ord, -1);
            if (early && page_complete(s))
                return 0;
        }
    }
    return 0;
}

/* No clause: the date order, or the price order, from the cursor on:
 * page order, so the first rejected offer ends it. */
static void drive_scan(search *s)
{
    const cat_query *q = s->q;
    if (q->sort != CAT_SORT_PRICE) {
        size_t start, stop;
        date_bounds(s, &start, &stop);
        for (size_t i = start; i < stop; i++) {
            visit_base(s, s->b->date_ord[i], -1);
            if (s->rejected)
                return;
        }
        return;
    }
    const cat_ix_ev *ev = s->b->ev;
    size_t lo = 0, hi = s->b->nprice;
    while (q->has_cursor && lo < hi) {
        size_t mid = (lo + hi) / 2;
        const cat_ix_ev *e = &ev[s->b->price_ord[mid]];
        if (e->price_min < q->cur_key || (e->price_min == q->cur_key && e->event_id <= q->cur_id))
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < s->b->nprice; i++) {
        visit_base(s, s->b->price_ord[i], -1);
        if (s->rejected)
            return;
    }
}

/* A clause of about as many postings as a large driver (an eighth to four
 * times, and four times more per term of the clause: each of its terms is
 * a cursor to step per candidate) is checked in a bitmap of its events
 * (filled as the driver goes, then one bit per candidate): stepping its
 * cursors would cost as much as filling. A much larger clause is cheaper
 * to gallop through. */
#define BITMAP_DRIVER_MIN 4096

/* Clause c's events into this thread's k-th clause bitmap, filled lazily
 * (fill_upto) as the driver's ascending ordinals reach each block: a
 * relevance page that stops early pays only for the blocks it reached. */
static int fill_bits(search *s, clause *c, int k)
{
    size_t words = s->b->n / 64 + 1;
    scratch *sc = scratch_get();
    if (!sc)
        return ONS_ENOMEM;
    if (sc->cwords[k] < words) {
        free(sc->cbits[k]);
        sc->cwords[k] = 0;
        if (!(sc->cbits[k] = malloc(words * sizeof(uint64_t))))
            return ONS_ENOMEM;
        sc->cwords[k] = words;
    }
    if (!(c->fill_at = calloc(c->nterms ? c->nterms : 1, sizeof *c->fill_at)))
        return ONS_ENOMEM;
    c->bits = sc->cbits[k];
    c->filled = 0;
    return 0;
}

/* A date-sorted page without words, driven by at most this many
 * pseudo-terms (the city, the category, the circle's venues), merges their
 * date places in page order and stops at the first event turned away. */
#define DATE_MERGE_TERMS 64

/* The dense bitmap of a clause of one dense term, or NULL. */
static const uint64_t *dense_bits(const search *s, const clause *c)
{
    if (c->kind == CL_NONE || c->nterms != 1)
        return NULL;
    uint32_t t = clause_term(c, 0);
    return term_dense(s, c, t) ? s->b->dense + (size_t)s->b->dense_of[t] * s->b->words : NULL;
}

/* A large driver d with another clause in a bitmap: intersect a block of
 * bitmaps at a time, 64 events per word, the driver's own bitmap too
 * (s->by_blocks; nbits bitmaps are filled already). 0 or ONS_ENOMEM. */
static int prepare_blocks(search *s, clause *d, int nbits)
{
    int others = 0;
    for (int i = 0; i < s->ncl; i++)
        others |= &s->cl[i] != d && s->cl[i].bits != NULL;
    s->by_blocks = !s->by_date && d && d->kind != CL_NONE && !d->base_only && !s->p->plain &&
                   d->size >= BITMAP_DRIVER_MIN && others;
    if (!s->by_blocks)
        return 0;
    const uint64_t *db = dense_bits(s, d);
    if (db) {
        d->bits = (uint64_t *)db;
        d->filled = UINT32_MAX;
    } else if (nbits < BITMAP_CLAUSES) {
        if (fill_bits(s, d, nbits))
            return ONS_ENOMEM;
    } else {
        s->by_blocks = 0;
    }
    if (s->by_blocks && d->nterms <= GALLOP_TERMS &&
        !(d->cur = calloc(d->nterms ? d->nterms : 1, sizeof *d->cur)))
        return ONS_ENOMEM;
    return 0;
}

/* The driver (the clause of fewest postings), how the base is driven
 * (s->by_date, s->by_blocks), and how every other clause is checked: a
 * bitmap (a dense term's own, or one filled as the driver goes), galloping
 * cursors, or the forward lists. */
static int prepare_clauses(search *s)
{
    clause *d = NULL;
    int nbits = 0;
    for (int i = 0; i < s->ncl; i++) {
        clause *c = &s->cl[i];
        c->nterms = c->kind == CL_RANGE ? c->hi - c->lo : c->kind == CL_SET ? c->nids : 0;
        if (!d || c->size < d->size)
            d = c;
    }
    if (s->names)
        d = NULL; /* the name lists drive; the filters' clauses are checked per event */
    s->driver = d;
    s->circle_checked = d && d->base_only; /* the circle drives */
    s->max_rank = s->mode == CAT_MATCH_FUZZY ? 1.0f : 0;
    for (int i = 0; i < s->ncl && s->mode != CAT_MATCH_FUZZY; i++)
        if (s->cl[i].ranked)
            s->max_rank += CAT_IX_W_A; /* in rank_of's order: the same float */
    /* Ordinals come in date order here, not ascending: no cursor and no
     * bitmap filled as the driver goes, only dense bitmaps and forward lists. */
    s->by_date = d && d->kind != CL_NONE && s->mode == CAT_MATCH_NONE && !s->p->plain &&
                 s->q->sort == CAT_SORT_DATE && d->nterms <= DATE_MERGE_TERMS;
    for (int i = 0; i < s->ncl; i++) {
        clause *c = &s->cl[i];
        if (c->kind == CL_NONE || c->base_only || c == d || s->names)
            continue; /* (drive_names' lists decide every clause but the circle) */
        const uint64_t *db = dense_bits(s, c);
        if (db) {
            c->bits = (uint64_t *)db; /* read only: filled is past every ordinal */
            c->filled = UINT32_MAX;
        }
        if (s->by_date)
            continue;
        int comparable =
            d && c->size >= d->size / 8 && c->size <= d->size * 4 * (c->nterms ? c->nterms : 1);
        if (!db && !s->p->plain && comparable && d->size >= BITMAP_DRIVER_MIN &&
            nbits < BITMAP_CLAUSES && fill_bits(s, c, nbits++))
            return ONS_ENOMEM;
        if (c->nterms <= GALLOP_TERMS &&
            !(c->cur = calloc(c->nterms ? c->nterms : 1, sizeof *c->cur)))
            return ONS_ENOMEM;
    }
    return prepare_blocks(s, d, nbits);
}

/* The intersection of the bitmap clauses, a block at a time (ordinals
 * ascending); each event in all of them is visited (the other clauses,
 * the values and the filters there). */
static void drive_blocks(search *s, int early)
{
    clause *bc[CAT_MAX_PARAMS];
    const uint64_t *bp[CAT_MAX_PARAMS];
    int nb = 0;
    for (int i = 0; i < s->ncl; i++)
        if (s->cl[i].bits) {
            bp[nb] = s->cl[i].bits;
            bc[nb++] = &s->cl[i];
        }
    uint32_t n = (uint32_t)s->b->n, top = (uint32_t)s->b->words * 64;
    for (uint32_t lo = 0; lo < n; lo += FILL_BLOCK) {
        uint32_t hi = lo + FILL_BLOCK < top ? lo + FILL_BLOCK : top;
        for (int k = 0; k < nb; k++)
            if (lo >= bc[k]->filled)
                fill_upto(s, bc[k], lo);
        for (uint32_t w = lo / 64; w < hi / 64; w++) {
            uint64_t x = bp[0][w] & bp[1][w];
            for (int k = 2; k < nb && x; k++)
                x &= bp[k][w];
            for (; x; x &= x - 1) {
                uint32_t ord = w * 64 + (uint32_t)__builtin_ctzll(x);
                if (ord >= n)
                    return;
                visit_base(s, ord, -1);
                if (early && page_complete(s))
                    return;
            }
        }
    }
}

/* A date-sorted page of pseudo-terms only: the driver's terms' date
 * places merged from the cursor (or from=) on, in page order, so the first
 * event turned away ends it. */
static void drive_dates(search *s)
{
    const clause *d = s->driver;
    const cat_ix_base *b = s->b;
    size_t start, stop, at[DATE_MERGE_TERMS], end[DATE_MERGE_TERMS], nt = d->nterms;
    date_bounds(s, &start, &stop);
    for (size_t k = 0; k < nt; k++) {
        uint32_t t = clause_term(d, k), off = b->post_off[t];
        size_t len = b->post_off[t + 1] - off;
        at[k] = 0;
        gallop(b->dpost + off, len, &at[k], (uint32_t)start);
        at[k] += off;
        end[k] = off + len;
    }
    for (;;) {
        size_t best = nt;
        for (size_t k = 0; k < nt; k++)
            if (at[k] < end[k] && (best == nt || b->dpost[at[k]] < b->dpost[at[best]]))
                best = k;
        if (best == nt || b->dpost[at[best]] >= stop)
            return;
        visit_base(s, b->date_ord[b->dpost[at[best]++]], 0);
        if (s->rejected)
            return;
    }
}

/* Ordinals per block of the name lists' pass: 64 words of bits per word
 * of q, filled from the name lists and intersected, so a page that fills
 * early reads only the lists' entries up to where it stopped. */
#define NAME_BLOCK 4096u

/* drive_names' lists per clause (a word's name lists, a filter's
 * postings), cursors in them, and its block of bits per clause (this
 * thread's scratch). */
struct name_pass {
    const uint32_t *list[CAT_MAX_PARAMS];
    size_t at[CAT_MAX_PARAMS][GALLOP_TERMS], end[CAT_MAX_PARAMS][GALLOP_TERMS];
    size_t nterms[CAT_MAX_PARAMS];
    uint64_t bits[CAT_MAX_PARAMS][NAME_BLOCK / 64];
};

/* drive_names' block [lo, hi): the walker clause's list, each event
 * checked in the other clauses' bits. 1: the page is complete. */
static int walk_names(search *s, struct name_pass *np, int nw, int walker, uint32_t lo, uint32_t hi)
{
    const uint32_t *p = np->list[walker];
    size_t j = np->at[walker][0];
    for (; j < np->end[walker][0] && p[j] < hi; j++) {
        uint32_t o = p[j] - lo;
        int all = 1;
        for (int i = 0; i < nw; i++)
            all &= i == walker || (int)(np->bits[i][o / 64] >> (o % 64) & 1);
        if (!all)
            continue;
        visit_base(s, p[j], -1);
        if (page_complete(s))
            return 1;
    }
    np->at[walker][0] = j;
    return 0;
}

/* drive_names' block from lo when every clause is in bits: their
 * intersection into bits[0] without a branch per word (the lists are
 * sparse: a test per word would mispredict), then the few words left
 * (bits[0] is left cleared). 1: the page is complete. */
static int scan_names(search *s, struct name_pass *np, int nw, uint32_t lo)
{
    uint64_t(*bits)[NAME_BLOCK / 64] = np->bits;
    for (int i = 1; i < nw; i++)
        for (uint32_t w = 0; w < NAME_BLOCK / 64; w++)
            bits[0][w] &= bits[i][w];
    for (uint32_t w = 0; w < NAME_BLOCK / 64; w++) {
        uint64_t x = bits[0][w];
        bits[0][w] = 0;
        for (; x; x &= x - 1) {
            visit_base(s, lo + w * 64 + (uint32_t)__builtin_ctzll(x), -1);
            if (page_complete(s))
                return 1;
        }
    }
    return 0;
}

/* Sets (set: 1) or clears (0) in clause i's bits its list's entries in
 * [lo, hi); clearing moves its cursors past them. */
static void names_bits(struct name_pass *np, int i, uint32_t lo, uint32_t hi, int set)
{
    const uint32_t *p = np->list[i];
    for (size_t k = 0; k < np->nterms[i]; k++) {
        size_t j = np->at[i][k];
        if (set) {
            for (; j < np->end[i][k] && p[j] < hi; j++)
                np->bits[i][(p[j] - lo) / 64] |= UINT64_C(1) << (p[j] % 64);
        } else {
            for (; j < np->end[i][k] && p[j] < hi; j++)
                np->bits[i][(p[j] - lo) / 64] = 0;
            np->at[i][k] = j;
        }
    }
}

/* A relevance page's first pass (s->names): the base events with every
 * word of q in their name, the best rank there is (s->max_rank), in event
 * id order. Each word is its terms' name lists, the city and the category
 * their postings (the circle is left to the distance filter); a block at
 * a time, one clause of one term walks its list against the others' bits
 * (a clause's terms' union), or every clause is in bits and their
 * intersection is scanned; each event in all of them is visited (the
 * filters). When they fill the page, it is the page (every other event
 * ranks lower); else cat_ix_search runs the full pass. When a word has
 * more than GALLOP_TERMS terms or the cursor's rank is below the best,
 * nothing is visited and s->names is cleared (the pass says nothing). 0 or
 * ONS_ENOMEM. */
static int drive_names(search *s)
{
    const cat_ix_base *b = s->b;
    scratch *sc = scratch_get();
    if (!sc || (!sc->names && !(sc->names = malloc(sizeof *sc->names))))
        return ONS_ENOMEM;
    struct name_pass *np = sc->names;
    int nw = 0, words = 0, walker = -1;
    size_t walk_len = SIZE_MAX;
    uint32_t start = s->q->has_cursor ? s->cur_ord : 0;
    for (int i = 0; i < s->ncl; i++) {
        const clause *c = &s->cl[i];
        if (c->base_only)
            continue;
        if (c->nterms > GALLOP_TERMS) {
            s->names = 0; /* not run: the page is not known */
            return 0;
        }
        const uint32_t *off = c->ranked ? b->name_off : b->post_off;
        np->list[nw] = c->ranked ? b->name_post : b->post;
        np->nterms[nw] = c->nterms;
        for (size_t k = 0; k < c->nterms; k++) {
            uint32_t t = clause_term(c, k);
            np->at[nw][k] = 0;
            gallop(np->list[nw] + off[t], off[t + 1] - off[t], &np->at[nw][k], start);
            np->at[nw][k] += off[t];
            np->end[nw][k] = off[t + 1];
        }
        /* The shortest list of one term walks (ascending: page order). */
        if (c->nterms == 1 && np->end[nw][0] - np->at[nw][0] < walk_len) {
            walker = nw;
            walk_len = np->end[nw][0] - np->at[nw][0];
        }
        words += c->ranked;
        memset(np->bits[nw], 0, sizeof np->bits[nw]);
        nw++;
    }
    if (!words || (s->q->has_cursor && (float)s->q->cur_rank != s->max_rank)) {
        s->names = 0;
        return 0;
    }
    for (uint32_t lo = start / NAME_BLOCK * NAME_BLOCK; lo < b->n; lo += NAME_BLOCK) {
        uint32_t hi = lo + NAME_BLOCK;
        for (int i = 0; i < nw; i++)
            if (i != walker)
                names_bits(np, i, lo, hi, 1);
        int stop = walker >= 0 ? walk_names(s, np, nw, walker, lo, hi) : scan_names(s, np, nw, lo);
        for (int i = 0; i < nw; i++) /* cleared for the next block */
            if (i != walker)
                names_bits(np, i, lo, hi, 0);
        if (stop)
            return 0;
    }
    return 0;
}

/* The base's part of the page: through the smallest clause (every match
 * is offered), or a scan. */
static int drive_base(search *s)
{
    const clause *d = s->driver;
    for (int i = 0; i < s->ncl; i++)
        if (s->cl[i].kind == CL_NONE)
            return 0; /* some clause holds no term of the base */
    if (s->names)
        return drive_names(s);
    if (!d) {
        drive_scan(s);
        return 0;
    }
    uint32_t n = (uint32_t)s->b->n;
    /* Relevance: base events come in event id order, so once one of the
     * best possible rank is turned away (the page is full of that rank and
     * smaller ids), every later one would be too. */
    int early = s->q->sort == CAT_SORT_RELEVANCE;
    if (s->by_date) {
        drive_dates(s);
        return 0;
    }
    if (s->by_blocks) {
        drive_blocks(s, early);
        return 0;
    }
    if (d->nterms == 1) {
        drive_slice(s, d, 0, n, early);
        return 0;
    }
    if (d->nterms <= GALLOP_TERMS && !d->base_only) {
        drive_merge(s, d, early);
        return 0;
    }
    /* The circle needs no value per event: its union is a bitmap. */
    return d->size <= GATHER_MAX && !d->base_only ? drive_gathered(s, d, 0, n, early)
                                                  : drive_bitmap(s, d, 0, n, early);
}

/* ---- clauses ------------------------------------------------------------------------ */

static size_t range_size(const cat_ix_base *b, uint32_t lo, uint32_t hi)
{
    return b->post_off[hi] - b->post_off[lo];
}

static clause *new_clause(search *s, const char *text, size_t n)
{
    if (s->ncl >= CAT_MAX_PARAMS)
        return NULL;
    clause *c = &s->cl[s->ncl];
    memset(c, 0, sizeof *c);
    if (!(c->text = malloc(n + 1)))
        return NULL;
    s->ncl++;
    memcpy(c->text, text, n);
    c->text[n] = '\0';
    return c;
}

/* An exact term (a word, the city, the category). */
static void exact_clause(search *s, clause *c)
{
    int64_t t = cat_ix_term_find(s->b, c->text);
    c->kind = t < 0 ? CL_NONE : CL_RANGE;
    if (t >= 0) {
        c->lo = (uint32_t)t;
        c->hi = (uint32_t)t + 1;
        c->size = range_size(s->b, c->lo, c->hi);
    }
}

typedef struct cand {
    uint32_t id;
    float sim;
} cand;

static int cmp_cand_sim(const void *x, const void *y)
{
    const cand *a = x, *b = y;
    if (a->sim != b->sim)
        return a->sim > b->sim ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

static int cmp_cand_id(const void *x, const void *y)
{
    const cand *a = x, *b = y;
    return (a->id > b->id) - (a->id < b->id);
}

/* The lexicon words sharing at least thr of the word's trigrams, counted
 * through the trigram lists (this thread's counters, left zeroed). */
static int fuzzy_candidates(search *s, const char *w, float nwt, cand **out, size_t *nout)
{
    uint32_t tri[203];
    size_t nt = cat_ix_trigrams(w, tri), n = 0, cap = 0;
    const cat_ix_base *b = s->b;
    scratch *sc = scratch_get();
    if (!sc)
        return ONS_ENOMEM;
    if (sc->ncounts < b->nterms) {
        free(sc->counts);
        sc->ncounts = 0;
        if (!(sc->counts = calloc(b->nterms, sizeof *sc->counts)))
            return ONS_ENOMEM;
        sc->ncounts = b->nterms;
    }
    uint16_t *counts = sc->counts;
    cand *c = NULL;
    int rc = 0;
    for (size_t k = 0; k < nt; k++) {
        size_t lo = 0, hi = b->ntri;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (b->tri_key[mid] < tri[k])
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == b->ntri || b->tri_key[lo] != tri[k])
            continue;
        for (uint32_t j = b->tri_off[lo]; j < b->tri_off[lo + 1]; j++) {
            uint32_t id = b->tri_words[j];
            if (!b->in_name[id])
                continue; /* a typo is looked for in names only */
            if (counts[id]++ == 0 && !rc) {
                rc = ONS_VEC_RESERVE(c, cap, n + 1, 256);
                if (!rc)
                    c[n++] = (cand){id, 0};
            }
        }
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        float sim = (float)counts[c[i].id] / nwt;
        counts[c[i].id] = 0;
        if (sim >= s->thr / 2)
            c[m++] = (cand){c[i].id, sim};
    }
    *out = c;
    *nout = m;
    return rc;
}

/* A misspelt word's clause: the fuzzy_max_words lexicon words most similar
 * to it (at least half of thr), each valued by the trigrams it shares with
 * the word; an event's rank is the share of q's trigrams its name's words
 * hold (rank_of). */
static int fuzzy_clause(search *s, clause *c)
{
    cand *cands = NULL;
    size_t n = 0;
    if (!(c->fz = calloc(1, sizeof *c->fz)))
        return ONS_ENOMEM;
    c->fz->nt = strlen(c->text) <= 199 ? cat_ix_trigrams(c->text, c->fz->tri) : 0;
    s->fz_total += c->fz->nt;
    if (c->fz->nt && fuzzy_candidates(s, c->text, (float)c->fz->nt, &cands, &n))
        return ONS_ENOMEM;
    if (n > 1)
        cat_ix_sort(cands, n, sizeof *cands, cmp_cand_sim);
    if (n > (size_t)s->p->fuzzy_max_words)
        n = (size_t)s->p->fuzzy_max_words;
    if (n > 1)
        cat_ix_sort(cands, n, sizeof *cands, cmp_cand_id);
    c->ids = malloc((n ? n : 1) * sizeof *c->ids);
    c->score = malloc((n ? n : 1) * sizeof *c->score);
    if (!c->ids || !c->score) {
        free(cands);
        return ONS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        c->ids[i] = cands[i].id;
        c->score[i] = (float)(int)(cands[i].sim * (float)c->fz->nt + 0.5f); /* in common */
        c->size += range_size(s->b, c->ids[i], c->ids[i] + 1);
    }
    c->nids = n;
    c->kind = n ? CL_SET : CL_NONE;
    free(cands);
    return 0;
}

static int word_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

/* The next word of q at *p (catalog_store.c cuts them the same way):
 * its start, length into *n, and *last when no word follows; NULL: none. */
static const char *next_word(const char **p, size_t *n, int *last)
{
    while (**p && !word_byte((unsigned char)**p))
        (*p)++;
    if (!**p)
        return NULL;
    const char *w = *p;
    while (**p && word_byte((unsigned char)**p))
        (*p)++;
    *n = (size_t)(*p - w);
    *last = 1;
    for (const char *r = *p; *r; r++)
        *last &= !word_byte((unsigned char)*r);
    return w;
}

/* One clause per word of q: the last one a prefix (a range of terms). */
static int word_clauses(search *s)
{
    const char *p = s->q->q, *w;
    size_t n;
    int last;
    while ((w = next_word(&p, &n, &last))) {
        clause *c = new_clause(s, w, n);
        if (!c)
            return ONS_ENOMEM;
        cat_ix_fold(c->text, n, c->text);
        c->ranked = 1;
        if (s->mode == CAT_MATCH_FUZZY) {
            if (fuzzy_clause(s, c))
                return ONS_ENOMEM;
        } else if (last) {
            c->prefix = 1;
            cat_ix_prefix_range(s->b, c->text, &c->lo, &c->hi);
            c->kind = c->lo < c->hi ? CL_RANGE : CL_NONE;
            c->size = range_size(s->b, c->lo, c->hi);
        } else {
            exact_clause(s, c);
        }
    }
    return 0;
}

/* Inside q's bounding box of the circle (catalog_store.c's, the one the
 * database path reads venues_position with): a cheap test before the
 * haversine. */
static int in_box(const cat_query *q, double lat, double lon)
{
    if (lat < q->box[0] || lat > q->box[1])
        return 0;
    if (!q->box_lon)
        return 1;
    return q->box[2] <= q->box[3] ? lon >= q->box[2] && lon <= q->box[3]
                                  : lon >= q->box[2] || lon <= q->box[3];
}

/* The city, the category and the circle's venues. */
static int filter_clauses(search *s)
{
    const cat_query *q = s->q;
    char buf[300];
    if (q->city) {
        int n = snprintf(buf, sizeof buf, "%c%s", CAT_IX_T_CITY, q->city);
        clause *c = new_clause(s, buf, (size_t)n);
        if (!c)
            return ONS_ENOMEM;
        cat_ix_fold(c->text, strlen(c->text), c->text); /* city_key = lower(city) */
        exact_clause(s, c);
    }
    if (q->category) {
        int n = snprintf(buf, sizeof buf, "%c%s", CAT_IX_T_CATEGORY, q->category);
        clause *c = new_clause(s, buf, (size_t)n);
        if (!c)
            return ONS_ENOMEM;
        exact_clause(s, c);
    }
    if (!q->has_point)
        return 0;
    clause *c = new_clause(s, "", 0);
    if (!c || !(c->ids = malloc((s->b->nvenues + 1) * sizeof *c->ids)))
        return ONS_ENOMEM;
    c->base_only = 1;
    for (size_t i = 0; i < s->b->nvenues; i++) {
        const cat_ix_venue *v = &s->b->venues[i];
        if (in_box(q, v->lat, v->lon) && distance_km(q->lat, q->lon, v->lat, v->lon) <= q->km) {
            c->ids[c->nids++] = v->term;
            c->size += range_size(s->b, v->term, v->term + 1);
        }
    }
    cat_ix_sort(c->ids, c->nids, sizeof *c->ids, cmp_ord);
    c->kind = c->nids ? CL_SET : CL_NONE;
    return 0;
}

static void clauses_clear(search *s)
{
    s->fz_total = 0;
    s->driver = NULL;
    s->by_date = s->by_blocks = 0;
    for (int i = 0; i < s->ncl; i++) {
        free(s->cl[i].text);
        free(s->cl[i].ids);
        free(s->cl[i].score);
        free(s->cl[i].cur);
        free(s->cl[i].fz);
        free(s->cl[i].fill_at);
    }
    s->ncl = 0;
}

/* Drops each typo candidate that could not bring an event to the
 * threshold even with every other word at its best candidate: an event
 * that only it matches would be turned away by rank_of, and one with a
 * better candidate takes that one's value. ("the" and "tour" share one
 * trigram with "tdd": the same page without their half million postings.)
 * Only the word clauses exist yet. */
static void prune_typos(search *s)
{
    float best[CAT_MAX_PARAMS], v[CAT_MAX_PARAMS];
    for (int i = 0; i < s->ncl; i++) {
        best[i] = -1;
        for (size_t k = 0; s->cl[i].score && k < s->cl[i].nids; k++)
            best[i] = s->cl[i].score[k] > best[i] ? s->cl[i].score[k] : best[i];
    }
    for (int i = 0; i < s->ncl; i++) {
        clause *c = &s->cl[i];
        if (c->kind != CL_SET || !c->score)
            continue;
        size_t m = 0;
        c->size = 0;
        for (size_t k = 0; k < c->nids; k++) {
            memcpy(v, best, (size_t)s->ncl * sizeof *v);
            v[i] = c->score[k];
            if (rank_of(s, v) < 0)
                continue;
            c->ids[m] = c->ids[k];
            c->score[m++] = c->score[k];
            c->size += range_size(s->b, c->ids[k], c->ids[k] + 1);
        }
        c->nids = m;
        c->kind = m ? CL_SET : CL_NONE;
    }
}

/* One pass in s->mode: the page's best k into s->top. */
static int run(search *s)
{
    s->ntop = 0;
    int rc = (s->q->q ? word_clauses(s) : 0);
    if (!rc && s->mode == CAT_MATCH_FUZZY && !s->p->plain)
        prune_typos(s);
    if (!rc)
        rc = filter_clauses(s);
    if (!rc)
        rc = prepare_clauses(s);
    const cat_query *q = s->q;
    s->reads_event = q->has_from || q->has_to || q->has_min || q->has_max ||
                     (q->has_point && !s->circle_checked) || q->sort == CAT_SORT_PRICE;
    for (size_t i = 0; !rc && i < s->ix->ndelta; i++)
        visit_rec(s, s->ix->delta[i]);
    if (!rc)
        rc = drive_base(s);
    clauses_clear(s);
    return rc;
}

/* The first place in the date order strictly after the cursor's row. */
static int64_t date_place_after(const search *s)
{
    const cat_query *q = s->q;
    size_t lo = 0, hi = s->b->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const cat_ix_ev *e = &s->b->ev[s->b->date_ord[mid]];
        if (e->starts_us < q->cur_key || (e->starts_us == q->cur_key && e->event_id <= q->cur_id))
            lo = mid + 1;
        else
            hi = mid;
    }
    return (int64_t)lo;
}

/* ---- the answer --------------------------------------------------------------------- */

/* starts_at as the database path writes it (strftime's
 * "%Y-%m-%dT%H:%M:%SZ" of the UTC time); years 1000-9999 are written here
 * digit by digit (days to a civil date, Howard Hinnant's algorithm), the
 * rest through gmtime_r. */
void cat_ix_rfc3339(int64_t us, char out[32])
{
    int64_t sec = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    int64_t days = sec >= 0 ? sec / 86400 : -((-sec + 86399) / 86400), tod = sec - days * 86400;
    int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097, yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = yoe + era * 400 + (m <= 2);
    if (y < 1000 || y > 9999) {
        time_t t = (time_t)sec;
        struct tm tm;
        if (!gmtime_r(&t, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
            snprintf(out, 32, "%s", "1970-01-01T00:00:00Z");
        return;
    }
    int v[6] = {(int)y, (int)m, (int)d, (int)(tod / 3600), (int)(tod / 60 % 60), (int)(tod % 60)};
    memcpy(out, "0000-00-00T00:00:00Z", 21);
    for (int i = 3; i >= 0; i--, v[0] /= 10)
        out[i] = (char)('0' + v[0] % 10);
    static const int at[5] = {5, 8, 11, 14, 17};
    for (int k = 0; k < 5; k++) {
        out[at[k]] = (char)('0' + v[k + 1] / 10);
        out[at[k] + 1] = (char)('0' + v[k + 1] % 10);
    }
}

/* snprintf(dst, cap, "%s", src) without the format machinery. */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* v in decimal, as "%" PRId64 writes it (out: at least 21 bytes). */
static void i64_text(int64_t v, char *out)
{
    char t[24], *e = t + sizeof t, *p = e;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    *--p = '\0';
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *--p = '-';
    memcpy(out, p, (size_t)(e - p));
}

/* Row r of the page from hit h; prev: the row before (its rank prev_rank),
 * or NULL. */
static void render(const search *s, const hit *h, int64_t now_us, const cat_row *prev,
                   float prev_rank, cat_row *r)
{
    const cat_ix_ev *e = h->ev;
    r->event_id = hit_id(s, h);
    r->min_cents = e->has_price ? e->price_min : 0;
    r->max_cents = e->has_price ? e->price_max : 0;
    copy_str(r->name, sizeof r->name, e->name);
    copy_str(r->category, sizeof r->category, e->category);
    cat_ix_rfc3339(e->starts_us, r->starts_at);
    copy_str(r->venue_name, sizeof r->venue_name, e->venue_name);
    copy_str(r->city, sizeof r->city, e->city);
    /* As the database path: scheduled turns on_sale at onsale_at. */
    int on_sale = strcmp(e->status, "scheduled") == 0 && e->onsale_us <= now_us;
    copy_str(r->status, sizeof r->status, on_sale ? "on_sale" : e->status);
    if (s->q->sort != CAT_SORT_RELEVANCE)
        i64_text(s->q->sort == CAT_SORT_DATE ? e->starts_us : h->key, r->cursor_key);
    else if (prev && prev_rank == h->rank)
        memcpy(r->cursor_key, prev->cursor_key, sizeof r->cursor_key); /* ranks repeat */
    else
        snprintf(r->cursor_key, sizeof r->cursor_key, "%.9g", (double)h->rank);
    r->has_distance = s->q->has_point;
    double km = h->km;
    if (s->q->has_point && h->in_base && s->circle_checked)
        km = distance_km(s->q->lat, s->q->lon, e->lat, e->lon);
    r->distance_km = (double)(long)(km * 100 + 0.5) / 100.0;
}

/* The page's n events are read at random (an event id, a record, its
 * name and venue): read in passes that ask for the next level at once,
 * their cache misses overlap instead of coming one after another in
 * render. (Each pass stores a field: GCC deletes a loop of prefetches
 * alone.) */
static void prefetch_page(const search *s, int n, cat_row *rows)
{
    for (int i = 0; i < n; i++) {
        const hit *h = &s->top[i];
        rows[i].event_id = hit_id(s, h);
        __builtin_prefetch(h->ev);
        __builtin_prefetch((const char *)h->ev + 64);
    }
    for (int i = 0; i < n; i++) {
        const cat_ix_ev *e = s->top[i].ev;
        rows[i].min_cents = e->has_price ? e->price_min : 0;
        __builtin_prefetch(e->name);
        __builtin_prefetch(e->venue_name);
    }
}

int cat_ix_search(cat_ix *ix, const cat_query *q, const cat_ix_params *p, int64_t now_us,
                  cat_page *out)
{
    memset(out, 0, sizeof *out);
    search *s = malloc(sizeof *s); /* zeroed below, by the compound literal */
    int k = q->limit + 1, rc = 0;
    if (!s || !(s->top = malloc((size_t)k * sizeof *s->top))) {
        free(s);
        return ONS_ENOMEM;
    }
    *s =
        (search){.q = q, .p = p, .top = s->top, .k = k, .thr = (float)p->fuzzy_threshold_pct / 100};
    s->mode = q->has_cursor ? q->cur_match : q->q ? CAT_MATCH_TEXT : CAT_MATCH_NONE;

    pthread_rwlock_rdlock(&ix->lock);
    s->ix = ix;
    s->b = ix->base;
    if (q->has_cursor) { /* base ordinals are in event id order */
        size_t lo = 0, hi = s->b->n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (s->b->oid[mid] <= q->cur_id)
                lo = mid + 1;
            else
                hi = mid;
        }
        s->cur_ord = (uint32_t)lo;
        s->cur_pos = date_place_after(s);
    }
    /* Relevance: first the events with every word in their name; when they
     * fill the page nothing else can be on it (drive_names). */
    int names = s->mode == CAT_MATCH_TEXT && q->sort == CAT_SORT_RELEVANCE && !p->plain;
    s->names = names;
    rc = run(s);
    if (!rc && names && !(s->names && s->ntop == s->k && s->top[s->k - 1].rank == s->max_rank)) {
        s->names = 0;
        rc = run(s);
    }
    s->names = 0;
    if (!rc && s->mode == CAT_MATCH_TEXT && !q->has_cursor && s->ntop == 0) {
        s->mode = CAT_MATCH_FUZZY; /* nothing matched the words: typos */
        rc = run(s);
    }
    out->mode = s->mode;
    int n = s->ntop > q->limit ? q->limit : s->ntop;
    out->more = s->ntop > q->limit;
    if (!rc && n > 0 && !(out->rows = calloc((size_t)n, sizeof *out->rows)))
        rc = ONS_ENOMEM;
    if (!rc)
        prefetch_page(s, n, out->rows);
    for (int i = 0; !rc && i < n; i++)
        render(s, &s->top[i], now_us, i ? &out->rows[i - 1] : NULL, i ? s->top[i - 1].rank : 0,
               &out->rows[i]);
    out->n = rc ? 0 : (size_t)n;
    pthread_rwlock_unlock(&ix->lock);
    free(s->top);
    free(s);
    return rc;
}
