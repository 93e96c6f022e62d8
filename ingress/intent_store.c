/* intent_store.c - intents read from PostgreSQL for ingress; see
 * intent_store.h. */
#include "ingress/intent_store.h"
#include "common/err.h"
#include "ingress/pg_row.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int read_state(const PGresult *res, int i, void *item)
{
    ing_pg_text(res, i, 0, item, 16);
    return 0;
}

int ing_intent_state_get(ing_worker *w, int64_t seq, int64_t user_id, char state[16])
{
    int64_t v[] = {seq, user_id};
    PGresult *res = ing_pg_query_i64(
        w, 0, "SELECT state FROM intents WHERE intent_seq = $1 AND user_id = $2", 2, v);
    return ing_pg_one(res, NULL, "intent state", read_state, state);
}

int ing_intent_of_join(ing_worker *w, int64_t user_id, int64_t event_id, int32_t partition,
                       int64_t sent_ms, int64_t *seq, char state[16])
{
    int64_t v[] = {user_id, event_id, partition, sent_ms};
    PGresult *res = ing_pg_query_i64(
        w, 0,
        "SELECT intent_seq, state FROM intents WHERE user_id = $1 AND event_id = $2 "
        "AND ($3::int < 0 OR partition = $3) "
        "AND (extract(epoch FROM accepted_at) * 1000)::bigint = $4 "
        "ORDER BY intent_seq LIMIT 1",
        4, v);
    return ing_pg_one_id_state(res, "intent of join", seq, state);
}

static int read_seat(const PGresult *res, int i, void *item)
{
    ing_intent_seat *s = item;
    ing_pg_text(res, i, 0, s->seat.section, sizeof s->seat.section);
    return ing_pg_int(res, i, 1, &s->seat.row) || ing_pg_int(res, i, 2, &s->seat.seat) ||
           ing_pg_i64(res, i, 3, &s->price_cents);
}

static int read_result(const PGresult *res, int i, void *item)
{
    ing_intent_result *r = item;
    ing_pg_text(res, i, 0, r->state, sizeof r->state);
    r->has_reason = !PQgetisnull(res, i, 1);
    ing_pg_text(res, i, 1, r->reason, sizeof r->reason);
    r->has_reservation = !PQgetisnull(res, i, 3);
    r->seats_named = ing_pg_bool(res, i, 7);
    ing_pg_text(res, i, 5, r->currency, sizeof r->currency);
    ing_pg_text(res, i, 6, r->expires_at, sizeof r->expires_at);
    return ing_pg_i64(res, i, 2, &r->event_id) ||
           (r->has_reservation &&
            (ing_pg_i64(res, i, 3, &r->reservation_id) || ing_pg_i64(res, i, 4, &r->total_cents)));
}

int ing_intent_result_get(ing_worker *w, int64_t seq, int64_t user_id, ing_intent_result *out)
{
    memset(out, 0, sizeof *out);
    int64_t v[] = {seq, user_id};
    PGresult *res = ing_pg_query_i64(
        w, 0,
        "SELECT i.state, i.reason, i.event_id, r.reservation_id, r.total_cents, r.currency, "
        "to_char(r.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "r.seat_nos IS NOT NULL "
        "FROM intents i LEFT JOIN reservations r ON r.reservation_id = i.reservation_id "
        "WHERE i.intent_seq = $1 AND i.user_id = $2",
        2, v);
    int rc = ing_pg_one(res, NULL, "intent result", read_result, out);
    if (rc || !out->has_reservation)
        return rc;
    /* The seats the reservation names, by the primary key (0018); one
     * written before 0018 by the seats naming it, which reads every seat
     * of the event (no index on seats.reservation_id: it would cost every
     * hold's UPDATE). Either way only the seats that still name it. */
    int64_t sv[] = {out->event_id, out->reservation_id};
    const char *sql =
        out->seats_named
            ? "SELECT s.name, st.row_no, st.seat_in_row, st.price_cents FROM reservations r "
              "JOIN seats st ON st.event_id = r.event_id AND st.seat_no = ANY (r.seat_nos) "
              "JOIN sections s ON s.section_id = st.section_id "
              "WHERE r.reservation_id = $2 AND r.event_id = $1 AND st.reservation_id = $2 "
              "ORDER BY st.seat_no"
            : "SELECT s.name, st.row_no, st.seat_in_row, st.price_cents "
              "FROM seats st JOIN sections s USING (section_id) "
              "WHERE st.event_id = $1 AND st.reservation_id = $2 ORDER BY st.seat_no";
    return ing_pg_rows(ing_pg_query_i64(w, 0, sql, 2, sv), NULL, "reservation seats",
                       sizeof *out->seats, -1, read_seat, &out->seats, &out->nseats);
}

void ing_intent_result_clear(ing_intent_result *r)
{
    ons_pg_rows_free(&r->seats, &r->nseats);
}
