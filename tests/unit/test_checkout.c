/* test_checkout.c - the owner's side of a payment (workers/checkout.c,
 * apply_payment) at the partition level: each outcome for the paying
 * order, results that find no paying hold, and two results for one order
 * in one batch (a paid order is never downgraded). No services. */
#include "wk_fixture.h"
#include "tests/check_run.h"
#include "common/err.h"
#include "queue/intent_id.h"
#include "workers/checkout.h"
#include "workers/partition.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EV    7
#define NOW   1000000
#define HOLD  60  /* seconds */
#define GRACE 120 /* hold.paying_grace_s */

/* Event 7: one row of 4 seats at 5000, max 4 per user, holds of 60 s. */
static int load(void *ctx, wk_part *p, int64_t event_id)
{
    (void)ctx;
    if (event_id != EV)
        return ONS_ENOTFOUND;
    wk_event *ev = wk_test_event(event_id, HOLD);
    strcpy(ev->currency, "EUR");
    ck_assert_int_eq(wk_inv_add_block(&ev->inv, 1, "A", 0, 1, 4, 5000), 0);
    return wk_part_add_event(p, ev);
}

static int64_t next_off;
static wk_part *p;

static void setup(void)
{
    next_off = 0;
    wk_part_cfg cfg = {load, NULL, 0, GRACE, 0, 0, 0, NULL, 0, 0, 0};
    p = wk_part_new(0, 1, 0, &cfg);
    ck_assert_ptr_nonnull(p);
}

static void teardown(void)
{
    wk_part_free(p);
}

static void apply(q_msg *m, int64_t now_ms)
{
    m->event_id = m->event_id ? m->event_id : EV;
    m->sent_ms = NOW;
    ck_assert_int_eq(wk_part_apply(p, m, next_off++, NOW, now_ms), 0);
}

/* user's intent for qty seats; returns its offset (reservation seq). */
static int64_t hold(int64_t user, int qty)
{
    q_msg m = wk_test_msg(Q_MSG_INTENT, 0, user, 0);
    m.quantity = qty;
    int64_t off = next_off;
    apply(&m, NOW);
    return q_seq_make(0, off);
}

/* A checkout of the reservation res; returns the order id. */
static int64_t checkout(int64_t user, int64_t res)
{
    q_msg m = wk_test_msg(Q_MSG_CHECKOUT, 0, user, 0);
    m.reservation_id = res;
    strcpy(m.payment_method, "pm_card_visa");
    int64_t off = next_off;
    apply(&m, NOW);
    return q_seq_make(0, off);
}

static void result(int64_t order, int64_t res, int outcome, int64_t amount, int64_t now_ms)
{
    q_msg m = wk_test_msg(Q_MSG_PAYMENT_RESULT, 0, 0, 0);
    m.order_id = order;
    m.reservation_id = res;
    m.outcome = outcome;
    if (outcome == Q_PAY_SUCCEEDED)
        strcpy(m.charge_id, "ch_1");
    m.amount_cents = amount;
    apply(&m, now_ms);
}

static const wk_fx_order *order_fx(int64_t order)
{
    for (size_t i = 0; p->co && i < p->co->norders; i++)
        if (p->co->orders[i].order_id == order)
            return &p->co->orders[i];
    ck_abort_msg("no effect for order %lld", (long long)order);
    return NULL;
}

static const wk_fx_outbox *refund_of(int64_t order)
{
    for (size_t i = 0; p->co && i < p->co->noutbox; i++)
        if (p->co->outbox[i].is_refund && p->co->outbox[i].order_id == order)
            return &p->co->outbox[i];
    return NULL;
}

static size_t nrefunds(void)
{
    size_t n = 0;
    for (size_t i = 0; p->co && i < p->co->noutbox; i++)
        n += p->co->outbox[i].is_refund != 0;
    return n;
}

static const wk_inv *inv(void)
{
    return &wk_part_event(p, EV)->inv;
}

/* A paying order of 2 seats for user 1, its batch committed. */
static int64_t paying(int64_t *res)
{
    *res = hold(1, 2);
    int64_t o = checkout(1, *res);
    ck_assert_int_eq(order_fx(o)->state, Q_ORDER_PENDING);
    ck_assert_int_eq(wk_part_intent(p, *res)->state, Q_INTENT_PAYING);
    wk_part_batch_done(p);
    return o;
}

START_TEST(success_sells_issues_tickets_and_purchases)
{
    int64_t res, o = paying(&res);
    result(o, res, Q_PAY_SUCCEEDED, 10000, NOW + 1000);
    const wk_fx_order *f = order_fx(o);
    ck_assert_int_eq(f->state, Q_ORDER_PAID);
    ck_assert_str_eq(f->charge_id, "ch_1");
    ck_assert_int_eq(inv()->sold, 2);
    ck_assert_int_eq(inv()->held, 0);
    ck_assert_int_eq(p->co->ntix, 2);
    ck_assert_int_eq(p->co->tix[0].ticket_id, wk_ticket_id(o, 0));
    ck_assert_int_eq(p->co->tix[1].ticket_id, wk_ticket_id(o, 1));
    ck_assert_int_eq(p->co->tix[0].valid, 1);
    ck_assert_ptr_null(wk_part_intent(p, res)); /* purchased: forgotten */
    ck_assert_uint_eq(nrefunds(), 0);
}
END_TEST

/* A charge for another amount than expected is still the order's (logged). */
START_TEST(success_for_another_amount_still_pays)
{
    int64_t res, o = paying(&res);
    result(o, res, Q_PAY_SUCCEEDED, 9999, NOW + 1000);
    ck_assert_int_eq(order_fx(o)->state, Q_ORDER_PAID);
    ck_assert_int_eq(inv()->sold, 2);
}
END_TEST

static void assert_held_again(int64_t o, int64_t res, const char *why)
{
    const wk_fx_order *f = order_fx(o);
    ck_assert_int_eq(f->state, Q_ORDER_FAILED);
    ck_assert_str_eq(f->failure_reason, why);
    wk_intent *in = wk_part_intent(p, res);
    ck_assert_ptr_nonnull(in);
    ck_assert_int_eq(in->state, Q_INTENT_RESERVED);
    ck_assert_int_eq(in->order_id, 0);
    /* the grace a checkout added is taken back: the original expiry */
    ck_assert_int_eq(in->expires_ms, (int64_t)NOW + HOLD * 1000);
    ck_assert_int_eq(inv()->held, 2);
    ck_assert_int_eq(inv()->sold, 0);
    ck_assert_int_eq(p->co->ntix, 0);
    ck_assert_uint_eq(nrefunds(), 0);
}

START_TEST(decline_holds_the_seats_again)
{
    int64_t res, o = paying(&res);
    ck_assert_int_eq(wk_part_intent(p, res)->expires_ms, (int64_t)NOW + (HOLD + GRACE) * 1000);
    result(o, res, Q_PAY_DECLINED, 0, NOW + 1000);
    assert_held_again(o, res, "declined");
    /* and the fan may check out again */
    int64_t o2 = checkout(1, res);
    ck_assert_int_eq(order_fx(o2)->state, Q_ORDER_PENDING);
}
END_TEST

START_TEST(failure_holds_the_seats_again)
{
    int64_t res, o = paying(&res);
    result(o, res, Q_PAY_FAILED, 0, NOW + 1000);
    assert_held_again(o, res, "failed");
}
END_TEST

/* The result of an order that is no longer the reservation's (it failed,
 * the fan checked out again): a success is refunded unless paid, a
 * failure only fails that order. */
START_TEST(result_for_an_older_order_is_refunded_not_applied)
{
    int64_t res, o1 = paying(&res);
    result(o1, res, Q_PAY_DECLINED, 0, NOW + 1000);
    int64_t o2 = checkout(1, res);
    wk_part_batch_done(p);
    result(o1, res, Q_PAY_SUCCEEDED, 10000, NOW + 2000);
    ck_assert_int_eq(order_fx(o1)->state, Q_ORDER_REFUNDED);
    const wk_fx_outbox *r = refund_of(o1);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->unless_paid, 1);
    ck_assert_int_eq(r->amount_cents, 10000);
    ck_assert_str_eq(r->charge_id, "ch_1");
    ck_assert_int_eq(wk_part_intent(p, res)->state, Q_INTENT_PAYING); /* o2 untouched */
    ck_assert_int_eq(wk_part_intent(p, res)->order_id, o2);
    ck_assert_int_eq(inv()->sold, 0);
    wk_part_batch_done(p);
    result(o1, res, Q_PAY_FAILED, 0, NOW + 3000);
    ck_assert_int_eq(order_fx(o1)->state, Q_ORDER_FAILED);
    ck_assert_int_eq(wk_part_intent(p, res)->state, Q_INTENT_PAYING);
}
END_TEST

/* A success replayed in a later batch (the first is committed): the store
 * decides, so the refund is asked only "unless paid". */
START_TEST(success_replayed_in_a_later_batch_refunds_only_unless_paid)
{
    int64_t res, o = paying(&res);
    result(o, res, Q_PAY_SUCCEEDED, 10000, NOW + 1000);
    wk_part_batch_done(p);
    result(o, res, Q_PAY_SUCCEEDED, 10000, NOW + 2000);
    const wk_fx_outbox *r = refund_of(o);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->unless_paid, 1);
    ck_assert_int_eq(inv()->sold, 2); /* the seats stay sold */
}
END_TEST

/* Two results for one order in one batch: the success first, then a
 * failure or another success (a relay that re-sent while the owner
 * lagged). The paid order stays paid, with no refund and its tickets. */
START_TEST(two_results_in_one_batch_never_downgrade_a_paid_order)
{
    int outcomes[] = {Q_PAY_SUCCEEDED, Q_PAY_FAILED, Q_PAY_DECLINED};
    for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++) {
        teardown();
        setup();
        int64_t res, o = paying(&res);
        result(o, res, Q_PAY_SUCCEEDED, 10000, NOW + 1000);
        result(o, res, outcomes[i], outcomes[i] == Q_PAY_SUCCEEDED ? 10000 : 0, NOW + 1000);
        const wk_fx_order *f = order_fx(o);
        ck_assert_msg(f->state == Q_ORDER_PAID, "outcome %d after success: order %s", outcomes[i],
                      q_order_state_name(f->state));
        ck_assert_ptr_null(f->failure_reason);
        ck_assert_uint_eq(p->co->norders, 1);
        ck_assert_uint_eq(nrefunds(), 0);
        ck_assert_int_eq(p->co->ntix, 2);
        ck_assert_int_eq(inv()->sold, 2);
    }
}
END_TEST

/* A decline then a success for one order in one batch: the order failed
 * and the hold is back, so the success has no paying hold: refunded
 * (unless paid in PostgreSQL), seats not sold. */
START_TEST(success_after_a_decline_in_one_batch_is_refunded)
{
    int64_t res, o = paying(&res);
    result(o, res, Q_PAY_DECLINED, 0, NOW + 1000);
    result(o, res, Q_PAY_SUCCEEDED, 10000, NOW + 1000);
    ck_assert_int_eq(order_fx(o)->state, Q_ORDER_REFUNDED);
    ck_assert_uint_eq(nrefunds(), 1);
    ck_assert_int_eq(refund_of(o)->unless_paid, 1);
    ck_assert_int_eq(inv()->sold, 0);
    ck_assert_int_eq(wk_part_intent(p, res)->state, Q_INTENT_RESERVED);
}
END_TEST

/* A success after the paying hold (hold + grace) ran out: expired first,
 * then refunded, even when the result's batch is the first to see the
 * expiry (apply_payment expires due holds before it looks). */
START_TEST(success_after_the_grace_is_refunded)
{
    int64_t res, o = paying(&res);
    result(o, res, Q_PAY_SUCCEEDED, 10000, NOW + (HOLD + GRACE) * 1000 + 1);
    ck_assert_int_eq(order_fx(o)->state, Q_ORDER_REFUNDED);
    ck_assert_uint_eq(nrefunds(), 1);
    ck_assert_int_eq(inv()->sold, 0);
    ck_assert_int_eq(inv()->held, 0);
    ck_assert_ptr_null(wk_part_intent(p, res));
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"success", success_sells_issues_tickets_and_purchases},
        {"success_amount", success_for_another_amount_still_pays},
        {"decline", decline_holds_the_seats_again},
        {"failure", failure_holds_the_seats_again},
        {"older_order", result_for_an_older_order_is_refunded_not_applied},
        {"replay_later_batch", success_replayed_in_a_later_batch_refunds_only_unless_paid},
        {"two_results_one_batch", two_results_in_one_batch_never_downgrade_a_paid_order},
        {"success_after_decline", success_after_a_decline_in_one_batch_is_refunded},
        {"success_after_grace", success_after_the_grace_is_refunded},
    };
    return ons_check_run_fixture("checkout", cases, sizeof cases / sizeof *cases, 60, setup,
                                 teardown);
}
