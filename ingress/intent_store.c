/* intent_store.c - intents read from PostgreSQL for ingress; see
 * intent_store.h. */
#include "ingress/intent_store.h"
#include "common/err.h"
#include "ingress/pg_row.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ing_intent_state_get(ing_worker *w, int64_t seq, int64_t user_id, char state[16])
{
    char seqs[24], user[24];
    ing_pg_i64_text(seq, seqs);
    ing_pg_i64_text(user_id, user);
    const char *p[] = {seqs, user};
    PGresult *res = ing_worker_query(
        w, "SELECT state FROM intents WHERE intent_seq = $1 AND user_id = $2", 2, p);
    int rc = ing_pg_status(res, NULL, "intent state");
    if (rc == 0 && PQntuples(res) == 0)
        rc = ONS_ENOTFOUND;
    if (rc == 0)
        ing_pg_text(res, 0, 0, state, 16);
    PQclear(res);
    return rc;
}

int ing_intent_of_join(ing_worker *w, int64_t user_id, int64_t event_id, int32_t partition,
                       int64_t sent_ms, int64_t *seq, char state[16])
{
    char ev[24], user[24], part[24], sent[24];
    ing_pg_i64_text(event_id, ev);
    ing_pg_i64_text(user_id, user);
    ing_pg_i64_text(partition, part);
    ing_pg_i64_text(sent_ms, sent);
    const char *p[] = {user, ev, part, sent};
    PGresult *res = ing_worker_query(
        w,
        "SELECT intent_seq, state FROM intents WHERE user_id = $1 AND event_id = $2 "
        "AND ($3::int < 0 OR partition = $3) "
        "AND (extract(epoch FROM accepted_at) * 1000)::bigint = $4 "
        "ORDER BY intent_seq LIMIT 1",
        4, p);
    int rc = ing_pg_status(res, NULL, "intent of join");
    if (rc == 0 && PQntuples(res) == 0)
        rc = ONS_ENOTFOUND;
    else if (rc == 0 && ing_pg_i64(res, 0, 0, seq))
        rc = ONS_EDB;
    if (rc == 0)
        ing_pg_text(res, 0, 1, state, 16);
    PQclear(res);
    return rc;
}

/* The seats of reservation_id, in seat order. */
static int reservation_seats(ing_worker *w, int64_t event_id, ing_intent_result *out)
{
    char ev[24], rid[24];
    ing_pg_i64_text(event_id, ev);
    ing_pg_i64_text(out->reservation_id, rid);
    const char *p[] = {ev, rid};
    PGresult *res = ing_worker_query(
        w,
        "SELECT s.name, st.row_no, st.seat_in_row, st.price_cents FROM seats st "
        "JOIN sections s USING (section_id) WHERE st.event_id = $1 AND st.reservation_id = $2 "
        "ORDER BY st.seat_no",
        2, p);
    int rc = ing_pg_status(res, NULL, "reservation seats");
    int n = rc ? 0 : PQntuples(res);
    if (rc == 0 && n > 0 && !(out->seats = calloc((size_t)n, sizeof *out->seats)))
        rc = ONS_ENOMEM;
    for (int i = 0; rc == 0 && i < n; i++) {
        ing_intent_seat *s = &out->seats[i];
        ing_pg_text(res, i, 0, s->seat.section, sizeof s->seat.section);
        if (ing_pg_int(res, i, 1, &s->seat.row) || ing_pg_int(res, i, 2, &s->seat.seat) ||
            ing_pg_i64(res, i, 3, &s->price_cents))
            rc = ONS_EDB;
        out->nseats = (size_t)i + 1;
    }
    PQclear(res);
    return rc;
}

int ing_intent_result_get(ing_worker *w, int64_t seq, int64_t user_id, ing_intent_result *out)
{
    memset(out, 0, sizeof *out);
    char seqs[24], user[24];
    ing_pg_i64_text(seq, seqs);
    ing_pg_i64_text(user_id, user);
    const char *p[] = {seqs, user};
    PGresult *res = ing_worker_query(
        w,
        "SELECT i.state, i.reason, i.event_id, r.reservation_id, r.total_cents, r.currency, "
        "to_char(r.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
        "FROM intents i LEFT JOIN reservations r ON r.reservation_id = i.reservation_id "
        "WHERE i.intent_seq = $1 AND i.user_id = $2",
        2, p);
    int rc = ing_pg_status(res, NULL, "intent result");
    if (rc == 0 && PQntuples(res) == 0)
        rc = ONS_ENOTFOUND;
    else if (rc == 0 && ing_pg_i64(res, 0, 2, &out->event_id))
        rc = ONS_EDB;
    if (rc == 0) {
        ing_pg_text(res, 0, 0, out->state, sizeof out->state);
        out->has_reason = !PQgetisnull(res, 0, 1);
        ing_pg_text(res, 0, 1, out->reason, sizeof out->reason);
        out->has_reservation = !PQgetisnull(res, 0, 3);
    }
    if (rc == 0 && out->has_reservation &&
        (ing_pg_i64(res, 0, 3, &out->reservation_id) || ing_pg_i64(res, 0, 4, &out->total_cents)))
        rc = ONS_EDB;
    if (rc == 0 && out->has_reservation) {
        ing_pg_text(res, 0, 5, out->currency, sizeof out->currency);
        ing_pg_text(res, 0, 6, out->expires_at, sizeof out->expires_at);
    }
    PQclear(res);
    if (rc == 0 && out->has_reservation)
        rc = reservation_seats(w, out->event_id, out);
    if (rc)
        ing_intent_result_clear(out);
    return rc;
}

void ing_intent_result_clear(ing_intent_result *r)
{
    free(r->seats);
    r->seats = NULL;
    r->nseats = 0;
}
