/*
 * catalog_index_int.h - the catalog index's inner layout, shared by its
 * build (catalog_index.c) and its search (catalog_index_query.c) only.
 * See catalog_index.h for the design.
 */
#ifndef ONSALE_INGRESS_CATALOG_INDEX_INT_H
#define ONSALE_INGRESS_CATALOG_INDEX_INT_H

#include "ingress/catalog_index.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdint.h>

/* A term with at least n / CAT_IX_DENSE_DIV postings (1.6% of the
 * events) also gets a bitmap of its events: n / 8 bytes, at most twice
 * what its ordinals take, and a clause of it is checked by one bit, or 64
 * events per word when intersected. */
#define CAT_IX_DENSE_DIV 64

/* Pseudo-terms: the first byte says which, below every lexeme's first
 * byte (a lexeme of the 'simple' parser never holds control characters),
 * so no prefix of q's last word reaches them. */
#define CAT_IX_T_CITY     '\x01'
#define CAT_IX_T_CATEGORY '\x02'
#define CAT_IX_T_VENUE    '\x03'

/* qsort, but for fewer than two elements (whose array may be NULL: an
 * empty catalog) nothing. */
static inline void cat_ix_sort(void *base, size_t n, size_t size,
                               int (*cmp)(const void *, const void *))
{
    if (n > 1)
        qsort(base, n, size, cmp);
}

/* Weight classes, the tsvector's letters: D (0) .. A (3). */
extern const float cat_ix_weight[4];

/* What an event shows and is filtered and sorted on. Strings point into the
 * base's arena or a delta record's own block. */
typedef struct cat_ix_ev {
    int64_t event_id, starts_us, onsale_us, price_min, price_max, seq;
    double lat, lon;
    const char *name, *category, *city_key, *status, *venue_name, *city;
    uint8_t has_price, has_pos;
} cat_ix_ev;

/* A delta record: one changed or new event with its terms, sorted by
 * strcmp, in one allocation. */
typedef struct cat_ix_rec {
    cat_ix_ev ev;
    size_t nterms;
    const char **terms;
    uint8_t *weights; /* weight class per term */
} cat_ix_rec;

typedef struct cat_ix_venue {
    double lat, lon;
    uint32_t term; /* its pseudo-term's id */
} cat_ix_venue;

struct cat_ix_base {
    size_t n;
    cat_ix_ev *ev;     /* by ordinal: event_id ascending (a rank's ties need no lookup) */
    int64_t *ids;      /* event ids ascending ... */
    uint32_t *id_ord;  /* ... and their ordinals */
    uint32_t *fwd_off; /* n + 1: event i's terms are fwd[fwd_off[i] .. fwd_off[i+1]) */
    uint32_t *fwd;     /* term id << 2 | weight class, ascending */
    size_t nterms;
    const char **terms; /* by id, byte order */
    uint32_t *post_off; /* nterms + 1 */
    uint32_t *post;     /* ordinals, ascending per term ... */
    uint8_t *post_w;    /* ... and the term's weight class in that event */
    uint8_t *in_name;   /* per term: 1 when some event's name holds it (typos look there) */
    /* Per term, the ordinals (ascending) of the events whose name holds it
     * (weight class A): a relevance page's best possible rank is every
     * word in the name, and these lists find those events without valuing
     * the others (catalog_index_query.c, drive_names). */
    uint32_t *name_off; /* nterms + 1 */
    uint32_t *name_post;
    /* Dense terms (postings >= n / CAT_IX_DENSE_DIV) also as a bitmap of
     * their events: a bit per ordinal, words each. dense_of: per term, its
     * bitmap's index, or UINT32_MAX. */
    uint32_t *dense_of;
    uint64_t *dense;
    size_t ndense, words;
    /* The pseudo-terms (city, category, venue: ids [0, npseudo), below
     * every lexeme) again as their events' places in the date order,
     * ascending per term, at the same offsets as post: a date-sorted page
     * of these filters reads them in page order. */
    size_t npseudo;
    uint32_t *dpost;
    int64_t *oid;        /* event id by ordinal (compact: ties of a rank read it) */
    uint32_t *date_ord;  /* ordinals by (starts_us, event_id) ... */
    uint32_t *date_pos;  /* ... and each ordinal's place there: a date key in 4 bytes */
    uint32_t *price_ord; /* ordinals with a price, by (price_min, event_id) */
    size_t nprice;
    cat_ix_venue *venues; /* venues with a position */
    size_t nvenues;
    uint32_t *tri_key; /* trigrams ascending ... */
    uint32_t *tri_off; /* ntri + 1: ... and their words tri_words[tri_off[k] ..) */
    uint32_t *tri_words;
    size_t ntri;
    char **chunks; /* the string arena */
    size_t nchunks;
    size_t bytes;
};

struct cat_ix {
    pthread_rwlock_t lock;
    cat_ix_base *base;
    uint64_t *overridden; /* bit per base ordinal: its event is in the delta */
    cat_ix_rec **delta;   /* by event id ascending */
    size_t ndelta, capdelta;
};

/* The ordinal of event id in base, or -1. */
int64_t cat_ix_base_find(const cat_ix_base *b, int64_t event_id);
/* The term id of s, or -1. */
int64_t cat_ix_term_find(const cat_ix_base *b, const char *s);
/* Parses tsvector text into (lexeme, weight class) pairs, calling add for
 * each with the unescaped lexeme. 0 or ONS_EPARSE / add's error. */
int cat_ix_parse_tsvector(const char *s, int (*add)(void *, const char *, size_t, int), void *arg);
/* A delta record built from r. NULL: out of memory or bad search text. */
cat_ix_rec *cat_ix_rec_new(const cat_ix_row *r, int *err);
void cat_ix_rec_free(cat_ix_rec *r);

#endif
