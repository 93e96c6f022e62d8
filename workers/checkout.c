/* checkout.c - the checkout saga's apply rules in the partition owner; see
 * checkout.h. Only memory is touched here; checkout_store.c writes the
 * effects inside the batch transaction. */
#include "workers/checkout.h"
#include "common/err.h"
#include "common/log.h"
#include "queue/intent_id.h"
#include "common/vec.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- lifecycle -------------------------------------------------------------------------- */

wk_co *wk_co_of(wk_part *p)
{
    if (!p->co)
        p->co = calloc(1, sizeof *p->co);
    return p->co;
}

void wk_co_free(wk_co *co)
{
    if (!co)
        return;
    for (size_t i = 0; i < co->tickets.cap; i++)
        free(co->tickets.slots[i].val);
    wk_map_fini(&co->tickets);
    wk_map_fini(&co->order_idx);
    wk_map_fini(&co->tix_idx);
    free(co->orders);
    free(co->outbox);
    free(co->tix);
    free(co);
}

void wk_co_batch_done(wk_co *co)
{
    co->norders = co->noutbox = co->ntix = 0;
    wk_map_clear(&co->order_idx);
    wk_map_clear(&co->tix_idx);
}

/* ---- batch records ------------------------------------------------------------------------ */

/* The batch record of order_id, created (zeroed but for the id) if new. */
static wk_fx_order *fx_order(wk_co *co, int64_t order_id)
{
    uintptr_t idx = (uintptr_t)wk_map_get(&co->order_idx, order_id);
    if (idx)
        return &co->orders[idx - 1];
    if (ONS_VEC_RESERVE(co->orders, co->cap_orders, co->norders + 1, 32) ||
        wk_map_put(&co->order_idx, order_id, (void *)(uintptr_t)(co->norders + 1)))
        return NULL;
    wk_fx_order *o = &co->orders[co->norders++];
    memset(o, 0, sizeof *o);
    o->order_id = order_id;
    return o;
}

static wk_fx_outbox *fx_outbox(wk_co *co)
{
    if (ONS_VEC_RESERVE(co->outbox, co->cap_outbox, co->noutbox + 1, 32))
        return NULL;
    wk_fx_outbox *b = &co->outbox[co->noutbox++];
    memset(b, 0, sizeof *b);
    return b;
}

static wk_fx_ticket *fx_ticket(wk_co *co, int64_t ticket_id)
{
    uintptr_t idx = (uintptr_t)wk_map_get(&co->tix_idx, ticket_id);
    if (idx)
        return &co->tix[idx - 1];
    if (ONS_VEC_RESERVE(co->tix, co->cap_tix, co->ntix + 1, 32) ||
        wk_map_put(&co->tix_idx, ticket_id, (void *)(uintptr_t)(co->ntix + 1)))
        return NULL;
    wk_fx_ticket *t = &co->tix[co->ntix++];
    memset(t, 0, sizeof *t);
    t->ticket_id = ticket_id;
    return t;
}

/* The state this batch already gave order_id, or -1 when it gave none. */
static int batch_order_state(const wk_co *co, int64_t order_id)
{
    uintptr_t idx = (uintptr_t)wk_map_get(&co->order_idx, order_id);
    return idx ? co->orders[idx - 1].state : -1;
}

/* Records a state change of an order that may or may not be new in this
 * batch. Like the store (which never moves an order out of paid), the batch
 * record never leaves paid: no later record of the batch undoes a sale. */
static int order_state(wk_co *co, int64_t order_id, int state, const char *reason,
                       const char *charge_id)
{
    wk_fx_order *o = fx_order(co, order_id);
    if (!o)
        return ONS_ENOMEM;
    if (o->state == Q_ORDER_PAID && state != Q_ORDER_PAID)
        return 0;
    o->state = (uint8_t)state;
    if (reason)
        o->failure_reason = reason;
    if (charge_id && charge_id[0])
        snprintf(o->charge_id, sizeof o->charge_id, "%s", charge_id);
    return 0;
}

/* Names an updated order's reservation, owner and seat count in the batch's
 * effects (the store reads them only for new orders; the worker's log names
 * the order's intent with them, log.intents). */
static void order_of_intent(wk_co *co, int64_t order_id, const wk_intent *in)
{
    wk_fx_order *o = fx_order(co, order_id);
    if (!o || o->user_id)
        return;
    o->reservation_id = in->seq;
    o->user_id = in->user_id;
    o->nseats = (uint8_t)in->nseats;
}

static void snap_ticket(wk_fx_ticket *f, const wk_ticket *t, int valid)
{
    f->event_id = t->ev->event_id;
    f->order_id = t->order_id;
    f->owner_id = t->owner_id;
    f->price_cents = t->price_cents;
    f->seat_no = t->ev->inv.seat_no[t->seat];
    f->valid = (uint8_t)valid;
    f->unclaim = 0; /* the row is written whole, the claim cleared with it */
}

/* ---- the rules ---------------------------------------------------------------------------- */

static int apply_checkout(wk_part *p, wk_co *co, wk_event *ev, const q_msg *m, int64_t order_id,
                          int64_t now_ms)
{
    wk_intent *in = wk_part_intent(p, m->reservation_id);
    int ok = in && in->ev == ev && in->user_id == m->user_id && in->state == Q_INTENT_RESERVED &&
             in->res_state == Q_RES_HELD && in->expires_ms > now_ms;
    wk_fx_order *o = fx_order(co, order_id);
    if (!o)
        return ONS_ENOMEM;
    o->is_new = 1;
    o->reservation_id = m->reservation_id;
    o->event_id = ev->event_id;
    o->user_id = m->user_id;
    snprintf(o->currency, sizeof o->currency, "%s", ev->currency);
    if (!ok) {
        /* The store inserts it only if the user's reservation exists. */
        o->state = Q_ORDER_FAILED;
        o->failure_reason = q_order_reason_name(Q_ORDER_REASON_NOT_HELD);
        ons_log_info("checkout %" PRId64 ": reservation %" PRId64 " of user %" PRId64
                     " is not held; order failed",
                     order_id, m->reservation_id, m->user_id);
        return wk_part_touch_event(p, ev);
    }
    o->state = Q_ORDER_PENDING;
    o->total_cents = in->total_cents;
    o->nseats = in->nseats;
    for (int i = 0; i < in->nseats; i++) {
        o->seat_no[i] = ev->inv.seat_no[in->seats[i]];
        o->price[i] = ev->inv.price[in->seats[i]];
        int rc = wk_part_set_seat(p, ev, in->seats[i], Q_SEAT_PAYING, in->seq);
        if (rc)
            return rc;
    }
    in->state = Q_INTENT_PAYING;
    in->res_state = Q_RES_PAYING;
    in->order_id = order_id;
    in->expires_ms += (int64_t)p->cfg.paying_grace_seconds * 1000;
    wk_part_hold_moved(p, in);
    wk_fx_outbox *b = fx_outbox(co);
    if (!b)
        return ONS_ENOMEM;
    b->order_id = order_id;
    b->reservation_id = in->seq;
    b->event_id = ev->event_id;
    b->amount_cents = in->total_cents;
    snprintf(b->currency, sizeof b->currency, "%s", ev->currency);
    snprintf(b->payment_method, sizeof b->payment_method, "%s", m->payment_method);
    return wk_part_fx_intent(p, in, Q_REASON_NONE, 1);
}

static int issue_tickets(wk_part *p, wk_co *co, wk_intent *in)
{
    for (int i = 0; i < in->nseats; i++) {
        wk_ticket *t = calloc(1, sizeof *t);
        if (!t)
            return ONS_ENOMEM;
        t->ticket_id = wk_ticket_id(in->order_id, i);
        t->owner_id = in->user_id;
        t->order_id = in->order_id;
        t->price_cents = in->ev->inv.price[in->seats[i]];
        t->ev = in->ev;
        t->seat = in->seats[i];
        free(wk_map_del(&co->tickets, t->ticket_id)); /* a replay after a reload */
        if (wk_map_put(&co->tickets, t->ticket_id, t)) {
            free(t);
            return ONS_ENOMEM;
        }
        wk_fx_ticket *f = fx_ticket(co, t->ticket_id);
        if (!f)
            return ONS_ENOMEM;
        snap_ticket(f, t, 1);
        f->is_new = 1;
    }
    (void)p;
    return 0;
}

/* The failure reason a declined or failed payment result gives its order. */
static const char *payment_failure_reason(const q_msg *m)
{
    return q_order_reason_name(m->outcome == Q_PAY_DECLINED ? Q_ORDER_REASON_DECLINED
                                                            : Q_ORDER_REASON_FAILED);
}

/* Queues the refund of a charge whose hold is gone; the store sends it
 * unless the order is paid. */
static int refund_unheld_charge(wk_co *co, const wk_event *ev, const q_msg *m)
{
    wk_fx_outbox *b = fx_outbox(co);
    if (!b)
        return ONS_ENOMEM;
    b->is_refund = 1;
    b->unless_paid = 1;
    b->order_id = m->order_id;
    b->reservation_id = m->reservation_id;
    b->event_id = ev->event_id;
    b->amount_cents = m->amount_cents;
    snprintf(b->currency, sizeof b->currency, "%s", ev->currency);
    snprintf(b->charge_id, sizeof b->charge_id, "%s", m->charge_id);
    return 0;
}

/* A payment result for an order whose paying hold is not current. */
static int payment_without_hold(wk_part *p, wk_co *co, wk_event *ev, const q_msg *m)
{
    /* A result repeated within one batch (a relay that re-sent it while
     * the owner lagged) finds the order decided in memory, where the
     * store's "unless paid" cannot see it yet: paid or refunded is
     * final, the repeat changes nothing. */
    int decided = batch_order_state(co, m->order_id);
    if (decided == Q_ORDER_PAID || decided == Q_ORDER_REFUNDED) {
        ons_log_info("payment result for order %" PRId64 " repeated: already %s, ignored",
                     m->order_id, q_order_state_name(decided));
        return wk_part_touch_event(p, ev);
    }
    if (m->outcome != Q_PAY_SUCCEEDED)
        return order_state(co, m->order_id, Q_ORDER_FAILED, payment_failure_reason(m), NULL);
    /* A charge for a hold that is gone (expired, or a replay of a result
     * already applied): refund unless the order is paid. */
    ons_log_warn("payment for order %" PRId64 " (reservation %" PRId64
                 ") arrived without a paying hold: refund unless already paid",
                 m->order_id, m->reservation_id);
    int rc = order_state(co, m->order_id, Q_ORDER_REFUNDED, NULL, m->charge_id);
    if (rc || (rc = refund_unheld_charge(co, ev, m)) != 0)
        return rc;
    return wk_part_touch_event(p, ev);
}

/* The paying hold in is paid: its seats are sold and its tickets issued. */
static int payment_succeeded(wk_part *p, wk_co *co, wk_event *ev, wk_intent *in, const q_msg *m,
                             int64_t now_ms)
{
    int rc;
    if (m->amount_cents != in->total_cents)
        ons_log_warn("order %" PRId64 ": charged %" PRId64 " cents, expected %" PRId64, m->order_id,
                     m->amount_cents, in->total_cents);
    for (int i = 0; i < in->nseats; i++)
        if ((rc = wk_part_set_seat(p, ev, in->seats[i], Q_SEAT_SOLD, in->seq)) != 0)
            return rc;
    if ((rc = order_state(co, m->order_id, Q_ORDER_PAID, NULL, m->charge_id)) != 0 ||
        (rc = issue_tickets(p, co, in)) != 0)
        return rc;
    in->state = Q_INTENT_PURCHASED;
    in->res_state = Q_RES_PURCHASED;
    if ((rc = wk_part_fx_intent(p, in, Q_REASON_NONE, 1)) != 0)
        return rc;
    wk_part_forget(p, in);
    /* The last seats may just have been sold: then the waiting fans
     * are answered sold_out now, not left waiting for a release. */
    return wk_part_serve_waiting(p, ev, now_ms);
}

/* The payment of hold in was declined or failed: held again for what is
 * left of the hold (an already-past hold expires on the owner's next
 * expiry pass). */
static int payment_failed(wk_part *p, wk_co *co, wk_event *ev, wk_intent *in, const q_msg *m)
{
    int rc = order_state(co, m->order_id, Q_ORDER_FAILED, payment_failure_reason(m), NULL);
    if (rc)
        return rc;
    for (int i = 0; i < in->nseats; i++)
        if ((rc = wk_part_set_seat(p, ev, in->seats[i], Q_SEAT_HELD, in->seq)) != 0)
            return rc;
    in->state = Q_INTENT_RESERVED;
    in->res_state = Q_RES_HELD;
    in->order_id = 0;
    in->expires_ms -= (int64_t)p->cfg.paying_grace_seconds * 1000;
    wk_part_hold_moved(p, in);
    return wk_part_fx_intent(p, in, Q_REASON_NONE, 1);
}

static int apply_payment(wk_part *p, wk_co *co, wk_event *ev, const q_msg *m, int64_t now_ms)
{
    /* Holds that ran out are ended first: the event may just have been
     * loaded for this record, before the owner's expiry pass saw it, and a
     * paying hold past its grace must never be sold. */
    int rc = wk_part_expire(p, now_ms, (size_t)-1);
    if (rc < 0)
        return rc;
    wk_intent *in = wk_part_intent(p, m->reservation_id);
    int current = in && in->ev == ev && in->state == Q_INTENT_PAYING && in->order_id == m->order_id;
    if (!current)
        return payment_without_hold(p, co, ev, m);
    order_of_intent(co, m->order_id, in);
    if (m->outcome == Q_PAY_SUCCEEDED)
        return payment_succeeded(p, co, ev, in, m, now_ms);
    return payment_failed(p, co, ev, in, m);
}

/* Why a ticket change the owner holds is refused now, or NULL. The end and
 * the refund cut-off are judged at the record's sent_ms, which ingress set
 * to the instant it judged the same rules at (ingress/order_store.h
 * ing_ticket_for_change): a change ingress accepted (202) is not refused
 * here for the time its claim and send took, or for this owner's batch
 * coming later, and a replay decides the same. A sale cancelled before
 * the record (in log order) refuses it whatever the time. */
static const char *ticket_refused(const wk_part *p, const wk_event *ev, const q_msg *m,
                                  int64_t now_ms)
{
    int64_t when = m->sent_ms > 0 ? m->sent_ms : now_ms;
    if (ev->status == Q_EVENT_CANCELLED)
        return "the event is over";
    /* Ended (catch_up_event ends it by this owner's now before the record
     * is applied): by the judged instant, when the show's time is known. */
    if (ev->status == Q_EVENT_ENDED &&
        (ev->starts_at_ms <= 0 || when >= ev->starts_at_ms + p->cfg.end_grace_ms))
        return "the event is over";
    if (m->ticket_kind == Q_TICKET_CANCEL && ev->starts_at_ms > 0 &&
        when >= ev->starts_at_ms - p->cfg.refund_cutoff_ms)
        return "the refund window has closed";
    return NULL;
}

/* A change of ticket_id this batch ignores: ingress claimed the ticket for
 * it (tickets.change_claimed_at blocks its code and the door scan), so the
 * batch clears the claim, in the same transaction as its other writes. A
 * ticket this batch already writes has its claim cleared by that write. */
static int unclaim_ignored(wk_co *co, int64_t ticket_id)
{
    int fresh = wk_map_get(&co->tix_idx, ticket_id) == NULL;
    wk_fx_ticket *f = fx_ticket(co, ticket_id);
    if (!f)
        return ONS_ENOMEM;
    if (fresh)
        f->unclaim = 1;
    return 0;
}

static int apply_ticket(wk_part *p, wk_co *co, wk_event *ev, const q_msg *m, int64_t now_ms)
{
    wk_ticket *t = wk_map_get(&co->tickets, m->ticket_id);
    const char *refused = NULL;
    if (!t || t->ev != ev || t->owner_id != m->user_id ||
        (refused = ticket_refused(p, ev, m, now_ms)) != NULL) {
        ons_log_info("ticket %s of %" PRId64 " by user %" PRId64 " ignored: %s",
                     m->ticket_kind == Q_TICKET_TRANSFER ? "transfer" : "cancel", m->ticket_id,
                     m->user_id, refused ? refused : "not a valid ticket of theirs");
        int rc = unclaim_ignored(co, m->ticket_id);
        return rc ? rc : wk_part_touch_event(p, ev);
    }
    wk_fx_ticket *f = fx_ticket(co, t->ticket_id);
    if (!f)
        return ONS_ENOMEM;
    if (m->ticket_kind == Q_TICKET_TRANSFER) {
        t->owner_id = m->to_user_id;
        snap_ticket(f, t, 1);
        f->transfers++; /* the store bumps code_version: codes shown before stop verifying */
        return wk_part_touch_event(p, ev);
    }
    snap_ticket(f, t, 0);
    wk_fx_outbox *b = fx_outbox(co);
    if (!b)
        return ONS_ENOMEM;
    b->is_refund = 1;
    b->order_id = t->order_id;
    b->reservation_id = -1;
    b->event_id = ev->event_id;
    b->ticket_id = t->ticket_id;
    b->amount_cents = t->price_cents;
    snprintf(b->currency, sizeof b->currency, "%s", ev->currency);
    int rc = wk_part_set_seat(p, ev, t->seat, Q_SEAT_AVAILABLE, -1);
    wk_map_del(&co->tickets, t->ticket_id);
    free(t);
    if (rc || (rc = wk_part_touch_event(p, ev)) != 0)
        return rc;
    return wk_part_serve_waiting(p, ev, now_ms);
}

int wk_co_apply(wk_part *p, wk_event *ev, const q_msg *m, int64_t offset, int64_t now_ms)
{
    wk_co *co = wk_co_of(p);
    if (!co)
        return ONS_ENOMEM;
    switch (m->type) {
    case Q_MSG_CHECKOUT:
        return apply_checkout(p, co, ev, m, q_seq_make(p->partition, offset), now_ms);
    case Q_MSG_PAYMENT_RESULT:
        return apply_payment(p, co, ev, m, now_ms);
    case Q_MSG_TICKET:
        return apply_ticket(p, co, ev, m, now_ms);
    default:
        return ONS_EINVAL;
    }
}

int wk_co_paying_expired(wk_part *p, wk_intent *in)
{
    wk_co *co = wk_co_of(p);
    if (!co)
        return ONS_ENOMEM;
    ons_log_info("order %" PRId64 ": hold of reservation %" PRId64
                 " ran out while paying; a later charge is refunded",
                 in->order_id, in->seq);
    return order_state(co, in->order_id, Q_ORDER_FAILED,
                       q_order_reason_name(Q_ORDER_REASON_EXPIRED), NULL);
}

int wk_co_paying_closed(wk_part *p, wk_intent *in, const char *why)
{
    wk_co *co = wk_co_of(p);
    if (!co)
        return ONS_ENOMEM;
    ons_log_info("order %" PRId64 ": the sale closed (%s) while paying; a later charge is "
                 "refunded",
                 in->order_id, why);
    return order_state(co, in->order_id, Q_ORDER_FAILED, why, NULL);
}

/* wk_map_values: a ticket of the event ctx. */
static int ticket_of_event(const void *val, const void *ctx)
{
    return ((const wk_ticket *)val)->ev == ctx;
}

/* Voids every valid ticket of ev: the seat is freed and the ticket's order
 * marked for one refund (voided = 1, void_cents summed). */
static int void_event_tickets(wk_part *p, wk_co *co, wk_event *ev)
{
    /* Collect first: voiding deletes tickets from the map being walked. */
    size_t n;
    void **mine = wk_map_values(&co->tickets, ticket_of_event, ev, &n);
    if (!mine)
        return ONS_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        wk_ticket *t = mine[i];
        wk_fx_ticket *f = fx_ticket(co, t->ticket_id);
        wk_fx_order *o = fx_order(co, t->order_id);
        if (!f || !o) {
            rc = ONS_ENOMEM;
            break;
        }
        snap_ticket(f, t, 0);
        f->voided = 1;
        /* Only paid orders have valid tickets; the store moves them (and
         * only them, with voided set) from paid to refunded. */
        o->voided = 1;
        o->state = Q_ORDER_REFUNDED;
        o->event_id = ev->event_id;
        o->void_cents += t->price_cents;
        rc = wk_part_set_seat(p, ev, t->seat, Q_SEAT_AVAILABLE, -1);
        wk_map_del(&co->tickets, t->ticket_id);
        free(t);
    }
    free(mine);
    return rc;
}

/* Queues one refund per order of ev whose tickets were just voided, for the
 * tickets that were still valid. */
static int refund_voided_orders(wk_co *co, const wk_event *ev)
{
    for (size_t i = 0; i < co->norders; i++) {
        wk_fx_order *o = &co->orders[i];
        if (o->voided != 1 || o->event_id != ev->event_id)
            continue;
        o->voided = 2;
        wk_fx_outbox *b = fx_outbox(co);
        if (!b)
            return ONS_ENOMEM;
        b->is_refund = 1;
        b->event_void = 1;
        b->order_id = o->order_id;
        b->reservation_id = -1;
        b->event_id = ev->event_id;
        b->amount_cents = o->void_cents;
        snprintf(b->currency, sizeof b->currency, "%s", ev->currency);
        ons_log_info("order %" PRId64 ": event %" PRId64 " cancelled: tickets voided, %" PRId64
                     " cents refunded",
                     o->order_id, ev->event_id, o->void_cents);
    }
    return 0;
}

int wk_co_void_tickets(wk_part *p, wk_event *ev)
{
    wk_co *co = wk_co_of(p);
    if (!co)
        return ONS_ENOMEM;
    int rc = void_event_tickets(p, co, ev);
    if (rc || (rc = refund_voided_orders(co, ev)) != 0)
        return rc;
    return wk_part_touch_event(p, ev);
}

int wk_co_add_ticket(wk_part *p, wk_event *ev, int64_t ticket_id, int32_t seat_no, int64_t owner,
                     int64_t order_id, int64_t price_cents)
{
    wk_co *co = wk_co_of(p);
    if (!co)
        return ONS_ENOMEM;
    /* seat_no numbers seats in allocation order, as the inventory does. */
    uint32_t seat = (uint32_t)seat_no;
    if (seat_no < 0 || seat >= ev->inv.nseats || ev->inv.seat_no[seat] != seat_no) {
        for (seat = 0; seat < ev->inv.nseats && ev->inv.seat_no[seat] != seat_no; seat++)
            ;
        if (seat >= ev->inv.nseats)
            return ONS_ENOTFOUND;
    }
    wk_ticket *t = malloc(sizeof *t);
    if (!t)
        return ONS_ENOMEM;
    *t = (wk_ticket){.ticket_id = ticket_id,
                     .owner_id = owner,
                     .order_id = order_id,
                     .price_cents = price_cents,
                     .ev = ev,
                     .seat = seat};
    free(wk_map_del(&co->tickets, ticket_id));
    if (wk_map_put(&co->tickets, ticket_id, t)) {
        free(t);
        return ONS_ENOMEM;
    }
    return 0;
}
