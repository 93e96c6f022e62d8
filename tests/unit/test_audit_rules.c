/* test_audit_rules.c - the invariant audit's rules (admin/audit_rules) over
 * rows built here, without PostgreSQL: the FIFO walk's four violations and
 * what excuses (d), the draw order of pre-queued intents, the states a fan
 * may find after the one it saw, and the release search. */
#include "admin/audit_rules.h"
#include "queue/draw.h"
#include "queue/intent_id.h"
#include "queue/states.h"
#include "tests/check_run.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char *secret = "audit-test-secret-0123456789";

/* An intent of event 1, quantity 2, no section or price cap, not adjacent. */
static adm_fifo_row row(int64_t seq, char kind, int64_t t)
{
    adm_fifo_row r;
    memset(&r, 0, sizeof r);
    r.event_id = 1;
    r.quantity = 2;
    r.seq = seq;
    r.kind = kind;
    r.t = t;
    r.user_id = 100 + seq;
    return r;
}

/* A live grant at t with seats [lo, hi] in a section at position pos. */
static adm_fifo_row granted(int64_t seq, int64_t t, int64_t lo, int64_t hi, int64_t pos)
{
    adm_fifo_row r = row(seq, 'g', t);
    r.live = 1;
    r.has_seats = 1;
    r.min_seat = lo;
    r.max_seat = hi;
    r.min_section_pos = pos;
    return r;
}

static adm_fifo_result walk(const adm_fifo_row *rows, size_t n, const adm_release *rel, size_t nrel,
                            const char *ids_secret)
{
    adm_fifo_result res;
    ck_assert_int_eq(adm_fifo_walk(rows, n, rel, nrel, ids_secret, &res), 0);
    return res;
}

/* Walks rows (no releases, no ids.secret) and checks the totals. */
static adm_fifo_result walk_totals(const adm_fifo_row *rows, size_t n, long long grants,
                                   long long violations, const char *sample)
{
    adm_fifo_result r = walk(rows, n, NULL, 0, NULL);
    ck_assert_int_eq(r.grants, grants);
    ck_assert_int_eq(adm_fifo_violations(&r), violations);
    ck_assert_str_eq(r.sample, sample);
    return r;
}

START_TEST(grants_in_order_are_clean)
{
    adm_fifo_row rows[] = {granted(1, 10, 0, 1, 0), granted(2, 20, 2, 3, 0), row(3, 'r', 30),
                           row(4, 'w', 40)};
    walk_totals(rows, 4, 2, 0, "");
}
END_TEST

START_TEST(grant_before_an_earlier_one_is_out_of_order)
{
    adm_fifo_row rows[] = {granted(1, 20, 0, 1, 0), granted(2, 10, 2, 3, 0)};
    adm_fifo_result r = walk_totals(rows, 2, 2, 1, "; first at intent 2 (event 1, qty 2)");
    ck_assert_int_eq(r.bad_order, 1);
}
END_TEST

START_TEST(grant_past_a_waiting_earlier_intent)
{
    adm_fifo_row rows[] = {row(1, 'w', 5), granted(2, 10, 0, 1, 0), granted(3, 20, 2, 3, 0)};
    adm_fifo_result r = walk(rows, 3, NULL, 0, NULL);
    ck_assert_int_eq(r.bad_wait, 2);
    ck_assert_int_eq(r.bad_order + r.bad_reject + r.bad_seat, 0);
}
END_TEST

START_TEST(grant_at_or_before_an_earlier_rejection)
{
    adm_fifo_row rows[] = {row(1, 'r', 10), granted(2, 10, 0, 1, 0), granted(3, 11, 2, 3, 0)};
    adm_fifo_result r = walk(rows, 3, NULL, 0, NULL);
    ck_assert_int_eq(r.bad_reject, 1); /* seq 2 at the rejection's time; seq 3 after it */
}
END_TEST

START_TEST(better_seats_for_a_later_grant)
{
    /* Non-adjacent: the later grant's lowest seat must be above the earlier's
     * highest; a grant that is not live or has no seats is not compared. */
    adm_fifo_row rows[] = {granted(1, 10, 4, 5, 0), granted(2, 20, 2, 3, 0)};
    ck_assert_int_eq(walk(rows, 2, NULL, 0, NULL).bad_seat, 1);
    rows[0].live = 0;
    ck_assert_int_eq(walk(rows, 2, NULL, 0, NULL).bad_seat, 0);
    rows[0].live = 1;
    rows[1].has_seats = 0;
    ck_assert_int_eq(walk(rows, 2, NULL, 0, NULL).bad_seat, 0);
}
END_TEST

START_TEST(adjacent_requests_compare_sections)
{
    adm_fifo_row rows[] = {granted(1, 10, 10, 11, 1), granted(2, 20, 2, 3, 1)};
    rows[0].adjacent = rows[1].adjacent = 1;
    ck_assert_int_eq(walk(rows, 2, NULL, 0, NULL).bad_seat, 0); /* same section: fine */
    rows[1].min_section_pos = 0;
    ck_assert_int_eq(walk(rows, 2, NULL, 0, NULL).bad_seat, 1); /* a better section */
}
END_TEST

START_TEST(a_release_in_between_excuses_better_seats)
{
    adm_fifo_row rows[] = {granted(1, 10, 4, 5, 0), granted(2, 20, 2, 3, 0)};
    adm_release in[] = {{1, 15}}, outside[] = {{1, 21}}, other_event[] = {{2, 15}};
    ck_assert_int_eq(walk(rows, 2, in, 1, NULL).bad_seat, 0);
    ck_assert_int_eq(walk(rows, 2, outside, 1, NULL).bad_seat, 1);
    ck_assert_int_eq(walk(rows, 2, other_event, 1, NULL).bad_seat, 1);
}
END_TEST

START_TEST(classes_are_walked_apart_whatever_the_row_order)
{
    /* Quantity 4 granted early does not count against quantity 2, nor a
     * section or a price cap against none; the rows come in any order. */
    adm_fifo_row rows[] = {granted(3, 30, 20, 21, 0), granted(1, 10, 0, 1, 0),
                           granted(2, 5, 10, 13, 0), granted(4, 1, 30, 31, 0),
                           granted(5, 2, 40, 41, 0)};
    rows[2].quantity = 4;
    snprintf(rows[3].section, sizeof rows[3].section, "%s", "Balcony");
    rows[4].max_price_cents = 5000;
    adm_fifo_result r = walk(rows, 5, NULL, 0, NULL);
    ck_assert_int_eq(r.grants, 5);
    ck_assert_int_eq(adm_fifo_violations(&r), 0);
    rows[2].quantity = 2; /* now seq 2 is granted before seq 1 in one class */
    ck_assert_int_eq(walk(rows, 5, NULL, 0, NULL).bad_order, 1);
}
END_TEST

/* Two pre-queued intents (seq 1 and 2) of an event with a seed; *first is
 * the seq the draw serves first. */
static void prequeued_pair(adm_fifo_row rows[2], int64_t *first)
{
    uint8_t seed[Q_DRAW_SEED_LEN];
    char key[2][Q_DRAW_HEX_LEN + 1], id[Q_ID_LEN + 1];
    for (int i = 0; i < Q_DRAW_SEED_LEN; i++)
        seed[i] = (uint8_t)(7 * i + 1);
    for (int i = 0; i < 2; i++) {
        rows[i] = row(i + 1, 'g', 0);
        rows[i].prequeued = 1;
        q_draw_hex(seed, sizeof seed, rows[i].seed_hex);
        ck_assert_int_eq(q_id_encode(secret, Q_ID_INTENT, rows[i].seq, rows[i].user_id, id), 0);
        ck_assert_int_eq(q_draw_key(seed, id, key[i]), 0);
    }
    *first = strcmp(key[0], key[1]) < 0 ? 1 : 2;
}

START_TEST(prequeued_intents_are_served_in_draw_order)
{
    adm_fifo_row rows[2];
    int64_t first;
    prequeued_pair(rows, &first);
    rows[first - 1].t = 10; /* the draw's first granted first */
    rows[2 - first].t = 20;
    adm_fifo_result r = walk(rows, 2, NULL, 0, secret);
    ck_assert_int_eq(r.undrawn, 0);
    ck_assert_int_eq(adm_fifo_violations(&r), 0);
    rows[first - 1].t = 30; /* now the draw's second went first */
    ck_assert_int_eq(walk(rows, 2, NULL, 0, secret).bad_order, 1);
}
END_TEST

START_TEST(prequeued_intents_without_a_key_are_undrawn)
{
    adm_fifo_row rows[3];
    int64_t first;
    prequeued_pair(rows, &first);
    rows[0].t = 10;
    rows[1].t = 20;
    ck_assert_int_eq(walk(rows, 2, NULL, 0, NULL).undrawn, 2); /* no ids.secret */
    rows[0].seed_hex[0] = '\0';                                /* no seed */
    ck_assert_int_eq(walk(rows, 2, NULL, 0, secret).undrawn, 1);
    /* An undrawn one keeps its seq order behind the drawn ones. */
    rows[2] = granted(0, 5, 0, 1, 0);
    ck_assert_int_eq(walk(rows, 3, NULL, 0, secret).undrawn, 1);
}
END_TEST

START_TEST(reachable_states)
{
    ck_assert(adm_state_reachable(Q_INTENT_QUEUED, Q_INTENT_QUEUED));
    ck_assert(adm_state_reachable(Q_INTENT_QUEUED, Q_INTENT_PURCHASED));
    ck_assert(!adm_state_reachable(Q_INTENT_WAITING, Q_INTENT_QUEUED));
    ck_assert(adm_state_reachable(Q_INTENT_WAITING, Q_INTENT_REJECTED));
    ck_assert(adm_state_reachable(Q_INTENT_RESERVED, Q_INTENT_EXPIRED));
    ck_assert(!adm_state_reachable(Q_INTENT_RESERVED, Q_INTENT_WAITING));
    ck_assert(adm_state_reachable(Q_INTENT_PAYING, Q_INTENT_PURCHASED));
    /* A declined payment gives the hold back (workers/checkout.c payment_failed). */
    ck_assert(adm_state_reachable(Q_INTENT_PAYING, Q_INTENT_RESERVED));
    ck_assert(!adm_state_reachable(Q_INTENT_PAYING, Q_INTENT_WAITING));
    ck_assert(adm_state_reachable(Q_INTENT_PURCHASED, Q_INTENT_PURCHASED));
    ck_assert(!adm_state_reachable(Q_INTENT_PURCHASED, Q_INTENT_RELEASED));
    ck_assert(!adm_state_reachable(Q_INTENT_REJECTED, Q_INTENT_RESERVED));
}
END_TEST

START_TEST(released_between_bounds)
{
    adm_release rel[] = {{1, 10}, {1, 30}, {2, 5}};
    ck_assert(adm_released_between(rel, 3, 1, 10, 10));
    ck_assert(adm_released_between(rel, 3, 1, 11, 30));
    ck_assert(!adm_released_between(rel, 3, 1, 11, 29));
    ck_assert(!adm_released_between(rel, 3, 1, 31, 100));
    ck_assert(adm_released_between(rel, 3, 2, 0, 5));
    ck_assert(!adm_released_between(rel, 3, 3, 0, 100));
    ck_assert(!adm_released_between(rel, 0, 1, 0, 100));
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"clean", grants_in_order_are_clean},
        {"order", grant_before_an_earlier_one_is_out_of_order},
        {"wait", grant_past_a_waiting_earlier_intent},
        {"reject", grant_at_or_before_an_earlier_rejection},
        {"seats", better_seats_for_a_later_grant},
        {"adjacent", adjacent_requests_compare_sections},
        {"release", a_release_in_between_excuses_better_seats},
        {"classes", classes_are_walked_apart_whatever_the_row_order},
        {"draw", prequeued_intents_are_served_in_draw_order},
        {"undrawn", prequeued_intents_without_a_key_are_undrawn},
        {"reachable", reachable_states},
        {"released_between", released_between_bounds},
    };
    return ons_check_run("audit_rules", cases, sizeof cases / sizeof *cases, 30);
}
