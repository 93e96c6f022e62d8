/* order_store.c - orders, reservations and tickets read for ingress; see
 * order_store.h. */
#include "ingress/order_store.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "ingress/keyset.h"
#include "ingress/pg_row.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ing_order_of_checkout(ing_worker *w, int64_t reservation_id, int64_t user_id, int32_t partition,
                          int64_t *order_id, char state[16])
{
    int64_t v[] = {reservation_id, user_id, partition};
    PGresult *res = ing_pg_query_i64(w, 0,
                                     "SELECT order_id, state FROM orders WHERE reservation_id = $1 "
                                     "AND user_id = $2 AND ($3::int < 0 OR order_id >> 40 = $3) "
                                     "ORDER BY order_id DESC LIMIT 1",
                                     3, v);
    return ing_pg_one_id_state(res, "order of checkout", order_id, state);
}

int64_t ing_control_lane_served(void *arg, int32_t partition)
{
    int64_t v[] = {partition}, served = -1;
    PGresult *res = ing_pg_query_i64(
        arg, 0, "SELECT control_next_offset FROM partition_owner WHERE partition = $1", 1, v);
    return ing_pg_one(res, NULL, "control lane cursor", ing_pg_read_i64, &served) ? -1 : served;
}

static int read_reservation(const PGresult *res, int i, void *item)
{
    ing_reservation *r = item;
    ing_pg_text(res, i, 1, r->state, sizeof r->state);
    r->live = ing_pg_bool(res, i, 2);
    return ing_pg_i64(res, i, 0, &r->event_id);
}

int ing_reservation_get(ing_worker *w, int64_t reservation_id, int64_t user_id,
                        ing_reservation *out)
{
    int64_t v[] = {reservation_id, user_id};
    PGresult *res = ing_pg_query_i64(w, 0,
                                     "SELECT event_id, state, expires_at > now() FROM reservations "
                                     "WHERE reservation_id = $1 AND user_id = $2",
                                     2, v);
    return ing_pg_one(res, NULL, "reservation", read_reservation, out);
}

/* A row of ing_reservations_get_many: (reservation_id, user_id) and then
 * read_reservation's columns. */
typedef struct reservation_row {
    int64_t reservation_id, user_id;
    ing_reservation res;
} reservation_row;

static int read_reservation_row(const PGresult *res, int i, void *item)
{
    reservation_row *r = item;
    ing_pg_text(res, i, 3, r->res.state, sizeof r->res.state);
    r->res.live = ing_pg_bool(res, i, 4);
    return ing_pg_i64(res, i, 0, &r->reservation_id) || ing_pg_i64(res, i, 1, &r->user_id) ||
           ing_pg_i64(res, i, 2, &r->res.event_id);
}

int ing_reservations_get_many(ing_worker *w, ing_reservation_ask *items, size_t n)
{
    int64_t *ids = malloc((n ? n : 1) * sizeof *ids);
    for (size_t i = 0; ids && i < n; i++)
        ids[i] = items[i].reservation_id;
    char *arr = ids ? ing_pg_int_array(ids, n) : NULL;
    free(ids);
    if (!arr)
        return ONS_ENOMEM;
    const char *p[] = {arr};
    reservation_row *rows = NULL;
    size_t nrows = 0;
    int rc =
        ing_pg_rows(ing_worker_query(w,
                                     "SELECT reservation_id, user_id, event_id, state, "
                                     "expires_at > now() FROM reservations "
                                     "WHERE reservation_id = ANY($1::bigint[])",
                                     1, p),
                    NULL, "reservations", sizeof *rows, -1, read_reservation_row, &rows, &nrows);
    free(arr);
    if (rc)
        return rc;
    /* At most a round's worth each way (join.round_max-like bounds): a
     * plain scan is cheaper than sorting. */
    for (size_t i = 0; i < n; i++) {
        items[i].rc = ONS_ENOTFOUND;
        for (size_t k = 0; k < nrows; k++) {
            if (rows[k].reservation_id == items[i].reservation_id &&
                rows[k].user_id == items[i].user_id) {
                items[i].res = rows[k].res;
                items[i].rc = 0;
                break;
            }
        }
    }
    ons_pg_rows_free(&rows, &nrows);
    return 0;
}

/* Columns c, c+1, c+2 of row i: section name, row, seat in row. */
static int read_seat(const PGresult *res, int i, int c, ing_seat *out)
{
    ing_pg_text(res, i, c, out->section, sizeof out->section);
    return ing_pg_int(res, i, c + 1, &out->row) || ing_pg_int(res, i, c + 2, &out->seat);
}

/* A ticket of an order: (ticket_id, status, still the user's, seat...,
 * price). A valid ticket another user holds now shows as transferred. */
static int read_order_ticket(const PGresult *res, int i, void *item)
{
    ing_order_ticket *k = item;
    ing_pg_text(res, i, 1, k->status, sizeof k->status);
    if (strcmp(k->status, "valid") == 0 && !ing_pg_bool(res, i, 2))
        snprintf(k->status, sizeof k->status, "transferred");
    return ing_pg_i64(res, i, 0, &k->ticket_id) || ing_pg_i64(res, i, 6, &k->price_cents) ||
           read_seat(res, i, 3, &k->seat);
}

static int read_order(const PGresult *res, int i, void *item)
{
    ing_order *o = item;
    ing_pg_text(res, i, 0, o->state, sizeof o->state);
    ing_pg_text(res, i, 2, o->currency, sizeof o->currency);
    o->has_reason = !PQgetisnull(res, i, 3);
    ing_pg_text(res, i, 3, o->reason, sizeof o->reason);
    return ing_pg_i64(res, i, 1, &o->total_cents) || ing_pg_i64(res, i, 4, &o->event_id);
}

/* The order poll's statements, prepared (ing_pg_prepared_i64): a fan's page
 * asks every second while its payment is pending, and planning the
 * tickets' three-table join took twice what running it did (165 against
 * 55 us of PostgreSQL CPU a poll for the pair, bench/NOTES.md). */
static const ing_pg_stmt order_stmt = {
    "ing_order_get",
    "SELECT state, total_cents, currency, failure_reason, event_id FROM orders "
    "WHERE order_id = $1 AND user_id = $2",
    2, 0};
static const ing_pg_stmt order_tickets_stmt = {
    "ing_order_tickets",
    "SELECT t.ticket_id, t.status, t.owner_id = $2, s.name, st.row_no, st.seat_in_row, "
    "t.price_cents FROM tickets t "
    "JOIN seats st ON st.event_id = t.event_id AND st.seat_no = t.seat_no "
    "JOIN sections s ON s.section_id = st.section_id "
    "WHERE t.order_id = $1 ORDER BY t.ticket_id",
    2, 1};

int ing_order_get(ing_worker *w, int64_t order_id, int64_t user_id, ing_order *out)
{
    memset(out, 0, sizeof *out);
    int64_t v[] = {order_id, user_id};
    int rc = ing_pg_one(ing_pg_prepared_i64(w, &order_stmt, 2, v), NULL, "order", read_order, out);
    if (rc)
        return rc;
    return ing_pg_rows(ing_pg_prepared_i64(w, &order_tickets_stmt, 2, v), NULL, "order tickets",
                       sizeof *out->tickets, -1, read_order_ticket, &out->tickets, &out->ntickets);
}

void ing_order_clear(ing_order *o)
{
    ons_pg_rows_free(&o->tickets, &o->ntickets);
}

static int read_ticket_row(const PGresult *res, int i, void *item)
{
    ing_ticket_row *t = item;
    ing_pg_text(res, i, 2, t->event_name, sizeof t->event_name);
    ing_pg_text(res, i, 7, t->currency, sizeof t->currency);
    ing_pg_text(res, i, 8, t->status, sizeof t->status);
    ing_pg_text(res, i, 9, t->issued_at, sizeof t->issued_at);
    ing_pg_text(res, i, 11, t->starts_at, sizeof t->starts_at);
    return ing_pg_i64(res, i, 0, &t->ticket_id) || ing_pg_i64(res, i, 1, &t->event_id) ||
           ing_pg_i64(res, i, 6, &t->price_cents) || ing_pg_i64(res, i, 10, &t->issued_us) ||
           read_seat(res, i, 3, &t->seat);
}

int ing_tickets_of_user(ing_worker *w, int64_t user_id, int64_t cursor_us, int64_t cursor_tid,
                        int64_t limit, ing_ticket_page *out)
{
    memset(out, 0, sizeof *out);
    int64_t v[] = {user_id, cursor_us, cursor_tid, limit + 1};
    PGresult *res = ing_pg_query_i64(
        w, 1,
        "SELECT t.ticket_id, t.event_id, e.name, s.name, st.row_no, st.seat_in_row, "
        "t.price_cents, e.currency, t.status, "
        "to_char(t.issued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "(extract(epoch FROM t.issued_at) * 1000000)::bigint, "
        "to_char(e.starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
        "FROM tickets t JOIN events e ON e.event_id = t.event_id "
        "JOIN seats st ON st.event_id = t.event_id AND st.seat_no = t.seat_no "
        "JOIN sections s ON s.section_id = st.section_id "
        "WHERE t.owner_id = $1 AND ($3::bigint = 0 OR "
        "(t.issued_at, t.ticket_id) < (to_timestamp($2::bigint / 1000000.0), $3::bigint)) "
        "ORDER BY t.issued_at DESC, t.ticket_id DESC LIMIT $4",
        4, v);
    /* One row more than a page says another page follows. */
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK)
        ing_keyset_rows(PQntuples(res), limit, &out->more);
    return ing_pg_rows(res, NULL, "ticket history", sizeof *out->rows, (int)limit, read_ticket_row,
                       &out->rows, &out->n);
}

void ing_ticket_page_clear(ing_ticket_page *p)
{
    ons_pg_rows_free(&p->rows, &p->n);
}

int64_t ing_judged_ms(int64_t node_ms, int64_t pg_ms, int64_t max_ahead_ms)
{
    if (node_ms <= pg_ms)
        return pg_ms;
    if (node_ms - pg_ms <= max_ahead_ms)
        return node_ms;
    /* At most one line every 10 s: any caller may ask for a change of any
     * ticket id, and each would log. */
    static _Atomic int64_t warned_ms; /* monotonic: the wall clock is the suspect */
    int64_t last = warned_ms, mono = ons_mono_ms();
    if ((last == 0 || mono - last >= 10000) &&
        atomic_compare_exchange_strong(&warned_ms, &last, mono))
        ons_log_warn("this node's clock is %" PRId64 " ms ahead of PostgreSQL's (more than "
                     "clock.max_ahead_ms %" PRId64 "): ticket changes are judged at "
                     "PostgreSQL's + %" PRId64 " ms (logged at most every 10 s)",
                     node_ms - pg_ms, max_ahead_ms, max_ahead_ms);
    return pg_ms + max_ahead_ms;
}

/* Columns 4 (status ended), 5 (PostgreSQL's now, ms) and 10 (starts_at,
 * ms) are judged by judge_change. */
static int read_ticket_change(const PGresult *res, int i, void *item)
{
    ing_ticket_change *t = item;
    ing_pg_text(res, i, 2, t->status, sizeof t->status);
    ing_pg_text(res, i, 3, t->event_status, sizeof t->event_status);
    t->ended = ing_pg_bool(res, i, 4);
    ing_pg_text(res, i, 6, t->starts_at, sizeof t->starts_at);
    t->admitted = ing_pg_bool(res, i, 7);
    t->change_pending = ing_pg_bool(res, i, 8);
    return ing_pg_i64(res, i, 0, &t->event_id) || ing_pg_i64(res, i, 1, &t->owner_id) ||
           ing_pg_i64(res, i, 9, &t->change_claim_age_ms) || ing_pg_i64(res, i, 5, &t->judged_ms) ||
           ing_pg_i64(res, i, 10, &t->starts_at_ms);
}

/* The rules at one instant (ing_ticket_for_change): the partition owner's
 * test, with its integers (workers/checkout.c ticket_refused). */
static void judge_change(ing_ticket_change *t, const ing_ticket_change_opts *o)
{
    t->judged_ms = ing_judged_ms(o->at_ms, t->judged_ms, o->max_ahead_ms);
    t->ended = t->ended || t->judged_ms >= t->starts_at_ms + (int64_t)o->end_grace_s * 1000;
    t->past_cutoff = t->judged_ms >= t->starts_at_ms - (int64_t)o->refund_cutoff_s * 1000;
}

int ing_ticket_for_change(ing_worker *w, int64_t ticket_id, const ing_ticket_change_opts *o,
                          ing_ticket_change *out)
{
    int64_t v[] = {ticket_id, o->claim_timeout_s};
    PGresult *res = ing_pg_query_i64(
        w, 0,
        "SELECT t.event_id, t.owner_id, t.status, e.status, e.status = 'ended', "
        "  floor(extract(epoch FROM now()) * 1000)::bigint, "
        "  to_char(e.starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
        "  t.admitted_at IS NOT NULL, "
        "  coalesce(t.change_claimed_at > now() - make_interval(secs => $2::bigint), false), "
        "  coalesce((extract(epoch FROM now() - t.change_claimed_at) * 1000)::bigint, -1), "
        "  (extract(epoch FROM e.starts_at) * 1000)::bigint "
        "FROM tickets t JOIN events e ON e.event_id = t.event_id WHERE t.ticket_id = $1",
        2, v);
    int rc = ing_pg_one(res, NULL, "ticket for change", read_ticket_change, out);
    if (rc == 0)
        judge_change(out, o);
    return rc;
}

int ing_ticket_claim_change(ing_worker *w, int64_t ticket_id, int64_t owner_id,
                            long long claim_timeout_s, int64_t *claim)
{
    int64_t v[] = {ticket_id, owner_id, claim_timeout_s};
    /* A claim older than claim_timeout_s does not stop this one: the caller
     * judged it settled (ing_ticket_claim_blocks). */
    PGresult *res = ing_pg_query_i64(
        w, 0,
        "UPDATE tickets t SET code_version = code_version + 1, change_claimed_at = "
        "clock_timestamp() "
        "WHERE ticket_id = $1 AND owner_id = $2 AND status = 'valid' AND admitted_at IS NULL "
        "AND (change_claimed_at IS NULL "
        "OR change_claimed_at <= now() - make_interval(secs => $3::bigint)) "
        "RETURNING code_version",
        3, v);
    int rc = ing_pg_one(res, NULL, "claim ticket for change", ing_pg_read_i64, claim);
    return rc == ONS_ENOTFOUND ? ONS_ECONFLICT : rc;
}

int ing_ticket_unclaim_change(ing_worker *w, int64_t ticket_id, int64_t claim)
{
    int64_t v[] = {ticket_id, claim};
    PGresult *res = ing_pg_query_i64(w, 0,
                                     "UPDATE tickets SET change_claimed_at = NULL "
                                     "WHERE ticket_id = $1 AND code_version = $2",
                                     2, v);
    int rc = ing_pg_status(res, NULL, "unclaim ticket change");
    PQclear(res);
    return rc;
}
