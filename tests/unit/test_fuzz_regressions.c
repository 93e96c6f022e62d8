/* test_fuzz_regressions.c - one test per finding of the fuzz targets
 * (tests/fuzz, docs/fuzzing.md), each with the input that broke the code;
 * the input itself is also kept in tests/fuzz/corpus/<target>/ and replayed
 * by <target>_replay. */
#include "common/err.h"
#include "common/httpd.h"

#include <check.h>
#include <jansson.h>
#include <stdarg.h>
#include <string.h>

static json_t *error_body(const char *code, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    json_t *b = ons_httpd_error_body(code, field, fmt, ap);
    va_end(ap);
    return b;
}

/* fuzz_request: {"a" + 40 × "é": 1} as a join body. ing_json_only() names
 * the unknown key in the reply, cut to 64 bytes: the cut fell inside an
 * "é", the field and message were no longer UTF-8, json_pack() refused them
 * and the 400 went out with no body at all. */
START_TEST(error_body_with_cut_utf8)
{
    char key[128] = "a", name[65];
    for (int i = 0; i < 40; i++)
        strcat(key, "\xc3\xa9");
    memcpy(name, key, 64); /* what ing_json_only()'s snprintf(name, 65, ...) keeps */
    name[64] = '\0';
    json_t *b = error_body("unknown_field", name, "Unknown field '%s'.", name);
    ck_assert_ptr_nonnull(b);
    json_t *e = json_object_get(b, "error");
    ck_assert_str_eq(json_string_value(json_object_get(e, "code")), "unknown_field");
    const char *field = json_string_value(json_object_get(e, "field"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    ck_assert_ptr_nonnull(field);
    ck_assert_ptr_nonnull(msg);
    /* The whole characters are kept; only the cut one is replaced. */
    ck_assert_int_eq(strncmp(field, name, 63), 0);
    ck_assert_int_eq(strncmp(msg, "Unknown field 'a\xc3\xa9", 18), 0);
    json_decref(b);

    /* Any bytes a format can bring in: invalid sequences, an overlong
     * encoding, a surrogate. */
    b = error_body("invalid_field", "f\xff", "bad %s %s %s", "\xc0\xaf", "\xed\xa0\x80", "\x80");
    ck_assert_ptr_nonnull(b);
    json_decref(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fuzz_regressions");
    TCase *t = tcase_create("request");
    tcase_add_test(t, error_body_with_cut_utf8);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
