/* test_states.c - the shared vocabularies (queue/states.h): every name
 * round-trips, unknown names are errors, the predicates and the seq split.
 * That the lists equal the migrations' CHECKs and the HTTP contract is
 * check_vocab.py's job (vocab_in_step). */
#include "tests/check_run.h"
#include "common/err.h"
#include "queue/states.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

typedef struct vocab {
    const char *what;
    const char *(*name)(int);
    int (*parse)(const char *);
    int count;
    int has_none; /* value 0 is NONE: no name */
} vocab;

static const vocab vocabs[] = {
    {"intent state", q_intent_state_name, q_intent_state_parse, Q_INTENT_STATE_COUNT, 0},
    {"reason", q_reason_name, q_reason_parse, Q_REASON_COUNT, 1},
    {"reservation state", q_res_state_name, q_res_state_parse, Q_RES_STATE_COUNT, 1},
    {"event status", q_event_status_name, q_event_status_parse, Q_EVENT_STATUS_COUNT, 0},
    {"seat state", q_seat_state_name, q_seat_state_parse, Q_SEAT_STATE_COUNT, 0},
    {"order state", q_order_state_name, q_order_state_parse, Q_ORDER_STATE_COUNT, 0},
    {"order reason", q_order_reason_name, q_order_reason_parse, Q_ORDER_REASON_COUNT, 1},
    {"ticket status", q_ticket_status_name, q_ticket_status_parse, Q_TICKET_STATUS_COUNT, 0},
};
#define NVOCABS (int)(sizeof vocabs / sizeof *vocabs)

START_TEST(every_name_round_trips)
{
    const vocab *v = &vocabs[_i];
    for (int s = 0; s < v->count; s++) {
        const char *n = v->name(s);
        if (v->has_none && s == 0) {
            ck_assert_msg(n == NULL, "%s NONE has a name", v->what);
            continue;
        }
        ck_assert_msg(n && n[0], "%s %d has no name", v->what, s);
        ck_assert_msg(v->parse(n) == s, "%s %s parses to %d", v->what, n, v->parse(n));
        for (int t = 0; t < s; t++) /* names are unique */
            ck_assert_msg(!v->name(t) || strcmp(v->name(t), n) != 0, "%s %s twice", v->what, n);
    }
}
END_TEST

START_TEST(unknown_names_are_errors)
{
    const vocab *v = &vocabs[_i];
    const char *bad[] = {"", "Queued", "on sale", "sold_out ", "unknown", "?", "prequeued"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        /* sold_out is a reason and an event status, paying several states:
         * only names of other lists must fail. */
        int known = 0;
        for (int s = 0; s < v->count; s++)
            known |= v->name(s) && strcmp(v->name(s), bad[k]) == 0;
        if (!known)
            ck_assert_msg(v->parse(bad[k]) == ONS_EPARSE, "%s '%s'", v->what, bad[k]);
    }
    ck_assert_int_eq(v->parse(NULL), ONS_EPARSE);
    /* A value off the list is a programmer error: "?" in a log line. */
    ck_assert_str_eq(v->name(-1), "?");
    ck_assert_str_eq(v->name(v->count), "?");
}
END_TEST

START_TEST(wire_spellings)
{
    /* The spellings other layers compare against (ingress, the worker's
     * SQL, the simulator's log, the audit): a rename is a contract change. */
    ck_assert_str_eq(q_intent_state_name(Q_INTENT_QUEUED), "queued");
    ck_assert_str_eq(q_intent_state_name(Q_INTENT_RELEASED), "released");
    ck_assert_str_eq(q_reason_name(Q_REASON_INSUFFICIENT_SEATS), "insufficient_seats");
    ck_assert_str_eq(q_res_state_name(Q_RES_HELD), "held");
    ck_assert_str_eq(q_event_status_name(Q_EVENT_ON_SALE), "on_sale");
    ck_assert_str_eq(q_seat_state_name(Q_SEAT_AVAILABLE), "available");
    ck_assert_str_eq(q_order_state_name(Q_ORDER_REFUNDED), "refunded");
    ck_assert_str_eq(q_ticket_status_name(Q_TICKET_VOIDED), "voided");
    ck_assert_str_eq(Q_INTENT_PREQUEUED, "prequeued");
    ck_assert_int_eq(q_intent_state_parse(Q_INTENT_PREQUEUED), ONS_EPARSE); /* wire only */
}
END_TEST

START_TEST(intent_states_are_active_or_final)
{
    for (int s = 0; s < Q_INTENT_STATE_COUNT; s++)
        ck_assert_msg(q_intent_state_active(s) + q_intent_state_final(s) == 1, "%s",
                      q_intent_state_name(s));
    ck_assert(q_intent_state_active(Q_INTENT_PAYING));
    ck_assert(q_intent_state_final(Q_INTENT_PURCHASED));
    ck_assert(!q_intent_state_active(ONS_EPARSE) && !q_intent_state_final(ONS_EPARSE));
}
END_TEST

START_TEST(event_status_predicates)
{
    const char *settable[] = {"on_sale", "paused", "cancelled", "ended"};
    int n = 0;
    for (int s = 0; s < Q_EVENT_STATUS_COUNT; s++)
        n += q_event_status_settable(s);
    ck_assert_int_eq(n, 4);
    for (size_t i = 0; i < 4; i++)
        ck_assert(q_event_status_settable(q_event_status_parse(settable[i])));
    ck_assert(!q_event_status_settable(Q_EVENT_SCHEDULED));
    ck_assert(!q_event_status_settable(Q_EVENT_SOLD_OUT));
    ck_assert(!q_event_status_settable(ONS_EPARSE));
    ck_assert(q_event_status_closed(Q_EVENT_CANCELLED) && q_event_status_closed(Q_EVENT_ENDED));
    ck_assert(!q_event_status_closed(Q_EVENT_PAUSED) && !q_event_status_closed(ONS_EPARSE));
}
END_TEST

START_TEST(seq_split)
{
    ck_assert_int_eq(Q_SEQ_OFFSET_BITS, 40);
    int64_t max_off = (INT64_C(1) << 40) - 1;
    int64_t seq = q_seq_make(7, max_off);
    ck_assert_int_eq(seq, (INT64_C(7) << 40) | max_off);
    ck_assert_int_eq(q_seq_partition(seq), 7);
    ck_assert_int_eq(q_seq_offset(seq), max_off);
    /* The control lane's bit is inside the offset part, below 2^40. */
    int64_t ctl = q_seq_make_lane(2, 5, 1);
    ck_assert_int_eq(q_seq_partition(ctl), 2);
    ck_assert_int_eq(q_seq_offset(ctl), (INT64_C(1) << 39) | 5);
    ck_assert(q_seq_make_lane(2, 5, 0) != ctl);
    ck_assert_int_eq(Q_MAX_SEATS, 10);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("states");
    TCase *tc = tcase_create("vocabularies");
    tcase_add_loop_test(tc, every_name_round_trips, 0, NVOCABS);
    tcase_add_loop_test(tc, unknown_names_are_errors, 0, NVOCABS);
    tcase_add_test(tc, wire_spellings);
    tcase_add_test(tc, intent_states_are_active_or_final);
    tcase_add_test(tc, event_status_predicates);
    suite_add_tcase(s, tc);
    TCase *lim = tcase_create("limits");
    tcase_add_test(lim, seq_split);
    suite_add_tcase(s, lim);
    return ons_check_run_suite(s);
}
