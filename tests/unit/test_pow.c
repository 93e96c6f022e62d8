/* test_pow.c - proof-of-work challenges (ingress/pow.h, docs/fairness.md
 * "Bot friction"): counting zero bits, the documented format and key
 * (values computed independently with Python's hmac and hashlib), signing
 * and verifying, and every refusal: malformed, bad signature, wrong event or
 * user, expired, difficulty raised since, too few zero bits. */
#include "tests/check_run.h"
#include "common/err.h"
#include "ingress/pow.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *secret = "unit-test-ids-secret-0123456789";

/* From Python: key = HMAC-SHA256(secret, "onsale/pow/v1"); tag = first 16
 * bytes of HMAC-SHA256(key, body) in hex; nonce 727 is the first whose
 * SHA-256(challenge ":" nonce) has 8 leading zero bits, 5714 the first with
 * 12, and nonce 0 has none. */
#define KNOWN "1.7.42.8.4102444800000.0123456789abcdef.4d75a845b86478dcb56156a97eb081ff"
#define NOW   1800000000000LL

START_TEST(zero_bits)
{
    unsigned char d[4] = {0, 0, 0, 0};
    ck_assert_int_eq(ing_pow_zero_bits(d, 4), 32);
    d[0] = 0x80;
    ck_assert_int_eq(ing_pow_zero_bits(d, 4), 0);
    d[0] = 0x01;
    ck_assert_int_eq(ing_pow_zero_bits(d, 4), 7);
    d[0] = 0;
    d[1] = 0x10;
    ck_assert_int_eq(ing_pow_zero_bits(d, 4), 11);
    d[1] = 0;
    d[3] = 0xff;
    ck_assert_int_eq(ing_pow_zero_bits(d, 4), 24);
}
END_TEST

START_TEST(known_values)
{
    ck_assert_int_eq(ing_pow_work(KNOWN, "0"), 0);
    ck_assert_int_ge(ing_pow_work(KNOWN, "727"), 8);
    ck_assert_int_ge(ing_pow_work(KNOWN, "5714"), 12);
    ing_pow_proof p;
    ck_assert_int_eq(ing_pow_verify(secret, KNOWN ":727", 7, 42, 8, NOW, &p), ING_POW_OK);
    ck_assert_int_eq(p.event_id, 7);
    ck_assert_int_eq(p.user_id, 42);
    ck_assert_int_eq(p.difficulty, 8);
    ck_assert(p.expires_ms == 4102444800000LL);
    ck_assert_str_eq(p.tag, "4d75a845b86478dcb56156a97eb081ff");
    /* The solver finds the same first nonces. */
    char nonce[24];
    ck_assert_int_eq(ing_pow_solve(KNOWN, 8, 0, 100000, nonce, sizeof nonce), 0);
    ck_assert_str_eq(nonce, "727");
    ck_assert_int_eq(ing_pow_solve(KNOWN, 12, 0, 100000, nonce, sizeof nonce), 0);
    ck_assert_str_eq(nonce, "5714");
    ck_assert_int_eq(ing_pow_solve(KNOWN, 12, 0, 5714, nonce, sizeof nonce), ONS_ENOTFOUND);
}
END_TEST

/* Makes and solves a challenge for event 5, user 9 at difficulty d. */
static void solved(int d, int64_t expires, char *header, size_t cap)
{
    char ch[ING_POW_CHALLENGE_MAX], nonce[24];
    ck_assert_int_eq(ing_pow_challenge(secret, 5, 9, d, expires, ch, sizeof ch), 0);
    ck_assert_int_eq(ing_pow_solve(ch, d, 0, 1u << 24, nonce, sizeof nonce), 0);
    snprintf(header, cap, "%s:%s", ch, nonce);
}

START_TEST(sign_and_verify)
{
    char h[ING_POW_HEADER_MAX], h2[ING_POW_HEADER_MAX];
    ing_pow_proof p, p2;
    solved(10, NOW + 60000, h, sizeof h);
    ck_assert_int_eq(ing_pow_verify(secret, h, 5, 9, 10, NOW, &p), ING_POW_OK);
    ck_assert_int_eq(p.difficulty, 10);
    ck_assert(p.expires_ms == NOW + 60000);
    /* A challenge issued at a higher difficulty than asked now is fine. */
    ck_assert_int_eq(ing_pow_verify(secret, h, 5, 9, 4, NOW, NULL), ING_POW_OK);
    /* Two challenges never share a tag (the salt). */
    solved(10, NOW + 60000, h2, sizeof h2);
    ck_assert_int_eq(ing_pow_verify(secret, h2, 5, 9, 10, NOW, &p2), ING_POW_OK);
    ck_assert_str_ne(p.tag, p2.tag);
    /* Arguments a challenge cannot carry. */
    char ch[ING_POW_CHALLENGE_MAX];
    ck_assert_int_eq(ing_pow_challenge(secret, 5, 9, 0, NOW, ch, sizeof ch), ONS_EINVAL);
    ck_assert_int_eq(
        ing_pow_challenge(secret, 5, 9, ING_POW_MAX_DIFFICULTY + 1, NOW, ch, sizeof ch),
        ONS_EINVAL);
    ck_assert_int_eq(ing_pow_challenge(secret, 0, 9, 8, NOW, ch, sizeof ch), ONS_EINVAL);
    ck_assert_int_eq(ing_pow_challenge(secret, 5, 9, 8, NOW, ch, 64), ONS_EINVAL);
    /* The longest challenge fits. */
    ck_assert_int_eq(ing_pow_challenge(secret, INT64_MAX / 10, INT64_MAX / 10,
                                       ING_POW_MAX_DIFFICULTY, INT64_MAX / 10, ch, sizeof ch),
                     0);
    ck_assert_int_lt(strlen(ch) + 1 + ING_POW_NONCE_MAX, ING_POW_HEADER_MAX);
}
END_TEST

START_TEST(refusals)
{
    char h[ING_POW_HEADER_MAX], bad[ING_POW_HEADER_MAX];
    solved(8, NOW + 60000, h, sizeof h);
    /* Bound to the event and the user. */
    ck_assert_int_eq(ing_pow_verify(secret, h, 6, 9, 8, NOW, NULL), ING_POW_WRONG_EVENT);
    ck_assert_int_eq(ing_pow_verify(secret, h, 5, 10, 8, NOW, NULL), ING_POW_WRONG_USER);
    /* Short-lived. */
    ck_assert_int_eq(ing_pow_verify(secret, h, 5, 9, 8, NOW + 60000, NULL), ING_POW_EXPIRED);
    ck_assert_int_eq(ing_pow_verify(secret, h, 5, 9, 8, NOW + 59999, NULL), ING_POW_OK);
    /* The event's difficulty was raised after issuing. */
    ck_assert_int_eq(ing_pow_verify(secret, h, 5, 9, 9, NOW, NULL), ING_POW_TOO_EASY);
    /* Another key (another deployment) did not sign it. */
    ck_assert_int_eq(ing_pow_verify("another-ids-secret-0123456789", h, 5, 9, 8, NOW, NULL),
                     ING_POW_BAD_TAG);
    /* Any field altered breaks the tag: claiming a lower difficulty, a later
     * expiry, another user. */
    ck_assert_int_eq(ing_pow_verify(secret, KNOWN ":727", 7, 42, 8, NOW, NULL), ING_POW_OK);
    ck_assert_int_eq(ing_pow_verify(secret,
                                    "1.7.42.7.4102444800000.0123456789abcdef."
                                    "4d75a845b86478dcb56156a97eb081ff:727",
                                    7, 42, 7, NOW, NULL),
                     ING_POW_BAD_TAG);
    ck_assert_int_eq(ing_pow_verify(secret,
                                    "1.7.42.8.4102444800001.0123456789abcdef."
                                    "4d75a845b86478dcb56156a97eb081ff:727",
                                    7, 42, 8, NOW, NULL),
                     ING_POW_BAD_TAG);
    ck_assert_int_eq(ing_pow_verify(secret,
                                    "1.7.43.8.4102444800000.0123456789abcdef."
                                    "4d75a845b86478dcb56156a97eb081ff:727",
                                    7, 43, 8, NOW, NULL),
                     ING_POW_BAD_TAG);
    snprintf(bad, sizeof bad, "%s", KNOWN ":727");
    bad[strlen(KNOWN) - 1] = bad[strlen(KNOWN) - 1] == '0' ? '1' : '0';
    ck_assert_int_eq(ing_pow_verify(secret, bad, 7, 42, 8, NOW, NULL), ING_POW_BAD_TAG);
    /* A nonce that does not reach the difficulty. */
    ck_assert_int_eq(ing_pow_verify(secret, KNOWN ":0", 7, 42, 8, NOW, NULL), ING_POW_UNSOLVED);
    ck_assert_int_eq(ing_pow_verify(secret, KNOWN ":5714", 7, 42, 8, NOW, NULL), ING_POW_OK);
}
END_TEST

START_TEST(malformed)
{
    static const char *const cases[] = {
        "",
        "no-colon",
        KNOWN,
        KNOWN ":",
        KNOWN ":has space",
        KNOWN ":"
              "123456789012345678901234567890123", /* 33 > ING_POW_NONCE_MAX */
        "2.7.42.8.4102444800000.0123456789abcdef.4d75a845b86478dcb56156a97eb081ff:727",
        "1.07.42.8.4102444800000.0123456789abcdef.4d75a845b86478dcb56156a97eb081ff:727",
        "1.7.42.0.4102444800000.0123456789abcdef.4d75a845b86478dcb56156a97eb081ff:727",
        "1.7.42.33.4102444800000.0123456789abcdef.4d75a845b86478dcb56156a97eb081ff:727",
        "1.7.42.8.4102444800000.0123456789ABCDEF.4d75a845b86478dcb56156a97eb081ff:727",
        "1.7.42.8.4102444800000.0123456789abcdef.4d75a845b86478dcb56156a97eb081f:727",
        "1.7.42.8.4102444800000.0123456789abcdef.4d75a845b86478dcb56156a97eb081ff0:727",
        "1.7.-42.8.4102444800000.0123456789abcdef.4d75a845b86478dcb56156a97eb081ff:727",
        "1.7.99999999999999999999.8.1.0123456789abcdef.4d75a845b86478dcb56156a97eb081ff:727",
        "1.7.42.8.4102444800000.0123456789abcdef.4d75a845b86478dcb56156a97eb081ff:72:7",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        ck_assert_msg(ing_pow_verify(secret, cases[i], 7, 42, 8, NOW, NULL) == ING_POW_MALFORMED,
                      "case %zu (%s) is not malformed", i, cases[i]);
    ck_assert_int_eq(ing_pow_verify(secret, NULL, 7, 42, 8, NOW, NULL), ING_POW_MALFORMED);
    for (int v = ING_POW_OK; v <= ING_POW_UNSOLVED; v++)
        ck_assert_ptr_nonnull(ing_pow_verdict_message((ing_pow_verdict)v));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pow");
    TCase *tc = tcase_create("challenges");
    tcase_add_test(tc, zero_bits);
    tcase_add_test(tc, known_values);
    tcase_add_test(tc, sign_and_verify);
    tcase_add_test(tc, refusals);
    tcase_add_test(tc, malformed);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return ons_check_run_suite(s);
}
