/* test_fuzz_regressions.c - one test per finding of the fuzz targets
 * (tests/fuzz, docs/fuzzing.md), each with the input that broke the code;
 * the input itself is also kept in tests/fuzz/corpus/<target>/ and replayed
 * by <target>_replay. */
#include "common/auth.h"
#include "common/err.h"
#include "common/httpd.h"

#include "tests/check_run.h"

#include <check.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <string.h>
#include "b64url.h"

#define SECRET "fuzz-secret-0123456789abcdef"
#define NOW    1800000000LL

/* "Bearer <header>.<claims>.<HMAC-SHA256 with SECRET>", built by hand (as
 * fuzz_jwt does) so that ons_auth_mint plays no part. */
static const char *signed_token(const char *header, const char *claims)
{
    static char buf[2048];
    ck_assert_int_eq(b64url_bearer(buf, header, strlen(header), claims, strlen(claims), SECRET), 0);
    return buf;
}

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

/* fuzz_jwt: a token signed with the right key whose header says
 * "alg":"Hs256" was accepted: libjwt matches algorithm names ignoring case,
 * while JWS names are case-sensitive (RFC 7515 section 4.1.1) and
 * ons_auth_verify takes only HS256. */
START_TEST(jwt_alg_is_case_sensitive)
{
    const char *claims = "{\"sub\":\"1\",\"role\":\"seller\",\"exp\":1900000000}";
    ons_principal who;
    ck_assert_int_eq(ons_auth_verify(SECRET,
                                     signed_token("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims),
                                     NOW, &who),
                     0); /* the control: the same token with the exact name */
    static const char *const bad[] = {"Hs256", "hs256", "HS256 ", NULL};
    for (int i = 0; bad[i]; i++) {
        char header[64];
        snprintf(header, sizeof header, "{\"alg\":\"%s\",\"typ\":\"JWT\"}", bad[i]);
        ck_assert_msg(ons_auth_verify(SECRET, signed_token(header, claims), NOW, &who) == ONS_EAUTH,
                      "accepted alg '%s'", bad[i]);
    }
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"error_body_with_cut_utf8", error_body_with_cut_utf8},
        {"jwt_alg_is_case_sensitive", jwt_alg_is_case_sensitive},
    };
    return ons_check_run("fuzz_regressions", cases, sizeof cases / sizeof *cases, 60);
}
