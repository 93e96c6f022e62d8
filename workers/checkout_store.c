/* checkout_store.c - writes and loads the checkout saga's rows; see
 * checkout_store.h. Like store.c, batches travel as PostgreSQL array
 * literals expanded with unnest(), a handful of statements per batch. */
#include "workers/checkout_store.h"
#include "queue/states.h"
#include "common/err.h"
#include "common/log.h"
#include "workers/checkout.h"
#include "common/pgarr.h"
#include "common/pg.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NARR 12

/* Runs sql with the first n arrays of a as its parameters; 0, ONS_EDB or
 * ONS_ENOMEM. */
static int run(PGconn *conn, const char *what, const char *sql, ons_pgarr *a, int n)
{
    const char *v[NARR];
    int rc = ons_pgarrs_params(a, n, v);
    return rc ? rc : ons_pg_command(conn, what, sql, n, v);
}

/* ---- the batch ------------------------------------------------------------------------ */

/* One set-based write of the batch's orders or tickets: fill appends an
 * item's rows (ncols columns; none when the write does not concern it) and
 * sql runs once, when any item gave a row. */
typedef struct rows_write {
    const char *what;
    int ncols;
    void (*fill)(ons_pgarr *a, const void *item);
    const char *sql;
} rows_write;

/* Runs the writes w[0..nw), in order, over items[0..n) (size bytes each). */
static int write_rows(PGconn *conn, ons_pgarr *a, const rows_write *w, size_t nw, const void *items,
                      size_t size, size_t n)
{
    for (size_t k = 0; k < nw; k++) {
        int rc;
        ons_pgarrs_reset(a, w[k].ncols);
        for (size_t i = 0; i < n; i++)
            w[k].fill(a, (const char *)items + i * size);
        if (a[0].n && (rc = run(conn, w[k].what, w[k].sql, a, w[k].ncols)) != 0)
            return rc;
    }
    return 0;
}

/* The orders this batch created. */
static void fill_new_order(ons_pgarr *a, const void *item)
{
    const wk_fx_order *o = item;
    if (!o->is_new)
        return;
    ons_pgarr_int(&a[0], o->order_id);
    ons_pgarr_int(&a[1], o->reservation_id);
    ons_pgarr_int(&a[2], o->user_id);
    ons_pgarr_int(&a[3], o->event_id);
    ons_pgarr_text0(&a[4], q_order_state_name(o->state));
    ons_pgarr_int(&a[5], o->total_cents);
    ons_pgarr_text0(&a[6], o->currency);
    ons_pgarr_text0(&a[7], o->failure_reason);
    ons_pgarr_text0(&a[8], o->charge_id);
}

/* The seats (items) of the orders this batch created. */
static void fill_order_items(ons_pgarr *a, const void *item)
{
    const wk_fx_order *o = item;
    for (int k = 0; o->is_new && k < o->nseats; k++) {
        ons_pgarr_int(&a[0], o->order_id);
        ons_pgarr_int(&a[1], o->event_id);
        ons_pgarr_int(&a[2], o->seat_no[k]);
        ons_pgarr_int(&a[3], o->price[k]);
    }
}

/* The orders of earlier batches that this batch decided. */
static void fill_decided_order(ons_pgarr *a, const void *item)
{
    const wk_fx_order *o = item;
    if (o->is_new)
        return;
    ons_pgarr_int(&a[0], o->order_id);
    ons_pgarr_text0(&a[1], q_order_state_name(o->state));
    ons_pgarr_text0(&a[2], o->failure_reason);
    ons_pgarr_text0(&a[3], o->charge_id);
}

/* The one move out of paid: the order's event was cancelled, its tickets
 * voided and its refund queued in this batch (wk_co_void_tickets). */
static void fill_voided_order(ons_pgarr *a, const void *item)
{
    const wk_fx_order *o = item;
    if (o->voided && !o->is_new)
        ons_pgarr_int(&a[0], o->order_id);
}

/* In this order: an order's items and its later moves follow its row. */
static const rows_write order_writes[] = {
    /* A checkout of a reservation that is not the user's writes nothing. */
    {"insert orders", 9, fill_new_order,
     "INSERT INTO orders (order_id, reservation_id, user_id, event_id, state, "
     "total_cents, currency, failure_reason, gateway_charge_id) "
     "SELECT u.oid, u.rid, u.usr, u.ev, u.st, u.total, u.cur, u.why, u.ch "
     "FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], "
     "$5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[]) "
     "AS u(oid, rid, usr, ev, st, total, cur, why, ch) "
     "JOIN reservations r ON r.reservation_id = u.rid AND r.user_id = u.usr "
     "ON CONFLICT (order_id) DO NOTHING"},
    {"insert order items", 4, fill_order_items,
     "INSERT INTO order_items (order_id, event_id, seat_no, price_cents) "
     "SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::bigint[]) "
     "ON CONFLICT DO NOTHING"},
    /* A paid order stays paid: a replayed or late result never undoes it. */
    {"update orders", 4, fill_decided_order,
     "UPDATE orders o SET state = u.st, "
     "failure_reason = coalesce(u.why, o.failure_reason), "
     "gateway_charge_id = coalesce(u.ch, o.gateway_charge_id), "
     "updated_at = now() "
     "FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) "
     "AS u(oid, st, why, ch) WHERE o.order_id = u.oid AND o.state <> 'paid'"},
    {"refund voided orders", 1, fill_voided_order,
     "UPDATE orders o SET state = 'refunded', updated_at = now() "
     "FROM unnest($1::bigint[]) AS u(oid) "
     "WHERE o.order_id = u.oid AND o.state = 'paid'"},
};

static const char *ticket_status(const wk_fx_ticket *t)
{
    return q_ticket_status_name(t->valid    ? Q_TICKET_VALID
                                : t->voided ? Q_TICKET_VOIDED
                                            : Q_TICKET_CANCELLED);
}

/* code_version counts changes (docs/tickets.md: ingress's claim of each
 * transfer or cancel, and the owner's transfer): the gate code's secret is
 * derived from it, so a change rotates the code. */
static void fill_new_ticket(ons_pgarr *a, const void *item)
{
    const wk_fx_ticket *t = item;
    if (!t->is_new)
        return;
    ons_pgarr_int(&a[0], t->ticket_id);
    ons_pgarr_int(&a[1], t->event_id);
    ons_pgarr_int(&a[2], t->seat_no);
    ons_pgarr_int(&a[3], t->order_id);
    ons_pgarr_int(&a[4], t->owner_id);
    ons_pgarr_text0(&a[5], ticket_status(t));
    ons_pgarr_int(&a[6], t->price_cents);
    ons_pgarr_int(&a[7], t->transfers);
}

static void fill_changed_ticket(ons_pgarr *a, const void *item)
{
    const wk_fx_ticket *t = item;
    if (t->is_new || t->unclaim)
        return;
    ons_pgarr_int(&a[0], t->ticket_id);
    ons_pgarr_int(&a[1], t->owner_id);
    ons_pgarr_text0(&a[2], ticket_status(t));
    ons_pgarr_int(&a[3], t->transfers);
}

/* Tickets whose change this batch ignored (and wrote nothing else of). */
static void fill_unclaimed_ticket(ons_pgarr *a, const void *item)
{
    const wk_fx_ticket *t = item;
    if (t->unclaim)
        ons_pgarr_int(&a[0], t->ticket_id);
}

static const rows_write ticket_writes[] = {
    {"insert tickets", 8, fill_new_ticket,
     "INSERT INTO tickets (ticket_id, event_id, seat_no, order_id, owner_id, "
     "status, price_cents, code_version) SELECT * FROM unnest($1::bigint[], "
     "$2::bigint[], $3::int[], $4::bigint[], $5::bigint[], $6::text[], "
     "$7::bigint[], $8::int[])"},
    /* Applying a change clears ingress's claim of it (change_claimed_at,
     * docs/tickets.md): the ticket's code and the door scan work again. */
    {"update tickets", 4, fill_changed_ticket,
     "UPDATE tickets t SET owner_id = u.owner, status = u.st, "
     "code_version = t.code_version + u.bumps, change_claimed_at = NULL, updated_at = now() "
     "FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::int[]) "
     "AS u(tid, owner, st, bumps) WHERE t.ticket_id = u.tid"},
    /* So does ignoring it: an ignored change must not block the ticket. */
    {"unclaim tickets", 1, fill_unclaimed_ticket,
     "UPDATE tickets t SET change_claimed_at = NULL FROM unnest($1::bigint[]) AS u(tid) "
     "WHERE t.ticket_id = u.tid AND t.change_claimed_at IS NOT NULL"},
};

/* Is order_id refunded whole in this batch because its event was
 * cancelled? (Then a "refund unless paid" of a replayed result is not
 * queued next to it: the order is refunded once.) */
static int voided_in_batch(const wk_co *co, int64_t order_id)
{
    for (size_t i = 0; i < co->noutbox; i++)
        if (co->outbox[i].event_void && co->outbox[i].order_id == order_id)
            return 1;
    return 0;
}

static int write_outbox(PGconn *conn, const wk_co *co, ons_pgarr *a)
{
    if (co->noutbox == 0)
        return 0;
    ons_pgarrs_reset(a, 11);
    for (size_t i = 0; i < co->noutbox; i++) {
        const wk_fx_outbox *b = &co->outbox[i];
        char key[64];
        if (b->unless_paid && voided_in_batch(co, b->order_id))
            continue;
        if (!b->is_refund)
            snprintf(key, sizeof key, "order-%" PRId64, b->order_id);
        else if (b->event_void)
            snprintf(key, sizeof key, "refund-cancel-%" PRId64, b->order_id);
        else if (b->ticket_id > 0)
            snprintf(key, sizeof key, "refund-ticket-%" PRId64, b->ticket_id);
        else
            snprintf(key, sizeof key, "refund-order-%" PRId64, b->order_id);
        ons_pgarr_text0(&a[0], b->is_refund ? "refund" : "charge");
        ons_pgarr_int(&a[1], b->order_id);
        ons_pgarr_int(&a[2], b->reservation_id);
        ons_pgarr_int(&a[3], b->event_id);
        ons_pgarr_int(&a[4], b->ticket_id);
        ons_pgarr_int(&a[5], b->amount_cents);
        ons_pgarr_text0(&a[6], b->currency);
        ons_pgarr_text0(&a[7], b->payment_method);
        ons_pgarr_text0(&a[8], b->charge_id);
        ons_pgarr_text0(&a[9], key);
        ons_pgarr_text0(&a[10], b->unless_paid ? "t" : "f");
    }
    /* Orders were written first: a refund "unless paid" sees this batch's
     * payments too, and a ticket refund takes the order's charge. */
    return run(conn, "insert outbox",
               "INSERT INTO outbox (kind, order_id, reservation_id, event_id, ticket_id, "
               "amount_cents, currency, payment_method, charge_id, idempotency_key) "
               "SELECT u.kind, u.oid, CASE WHEN u.rid < 0 THEN o.reservation_id ELSE u.rid END, "
               "u.ev, nullif(u.tid, 0), u.amt, u.cur, u.pm, "
               "coalesce(u.ch, o.gateway_charge_id), u.key "
               "FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], "
               "$6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], $11::bool[]) "
               "AS u(kind, oid, rid, ev, tid, amt, cur, pm, ch, key, unless_paid) "
               "JOIN orders o ON o.order_id = u.oid "
               "WHERE NOT (u.unless_paid AND (o.state = 'paid' OR EXISTS (SELECT 1 FROM outbox v "
               "  WHERE v.idempotency_key = 'refund-cancel-' || u.oid))) "
               "ON CONFLICT (idempotency_key) DO NOTHING",
               a, 11);
}

int wk_co_store_write(PGconn *conn, wk_part *p)
{
    wk_co *co = p->co;
    if (!co || (co->norders == 0 && co->ntix == 0 && co->noutbox == 0))
        return 0;
    ons_pgarr a[NARR];
    memset(a, 0, sizeof a);
    int rc = write_rows(conn, a, order_writes, sizeof order_writes / sizeof *order_writes,
                        co->orders, sizeof *co->orders, co->norders);
    if (rc == 0)
        rc = write_rows(conn, a, ticket_writes, sizeof ticket_writes / sizeof *ticket_writes,
                        co->tix, sizeof *co->tix, co->ntix);
    if (rc == 0)
        rc = write_outbox(conn, co, a);
    ons_pgarrs_fini(a, NARR);
    return rc;
}

/* ---- loading -------------------------------------------------------------------------- */

/* Applies one loaded row to p: 0, or an error that stops the load. */
typedef int (*load_row_fn)(wk_part *p, ons_pg_row *rw);

/* Runs the loader query sql with v (the event ids, $1) and applies each row
 * to p with apply, until the first error. */
static int load_rows(PGconn *conn, wk_part *p, const char *what, const char *sql,
                     const char *const *v, load_row_fn apply)
{
    PGresult *r;
    int rc = ons_pg_exec(conn, PGRES_TUPLES_OK, what, sql, 1, v, &r);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        ons_pg_row rw = ons_pg_row_at(r, i);
        rc = apply(p, &rw);
    }
    PQclear(r);
    return rc;
}

/* A pending order (order_id, reservation_id, event_id): its paying hold's
 * order. */
static int apply_pending_order(wk_part *p, ons_pg_row *rw)
{
    int64_t oid = ons_pg_row_i64(rw, 0);
    int64_t rid = ons_pg_row_i64(rw, 1);
    int64_t event_id = ons_pg_row_i64(rw, 2);
    if (ons_pg_row_done(rw, "load orders"))
        return ONS_EDB;
    wk_intent *in = wk_part_intent(p, rid);
    if (in && in->ev->event_id == event_id && in->state == Q_INTENT_PAYING)
        in->order_id = oid;
    else
        ons_log_warn("event %" PRId64 ": pending order %" PRId64 " without a paying hold", event_id,
                     oid);
    return 0;
}

/* A valid ticket (ticket_id, seat_no, owner_id, order_id, price_cents,
 * event_id) of a loaded event. */
static int apply_valid_ticket(wk_part *p, ons_pg_row *rw)
{
    int64_t ticket_id = ons_pg_row_i64(rw, 0);
    int32_t seat_no = ons_pg_row_i32(rw, 1);
    int64_t owner_id = ons_pg_row_i64(rw, 2);
    int64_t order_id = ons_pg_row_i64(rw, 3);
    int64_t price = ons_pg_row_i64(rw, 4);
    int64_t event_id = ons_pg_row_i64(rw, 5);
    wk_event *ev = NULL;
    if (ons_pg_row_done(rw, "load tickets") || !(ev = wk_part_event(p, event_id)))
        return ONS_EDB;
    int rc = wk_co_add_ticket(p, ev, ticket_id, seat_no, owner_id, order_id, price);
    if (rc == ONS_ENOTFOUND) {
        ons_log_warn("event %" PRId64 ": ticket %" PRId64 " names no seat", ev->event_id,
                     ticket_id);
        rc = 0;
    }
    return rc;
}

int wk_co_store_load_many(PGconn *conn, wk_part *p, size_t n, const char *ids)
{
    if (n == 0)
        return 0;
    const char *v[] = {ids};
    /* Each paying hold of the loaded events gets its pending order, then
     * the events' valid tickets are added. */
    int rc = load_rows(conn, p, "load orders",
                       "SELECT order_id, reservation_id, event_id FROM orders "
                       "WHERE event_id = ANY($1::bigint[]) AND state = 'pending'",
                       v, apply_pending_order);
    return rc ? rc
              : load_rows(conn, p, "load tickets",
                          "SELECT ticket_id, seat_no, owner_id, order_id, price_cents, event_id "
                          "FROM tickets WHERE event_id = ANY($1::bigint[]) AND status = 'valid'",
                          v, apply_valid_ticket);
}
