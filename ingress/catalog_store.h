/*
 * catalog_store.h - the catalog search (GET /v1/events, docs/search.md) as
 * plain data: the query string parsed and validated into a cat_query, and
 * the one parameterised SELECT that answers it.
 *
 * Nothing here touches a request or a connection, so the route, the unit
 * tests and tests/unit/catalog_sql.c (which prints the SQL for the plan
 * tests) share the very same parsing and SQL. User input only ever reaches
 * PostgreSQL as a bind parameter: the SQL text is assembled from fixed
 * fragments chosen by which filters are present.
 */
#ifndef ONSALE_INGRESS_CATALOG_STORE_H
#define ONSALE_INGRESS_CATALOG_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ingress/api_error.h"
#include "ingress/pool.h"

typedef enum { CAT_SORT_RELEVANCE, CAT_SORT_DATE, CAT_SORT_PRICE } cat_sort;

/* How q matched: full-text (with a prefix on the last word), or by trigram
 * similarity of the event's name when the full-text search found nothing. */
typedef enum { CAT_MATCH_NONE, CAT_MATCH_TEXT, CAT_MATCH_FUZZY } cat_match;

typedef struct cat_limits {
    int default_limit; /* page size without limit= */
    int max_limit;     /* largest limit= */
    int max_terms;     /* words in q */
    double max_km;     /* largest km= */
} cat_limits;

#define CAT_Q_MAX        200 /* characters of q */
#define CAT_CITY_MAX     100
#define CAT_CATEGORY_MAX 64
#define CAT_QUERY_MAX    2048 /* bytes of the raw query string */

typedef struct cat_query {
    char *q;       /* the text as given, heap, or NULL */
    char *tsquery; /* to_tsquery('simple', ...) text built from q's words, heap */
    /* The last word's prefix as a byte range of lexemes, [prefix_lo,
     * prefix_hi), lower case, when it is ASCII letters and digits (else
     * NULL), and the words before it as a to_tsquery text (NULL: none). */
    char *prefix_lo, *prefix_hi, *tsquery_head;
    char *city, *category;
    int64_t from_ms, to_ms, min_price, max_price;
    int has_from, has_to, has_min, has_max;
    double lat, lon, km;
    int has_point;
    double box[4]; /* lat_min, lat_max, lon_min, lon_max (lon_min > lon_max: wraps) */
    int box_lon;   /* 0: every longitude (the circle reaches a pole) */
    cat_sort sort;
    int limit;
    int has_cursor;
    cat_match cur_match; /* the mode the cursor's page was answered in */
    double cur_rank;
    int64_t cur_key, cur_id;
} cat_query;

typedef struct cat_error {
    ing_api_err id;    /* the answer's row in api_error.h */
    const char *field; /* field: NULL, a static string or field_buf */
    char field_buf[32];
    char message[192];
} cat_error;

/* Parses the raw query string (after '?'). Returns 0, or -1 with *err set
 * (invalid_field and the like with the field at fault; overloaded when
 * out of memory). */
int cat_parse(const char *qs, const cat_limits *lim, cat_query *out, cat_error *err);
void cat_query_clear(cat_query *q);

#define CAT_MAX_PARAMS 32

/* A last word that begins at most this many lexemes is matched as those
 * lexemes (exact GIN entries); one that begins more keeps its ':*' (a
 * partial GIN match). Either way the same rows match: a planning choice,
 * not a limit on answers. */
#define CAT_PREFIX_WORDS 64

/* The statement answering q in the given mode. Columns: event_id, name,
 * category, starts_at (RFC 3339), venue name, venue city, min cents, max
 * cents, status, starts_at us, rank (real, or NULL), distance km (or NULL).
 * At most q->limit + 1 rows: one more than a page says another follows. */
typedef struct cat_sql {
    char sql[4096];
    const char *params[CAT_MAX_PARAMS];
    char store[CAT_MAX_PARAMS][40];
    int n;
} cat_sql;

/* rank_window: a relevance sort ranks at most this many matches (the first
 * in the index's order), bounding the rows a broad q reads.
 * Returns 0, or -1 when the statement would not fit (cannot happen with
 * the parameters cat_parse accepts). */
int cat_build(const cat_query *q, cat_match mode, int rank_window, cat_sql *out);

/* The cursor after a row: sort key (rank as returned by PostgreSQL for
 * relevance, starts_at us for date, min cents for price) and event id, in
 * the mode the page was answered in. out: at least 96 bytes. */
void cat_cursor_encode(cat_sort sort, cat_match mode, const char *key, int64_t id, char *out);

/* ---- the search (PostgreSQL) ------------------------------------------------------- */

/* One event of a result page. */
typedef struct cat_row {
    int64_t event_id, min_cents, max_cents;
    char name[256], category[80], starts_at[32], venue_name[256], city[128], status[16];
    char cursor_key[40]; /* the sort key as cat_cursor_encode takes it */
    int has_distance;
    double distance_km; /* rounded to 0.01 */
} cat_row;

typedef struct cat_page {
    cat_match mode; /* the mode the page was answered in */
    size_t n;
    cat_row *rows; /* heap; cat_page_clear frees */
    int more;      /* another page follows the last row */
} cat_page;

/* Runs q on the job thread's connection: full-text first, and when q's
 * words match nothing on a first page, the names by trigram similarity
 * (fuzzy_threshold_pct) instead. Applies the catalog's session settings
 * once per connection (no JIT, the similarity threshold) and plans with
 * sequential scans off. Returns 0, ONS_EUNAVAIL (no connection or a
 * statement failed; logged with rid) or ONS_ENOMEM. Job threads only. */
int cat_search(ing_worker *w, const cat_query *q, int rank_window, long long fuzzy_threshold_pct,
               const char *rid, cat_page *out);
void cat_page_clear(cat_page *p);

/* The page as the API shows it (docs/api.md "Catalog"): {"events": [...],
 * "next_cursor": cursor or null, "match" when q has words}, as compact JSON
 * text written directly (no JSON tree: a page is a few hundred small
 * values), byte for byte what jansson's json_dumps(JSON_COMPACT |
 * JSON_REAL_PRECISION(15)) writes for the same values in the same order
 * (test_catalog_store holds both to it; 15 digits: distance_km's two
 * decimals as they are). A byte that begins no valid UTF-8 becomes U+FFFD. Heap, length in
 * *len; NULL: out of memory. */
char *cat_page_render(const cat_query *q, const cat_page *pg, size_t *len);

#endif
