/*
 * test_event_cache.c - the event sale-state cache (ingress/event_cache.c)
 * never goes back: fills race on job threads (each reads Redis, else
 * PostgreSQL, then stores), and a fill whose reads began before another's,
 * or before the entry was forgotten (a status change), must not replace
 * what is cached. Driven directly through ing_events_put (the store every
 * fill ends in), with the read times the fills would carry.
 */
#include "tests/check_run.h"
#include "common/clock.h"
#include "common/err.h"
#include "ingress/event_cache.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static q_event_state state(const char *status)
{
    q_event_state st;
    memset(&st, 0, sizeof st);
    snprintf(st.status, sizeof st.status, "%s", status);
    st.max_per_user = 4;
    return st;
}

static const char *cached(ing_events *c, int64_t id)
{
    static q_event_state st;
    return ing_events_peek(c, id, &st) == 0 ? st.status : "(none)";
}

START_TEST(a_fill_that_began_earlier_does_not_replace_a_later_one)
{
    ing_events *c;
    ck_assert_int_eq(ing_events_new(60000, 16, &c), 0);
    int64_t t = ons_mono_ms();
    q_event_state on_sale = state("on_sale"), cancelled = state("cancelled");
    /* Fill A read "on_sale" at t; fill B read "cancelled" at t + 5 and
     * stored first; A finishes last. */
    ck_assert_int_eq(ing_events_put(c, 7, &cancelled, t + 5), 0);
    ck_assert_int_eq(ing_events_put(c, 7, &on_sale, t), ONS_ECONFLICT);
    ck_assert_str_eq(cached(c, 7), "cancelled");
    /* A later read replaces it, whatever it says (a resume). */
    ck_assert_int_eq(ing_events_put(c, 7, &on_sale, t + 6), 0);
    ck_assert_str_eq(cached(c, 7), "on_sale");
    /* Another event in the slot (16 slots: 7 and 23 collide) is no race. */
    ck_assert_int_eq(ing_events_put(c, 23, &cancelled, t), 0);
    ck_assert_str_eq(cached(c, 23), "cancelled");
    ck_assert_str_eq(cached(c, 7), "(none)");
    ing_events_free(c);
}
END_TEST

START_TEST(a_fill_that_began_before_a_forget_does_not_bring_it_back)
{
    ing_events *c;
    ck_assert_int_eq(ing_events_new(60000, 16, &c), 0);
    q_event_state on_sale = state("on_sale");
    ck_assert_int_eq(ing_events_put(c, 7, &on_sale, ons_mono_ms()), 0);
    int64_t before = ons_mono_ms();
    /* A change was sent (forget), while a fill that began before it runs. */
    ing_events_forget(c, 7);
    ck_assert_str_eq(cached(c, 7), "(none)");
    ck_assert_int_eq(ing_events_put(c, 7, &on_sale, before - 1), ONS_ECONFLICT);
    ck_assert_str_eq(cached(c, 7), "(none)");
    int fresh = 1;
    ck_assert_int_eq(ing_events_lookup(c, 7, NULL, &fresh), ONS_ENOTFOUND);
    ck_assert_int_eq(fresh, 0);
    /* A fill that began after the forget is cached. */
    q_event_state paused = state("paused");
    ck_assert_int_eq(ing_events_put(c, 7, &paused, ons_mono_ms() + 1), 0);
    ck_assert_str_eq(cached(c, 7), "paused");
    ck_assert(ing_events_fresh(c, 7));
    ing_events_free(c);
}
END_TEST

/* The forget of an event its slot does not hold (the slot empty, or
 * holding another event) still stops a fill of it that began before, and
 * a fill that began in the forget's own millisecond counts as before it. */
START_TEST(a_forget_of_an_uncached_event_stops_an_earlier_fill)
{
    ing_events *c;
    ck_assert_int_eq(ing_events_new(60000, 16, &c), 0);
    q_event_state on_sale = state("on_sale"), other = state("paused");
    ck_assert_int_eq(ing_events_put(c, 23, &other, ons_mono_ms()), 0); /* 7's slot */
    int64_t before = ons_mono_ms();
    ing_events_forget(c, 7);
    int64_t at = ons_mono_ms();
    ck_assert_int_eq(ing_events_put(c, 7, &on_sale, before - 1), ONS_ECONFLICT);
    ck_assert_str_eq(cached(c, 7), "(none)");
    if (at == before) /* the forget's own millisecond */
        ck_assert_int_eq(ing_events_put(c, 7, &on_sale, at), ONS_ECONFLICT);
    ck_assert_int_eq(ing_events_put(c, 7, &on_sale, at + 1), 0);
    ck_assert_str_eq(cached(c, 7), "on_sale");
    ing_events_free(c);
}
END_TEST

/* The section names a join is checked against (ev:<id> section_names):
 * names holding the separator or digits are matched whole, never by a
 * prefix or across two names; a text not in the form is unknown (-1). */
START_TEST(section_names_match_whole_names_only)
{
    const char *names[] = {"A", "Balcony 2:1", "12", ""};
    char *enc = q_section_names_encode(names, 3);
    ck_assert_ptr_nonnull(enc);
    ck_assert_str_eq(enc, "1:A11:Balcony 2:12:12");
    ck_assert_int_eq(q_section_names_has(enc, "A"), 1);
    ck_assert_int_eq(q_section_names_has(enc, "Balcony 2:1"), 1);
    ck_assert_int_eq(q_section_names_has(enc, "12"), 1);
    const char *not_there[] = {"a", "Balcony 2", "1:A", "2:12", "B", "1", "Balcony 2:12"};
    for (size_t i = 0; i < sizeof not_there / sizeof *not_there; i++)
        ck_assert_msg(q_section_names_has(enc, not_there[i]) == 0, "%s", not_there[i]);
    free(enc);
    char *none = q_section_names_encode(names, 0);
    ck_assert_str_eq(none, "");
    ck_assert_int_eq(q_section_names_has(none, "A"), 0);
    free(none);
    /* Not in the form (damaged, or a later version's): unknown, never "not
     * sold", so the join is queued as before rather than refused. */
    ck_assert_int_eq(q_section_names_has("9:A", "A"), -1);  /* longer than the text */
    ck_assert_int_eq(q_section_names_has("x1:A", "A"), -1); /* no length */
    ck_assert_int_eq(q_section_names_has("1;A", "A"), -1);  /* no ':' */
    ck_assert_int_eq(q_section_names_has("A", "A"), -1);    /* a bare name */
    ck_assert_int_eq(q_section_names_has("A", "B"), -1);
    ck_assert_int_eq(q_section_names_has("1:B", "A"), 0); /* parsed: not there */
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        ONS_CHECK_CASE(a_fill_that_began_earlier_does_not_replace_a_later_one),
        ONS_CHECK_CASE(a_fill_that_began_before_a_forget_does_not_bring_it_back),
        ONS_CHECK_CASE(a_forget_of_an_uncached_event_stops_an_earlier_fill),
        ONS_CHECK_CASE(section_names_match_whole_names_only),
    };
    return ons_check_run("event_cache", cases, sizeof cases / sizeof *cases, 30);
}
