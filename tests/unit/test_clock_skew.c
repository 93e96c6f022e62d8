/* test_clock_skew.c - a record sent by a node whose clock runs ahead (5
 * minutes off) neither opens a sale early nor moves a hold's expiry: the
 * partition owner's clock decides (workers/partition.c). No services. */
#include "wk_fixture.h"
#include "common/err.h"
#include "queue/intent_id.h"
#include "workers/partition.h"

#include "tests/check_run.h"

#include <check.h>
#include <stdint.h>
#include <string.h>

#define EV        9
#define NOW       INT64_C(2000000000)
#define OPENS     (NOW + 60000)        /* the sale opens in a minute */
#define SKEW      (INT64_C(5) * 60000) /* the sending node is 5 minutes ahead */
#define HOLD_SECS 60

static int load(void *ctx, wk_part *p, int64_t event_id)
{
    (void)ctx;
    if (event_id != EV)
        return ONS_ENOTFOUND;
    wk_event *ev = wk_test_event(event_id, HOLD_SECS);
    ev->status = Q_EVENT_SCHEDULED;
    ev->onsale_at_ms = OPENS;
    ev->starts_at_ms = NOW + INT64_C(30) * 86400 * 1000;
    ck_assert_int_eq(wk_inv_add_block(&ev->inv, 1, "A", 0, 1, 8, 5000), 0);
    return wk_part_add_event(p, ev);
}

static q_msg join(int64_t user, int64_t sent_ms)
{
    q_msg m = wk_test_msg(Q_MSG_INTENT, EV, user, sent_ms);
    m.quantity = 1;
    m.adjacent = 1;
    return m;
}

START_TEST(sale_opens_by_the_owners_clock)
{
    wk_part_cfg cfg = {.load = load, .paying_grace_seconds = 120, .end_grace_ms = 60000};
    wk_part *p = wk_part_new(0, 1, 0, &cfg);
    ck_assert_ptr_nonnull(p);
    /* Sent "after the opening" by the skewed node, applied before it. */
    q_msg m = join(1, NOW + SKEW);
    ck_assert_int_eq(wk_part_apply(p, &m, 0, NOW + SKEW, NOW), 0);
    ck_assert_ptr_null(wk_part_intent(p, q_seq_make(0, 0)));
    ck_assert_uint_eq(p->fx.nintents, 1);
    ck_assert_int_eq(p->fx.intents[0].state, Q_INTENT_REJECTED);
    ck_assert_str_eq(q_reason_name(p->fx.intents[0].reason), "sale_closed");
    /* Once the owner's clock passed the opening, the same node's join is in. */
    q_msg m2 = join(2, OPENS + 1000 + SKEW);
    ck_assert_int_eq(wk_part_apply(p, &m2, 1, OPENS + 1000 + SKEW, OPENS + 1000), 0);
    const wk_intent *in = wk_part_intent(p, q_seq_make(0, 1));
    ck_assert_ptr_nonnull(in);
    ck_assert_int_eq(in->state, Q_INTENT_RESERVED);
    /* The hold runs by the owner's clock too. */
    ck_assert_int_eq(in->expires_ms, OPENS + 1000 + HOLD_SECS * 1000);
    wk_part_free(p);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"sale_opens_by_the_owners_clock", sale_opens_by_the_owners_clock},
    };
    return ons_check_run("clock_skew", cases, sizeof cases / sizeof *cases, 60);
}
