/* test_b64url.c - common/b64url.h: RFC 4648's test vectors in the URL
 * alphabet, lengths of 0 to 2 left-over bytes, the URL-safe characters, and
 * every non-canonical text refused (padding, a stray character, a length
 * of 4k+1, unused trailing bits set). */
#include "common/b64url.h"
#include "tests/check_run.h"

#include <check.h>
#include <string.h>

START_TEST(rfc4648_vectors)
{
    static const char *plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *text[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char out[16];
        unsigned char back[16];
        size_t n = strlen(plain[i]);
        ck_assert_uint_eq(ons_b64url_encode(plain[i], n, out), ONS_B64URL_LEN(n));
        ck_assert_str_eq(out, text[i]);
        ck_assert_int_eq(ons_b64url_decode(text[i], strlen(text[i]), back), (long)n);
        ck_assert_mem_eq(back, plain[i], n);
    }
}
END_TEST

START_TEST(url_alphabet_round_trips)
{
    unsigned char all[256], back[256];
    char text[ONS_B64URL_LEN(256) + 1];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    size_t len = ons_b64url_encode(all, sizeof all, text);
    ck_assert_ptr_null(strpbrk(text, "+/="));
    ck_assert_ptr_nonnull(strchr(text, '-'));
    ck_assert_ptr_nonnull(strchr(text, '_'));
    ck_assert_int_eq(ons_b64url_decode(text, len, back), 256);
    ck_assert_mem_eq(back, all, 256);
}
END_TEST

START_TEST(non_canonical_refused)
{
    unsigned char out[16];
    static const char *bad[] = {"Zg==", "Zm9v+A", "Zm9v/A", "Zm9vY", "Zh", "Zm9", "Z g"};
    /* "Zh" and "Zm9" set bits past the last byte ("Zg" and "Zm8" do not) */
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_int_eq(ons_b64url_decode(bad[i], strlen(bad[i]), out), -1);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"rfc4648_vectors", rfc4648_vectors},
        {"url_alphabet_round_trips", url_alphabet_round_trips},
        {"non_canonical_refused", non_canonical_refused},
    };
    return ons_check_run("b64url", cases, sizeof cases / sizeof *cases, 30);
}
