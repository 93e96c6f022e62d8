/*
 * test_password.c - common/password.h: argon2id hashes (shape, salt,
 * verification, limits in bounds), rehash detection when the limits change,
 * random tokens and the constant-time compare. Small limits keep it fast;
 * one case hashes with the interactive defaults to pin the stored shape.
 */
#include "common/err.h"
#include "common/password.h"

#include "tests/check_run.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define OPS 1
#define MEM 64 /* KiB */

static void setup(void)
{
    ck_assert_int_eq(ons_password_init(), 0);
}

START_TEST(hash_shape_and_verify)
{
    char h1[ONS_PASSWORD_HASH_MAX], h2[ONS_PASSWORD_HASH_MAX];
    ck_assert_int_eq(ons_password_hash("hunter22", 8, OPS, MEM, h1), 0);
    ck_assert_int_eq(ons_password_hash("hunter22", 8, OPS, MEM, h2), 0);
    ck_assert_msg(strncmp(h1, "$argon2id$v=19$m=64,t=1,p=1$", 28) == 0, "%s", h1);
    ck_assert_str_ne(h1, h2); /* a fresh salt each time */
    ck_assert_int_eq(ons_password_verify(h1, "hunter22", 8), 1);
    ck_assert_int_eq(ons_password_verify(h2, "hunter22", 8), 1);
    ck_assert_int_eq(ons_password_verify(h1, "hunter23", 8), 0);
    ck_assert_int_eq(ons_password_verify(h1, "hunter2", 7), 0);
    ck_assert_int_eq(ons_password_verify(h1, "hunter222", 9), 0);
}
END_TEST

START_TEST(length_not_nul_terminates)
{
    /* The length counts, not a NUL: embedded zero bytes are part of it. */
    char h[ONS_PASSWORD_HASH_MAX];
    ck_assert_int_eq(ons_password_hash("ab\0cd", 5, OPS, MEM, h), 0);
    ck_assert_int_eq(ons_password_verify(h, "ab\0cd", 5), 1);
    ck_assert_int_eq(ons_password_verify(h, "ab", 2), 0);
}
END_TEST

START_TEST(defaults_are_interactive)
{
    ck_assert_int_eq(ons_password_default_ops(), 2);
    ck_assert_int_eq(ons_password_default_mem_kib(), 65536);
    char h[ONS_PASSWORD_HASH_MAX];
    ck_assert_int_eq(ons_password_hash("correct horse", 13, ons_password_default_ops(),
                                       ons_password_default_mem_kib(), h),
                     0);
    ck_assert_msg(strncmp(h, "$argon2id$v=19$m=65536,t=2,p=1$", 31) == 0, "%s", h);
}
END_TEST

START_TEST(limits_out_of_bounds)
{
    char h[ONS_PASSWORD_HASH_MAX];
    ck_assert_int_eq(ons_password_hash("password", 8, 0, MEM, h), ONS_EINVAL);
    ck_assert_int_eq(ons_password_hash("password", 8, ONS_PASSWORD_OPS_MAX + 1, MEM, h),
                     ONS_EINVAL);
    ck_assert_int_eq(ons_password_hash("password", 8, OPS, ONS_PASSWORD_MEM_KIB_MIN - 1, h),
                     ONS_EINVAL);
    ck_assert_int_eq(ons_password_hash("password", 8, OPS, ONS_PASSWORD_MEM_KIB_MAX + 1, h),
                     ONS_EINVAL);
    ck_assert_str_eq(h, "");
}
END_TEST

START_TEST(rehash_when_limits_change)
{
    char h[ONS_PASSWORD_HASH_MAX];
    ck_assert_int_eq(ons_password_hash("password", 8, OPS, MEM, h), 0);
    ck_assert_int_eq(ons_password_needs_rehash(h, OPS, MEM), 0);
    ck_assert_int_eq(ons_password_needs_rehash(h, OPS + 1, MEM), 1);
    ck_assert_int_eq(ons_password_needs_rehash(h, OPS, MEM * 2), 1);
    /* Not argon2id (argon2i, garbage): hash again. */
    ck_assert_int_eq(
        ons_password_needs_rehash("$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g", OPS, MEM),
        1);
    ck_assert_int_eq(ons_password_needs_rehash("plain", OPS, MEM), 1);
    ck_assert_int_eq(ons_password_verify("plain", "plain", 5), 0);
    ck_assert_int_eq(ons_password_verify("", "", 0), 0);
}
END_TEST

START_TEST(random_tokens)
{
    char a[ONS_B64URL_LEN(32) + 1], b[ONS_B64URL_LEN(32) + 1];
    ons_random_token(32, a, sizeof a);
    ons_random_token(32, b, sizeof b);
    ck_assert_uint_eq(strlen(a), 43);
    ck_assert_str_ne(a, b);
    for (const char *p = a; *p; p++)
        ck_assert_msg((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                          (*p >= '0' && *p <= '9') || *p == '-' || *p == '_',
                      "char %c", *p);
    char s[ONS_B64URL_LEN(16) + 1];
    ons_random_token(16, s, sizeof s);
    ck_assert_uint_eq(strlen(s), 22);
    ons_random_token(16, s, 10); /* too small: empty, no overflow */
    ck_assert_str_eq(s, "");
}
END_TEST

START_TEST(secure_equal)
{
    ck_assert_int_eq(ons_secure_equal("abcdef", "abcdef", 6), 1);
    ck_assert_int_eq(ons_secure_equal("abcdef", "abcdeg", 6), 0);
    ck_assert_int_eq(ons_secure_equal("xbcdef", "abcdef", 6), 0);
    ck_assert_int_eq(ons_secure_equal("abcdef", "abcxyz", 3), 1);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"hash_shape_and_verify", hash_shape_and_verify},
        {"length_not_nul", length_not_nul_terminates},
        {"defaults_are_interactive", defaults_are_interactive},
        {"limits_out_of_bounds", limits_out_of_bounds},
        {"rehash_when_limits_change", rehash_when_limits_change},
        {"random_tokens", random_tokens},
        {"secure_equal", secure_equal},
    };
    return ons_check_run_fixture("password", cases, sizeof cases / sizeof *cases, 60, setup, NULL);
}
