/* order_store.c - orders, reservations and tickets read for ingress; see
 * order_store.h. */
#include "ingress/order_store.h"
#include "common/err.h"
#include "ingress/pg_row.h"
#include "ingress/replica.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ing_order_of_checkout(ing_worker *w, int64_t reservation_id, int64_t user_id, int32_t partition,
                          int64_t *order_id, char state[16])
{
    char rid[24], uid[24], part[24];
    ing_pg_i64_text(reservation_id, rid);
    ing_pg_i64_text(user_id, uid);
    ing_pg_i64_text(partition, part);
    const char *p[] = {rid, uid, part};
    PGresult *res = ing_worker_query(w,
                                     "SELECT order_id, state FROM orders WHERE reservation_id = $1 "
                                     "AND user_id = $2 AND ($3::int < 0 OR order_id >> 40 = $3) "
                                     "ORDER BY order_id DESC LIMIT 1",
                                     3, p);
    int rc = ing_pg_status(res, NULL, "order of checkout");
    if (rc == 0 && PQntuples(res) == 0)
        rc = ONS_ENOTFOUND;
    else if (rc == 0 && ing_pg_i64(res, 0, 0, order_id))
        rc = ONS_EDB;
    if (rc == 0)
        ing_pg_text(res, 0, 1, state, 16);
    PQclear(res);
    return rc;
}

int ing_reservation_get(ing_worker *w, int64_t reservation_id, int64_t user_id,
                        ing_reservation *out)
{
    char rid[24], uid[24];
    ing_pg_i64_text(reservation_id, rid);
    ing_pg_i64_text(user_id, uid);
    const char *p[] = {rid, uid};
    PGresult *res = ing_worker_query(w,
                                     "SELECT event_id, state, expires_at > now() FROM reservations "
                                     "WHERE reservation_id = $1 AND user_id = $2",
                                     2, p);
    int rc = ing_pg_status(res, NULL, "reservation");
    if (rc == 0 && PQntuples(res) == 0)
        rc = ONS_ENOTFOUND;
    else if (rc == 0 && ing_pg_i64(res, 0, 0, &out->event_id))
        rc = ONS_EDB;
    if (rc == 0) {
        ing_pg_text(res, 0, 1, out->state, sizeof out->state);
        out->live = ing_pg_bool(res, 0, 2);
    }
    PQclear(res);
    return rc;
}

/* Columns c, c+1, c+2: section name, row, seat in row. */
static int read_seat(const PGresult *res, int i, int c, ing_seat *out)
{
    ing_pg_text(res, i, c, out->section, sizeof out->section);
    return ing_pg_int(res, i, c + 1, &out->row) || ing_pg_int(res, i, c + 2, &out->seat) ? ONS_EDB
                                                                                         : 0;
}

/* The tickets of order_id; owned: whether user_id still holds each. */
static int order_tickets(ing_worker *w, const char *const p[2], ing_order *o)
{
    PGresult *t = ing_worker_query(w,
                                   "SELECT t.ticket_id, t.status, t.owner_id = $2, s.name, "
                                   "st.row_no, st.seat_in_row, t.price_cents FROM tickets t "
                                   "JOIN seats st ON st.event_id = t.event_id AND "
                                   "st.seat_no = t.seat_no "
                                   "JOIN sections s ON s.section_id = st.section_id "
                                   "WHERE t.order_id = $1 ORDER BY t.ticket_id",
                                   2, p);
    int rc = ing_pg_status(t, NULL, "order tickets");
    int n = rc ? 0 : PQntuples(t);
    if (rc == 0 && n > 0 && !(o->tickets = calloc((size_t)n, sizeof *o->tickets)))
        rc = ONS_ENOMEM;
    for (int i = 0; rc == 0 && i < n; i++) {
        ing_order_ticket *k = &o->tickets[i];
        ing_pg_text(t, i, 1, k->status, sizeof k->status);
        if (strcmp(k->status, "valid") == 0 && !ing_pg_bool(t, i, 2))
            snprintf(k->status, sizeof k->status, "transferred");
        if (ing_pg_i64(t, i, 0, &k->ticket_id) || ing_pg_i64(t, i, 6, &k->price_cents) ||
            read_seat(t, i, 3, &k->seat))
            rc = ONS_EDB;
        o->ntickets = (size_t)i + 1;
    }
    PQclear(t);
    return rc;
}

int ing_order_get(ing_worker *w, int64_t order_id, int64_t user_id, ing_order *out)
{
    memset(out, 0, sizeof *out);
    char oid[24], uid[24];
    ing_pg_i64_text(order_id, oid);
    ing_pg_i64_text(user_id, uid);
    const char *p[] = {oid, uid};
    PGresult *res = ing_worker_query(w,
                                     "SELECT state, total_cents, currency, failure_reason, "
                                     "event_id FROM orders WHERE order_id = $1 AND user_id = $2",
                                     2, p);
    int rc = ing_pg_status(res, NULL, "order");
    if (rc == 0 && PQntuples(res) == 0)
        rc = ONS_ENOTFOUND;
    else if (rc == 0 &&
             (ing_pg_i64(res, 0, 1, &out->total_cents) || ing_pg_i64(res, 0, 4, &out->event_id)))
        rc = ONS_EDB;
    if (rc == 0) {
        ing_pg_text(res, 0, 0, out->state, sizeof out->state);
        ing_pg_text(res, 0, 2, out->currency, sizeof out->currency);
        out->has_reason = !PQgetisnull(res, 0, 3);
        ing_pg_text(res, 0, 3, out->reason, sizeof out->reason);
    }
    PQclear(res);
    if (rc == 0)
        rc = order_tickets(w, p, out);
    if (rc)
        ing_order_clear(out);
    return rc;
}

void ing_order_clear(ing_order *o)
{
    free(o->tickets);
    o->tickets = NULL;
    o->ntickets = 0;
}

int ing_tickets_of_user(ing_worker *w, int64_t user_id, int64_t cursor_us, int64_t cursor_tid,
                        int64_t limit, ing_ticket_page *out)
{
    memset(out, 0, sizeof *out);
    char uid[24], us[24], tid[24], lim[24];
    ing_pg_i64_text(user_id, uid);
    ing_pg_i64_text(cursor_us, us);
    ing_pg_i64_text(cursor_tid, tid);
    ing_pg_i64_text(limit + 1, lim);
    const char *p[] = {uid, us, tid, lim};
    PGresult *res = ing_read_query(
        w,
        "SELECT t.ticket_id, t.event_id, e.name, s.name, st.row_no, st.seat_in_row, "
        "t.price_cents, e.currency, t.status, "
        "to_char(t.issued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "(extract(epoch FROM t.issued_at) * 1000000)::bigint "
        "FROM tickets t JOIN events e ON e.event_id = t.event_id "
        "JOIN seats st ON st.event_id = t.event_id AND st.seat_no = t.seat_no "
        "JOIN sections s ON s.section_id = st.section_id "
        "WHERE t.owner_id = $1 AND ($3::bigint = 0 OR "
        "(t.issued_at, t.ticket_id) < (to_timestamp($2::bigint / 1000000.0), $3::bigint)) "
        "ORDER BY t.issued_at DESC, t.ticket_id DESC LIMIT $4",
        4, p);
    int rc = ing_pg_status(res, NULL, "ticket history");
    int n = rc ? 0 : PQntuples(res);
    out->more = n > limit;
    if (out->more)
        n = (int)limit;
    if (rc == 0 && n > 0 && !(out->rows = calloc((size_t)n, sizeof *out->rows)))
        rc = ONS_ENOMEM;
    for (int i = 0; rc == 0 && i < n; i++) {
        ing_ticket_row *t = &out->rows[i];
        if (ing_pg_i64(res, i, 0, &t->ticket_id) || ing_pg_i64(res, i, 1, &t->event_id) ||
            ing_pg_i64(res, i, 6, &t->price_cents) || ing_pg_i64(res, i, 10, &t->issued_us) ||
            read_seat(res, i, 3, &t->seat))
            rc = ONS_EDB;
        ing_pg_text(res, i, 2, t->event_name, sizeof t->event_name);
        ing_pg_text(res, i, 7, t->currency, sizeof t->currency);
        ing_pg_text(res, i, 8, t->status, sizeof t->status);
        ing_pg_text(res, i, 9, t->issued_at, sizeof t->issued_at);
        out->n = (size_t)i + 1;
    }
    PQclear(res);
    if (rc)
        ing_ticket_page_clear(out);
    return rc;
}

void ing_ticket_page_clear(ing_ticket_page *p)
{
    free(p->rows);
    p->rows = NULL;
    p->n = 0;
}

int ing_ticket_for_change(ing_worker *w, int64_t ticket_id, long long refund_cutoff_s,
                          long long end_grace_s, ing_ticket_change *out)
{
    char tid[24], cutoff[24], grace[24];
    ing_pg_i64_text(ticket_id, tid);
    snprintf(cutoff, sizeof cutoff, "%lld", refund_cutoff_s);
    snprintf(grace, sizeof grace, "%lld", end_grace_s);
    const char *p[] = {tid, cutoff, grace};
    PGresult *res = ing_worker_query(
        w,
        "SELECT t.event_id, t.owner_id, t.status, e.status, "
        "  e.status = 'ended' OR now() >= e.starts_at + make_interval(secs => $3::bigint), "
        "  now() >= e.starts_at - make_interval(secs => $2::bigint), "
        "  to_char(e.starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
        "FROM tickets t JOIN events e ON e.event_id = t.event_id WHERE t.ticket_id = $1",
        3, p);
    int rc = ing_pg_status(res, NULL, "ticket for change");
    if (rc == 0 && PQntuples(res) == 0)
        rc = ONS_ENOTFOUND;
    else if (rc == 0 &&
             (ing_pg_i64(res, 0, 0, &out->event_id) || ing_pg_i64(res, 0, 1, &out->owner_id)))
        rc = ONS_EDB;
    if (rc == 0) {
        ing_pg_text(res, 0, 2, out->status, sizeof out->status);
        ing_pg_text(res, 0, 3, out->event_status, sizeof out->event_status);
        out->ended = ing_pg_bool(res, 0, 4);
        out->past_cutoff = ing_pg_bool(res, 0, 5);
        ing_pg_text(res, 0, 6, out->starts_at, sizeof out->starts_at);
    }
    PQclear(res);
    return rc;
}
