/*
 * routes_catalog.c - the public catalog search (API.md "Catalog (public)"):
 *   GET /v1/events?q=&city=&category=&from=&to=&min_price=&max_price=&limit=&cursor=
 *
 * The query string is parsed and validated strictly on the nng thread
 * (unknown parameter -> 400 unknown_field; bad value -> 400 invalid_field
 * naming it; a cursor we did not issue -> 400 invalid_cursor); one
 * parameterised SELECT then runs on a job thread. Results are ordered by
 * (starts_at, event_id) and paged by keyset: the cursor is the base64url of
 * "<starts_at in us since epoch>:<event_id>" of a page's last row. Every
 * status is listed and reported (scheduled reads on_sale once onsale_at has
 * passed, as in the event details).
 */
#include "common/err.h"
#include "common/log.h"
#include "ingress/json_io.h"
#include "ingress/replica.h"
#include "ingress/routes.h"

#include <errno.h>
#include <inttypes.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CATALOG_DEFAULT_LIMIT 20
#define CATALOG_MAX_LIMIT     100
#define CATALOG_QUERY_MAX     2048 /* bytes of the raw query string */

typedef struct catalog_job {
    char *q_pattern; /* ILIKE pattern, heap, or NULL */
    char city[101 * 4], category[65 * 4];
    int has_city, has_category;
    int64_t from_ms, to_ms, min_price, max_price, limit;
    int has_from, has_to, has_min, has_max;
    int64_t cur_us, cur_id; /* cur_id 0: first page */
} catalog_job;

static void catalog_job_free(void *p)
{
    catalog_job *j = p;
    if (j)
        free(j->q_pattern);
    free(j);
}

/* ---- query-string helpers ----------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

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
            int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
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

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void b64url_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = B64URL[v >> 18 & 63];
        out[o++] = B64URL[v >> 12 & 63];
        out[o++] = B64URL[v >> 6 & 63];
        out[o++] = B64URL[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = B64URL[v >> 18 & 63];
        out[o++] = B64URL[v >> 12 & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = B64URL[v >> 18 & 63];
        out[o++] = B64URL[v >> 12 & 63];
        out[o++] = B64URL[v >> 6 & 63];
    }
    out[o] = '\0';
}

/* The instants a cursor may carry: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z,
 * in microseconds since the Unix epoch. */
#define CURSOR_MIN_US INT64_C(-62135596800000000)
#define CURSOR_MAX_US INT64_C(253402300799999999)

/* The page cursor of (us, id): base64url, no padding, into out[64]. */
static void cursor_encode(int64_t us, int64_t id, char out[64])
{
    char plain[48];
    int n = snprintf(plain, sizeof plain, "%" PRId64 ":%" PRId64, us, id);
    b64url_encode((const unsigned char *)plain, (size_t)n, out);
}

/* Inverse of cursor_encode; only its exact output is accepted. */
static int cursor_decode(const char *s, int64_t *us, int64_t *id)
{
    size_t n = strlen(s);
    if (n == 0 || n > 60)
        return -1;
    unsigned char plain[48];
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = strchr(B64URL, s[i]);
        if (!s[i] || !p)
            return -1;
        acc = (acc << 6) | (unsigned)(p - B64URL);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o + 1 >= sizeof plain)
                return -1;
            plain[o++] = (unsigned char)(acc >> bits & 0xff);
        }
    }
    plain[o] = '\0';
    const char *colon = strchr((const char *)plain, ':');
    if (!colon || memchr(plain, '\0', o))
        return -1;
    char a[32], b[32];
    size_t alen = (size_t)(colon - (const char *)plain);
    if (alen == 0 || alen >= sizeof a || strlen(colon + 1) >= sizeof b)
        return -1;
    memcpy(a, plain, alen);
    a[alen] = '\0';
    snprintf(b, sizeof b, "%s", colon + 1);
    int64_t mag;
    int neg = a[0] == '-';
    if (parse_u63(a + neg, &mag) || parse_u63(b, id) || *id <= 0 || (neg && mag == 0))
        return -1;
    *us = neg ? -mag : mag;
    /* Our cursors carry an event's starts_at: refuse instants outside
     * RFC 3339's years 0001..9999, which PostgreSQL's timestamp arithmetic
     * would reject (a 503) instead of the 400 a forged cursor deserves. */
    if (*us < CURSOR_MIN_US || *us > CURSOR_MAX_US)
        return -1;
    char again[64];
    cursor_encode(*us, *id, again);
    return strcmp(again, s) == 0 ? 0 : -1;
}

/* ---- the job ------------------------------------------------------------------------ */

static void catalog_job_run(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    catalog_job *j = r->job;
    char from[24], to[24], minp[24], maxp[24], cus[24], cid[24], lim[24];
    snprintf(from, sizeof from, "%" PRId64, j->from_ms);
    snprintf(to, sizeof to, "%" PRId64, j->to_ms);
    snprintf(minp, sizeof minp, "%" PRId64, j->min_price);
    snprintf(maxp, sizeof maxp, "%" PRId64, j->max_price);
    snprintf(cus, sizeof cus, "%" PRId64, j->cur_us);
    snprintf(cid, sizeof cid, "%" PRId64, j->cur_id);
    snprintf(lim, sizeof lim, "%" PRId64, j->limit + 1);
    const char *p[] = {j->q_pattern,
                       j->has_city ? j->city : NULL,
                       j->has_category ? j->category : NULL,
                       j->has_from ? from : NULL,
                       j->has_to ? to : NULL,
                       j->has_min ? minp : NULL,
                       j->has_max ? maxp : NULL,
                       j->cur_id ? cus : NULL,
                       j->cur_id ? cid : NULL,
                       lim};
    PGresult *res = ing_read_query(
        w,
        "SELECT e.event_id, e.name, e.category, "
        "  to_char(e.starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "  v.name, v.city, coalesce(pr.min_cents, 0), coalesce(pr.max_cents, 0), "
        "  CASE WHEN e.status = 'scheduled' AND e.onsale_at <= now() THEN 'on_sale' "
        "       ELSE e.status END, "
        "  (extract(epoch FROM e.starts_at) * 1000000)::bigint "
        "FROM events e JOIN venues v ON v.venue_id = e.venue_id "
        "LEFT JOIN LATERAL (SELECT min(pt.price_cents) AS min_cents, "
        "                          max(pt.price_cents) AS max_cents "
        "                   FROM price_tiers pt WHERE pt.event_id = e.event_id) pr ON true "
        "WHERE ($1::text IS NULL OR e.name ILIKE $1 OR e.description ILIKE $1 "
        "       OR e.category ILIKE $1 OR v.name ILIKE $1) "
        "  AND ($2::text IS NULL OR lower(v.city) = lower($2)) "
        "  AND ($3::text IS NULL OR e.category = $3) "
        "  AND ($4::bigint IS NULL OR "
        "       e.starts_at >= timestamptz 'epoch' + $4::bigint * interval '1 millisecond') "
        "  AND ($5::bigint IS NULL OR "
        "       e.starts_at < timestamptz 'epoch' + $5::bigint * interval '1 millisecond') "
        "  AND ($6::bigint IS NULL OR pr.max_cents >= $6) "
        "  AND ($7::bigint IS NULL OR pr.min_cents <= $7) "
        "  AND ($9::bigint IS NULL OR (e.starts_at, e.event_id) > "
        "       (timestamptz 'epoch' + $8::bigint * interval '1 microsecond', $9::bigint)) "
        "ORDER BY e.starts_at, e.event_id LIMIT $10",
        10, p);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        if (res)
            ons_logk(ONS_LOG_WARN, "request_id", r->rid, "catalog: %s", PQresultErrorMessage(res));
        PQclear(res);
        r->retry_after = 1;
        ing_reply_error(r, 503, "unavailable", NULL, "The catalog is unavailable; retry shortly.");
        return;
    }
    int n = PQntuples(res);
    int more = n > j->limit;
    if (more)
        n = (int)j->limit;
    json_t *arr = json_array();
    for (int i = 0; arr && i < n; i++)
        json_array_append_new(
            arr, json_pack("{s:I, s:s, s:s, s:s, s:{s:s, s:s}, s:{s:I, s:I}, s:s}", "event_id",
                           (json_int_t)strtoll(PQgetvalue(res, i, 0), NULL, 10), "name",
                           PQgetvalue(res, i, 1), "category", PQgetvalue(res, i, 2), "starts_at",
                           PQgetvalue(res, i, 3), "venue", "name", PQgetvalue(res, i, 4), "city",
                           PQgetvalue(res, i, 5), "price_range", "min_cents",
                           (json_int_t)strtoll(PQgetvalue(res, i, 6), NULL, 10), "max_cents",
                           (json_int_t)strtoll(PQgetvalue(res, i, 7), NULL, 10), "status",
                           PQgetvalue(res, i, 8)));
    json_t *next = json_null();
    if (more) {
        char cur[64];
        cursor_encode(strtoll(PQgetvalue(res, n - 1, 9), NULL, 10),
                      strtoll(PQgetvalue(res, n - 1, 0), NULL, 10), cur);
        json_decref(next);
        next = json_string(cur);
    }
    PQclear(res);
    ing_reply_json(r, 200, json_pack("{s:o, s:o}", "events", arr, "next_cursor", next));
}

/* ---- the handler -------------------------------------------------------------------- */

static const char *const PARAMS[] = {"q",         "city",      "category", "from",  "to",
                                     "min_price", "max_price", "limit",    "cursor"};
enum { P_Q, P_CITY, P_CATEGORY, P_FROM, P_TO, P_MIN, P_MAX, P_LIMIT, P_CURSOR, P_COUNT };

static void bad(ing_req *r, const char *field, const char *what)
{
    ing_reply_error(r, 400, "invalid_field", field, "Parameter '%s' must be %s.", field, what);
}

/* Text parameter of at most maxchars characters; "" counts as absent. */
static int text_param(ing_req *r, const char *v, int idx, size_t maxchars, int *present)
{
    size_t chars = 0;
    if (!v || !v[0]) {
        *present = 0;
        return 0;
    }
    if (!utf8_text_ok(v, &chars) || chars > maxchars) {
        char what[64];
        snprintf(what, sizeof what, "text of at most %zu characters", maxchars);
        bad(r, PARAMS[idx], what);
        return -1;
    }
    *present = 1;
    return 0;
}

void ing_route_events_list(ing_req *r)
{
    nng_http_req *hreq = r->hreq;
    const char *uri = hreq ? nng_http_req_get_uri(hreq) : NULL;
    const char *qs = uri ? strchr(uri, '?') : NULL;
    char *vals[P_COUNT] = {0};
    char key[32];
    catalog_job *j = NULL;
    qs = qs ? qs + 1 : "";
    if (strlen(qs) > CATALOG_QUERY_MAX) {
        ing_reply_error(r, 400, "invalid_query", NULL, "The query string is too long.");
        return;
    }
    /* Split, decode and place every key=value pair. */
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
            ing_reply_error(r, 400, "unknown_field", key, "Unknown query parameter '%s'.", key);
            goto fail;
        }
        if (vals[idx]) {
            ing_reply_error(r, 400, "invalid_field", PARAMS[idx],
                            "Parameter '%s' is given more than once.", PARAMS[idx]);
            goto fail;
        }
        size_t vlen = eq ? len - klen - 1 : 0;
        vals[idx] = malloc(vlen + 1);
        if (!vals[idx]) {
            r->retry_after = 1;
            ing_reply_error(r, 503, "overloaded", NULL, "Out of memory; retry shortly.");
            goto fail;
        }
        if (url_decode(eq ? eq + 1 : s + len, vlen, vals[idx], vlen + 1) < 0) {
            if (idx == P_CURSOR)
                ing_reply_error(r, 400, "invalid_cursor", "cursor",
                                "The cursor is not one we issued.");
            else
                bad(r, PARAMS[idx], "correctly URL-encoded");
            goto fail;
        }
        s += len;
    }

    j = calloc(1, sizeof *j);
    if (!j) {
        r->retry_after = 1;
        ing_reply_error(r, 503, "overloaded", NULL, "Out of memory; retry shortly.");
        goto fail;
    }
    j->limit = CATALOG_DEFAULT_LIMIT;
    int has_q = 0;
    if (text_param(r, vals[P_Q], P_Q, 200, &has_q) ||
        text_param(r, vals[P_CITY], P_CITY, 100, &j->has_city) ||
        text_param(r, vals[P_CATEGORY], P_CATEGORY, 64, &j->has_category))
        goto fail;
    if (j->has_city)
        snprintf(j->city, sizeof j->city, "%s", vals[P_CITY]);
    if (j->has_category)
        snprintf(j->category, sizeof j->category, "%s", vals[P_CATEGORY]);
    if (has_q) {
        /* %q% with the pattern characters escaped (ILIKE's escape is '\'). */
        const char *q = vals[P_Q];
        char *pat = malloc(2 * strlen(q) + 3), *o = pat;
        if (!pat) {
            r->retry_after = 1;
            ing_reply_error(r, 503, "overloaded", NULL, "Out of memory; retry shortly.");
            goto fail;
        }
        *o++ = '%';
        for (; *q; q++) {
            if (*q == '%' || *q == '_' || *q == '\\')
                *o++ = '\\';
            *o++ = *q;
        }
        *o++ = '%';
        *o = '\0';
        j->q_pattern = pat;
    }
    if (vals[P_FROM]) {
        if (ing_parse_rfc3339(vals[P_FROM], &j->from_ms)) {
            bad(r, "from", "an RFC 3339 time such as 2026-11-28T20:00:00Z");
            goto fail;
        }
        j->has_from = 1;
    }
    if (vals[P_TO]) {
        if (ing_parse_rfc3339(vals[P_TO], &j->to_ms)) {
            bad(r, "to", "an RFC 3339 time such as 2026-11-28T20:00:00Z");
            goto fail;
        }
        j->has_to = 1;
    }
    if (vals[P_MIN]) {
        if (parse_u63(vals[P_MIN], &j->min_price)) {
            bad(r, "min_price", "a whole number of cents, 0 or more");
            goto fail;
        }
        j->has_min = 1;
    }
    if (vals[P_MAX]) {
        if (parse_u63(vals[P_MAX], &j->max_price)) {
            bad(r, "max_price", "a whole number of cents, 0 or more");
            goto fail;
        }
        j->has_max = 1;
    }
    if (vals[P_LIMIT] &&
        (parse_u63(vals[P_LIMIT], &j->limit) || j->limit < 1 || j->limit > CATALOG_MAX_LIMIT)) {
        bad(r, "limit", "1 to 100");
        goto fail;
    }
    if (vals[P_CURSOR] && cursor_decode(vals[P_CURSOR], &j->cur_us, &j->cur_id)) {
        ing_reply_error(r, 400, "invalid_cursor", "cursor", "The cursor is not one we issued.");
        goto fail;
    }
    for (int i = 0; i < P_COUNT; i++)
        free(vals[i]);
    r->job = j;
    r->job_free = catalog_job_free;
    ing_req_submit(r, catalog_job_run);
    return;
fail:
    for (int i = 0; i < P_COUNT; i++)
        free(vals[i]);
    catalog_job_free(j);
}
