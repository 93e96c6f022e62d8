/* catalog_index.c - building the catalog index's base from the loader's
 * rows, its delta records, and the delta's upkeep under the lock; see
 * catalog_index.h. The search is catalog_index_query.c. */
#include "ingress/catalog_index_int.h"

#include "common/err.h"
#include "common/hash.h"
#include "common/vec.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const float cat_ix_weight[4] = {CAT_IX_W_D, CAT_IX_W_C, CAT_IX_W_B, CAT_IX_W_A};

#define CHUNK_BYTES (1u << 20)

/* ---- interned strings --------------------------------------------------------------- */

/* Open addressing over arena strings: one copy of each distinct string
 * (venue names, cities, categories and lexemes repeat across events). */
typedef struct strtab {
    const char **slot;
    uint32_t *id; /* insertion order of the string in slot */
    size_t cap, n;
} strtab;

static int strtab_grow(strtab *t)
{
    size_t ncap = t->cap ? t->cap * 2 : 1024;
    const char **ns = calloc(ncap, sizeof *ns);
    uint32_t *ni = calloc(ncap, sizeof *ni);
    if (!ns || !ni) {
        free(ns);
        free(ni);
        return ONS_ENOMEM;
    }
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slot[i])
            continue;
        size_t k = ons_hash64(0, t->slot[i], strlen(t->slot[i])) & (ncap - 1);
        while (ns[k])
            k = (k + 1) & (ncap - 1);
        ns[k] = t->slot[i];
        ni[k] = t->id[i];
    }
    free(t->slot);
    free(t->id);
    t->slot = ns;
    t->id = ni;
    t->cap = ncap;
    return 0;
}

/* The arena a builder and its base share. */
typedef struct arena {
    char **chunks;
    size_t nchunks, capchunks, used, bytes;
} arena;

/* Frees an arena's n chunks and their array: a builder's, or the base's
 * it moved to. */
static void chunks_free(char **chunks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(chunks[i]);
    free(chunks);
}

static char *arena_copy(arena *a, const char *s, size_t n)
{
    if (!a->nchunks || a->used + n + 1 > CHUNK_BYTES) {
        size_t sz = n + 1 > CHUNK_BYTES ? n + 1 : CHUNK_BYTES;
        if (ONS_VEC_RESERVE(a->chunks, a->capchunks, a->nchunks + 1, 64))
            return NULL;
        if (!(a->chunks[a->nchunks] = malloc(sz)))
            return NULL;
        a->nchunks++;
        a->used = 0;
        a->bytes += sz;
    }
    char *p = a->chunks[a->nchunks - 1] + a->used;
    memcpy(p, s, n);
    p[n] = '\0';
    a->used += n + 1;
    return p;
}

/* The interned copy of s[0..n) and its id (order of first sight). */
static const char *intern(strtab *t, arena *a, const char *s, size_t n, uint32_t *id)
{
    if ((t->n + 1) * 2 > t->cap && strtab_grow(t))
        return NULL;
    size_t k = ons_hash64(0, s, n) & (t->cap - 1);
    while (t->slot[k]) {
        if (strncmp(t->slot[k], s, n) == 0 && t->slot[k][n] == '\0') {
            if (id)
                *id = t->id[k];
            return t->slot[k];
        }
        k = (k + 1) & (t->cap - 1);
    }
    const char *c = arena_copy(a, s, n);
    if (!c)
        return NULL;
    t->slot[k] = c;
    t->id[k] = (uint32_t)t->n;
    if (id)
        *id = (uint32_t)t->n;
    t->n++;
    return c;
}

/* ---- tsvector text ------------------------------------------------------------------ */

/* One lexeme of tsvector output at *s: 'text' with '' and \\ doubled, then
 * optionally :positions, each with a weight letter (none: D). Writes the
 * unescaped text to out and returns its length, or -1. */
static long parse_lexeme(const char **s, char *out, int *weight)
{
    const char *p = *s;
    long n = 0;
    if (*p++ != '\'')
        return -1;
    for (;;) {
        if (!*p)
            return -1;
        if ((*p == '\'' && p[1] == '\'') || (*p == '\\' && p[1]))
            p++;
        else if (*p == '\'')
            break;
        out[n++] = *p++;
    }
    p++;
    *weight = 0;
    if (*p == ':') {
        for (p++; *p && *p != ' '; p++) {
            int w = *p == 'A' ? 3 : *p == 'B' ? 2 : *p == 'C' ? 1 : 0;
            if (w > *weight)
                *weight = w;
        }
    }
    *s = p;
    return n;
}

int cat_ix_parse_tsvector(const char *s, int (*add)(void *, const char *, size_t, int), void *arg)
{
    char *buf = malloc(strlen(s) + 1);
    if (!buf)
        return ONS_ENOMEM;
    int rc = 0;
    while (rc == 0 && *s) {
        if (*s == ' ') {
            s++;
            continue;
        }
        int w;
        long n = parse_lexeme(&s, buf, &w);
        rc = n <= 0 ? ONS_EPARSE : add(arg, buf, (size_t)n, w);
    }
    free(buf);
    return rc;
}

/* ---- the builder -------------------------------------------------------------------- */

/* An event while building: its terms are (first-sight id, weight) pairs at
 * tpairs[toff .. toff + nt). */
typedef struct bev {
    cat_ix_ev ev;
    size_t toff;
    uint32_t nt, venue_term;
} bev;

struct cat_ix_builder {
    arena a;
    strtab strs, terms;
    bev *evs;
    size_t n, cap;
    uint32_t *tpairs; /* term id << 2 | weight */
    size_t ntp, captp;
    size_t dense_min; /* 0: n / CAT_IX_DENSE_DIV */
};

void cat_ix_builder_dense_min(cat_ix_builder *b, size_t min)
{
    b->dense_min = min;
}

cat_ix_builder *cat_ix_builder_new(void)
{
    return calloc(1, sizeof(cat_ix_builder));
}

size_t cat_ix_builder_count(const cat_ix_builder *b)
{
    return b->n;
}

static int add_term(cat_ix_builder *b, const char *s, size_t n, int w, uint32_t *id_out)
{
    uint32_t id;
    if (!intern(&b->terms, &b->a, s, n, &id) ||
        ONS_VEC_RESERVE(b->tpairs, b->captp, b->ntp + 1, 4096))
        return ONS_ENOMEM;
    b->tpairs[b->ntp++] = id << 2 | (uint32_t)w;
    if (id_out)
        *id_out = id;
    return 0;
}

static int add_lexeme(void *arg, const char *s, size_t n, int w)
{
    return add_term(arg, s, n, w, NULL);
}

/* The pseudo-term "<kind><text>". */
static int add_pseudo(cat_ix_builder *b, char kind, const char *text, uint32_t *id)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "%c%s", kind, text);
    if (n < 0 || (size_t)n >= sizeof buf)
        n = (int)sizeof buf - 1;
    return add_term(b, buf, (size_t)n, 0, id);
}

/* An event's numbers from its row; its strings are the caller's to set
 * (interned in the base's arena, or copied into a delta record). */
static cat_ix_ev ev_numbers(const cat_ix_row *r)
{
    return (cat_ix_ev){.event_id = r->event_id,
                       .starts_us = r->starts_us,
                       .onsale_us = r->onsale_us,
                       .price_min = r->price_min,
                       .price_max = r->price_max,
                       .seq = r->seq,
                       .lat = r->lat,
                       .lon = r->lon,
                       .has_price = (uint8_t) !!r->has_price,
                       .has_pos = (uint8_t) !!r->has_pos};
}

static const char *istr(cat_ix_builder *b, const char *s)
{
    return intern(&b->strs, &b->a, s ? s : "", s ? strlen(s) : 0, NULL);
}

int cat_ix_builder_add(cat_ix_builder *b, const cat_ix_row *r)
{
    if (ONS_VEC_RESERVE(b->evs, b->cap, b->n + 1, 1024))
        return ONS_ENOMEM;
    bev *e = &b->evs[b->n];
    memset(e, 0, sizeof *e);
    cat_ix_ev *v = &e->ev;
    *v = ev_numbers(r);
    if (!(v->name = istr(b, r->name)) || !(v->category = istr(b, r->category)) ||
        !(v->city_key = istr(b, r->city_key)) || !(v->status = istr(b, r->status)) ||
        !(v->venue_name = istr(b, r->venue_name)) || !(v->city = istr(b, r->city)))
        return ONS_ENOMEM;
    e->toff = b->ntp;
    char vid[24];
    snprintf(vid, sizeof vid, "%" PRId64, r->venue_id);
    int rc = cat_ix_parse_tsvector(r->search ? r->search : "", add_lexeme, b);
    if (!rc)
        rc = add_pseudo(b, CAT_IX_T_CITY, v->city_key, NULL);
    if (!rc)
        rc = add_pseudo(b, CAT_IX_T_CATEGORY, v->category, NULL);
    if (!rc)
        rc = add_pseudo(b, CAT_IX_T_VENUE, vid, &e->venue_term);
    if (rc) {
        b->ntp = e->toff;
        return rc;
    }
    e->nt = (uint32_t)(b->ntp - e->toff);
    b->n++;
    return 0;
}

void cat_ix_builder_free(cat_ix_builder *b)
{
    if (!b)
        return;
    chunks_free(b->a.chunks, b->a.nchunks);
    free(b->strs.slot);
    free(b->strs.id);
    free(b->terms.slot);
    free(b->terms.id);
    free(b->evs);
    free(b->tpairs);
    free(b);
}

/* ---- the base ----------------------------------------------------------------------- */

static int cmp_bev(const void *x, const void *y)
{
    int64_t a = ((const bev *)x)->ev.event_id, b = ((const bev *)y)->ev.event_id;
    return (a > b) - (a < b);
}

typedef struct named {
    const char *s;
    uint32_t id;
} named;

static int cmp_named(const void *x, const void *y)
{
    return strcmp(((const named *)x)->s, ((const named *)y)->s);
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return (a > b) - (a < b);
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

/* The terms in byte order: base->terms, and remap[first-sight id] = id. */
static int sort_terms(cat_ix_builder *b, cat_ix_base *base, uint32_t **remap)
{
    size_t n = b->terms.n;
    named *all = malloc((n ? n : 1) * sizeof *all);
    base->terms = malloc((n ? n : 1) * sizeof *base->terms);
    *remap = malloc((n ? n : 1) * sizeof **remap);
    if (!all || !base->terms || !*remap) {
        free(all);
        return ONS_ENOMEM;
    }
    for (size_t i = 0, k = 0; i < b->terms.cap; i++)
        if (b->terms.slot[i])
            all[k++] = (named){b->terms.slot[i], b->terms.id[i]};
    cat_ix_sort(all, n, sizeof *all, cmp_named);
    for (size_t i = 0; i < n; i++) {
        base->terms[i] = all[i].s;
        (*remap)[all[i].id] = (uint32_t)i;
    }
    base->nterms = n;
    free(all);
    return 0;
}

/* Each event's forward list: its terms' ids ascending, one entry per term
 * with its best weight. */
static int build_forward(cat_ix_builder *b, cat_ix_base *base, const uint32_t *remap)
{
    base->fwd_off = malloc((b->n + 1) * sizeof *base->fwd_off);
    base->fwd = malloc((b->ntp ? b->ntp : 1) * sizeof *base->fwd);
    base->ev = malloc((b->n ? b->n : 1) * sizeof *base->ev);
    if (!base->fwd_off || !base->fwd || !base->ev)
        return ONS_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        const bev *e = &b->evs[i];
        base->ev[i] = e->ev;
        base->fwd_off[i] = (uint32_t)k;
        uint32_t *f = &base->fwd[k];
        for (uint32_t j = 0; j < e->nt; j++) {
            uint32_t p = b->tpairs[e->toff + j];
            f[j] = remap[p >> 2] << 2 | (p & 3);
        }
        cat_ix_sort(f, e->nt, sizeof *f, cmp_u32); /* by id, then weight */
        size_t m = 0;
        for (uint32_t j = 0; j < e->nt; j++) {
            if (m && f[m - 1] >> 2 == f[j] >> 2)
                f[m - 1] = f[j]; /* the larger weight sorts last */
            else
                f[m++] = f[j];
        }
        k += m;
    }
    base->fwd_off[b->n] = (uint32_t)k;
    base->n = b->n;
    return 0;
}

/* Name lists: per term, the postings of weight class A (the name's). */
static int build_names(cat_ix_base *base)
{
    size_t nt = base->nterms, nf = base->post_off[nt], nn = 0;
    for (size_t j = 0; j < nf; j++)
        nn += base->post_w[j] == 3;
    base->name_off = malloc((nt + 1) * sizeof *base->name_off);
    base->name_post = malloc((nn ? nn : 1) * sizeof *base->name_post);
    if (!base->name_off || !base->name_post)
        return ONS_ENOMEM;
    size_t k = 0;
    for (size_t t = 0; t < nt; t++) {
        base->name_off[t] = (uint32_t)k;
        for (uint32_t j = base->post_off[t]; j < base->post_off[t + 1]; j++)
            if (base->post_w[j] == 3)
                base->name_post[k++] = base->post[j];
    }
    base->name_off[nt] = (uint32_t)k;
    return 0;
}

/* Posting lists: every term's ordinals, ascending (filled in ordinal order),
 * and the name lists among them. */
static int build_postings(cat_ix_base *base)
{
    size_t nt = base->nterms, nf = base->fwd_off[base->n];
    base->post_off = calloc(nt + 1, sizeof *base->post_off);
    base->post = malloc((nf ? nf : 1) * sizeof *base->post);
    base->post_w = malloc(nf ? nf : 1);
    base->in_name = calloc(nt ? nt : 1, 1);
    uint32_t *fill = malloc((nt ? nt : 1) * sizeof *fill);
    if (!base->post_off || !base->post || !base->post_w || !base->in_name || !fill) {
        free(fill);
        return ONS_ENOMEM;
    }
    for (size_t i = 0; i < nf; i++)
        base->post_off[(base->fwd[i] >> 2) + 1]++;
    for (size_t t = 0; t < nt; t++)
        base->post_off[t + 1] += base->post_off[t];
    memcpy(fill, base->post_off, nt * sizeof *fill);
    for (uint32_t i = 0; i < base->n; i++) {
        for (uint32_t k = base->fwd_off[i]; k < base->fwd_off[i + 1]; k++) {
            uint32_t at = fill[base->fwd[k] >> 2]++;
            base->post[at] = i;
            base->post_w[at] = (uint8_t)(base->fwd[k] & 3);
            base->in_name[base->fwd[k] >> 2] |= (base->fwd[k] & 3) == 3;
        }
    }
    free(fill);
    return build_names(base);
}

typedef struct keyed {
    int64_t k1, k2;
    uint32_t ord;
} keyed;

static int cmp_keyed(const void *x, const void *y)
{
    const keyed *a = x, *b = y;
    if (a->k1 != b->k1)
        return a->k1 < b->k1 ? -1 : 1;
    return (a->k2 > b->k2) - (a->k2 < b->k2);
}

/* Event ids ascending with their ordinals (the delta's overrides find an
 * event's base copy), the date order, and the events with a price by
 * (price_min, event_id). */
static int build_orders(cat_ix_base *base)
{
    size_t n = base->n, np = 0;
    keyed *k = malloc((n ? n : 1) * sizeof *k);
    base->ids = malloc((n ? n : 1) * sizeof *base->ids);
    base->id_ord = malloc((n ? n : 1) * sizeof *base->id_ord);
    base->price_ord = malloc((n ? n : 1) * sizeof *base->price_ord);
    base->oid = malloc((n ? n : 1) * sizeof *base->oid);
    base->date_ord = malloc((n ? n : 1) * sizeof *base->date_ord);
    base->date_pos = malloc((n ? n : 1) * sizeof *base->date_pos);
    if (!k || !base->ids || !base->id_ord || !base->price_ord || !base->oid || !base->date_ord ||
        !base->date_pos) {
        free(k);
        return ONS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        k[i] = (keyed){base->ev[i].event_id, 0, (uint32_t)i};
        base->oid[i] = base->ev[i].event_id;
    }
    cat_ix_sort(k, n, sizeof *k, cmp_keyed);
    for (size_t i = 0; i < n; i++) {
        base->ids[i] = k[i].k1;
        base->id_ord[i] = k[i].ord;
    }
    for (size_t i = 0; i < n; i++)
        k[i] = (keyed){base->ev[i].starts_us, base->ev[i].event_id, (uint32_t)i};
    cat_ix_sort(k, n, sizeof *k, cmp_keyed);
    for (size_t i = 0; i < n; i++) {
        base->date_ord[i] = k[i].ord;
        base->date_pos[k[i].ord] = (uint32_t)i;
    }
    for (size_t i = 0; i < n; i++)
        if (base->ev[i].has_price)
            k[np++] = (keyed){base->ev[i].price_min, base->ev[i].event_id, (uint32_t)i};
    cat_ix_sort(k, np, sizeof *k, cmp_keyed);
    for (size_t i = 0; i < np; i++)
        base->price_ord[i] = k[i].ord;
    base->nprice = np;
    free(k);
    return 0;
}

/* The venues with a position, each once: the distance filter's candidates. */
static int build_venues(cat_ix_builder *b, cat_ix_base *base, const uint32_t *remap)
{
    uint8_t *seen = calloc(base->nterms ? base->nterms : 1, 1);
    base->venues = malloc((b->n ? b->n : 1) * sizeof *base->venues);
    if (!seen || !base->venues) {
        free(seen);
        return ONS_ENOMEM;
    }
    for (size_t i = 0; i < b->n; i++) {
        uint32_t t = remap[b->evs[i].venue_term];
        if (!b->evs[i].ev.has_pos || seen[t])
            continue;
        seen[t] = 1;
        base->venues[base->nvenues++] = (cat_ix_venue){b->evs[i].ev.lat, b->evs[i].ev.lon, t};
    }
    free(seen);
    return 0;
}

/* The lexicon's trigrams: trigram -> the words (lexemes, no pseudo-terms)
 * holding it, for typos. */
static int build_trigrams(cat_ix_base *base)
{
    size_t cap = 0, n = 0;
    uint64_t *pairs = NULL;
    uint32_t tri[1024];
    for (size_t t = 0; t < base->nterms; t++) {
        const char *w = base->terms[t];
        if ((unsigned char)w[0] <= (unsigned char)CAT_IX_T_VENUE || strlen(w) > 1000)
            continue;
        size_t k = cat_ix_trigrams(w, tri);
        if (ONS_VEC_RESERVE(pairs, cap, n + k, 65536)) {
            free(pairs);
            return ONS_ENOMEM;
        }
        for (size_t j = 0; j < k; j++)
            pairs[n++] = (uint64_t)tri[j] << 32 | t;
    }
    cat_ix_sort(pairs, n, sizeof *pairs, cmp_u64);
    base->tri_key = malloc((n ? n : 1) * sizeof *base->tri_key);
    base->tri_off = malloc((n + 1) * sizeof *base->tri_off);
    base->tri_words = malloc((n ? n : 1) * sizeof *base->tri_words);
    if (!base->tri_key || !base->tri_off || !base->tri_words) {
        free(pairs);
        return ONS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t key = (uint32_t)(pairs[i] >> 32);
        if (!base->ntri || base->tri_key[base->ntri - 1] != key) {
            base->tri_key[base->ntri] = key;
            base->tri_off[base->ntri++] = (uint32_t)i;
        }
        base->tri_words[i] = (uint32_t)pairs[i];
    }
    base->tri_off[base->ntri] = (uint32_t)n;
    free(pairs);
    return 0;
}

/* The dense terms' bitmaps and the pseudo-terms' date places (after the
 * postings and the date order). */
static int build_dense(cat_ix_base *base, size_t dense_min)
{
    size_t nt = base->nterms, min = dense_min ? dense_min : base->n / CAT_IX_DENSE_DIV;
    base->words = base->n / 64 + 1;
    base->dense_of = malloc((nt ? nt : 1) * sizeof *base->dense_of);
    if (!base->dense_of)
        return ONS_ENOMEM;
    for (size_t t = 0; t < nt; t++) {
        size_t size = base->post_off[t + 1] - base->post_off[t];
        base->dense_of[t] = size >= min && size > 0 ? (uint32_t)base->ndense++ : UINT32_MAX;
    }
    base->dense = calloc(base->ndense ? base->ndense * base->words : 1, sizeof *base->dense);
    while (base->npseudo < nt &&
           (unsigned char)base->terms[base->npseudo][0] <= (unsigned char)CAT_IX_T_VENUE)
        base->npseudo++;
    size_t np = base->post_off[base->npseudo];
    base->dpost = malloc((np ? np : 1) * sizeof *base->dpost);
    if (!base->dense || !base->dpost)
        return ONS_ENOMEM;
    for (size_t t = 0; t < nt; t++) {
        if (base->dense_of[t] == UINT32_MAX)
            continue;
        uint64_t *bits = base->dense + base->dense_of[t] * base->words;
        for (uint32_t j = base->post_off[t]; j < base->post_off[t + 1]; j++)
            bits[base->post[j] / 64] |= UINT64_C(1) << (base->post[j] % 64);
    }
    for (size_t j = 0; j < np; j++)
        base->dpost[j] = base->date_pos[base->post[j]];
    for (size_t t = 0; t < base->npseudo; t++)
        cat_ix_sort(base->dpost + base->post_off[t], base->post_off[t + 1] - base->post_off[t],
                    sizeof *base->dpost, cmp_u32);
    return 0;
}

static size_t base_bytes(const cat_ix_base *b, size_t arena_bytes)
{
    return arena_bytes + b->n * (sizeof *b->ev + 2 * sizeof *b->ids + 4 * sizeof(uint32_t)) +
           b->fwd_off[b->n] * sizeof *b->post_w + (b->n + 1) * sizeof(uint32_t) +
           b->fwd_off[b->n] * 2 * sizeof(uint32_t) +
           b->nterms * (sizeof *b->terms + sizeof(uint32_t)) + b->nprice * sizeof(uint32_t) +
           b->nvenues * sizeof *b->venues + b->ntri * 2 * sizeof(uint32_t) +
           b->tri_off[b->ntri] * sizeof(uint32_t) + b->nterms * sizeof(uint32_t) +
           b->ndense * b->words * sizeof(uint64_t) + b->post_off[b->npseudo] * sizeof(uint32_t) +
           (b->nterms + 1 + b->name_off[b->nterms]) * sizeof(uint32_t);
}

cat_ix_base *cat_ix_builder_finish(cat_ix_builder *b)
{
    cat_ix_base *base = calloc(1, sizeof *base);
    uint32_t *remap = NULL;
    if (!base)
        goto fail;
    cat_ix_sort(b->evs, b->n, sizeof *b->evs, cmp_bev); /* ordinals: the event id order */
    if (sort_terms(b, base, &remap) || build_forward(b, base, remap) || build_postings(base) ||
        build_orders(base) || build_venues(b, base, remap) || build_trigrams(base) ||
        build_dense(base, b->dense_min))
        goto fail;
    free(remap);
    base->chunks = b->a.chunks; /* the arena moves to the base */
    base->nchunks = b->a.nchunks;
    base->bytes = base_bytes(base, b->a.bytes);
    b->a.chunks = NULL;
    b->a.nchunks = 0;
    cat_ix_builder_free(b);
    return base;
fail:
    free(remap);
    cat_ix_base_free(base);
    cat_ix_builder_free(b);
    return NULL;
}

void cat_ix_base_free(cat_ix_base *b)
{
    if (!b)
        return;
    chunks_free(b->chunks, b->nchunks);
    free(b->ev);
    free(b->ids);
    free(b->id_ord);
    free(b->fwd_off);
    free(b->fwd);
    free(b->terms);
    free(b->post_off);
    free(b->post);
    free(b->post_w);
    free(b->in_name);
    free(b->name_off);
    free(b->name_post);
    free(b->dense_of);
    free(b->dense);
    free(b->dpost);
    free(b->oid);
    free(b->date_ord);
    free(b->date_pos);
    free(b->price_ord);
    free(b->venues);
    free(b->tri_key);
    free(b->tri_off);
    free(b->tri_words);
    free(b);
}

size_t cat_ix_base_count(const cat_ix_base *b)
{
    return b->n;
}

size_t cat_ix_base_bytes(const cat_ix_base *b)
{
    return b->bytes;
}

int64_t cat_ix_base_find(const cat_ix_base *b, int64_t event_id)
{
    size_t lo = 0, hi = b->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (b->ids[mid] < event_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < b->n && b->ids[lo] == event_id ? (int64_t)b->id_ord[lo] : -1;
}

/* The first term id whose text is not below s. */
static uint32_t term_lower(const cat_ix_base *b, const char *s)
{
    size_t lo = 0, hi = b->nterms;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(b->terms[mid], s) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (uint32_t)lo;
}

int64_t cat_ix_term_find(const cat_ix_base *b, const char *s)
{
    uint32_t t = term_lower(b, s);
    return t < b->nterms && strcmp(b->terms[t], s) == 0 ? (int64_t)t : -1;
}

void cat_ix_prefix_range(const cat_ix_base *b, const char *prefix, uint32_t *lo, uint32_t *hi)
{
    size_t n = strlen(prefix);
    *lo = term_lower(b, prefix);
    size_t a = *lo, z = b->nterms;
    while (a < z) { /* the first term past lo that prefix does not begin */
        size_t mid = (a + z) / 2;
        if (strncmp(b->terms[mid], prefix, n) == 0)
            a = mid + 1;
        else
            z = mid;
    }
    *hi = (uint32_t)a;
}

/* ---- words -------------------------------------------------------------------------- */

void cat_ix_fold(const char *w, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)w[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        else if (c == 0xc3 && i + 1 < n) {
            /* U+00C0..U+00DE but U+00D7 (x): their small letters are +0x20. */
            unsigned char d = (unsigned char)w[i + 1];
            out[i++] = (char)c;
            c = (unsigned char)(d >= 0x80 && d <= 0x9e && d != 0x97 ? d + 0x20 : d);
        }
        out[i] = (char)c;
    }
    out[n] = '\0';
}

size_t cat_ix_trigrams(const char *w, uint32_t *out)
{
    size_t n = strlen(w), k = 0;
    for (size_t i = 0; i + 1 < n + 2; i++) {
        /* The padded word "  w " at i .. i + 2. */
        unsigned char c[3];
        for (int j = 0; j < 3; j++) {
            size_t at = i + (size_t)j;
            c[j] = at < 2 ? ' ' : at - 2 < n ? (unsigned char)w[at - 2] : ' ';
        }
        out[k++] = (uint32_t)c[0] << 16 | (uint32_t)c[1] << 8 | c[2];
    }
    cat_ix_sort(out, k, sizeof *out, cmp_u32);
    size_t m = 0;
    for (size_t i = 0; i < k; i++)
        if (!m || out[m - 1] != out[i])
            out[m++] = out[i];
    return m;
}

float cat_ix_similarity(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (na > 1000 || nb > 1000)
        return 0;
    uint32_t ta[1003], tb[1003];
    size_t ka = cat_ix_trigrams(a, ta), kb = cat_ix_trigrams(b, tb), common = 0;
    for (size_t i = 0, j = 0; i < ka && j < kb;) {
        if (ta[i] == tb[j])
            common++, i++, j++;
        else if (ta[i] < tb[j])
            i++;
        else
            j++;
    }
    return ka ? (float)common / (float)ka : 0;
}

/* ---- delta records ------------------------------------------------------------------ */

/* A record's terms while it is built: strings copied into text. */
typedef struct rec_terms {
    char *text;
    size_t len, cap;
    struct rterm {
        size_t off;
        int w;
    } * t;
    size_t n, capt;
} rec_terms;

static int rec_add(void *arg, const char *s, size_t n, int w)
{
    rec_terms *rt = arg;
    if (ONS_VEC_RESERVE(rt->text, rt->cap, rt->len + n + 1, 256) ||
        ONS_VEC_RESERVE(rt->t, rt->capt, rt->n + 1, 16))
        return ONS_ENOMEM;
    memcpy(rt->text + rt->len, s, n);
    rt->text[rt->len + n] = '\0';
    rt->t[rt->n++] = (struct rterm){rt->len, w};
    rt->len += n + 1;
    return 0;
}

static int rec_pseudo(rec_terms *rt, char kind, const char *text)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf, "%c%s", kind, text ? text : "");
    if (n < 0 || (size_t)n >= sizeof buf)
        n = (int)sizeof buf - 1;
    return rec_add(rt, buf, (size_t)n, 0);
}

static int cmp_rterm(const void *x, const void *y, void *text)
{
    const struct rterm *a = x, *b = y;
    int c = strcmp((const char *)text + a->off, (const char *)text + b->off);
    return c ? c : (a->w > b->w) - (a->w < b->w);
}

/* Copies s into the block at *p. */
static const char *put(char **p, const char *s)
{
    size_t n = strlen(s ? s : "") + 1;
    memcpy(*p, s ? s : "", n);
    const char *r = *p;
    *p += n;
    return r;
}

/* The record's allocation: struct, term pointers, weights, then strings. */
static cat_ix_rec *rec_alloc(const cat_ix_row *r, const rec_terms *rt, size_t m, char **strs)
{
    const char *f[] = {r->name, r->category, r->city_key, r->status, r->venue_name, r->city};
    size_t sz = sizeof(cat_ix_rec) + m * (sizeof(char *) + 1) + rt->len;
    for (size_t i = 0; i < sizeof f / sizeof *f; i++)
        sz += strlen(f[i] ? f[i] : "") + 1;
    cat_ix_rec *rec = calloc(1, sz);
    if (!rec)
        return NULL;
    rec->terms = (const char **)(rec + 1);
    rec->weights = (uint8_t *)(rec->terms + m);
    *strs = (char *)(rec->weights + m);
    cat_ix_ev *v = &rec->ev;
    *v = ev_numbers(r);
    v->name = put(strs, r->name);
    v->category = put(strs, r->category);
    v->city_key = put(strs, r->city_key);
    v->status = put(strs, r->status);
    v->venue_name = put(strs, r->venue_name);
    v->city = put(strs, r->city);
    return rec;
}

cat_ix_rec *cat_ix_rec_new(const cat_ix_row *r, int *err)
{
    rec_terms rt = {0};
    char vid[24];
    snprintf(vid, sizeof vid, "%" PRId64, r->venue_id);
    *err = cat_ix_parse_tsvector(r->search ? r->search : "", rec_add, &rt);
    if (!*err && !(*err = rec_pseudo(&rt, CAT_IX_T_CITY, r->city_key)) &&
        !(*err = rec_pseudo(&rt, CAT_IX_T_CATEGORY, r->category)))
        *err = rec_pseudo(&rt, CAT_IX_T_VENUE, vid);
    cat_ix_rec *rec = NULL;
    if (!*err) {
        qsort_r(rt.t, rt.n, sizeof *rt.t, cmp_rterm, rt.text);
        size_t m = 0; /* one entry per term, the best weight (sorted last) */
        for (size_t i = 0; i < rt.n; i++) {
            if (m && strcmp(rt.text + rt.t[m - 1].off, rt.text + rt.t[i].off) == 0)
                rt.t[m - 1] = rt.t[i];
            else
                rt.t[m++] = rt.t[i];
        }
        char *strs;
        if (!(rec = rec_alloc(r, &rt, m, &strs)))
            *err = ONS_ENOMEM;
        for (size_t i = 0; rec && i < m; i++) {
            rec->terms[i] = put(&strs, rt.text + rt.t[i].off);
            rec->weights[i] = (uint8_t)rt.t[i].w;
        }
        if (rec)
            rec->nterms = m;
    }
    free(rt.text);
    free(rt.t);
    return rec;
}

void cat_ix_rec_free(cat_ix_rec *r)
{
    free(r);
}

/* ---- the index: base + delta -------------------------------------------------------- */

cat_ix *cat_ix_new(cat_ix_base *base)
{
    cat_ix *ix = calloc(1, sizeof *ix);
    if (!ix || !(ix->overridden = calloc(base->n / 64 + 1, sizeof *ix->overridden))) {
        free(ix);
        return NULL;
    }
    pthread_rwlockattr_t at;
    pthread_rwlockattr_init(&at);
    /* The refresher must not wait behind a stream of searches. */
    pthread_rwlockattr_setkind_np(&at, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&ix->lock, &at);
    pthread_rwlockattr_destroy(&at);
    ix->base = base;
    return ix;
}

void cat_ix_free(cat_ix *ix)
{
    if (!ix)
        return;
    for (size_t i = 0; i < ix->ndelta; i++)
        cat_ix_rec_free(ix->delta[i]);
    free(ix->delta);
    free(ix->overridden);
    cat_ix_base_free(ix->base);
    pthread_rwlock_destroy(&ix->lock);
    free(ix);
}

/* The delta slot of event_id: where it is or would be inserted. */
static size_t delta_pos(const cat_ix *ix, int64_t event_id)
{
    size_t lo = 0, hi = ix->ndelta;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ix->delta[mid]->ev.event_id < event_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Links rec into the delta (write lock held). 1: applied, 0: older than
 * the copy held (rec freed), or ONS_ENOMEM. */
static int delta_put(cat_ix *ix, cat_ix_rec *rec)
{
    int64_t id = rec->ev.event_id, ord = cat_ix_base_find(ix->base, id);
    size_t at = delta_pos(ix, id);
    int here = at < ix->ndelta && ix->delta[at]->ev.event_id == id;
    int64_t held = here ? ix->delta[at]->ev.seq : ord >= 0 ? ix->base->ev[ord].seq : -1;
    if (rec->ev.seq <= held) {
        cat_ix_rec_free(rec);
        return 0;
    }
    if (here) {
        cat_ix_rec_free(ix->delta[at]);
        ix->delta[at] = rec;
        return 1;
    }
    if (ONS_VEC_RESERVE(ix->delta, ix->capdelta, ix->ndelta + 1, 64))
        return ONS_ENOMEM;
    memmove(&ix->delta[at + 1], &ix->delta[at], (ix->ndelta - at) * sizeof *ix->delta);
    ix->delta[at] = rec;
    ix->ndelta++;
    if (ord >= 0)
        ix->overridden[ord / 64] |= UINT64_C(1) << (ord % 64);
    return 1;
}

int cat_ix_apply(cat_ix *ix, const cat_ix_row *rows, size_t n)
{
    cat_ix_rec **recs = calloc(n ? n : 1, sizeof *recs);
    int rc = recs ? 0 : ONS_ENOMEM, applied = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (!(recs[i] = cat_ix_rec_new(&rows[i], &rc)) && !rc)
            rc = ONS_ENOMEM;
    if (rc == 0) {
        pthread_rwlock_wrlock(&ix->lock);
        for (size_t i = 0; i < n; i++) {
            int r = delta_put(ix, recs[i]);
            if (r < 0) { /* out of memory: this record is lost, the next poll retries */
                cat_ix_rec_free(recs[i]);
                rc = r;
            } else {
                applied += r;
            }
            recs[i] = NULL;
        }
        pthread_rwlock_unlock(&ix->lock);
    }
    for (size_t i = 0; recs && i < n; i++)
        cat_ix_rec_free(recs[i]);
    free(recs);
    return rc ? rc : applied;
}

size_t cat_ix_delta_count(cat_ix *ix)
{
    pthread_rwlock_rdlock(&ix->lock);
    size_t n = ix->ndelta;
    pthread_rwlock_unlock(&ix->lock);
    return n;
}

size_t cat_ix_count(cat_ix *ix)
{
    pthread_rwlock_rdlock(&ix->lock);
    size_t n = ix->base->n;
    for (size_t i = 0; i < ix->ndelta; i++)
        n += cat_ix_base_find(ix->base, ix->delta[i]->ev.event_id) < 0;
    pthread_rwlock_unlock(&ix->lock);
    return n;
}

void cat_ix_swap_base(cat_ix *ix, cat_ix_base *nb)
{
    uint64_t *bits = calloc(nb->n / 64 + 1, sizeof *bits);
    pthread_rwlock_wrlock(&ix->lock);
    cat_ix_base *old = ix->base;
    if (!bits) { /* keep the old base: correct, only larger */
        pthread_rwlock_unlock(&ix->lock);
        cat_ix_base_free(nb);
        return;
    }
    free(ix->overridden);
    ix->overridden = bits;
    ix->base = nb;
    size_t m = 0;
    for (size_t i = 0; i < ix->ndelta; i++) {
        cat_ix_rec *r = ix->delta[i];
        int64_t ord = cat_ix_base_find(nb, r->ev.event_id);
        if (ord >= 0 && nb->ev[ord].seq >= r->ev.seq) {
            cat_ix_rec_free(r);
            continue;
        }
        if (ord >= 0)
            bits[ord / 64] |= UINT64_C(1) << (ord % 64);
        ix->delta[m++] = r;
    }
    ix->ndelta = m;
    pthread_rwlock_unlock(&ix->lock);
    cat_ix_base_free(old);
}
