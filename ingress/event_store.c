/* event_store.c - venues and events in PostgreSQL for ingress; see
 * event_store.h. */
#include "ingress/event_store.h"
#include "common/err.h"
#include "common/log.h"
#include "ingress/pg_row.h"

#include <jansson.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs a statement with bigint parameters whose result is not needed. */
static int exec_i64(ing_worker *w, const char *rid, const char *what, const char *sql, int n,
                    const int64_t *v)
{
    PGresult *res = ing_pg_query_i64(w, 0, sql, n, v);
    int rc = ing_pg_status(res, rid, what);
    PQclear(res);
    return rc;
}

int ing_event_partitions(ing_worker *w, int64_t event_id, int *n)
{
    int64_t v[] = {event_id}, parts = 0;
    int rc = ing_pg_one(
        ing_pg_query_i64(w, 0, "SELECT partitions FROM events WHERE event_id = $1", 1, v), NULL,
        "event partitions", ing_pg_read_i64, &parts);
    if (rc == 0 && (parts < 1 || parts > 65536))
        rc = ONS_EDB;
    if (rc == 0)
        *n = (int)parts;
    return rc;
}

int ing_event_set_pow(ing_worker *w, const char *rid, int64_t event_id, int64_t difficulty)
{
    int64_t v[] = {event_id, difficulty};
    return exec_i64(w, rid, "event pow",
                    "UPDATE events SET pow_difficulty = $2 WHERE event_id = $1", 2, v);
}

/* Runs sql over tiers given by section name: $1 the event, then (when
 * venue_id > 0) $2 the venue, then the names and the prices as arrays.
 * ONS_EINVAL when it touched fewer rows than there are tiers (a name that
 * is no section). */
static int by_section_names(ing_worker *w, const char *rid, const char *what, const char *sql,
                            int64_t event_id, int64_t venue_id, const char *const *sections,
                            const int64_t *prices, size_t n)
{
    char ev[24], venue[24];
    ing_pg_i64_text(event_id, ev);
    ing_pg_i64_text(venue_id, venue);
    char *names = ing_pg_text_array(sections, n);
    char *cents = ing_pg_int_array(prices, n);
    int rc = ONS_ENOMEM;
    if (names && cents) {
        const char *p[] = {ev, venue, names, cents};
        const char *q[] = {ev, names, cents};
        PGresult *res =
            venue_id > 0 ? ing_worker_query(w, sql, 4, p) : ing_worker_query(w, sql, 3, q);
        int64_t touched = 0;
        rc = ing_pg_status(res, rid, what);
        if (rc == 0 && ing_pg_affected(res, &touched))
            rc = ONS_EDB;
        else if (rc == 0 && (size_t)touched != n)
            rc = ONS_EINVAL;
        PQclear(res);
    }
    free(names);
    free(cents);
    return rc;
}

/* ms since epoch as the seconds text to_timestamp() takes. */
static void secs_text(int64_t ms, char out[32])
{
    snprintf(out, 32, "%.3f", (double)ms / 1000.0);
}

/* ---- venues ---------------------------------------------------------------------------- */

int ing_venue_insert(ing_worker *w, const char *rid, const ing_venue_new *in, int64_t *venue_id)
{
    char owner[24], cap[24], lat[32], lon[32];
    ing_pg_i64_text(in->owner_id, owner);
    ing_pg_i64_text(in->capacity, cap);
    snprintf(lat, sizeof lat, "%.9g", in->lat);
    snprintf(lon, sizeof lon, "%.9g", in->lon);
    char *names = ing_pg_text_array(in->section_names, in->nsections);
    char *rows = ing_pg_int_array(in->rows, in->nsections);
    char *per = ing_pg_int_array(in->seats_per_row, in->nsections);
    int rc = ONS_ENOMEM;
    if (!names || !rows || !per)
        goto out;
    const char *p[] = {owner,
                       in->name,
                       in->city,
                       in->country,
                       in->has_pos ? lat : NULL,
                       in->has_pos ? lon : NULL,
                       cap,
                       names,
                       rows,
                       per,
                       in->address};
    PGresult *res = ing_worker_query(
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
    rc = ing_pg_one(res, rid, "venue insert", ing_pg_read_i64, venue_id);
    rc = rc == ONS_ENOTFOUND ? ONS_EDB : rc;
out:
    free(names);
    free(rows);
    free(per);
    return rc;
}

/* ---- events ------------------------------------------------------------------------------ */

/* The venue's owner, read FOR SHARE: 0, ONS_ENOTFOUND or ONS_EAUTH. */
static int venue_check(ing_worker *w, const char *rid, const ing_event_new *in, int64_t *owner)
{
    int64_t v[] = {in->venue_id};
    int rc = ing_pg_one(ing_pg_query_i64(w, 0,
                                         "SELECT owner_id FROM venues WHERE venue_id = $1 "
                                         "FOR SHARE",
                                         1, v),
                        rid, "venue owner", ing_pg_read_i64, owner);
    if (rc == 0 && !in->is_admin && *owner != in->acting_user)
        rc = ONS_EAUTH;
    return rc;
}

static int event_row_insert(ing_worker *w, const char *rid, const ing_event_new *in,
                            int64_t seller_id, int64_t *event_id)
{
    char venue[24], seller[24], starts[32], onsale[32], mpu[24], hold[24], preq[32], mah[24],
        apm[24], pow[24], parts[24];
    ing_pg_i64_text(in->venue_id, venue);
    ing_pg_i64_text(seller_id, seller);
    secs_text(in->starts_at_ms, starts);
    secs_text(in->onsale_at_ms, onsale);
    secs_text(in->prequeue_opens_at_ms, preq);
    ing_pg_i64_text(in->max_per_user, mpu);
    ing_pg_i64_text(in->hold_seconds, hold);
    ing_pg_i64_text(in->max_active_holds, mah);
    ing_pg_i64_text(in->admissions_per_minute, apm);
    ing_pg_i64_text(in->pow_difficulty, pow);
    ing_pg_i64_text(in->partitions, parts);
    const char *ep[] = {venue,
                        seller,
                        in->name,
                        in->category,
                        in->description,
                        starts,
                        onsale,
                        mpu,
                        hold,
                        in->currency,
                        in->status,
                        in->prequeue_opens_at_ms ? preq : NULL,
                        in->draw_seed_hex,
                        in->draw_commitment,
                        mah,
                        apm,
                        pow,
                        parts};
    PGresult *res = ing_worker_query(
        w,
        "INSERT INTO events (venue_id, seller_id, name, category, description, starts_at, "
        "onsale_at, max_per_user, hold_seconds, currency, status, prequeue_opens_at, draw_seed, "
        "draw_commitment, max_active_holds, admissions_per_minute, pow_difficulty, partitions) "
        "VALUES ($1, $2, $3, $4, $5, to_timestamp($6::double precision), "
        "to_timestamp($7::double precision), $8, $9, $10, $11, "
        "to_timestamp($12::double precision), decode($13, 'hex'), $14, nullif($15::int, 0), "
        "nullif($16::int, 0), $17::int, $18::int) RETURNING event_id",
        18, ep);
    int rc = ing_pg_one(res, rid, "event insert", ing_pg_read_i64, event_id);
    return rc == ONS_ENOTFOUND ? ONS_EDB : rc;
}

/* The tiers by section name; ONS_EINVAL when one names no section. */
static int tiers_insert(ing_worker *w, const char *rid, const ing_event_new *in, int64_t event_id)
{
    return by_section_names(
        w, rid, "price tiers insert",
        "INSERT INTO price_tiers (event_id, section_id, price_cents) "
        "SELECT $1, s.section_id, t.price FROM unnest($3::text[], $4::bigint[]) "
        "AS t(name, price) JOIN sections s ON s.venue_id = $2 AND s.name = t.name",
        event_id, in->venue_id, in->tier_sections, in->tier_prices, in->ntiers);
}

/* ONS_ERANGE when the priced sections of the event hold more than max
 * seats: checked before the seats are written, since a venue may be over
 * the cap (made before it, or the cap lowered since) and writing the rows
 * is the work the cap bounds. */
static int seats_within(ing_worker *w, const char *rid, int64_t event_id, int64_t max)
{
    int64_t v[] = {event_id}, n = 0;
    int rc =
        ing_pg_one(ing_pg_query_i64(w, 0,
                                    "SELECT coalesce(sum(s.rows::bigint * s.seats_per_row), 0) "
                                    "FROM price_tiers pt JOIN sections s USING (section_id) "
                                    "WHERE pt.event_id = $1",
                                    1, v),
                   rid, "priced seats", ing_pg_read_i64, &n);
    return rc ? rc : n > max ? ONS_ERANGE : 0;
}

/* Every seat of the priced sections, numbered in allocation order:
 * seat_no = seats of better priced sections + (row-1)*per_row + seat-1;
 * then events.seats_total. */
static int seats_insert(ing_worker *w, const char *rid, int64_t event_id, int64_t *total)
{
    int64_t v[] = {event_id, 0};
    PGresult *res = ing_pg_query_i64(
        w, 0,
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
        1, v);
    int rc = ing_pg_status(res, rid, "seats insert");
    if (rc == 0 && ing_pg_affected(res, total))
        rc = ONS_EDB;
    PQclear(res);
    if (rc)
        return rc;
    v[1] = *total;
    return exec_i64(w, rid, "seats_total", "UPDATE events SET seats_total = $2 WHERE event_id = $1",
                    2, v);
}

int ing_event_insert(ing_worker *w, const char *rid, const ing_event_new *in,
                     ing_event_created *out)
{
    int64_t owner = 0;
    if (ing_pg_exec(w, "BEGIN"))
        return ONS_EUNAVAIL;
    int rc = venue_check(w, rid, in, &owner);
    if (!rc)
        rc = event_row_insert(w, rid, in, owner, &out->event_id);
    if (!rc)
        rc = tiers_insert(w, rid, in, out->event_id);
    if (!rc)
        rc = seats_within(w, rid, out->event_id, in->max_seats);
    if (!rc)
        rc = seats_insert(w, rid, out->event_id, &out->seats_total);
    if (!rc)
        rc = ing_pg_exec(w, "COMMIT") ? ONS_EDB : 0;
    if (rc)
        ing_pg_exec(w, "ROLLBACK");
    return rc;
}

/* The owner row; $2 < 0: the stored status as is. */
#define OWNER_SELECT                                                                               \
    "SELECT seller_id, CASE WHEN $2::bigint >= 0 AND status NOT IN ('cancelled', 'ended') AND "    \
    "  now() >= starts_at + make_interval(secs => $2::bigint) THEN 'ended' ELSE status END, "      \
    "  status = 'scheduled' AND onsale_at > now() AND owner_loaded_at IS NULL, "                   \
    "  (extract(epoch FROM onsale_at) * 1000)::bigint "                                            \
    "FROM events WHERE event_id = $1"

static int read_owner(const PGresult *res, int i, void *item)
{
    ing_event_owner *o = item;
    ing_pg_text(res, i, 1, o->status, sizeof o->status);
    o->before_sale = ing_pg_bool(res, i, 2);
    return ing_pg_i64(res, i, 0, &o->seller_id) || ing_pg_i64(res, i, 3, &o->onsale_at_ms);
}

int ing_event_owner_get(ing_worker *w, int64_t event_id, long long end_grace_s, int lock,
                        ing_event_owner *out)
{
    int64_t v[] = {event_id, end_grace_s};
    PGresult *res = ing_pg_query_i64(w, 0, lock ? OWNER_SELECT " FOR UPDATE" : OWNER_SELECT, 2, v);
    return ing_pg_one(res, NULL, "event owner", read_owner, out);
}

int ing_event_tx_begin(ing_worker *w)
{
    return ing_pg_exec(w, "BEGIN") ? ONS_EUNAVAIL : 0;
}

void ing_event_tx_rollback(ing_worker *w)
{
    ing_pg_exec(w, "ROLLBACK");
}

/* New tier prices by section name, then the seats' prices. */
static int prices_update(ing_worker *w, const char *rid, const ing_event_edit *in)
{
    int rc = by_section_names(w, rid, "price tiers update",
                              "UPDATE price_tiers pt SET price_cents = t.price "
                              "FROM unnest($2::text[], $3::bigint[]) AS t(name, price), "
                              "sections s WHERE pt.event_id = $1 AND s.section_id = pt.section_id "
                              "AND s.name = t.name",
                              in->event_id, 0, in->tier_sections, in->tier_prices, in->ntiers);
    if (rc)
        return rc;
    /* Seats carry their price (the owner loads it from them). */
    int64_t v[] = {in->event_id};
    return exec_i64(w, rid, "seat prices update",
                    "UPDATE seats st SET price_cents = pt.price_cents "
                    "FROM price_tiers pt WHERE st.event_id = $1 AND pt.event_id = $1 "
                    "AND pt.section_id = st.section_id AND st.price_cents <> pt.price_cents",
                    1, v);
}

/* PostgreSQL's JSON text (json_build_object spaces it: {"event_id" : 1})
 * as every answer is written: compact, fields in their order. Heap, or
 * NULL (not JSON, out of memory). */
static char *compact_json(const char *text)
{
    json_t *o = json_loads(text, 0, NULL);
    char *out = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return out;
}

/* The event as the PATCH reply shows it, as compact JSON text (heap). */
static int event_json(ing_worker *w, const char *rid, int64_t event_id, char **json)
{
    int64_t v[] = {event_id};
    PGresult *res = ing_pg_query_i64(
        w, 0,
        "SELECT json_build_object('event_id', e.event_id, 'name', e.name, 'category', "
        "e.category, 'description', e.description, 'starts_at', "
        "to_char(e.starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'status', "
        "e.status, 'tiers', (SELECT json_agg(json_build_object('section', s.name, 'price_cents', "
        "pt.price_cents) ORDER BY s.position) FROM price_tiers pt JOIN sections s USING "
        "(section_id) WHERE pt.event_id = e.event_id))::text FROM events e WHERE e.event_id = $1",
        1, v);
    int rc = ing_pg_status(res, rid, "event json");
    if (rc == 0 && (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)))
        rc = ONS_EDB;
    if (rc == 0 && !(*json = compact_json(PQgetvalue(res, 0, 0))))
        rc = ONS_ENOMEM;
    PQclear(res);
    return rc;
}

int ing_event_update(ing_worker *w, const char *rid, const ing_event_edit *in, char **json)
{
    char ev[24], starts[32];
    ing_pg_i64_text(in->event_id, ev);
    secs_text(in->starts_at_ms, starts);
    *json = NULL;
    const char *up[] = {ev, in->name, in->description, in->category,
                        in->starts_at_ms > 0 ? starts : NULL};
    PGresult *res =
        ing_worker_query(w,
                         "UPDATE events SET name = coalesce($2, name), "
                         "description = coalesce($3, description), "
                         "category = coalesce($4, category), "
                         "starts_at = coalesce(to_timestamp($5::double precision), starts_at) "
                         "WHERE event_id = $1",
                         5, up);
    int rc = ing_pg_status(res, rid, "event update");
    PQclear(res);
    if (!rc && in->ntiers > 0)
        rc = prices_update(w, rid, in);
    if (!rc)
        rc = event_json(w, rid, in->event_id, json);
    if (!rc && ing_pg_exec(w, "COMMIT"))
        rc = ONS_EDB;
    if (rc) {
        free(*json);
        *json = NULL;
        ing_pg_exec(w, "ROLLBACK");
    }
    return rc;
}

static int read_draw(const PGresult *res, int i, void *item)
{
    ing_event_draw *d = item;
    ing_pg_text(res, i, 0, d->pub.commitment, sizeof d->pub.commitment);
    ing_pg_text(res, i, 1, d->pub.seed_hex, sizeof d->pub.seed_hex);
    d->open = ing_pg_bool(res, i, 2);
    d->prequeue = ing_pg_bool(res, i, 3);
    return 0;
}

int ing_event_draw_get(ing_worker *w, int64_t event_id, ing_event_draw *out)
{
    int64_t v[] = {event_id};
    PGresult *res =
        ing_pg_query_i64(w, 0,
                         "SELECT " Q_DRAW_PUBLISHED_COLUMNS ", now() >= onsale_at, "
                         "prequeue_opens_at IS NOT NULL FROM events WHERE event_id = $1",
                         1, v);
    return ing_pg_one(res, NULL, "event draw", read_draw, out);
}

static int read_entrant(const PGresult *res, int i, void *item)
{
    q_draw_entrant *e = item;
    return ing_pg_i64(res, i, 0, &e->seq) || ing_pg_i64(res, i, 1, &e->user_id);
}

int ing_event_draw_entrants(ing_worker *w, int64_t event_id, q_draw_entrant **out, size_t *n)
{
    int64_t v[] = {event_id};
    PGresult *res = ing_pg_query_i64(w, 0, Q_DRAW_ENTRANTS_SQL, 1, v);
    return ing_pg_rows(res, NULL, "draw entrants", sizeof **out, -1, read_entrant, out, n);
}

/* The view's tiers of event_id (text parameter ev). */
static int read_tier(const PGresult *res, int i, void *item)
{
    ing_view_tier *t = item;
    ing_pg_text(res, i, 0, t->section, sizeof t->section);
    return ing_pg_i64(res, i, 1, &t->price_cents) || ing_pg_i64(res, i, 2, &t->seats) ||
           ing_pg_i64(res, i, 3, &t->section_id);
}

static int view_tiers(ing_worker *w, const int64_t *v, ing_event_view_row *out)
{
    PGresult *res =
        ing_pg_query_i64(w, 1,
                         "SELECT s.name, pt.price_cents, s.rows * s.seats_per_row, "
                         "s.section_id FROM price_tiers pt JOIN sections s "
                         "USING (section_id) WHERE pt.event_id = $1 ORDER BY s.position",
                         1, v);
    return ing_pg_rows(res, NULL, "event view tiers", sizeof *out->tiers, -1, read_tier,
                       &out->tiers, &out->ntiers);
}

/* A double cell, when not NULL. */
static int get_real(const PGresult *res, int row, int col, double *out)
{
    if (PQgetisnull(res, row, col))
        return 0;
    *out = atof(PQgetvalue(res, row, col));
    return 1;
}

#define VIEW_COL(kind, col, member) ING_PG_COL(ing_event_view_row, ING_PG_##kind, col, member)
/* The columns of ing_event_view_get's statement that read straight into
 * the row; the nullable ones (coordinates, address, pre-queue) are read
 * by read_view. */
static const ing_pg_col view_cols[] = {
    VIEW_COL(TEXT, 0, name),
    VIEW_COL(TEXT, 1, category),
    VIEW_COL(TEXT, 2, description),
    VIEW_COL(TEXT, 3, starts_at),
    VIEW_COL(TEXT, 4, onsale_at),
    VIEW_COL(I64, 5, onsale_ms),
    VIEW_COL(INT, 6, max_per_user),
    VIEW_COL(INT, 7, hold_seconds),
    VIEW_COL(TEXT, 8, currency),
    VIEW_COL(TEXT, 9, status),
    VIEW_COL(I64, 10, seats_total),
    VIEW_COL(I64, 11, venue_id),
    VIEW_COL(TEXT, 12, venue_name),
    VIEW_COL(TEXT, 13, city),
    VIEW_COL(TEXT, 14, country),
    VIEW_COL(I64, 17, starts_ms),
    VIEW_COL(TEXT, 19, draw_commitment),
    VIEW_COL(TEXT, 20, draw_seed),
    VIEW_COL(INT, 22, pow_difficulty),
};

static int read_view(const PGresult *res, int i, void *item)
{
    ing_event_view_row *v = item;
    v->has_lat = get_real(res, i, 15, &v->lat);
    v->has_lon = get_real(res, i, 16, &v->lon);
    v->has_address = !PQgetisnull(res, i, 18);
    ing_pg_text(res, i, 18, v->address, sizeof v->address);
    v->has_prequeue = !PQgetisnull(res, i, 21);
    ing_pg_text(res, i, 21, v->prequeue_opens_at, sizeof v->prequeue_opens_at);
    return ing_pg_read_cols(res, i, v, view_cols, sizeof view_cols / sizeof *view_cols);
}

int ing_event_view_get(ing_worker *w, int64_t event_id, ing_event_view_row *out)
{
    memset(out, 0, sizeof *out);
    int64_t v[] = {event_id};
    PGresult *res = ing_pg_query_i64(
        w, 1,
        "SELECT e.name, e.category, e.description, "
        "  to_char(e.starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "  to_char(e.onsale_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "  (extract(epoch FROM e.onsale_at) * 1000)::bigint, e.max_per_user, e.hold_seconds, "
        "  e.currency, e.status, e.seats_total, v.venue_id, v.name, v.city, v.country, "
        "  v.lat, v.lon, (extract(epoch FROM e.starts_at) * 1000)::bigint, v.address, "
        "  coalesce(e.draw_commitment, ''), coalesce(encode(e.draw_seed, 'hex'), ''), "
        "  to_char(e.prequeue_opens_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "  e.pow_difficulty "
        "FROM events e JOIN venues v USING (venue_id) WHERE e.event_id = $1",
        1, v);
    int rc = ing_pg_one(res, NULL, "event view", read_view, out);
    if (rc == 0)
        rc = view_tiers(w, v, out);
    if (rc)
        ing_event_view_clear(out);
    return rc;
}

void ing_event_view_clear(ing_event_view_row *v)
{
    ons_pg_rows_free(&v->tiers, &v->ntiers);
}

typedef struct seat_totals {
    int64_t available, held, sold;
} seat_totals;

static int read_totals(const PGresult *res, int i, void *item)
{
    seat_totals *t = item;
    return ing_pg_i64(res, i, 0, &t->available) || ing_pg_i64(res, i, 1, &t->held) ||
           ing_pg_i64(res, i, 2, &t->sold);
}

static int read_section_free(const PGresult *res, int i, void *item)
{
    ing_section_free *f = item;
    return ing_pg_i64(res, i, 0, &f->section_id) || ing_pg_i64(res, i, 1, &f->available);
}

int ing_event_seat_counts(ing_worker *w, int64_t event_id, int64_t *available, int64_t *held,
                          int64_t *sold, ing_section_free **sections, size_t *n)
{
    *sections = NULL;
    *n = 0;
    int64_t v[] = {event_id};
    seat_totals t;
    int rc = ing_pg_one(ing_pg_query_i64(w, 1,
                                         "SELECT count(*) FILTER (WHERE status = 'available'), "
                                         "count(*) FILTER (WHERE status IN ('held', 'paying')), "
                                         "count(*) FILTER (WHERE status = 'sold') "
                                         "FROM seats WHERE event_id = $1",
                                         1, v),
                        NULL, "seat counts", read_totals, &t);
    if (rc)
        return rc == ONS_ENOTFOUND ? ONS_EDB : rc;
    *available = t.available;
    *held = t.held;
    *sold = t.sold;
    return ing_pg_rows(ing_pg_query_i64(w, 1,
                                        "SELECT section_id, count(*) FROM seats "
                                        "WHERE event_id = $1 AND status = 'available' GROUP BY 1",
                                        1, v),
                       NULL, "section counts", sizeof **sections, -1, read_section_free, sections,
                       n);
}
