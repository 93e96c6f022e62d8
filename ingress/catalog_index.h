/*
 * catalog_index.h - the catalog search answered from memory (docs/search.md
 * "The index in each node"): every event's search document, filters, sort
 * keys and rendered fields, and an inverted index over them, so that a
 * search costs tens of microseconds of one core instead of a GIN query.
 *
 * Shape. A base, built once from all events (cat_ix_builder) and immutable
 * after, plus a small delta of events changed since (cat_ix_apply), which
 * override their base copy. cat_ix holds both behind a rwlock: searches
 * read under the read lock; the refresher (catalog_index_store.c) takes the
 * write lock only to insert the already-built delta records and to swap in
 * a rebuilt base, so no search sees half an update.
 *
 * Base layout. Events are numbered by their date order (starts_at,
 * event_id): ordinal i is the i-th; so any list of ordinals in ascending
 * order is also in date order, and a date-sorted page stops early. Terms
 * (the lexemes of the documents, plus pseudo-terms for the city key, the
 * category and the venue, which sort before every lexeme) are numbered in
 * byte order, so a prefix is a range of term ids. Each term has a posting
 * list of ordinals (ascending); each event has its term ids with their best
 * weight (its forward list), which checks a candidate against the other
 * words without intersecting posting lists. Strings live in one arena.
 *
 * The same cat_query (catalog_store.h) as the database path: parsing,
 * validation and cursors are shared, and a page is the same cat_page.
 * Nothing here touches PostgreSQL.
 */
#ifndef ONSALE_INGRESS_CATALOG_INDEX_H
#define ONSALE_INGRESS_CATALOG_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "ingress/catalog_store.h"

/* One event as the loader reads it. Strings are borrowed for the call.
 * search is the text output of the events.search tsvector ('lex':1A,2 ...). */
typedef struct cat_ix_row {
    int64_t event_id, venue_id, seq;
    const char *name, *category, *city_key, *status, *search, *venue_name, *city;
    int64_t starts_us, onsale_us, price_min, price_max;
    int has_price, has_pos;
    double lat, lon;
} cat_ix_row;

/* The weights of a document's fields, as ts_rank's defaults: the rank of an
 * event is the sum, over q's words, of the weight of the best field the
 * word (or, for the last word, a lexeme it begins) is found in. */
#define CAT_IX_W_A 1.0f /* name */
#define CAT_IX_W_B 0.4f /* category, venue name */
#define CAT_IX_W_C 0.2f /* city */
#define CAT_IX_W_D 0.1f /* description */

typedef struct cat_ix_base cat_ix_base;
typedef struct cat_ix_builder cat_ix_builder;
typedef struct cat_ix cat_ix;

cat_ix_builder *cat_ix_builder_new(void);
/* Adds r (copied). 0, ONS_EPARSE (search is not tsvector text) or ONS_ENOMEM. */
int cat_ix_builder_add(cat_ix_builder *b, const cat_ix_row *r);
size_t cat_ix_builder_count(const cat_ix_builder *b);
/* Terms with at least min postings get a bitmap of their events (0, the
 * default: a 64th of the events; catalog_index_int.h). For the tests, which
 * run their small catalogs both ways. */
void cat_ix_builder_dense_min(cat_ix_builder *b, size_t min);
/* The base of everything added; frees b either way. NULL: out of memory. */
cat_ix_base *cat_ix_builder_finish(cat_ix_builder *b);
void cat_ix_builder_free(cat_ix_builder *b);
void cat_ix_base_free(cat_ix_base *base);
size_t cat_ix_base_count(const cat_ix_base *base);
/* Bytes the base holds (arena, arrays): what the index costs in memory. */
size_t cat_ix_base_bytes(const cat_ix_base *base);

/* An index over base (taken over). NULL: out of memory. */
cat_ix *cat_ix_new(cat_ix_base *base);
void cat_ix_free(cat_ix *ix);

/* Inserts rows into the delta: each replaces the event's older copy (the
 * base's or the delta's); a row whose seq is not above the copy's is
 * skipped (the poller re-reads a window). Returns the rows applied, or
 * -ONS_EPARSE / -ONS_ENOMEM (nothing applied). Holds the write lock only
 * while linking the prepared records. */
int cat_ix_apply(cat_ix *ix, const cat_ix_row *rows, size_t n);
size_t cat_ix_delta_count(cat_ix *ix);
/* Replaces the base by nb (taken over) and drops the delta records that
 * nb holds at the same or a later seq; frees the old base. */
void cat_ix_swap_base(cat_ix *ix, cat_ix_base *nb);
/* The events the index serves (base + new events in the delta). */
size_t cat_ix_count(cat_ix *ix);

/* The knobs of a search (options of ingress). */
typedef struct cat_ix_params {
    int fuzzy_threshold_pct; /* a typo's word similarity, percent */
    int fuzzy_max_words;     /* lexicon words one typo may stand for, the most similar */
    int plain;               /* tests: no bitmaps, block intersections or date merges (galloping
                              * cursors and forward lists only), the reference the shortcuts are
                              * held to */
} cat_ix_params;

/* Answers q like cat_search (catalog_store.h): full text first, and when
 * its words match nothing on a first page, by word similarity (typos);
 * filters, sort and keyset as the database path. Every match is ranked
 * (no window). now_us: the wall clock, for the rendered status. Returns 0
 * or ONS_ENOMEM. Any thread. */
int cat_ix_search(cat_ix *ix, const cat_query *q, const cat_ix_params *p, int64_t now_us,
                  cat_page *out);

/* ---- pieces, exposed for the unit tests ---------------------------------------------- */

/* The lexeme a query word stands for: ASCII and Latin-1 capitals lower
 * cased, as to_tsquery('simple') does. out: at least strlen(w) + 1. */
void cat_ix_fold(const char *w, size_t n, char *out);
/* pg_trgm's trigrams of one word ("  w", ..., "d "), distinct, sorted;
 * returns how many (out: at least strlen(w) + 2). */
size_t cat_ix_trigrams(const char *w, uint32_t *out);
/* The share of a's trigrams that b has, 0..1: a typo's similarity. */
float cat_ix_similarity(const char *a, const char *b);
/* us (since the epoch) as strftime's "%Y-%m-%dT%H:%M:%SZ" of the UTC time:
 * a page's starts_at. */
void cat_ix_rfc3339(int64_t us, char out[32]);
/* The range [lo, hi) of term ids a prefix begins (lo == hi: none). */
void cat_ix_prefix_range(const cat_ix_base *base, const char *prefix, uint32_t *lo, uint32_t *hi);

#endif
