/* test_jsonw.c - common/jsonw.c writes what jansson's json_dumps writes for
 * the same strings, integers and reals (the worker's result documents and
 * the catalog's pages are read by clients that also see jansson's). */
#include "tests/check_run.h"
#include "common/jsonw.h"

#include <check.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The text of value v written alone by jansson (v is stolen). */
static char *jansson(json_t *v)
{
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(v);
    ck_assert_ptr_nonnull(t);
    return t;
}

/* b holds want, whole (no allocation failed); b is freed and emptied. */
static void written_is(ons_jw *b, const char *want)
{
    ck_assert_int_eq(b->oom, 0);
    ck_assert_str_eq(b->s, want);
    ck_assert_uint_eq(b->len, strlen(want));
    free(b->s);
    *b = (ons_jw){0};
}

static void same(ons_jw *b, json_t *v)
{
    char *want = jansson(v);
    written_is(b, want);
    free(want);
}

/* write(value) alone is what jansson writes for v. */
#define SAME(write, value, v)                                                                      \
    do {                                                                                           \
        ons_jw b_ = {0};                                                                           \
        write(&b_, value);                                                                         \
        same(&b_, v);                                                                              \
    } while (0)

START_TEST(strings_as_jansson)
{
    const char *cases[] = {"",
                           "plain",
                           "quote \" and backslash \\",
                           "\b\f\n\r\t and \x01\x1f",
                           "Zürich, 東京, 🎫",
                           "slash / stays"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        SAME(ons_jw_str, cases[i], json_string(cases[i]));
}
END_TEST

/* Each byte that does not begin valid UTF-8 is written as U+FFFD, and the
 * rest goes on (jansson refuses these strings: no comparison with it). */
#define FFFD "\xEF\xBF\xBD"
START_TEST(invalid_utf8_is_replaced)
{
    const char *cases[][2] = {
        {"ab\xC3", "\"ab" FFFD "\""},                        /* cut inside a character */
        {"a\x80z", "\"a" FFFD "z\""},                        /* a lone continuation byte */
        {"\xC0\xAF", "\"" FFFD FFFD "\""},                   /* overlong '/' */
        {"\xE0\x80\xAFz", "\"" FFFD FFFD FFFD "z\""},        /* overlong in three bytes */
        {"\xED\xA0\x80", "\"" FFFD FFFD FFFD "\""},          /* a surrogate */
        {"\xF4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\""}, /* above U+10FFFF */
        {"\xFF\xC3\xA9", "\"" FFFD "\xC3\xA9\""},            /* never valid, then e-acute */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        ons_jw b = {0};
        ons_jw_str(&b, cases[i][0]);
        written_is(&b, cases[i][1]);
    }
}
END_TEST

START_TEST(numbers_as_jansson)
{
    const int64_t ints[] = {0, 1, -1, 42, 1234567890123, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        SAME(ons_jw_int, ints[i], json_integer(ints[i]));
    const double reals[] = {0.0, 1.0, -2.5, 0.1, 12.345678901234567, 1e21, 1.5e-7, 123456789.0};
    for (size_t i = 0; i < sizeof reals / sizeof *reals; i++)
        SAME(ons_jw_real, reals[i], json_real(reals[i]));
    /* with fewer digits, as jansson under JSON_REAL_PRECISION(digits) */
    const double more[] = {1.64, 2.05, 52.09, -0.0, 1e-7, 999.99, 12.345678901234567, 1e21, 7.0};
    for (int digits = 1; digits <= 17; digits++)
        for (size_t i = 0; i < sizeof more / sizeof *more; i++) {
            ons_jw b = {0};
            ons_jw_real_digits(&b, more[i], digits);
            json_t *v = json_real(more[i]);
            char *want =
                json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(digits));
            json_decref(v);
            ck_assert_ptr_nonnull(want);
            written_is(&b, want);
            free(want);
        }
}
END_TEST

/* Literals and values in sequence: one document, NUL-terminated. */
START_TEST(a_document)
{
    ons_jw b = {0};
    ons_jw_lit(&b, "{\"state\":");
    ons_jw_str(&b, "queued");
    ons_jw_lit(&b, ",\"n\":");
    ons_jw_int(&b, -7);
    ons_jw_raw(&b, "}xyz", 1);
    written_is(&b, "{\"state\":\"queued\",\"n\":-7}");
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"strings_as_jansson", strings_as_jansson},
        {"invalid_utf8_is_replaced", invalid_utf8_is_replaced},
        {"numbers_as_jansson", numbers_as_jansson},
        {"a_document", a_document},
    };
    return ons_check_run("jsonw", cases, sizeof cases / sizeof *cases, 60);
}
