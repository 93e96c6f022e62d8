/* test_partition.c - applying messages to a partition's memory
 * (workers/partition): FIFO reservations, waiting and releases in order,
 * duplicates, expiry, sale status, effect coalescing. No services. */
#include "common/err.h"
#include "queue/intent_id.h"
#include "workers/partition.h"

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
    wk_event *ev = wk_event_new(event_id);
    ck_assert_ptr_nonnull(ev);
    ev->hold_seconds = 60;
    ev->max_per_user = 4;
    ck_assert_int_eq(wk_inv_add_block(&ev->inv, 1, "A", 0, rows_a, seats_a, 5000), 0);
    ck_assert_int_eq(wk_inv_add_block(&ev->inv, 2, "B", 1, 1, 4, 3000), 1);
    return wk_part_add_event(p, ev);
}

static wk_part *part(void)
{
    wk_part_cfg cfg = {load, NULL, 0, 0, 0, 0};
    wk_part *p = wk_part_new(0, 1, 0, &cfg);
    ck_assert_ptr_nonnull(p);
    return p;
}

static int64_t next_off;

static int intent(wk_part *p, int64_t user, int qty, const char *section, int adjacent)
{
    q_msg m;
    memset(&m, 0, sizeof m);
    m.type = Q_MSG_INTENT;
    m.event_id = EV;
    m.user_id = user;
    m.sent_ms = NOW;
    m.quantity = qty;
    m.adjacent = adjacent;
    if (section)
        strcpy(m.section, section);
    int64_t off = next_off++;
    ck_assert_int_eq(wk_part_apply(p, &m, off, NOW, NOW), 0);
    return (int)off;
}

static void cancel(wk_part *p, int64_t user, int target, int kind)
{
    q_msg m;
    memset(&m, 0, sizeof m);
    m.type = Q_MSG_CANCEL;
    m.event_id = EV;
    m.user_id = user;
    m.sent_ms = NOW;
    m.cancel_kind = kind;
    m.target_partition = 0;
    m.target_offset = target;
    m.reservation_id = q_seq_make(0, target);
    ck_assert_int_eq(wk_part_apply(p, &m, next_off++, NOW, NOW), 0);
}

static void status(wk_part *p, const char *st)
{
    q_msg m;
    memset(&m, 0, sizeof m);
    m.type = Q_MSG_EVENT_STATUS;
    m.event_id = EV;
    m.sent_ms = NOW;
    strcpy(m.status, st);
    ck_assert_int_eq(wk_part_apply(p, &m, next_off++, NOW, NOW), 0);
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
    ck_assert_int_eq(state_of(p, a), WK_I_RESERVED);
    ck_assert_int_eq(fx(p, a)->seats[0], 0);
    ck_assert_int_eq(state_of(p, b), WK_I_RESERVED);
    ck_assert_int_eq(fx(p, b)->seats[0], 4);
    ck_assert_int_eq(fx(p, b)->total_cents, 20000);
    ck_assert_int_eq(state_of(p, c), WK_I_WAITING);
    ck_assert_int_eq(state_of(p, d), WK_I_WAITING);
    wk_event *ev = wk_part_event(p, EV);
    ck_assert_int_eq(ev->nwaiting, 2);
    wk_part_batch_done(p);

    /* a gives back row 1: c (earlier) gets seats 1-2, d cannot fit in what
     * is left and keeps waiting */
    cancel(p, 1, a, Q_CANCEL_RESERVATION);
    ck_assert_int_eq(state_of(p, a), WK_I_RELEASED);
    ck_assert_int_eq(state_of(p, c), WK_I_RESERVED);
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
    ck_assert_int_eq(state_of(p, d), WK_I_RESERVED);
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
    ck_assert_int_eq(state_of(p, a), WK_I_RESERVED);
    ck_assert_int_eq(state_of(p, a2), WK_I_REJECTED);
    ck_assert_int_eq(fx(p, a2)->reason, WK_R_DUPLICATE);
    ck_assert_int_eq(fx(p, big)->reason, WK_R_INSUFFICIENT);
    ck_assert_int_eq(fx(p, nosec)->reason, WK_R_INSUFFICIENT);
    ck_assert_str_eq(fx(p, nosec)->section, "Z");
    ck_assert_int_eq(state_of(p, toolong), WK_I_RESERVED);
    ck_assert_int_eq(state_of(p, never), WK_I_WAITING);
    /* once a's intent ends, user 1 may join again */
    cancel(p, 1, a, Q_CANCEL_INTENT);
    int a3 = intent(p, 1, 1, NULL, 1);
    ck_assert_int_eq(state_of(p, a3), WK_I_RESERVED);
    /* a cancel by someone else is ignored */
    cancel(p, 99, a3, Q_CANCEL_INTENT);
    ck_assert_int_eq(state_of(p, a3), WK_I_RESERVED);
    wk_part_free(p);
}
END_TEST

START_TEST(adjacent_request_larger_than_any_row_is_rejected)
{
    rows_a = 3;
    seats_a = 2;
    wk_part *p = part();
    int x = intent(p, 1, 3, "A", 1);
    ck_assert_int_eq(fx(p, x)->reason, WK_R_INSUFFICIENT);
    int y = intent(p, 2, 3, "A", 0); /* split is fine */
    ck_assert_int_eq(state_of(p, y), WK_I_RESERVED);
    wk_part_free(p);
}
END_TEST

START_TEST(expiry_returns_seats_to_waiting_in_order)
{
    wk_part *p = part();
    int a = intent(p, 1, 4, "A", 1);
    int b = intent(p, 2, 4, "A", 1);
    int c = intent(p, 3, 4, "A", 1);
    int d = intent(p, 4, 4, "A", 1);
    ck_assert_int_eq(state_of(p, c), WK_I_WAITING);
    wk_part_batch_done(p);
    ck_assert_int_eq(wk_part_next_expiry(p, NOW), 60000);
    ck_assert_int_eq(wk_part_expire(p, NOW + 59999, 100), 0);
    ck_assert_int_eq(wk_part_expire(p, NOW + 60000, 100), 2);
    ck_assert_int_eq(state_of(p, a), WK_I_EXPIRED);
    ck_assert_int_eq(state_of(p, b), WK_I_EXPIRED);
    ck_assert_int_eq(fx(p, a)->res_state, WK_RES_EXPIRED);
    ck_assert_int_eq(state_of(p, c), WK_I_RESERVED);
    ck_assert_int_eq(fx(p, c)->seats[0], 0);
    ck_assert_int_eq(state_of(p, d), WK_I_RESERVED);
    ck_assert_int_eq(fx(p, d)->seats[0], 4);
    ck_assert_int_eq(fx(p, d)->expires_ms, NOW + 60000 + 60000);
    wk_part_free(p);
}
END_TEST

START_TEST(expiry_heap_orders_many_holds)
{
    rows_a = 100;
    seats_a = 10;
    wk_part_cfg cfg = {load, NULL, 0, 0, 0, 0};
    wk_part *p = wk_part_new(0, 1, 0, &cfg);
    /* holds created at scrambled times expire in time order */
    for (int i = 0; i < 200; i++) {
        q_msg m;
        memset(&m, 0, sizeof m);
        m.type = Q_MSG_INTENT;
        m.event_id = EV;
        m.user_id = i + 1;
        m.sent_ms = NOW;
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
            ck_assert_int_eq(r->state, WK_I_EXPIRED);
            ck_assert_int_le(r->expires_ms, t + 60000);
            ck_assert_int_ge(r->expires_ms, last);
        }
        for (size_t i = 0; i < p->fx.nintents; i++)
            if (p->fx.intents[i].expires_ms > last)
                last = p->fx.intents[i].expires_ms;
        wk_part_batch_done(p);
    }
    ck_assert_int_eq(p->nheap, 0);
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
        wk_inv_set(&ev->inv, i, WK_SEAT_SOLD);
    int w = intent(p, 2, 1, NULL, 1);
    ck_assert_int_eq(state_of(p, w), WK_I_WAITING);
    wk_inv_set(&ev->inv, 0, WK_SEAT_SOLD); /* the last hold is bought */
    int x = intent(p, 3, 1, NULL, 1);
    ck_assert_int_eq(fx(p, x)->reason, WK_R_SOLD_OUT);
    wk_part_free(p);
}
END_TEST

START_TEST(pause_resume_cancel)
{
    wk_part *p = part();
    int a = intent(p, 1, 4, "A", 1);
    int b = intent(p, 2, 4, "A", 1);
    int w = intent(p, 3, 4, "A", 1);
    status(p, "paused");
    int x = intent(p, 4, 1, NULL, 1);
    ck_assert_int_eq(fx(p, x)->reason, WK_R_SALE_CLOSED);
    /* a release while paused does not allocate */
    cancel(p, 1, a, Q_CANCEL_INTENT);
    ck_assert_int_eq(state_of(p, w), WK_I_WAITING);
    status(p, "on_sale");
    ck_assert_int_eq(state_of(p, w), WK_I_RESERVED);
    int v = intent(p, 5, 4, "A", 1);
    ck_assert_int_eq(state_of(p, v), WK_I_WAITING);
    status(p, "cancelled");
    ck_assert_int_eq(state_of(p, v), WK_I_REJECTED);
    ck_assert_int_eq(fx(p, v)->reason, WK_R_SALE_CLOSED);
    ck_assert_int_eq(state_of(p, b), WK_I_RELEASED);
    ck_assert_int_eq(fx(p, b)->reason, WK_R_CANCELLED);
    ck_assert_int_eq(wk_part_event(p, EV)->inv.available, 12);
    ck_assert_int_eq(wk_part_event(p, EV)->status_dirty, 1);
    wk_part_free(p);
}
END_TEST

START_TEST(unknown_event_is_skipped)
{
    wk_part *p = part();
    q_msg m;
    memset(&m, 0, sizeof m);
    m.type = Q_MSG_INTENT;
    m.event_id = 99;
    m.user_id = 1;
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
    ck_assert_int_eq(r->state, WK_I_RELEASED);
    ck_assert_int_eq(r->res_state, WK_RES_RELEASED);
    for (size_t i = 0; i < p->fx.nseats; i++)
        ck_assert_int_eq(p->fx.seats[i].state, WK_SEAT_AVAILABLE);
    wk_part_free(p);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("partition");
    struct {
        const char *name;
        const TTest *fn;
    } cases[] = {
        {"fifo", fifo_best_seats_then_waiting_then_released_in_order},
        {"duplicate_limits", duplicate_and_limits},
        {"adjacent_too_big", adjacent_request_larger_than_any_row_is_rejected},
        {"expiry", expiry_returns_seats_to_waiting_in_order},
        {"expiry_heap", expiry_heap_orders_many_holds},
        {"sold_out", sold_out_rejects_waiting_and_new},
        {"pause_resume_cancel", pause_resume_cancel},
        {"unknown_event", unknown_event_is_skipped},
        {"coalesce", reserved_and_released_in_one_batch_is_one_insert},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, setup, NULL);
        tcase_add_test(tc, cases[i].fn);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
