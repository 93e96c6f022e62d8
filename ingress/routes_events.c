/*
 * routes_events.c - sellers' venues and events, public event details, and
 * pausing, resuming and cancelling a sale.
 *
 * Creating an event writes every seat of its priced sections in one
 * set-based INSERT ... SELECT over generate_series, numbered in allocation
 * order (section position, row, seat), inside one transaction with the event
 * and its tiers; starts_at must be ahead and onsale_at before it. A status
 * change (pause, resume, cancel) writes nothing itself: after checking the
 * caller and the transition it sends an event_status record through the
 * event's partition, whose owner is the only writer of events.status and
 * applies it in order with the intents (cancelling also voids and refunds
 * the tickets: docs/checkout.md). The reply, 202, waits for the delivery
 * report; GET /v1/events/{id} shows the new status once it is applied.
 * An event whose show started events.end_grace_s ago is ended.
 */
#include "ingress/routes.h"
#include "common/err.h"
#include "common/log.h"
#include "ingress/event_cache.h"
#include "ingress/idem.h"
#include "ingress/json_io.h"
#include "ingress/pow.h"
#include "ingress/produce.h"
#include "queue/draw.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SECTIONS 200
#define MAX_TIERS    200

/* ---- PostgreSQL helpers ------------------------------------------------------------ */

/* Builds a PostgreSQL array literal of text items: {"a","b\"c"}. Heap
 * string, caller frees; NULL on allocation failure. */
static char *text_array(const char *const *items, size_t n)
{
    size_t cap = 3;
    for (size_t i = 0; i < n; i++)
        cap += 2 * strlen(items[i]) + 3;
    char *out = malloc(cap), *p = out;
    if (!out)
        return NULL;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        *p++ = '"';
        for (const char *c = items[i]; *c; c++) {
            if (*c == '"' || *c == '\\')
                *p++ = '\\';
            *p++ = *c;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return out;
}

/* Builds {1,2,3}. Heap string, caller frees. */
static char *int_array(const int64_t *v, size_t n)
{
    char *out = malloc(n * 21 + 3), *p = out;
    if (!out)
        return NULL;
    *p++ = '{';
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, i ? ",%" PRId64 : "%" PRId64, v[i]);
    *p++ = '}';
    *p = '\0';
    return out;
}

static int ok(PGresult *res)
{
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    return st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
}

/* Runs a statement whose result is not needed. Returns 0 or ONS_EDB. */
static int exec(ing_worker *w, const char *sql)
{
    PGresult *res = ing_worker_query(w, sql, 0, NULL);
    int rc = ok(res) ? 0 : ONS_EDB;
    PQclear(res);
    return rc;
}

static void db_unavailable(ing_req *r, ing_worker *w)
{
    r->retry_after = 1;
    ing_idem_error(r, w, 503, "unavailable", NULL, "The database is unavailable; retry shortly.");
}

/* ---- POST /v1/venues ------------------------------------------------------------------- */

typedef struct venue_job {
    const char *name, *city, *country, *address;
    double lat, lon;
    int has_lat, has_lon;
    size_t n;
    const char *sec_names[MAX_SECTIONS];
    int64_t rows[MAX_SECTIONS], per_row[MAX_SECTIONS];
    int64_t capacity;
} venue_job;

static void venue_create_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    venue_job *j = r->job;
    if (ing_idem_begin(r, w, "venue"))
        return;
    char owner[24], cap[24], lat[32], lon[32];
    snprintf(owner, sizeof owner, "%" PRId64, r->who.user_id);
    snprintf(cap, sizeof cap, "%" PRId64, j->capacity);
    snprintf(lat, sizeof lat, "%.9g", j->lat);
    snprintf(lon, sizeof lon, "%.9g", j->lon);
    char *names = text_array(j->sec_names, j->n);
    char *rows = int_array(j->rows, j->n);
    char *per = int_array(j->per_row, j->n);
    PGresult *res = NULL;
    if (!names || !rows || !per) {
        r->retry_after = 1;
        ing_idem_error(r, w, 503, "overloaded", NULL, "Out of memory; retry shortly.");
        goto out;
    }
    const char *p[] = {
        owner, j->name, j->city, j->country, j->has_lat ? lat : NULL, j->has_lon ? lon : NULL, cap,
        names, rows,    per,     j->address};
    res = ing_worker_query(
        w,
        "WITH v AS (INSERT INTO venues (owner_id, name, city, country, lat, lon, capacity, "
        "                               address) "
        "           VALUES ($1, $2, $3, $4, $5, $6, $7, $11) RETURNING venue_id), "
        "s AS (INSERT INTO sections (venue_id, name, position, rows, seats_per_row) "
        "      SELECT v.venue_id, t.name, t.ord - 1, t.rows, t.per_row "
        "      FROM v, unnest($8::text[], $9::int[], $10::int[]) WITH ORDINALITY "
        "           AS t(name, rows, per_row, ord) RETURNING 1) "
        "SELECT venue_id, (SELECT count(*) FROM s) FROM v",
        11, p);
    if (!res) {
        db_unavailable(r, w);
        goto out;
    }
    if (!ok(res) || PQntuples(res) != 1) {
        ing_idem_error(r, w, 500, "internal", NULL, "The venue could not be stored.");
        goto out;
    }
    json_t *body =
        json_pack("{s:I, s:I}", "venue_id", (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10),
                  "capacity", (json_int_t)j->capacity);
    ing_idem_reply(r, w, 201, body);
out:
    PQclear(res);
    free(names);
    free(rows);
    free(per);
}

void ing_route_venue_create(ing_req *r)
{
    static const char *const allowed[] = {"name", "city", "country",  "address",
                                          "lat",  "lon",  "sections", NULL};
    static const char *const sec_allowed[] = {"name", "rows", "seats_per_row", NULL};
    venue_job *j = calloc(1, sizeof *j);
    if (!j) {
        r->retry_after = 1;
        ing_reply_error(r, 503, "overloaded", NULL, "Out of memory; retry shortly.");
        return;
    }
    r->job = j;
    r->job_free = free;
    json_t *secs = NULL;
    if (ing_json_only(r, r->body, allowed) ||
        ing_json_str(r, r->body, "name", 1, 1, 200, &j->name) ||
        ing_json_str(r, r->body, "city", 1, 1, 100, &j->city) ||
        ing_json_str(r, r->body, "country", 1, 2, 100, &j->country) ||
        ing_json_str(r, r->body, "address", 0, 1, 300, &j->address) ||
        ing_json_num(r, r->body, "lat", -90, 90, &j->lat, &j->has_lat) ||
        ing_json_num(r, r->body, "lon", -180, 180, &j->lon, &j->has_lon) ||
        ing_json_objects(r, r->body, "sections", MAX_SECTIONS, &secs))
        return;
    /* A position is both coordinates (the catalog's distance filter). */
    if (j->has_lat != j->has_lon) {
        const char *missing = j->has_lat ? "lon" : "lat";
        ing_reply_error(r, 400, "invalid_field", missing,
                        "Fields 'lat' and 'lon' go together ('%s' is missing).", missing);
        return;
    }
    j->n = json_array_size(secs);
    for (size_t i = 0; i < j->n; i++) {
        json_t *s = json_array_get(secs, i);
        if (ing_json_only(r, s, sec_allowed) ||
            ing_json_str(r, s, "name", 1, 1, 64, &j->sec_names[i]) ||
            ing_json_int(r, s, "rows", 1, 1, 1000, &j->rows[i]) ||
            ing_json_int(r, s, "seats_per_row", 1, 1, 1000, &j->per_row[i]))
            return;
        for (size_t k = 0; k < i; k++) {
            if (strcmp(j->sec_names[k], j->sec_names[i]) == 0) {
                ing_reply_error(r, 400, "invalid_field", "sections",
                                "Section names must be unique ('%s' repeats).", j->sec_names[i]);
                return;
            }
        }
        j->capacity += j->rows[i] * j->per_row[i];
    }
    ing_req_submit(r, venue_create_job);
}

/* ---- POST /v1/events ------------------------------------------------------------------------ */

typedef struct event_job {
    int64_t venue_id;
    const char *name, *category, *description, *currency;
    int64_t starts_at_ms, onsale_at_ms;
    int has_onsale;
    int64_t prequeue_opens_at_ms;                    /* 0 = no pre-queue */
    int64_t max_active_holds, admissions_per_minute; /* 0 = no cap */
    int64_t pow_difficulty;                          /* 0 = no proof of work */
    int64_t max_per_user, hold_seconds;
    size_t ntiers;
    const char *tier_sections[MAX_TIERS];
    int64_t tier_prices[MAX_TIERS];
    /* Results, for the reply. */
    int64_t event_id, seats_total;
    char status[16];
} event_job;

/* The transaction of an event creation. Returns 0 (COMMITted) or -1
 * (replied; rolled back). */
static int create_event_tx(ing_req *r, ing_worker *w, event_job *j)
{
    char venue[24], seller[24], starts[32], onsale[32], mpu[8], hold[8], ev[24], preq[32];
    char seed_hex[Q_DRAW_HEX_LEN + 1], commitment[Q_DRAW_HEX_LEN + 1], mah[24], apm[24], pow[8];
    uint8_t seed[Q_DRAW_SEED_LEN];
    char *names = NULL, *prices = NULL;
    PGresult *res = NULL;
    snprintf(venue, sizeof venue, "%" PRId64, j->venue_id);
    if (exec(w, "BEGIN")) {
        db_unavailable(r, w);
        return -1;
    }
    const char *vp[] = {venue};
    res = ing_worker_query(w, "SELECT owner_id FROM venues WHERE venue_id = $1 FOR SHARE", 1, vp);
    if (!ok(res))
        goto db_fail;
    if (PQntuples(res) == 0) {
        ing_idem_error(r, w, 404, "venue_not_found", "venue_id", "No such venue.");
        goto rollback;
    }
    int64_t owner = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    res = NULL;
    if (r->who.role != ONS_ROLE_ADMIN && owner != r->who.user_id) {
        ing_idem_error(r, w, 403, "forbidden", "venue_id", "This venue belongs to another seller.");
        goto rollback;
    }
    int64_t now = ing_now_ms();
    snprintf(j->status, sizeof j->status, "%s",
             j->has_onsale && j->onsale_at_ms > now ? "scheduled" : "on_sale");
    if (!j->has_onsale)
        j->onsale_at_ms = now;
    snprintf(seller, sizeof seller, "%" PRId64, owner);
    snprintf(starts, sizeof starts, "%.3f", (double)j->starts_at_ms / 1000.0);
    snprintf(onsale, sizeof onsale, "%.3f", (double)j->onsale_at_ms / 1000.0);
    snprintf(mpu, sizeof mpu, "%" PRId64, j->max_per_user);
    snprintf(hold, sizeof hold, "%" PRId64, j->hold_seconds);
    /* The draw's seed, committed to from now on (docs/fairness.md). */
    if (q_draw_seed_new(seed))
        goto db_fail;
    q_draw_hex(seed, sizeof seed, seed_hex);
    q_draw_commitment(seed, commitment);
    snprintf(preq, sizeof preq, "%.3f", (double)j->prequeue_opens_at_ms / 1000.0);
    snprintf(mah, sizeof mah, "%" PRId64, j->max_active_holds);
    snprintf(apm, sizeof apm, "%" PRId64, j->admissions_per_minute);
    snprintf(pow, sizeof pow, "%" PRId64, j->pow_difficulty);
    const char *ep[] = {venue,
                        seller,
                        j->name,
                        j->category,
                        j->description,
                        starts,
                        onsale,
                        mpu,
                        hold,
                        j->currency,
                        j->status,
                        j->prequeue_opens_at_ms ? preq : NULL,
                        seed_hex,
                        commitment,
                        mah,
                        apm,
                        pow};
    res = ing_worker_query(
        w,
        "INSERT INTO events (venue_id, seller_id, name, category, description, starts_at, "
        "onsale_at, max_per_user, hold_seconds, currency, status, prequeue_opens_at, draw_seed, "
        "draw_commitment, max_active_holds, admissions_per_minute, pow_difficulty) "
        "VALUES ($1, $2, $3, $4, $5, to_timestamp($6::double precision), "
        "to_timestamp($7::double precision), $8, $9, $10, $11, "
        "to_timestamp($12::double precision), decode($13, 'hex'), $14, nullif($15::int, 0), "
        "nullif($16::int, 0), $17::int) RETURNING event_id",
        17, ep);
    if (!ok(res))
        goto db_fail;
    j->event_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    res = NULL;
    snprintf(ev, sizeof ev, "%" PRId64, j->event_id);

    names = text_array(j->tier_sections, j->ntiers);
    prices = int_array(j->tier_prices, j->ntiers);
    if (!names || !prices)
        goto db_fail;
    const char *tp[] = {ev, venue, names, prices};
    res =
        ing_worker_query(w,
                         "INSERT INTO price_tiers (event_id, section_id, price_cents) "
                         "SELECT $1, s.section_id, t.price FROM unnest($3::text[], $4::bigint[]) "
                         "AS t(name, price) JOIN sections s ON s.venue_id = $2 AND s.name = t.name",
                         4, tp);
    if (!ok(res))
        goto db_fail;
    if ((size_t)atoll(PQcmdTuples(res)) != j->ntiers) {
        ing_idem_error(r, w, 400, "invalid_field", "tiers",
                       "Every tier must name a section of the venue.");
        goto rollback;
    }
    PQclear(res);
    res = NULL;

    /* Every seat of the priced sections, numbered in allocation order:
     * seat_no = seats of better priced sections + (row-1)*per_row + seat-1. */
    const char *sp[] = {ev};
    res = ing_worker_query(
        w,
        "INSERT INTO seats (event_id, seat_no, section_id, row_no, seat_in_row, price_cents) "
        "SELECT $1, (b.base + (rr - 1) * b.seats_per_row + (cc - 1))::int, b.section_id, rr, cc, "
        "       b.price_cents "
        "FROM (SELECT s.section_id, s.rows, s.seats_per_row, pt.price_cents, "
        "             sum(s.rows * s.seats_per_row) OVER (ORDER BY s.position) "
        "               - s.rows * s.seats_per_row AS base "
        "      FROM price_tiers pt JOIN sections s USING (section_id) "
        "      WHERE pt.event_id = $1) b "
        "CROSS JOIN LATERAL generate_series(1, b.rows) AS rr "
        "CROSS JOIN LATERAL generate_series(1, b.seats_per_row) AS cc",
        1, sp);
    if (!ok(res))
        goto db_fail;
    j->seats_total = atoll(PQcmdTuples(res));
    PQclear(res);
    res = NULL;
    char total[24];
    snprintf(total, sizeof total, "%" PRId64, j->seats_total);
    const char *up[] = {ev, total};
    res = ing_worker_query(w, "UPDATE events SET seats_total = $2 WHERE event_id = $1", 2, up);
    if (!ok(res))
        goto db_fail;
    PQclear(res);
    res = NULL;
    if (exec(w, "COMMIT"))
        goto db_fail;
    free(names);
    free(prices);
    return 0;
db_fail:
    if (res && PQresultStatus(res) == PGRES_FATAL_ERROR)
        ons_logk(ONS_LOG_WARN, "request_id", r->rid, "event create: %s", PQresultErrorMessage(res));
    if (!res)
        db_unavailable(r, w);
    else
        ing_idem_error(r, w, 500, "internal", NULL, "The event could not be stored.");
rollback:
    PQclear(res);
    exec(w, "ROLLBACK");
    free(names);
    free(prices);
    return -1;
}

static void event_create_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    event_job *j = r->job;
    if (ing_idem_begin(r, w, "event"))
        return;
    if (create_event_tx(r, w, j))
        return;
    if (q_status_event_set(w->st, j->event_id, j->status, j->onsale_at_ms, (int)j->max_per_user) ||
        q_status_event_set_fair(w->st, j->event_id, j->prequeue_opens_at_ms, j->max_active_holds,
                                j->admissions_per_minute) ||
        q_status_event_set_pow(w->st, j->event_id, (int)j->pow_difficulty))
        ons_logk(ONS_LOG_WARN, "request_id", r->rid, "event %" PRId64 ": redis not updated",
                 j->event_id);
    json_t *body = json_pack("{s:I, s:I, s:s}", "event_id", (json_int_t)j->event_id, "seats_total",
                             (json_int_t)j->seats_total, "status", j->status);
    ing_idem_reply(r, w, 201, body);
}

/* The n price tiers of a request ({section, price_cents} objects, each
 * section once) into sections/prices (pointing into the body). 0, or -1
 * when a 400 was replied. */
static int parse_tiers(ing_req *r, json_t *tiers, size_t n, const char **sections, int64_t *prices)
{
    static const char *const tier_allowed[] = {"section", "price_cents", NULL};
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(tiers, i);
        if (ing_json_only(r, t, tier_allowed) ||
            ing_json_str(r, t, "section", 1, 1, 64, &sections[i]) ||
            ing_json_int(r, t, "price_cents", 1, 0, INT64_C(10000000000), &prices[i]))
            return -1;
        for (size_t k = 0; k < i; k++) {
            if (strcmp(sections[k], sections[i]) == 0) {
                ing_reply_error(r, 400, "invalid_field", "tiers",
                                "Each section may be priced once ('%s' repeats).", sections[i]);
                return -1;
            }
        }
    }
    return 0;
}

void ing_route_event_create(ing_req *r)
{
    static const char *const allowed[] = {"venue_id",
                                          "name",
                                          "category",
                                          "starts_at",
                                          "onsale_at",
                                          "description",
                                          "max_per_user",
                                          "hold_seconds",
                                          "tiers",
                                          "currency",
                                          "prequeue_opens_at",
                                          "max_active_holds",
                                          "admissions_per_minute",
                                          "pow_difficulty",
                                          NULL};
    event_job *j = calloc(1, sizeof *j);
    if (!j) {
        r->retry_after = 1;
        ing_reply_error(r, 503, "overloaded", NULL, "Out of memory; retry shortly.");
        return;
    }
    r->job = j;
    r->job_free = free;
    j->description = "";
    j->currency = "USD";
    j->max_per_user = 8;
    j->hold_seconds = 900;
    json_t *tiers = NULL;
    if (ing_json_only(r, r->body, allowed) ||
        ing_json_int(r, r->body, "venue_id", 1, 1, INT64_MAX, &j->venue_id) ||
        ing_json_str(r, r->body, "name", 1, 1, 200, &j->name) ||
        ing_json_str(r, r->body, "category", 1, 1, 64, &j->category) ||
        ing_json_time(r, r->body, "starts_at", 1, &j->starts_at_ms) ||
        ing_json_str(r, r->body, "description", 0, 0, 4000, &j->description) ||
        ing_json_int(r, r->body, "max_per_user", 0, 1, 10, &j->max_per_user) ||
        ing_json_int(r, r->body, "hold_seconds", 0, 60, 3600, &j->hold_seconds) ||
        ing_json_str(r, r->body, "currency", 0, 3, 3, &j->currency) ||
        ing_json_objects(r, r->body, "tiers", MAX_TIERS, &tiers) ||
        ing_json_int(r, r->body, "pow_difficulty", 0, 0, ING_POW_MAX_DIFFICULTY,
                     &j->pow_difficulty))
        return;
    if (json_object_get(r->body, "onsale_at")) {
        if (ing_json_time(r, r->body, "onsale_at", 1, &j->onsale_at_ms))
            return;
        j->has_onsale = 1;
    }
    if (ing_json_cap(r, r->body, "max_active_holds", &j->max_active_holds) ||
        ing_json_cap(r, r->body, "admissions_per_minute", &j->admissions_per_minute))
        return;
    if (json_object_get(r->body, "prequeue_opens_at") &&
        ing_json_time(r, r->body, "prequeue_opens_at", 1, &j->prequeue_opens_at_ms))
        return;
    /* Semantic checks answer 400 invalid_field like every other field rule. */
    if (j->prequeue_opens_at_ms && (!j->has_onsale || j->prequeue_opens_at_ms >= j->onsale_at_ms ||
                                    j->onsale_at_ms <= ing_now_ms())) {
        ing_reply_error(r, 400, "invalid_field", "prequeue_opens_at",
                        "Field 'prequeue_opens_at' needs an 'onsale_at' in the future and must be "
                        "before it: the pre-queue opens before the sale.");
        return;
    }
    if (j->starts_at_ms <= ing_now_ms()) {
        ing_reply_error(r, 400, "invalid_field", "starts_at",
                        "Field 'starts_at' must be in the future.");
        return;
    }
    if (j->has_onsale && j->onsale_at_ms >= j->starts_at_ms) {
        ing_reply_error(r, 400, "invalid_field", "onsale_at",
                        "Field 'onsale_at' must be before 'starts_at': the sale opens before "
                        "the show.");
        return;
    }
    for (int i = 0; i < 3; i++) {
        if (j->currency[i] < 'A' || j->currency[i] > 'Z') {
            ing_reply_error(r, 400, "invalid_field", "currency",
                            "Field 'currency' must be an ISO 4217 code such as USD.");
            return;
        }
    }
    j->ntiers = json_array_size(tiers);
    if (parse_tiers(r, tiers, j->ntiers, j->tier_sections, j->tier_prices))
        return;
    ing_req_submit(r, event_create_job);
}

/* ---- GET /v1/events/{id} -----------------------------------------------------------------------
 */

typedef struct event_ref {
    int64_t event_id;
    const char *to_status; /* status changes only */
    char status[16];
} event_ref;

static event_ref *new_event_ref(ing_req *r, const char *to_status)
{
    int64_t id;
    if (ing_path_id(r, r->params[0], &id))
        return NULL;
    event_ref *j = calloc(1, sizeof *j);
    if (!j) {
        r->retry_after = 1;
        ing_reply_error(r, 503, "overloaded", NULL, "Out of memory; retry shortly.");
        return NULL;
    }
    j->event_id = id;
    j->to_status = to_status;
    r->job = j;
    r->job_free = free;
    return j;
}

/* ---- pause / resume / cancel --------------------------------------------------------------------
 */

/* Which current statuses each change accepts. Repeating a change is
 * accepted (and re-sent), so a client may retry after a 503. */
static int transition_allowed(const char *to, const char *from)
{
    if (strcmp(to, "paused") == 0)
        return !strcmp(from, "on_sale") || !strcmp(from, "scheduled") || !strcmp(from, "paused") ||
               !strcmp(from, "sold_out");
    if (strcmp(to, "on_sale") == 0)
        return !strcmp(from, "paused") || !strcmp(from, "on_sale") || !strcmp(from, "scheduled") ||
               !strcmp(from, "sold_out");
    if (strcmp(to, "cancelled") == 0)
        return strcmp(from, "ended") != 0;
    return 0;
}

/* The owner applied nothing yet: the reply says what was asked and where
 * to watch for it (GET /v1/events/{id} shows the status once applied). */
static void status_delivered(ing_worker *w, void *arg)
{
    (void)w;
    ing_req *r = arg;
    event_ref *j = r->job;
    if (r->produce_err) {
        r->retry_after = 1;
        ing_reply_error(r, 503, "queue_unavailable", NULL,
                        "The queue could not take the status change; retry the request.");
        return;
    }
    char url[48];
    snprintf(url, sizeof url, "/v1/events/%" PRId64, j->event_id);
    ing_events_forget(r->app->events, j->event_id);
    ing_reply_json(r, 202,
                   json_pack("{s:I, s:s, s:s}", "event_id", (json_int_t)j->event_id, "status",
                             j->status, "status_url", url));
}

/* Checks the caller may make the change and it is legal now, then sends an
 * event_status record through the event's partition: its owner is the only
 * writer of events.status and applies the change in order with the intents
 * (and re-checks it: a change that crossed a cancel in the log is dropped).
 * The reply waits for the delivery report. */
static void status_change_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    event_ref *j = r->job;
    char ev[24], grace[24];
    snprintf(ev, sizeof ev, "%" PRId64, j->event_id);
    snprintf(grace, sizeof grace, "%lld", r->app->o.events_end_grace_s);
    const char *p[] = {ev, grace};
    PGresult *res = ing_worker_query(
        w,
        "SELECT seller_id, CASE WHEN status NOT IN ('cancelled', 'ended') AND "
        "  now() >= starts_at + make_interval(secs => $2::bigint) THEN 'ended' ELSE status END "
        "FROM events WHERE event_id = $1",
        2, p);
    if (!res || !ok(res)) {
        PQclear(res);
        r->retry_after = 1;
        ing_reply_error(r, 503, "unavailable", NULL, "The database is unavailable; retry shortly.");
        return;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        ing_reply_error(r, 404, "event_not_found", NULL, "No such event.");
        return;
    }
    int64_t seller = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    char from[16];
    snprintf(from, sizeof from, "%s", PQgetvalue(res, 0, 1));
    PQclear(res);
    if (r->who.role != ONS_ROLE_ADMIN && seller != r->who.user_id) {
        ing_reply_error(r, 403, "forbidden", NULL, "This event belongs to another seller.");
        return;
    }
    if (!transition_allowed(j->to_status, from)) {
        ing_reply_error(r, 409, "invalid_transition", NULL,
                        "This event is %s; it cannot become %s.", from, j->to_status);
        return;
    }
    /* Resuming a sold-out or scheduled event keeps what it was. */
    const char *to = j->to_status;
    if (strcmp(to, "on_sale") == 0 && (!strcmp(from, "sold_out") || !strcmp(from, "scheduled")))
        to = from;
    snprintf(j->status, sizeof j->status, "%s", to);
    q_msg m;
    memset(&m, 0, sizeof m);
    m.type = Q_MSG_EVENT_STATUS;
    m.event_id = j->event_id;
    m.sent_ms = ing_now_ms();
    /* The worker knows on_sale/paused/cancelled/ended; "on_sale" asks it to
     * resume (a paused sale whose onsale_at is ahead becomes scheduled). */
    snprintf(m.status, sizeof m.status, "%s", j->to_status);
    if (ing_produce(r, &m, status_delivered)) {
        r->retry_after = 1;
        ing_reply_error(r, 503, "queue_unavailable", NULL,
                        "The queue cannot take the status change right now; nothing was queued.");
    }
}

void ing_route_event_pause(ing_req *r)
{
    if (new_event_ref(r, "paused"))
        ing_req_submit(r, status_change_job);
}

void ing_route_event_resume(ing_req *r)
{
    if (new_event_ref(r, "on_sale"))
        ing_req_submit(r, status_change_job);
}

void ing_route_event_cancel(ing_req *r)
{
    if (new_event_ref(r, "cancelled"))
        ing_req_submit(r, status_change_job);
}

/* ---- PATCH /v1/events/{id} ----------------------------------------------------------------------
 *
 * Who writes what (docs/api.md "Sellers", docs/tickets.md "Editing an
 * event"): name, description and category live only in PostgreSQL (the
 * partition owner never reads them), so ingress writes them at any time
 * until the event is cancelled or ended; GET /v1/events/{id} shows them
 * within event_view.ttl_ms. Tier prices and starts_at are also held in the
 * owner's memory once it loads the event (prices decide allocation and
 * totals, starts_at the end of the sale and the refund cut-off), and the
 * owner is their one writer from then on. So ingress changes them only
 * while the sale has not opened (status scheduled, onsale_at ahead) AND the
 * owner has never loaded the event (events.owner_loaded_at NULL, which the
 * owner sets with an UPDATE when it loads: that UPDATE and this transaction
 * serialise on the event row, so the owner loads either the old prices and
 * then nothing changes them, or the new ones). Otherwise they answer 409
 * prices_locked / starts_at_locked. */

typedef struct event_patch {
    int64_t event_id;
    const char *name, *description, *category; /* NULL: unchanged */
    int64_t starts_at_ms;                      /* 0: unchanged */
    size_t ntiers;
    const char *tier_sections[MAX_TIERS];
    int64_t tier_prices[MAX_TIERS];
} event_patch;

/* The transaction of an edit; replies in every case. */
static void event_update_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    event_patch *j = r->job;
    char ev[24], grace[24], starts[32];
    char *names = NULL, *prices = NULL;
    PGresult *res = NULL;
    snprintf(ev, sizeof ev, "%" PRId64, j->event_id);
    snprintf(grace, sizeof grace, "%lld", r->app->o.events_end_grace_s);
    snprintf(starts, sizeof starts, "%.3f", (double)j->starts_at_ms / 1000.0);
    if (exec(w, "BEGIN")) {
        db_unavailable(r, w);
        return;
    }
    const char *lp[] = {ev, grace};
    res = ing_worker_query(
        w,
        "SELECT seller_id, CASE WHEN status NOT IN ('cancelled', 'ended') AND "
        "  now() >= starts_at + make_interval(secs => $2::bigint) THEN 'ended' ELSE status END, "
        "  status = 'scheduled' AND onsale_at > now() AND owner_loaded_at IS NULL, "
        "  (extract(epoch FROM onsale_at) * 1000)::bigint "
        "FROM events WHERE event_id = $1 FOR UPDATE",
        2, lp);
    if (!ok(res))
        goto db_fail;
    if (PQntuples(res) == 0) {
        ing_reply_error(r, 404, "event_not_found", NULL, "No such event.");
        goto rollback;
    }
    int64_t seller = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    char status[16];
    snprintf(status, sizeof status, "%s", PQgetvalue(res, 0, 1));
    int before_sale = PQgetvalue(res, 0, 2)[0] == 't';
    int64_t onsale_ms = strtoll(PQgetvalue(res, 0, 3), NULL, 10);
    PQclear(res);
    res = NULL;
    if (r->who.role != ONS_ROLE_ADMIN && seller != r->who.user_id) {
        ing_reply_error(r, 403, "forbidden", NULL, "This event belongs to another seller.");
        goto rollback;
    }
    if (!strcmp(status, "cancelled") || !strcmp(status, "ended")) {
        ing_reply_error(r, 409, "sale_closed", NULL, "This event is %s; it can no longer change.",
                        status);
        goto rollback;
    }
    if (j->ntiers > 0 && !before_sale) {
        ing_reply_error(r, 409, "prices_locked", "tiers",
                        "Prices can change only before the sale opens (this event is %s and "
                        "its sale is under way or about to be).",
                        status);
        goto rollback;
    }
    if (j->starts_at_ms > 0 && !before_sale) {
        ing_reply_error(r, 409, "starts_at_locked", "starts_at",
                        "The show's time can change only before the sale opens: fans bought "
                        "tickets for it and refunds are timed from it.");
        goto rollback;
    }
    if (j->starts_at_ms > 0 && j->starts_at_ms <= onsale_ms) {
        ing_reply_error(r, 400, "invalid_field", "starts_at",
                        "Field 'starts_at' must be after the sale opens (onsale_at).");
        goto rollback;
    }
    const char *up[] = {ev, j->name, j->description, j->category,
                        j->starts_at_ms > 0 ? starts : NULL};
    res = ing_worker_query(w,
                           "UPDATE events SET name = coalesce($2, name), "
                           "description = coalesce($3, description), "
                           "category = coalesce($4, category), "
                           "starts_at = coalesce(to_timestamp($5::double precision), starts_at) "
                           "WHERE event_id = $1",
                           5, up);
    if (!ok(res))
        goto db_fail;
    PQclear(res);
    res = NULL;
    if (j->ntiers > 0) {
        names = text_array(j->tier_sections, j->ntiers);
        prices = int_array(j->tier_prices, j->ntiers);
        if (!names || !prices)
            goto db_fail;
        const char *tp[] = {ev, names, prices};
        res = ing_worker_query(w,
                               "UPDATE price_tiers pt SET price_cents = t.price "
                               "FROM unnest($2::text[], $3::bigint[]) AS t(name, price), "
                               "sections s WHERE pt.event_id = $1 AND s.section_id = pt.section_id "
                               "AND s.name = t.name",
                               3, tp);
        if (!ok(res))
            goto db_fail;
        if ((size_t)atoll(PQcmdTuples(res)) != j->ntiers) {
            ing_reply_error(r, 400, "invalid_field", "tiers",
                            "Every tier must name a priced section of the event.");
            goto rollback;
        }
        PQclear(res);
        res = NULL;
        /* Seats carry their price (the owner loads it from them). */
        const char *sp[] = {ev};
        res = ing_worker_query(w,
                               "UPDATE seats st SET price_cents = pt.price_cents "
                               "FROM price_tiers pt WHERE st.event_id = $1 AND pt.event_id = $1 "
                               "AND pt.section_id = st.section_id "
                               "AND st.price_cents <> pt.price_cents",
                               1, sp);
        if (!ok(res))
            goto db_fail;
        PQclear(res);
        res = NULL;
    }
    const char *rp[] = {ev};
    res = ing_worker_query(
        w,
        "SELECT json_build_object('event_id', e.event_id, 'name', e.name, 'category', "
        "e.category, 'description', e.description, 'starts_at', "
        "to_char(e.starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'status', "
        "e.status, 'tiers', (SELECT json_agg(json_build_object('section', s.name, 'price_cents', "
        "pt.price_cents) ORDER BY s.position) FROM price_tiers pt JOIN sections s USING "
        "(section_id) WHERE pt.event_id = e.event_id))::text FROM events e WHERE e.event_id = $1",
        1, rp);
    if (!ok(res) || PQntuples(res) != 1)
        goto db_fail;
    if (exec(w, "COMMIT"))
        goto db_fail;
    ing_reply_raw(r, 200, PQgetvalue(res, 0, 0));
    PQclear(res);
    free(names);
    free(prices);
    return;
db_fail:
    if (res && PQresultStatus(res) == PGRES_FATAL_ERROR)
        ons_logk(ONS_LOG_WARN, "request_id", r->rid, "event update: %s", PQresultErrorMessage(res));
    if (!res) {
        r->retry_after = 1;
        ing_reply_error(r, 503, "unavailable", NULL, "The database is unavailable; retry shortly.");
    } else {
        ing_reply_error(r, 500, "internal", NULL, "The event could not be updated.");
    }
rollback:
    PQclear(res);
    exec(w, "ROLLBACK");
    free(names);
    free(prices);
}

void ing_route_event_update(ing_req *r)
{
    static const char *const allowed[] = {"name",      "category", "description",
                                          "starts_at", "tiers",    NULL};
    int64_t id;
    if (ing_path_id(r, r->params[0], &id))
        return;
    event_patch *j = calloc(1, sizeof *j);
    if (!j) {
        r->retry_after = 1;
        ing_reply_error(r, 503, "overloaded", NULL, "Out of memory; retry shortly.");
        return;
    }
    r->job = j;
    r->job_free = free;
    j->event_id = id;
    json_t *tiers = NULL;
    if (ing_json_only(r, r->body, allowed) ||
        ing_json_str(r, r->body, "name", 0, 1, 200, &j->name) ||
        ing_json_str(r, r->body, "category", 0, 1, 64, &j->category) ||
        ing_json_str(r, r->body, "description", 0, 0, 4000, &j->description) ||
        ing_json_time(r, r->body, "starts_at", 0, &j->starts_at_ms))
        return;
    if (json_object_size(r->body) == 0) {
        ing_reply_error(r, 400, "missing_field", NULL,
                        "Name at least one field to change (name, category, description, "
                        "starts_at, tiers).");
        return;
    }
    if (json_object_get(r->body, "starts_at") && j->starts_at_ms <= ing_now_ms()) {
        ing_reply_error(r, 400, "invalid_field", "starts_at",
                        "Field 'starts_at' must be in the future.");
        return;
    }
    if (json_object_get(r->body, "tiers")) {
        if (ing_json_objects(r, r->body, "tiers", MAX_TIERS, &tiers))
            return;
        j->ntiers = json_array_size(tiers);
    }
    if (parse_tiers(r, tiers, j->ntiers, j->tier_sections, j->tier_prices))
        return;
    ing_req_submit(r, event_update_job);
}
