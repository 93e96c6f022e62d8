/* test_partition.c - applying messages to a partition's memory
 * (workers/partition): FIFO reservations, waiting and releases in order,
 * duplicates, expiry, sale status, effect coalescing. No services. */
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

#define EV  7
#define NOW 1000000

/* Event 7: section A of 2 rows x 4 seats at 5000, section B 1 x 4 at 3000.
 * max_per_user 4, hold 60 s. Other event ids do not exist. */
static int rows_a = 2, seats_a = 4;
static int load(void *ctx, wk_part *p, int64_t event_id)
{
    (void)ctx;
    if (event_id != EV)
        return ONS_ENOTFOUND;
    wk_event *ev = wk_test_event(event_id, 60);
    ck_assert_int_eq(wk_inv_add_block(&ev->inv, 1, "A", 0, rows_a, seats_a, 5000), 0);
    ck_assert_int_eq(wk_inv_add_block(&ev->inv, 2, "B", 1, 1, 4, 3000), 1);
    return wk_part_add_event(p, ev);
}

static wk_part *part_with(wk_part_cfg cfg)
{
    wk_part *p = wk_part_new(0, 1, 0, &cfg);
    ck_assert_ptr_nonnull(p);
    return p;
}

static wk_part *part(void)
{
    return part_with((wk_part_cfg){.load = load});
}

/* part() with section A of rows x seats. */
static wk_part *part_sized(int rows, int seats)
{
    rows_a = rows;
    seats_a = seats;
    return part();
}

static int64_t next_off;

static int intent(wk_part *p, int64_t user, int qty, const char *section, int adjacent)
{
    q_msg m = wk_test_msg(Q_MSG_INTENT, EV, user, NOW);
    m.quantity = qty;
    m.adjacent = adjacent;
    if (section)
        strcpy(m.section, section);
    int64_t off = next_off++;
    ck_assert_int_eq(wk_part_apply(p, &m, off, NOW, NOW), 0);
    return (int)off;
}

/* part() where fans 1..n each asked for a whole row of section A (4
 * adjacent seats), in turn: fans 1 and 2 hold all of A, the rest wait.
 * Their offsets into off[]. */
static wk_part *part_rows_asked(int n, int off[])
{
    wk_part *p = part();
    for (int i = 0; i < n; i++)
        off[i] = intent(p, i + 1, 4, "A", 1);
    return p;
}

static void cancel(wk_part *p, int64_t user, int target, int kind)
{
    q_msg m = wk_test_msg(Q_MSG_CANCEL, EV, user, NOW);
    m.cancel_kind = kind;
    m.target_partition = 0;
    m.target_offset = target;
    m.reservation_id = q_seq_make(0, target);
    ck_assert_int_eq(wk_part_apply(p, &m, next_off++, NOW, NOW), 0);
}

static void status(wk_part *p, const char *st)
{
    q_msg m = wk_test_msg(Q_MSG_EVENT_STATUS, EV, 0, NOW);
    strcpy(m.status, st);
    ck_assert_int_eq(wk_part_apply(p, &m, next_off++, NOW, NOW), 0);
}

/* A checkout of user's reservation (the intent at res_off); returns the
 * order's offset (order_id = q_seq_make(0, offset)). */
static int checkout(wk_part *p, int64_t user, int res_off)
{
    q_msg m = wk_test_msg(Q_MSG_CHECKOUT, EV, user, NOW);
    m.reservation_id = q_seq_make(0, res_off);
    strcpy(m.payment_method, "pm_card_visa");
    int64_t off = next_off++;
    ck_assert_int_eq(wk_part_apply(p, &m, off, NOW, NOW), 0);
    return (int)off;
}

/* User 1 holds qty adjacent seats (in section; any when NULL) and checks
 * out: the reservation's offset in *r, the order's returned. */
static int paying_order(wk_part *p, int qty, const char *section, int *r)
{
    *r = intent(p, 1, qty, section, 1);
    return checkout(p, 1, *r);
}

/* The gateway's answer for the order at order_off (reservation res_off). */
static void payment(wk_part *p, int order_off, int res_off, int outcome, int64_t amount)
{
    q_msg m = wk_test_msg(Q_MSG_PAYMENT_RESULT, EV, 0, NOW);
    m.order_id = q_seq_make(0, order_off);
    m.reservation_id = q_seq_make(0, res_off);
    m.outcome = outcome;
    if (outcome == Q_PAY_SUCCEEDED)
        strcpy(m.charge_id, "ch_1");
    m.amount_cents = amount;
    ck_assert_int_eq(wk_part_apply(p, &m, next_off++, NOW, NOW), 0);
}

/* The batch's record of the order at order_off (NULL when none). */
static const wk_fx_order *order_fx(wk_part *p, int order_off)
{
    for (size_t i = 0; p->co && i < p->co->norders; i++)
        if (p->co->orders[i].order_id == q_seq_make(0, order_off))
            return &p->co->orders[i];
    return NULL;
}

static size_t refunds(wk_part *p)
{
    size_t n = 0;
    for (size_t i = 0; p->co && i < p->co->noutbox; i++)
        n += p->co->outbox[i].is_refund != 0;
    return n;
}

static const wk_fx_intent *fx(wk_part *p, int off)
{
    for (size_t i = 0; i < p->fx.nintents; i++)
        if (p->fx.intents[i].seq == q_seq_make(0, off))
            return &p->fx.intents[i];
    return NULL;
}

static int state_of(wk_part *p, int off)
{
    const wk_fx_intent *r = fx(p, off);
    ck_assert_msg(r != NULL, "no effect for offset %d", off);
    return r->state;
}

static void setup(void)
{
    next_off = 0;
    rows_a = 2;
    seats_a = 4;
}

START_TEST(fifo_best_seats_then_waiting_then_released_in_order)
{
    wk_part *p = part();
    int a = intent(p, 1, 4, "A", 1); /* row 1 */
    int b = intent(p, 2, 4, "A", 1); /* row 2 */
    int c = intent(p, 3, 2, "A", 1); /* all A held: waits */
    int d = intent(p, 4, 4, "A", 1); /* waits, behind c */
    ck_assert_int_eq(state_of(p, a), Q_INTENT_RESERVED);
    ck_assert_int_eq(fx(p, a)->seats[0], 0);
    ck_assert_int_eq(state_of(p, b), Q_INTENT_RESERVED);
    ck_assert_int_eq(fx(p, b)->seats[0], 4);
    ck_assert_int_eq(fx(p, b)->total_cents, 20000);
    ck_assert_int_eq(state_of(p, c), Q_INTENT_WAITING);
    ck_assert_int_eq(state_of(p, d), Q_INTENT_WAITING);
    wk_event *ev = wk_part_event(p, EV);
    ck_assert_int_eq(ev->nwaiting, 2);
    wk_part_batch_done(p);

    /* a gives back row 1: c (earlier) gets seats 1-2, d cannot fit in what
     * is left and keeps waiting */
    cancel(p, 1, a, Q_CANCEL_RESERVATION);
    ck_assert_int_eq(state_of(p, a), Q_INTENT_RELEASED);
    ck_assert_int_eq(state_of(p, c), Q_INTENT_RESERVED);
    ck_assert_int_eq(fx(p, c)->seats[0], 0);
    ck_assert_int_eq(fx(p, c)->is_new, 0);
    ck_assert_int_eq(fx(p, c)->res_new, 1);
    ck_assert_ptr_null(fx(p, d));
    ck_assert_int_eq(ev->nwaiting, 1);
    /* seats 0..1 changed twice (released, held by c): one final record each */
    ck_assert_int_eq(p->fx.nseats, 4);
    for (size_t i = 0; i < p->fx.nseats; i++) {
        const wk_fx_seat *s = &p->fx.seats[i];
        if (s->seat_no < 2)
            ck_assert_int_eq(s->reservation_id, q_seq_make(0, c));
        else
            ck_assert_int_eq(s->reservation_id, -1);
    }
    wk_part_batch_done(p);

    /* b gives back row 2: d gets it */
    cancel(p, 2, b, Q_CANCEL_INTENT);
    ck_assert_int_eq(state_of(p, d), Q_INTENT_RESERVED);
    ck_assert_int_eq(fx(p, d)->seats[0], 4);
    ck_assert_int_eq(ev->nwaiting, 0);
    wk_part_free(p);
}
END_TEST

START_TEST(duplicate_and_limits)
{
    wk_part *p = part();
    int a = intent(p, 1, 2, NULL, 1);
    int a2 = intent(p, 1, 1, NULL, 1);
    int big = intent(p, 2, 5, NULL, 1);    /* > max_per_user */
    int nosec = intent(p, 3, 1, "Z", 1);   /* no such section */
    int toolong = intent(p, 4, 4, "B", 1); /* B has 4: fits */
    int never = intent(p, 5, 3, "B", 1);   /* B's 4 seats are held: waits */
    ck_assert_int_eq(state_of(p, a), Q_INTENT_RESERVED);
    ck_assert_int_eq(state_of(p, a2), Q_INTENT_REJECTED);
    ck_assert_int_eq(fx(p, a2)->reason, Q_REASON_DUPLICATE);
    ck_assert_int_eq(fx(p, big)->reason, Q_REASON_INSUFFICIENT_SEATS);
    ck_assert_int_eq(fx(p, nosec)->reason, Q_REASON_INSUFFICIENT_SEATS);
    ck_assert_str_eq(fx(p, nosec)->section, "Z");
    ck_assert_int_eq(state_of(p, toolong), Q_INTENT_RESERVED);
    ck_assert_int_eq(state_of(p, never), Q_INTENT_WAITING);
    /* once a's intent ends, user 1 may join again */
    cancel(p, 1, a, Q_CANCEL_INTENT);
    int a3 = intent(p, 1, 1, NULL, 1);
    ck_assert_int_eq(state_of(p, a3), Q_INTENT_RESERVED);
    /* a cancel by someone else is ignored */
    cancel(p, 99, a3, Q_CANCEL_INTENT);
    ck_assert_int_eq(state_of(p, a3), Q_INTENT_RESERVED);
    wk_part_free(p);
}
END_TEST

START_TEST(adjacent_request_larger_than_any_row_is_rejected)
{
    wk_part *p = part_sized(3, 2);
    int x = intent(p, 1, 3, "A", 1);
    ck_assert_int_eq(fx(p, x)->reason, Q_REASON_INSUFFICIENT_SEATS);
    int y = intent(p, 2, 3, "A", 0); /* split is fine */
    ck_assert_int_eq(state_of(p, y), Q_INTENT_RESERVED);
    wk_part_free(p);
}
END_TEST

START_TEST(expiry_returns_seats_to_waiting_in_order)
{
    int o[4];
    wk_part *p = part_rows_asked(4, o);
    ck_assert_int_eq(state_of(p, o[2]), Q_INTENT_WAITING);
    wk_part_batch_done(p);
    ck_assert_int_eq(wk_part_next_expiry(p, NOW), 60000);
    ck_assert_int_eq(wk_part_expire(p, NOW + 59999, 100), 0);
    ck_assert_int_eq(wk_part_expire(p, NOW + 60000, 100), 2);
    ck_assert_int_eq(state_of(p, o[0]), Q_INTENT_EXPIRED);
    ck_assert_int_eq(state_of(p, o[1]), Q_INTENT_EXPIRED);
    ck_assert_int_eq(fx(p, o[0])->res_state, Q_RES_EXPIRED);
    ck_assert_int_eq(state_of(p, o[2]), Q_INTENT_RESERVED);
    ck_assert_int_eq(fx(p, o[2])->seats[0], 0);
    ck_assert_int_eq(state_of(p, o[3]), Q_INTENT_RESERVED);
    ck_assert_int_eq(fx(p, o[3])->seats[0], 4);
    ck_assert_int_eq(fx(p, o[3])->expires_ms, NOW + 60000 + 60000);
    wk_part_free(p);
}
END_TEST

START_TEST(expiry_heap_orders_many_holds)
{
    wk_part *p = part_sized(100, 10);
    /* holds created at scrambled times expire in time order */
    for (int i = 0; i < 200; i++) {
        q_msg m = wk_test_msg(Q_MSG_INTENT, EV, i + 1, NOW);
        m.quantity = 1;
        m.adjacent = 1;
        int64_t t = NOW + (i * 7919) % 1000;
        ck_assert_int_eq(wk_part_apply(p, &m, i, NOW, t), 0);
    }
    wk_part_batch_done(p);
    int64_t last = 0;
    for (int64_t t = NOW; t <= NOW + 61000; t += 10) {
        int n = wk_part_expire(p, t + 60000, 1000);
        ck_assert_int_ge(n, 0);
        for (size_t i = 0; i < p->fx.nintents; i++) {
            const wk_fx_intent *r = &p->fx.intents[i];
            ck_assert_int_eq(r->state, Q_INTENT_EXPIRED);
            ck_assert_int_le(r->expires_ms, t + 60000);
            ck_assert_int_ge(r->expires_ms, last);
        }
        for (size_t i = 0; i < p->fx.nintents; i++)
            if (p->fx.intents[i].expires_ms > last)
                last = p->fx.intents[i].expires_ms;
        wk_part_batch_done(p);
    }
    ck_assert_int_eq(ons_heap_count(&p->holds), 0);
    ck_assert_int_eq(wk_part_event(p, EV)->inv.available, 1004);
    wk_part_free(p);
}
END_TEST

START_TEST(sold_out_rejects_waiting_and_new)
{
    wk_part *p = part();
    wk_event *ev;
    intent(p, 1, 1, NULL, 1);
    ev = wk_part_event(p, EV);
    /* mark every other seat sold (as a checkout would) */
    for (uint32_t i = 1; i < ev->inv.nseats; i++)
        wk_inv_set(&ev->inv, i, Q_SEAT_SOLD);
    int w = intent(p, 2, 1, NULL, 1);
    ck_assert_int_eq(state_of(p, w), Q_INTENT_WAITING);
    wk_inv_set(&ev->inv, 0, Q_SEAT_SOLD); /* the last hold is bought */
    int x = intent(p, 3, 1, NULL, 1);
    ck_assert_int_eq(fx(p, x)->reason, Q_REASON_SOLD_OUT);
    wk_part_free(p);
}
END_TEST

/* Ends the batch; the next one opens with a round of rejections that
 * returns want (wk_part_reject_due: 1 while a sold-out event's waiting fans
 * are being rejected). */
static void next_reject_round(wk_part *p, int want)
{
    wk_part_batch_done(p);
    ck_assert_int_eq(wk_part_reject_due(p, NOW), want);
}

/* Fans 1-3 hold all 12 seats and pay; fans 4-9 wait (offsets w[0..6)).
 * The last payment sells out: returns after its record, the batch open. */
static wk_part *sold_out_with_waiting(int64_t rejects_per_batch, int w[6])
{
    wk_part *p = part_with((wk_part_cfg){.load = load, .sold_out_rejects = rejects_per_batch});
    int r[3], o[3];
    for (int i = 0; i < 3; i++)
        r[i] = intent(p, i + 1, 4, NULL, 1);
    for (int i = 0; i < 6; i++)
        w[i] = intent(p, i + 4, 1, NULL, 1);
    ck_assert_int_eq(state_of(p, w[5]), Q_INTENT_WAITING);
    for (int i = 0; i < 3; i++)
        o[i] = checkout(p, i + 1, r[i]);
    wk_part_batch_done(p);
    payment(p, o[0], r[0], Q_PAY_SUCCEEDED, 20000);
    payment(p, o[1], r[1], Q_PAY_SUCCEEDED, 20000);
    wk_part_batch_done(p);
    payment(p, o[2], r[2], Q_PAY_SUCCEEDED, 12000);
    ck_assert_int_eq(wk_part_event(p, EV)->status, Q_EVENT_SOLD_OUT);
    return p;
}

START_TEST(sold_out_rejects_waiting_a_batch_at_a_time)
{
    int w[6];
    /* the control: every waiting fan rejected in the batch of the last sale */
    wk_part *p = sold_out_with_waiting(0, w);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(fx(p, w[i])->reason, Q_REASON_SOLD_OUT);
    ck_assert(!wk_part_rejecting(p));
    wk_part_free(p);
    /* at most 3 intent changes a batch: the purchase and fans 4-5, then
     * 6-8, then 9, in waiting order, each batch right after the last */
    next_off = 0;
    p = sold_out_with_waiting(3, w);
    ck_assert_int_eq(p->fx.nintents, 3);
    ck_assert_int_eq(fx(p, w[1])->reason, Q_REASON_SOLD_OUT);
    ck_assert_ptr_null(fx(p, w[2]));
    ck_assert(wk_part_rejecting(p));
    next_reject_round(p, 1);
    ck_assert_int_eq(p->fx.nintents, 3);
    for (int i = 2; i < 5; i++)
        ck_assert_int_eq(state_of(p, w[i]), Q_INTENT_REJECTED);
    next_reject_round(p, 1);
    ck_assert_int_eq(p->fx.nintents, 1);
    ck_assert_int_eq(fx(p, w[5])->reason, Q_REASON_SOLD_OUT);
    ck_assert(!wk_part_rejecting(p));
    next_reject_round(p, 0);
    ck_assert_int_eq(wk_part_event(p, EV)->nwaiting, 0);
    wk_part_free(p);
}
END_TEST

START_TEST(sold_out_rejections_left_end_with_the_sale)
{
    /* a sale closed while rejections are left: they keep sold_out */
    int w[6];
    wk_part *p = sold_out_with_waiting(3, w);
    wk_part_batch_done(p);
    status(p, "cancelled");
    for (int i = 2; i < 6; i++)
        ck_assert_int_eq(fx(p, w[i])->reason, Q_REASON_SOLD_OUT);
    ck_assert(!wk_part_rejecting(p));
    wk_part_free(p);
}
END_TEST

/* Section A of one row of 5 seats, 2 rejections a batch: fans 1-5 hold a
 * seat of A each (held[0..5)), with_b: the next fan holds all of B
 * (held[5]); then three fans wait for 2 seats of A (pair[]) and one for a
 * single (*one). */
static wk_part *singles_held_pairs_waiting(int with_b, int held[], int pair[3], int *one)
{
    rows_a = 1;
    seats_a = 5;
    wk_part *p = part_with((wk_part_cfg){.load = load, .sold_out_rejects = 2});
    int64_t user = 1;
    for (int i = 0; i < 5; i++)
        held[i] = intent(p, user++, 1, "A", 1);
    if (with_b)
        held[5] = intent(p, user++, 4, "B", 1);
    for (int i = 0; i < 3; i++)
        pair[i] = intent(p, user++, 2, "A", 1);
    *one = intent(p, user, 1, "A", 1);
    return p;
}

/* Fans told their seats can never come (insufficient_seats) are rejected
 * a batch at a time too, in waiting order; the others keep waiting. */
START_TEST(unfulfillable_rejects_a_batch_at_a_time)
{
    int held[5], pair[3], one;
    wk_part *p = singles_held_pairs_waiting(0, held, pair, &one);
    wk_part_batch_done(p);
    payment(p, checkout(p, 2, held[1]), held[1], Q_PAY_SUCCEEDED, 5000);
    wk_part_batch_done(p);
    /* seat 4 sold: only singles are left; the purchase and one pair */
    payment(p, checkout(p, 4, held[3]), held[3], Q_PAY_SUCCEEDED, 5000);
    ck_assert_int_eq(fx(p, pair[0])->reason, Q_REASON_INSUFFICIENT_SEATS);
    ck_assert_ptr_null(fx(p, pair[1]));
    ck_assert(wk_part_rejecting(p));
    next_reject_round(p, 1);
    ck_assert_int_eq(fx(p, pair[1])->reason, Q_REASON_INSUFFICIENT_SEATS);
    ck_assert_int_eq(fx(p, pair[2])->reason, Q_REASON_INSUFFICIENT_SEATS);
    ck_assert_ptr_null(fx(p, one));
    ck_assert(!wk_part_rejecting(p));
    ck_assert_int_eq(wk_part_event(p, EV)->nwaiting, 1);
    wk_part_free(p);
}
END_TEST

/* The last sales first leave too few seats for the pairs (rejected
 * insufficient_seats a batch at a time), then none: once the pairs are
 * written, the single waiting behind them is rejected sold_out. */
START_TEST(sold_out_after_unfulfillable_rejections)
{
    int held[6], o[6], pair[3], one;
    wk_part *p = singles_held_pairs_waiting(1, held, pair, &one);
    for (int i = 0; i < 6; i++)
        o[i] = checkout(p, 1 + i, held[i]);
    wk_part_batch_done(p);
    int order[6] = {5, 1, 3, 0, 2, 4}; /* B, seats 2 and 4 (pairs doomed), then the rest */
    for (int k = 0; k < 6; k++)
        payment(p, o[order[k]], held[order[k]], Q_PAY_SUCCEEDED, order[k] == 5 ? 12000 : 5000);
    ck_assert_int_eq(wk_part_event(p, EV)->status, Q_EVENT_SOLD_OUT);
    ck_assert_ptr_null(fx(p, one));
    ck_assert_ptr_null(fx(p, pair[0])); /* the batch is full with the sales */
    int rounds = 0, pair_state[3] = {0, 0, 0}, pair_reason[3] = {0, 0, 0};
    while (wk_part_rejecting(p) && rounds++ < 10) {
        next_reject_round(p, 1);
        for (int i = 0; i < 3; i++)
            if (fx(p, pair[i])) {
                pair_state[i] = fx(p, pair[i])->state;
                pair_reason[i] = fx(p, pair[i])->reason;
            }
    }
    ck_assert_ptr_nonnull(fx(p, one)); /* not left waiting */
    ck_assert_int_eq(fx(p, one)->reason, Q_REASON_SOLD_OUT);
    ck_assert_ptr_null(fx(p, pair[0])); /* written in an earlier batch */
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(pair_state[i], Q_INTENT_REJECTED);
        ck_assert_int_eq(pair_reason[i], Q_REASON_INSUFFICIENT_SEATS);
    }
    ck_assert_int_eq(wk_part_event(p, EV)->nwaiting, 0);
    wk_part_free(p);
}
END_TEST

START_TEST(pause_resume_cancel)
{
    int o[3];
    wk_part *p = part_rows_asked(3, o);
    status(p, "paused");
    int x = intent(p, 4, 1, NULL, 1);
    ck_assert_int_eq(fx(p, x)->reason, Q_REASON_SALE_CLOSED);
    /* fan 1's release while paused does not allocate */
    cancel(p, 1, o[0], Q_CANCEL_INTENT);
    ck_assert_int_eq(state_of(p, o[2]), Q_INTENT_WAITING);
    status(p, "on_sale");
    ck_assert_int_eq(state_of(p, o[2]), Q_INTENT_RESERVED);
    int v = intent(p, 5, 4, "A", 1);
    ck_assert_int_eq(state_of(p, v), Q_INTENT_WAITING);
    status(p, "cancelled");
    ck_assert_int_eq(state_of(p, v), Q_INTENT_REJECTED);
    ck_assert_int_eq(fx(p, v)->reason, Q_REASON_SALE_CLOSED);
    ck_assert_int_eq(state_of(p, o[1]), Q_INTENT_RELEASED);
    ck_assert_int_eq(fx(p, o[1])->reason, Q_REASON_CANCELLED);
    ck_assert_int_eq(wk_part_event(p, EV)->inv.available, 12);
    ck_assert_int_eq(wk_part_event(p, EV)->status_dirty, 1);
    wk_part_free(p);
}
END_TEST

START_TEST(unknown_event_is_skipped)
{
    wk_part *p = part();
    q_msg m = wk_test_msg(Q_MSG_INTENT, 99, 1, 0);
    m.quantity = 1;
    ck_assert_int_eq(wk_part_apply(p, &m, 5, NOW, NOW), ONS_ENOTFOUND);
    ck_assert_int_eq(p->next_offset, 6);
    ck_assert_int_eq(p->fx.npoison, 1);
    wk_part_skip(p, 6);
    ck_assert_int_eq(p->next_offset, 7);
    ck_assert(wk_part_dirty(p));
    wk_part_free(p);
}
END_TEST

START_TEST(reserved_and_released_in_one_batch_is_one_insert)
{
    wk_part *p = part();
    int a = intent(p, 1, 2, NULL, 1);
    cancel(p, 1, a, Q_CANCEL_RESERVATION);
    ck_assert_int_eq(p->fx.nintents, 1);
    const wk_fx_intent *r = fx(p, a);
    ck_assert_int_eq(r->is_new, 1);
    ck_assert_int_eq(r->res_new, 1);
    ck_assert_int_eq(r->state, Q_INTENT_RELEASED);
    ck_assert_int_eq(r->res_state, Q_RES_RELEASED);
    for (size_t i = 0; i < p->fx.nseats; i++)
        ck_assert_int_eq(p->fx.seats[i].state, Q_SEAT_AVAILABLE);
    wk_part_free(p);
}
END_TEST

/* Issue 14 item 4: a payments relay that restarts while the owner lags sends
 * the same result twice; both land in one batch. The second finds no paying
 * hold (the first sold the seats) and must not turn the paid order into a
 * refunded one. */
START_TEST(duplicate_success_in_one_batch_keeps_the_order_paid)
{
    wk_part *p = part();
    int r, o = paying_order(p, 2, "A", &r);
    ck_assert_int_eq(order_fx(p, o)->state, Q_ORDER_PENDING);
    wk_part_batch_done(p);

    payment(p, o, r, Q_PAY_SUCCEEDED, 10000);
    payment(p, o, r, Q_PAY_SUCCEEDED, 10000);
    ck_assert_int_eq(p->co->norders, 1);
    ck_assert_int_eq(order_fx(p, o)->state, Q_ORDER_PAID);
    ck_assert_uint_eq(refunds(p), 0);
    ck_assert_int_eq(p->co->ntix, 2);
    for (size_t i = 0; i < p->co->ntix; i++)
        ck_assert_int_eq(p->co->tix[i].valid, 1);
    ck_assert_int_eq(state_of(p, r), Q_INTENT_PURCHASED);
    ck_assert_int_eq(wk_part_event(p, EV)->inv.sold, 2);
    wk_part_free(p);
}
END_TEST

/* The same with checkout, result and its replay all in one batch (the order
 * is inserted by this batch), and a failure replayed after the success: a
 * paid order is never downgraded. */
START_TEST(paid_order_is_never_downgraded_in_its_batch)
{
    wk_part *p = part();
    int r, o = paying_order(p, 1, NULL, &r);
    payment(p, o, r, Q_PAY_SUCCEEDED, 5000);
    payment(p, o, r, Q_PAY_SUCCEEDED, 5000);
    payment(p, o, r, Q_PAY_FAILED, 0);
    payment(p, o, r, Q_PAY_DECLINED, 0);
    const wk_fx_order *f = order_fx(p, o);
    ck_assert_int_eq(f->is_new, 1);
    ck_assert_int_eq(f->state, Q_ORDER_PAID);
    ck_assert_ptr_null(f->failure_reason);
    ck_assert_uint_eq(p->co->noutbox, 1); /* the charge, no refund */
    ck_assert_int_eq(p->co->outbox[0].is_refund, 0);
    ck_assert_int_eq(p->co->ntix, 1);
    wk_part_free(p);
}
END_TEST

/* The saga's rules still hold for a result that follows a decided order in
 * the same batch: a success after the paying hold ran out is refunded once,
 * and its replay asks for nothing more. */
START_TEST(success_after_expired_order_is_refunded_once)
{
    wk_part *p = part();
    int r, o = paying_order(p, 1, NULL, &r);
    wk_part_batch_done(p);
    ck_assert_int_eq(wk_part_expire(p, NOW + 61 * 1000, 100), 1);
    ck_assert_int_eq(order_fx(p, o)->state, Q_ORDER_FAILED);
    ck_assert_str_eq(order_fx(p, o)->failure_reason, "expired");
    q_msg m = wk_test_msg(Q_MSG_PAYMENT_RESULT, EV, 0, 0);
    m.order_id = q_seq_make(0, o);
    m.reservation_id = q_seq_make(0, r);
    m.outcome = Q_PAY_SUCCEEDED;
    strcpy(m.charge_id, "ch_late");
    m.amount_cents = 5000;
    ck_assert_int_eq(wk_part_apply(p, &m, next_off++, NOW, NOW + 62 * 1000), 0);
    ck_assert_int_eq(order_fx(p, o)->state, Q_ORDER_REFUNDED);
    ck_assert_uint_eq(refunds(p), 1);
    ck_assert_int_eq(wk_part_apply(p, &m, next_off++, NOW, NOW + 62 * 1000), 0);
    ck_assert_int_eq(order_fx(p, o)->state, Q_ORDER_REFUNDED);
    ck_assert_uint_eq(refunds(p), 1);
    ck_assert_int_eq(p->co->ntix, 0);
    ck_assert_int_eq(wk_part_event(p, EV)->inv.sold, 0);
    wk_part_free(p);
}
END_TEST

/* Issue 14 item 9: a waiting fan is told as soon as the seats left can never
 * fit the request. Held seats may come back and count; sold ones do not.
 * Row A of 5 seats, all held one by one; fans then wait for 2 together, 2
 * anywhere and 1. Selling seats 2 and 4 leaves only singles (1, 3, 5 held):
 * the pair can never be seated together while B still has free seats. */
START_TEST(waiting_fan_told_when_only_singles_are_left)
{
    wk_part *p = part_sized(1, 5);
    int held[5];
    for (int i = 0; i < 5; i++)
        held[i] = intent(p, 1 + i, 1, "A", 1);
    int pair = intent(p, 6, 2, "A", 1);
    int two = intent(p, 7, 2, "A", 0);
    int one = intent(p, 8, 1, "A", 1);
    ck_assert_int_eq(state_of(p, pair), Q_INTENT_WAITING);
    ck_assert_int_eq(state_of(p, two), Q_INTENT_WAITING);
    ck_assert_int_eq(state_of(p, one), Q_INTENT_WAITING);
    wk_part_batch_done(p);

    /* seat 2 sold: 3, 4, 5 may still come back together */
    payment(p, checkout(p, 2, held[1]), held[1], Q_PAY_SUCCEEDED, 5000);
    ck_assert_ptr_null(fx(p, pair));
    wk_part_batch_done(p);

    /* seat 4 sold: the pair is told now, the others keep waiting */
    payment(p, checkout(p, 4, held[3]), held[3], Q_PAY_SUCCEEDED, 5000);
    ck_assert_int_eq(state_of(p, pair), Q_INTENT_REJECTED);
    ck_assert_int_eq(fx(p, pair)->reason, Q_REASON_INSUFFICIENT_SEATS);
    ck_assert_ptr_null(fx(p, two));
    ck_assert_ptr_null(fx(p, one));
    wk_event *ev = wk_part_event(p, EV);
    ck_assert_int_eq(ev->nwaiting, 2);
    ck_assert_int_eq(ev->inv.available, 4); /* B: the event is not sold out */
    /* a new fan asking the same gets the same answer at once */
    int late = intent(p, 9, 2, "A", 1);
    ck_assert_int_eq(state_of(p, late), Q_INTENT_REJECTED);
    ck_assert_int_eq(fx(p, late)->reason, Q_REASON_INSUFFICIENT_SEATS);
    /* the user may ask again for something that can be met */
    ck_assert_int_eq(state_of(p, intent(p, 6, 1, "A", 1)), Q_INTENT_WAITING);
    wk_part_batch_done(p);

    /* a hold running out serves the single, and 2 anywhere still waits */
    ck_assert_int_eq(wk_part_expire(p, NOW + 61 * 1000, 100), 3);
    ck_assert_int_eq(state_of(p, two), Q_INTENT_RESERVED);
    ck_assert_int_eq(state_of(p, one), Q_INTENT_RESERVED);
    wk_part_free(p);
}
END_TEST

/* ---- two lanes (docs/pipeline.md "Two lanes") ---------------------------------- */

static q_msg lane_cancel_msg(int64_t user, int target)
{
    q_msg m = wk_test_msg(Q_MSG_CANCEL, EV, user, NOW);
    m.cancel_kind = Q_CANCEL_INTENT;
    m.target_partition = 0;
    m.target_offset = target;
    return m;
}

static q_msg lane_intent_msg(int64_t user, int qty)
{
    q_msg m = wk_test_msg(Q_MSG_INTENT, EV, user, NOW);
    m.quantity = qty;
    m.adjacent = 1;
    return m;
}

/* Applies m at offset off of lane (enum q_topic); it must succeed. */
static void apply_on(wk_part *p, int lane, q_msg m, int64_t off)
{
    ck_assert_int_eq(wk_part_apply_lane(p, lane, &m, off, NOW, NOW), 0);
}

/* Applies user's intent for qty seats at intents offset off: it must hold
 * its seats at once (no tombstone in its way). */
static void intent_reserved(wk_part *p, int64_t user, int qty, int64_t off)
{
    apply_on(p, Q_TOPIC_INTENTS, lane_intent_msg(user, qty), off);
    ck_assert_int_eq(state_of(p, (int)off), Q_INTENT_RESERVED);
}

START_TEST(cancel_ahead_of_its_intent_leaves_a_tombstone)
{
    wk_part *p = part();
    /* control offset 0 cancels the intent the intents lane has at offset 1 */
    apply_on(p, Q_TOPIC_CONTROL, lane_cancel_msg(5, 1), 0);
    ck_assert_int_eq(p->ctl_next_offset, 1);
    ck_assert_int_eq(p->next_offset, 0);
    ck_assert_uint_eq(p->fx.ntombs, 1);
    ck_assert_int_eq(p->fx.tombs[0].offset, 1);
    ck_assert_int_eq(p->fx.tombs[0].user_id, 5);
    ck_assert(wk_part_dirty(p)); /* the tombstone and the cursor are written */
    wk_part_batch_done(p);

    apply_on(p, Q_TOPIC_INTENTS, lane_intent_msg(4, 2), 0);
    apply_on(p, Q_TOPIC_INTENTS, lane_intent_msg(5, 2), 1);
    ck_assert_int_eq(state_of(p, 0), Q_INTENT_RESERVED);
    ck_assert_int_eq(state_of(p, 1), Q_INTENT_RELEASED); /* never held a seat */
    ck_assert_int_eq(fx(p, 1)->res_state, Q_RES_NONE);
    ck_assert_int_eq(fx(p, 1)->nseats, 0);
    ck_assert_ptr_null(wk_part_intent(p, q_seq_make(0, 1)));
    ck_assert_int_eq(wk_part_event(p, EV)->inv.available, 12 - 2);
    ck_assert(p->fx.tombs_spent);
    ck_assert_uint_eq(p->tombs.len, 0);
    /* the user is free to join again */
    intent_reserved(p, 5, 1, 2);
    wk_part_free(p);
}
END_TEST

START_TEST(loaded_tombstone_of_another_user_is_ignored)
{
    wk_part *p = part();
    ck_assert_int_eq(wk_part_add_tombstone(p, 0, 99), 0); /* as the store loads it */
    intent_reserved(p, 4, 1, 0);
    ck_assert_uint_eq(p->tombs.len, 0); /* spent all the same */
    wk_part_free(p);
}
END_TEST

START_TEST(no_tombstones_control_lets_the_intent_take_seats)
{
    wk_part *p = part_with((wk_part_cfg){.load = load, .debug_no_tombstones = 1});
    apply_on(p, Q_TOPIC_CONTROL, lane_cancel_msg(5, 0), 0);
    intent_reserved(p, 5, 2, 0);
    wk_part_free(p);
}
END_TEST

START_TEST(checkout_on_the_control_lane_names_its_order_with_the_control_bit)
{
    wk_part *p = part();
    int a = intent(p, 1, 2, NULL, 1);
    q_msg m = wk_test_msg(Q_MSG_CHECKOUT, EV, 1, NOW);
    m.reservation_id = q_seq_make(0, a);
    strcpy(m.payment_method, "pm_card_visa");
    /* control offset 0 == intents offset 0 must not give the same order id */
    apply_on(p, Q_TOPIC_CONTROL, m, a);
    ck_assert_uint_eq(p->co->norders, 1);
    ck_assert_int_eq(p->co->orders[0].order_id, q_seq_make_lane(0, a, 1));
    ck_assert_int_ne(p->co->orders[0].order_id, q_seq_make(0, a));
    ck_assert_int_eq(q_seq_partition(p->co->orders[0].order_id), 0);
    ck_assert_int_eq(state_of(p, a), Q_INTENT_PAYING);
    ck_assert_int_eq(p->ctl_next_offset, a + 1);
    wk_part_free(p);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"fifo", fifo_best_seats_then_waiting_then_released_in_order},
        {"duplicate_limits", duplicate_and_limits},
        {"adjacent_too_big", adjacent_request_larger_than_any_row_is_rejected},
        {"expiry", expiry_returns_seats_to_waiting_in_order},
        {"expiry_heap", expiry_heap_orders_many_holds},
        {"sold_out", sold_out_rejects_waiting_and_new},
        {"sold_out_chunks", sold_out_rejects_waiting_a_batch_at_a_time},
        {"sold_out_chunks_closed", sold_out_rejections_left_end_with_the_sale},
        {"unfulfillable_chunks", unfulfillable_rejects_a_batch_at_a_time},
        {"sold_out_after_unfulfillable", sold_out_after_unfulfillable_rejections},
        {"pause_resume_cancel", pause_resume_cancel},
        {"unknown_event", unknown_event_is_skipped},
        {"coalesce", reserved_and_released_in_one_batch_is_one_insert},
        {"duplicate_success", duplicate_success_in_one_batch_keeps_the_order_paid},
        {"paid_never_downgraded", paid_order_is_never_downgraded_in_its_batch},
        {"late_success_refunded_once", success_after_expired_order_is_refunded_once},
        {"unfulfillable_waiting", waiting_fan_told_when_only_singles_are_left},
        {"lane_tombstone", cancel_ahead_of_its_intent_leaves_a_tombstone},
        {"lane_tombstone_other_user", loaded_tombstone_of_another_user_is_ignored},
        {"lane_no_tombstones_control", no_tombstones_control_lets_the_intent_take_seats},
        {"lane_checkout_order_id",
         checkout_on_the_control_lane_names_its_order_with_the_control_bit},
    };
    return ons_check_run_fixture("partition", cases, sizeof cases / sizeof *cases, 60, setup, NULL);
}
