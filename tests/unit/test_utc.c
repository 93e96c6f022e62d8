/* test_utc.c - common/utc.c: the UTC timestamps of result documents and
 * queued polls (ons_format_utc) print what gmtime_r + strftime print. */
#include "tests/check_run.h"
#include "common/utc.h"

#include <check.h>
#include <stdint.h>
#include <string.h>

static void agree(int64_t ms)
{
    for (int with_ms = 0; with_ms < 2; with_ms++) {
        char a[32], b[32];
        ons_format_utc(ms, with_ms, a);
        ons_format_utc_strftime(ms, with_ms, b);
        ck_assert_msg(strcmp(a, b) == 0, "%lld (with_ms %d): '%s' != strftime's '%s'",
                      (long long)ms, with_ms, a, b);
    }
}

START_TEST(known_instants)
{
    char out[32];
    ons_format_utc(0, 1, out);
    ck_assert_str_eq(out, "1970-01-01T00:00:00.000Z");
    ons_format_utc(INT64_C(1795896000250), 1, out);
    ck_assert_str_eq(out, "2026-11-28T20:00:00.250Z");
    ons_format_utc(INT64_C(1795896000250), 0, out);
    ck_assert_str_eq(out, "2026-11-28T20:00:00Z");
    ons_format_utc(INT64_C(951782400000), 0, out); /* a 400-year leap day */
    ck_assert_str_eq(out, "2000-02-29T00:00:00Z");
}
END_TEST

START_TEST(agrees_with_strftime)
{
    /* Edges: the epoch, month and year ends, leap days (1972, 2000, 2400
     * and not 2100), the last millisecond before year 10000 and past it
     * (the fallback), a negative instant (the fallback). */
    static const int64_t edges[] = {0,
                                    999,
                                    INT64_C(68169599999),
                                    INT64_C(68256000000),
                                    INT64_C(951782399999),
                                    INT64_C(951868800000),
                                    INT64_C(978307199999),
                                    INT64_C(4107542400000),
                                    INT64_C(4107455999999),
                                    INT64_C(13574563200000),
                                    INT64_C(253402300799999),
                                    INT64_C(253402300800000),
                                    -1000};
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++)
        agree(edges[i]);
    /* Every day of 1970..2100 at a varying time, then random instants. */
    for (int64_t day = 0; day < 47482; day++)
        agree(day * 86400000 + (day * 7919 % 86400) * 1000 + day % 1000);
    uint64_t x = 88172645463325252u;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        agree((int64_t)(x % UINT64_C(253402300800000)));
    }
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"known_instants", known_instants},
        {"agrees_with_strftime", agrees_with_strftime},
    };
    return ons_check_run("utc", cases, sizeof cases / sizeof *cases, 60);
}
