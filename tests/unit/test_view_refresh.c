/* test_view_refresh.c - ing_view_refresh_ms(): the refresh hint the event
 * view gives the fan page spreads one event's crowd to views_per_s, inside
 * [min_ms, max_ms], in whole seconds (the view's ETag changes only when
 * the hint does). */
#include "tests/check_run.h"
#include "ingress/event_view.h"

#include <check.h>

static const ing_view_refresh cfg = {.min_ms = 5000, .max_ms = 60000, .views_per_s = 2000};

START_TEST(quiet_event_refreshes_at_the_floor)
{
    ck_assert_int_eq(ing_view_refresh_ms(&cfg, 0), 5000);
    ck_assert_int_eq(ing_view_refresh_ms(&cfg, -1), 5000);    /* unknown crowd */
    ck_assert_int_eq(ing_view_refresh_ms(&cfg, 10000), 5000); /* 2,000 views/s at 5 s */
}
END_TEST

START_TEST(crowd_is_spread_to_the_budget)
{
    /* 40,000 fans at 2,000 views/s: one view each every 20 s. */
    ck_assert_int_eq(ing_view_refresh_ms(&cfg, 40000), 20000);
    /* 40,001 fans: 20,000.5 ms, rounded up to the next whole second. */
    ck_assert_int_eq(ing_view_refresh_ms(&cfg, 40001), 21000);
    /* The crowd's views per second stay within the budget. */
    for (int64_t crowd = 1; crowd <= 120000; crowd += 997) {
        int64_t ms = ing_view_refresh_ms(&cfg, crowd);
        ck_assert_int_eq(ms % 1000, 0);
        ck_assert(ms >= cfg.min_ms && ms <= cfg.max_ms);
        ck_assert_msg(crowd * 1000 <= ms * cfg.views_per_s, "crowd %lld: %lld ms", (long long)crowd,
                      (long long)ms);
    }
}
END_TEST

START_TEST(huge_crowd_capped_at_max)
{
    ck_assert_int_eq(ing_view_refresh_ms(&cfg, 200000), 60000);
    ck_assert_int_eq(ing_view_refresh_ms(&cfg, INT64_C(1) << 40), 60000);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"quiet_event_refreshes_at_the_floor", quiet_event_refreshes_at_the_floor},
        {"crowd_is_spread_to_the_budget", crowd_is_spread_to_the_budget},
        {"huge_crowd_capped_at_max", huge_crowd_capped_at_max},
    };
    return ons_check_run("view_refresh", cases, sizeof cases / sizeof *cases, 30);
}
