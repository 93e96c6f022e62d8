/* test_ticket_code.c - rotating ticket codes (ingress/ticket_code.h,
 * docs/tickets.md): the documented algorithm's values, the window rules of a
 * check, the scannable string, and the QR SVG. */
#include "common/err.h"
#include "ingress/ticket_code.h"

#include "tests/check_run.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const char *key = "unit-test-tickets-key-0123456789";

/* Values computed independently (Python's hmac, the formula of
 * docs/tickets.md). */
START_TEST(known_values)
{
    char c[ING_TCODE_DIGITS + 1];
    ck_assert_int_eq(ing_tcode_at(key, 12345, 0, 59000000, c), 0);
    ck_assert_str_eq(c, "27856559");
    ck_assert_int_eq(ing_tcode_at(key, 12345, 1, 59000000, c), 0);
    ck_assert_str_eq(c, "41408849"); /* a transfer rotates the code */
    ck_assert_int_eq(ing_tcode_at(key, 12345, 0, 59000001, c), 0);
    ck_assert_str_eq(c, "94190224"); /* so does the next step */
    ck_assert_int_eq(ing_tcode_at(key, 1, 0, 0, c), 0);
    ck_assert_str_eq(c, "40477617");
    ck_assert_int_eq(ing_tcode_at("", 1, 0, 0, c), ONS_EINVAL);
    ck_assert_int_eq(ing_tcode_at(key, 1, -1, 0, c), ONS_EINVAL);
    ck_assert_int_eq(ing_tcode_at(key, 1, 0, -1, c), ONS_EINVAL);
}
END_TEST

static enum ing_tcode_match check_at(int64_t version, int64_t now, int64_t step, int64_t code_v,
                                     int64_t code_step)
{
    char c[ING_TCODE_DIGITS + 1];
    ck_assert_int_eq(ing_tcode_at(key, 77, code_v, code_step, c), 0);
    ing_tcode_window w = {now, step, 1, 8};
    return ing_tcode_check(key, 77, version, &w, c);
}

START_TEST(window_rules)
{
    int64_t now = 1000;
    /* With the step: only that step, judged by its distance from now. */
    ck_assert_int_eq(check_at(2, now, now, 2, now), ING_TCODE_CURRENT);
    ck_assert_int_eq(check_at(2, now, now - 1, 2, now - 1), ING_TCODE_CURRENT);
    ck_assert_int_eq(check_at(2, now, now + 1, 2, now + 1), ING_TCODE_CURRENT);
    ck_assert_int_eq(check_at(2, now, now - 2, 2, now - 2), ING_TCODE_STALE);
    ck_assert_int_eq(check_at(2, now, now + 5, 2, now + 5), ING_TCODE_STALE);
    ck_assert_int_eq(check_at(2, now, now, 2, now - 1), ING_TCODE_NONE); /* step lies */
    /* Without: the grace window only. */
    ck_assert_int_eq(check_at(2, now, -1, 2, now - 1), ING_TCODE_CURRENT);
    ck_assert_int_eq(check_at(2, now, -1, 2, now - 2), ING_TCODE_NONE);
    /* Earlier versions are "transferred", later ones and very old ones not. */
    ck_assert_int_eq(check_at(2, now, now, 1, now), ING_TCODE_OLD_VERSION);
    ck_assert_int_eq(check_at(2, now, -1, 0, now + 1), ING_TCODE_OLD_VERSION);
    ck_assert_int_eq(check_at(2, now, now, 3, now), ING_TCODE_NONE);
    ck_assert_int_eq(check_at(20, now, now, 11, now), ING_TCODE_NONE);
    ck_assert_int_eq(check_at(20, now, now, 12, now), ING_TCODE_OLD_VERSION);
    /* Another key: nothing. Malformed codes: nothing. */
    ing_tcode_window w = {now, -1, 1, 8};
    char c[ING_TCODE_DIGITS + 1];
    ing_tcode_at("another-key-0123456789", 77, 0, now, c);
    ck_assert_int_eq(ing_tcode_check(key, 77, 0, &w, c), ING_TCODE_NONE);
    ck_assert_int_eq(ing_tcode_check(key, 77, 0, &w, "1234567"), ING_TCODE_NONE);
    ck_assert_int_eq(ing_tcode_check(key, 77, 0, &w, "123456789"), ING_TCODE_NONE);
    ck_assert_int_eq(ing_tcode_check(key, 77, 0, &w, "1234567a"), ING_TCODE_NONE);
}
END_TEST

START_TEST(scan_string)
{
    char s[ING_TCODE_SCAN_MAX], code[ING_TCODE_DIGITS + 1];
    int64_t t = 0, step = 0;
    ing_tcode_scan_format(INT64_MAX, INT64_MAX, "01234567", s);
    ck_assert_int_eq(ing_tcode_scan_parse(s, &t, &step, code), 0);
    ck_assert(t == INT64_MAX && step == INT64_MAX);
    ck_assert_str_eq(code, "01234567");
    ck_assert_int_eq(ing_tcode_scan_parse("ONS1:5:0:00000000", &t, &step, code), 0);
    ck_assert(t == 5 && step == 0);
    const char *bad[] = {"",
                         "ONS1:",
                         "ONS2:5:0:00000000",
                         "ONS1:0:0:00000000",
                         "ONS1:05:0:00000000",
                         "ONS1:5:00:00000000",
                         "ONS1:-5:0:00000000",
                         "ONS1:5:0:0000000",
                         "ONS1:5:0:000000000",
                         "ONS1:5:0:0000000x",
                         "ONS1:5:0",
                         "ONS1:9223372036854775808:0:00000000",
                         "ONS1:5:1:00000000 "};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(ing_tcode_scan_parse(bad[i], &t, &step, code) == ONS_EINVAL, "%s", bad[i]);
}
END_TEST

START_TEST(qr_svg_shape)
{
    char *svg = ing_qr_svg("ONS1:123456789:59000000:12345678");
    ck_assert_ptr_nonnull(svg);
    ck_assert(strncmp(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 ", 52) == 0);
    int size = atoi(svg + 52);
    ck_assert_int_ge(size, 21 + 8);
    ck_assert_int_eq((size - 8 - 21) % 4, 0); /* QR versions grow by 4 modules */
    ck_assert_ptr_nonnull(strstr(svg, "<path fill=\"#000\" d=\"M"));
    ck_assert(strcmp(svg + strlen(svg) - 9, "\"/></svg>") == 0);
    /* The three finder patterns: the top-left one's first row is a run of 7
     * dark modules at the quiet zone's corner. */
    ck_assert_ptr_nonnull(strstr(svg, "M4 4h7v1h-7z"));
    free(svg);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"known_values", known_values},
        {"window_rules", window_rules},
        {"scan_string", scan_string},
        {"qr_svg_shape", qr_svg_shape},
    };
    return ons_check_run("ticket_code", cases, sizeof cases / sizeof *cases, 60);
}
