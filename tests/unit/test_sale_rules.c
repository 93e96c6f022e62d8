/* test_sale_rules.c - the sale rules the partition owner applies in memory
 * (workers/partition.c, workers/checkout.c): final statuses, cancelling an
 * event with tickets sold and a payment in flight, ending after the show,
 * the refund cut-off and the end judged at the record's sent_ms. No services. */
#include "wk_fixture.h"
#include "common/err.h"
#include "queue/intent_id.h"
#include "workers/checkout.h"
#include "workers/partition.h"

#include "tests/check_run.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EV       7
#define NOW      INT64_C(1000000000)
#define STARTS   (NOW + INT64_C(48) * 3600 * 1000) /* the show: two days ahead */
#define GRACE_MS INT64_C(60000)
#define CUTOFF   INT64_C(24) * 3600 * 1000

/* Event 7: one row of 8 seats at 5000, max 4 per user, hold 60 s. */
static int load(void *ctx, wk_part *p, int64_t event_id)
{
    (void)ctx;
    if (event_id != EV)
        return ONS_ENOTFOUND;
    wk_event *ev = wk_test_event(event_id, 60);
    ev->starts_at_ms = STARTS;
    ck_assert_int_eq(wk_inv_add_block(&ev->inv, 1, "A", 0, 1, 8, 5000), 0);
    return wk_part_add_event(p, ev);
}

static int64_t next_off;

static wk_part *part(void)
{
    next_off = 0;
    wk_part_cfg cfg = {load, NULL, 0, 120, GRACE_MS, CUTOFF, 0, NULL, 0, 0, 0};
    wk_part *p = wk_part_new(0, 1, 0, &cfg);
    ck_assert_ptr_nonnull(p);
    return p;
}

static q_msg msg(int type, int64_t user)
{
    q_msg m = wk_test_msg(type, EV, user, NOW);
    return m;
}

static int64_t apply(wk_part *p, q_msg *m, int64_t now)
{
    int64_t off = next_off++;
    ck_assert_int_eq(wk_part_apply(p, m, off, now, now), 0);
    return off;
}

/* Joins with qty seats; returns the reservation id (= intent seq). */
static int64_t reserve(wk_part *p, int64_t user, int qty)
{
    q_msg m = msg(Q_MSG_INTENT, user);
    m.quantity = qty;
    int64_t seq = q_seq_make(0, apply(p, &m, NOW));
    ck_assert_ptr_nonnull(wk_part_intent(p, seq));
    ck_assert_int_eq(wk_part_intent(p, seq)->state, Q_INTENT_RESERVED);
    return seq;
}

/* Checks out rid; returns the order id. */
static int64_t checkout(wk_part *p, int64_t user, int64_t rid)
{
    q_msg m = msg(Q_MSG_CHECKOUT, user);
    m.reservation_id = rid;
    strcpy(m.payment_method, "pm_card_visa");
    return q_seq_make(0, apply(p, &m, NOW));
}

static void paid(wk_part *p, int64_t user, int64_t rid, int64_t oid, int64_t cents)
{
    q_msg m = msg(Q_MSG_PAYMENT_RESULT, user);
    m.reservation_id = rid;
    m.order_id = oid;
    m.outcome = Q_PAY_SUCCEEDED;
    m.amount_cents = cents;
    strcpy(m.charge_id, "ch_1");
    apply(p, &m, NOW);
}

/* user reserves qty seats, checks out and pays cents: the paid order's id. */
static int64_t bought(wk_part *p, int64_t user, int qty, int64_t cents)
{
    int64_t rid = reserve(p, user, qty), oid = checkout(p, user, rid);
    paid(p, user, rid, oid, cents);
    return oid;
}

static void status(wk_part *p, const char *st, int64_t now)
{
    q_msg m = msg(Q_MSG_EVENT_STATUS, 0);
    strcpy(m.status, st);
    apply(p, &m, now);
}

static const wk_fx_order *order_fx(wk_part *p, int64_t oid)
{
    for (size_t i = 0; p->co && i < p->co->norders; i++)
        if (p->co->orders[i].order_id == oid)
            return &p->co->orders[i];
    return NULL;
}

START_TEST(cancel_voids_tickets_and_refunds_each_order_once)
{
    wk_part *p = part();
    int64_t o1 = bought(p, 1, 2, 10000);
    bought(p, 2, 1, 5000);
    int64_t r3 = reserve(p, 3, 1);
    int64_t r4 = reserve(p, 4, 1), o4 = checkout(p, 4, r4); /* charge in flight */
    wk_part_batch_done(p);                                  /* committed */

    status(p, "cancelled", NOW);
    wk_event *ev = wk_part_event(p, EV);
    ck_assert_int_eq(ev->status, Q_EVENT_CANCELLED);
    ck_assert(ev->status_dirty);
    ck_assert_int_eq(ev->inv.available, 8);
    ck_assert_ptr_null(wk_part_intent(p, r3));
    ck_assert_ptr_null(wk_part_intent(p, r4));
    /* three tickets voided, none valid */
    ck_assert_uint_eq(p->co->ntix, 3);
    for (size_t i = 0; i < p->co->ntix; i++)
        ck_assert(!p->co->tix[i].valid && p->co->tix[i].voided);
    ck_assert_uint_eq(p->co->tickets.len, 0);
    /* one refund per paid order, for what its tickets cost */
    ck_assert_uint_eq(p->co->noutbox, 2);
    int64_t sum = 0;
    for (size_t i = 0; i < p->co->noutbox; i++) {
        const wk_fx_outbox *b = &p->co->outbox[i];
        ck_assert(b->is_refund && b->event_void && !b->unless_paid);
        ck_assert_int_eq(b->amount_cents, b->order_id == o1 ? 10000 : 5000);
        sum += b->amount_cents;
    }
    ck_assert_int_eq(sum, 15000);
    ck_assert_int_eq(order_fx(p, o1)->state, Q_ORDER_REFUNDED);
    ck_assert(order_fx(p, o1)->voided);
    /* the order paying at the cancel failed */
    ck_assert_int_eq(order_fx(p, o4)->state, Q_ORDER_FAILED);
    ck_assert_str_eq(order_fx(p, o4)->failure_reason, "cancelled");
    wk_part_batch_done(p);

    /* Its charge succeeds afterwards: refunded, no ticket. */
    paid(p, 4, r4, o4, 5000);
    ck_assert_uint_eq(p->co->ntix, 0);
    ck_assert_uint_eq(p->co->noutbox, 1);
    ck_assert(p->co->outbox[0].is_refund && !p->co->outbox[0].event_void);
    ck_assert_int_eq(order_fx(p, o4)->state, Q_ORDER_REFUNDED);
    ck_assert_int_eq(ev->inv.sold, 0);
    wk_part_free(p);
}
END_TEST

START_TEST(cancelled_and_ended_are_final)
{
    wk_part *p = part();
    reserve(p, 1, 1);
    status(p, "paused", NOW);
    ck_assert_int_eq(wk_part_event(p, EV)->status, Q_EVENT_PAUSED);
    status(p, "cancelled", NOW);
    status(p, "on_sale", NOW); /* crossed the cancel in the log */
    status(p, "paused", NOW);
    ck_assert_int_eq(wk_part_event(p, EV)->status, Q_EVENT_CANCELLED);
    q_msg m = msg(Q_MSG_INTENT, 9);
    m.quantity = 1;
    int64_t seq = q_seq_make(0, apply(p, &m, NOW));
    for (size_t i = 0; i < p->fx.nintents; i++)
        if (p->fx.intents[i].seq == seq)
            ck_assert_int_eq(p->fx.intents[i].reason, Q_REASON_SALE_CLOSED);
    wk_part_free(p);
}
END_TEST

START_TEST(resume_before_onsale_is_scheduled)
{
    wk_part *p = part();
    wk_event *ev = NULL;
    reserve(p, 1, 1);
    ev = wk_part_event(p, EV);
    ev->onsale_at_ms = NOW + 5000;
    ev->status = Q_EVENT_SCHEDULED;
    status(p, "on_sale", NOW); /* resuming a scheduled sale changes nothing */
    ck_assert_int_eq(ev->status, Q_EVENT_SCHEDULED);
    status(p, "paused", NOW);
    status(p, "on_sale", NOW);
    ck_assert_int_eq(ev->status, Q_EVENT_SCHEDULED);
    wk_part_free(p);
}
END_TEST

START_TEST(the_sale_ends_after_the_show)
{
    wk_part *p = part();
    bought(p, 1, 1, 5000);
    int64_t r2 = reserve(p, 2, 1);
    wk_part_batch_done(p);
    ck_assert_int_eq(wk_part_end_due(p, STARTS + GRACE_MS - 1), 0);
    ck_assert_int_eq(wk_part_end_due(p, STARTS + GRACE_MS), 1);
    wk_event *ev = wk_part_event(p, EV);
    ck_assert_int_eq(ev->status, Q_EVENT_ENDED);
    ck_assert_ptr_null(wk_part_intent(p, r2)); /* hold released */
    ck_assert_uint_eq(p->co->tickets.len, 1);  /* tickets stay valid */
    ck_assert_uint_eq(p->co->noutbox, 0);
    ck_assert_int_eq(wk_part_end_due(p, STARTS + GRACE_MS + 1), 0); /* once */
    wk_part_free(p);
}
END_TEST

START_TEST(ticket_cancel_refused_after_the_cutoff)
{
    wk_part *p = part();
    int64_t o1 = bought(p, 1, 2, 10000);
    wk_part_batch_done(p);
    q_msg m = msg(Q_MSG_TICKET, 1);
    m.ticket_kind = Q_TICKET_CANCEL;
    m.ticket_id = wk_ticket_id(o1, 0);
    m.sent_ms = STARTS - CUTOFF; /* at the cut-off: refused */
    apply(p, &m, NOW);
    ck_assert_uint_eq(p->co->noutbox, 0);
    ck_assert_uint_eq(p->co->tickets.len, 2);
    m.sent_ms = STARTS - CUTOFF - 1; /* just before: refunded */
    apply(p, &m, NOW);
    ck_assert_uint_eq(p->co->noutbox, 1);
    ck_assert_int_eq(p->co->outbox[0].amount_cents, 5000);
    ck_assert_uint_eq(p->co->tickets.len, 1);
    wk_part_free(p);
}
END_TEST

/* A change is judged at the instant ingress judged it (the record's
 * sent_ms), also the end: a transfer judged before the end and applied
 * after the owner ended the sale by its own clock is applied (it used to
 * be ignored, after ingress had answered 202); one judged at the end is
 * not. */
START_TEST(ticket_transfer_judged_before_the_end_is_applied)
{
    wk_part *p = part();
    int64_t o1 = bought(p, 1, 2, 10000);
    wk_part_batch_done(p);
    int64_t late = STARTS + GRACE_MS + 5000; /* the owner applies it after the end */
    q_msg m = msg(Q_MSG_TICKET, 1);
    m.ticket_kind = Q_TICKET_TRANSFER;
    m.ticket_id = wk_ticket_id(o1, 0);
    m.to_user_id = 2;
    m.sent_ms = STARTS + GRACE_MS; /* judged at the end: ignored */
    apply(p, &m, late);
    ck_assert_int_eq(wk_part_event(p, EV)->status, Q_EVENT_ENDED);
    wk_ticket *t = wk_map_get(&p->co->tickets, m.ticket_id);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->owner_id, 1);
    m.sent_ms = STARTS + GRACE_MS - 1; /* judged just before: applied */
    apply(p, &m, late);
    ck_assert_int_eq(t->owner_id, 2);
    wk_part_free(p);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"cancel_voids_tickets_and_refunds_each_order_once",
         cancel_voids_tickets_and_refunds_each_order_once},
        {"cancelled_and_ended_are_final", cancelled_and_ended_are_final},
        {"resume_before_onsale_is_scheduled", resume_before_onsale_is_scheduled},
        {"the_sale_ends_after_the_show", the_sale_ends_after_the_show},
        {"ticket_cancel_refused_after_the_cutoff", ticket_cancel_refused_after_the_cutoff},
        {"ticket_transfer_judged_before_the_end_is_applied",
         ticket_transfer_judged_before_the_end_is_applied},
    };
    return ons_check_run("sale_rules", cases, sizeof cases / sizeof *cases, 60);
}
