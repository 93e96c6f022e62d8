/* catalog_store.c - the catalog query: parsing, cursors and SQL; see
 * catalog_store.h and docs/search.md. */
#include "ingress/catalog_store.h"
#include "common/hex.h"
#include "ingress/json_io.h"
#include "ingress/keyset.h"
#include "ingress/pg_row.h"
#include "common/b64url.h"
#include "common/err.h"
#include "common/jsonw.h"
#include "common/log.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- query-string helpers ----------------------------------------------------------- */

/* URL-decodes s[0..n) ('+' is a space) into out (cap bytes). Returns the
 * decoded length, or -1 on a bad escape, an embedded NUL or overflow. */
static long url_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (n - i < 3)
                return -1;
            int h = ons_hex_digit((unsigned char)s[i + 1]),
                l = ons_hex_digit((unsigned char)s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = h * 16 + l;
            i += 2;
        }
        if (c == 0 || o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (long)o;
}

/* Valid UTF-8 without control characters; *chars gets the code points. */
static int utf8_text_ok(const char *s, size_t *chars)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    while (*p) {
        unsigned c = *p;
        int extra;
        unsigned cp;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return 0;
            extra = 0;
            cp = c;
        } else if ((c & 0xe0) == 0xc0) {
            extra = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            extra = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            extra = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        p++;
        for (int k = 0; k < extra; k++, p++) {
            if ((*p & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (*p & 0x3f);
        }
        static const unsigned min_cp[] = {0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[extra] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
            (cp >= 0x80 && cp < 0xa0))
            return 0;
        n++;
    }
    *chars = n;
    return 1;
}

/* A non-negative decimal without sign, leading zeros or overflow. */
static int parse_u63(const char *s, int64_t *out)
{
    if (!s[0] || (s[0] == '0' && s[1]))
        return -1;
    for (const char *c = s; *c; c++)
        if (*c < '0' || *c > '9')
            return -1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno)
        return -1;
    *out = v;
    return 0;
}

/* A plain decimal: optional '-', 1-4 integer digits, optional '.' and 1-12
 * fraction digits. No exponent, no "nan" or "inf", nothing after. */
static int parse_decimal(const char *s, double *out)
{
    const char *p = s + (*s == '-');
    int ip = 0, fp = 0;
    while (*p >= '0' && *p <= '9' && ip <= 4)
        p++, ip++;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9' && fp <= 12)
            p++, fp++;
        if (fp == 0)
            return -1;
    }
    if (*p || ip == 0 || ip > 4 || fp > 12)
        return -1;
    *out = strtod(s, NULL);
    return 0;
}

/* ---- cursors ------------------------------------------------------------------------ */

/* The instants a cursor may carry: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z,
 * in microseconds since the Unix epoch. */
#define CURSOR_MIN_US   INT64_C(-62135596800000000)
#define CURSOR_MAX_US   INT64_C(253402300799999999)
#define CURSOR_MAX_RANK 1e6

/* The plain text of a cursor, before base64url:
 *   "<us>:<id>"          date order, full-text or no q (the original form)
 *   "df:<us>:<id>"       date order, fuzzy
 *   "p:<cents>:<id>"     price order ("pf:" fuzzy)
 *   "r:<rank>:<id>"      relevance order, full-text ("rf:" fuzzy); rank as %.9g
 * A cursor is accepted only in exactly the form we write. */
static void cursor_plain(cat_sort sort, cat_match mode, double rank, int64_t key, int64_t id,
                         char *out, size_t cap)
{
    const char *fz = mode == CAT_MATCH_FUZZY ? "f" : "";
    if (sort == CAT_SORT_RELEVANCE)
        snprintf(out, cap, "r%s:%.9g:%" PRId64, fz, rank, id);
    else if (sort == CAT_SORT_PRICE)
        snprintf(out, cap, "p%s:%" PRId64 ":%" PRId64, fz, key, id);
    else if (mode == CAT_MATCH_FUZZY)
        snprintf(out, cap, "df:%" PRId64 ":%" PRId64, key, id);
    else
        snprintf(out, cap, "%" PRId64 ":%" PRId64, key, id);
}

void cat_cursor_encode(cat_sort sort, cat_match mode, const char *key, int64_t id, char *out)
{
    char plain[64];
    double rank = sort == CAT_SORT_RELEVANCE ? (double)strtof(key, NULL) : 0;
    int64_t k = sort == CAT_SORT_RELEVANCE ? 0 : strtoll(key, NULL, 10);
    cursor_plain(sort, mode, rank, k, id, plain, sizeof plain);
    ons_b64url_encode(plain, strlen(plain), out);
}

/* Signed decimal int64 in our canonical form. */
static int parse_i64(const char *s, int64_t *out)
{
    int neg = s[0] == '-';
    int64_t mag;
    if (parse_u63(s + neg, &mag) || (neg && mag == 0))
        return -1;
    *out = neg ? -mag : mag;
    return 0;
}

/* Inverse of cat_cursor_encode for q's sort; only its exact output is accepted. */
/* Decodes base64url s (no padding) into out[cap], NUL-terminated. -1 when
 * s is not canonical base64url, decodes to more than fits, or to bytes with
 * a NUL. */
static int b64url_decode(const char *s, char *out, size_t cap)
{
    size_t n = strlen(s);
    if (n / 4 * 3 + 2 >= cap)
        return -1;
    long len = ons_b64url_decode(s, n, (unsigned char *)out);
    if (len < 0)
        return -1;
    out[len] = '\0';
    return memchr(out, '\0', (size_t)len) ? -1 : 0;
}

/* The sort, mode, key and id a cursor's plain text names: "key:id" (date,
 * full text) or "<tag>:key:id" (tags df, p, pf, r, rf: see cursor_plain).
 * Splits plain in place. 0 or -1. */
static int cursor_fields(char *plain, cat_sort *sort, cat_match *mode, const char **key,
                         const char **id)
{
    char *parts[3] = {plain, NULL, NULL};
    int np = 1;
    for (char *c = plain; *c; c++) {
        if (*c == ':') {
            if (np == 3)
                return -1;
            *c = '\0';
            parts[np++] = c + 1;
        }
    }
    if (np < 2)
        return -1;
    *sort = CAT_SORT_DATE;
    *mode = CAT_MATCH_TEXT;
    *key = parts[np - 2];
    *id = parts[np - 1];
    if (np == 2)
        return 0;
    const char *tag = parts[0];
    if (!strcmp(tag, "df"))
        *mode = CAT_MATCH_FUZZY;
    else if (!strcmp(tag, "p") || !strcmp(tag, "pf"))
        *sort = CAT_SORT_PRICE, *mode = tag[1] ? CAT_MATCH_FUZZY : CAT_MATCH_TEXT;
    else if (!strcmp(tag, "r") || !strcmp(tag, "rf"))
        *sort = CAT_SORT_RELEVANCE, *mode = tag[1] ? CAT_MATCH_FUZZY : CAT_MATCH_TEXT;
    else
        return -1;
    return 0;
}

/* A cursor's sort key into q (cur_rank or cur_key), within what our cursors
 * carry: a finite rank in [0, CURSOR_MAX_RANK]; for dates, instants inside
 * RFC 3339's years 0001..9999, which PostgreSQL's timestamp arithmetic
 * accepts (a forged cursor gets a 400, not a 503); prices never negative. */
static int cursor_key(cat_sort sort, const char *key, cat_query *q)
{
    if (sort == CAT_SORT_RELEVANCE) {
        char *end;
        errno = 0;
        float r = strtof(key, &end);
        if (errno || *end || !key[0] || !isfinite(r) || r < 0 || r > CURSOR_MAX_RANK)
            return -1;
        q->cur_rank = r;
        return 0;
    }
    if (parse_i64(key, &q->cur_key))
        return -1;
    if (sort == CAT_SORT_DATE && (q->cur_key < CURSOR_MIN_US || q->cur_key > CURSOR_MAX_US))
        return -1;
    return sort == CAT_SORT_PRICE && q->cur_key < 0 ? -1 : 0;
}

static int cursor_decode(const char *s, cat_query *q)
{
    size_t n = strlen(s);
    char plain[72];
    cat_sort sort;
    cat_match mode;
    const char *key, *id;
    if (n == 0 || n > 88 || b64url_decode(s, plain, sizeof plain) ||
        cursor_fields(plain, &sort, &mode, &key, &id))
        return -1;
    if (sort != q->sort || parse_u63(id, &q->cur_id) || q->cur_id <= 0 || cursor_key(sort, key, q))
        return -1;
    /* A fuzzy page needs a q to be fuzzy about. */
    if (mode == CAT_MATCH_FUZZY && !q->q)
        return -1;
    q->cur_match = q->q ? mode : CAT_MATCH_NONE;
    /* Only the one spelling we issue: re-encoding gives s back. */
    char again[96], p2[72];
    cursor_plain(sort, mode, q->cur_rank, q->cur_key, q->cur_id, p2, sizeof p2);
    ons_b64url_encode(p2, strlen(p2), again);
    if (strcmp(again, s) != 0)
        return -1;
    q->has_cursor = 1;
    return 0;
}

/* ---- q: words and the tsquery -------------------------------------------------------- */

static int word_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

/* 'w1' & 'w2' & 'w3':* from q's words (runs of ASCII letters and digits and
 * of non-ASCII characters; everything else separates). The words hold no
 * quote or backslash, so quoting each is enough for to_tsquery's syntax.
 * Returns the heap string, or NULL with *words set (0: no word). */
static char *build_tsquery(const char *q, int max_terms, int *words)
{
    size_t n = strlen(q);
    char *out = malloc(n * 3 + 16), *o = out;
    *words = 0;
    if (!out)
        return NULL;
    for (const char *p = q; *p;) {
        if (!word_byte((unsigned char)*p)) {
            p++;
            continue;
        }
        if (++*words > max_terms) {
            free(out);
            return NULL;
        }
        if (o != out)
            o += sprintf(o, " & ");
        *o++ = '\'';
        while (*p && word_byte((unsigned char)*p))
            *o++ = *p++;
        *o++ = '\'';
    }
    if (*words == 0) {
        free(out);
        return NULL;
    }
    strcpy(o, ":*"); /* the last word may be half typed */
    return out;
}

/* The prefix of tsquery's last word as exact lexemes (docs/search.md "How q
 * is matched"): when that word is plain ASCII letters and digits, the
 * lexemes it may begin are the catalog_words in [prefix_lo, prefix_hi)
 * (byte order), and tsquery_head is the words before it ("'w1' & 'w2'",
 * NULL for one word). Another last word keeps the ':*' form only. 0, or -1
 * out of memory. */
static int prefix_range(cat_query *q)
{
    const char *last = NULL, *end = NULL;
    for (const char *p = q->q; *p;) {
        if (!word_byte((unsigned char)*p)) {
            p++;
            continue;
        }
        last = p;
        while (*p && word_byte((unsigned char)*p))
            p++;
        end = p;
    }
    for (const char *c = last; c && c < end; c++)
        if ((unsigned char)*c >= 0x80)
            return 0;
    size_t n = (size_t)(end - last);
    if (!(q->prefix_lo = malloc(n + 1)) || !(q->prefix_hi = malloc(n + 1)))
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = last[i];
        q->prefix_lo[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    q->prefix_lo[n] = '\0';
    memcpy(q->prefix_hi, q->prefix_lo, n + 1);
    q->prefix_hi[n - 1]++;                      /* '9' + 1 = ':', 'z' + 1 = '{': still ASCII */
    const char *amp = strrchr(q->tsquery, '&'); /* words hold no '&' */
    if (amp && !(q->tsquery_head = strndup(q->tsquery, (size_t)(amp - 1 - q->tsquery))))
        return -1;
    return 0;
}

/* ---- parsing ------------------------------------------------------------------------ */

static const char *const PARAMS[] = {"q",         "city",      "category", "from", "to",
                                     "min_price", "max_price", "lat",      "lon",  "km",
                                     "sort",      "limit",     "cursor"};
enum {
    P_Q,
    P_CITY,
    P_CATEGORY,
    P_FROM,
    P_TO,
    P_MIN,
    P_MAX,
    P_LAT,
    P_LON,
    P_KM,
    P_SORT,
    P_LIMIT,
    P_CURSOR,
    P_COUNT
};

static int cat_fail(cat_error *err, ing_api_err id, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    err->id = id;
    err->field = field;
    return -1;
}

static int bad(cat_error *err, const char *field, const char *what)
{
    return cat_fail(err, ING_E_INVALID_FIELD, field, "Parameter '%s' must be %s.", field, what);
}

static int oom(cat_error *err)
{
    return cat_fail(err, ING_E_OVERLOADED, NULL, "Out of memory; retry shortly.");
}

/* Text parameter of at most maxchars characters; "" counts as absent. */
static int text_param(char **v, int idx, size_t maxchars, cat_error *err)
{
    size_t chars = 0;
    if (*v && !(*v)[0]) {
        free(*v);
        *v = NULL;
    }
    if (*v && (!utf8_text_ok(*v, &chars) || chars > maxchars)) {
        char what[64];
        snprintf(what, sizeof what, "text of at most %zu characters", maxchars);
        return bad(err, PARAMS[idx], what);
    }
    return 0;
}

#define EARTH_KM  6371.0088
#define DEG_TO_KM (EARTH_KM * M_PI / 180.0)

/* The latitude/longitude box around the circle (lat, lon, km): every point
 * within km lies inside it, so an index on (lat, lon) narrows the venues
 * before the exact distance is computed. */
static void bounding_box(cat_query *q)
{
    double dlat = q->km / DEG_TO_KM;
    q->box[0] = q->lat - dlat;
    q->box[1] = q->lat + dlat;
    q->box_lon = 0;
    if (q->box[0] <= -90 || q->box[1] >= 90)
        return; /* the circle holds a pole: every longitude */
    double s = sin(q->km / EARTH_KM) / cos(q->lat * M_PI / 180.0);
    if (s >= 1)
        return;
    double dlon = asin(s) * 180.0 / M_PI;
    q->box[2] = q->lon - dlon;
    q->box[3] = q->lon + dlon;
    if (q->box[2] < -180)
        q->box[2] += 360; /* wraps: lon >= box[2] OR lon <= box[3] */
    if (q->box[3] > 180)
        q->box[3] -= 360;
    q->box_lon = 1;
}

/* Splits qs at '&', URL-decodes every key=value pair and places the value
 * in vals[] by parameter (heap strings the caller frees). 0, or -1 with
 * *err (an unknown or repeated parameter, bad encoding, no memory). */
static int split_pairs(const char *qs, char *vals[P_COUNT], cat_error *err)
{
    char key[32];
    for (const char *s = qs; *s;) {
        size_t len = strcspn(s, "&");
        const char *eq = memchr(s, '=', len);
        size_t klen = eq ? (size_t)(eq - s) : len;
        if (len == 0) {
            s++;
            continue;
        }
        long kl = url_decode(s, klen, key, sizeof key);
        int idx = -1;
        for (int i = 0; kl > 0 && i < P_COUNT; i++)
            if (strcmp(key, PARAMS[i]) == 0)
                idx = i;
        if (idx < 0) {
            if (kl < 0 || !utf8_text_ok(key, &(size_t){0}))
                snprintf(key, sizeof key, "?");
            snprintf(err->field_buf, sizeof err->field_buf, "%s", key);
            return cat_fail(err, ING_E_UNKNOWN_FIELD, err->field_buf,
                            "Unknown query parameter '%s'.", key);
        }
        if (vals[idx])
            return cat_fail(err, ING_E_INVALID_FIELD, PARAMS[idx],
                            "Parameter '%s' is given more than once.", PARAMS[idx]);
        size_t vlen = eq ? len - klen - 1 : 0;
        vals[idx] = malloc(vlen + 1);
        if (!vals[idx])
            return oom(err);
        if (url_decode(eq ? eq + 1 : s + len, vlen, vals[idx], vlen + 1) < 0)
            return idx == P_CURSOR ? cat_fail(err, ING_E_INVALID_CURSOR, "cursor",
                                              "The cursor is not one we issued.")
                                   : bad(err, PARAMS[idx], "correctly URL-encoded");
        s += len;
    }
    return 0;
}

/* q, city and category (taken from vals), and q's words as a tsquery. */
static int parse_words(char *vals[P_COUNT], const cat_limits *lim, cat_query *q, cat_error *err)
{
    if (text_param(&vals[P_Q], P_Q, CAT_Q_MAX, err) ||
        text_param(&vals[P_CITY], P_CITY, CAT_CITY_MAX, err) ||
        text_param(&vals[P_CATEGORY], P_CATEGORY, CAT_CATEGORY_MAX, err))
        return -1;
    q->q = vals[P_Q];
    q->city = vals[P_CITY];
    q->category = vals[P_CATEGORY];
    vals[P_Q] = vals[P_CITY] = vals[P_CATEGORY] = NULL;
    if (!q->q)
        return 0;
    int words = 0;
    q->tsquery = build_tsquery(q->q, lim->max_terms, &words);
    if (q->tsquery)
        return prefix_range(q) ? oom(err) : 0;
    if (words == 0)
        return bad(err, "q", "text with at least one letter or digit");
    if (words > lim->max_terms)
        return cat_fail(err, ING_E_INVALID_FIELD, "q", "Parameter 'q' may hold at most %d words.",
                        lim->max_terms);
    return oom(err);
}

/* from/to (RFC 3339, to after from) and min_price/max_price (cents). */
static int parse_ranges(char *const vals[P_COUNT], cat_query *q, cat_error *err)
{
    static const char *const time_what =
        "an RFC 3339 time from 1970 to 9999 UTC such as 2026-11-28T20:00:00Z (an offset's '+' "
        "sent as %2B: a bare '+' in a query string is a space)";
    static const char *const cents_what = "a whole number of cents, 0 or more";
    if (vals[P_FROM] && ing_parse_rfc3339(vals[P_FROM], &q->from_ms))
        return bad(err, "from", time_what);
    if (vals[P_TO] && ing_parse_rfc3339(vals[P_TO], &q->to_ms))
        return bad(err, "to", time_what);
    q->has_from = !!vals[P_FROM];
    q->has_to = !!vals[P_TO];
    if (q->has_from && q->has_to && q->to_ms <= q->from_ms)
        return bad(err, "to", "after 'from'");
    if (vals[P_MIN] && parse_u63(vals[P_MIN], &q->min_price))
        return bad(err, "min_price", cents_what);
    if (vals[P_MAX] && parse_u63(vals[P_MAX], &q->max_price))
        return bad(err, "max_price", cents_what);
    q->has_min = !!vals[P_MIN];
    q->has_max = !!vals[P_MAX];
    if (q->has_min && q->has_max && q->max_price < q->min_price)
        return bad(err, "max_price", "at least 'min_price'");
    return 0;
}

/* A point: lat, lon and km together, or none of them. */
static int parse_point(char *const vals[P_COUNT], const cat_limits *lim, cat_query *q,
                       cat_error *err)
{
    int np = !!vals[P_LAT] + !!vals[P_LON] + !!vals[P_KM];
    if (!np)
        return 0;
    if (np != 3) {
        const char *missing = !vals[P_LAT] ? "lat" : !vals[P_LON] ? "lon" : "km";
        return cat_fail(err, ING_E_INVALID_FIELD, missing,
                        "Parameters 'lat', 'lon' and 'km' go together ('%s' is missing).", missing);
    }
    if (parse_decimal(vals[P_LAT], &q->lat) || q->lat < -90 || q->lat > 90)
        return bad(err, "lat", "a decimal latitude from -90 to 90");
    if (parse_decimal(vals[P_LON], &q->lon) || q->lon < -180 || q->lon > 180)
        return bad(err, "lon", "a decimal longitude from -180 to 180");
    if (parse_decimal(vals[P_KM], &q->km) || !(q->km > 0) || q->km > lim->max_km) {
        char what[64];
        snprintf(what, sizeof what, "a distance in km above 0 and at most %g", lim->max_km);
        return bad(err, "km", what);
    }
    q->has_point = 1;
    bounding_box(q);
    return 0;
}

/* sort (relevance only with q), limit and the cursor of the page. */
static int parse_page(char *const vals[P_COUNT], const cat_limits *lim, cat_query *q,
                      cat_error *err)
{
    q->sort = q->q ? CAT_SORT_RELEVANCE : CAT_SORT_DATE;
    if (vals[P_SORT]) {
        if (!strcmp(vals[P_SORT], "relevance") && q->q)
            q->sort = CAT_SORT_RELEVANCE;
        else if (!strcmp(vals[P_SORT], "date"))
            q->sort = CAT_SORT_DATE;
        else if (!strcmp(vals[P_SORT], "price"))
            q->sort = CAT_SORT_PRICE;
        else
            return bad(err, "sort",
                       q->q ? "relevance, date or price" : "date or price (relevance needs q)");
    }
    q->limit = lim->default_limit;
    if (vals[P_LIMIT]) {
        int64_t l;
        if (parse_u63(vals[P_LIMIT], &l) || l < 1 || l > lim->max_limit) {
            char what[32];
            snprintf(what, sizeof what, "1 to %d", lim->max_limit);
            return bad(err, "limit", what);
        }
        q->limit = (int)l;
    }
    q->cur_match = q->q ? CAT_MATCH_TEXT : CAT_MATCH_NONE;
    if (vals[P_CURSOR] && cursor_decode(vals[P_CURSOR], q))
        return cat_fail(err, ING_E_INVALID_CURSOR, "cursor",
                        "The cursor is not one we issued for this sort order.");
    return 0;
}

int cat_parse(const char *qs, const cat_limits *lim, cat_query *out, cat_error *err)
{
    char *vals[P_COUNT] = {0};
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    if (strlen(qs) > CAT_QUERY_MAX)
        return cat_fail(err, ING_E_INVALID_QUERY, NULL, "The query string is too long.");
    int rc = split_pairs(qs, vals, err) || parse_words(vals, lim, out, err) ||
                     parse_ranges(vals, out, err) || parse_point(vals, lim, out, err) ||
                     parse_page(vals, lim, out, err)
                 ? -1
                 : 0;
    for (int i = 0; i < P_COUNT; i++)
        free(vals[i]);
    if (rc)
        cat_query_clear(out);
    return rc;
}

void cat_query_clear(cat_query *q)
{
    free(q->q);
    free(q->tsquery);
    free(q->tsquery_head);
    free(q->prefix_lo);
    free(q->prefix_hi);
    free(q->city);
    free(q->category);
    q->q = q->tsquery = q->tsquery_head = q->prefix_lo = q->prefix_hi = NULL;
    q->city = q->category = NULL;
}

/* ---- SQL ---------------------------------------------------------------------------- */

typedef struct sqlbuf {
    cat_sql *s;
    size_t len;
    int overflow;
} sqlbuf;

static void add(sqlbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->s->sql + b->len, sizeof b->s->sql - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof b->s->sql - b->len)
        b->overflow = 1;
    else
        b->len += (size_t)n;
}

/* A bind parameter: its number. Text is referenced (it outlives the
 * statement), numbers are formatted into the statement's store. */
static int param_text(sqlbuf *b, const char *v)
{
    cat_sql *s = b->s;
    if (s->n >= CAT_MAX_PARAMS) {
        b->overflow = 1;
        return 1;
    }
    s->params[s->n] = v;
    return ++s->n;
}

static int param_i64(sqlbuf *b, int64_t v)
{
    cat_sql *s = b->s;
    if (s->n >= CAT_MAX_PARAMS) {
        b->overflow = 1;
        return 1;
    }
    snprintf(s->store[s->n], sizeof s->store[0], "%" PRId64, v);
    s->params[s->n] = s->store[s->n];
    return ++s->n;
}

static int param_f64(sqlbuf *b, double v, const char *fmt)
{
    cat_sql *s = b->s;
    if (s->n >= CAT_MAX_PARAMS) {
        b->overflow = 1;
        return 1;
    }
    snprintf(s->store[s->n], sizeof s->store[0], fmt, v);
    s->params[s->n] = s->store[s->n];
    return ++s->n;
}

/* Great-circle distance in km from the point ($lat, $lon) to alias.lat/lon
 * (haversine). */
static void add_distance(sqlbuf *b, const char *alias, int plat, int plon)
{
    add(b,
        "(2 * %.4f * asin(least(1, sqrt(power(sin(radians(%s.lat - $%d::float8) / 2), 2) + "
        "cos(radians($%d::float8)) * cos(radians(%s.lat)) * "
        "power(sin(radians(%s.lon - $%d::float8) / 2), 2)))))",
        EARTH_KM, alias, plat, plat, alias, alias, plon);
}

/* The parameters every shape of the statement uses. */
typedef struct build_params {
    int pq, plat, plon, plim; /* $n of the words, the point, the page's LIMIT */
    int phead, plo, phi;      /* $n of the words but the last and its prefix range, or 0 */
    const char *order;
} build_params;

/* The words of q as the tsquery e.search must match. With a prefix range
 * (prefix_range()), the last word's ':*' becomes the lexemes it may begin,
 * read from catalog_words (which holds every lexeme of every event's
 * search) and ORed: the same rows, but GIN looks up exact entries instead
 * of first collecting every match of a partial one (sweet stor: 25 ms as
 * 'sweet' & 'stor':*, 8 ms as 'sweet' & ('storms' | 'stormy'), on a million
 * events). A prefix that begins no lexeme, or more than CAT_PREFIX_WORDS,
 * keeps the ':*' form. The lexemes enter the tsquery through its input
 * syntax (quoted, no text search parser), verbatim. */
static void add_text_match(sqlbuf *b, const build_params *p)
{
    if (!p->plo) {
        add(b, " AND e.search @@ to_tsquery('simple', $%d)", p->pq);
        return;
    }
    static const char lexemes[] =
        "('(' || string_agg('''' || replace(replace(w.word, '\\', '\\\\'), '''', '''''') || "
        "'''', ' | ') || ')')::tsquery";
    add(b,
        " AND e.search @@ (SELECT CASE WHEN count(*) BETWEEN 1 AND %d THEN "
        "CASE WHEN $%d::text IS NULL THEN %s ELSE to_tsquery('simple', $%d) && %s END "
        "ELSE to_tsquery('simple', $%d) END "
        "FROM (SELECT cw.word FROM catalog_words cw WHERE cw.word >= $%d::text "
        "AND cw.word < $%d::text ORDER BY cw.word LIMIT %d) w)",
        CAT_PREFIX_WORDS, p->phead, lexemes, p->phead, lexemes, p->pq, p->plo, p->phi,
        CAT_PREFIX_WORDS + 1);
}

/* The conditions every shape shares (match and filters), on alias e,
 * appended as " AND ..." (no keyset, no point). */
static void add_filters(sqlbuf *b, const cat_query *q, cat_match mode, const build_params *p)
{
    if (mode == CAT_MATCH_TEXT)
        add_text_match(b, p);
    else if (mode == CAT_MATCH_FUZZY)
        add(b, " AND $%d <%% e.name", p->pq);
    if (q->city)
        add(b, " AND e.city_key = lower($%d)", param_text(b, q->city));
    if (q->category)
        add(b, " AND e.category = $%d", param_text(b, q->category));
    if (q->has_from)
        add(b, " AND e.starts_at >= timestamptz 'epoch' + $%d::bigint * interval '1 millisecond'",
            param_i64(b, q->from_ms));
    if (q->has_to)
        add(b, " AND e.starts_at < timestamptz 'epoch' + $%d::bigint * interval '1 millisecond'",
            param_i64(b, q->to_ms));
    /* The filter's range overlaps the event's [price_min, price_max]. */
    if (q->has_min)
        add(b, " AND e.price_max >= $%d::bigint", param_i64(b, q->min_price));
    if (q->has_max)
        add(b, " AND e.price_min <= $%d::bigint", param_i64(b, q->max_price));
    if (q->sort == CAT_SORT_PRICE)
        add(b, " AND e.price_min IS NOT NULL"); /* events without prices have no place */
}

/* The venues within the circle, alias vv: the bounding box (index
 * venues_position) and then the exact distance. Appended as " AND ...". */
static void add_circle(sqlbuf *b, const cat_query *q, int plat, int plon)
{
    int a = param_f64(b, q->box[0], "%.17g"), z = param_f64(b, q->box[1], "%.17g");
    add(b,
        " AND vv.lat IS NOT NULL AND vv.lon IS NOT NULL "
        "AND vv.lat BETWEEN $%d::float8 AND $%d::float8",
        a, z);
    if (q->box_lon) {
        int w = param_f64(b, q->box[2], "%.17g"), e = param_f64(b, q->box[3], "%.17g");
        if (q->box[2] <= q->box[3])
            add(b, " AND vv.lon BETWEEN $%d::float8 AND $%d::float8", w, e);
        else
            add(b, " AND (vv.lon >= $%d::float8 OR vv.lon <= $%d::float8)", w, e);
    }
    add(b, " AND ");
    add_distance(b, "vv", plat, plon);
    add(b, " <= $%d::float8", param_f64(b, q->km, "%.17g"));
}

/* Strictly after the cursor's row in the date or price order, on alias e. */
static void add_keyset(sqlbuf *b, const cat_query *q)
{
    if (!q->has_cursor || q->sort == CAT_SORT_RELEVANCE)
        return;
    int pid = param_i64(b, q->cur_id);
    if (q->sort == CAT_SORT_PRICE)
        add(b, " AND (e.price_min, e.event_id) > ($%d::bigint, $%d::bigint)",
            param_i64(b, q->cur_key), pid);
    else
        add(b,
            " AND (e.starts_at, e.event_id) > "
            "(timestamptz 'epoch' + $%d::bigint * interval '1 microsecond', $%d::bigint)",
            param_i64(b, q->cur_key), pid);
}

/* " AND e.venue_id IN (venues inside the circle)". */
static void add_venue_in_circle(sqlbuf *b, const cat_query *q, const build_params *p)
{
    add(b, " AND e.venue_id IN (SELECT vv.venue_id FROM venues vv WHERE true");
    add_circle(b, q, p->plat, p->plon);
    add(b, ")");
}

/* Relevance order. Ranking reads every candidate's row: at most rank_window
 * of them (the first matches in the index's order) are ranked, which bounds
 * the work of a broad q. The window does not depend on the cursor, so pages
 * of one search page through one ranking. */
static void add_ranked(sqlbuf *b, const cat_query *q, cat_match mode, const build_params *p,
                       int rank_window)
{
    char rank[96];
    if (mode == CAT_MATCH_FUZZY)
        snprintf(rank, sizeof rank, "word_similarity($%d, e.name)", p->pq);
    else
        snprintf(rank, sizeof rank, "ts_rank_cd(e.search, to_tsquery('simple', $%d))", p->pq);
    add(b, "SELECT w.* FROM (SELECT e.*, %s AS rk FROM events e WHERE true", rank);
    add_filters(b, q, mode, p);
    if (q->has_point)
        add_venue_in_circle(b, q, p);
    add(b, " LIMIT $%d) w", param_i64(b, rank_window));
    if (q->has_cursor) {
        int pr = param_f64(b, q->cur_rank, "%.9g"), pid = param_i64(b, q->cur_id);
        add(b, " WHERE (w.rk < $%d::real OR (w.rk = $%d::real AND w.event_id > $%d::bigint))", pr,
            pr, pid);
    }
    add(b, " ORDER BY w.rk DESC, w.event_id LIMIT $%d", p->plim);
}

/* The page's events found, the rows read: the page is chosen from the sort
 * keys alone (keys, a SELECT of alias e's event_id ordered and limited),
 * which an index holding them answers without reading events (an index
 * only scan: a week's events by price read 2,100 entries of
 * events_price and no row, where reading each row took 1,119 pages), and
 * only the page's rows are then read by primary key. */
static void
add_page_rows(sqlbuf *b, void (*keys)(sqlbuf *, const cat_query *, cat_match, const build_params *),
              const cat_query *q, cat_match mode, const build_params *p)
{
    add(b, "SELECT e.*, NULL::real AS rk FROM (");
    keys(b, q, mode, p);
    add(b, ") k JOIN events e ON e.event_id = k.event_id");
}

/* Date order around a point: each venue in the circle gives its first page
 * of keys by (venue_id, starts_at, event_id), and the pages are merged: the
 * work is venues x page, whatever the venues hold. */
static void venue_page_keys(sqlbuf *b, const cat_query *q, cat_match mode, const build_params *p)
{
    add(b, "SELECT e.event_id FROM venues vv CROSS JOIN LATERAL (SELECT e.event_id, e.starts_at "
           "FROM events e WHERE e.venue_id = vv.venue_id");
    add_filters(b, q, mode, p);
    add_keyset(b, q);
    add(b, " ORDER BY %s LIMIT $%d) e WHERE true", p->order, p->plim);
    add_circle(b, q, p->plat, p->plon);
    add(b, " ORDER BY %s LIMIT $%d", p->order, p->plim);
}

/* The conditions and order of a date or price order through the events'
 * own indexes, after a SELECT list. */
static void add_ordered_tail(sqlbuf *b, const cat_query *q, cat_match mode, const build_params *p)
{
    add(b, " FROM events e WHERE true");
    add_filters(b, q, mode, p);
    if (q->has_point)
        add_venue_in_circle(b, q, p);
    add_keyset(b, q);
    add(b, " ORDER BY %s LIMIT $%d", p->order, p->plim);
}

static void ordered_keys(sqlbuf *b, const cat_query *q, cat_match mode, const build_params *p)
{
    add(b, "SELECT e.event_id");
    add_ordered_tail(b, q, mode, p);
}

/* Whether the sort's index holds every column q filters on, so that the
 * keys are chosen without reading a row: events_price holds starts_at and
 * price_max. Otherwise (city and category orders by date, whose index is
 * exactly the filter) the page's rows are read as they are found: choosing
 * keys first would only add 21 primary key lookups. */
static int keys_alone(const cat_query *q)
{
    return q->sort == CAT_SORT_PRICE && !q->q && !q->city && !q->category && !q->has_point;
}

int cat_build(const cat_query *q, cat_match mode, int rank_window, cat_sql *out)
{
    sqlbuf b = {out, 0, 0};
    out->n = 0;
    out->sql[0] = '\0';
    build_params p = {0};
    if (mode == CAT_MATCH_TEXT) {
        p.pq = param_text(&b, q->tsquery);
        if (q->prefix_lo) {
            p.phead = param_text(&b, q->tsquery_head); /* NULL: SQL NULL */
            p.plo = param_text(&b, q->prefix_lo);
            p.phi = param_text(&b, q->prefix_hi);
        }
    } else if (mode == CAT_MATCH_FUZZY)
        p.pq = param_text(&b, q->q);
    if (q->has_point) {
        p.plat = param_f64(&b, q->lat, "%.17g");
        p.plon = param_f64(&b, q->lon, "%.17g");
    }
    p.order = q->sort == CAT_SORT_PRICE  ? "e.price_min, e.event_id"
              : q->sort == CAT_SORT_DATE ? "e.starts_at, e.event_id"
                                         : "e.rk DESC, e.event_id";
    p.plim = param_i64(&b, (int64_t)q->limit + 1);

    /* The page's events (alias e, with rk: the rank or NULL) are chosen
     * first; the venues are joined to those rows only. */
    add(&b, "SELECT e.event_id, e.name, e.category, "
            "to_char(e.starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
            "v.name, v.city, coalesce(e.price_min, 0), coalesce(e.price_max, 0), "
            "CASE WHEN e.status = 'scheduled' AND e.onsale_at <= now() THEN 'on_sale' "
            "ELSE e.status END, "
            "(extract(epoch FROM e.starts_at) * 1000000)::bigint, e.rk, ");
    if (q->has_point)
        add_distance(&b, "v", p.plat, p.plon);
    else
        add(&b, "NULL::float8");
    add(&b, " FROM (");
    if (q->sort == CAT_SORT_RELEVANCE)
        add_ranked(&b, q, mode, &p, rank_window);
    else if (q->has_point && q->sort == CAT_SORT_DATE)
        add_page_rows(&b, venue_page_keys, q, mode, &p);
    else if (keys_alone(q))
        add_page_rows(&b, ordered_keys, q, mode, &p);
    else {
        add(&b, "SELECT e.*, NULL::real AS rk");
        add_ordered_tail(&b, q, mode, &p);
    }
    add(&b, ") e JOIN venues v ON v.venue_id = e.venue_id ORDER BY %s", p.order);
    return b.overflow ? -1 : 0;
}

/* ---- the search (PostgreSQL) ------------------------------------------------------- */

/* The catalog's settings of a job thread's session, applied once per
 * connection: no JIT (a catalog query runs in about a millisecond; compiling
 * it would cost tens), and the trigram similarity pg_trgm's <% requires. */
static _Thread_local PGconn *configured;
static _Thread_local int configured_pid; /* a reconnect may reuse the address */

static int configure_session(ing_worker *w, long long fuzzy_threshold_pct, const char *rid)
{
    PGconn *c = ing_worker_pg(w);
    if (!c)
        return ONS_EUNAVAIL;
    if (c == configured && PQbackendPID(c) == configured_pid)
        return 0;
    char thr[16];
    snprintf(thr, sizeof thr, "%.2f", (double)fuzzy_threshold_pct / 100.0);
    const char *p[] = {thr};
    PGresult *res = ing_worker_query(w,
                                     "SELECT set_config('jit', 'off', false), "
                                     "set_config('pg_trgm.word_similarity_threshold', $1, false)",
                                     1, p);
    int rc = ing_pg_status(res, rid, "catalog session");
    PQclear(res);
    if (rc)
        return ONS_EUNAVAIL;
    configured = c;
    configured_pid = PQbackendPID(c);
    return 0;
}

/* Sequential scans of events are off while a catalog statement is planned:
 * every shape has an index, and with a LIMIT the planner may otherwise pick
 * a scan that stops "early" (a relevance window over a frequent word, 1.7%
 * of a million rows, read 2,270 pages sequentially instead of 500 through
 * the GIN index). Not a session default: other routes share the connection.
 *
 * One round trip: the setting and the statement go out together in a libpq
 * pipeline, whose messages up to the sync run in one implicit transaction;
 * set_config(..., true) is local to that transaction, so it ends with it,
 * on success and on error alike, and nothing has to turn it back on. (Three
 * round trips each, off / statement / on, cost the shapes whose statement
 * takes 0.2 ms most of their latency on a loaded box.) */
static const char SEQSCAN_OFF[] = "SELECT set_config('enable_seqscan', 'off', true)";

/* Reads the results of the pipeline's two statements and its sync: the
 * second statement's rows, or NULL after logging. *broken: the connection
 * is no longer in step (lost, or the pipeline did not end as sent). */
static PGresult *pipeline_results(PGconn *c, const char *rid, int *broken)
{
    PGresult *rows = NULL;
    int failed = 0;
    for (int k = 0; k < 2 && !*broken; k++) {
        PGresult *r;
        while ((r = PQgetResult(c)) != NULL) {
            ExecStatusType st = PQresultStatus(r);
            if (k == 1 && st == PGRES_TUPLES_OK && !rows && !failed) {
                rows = r;
                continue;
            }
            if (st != PGRES_TUPLES_OK && st != PGRES_PIPELINE_ABORTED && !failed) {
                ing_pg_status(r, rid, k ? "catalog" : "catalog seqscan");
                failed = 1;
            }
            PQclear(r);
        }
        *broken = PQstatus(c) != CONNECTION_OK;
    }
    if (!*broken) {
        PGresult *sync = PQgetResult(c);
        *broken = PQresultStatus(sync) != PGRES_PIPELINE_SYNC;
        PQclear(sync);
    }
    if (failed || *broken) {
        PQclear(rows);
        return NULL;
    }
    return rows;
}

/* s on the job thread's connection with sequential scans off, in one round
 * trip (above). The rows, or NULL after logging. The connection stays in
 * blocking mode: what is sent is a few kB at most, all of it before any
 * result is read, so neither side can wait on the other's full buffer. */
static PGresult *exec_pipelined(ing_worker *w, const cat_sql *s, const char *rid)
{
    PGconn *c = ing_worker_pg(w);
    if (!c)
        return NULL;
    if (!PQenterPipelineMode(c)) {
        ons_logk(ONS_LOG_WARN, "request_id", rid ? rid : "-", "catalog: pipeline: %s",
                 PQerrorMessage(c));
        return NULL;
    }
    int broken = !PQsendQueryParams(c, SEQSCAN_OFF, 0, NULL, NULL, NULL, NULL, 0) ||
                 !PQsendQueryParams(c, s->sql, s->n, NULL, s->params, NULL, NULL, 0) ||
                 !PQpipelineSync(c);
    PGresult *rows = NULL;
    if (broken)
        ons_logk(ONS_LOG_WARN, "request_id", rid ? rid : "-", "catalog: send: %s",
                 PQerrorMessage(c));
    else
        rows = pipeline_results(c, rid, &broken);
    if (!PQexitPipelineMode(c) || broken) {
        /* Out of step with the server: start over on a new connection
         * rather than guess what is still in flight. */
        PQclear(rows);
        rows = NULL;
        if (PQstatus(c) == CONNECTION_OK)
            PQreset(c);
        ing_worker_pg_failed(w);
    }
    return rows;
}

/* The rows of q in mode (cat_build's columns), or NULL after logging. */
static PGresult *run(ing_worker *w, const cat_query *q, cat_match mode, int rank_window,
                     const char *rid)
{
    cat_sql *s = malloc(sizeof *s);
    if (!s || cat_build(q, mode, rank_window, s)) {
        free(s);
        return NULL;
    }
    PGresult *res = exec_pipelined(w, s, rid);
    free(s);
    return res;
}

static int read_row(const PGresult *res, int i, cat_sort sort, cat_row *e)
{
    if (ing_pg_i64(res, i, 0, &e->event_id) || ing_pg_i64(res, i, 6, &e->min_cents) ||
        ing_pg_i64(res, i, 7, &e->max_cents))
        return ONS_EUNAVAIL;
    ing_pg_text(res, i, 1, e->name, sizeof e->name);
    ing_pg_text(res, i, 2, e->category, sizeof e->category);
    ing_pg_text(res, i, 3, e->starts_at, sizeof e->starts_at);
    ing_pg_text(res, i, 4, e->venue_name, sizeof e->venue_name);
    ing_pg_text(res, i, 5, e->city, sizeof e->city);
    ing_pg_text(res, i, 8, e->status, sizeof e->status);
    int key_col = sort == CAT_SORT_RELEVANCE ? 10 : sort == CAT_SORT_PRICE ? 6 : 9;
    ing_pg_text(res, i, key_col, e->cursor_key, sizeof e->cursor_key);
    e->has_distance = !PQgetisnull(res, i, 11);
    if (e->has_distance)
        e->distance_km = (double)(long)(atof(PQgetvalue(res, i, 11)) * 100 + 0.5) / 100.0;
    return 0;
}

int cat_search(ing_worker *w, const cat_query *q, int rank_window, long long fuzzy_threshold_pct,
               const char *rid, cat_page *out)
{
    memset(out, 0, sizeof *out);
    out->mode = q->has_cursor ? q->cur_match : q->q ? CAT_MATCH_TEXT : CAT_MATCH_NONE;
    PGresult *res = NULL;
    if (configure_session(w, fuzzy_threshold_pct, rid) == 0) {
        res = run(w, q, out->mode, rank_window, rid);
        /* Nothing matched q's words on a first page: try the names by
         * trigram similarity. */
        if (res && out->mode == CAT_MATCH_TEXT && !q->has_cursor && PQntuples(res) == 0) {
            PQclear(res);
            out->mode = CAT_MATCH_FUZZY;
            res = run(w, q, out->mode, rank_window, rid);
        }
    }
    if (!res)
        return ONS_EUNAVAIL;
    int n = ing_keyset_rows(PQntuples(res), q->limit, &out->more), rc = 0;
    if (n > 0 && !(out->rows = calloc((size_t)n, sizeof *out->rows)))
        rc = ONS_ENOMEM;
    for (int i = 0; rc == 0 && i < n; i++) {
        rc = read_row(res, i, q->sort, &out->rows[i]);
        out->n = (size_t)i + 1;
    }
    PQclear(res);
    if (rc)
        cat_page_clear(out);
    return rc;
}

void cat_page_clear(cat_page *p)
{
    free(p->rows);
    p->rows = NULL;
    p->n = 0;
}

/* ---- the page as JSON text ---------------------------------------------------------- */

/* A literal's bytes without a strlen per call (the page writes ~20 per
 * row). */
#define JW_LIT(b, lit) ons_jw_raw((b), (lit), sizeof(lit) - 1)

char *cat_page_render(const cat_query *q, const cat_page *pg, size_t *len)
{
    ons_jw b = {0};
    JW_LIT(&b, "{\"events\":[");
    for (size_t i = 0; i < pg->n; i++) {
        const cat_row *e = &pg->rows[i];
        if (i)
            JW_LIT(&b, ",{\"event_id\":");
        else
            JW_LIT(&b, "{\"event_id\":");
        ons_jw_int(&b, e->event_id);
        JW_LIT(&b, ",\"name\":");
        ons_jw_str(&b, e->name);
        JW_LIT(&b, ",\"category\":");
        ons_jw_str(&b, e->category);
        JW_LIT(&b, ",\"starts_at\":");
        ons_jw_str(&b, e->starts_at);
        JW_LIT(&b, ",\"venue\":{\"name\":");
        ons_jw_str(&b, e->venue_name);
        JW_LIT(&b, ",\"city\":");
        ons_jw_str(&b, e->city);
        JW_LIT(&b, "},\"price_range\":{\"min_cents\":");
        ons_jw_int(&b, e->min_cents);
        JW_LIT(&b, ",\"max_cents\":");
        ons_jw_int(&b, e->max_cents);
        JW_LIT(&b, "},\"status\":");
        ons_jw_str(&b, e->status);
        if (e->has_distance) {
            JW_LIT(&b, ",\"distance_km\":");
            /* rounded to two decimals (cat_row): 15 digits write them as
             * they are, 17 wrote 1.64 as 1.6399999999999999 */
            ons_jw_real_digits(&b, e->distance_km, 15);
        }
        JW_LIT(&b, "}");
    }
    JW_LIT(&b, "],\"next_cursor\":");
    if (pg->more && pg->n > 0) {
        char cur[96];
        const cat_row *last = &pg->rows[pg->n - 1];
        cat_cursor_encode(q->sort, pg->mode, last->cursor_key, last->event_id, cur);
        ons_jw_str(&b, cur);
    } else {
        JW_LIT(&b, "null");
    }
    if (q->q)
        ons_jw_lit(&b,
                   pg->mode == CAT_MATCH_FUZZY ? ",\"match\":\"fuzzy\"" : ",\"match\":\"text\"");
    JW_LIT(&b, "}");
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    *len = b.len;
    return b.s;
}
