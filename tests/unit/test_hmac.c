/* test_hmac.c - common/hmac.h: the known answers of RFC 4231, and the same
 * answers while one thread cycles through more secrets than it keeps keyed
 * contexts for (the least recently used one is replaced, never mixed up). */
#include "common/hmac.h"
#include "tests/check_run.h"

#include <check.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

static void hex(const unsigned char *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

START_TEST(rfc4231_case_2)
{
    unsigned char mac[32];
    char h[65];
    const char *data = "what do ya want for nothing?";
    ck_assert_int_eq(ons_hmac_sha256("Jefe", data, strlen(data), mac), 0);
    hex(mac, 32, h);
    ck_assert_str_eq(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* again: the prepared key is reused, the answer is the same */
    ck_assert_int_eq(ons_hmac_sha256("Jefe", data, strlen(data), mac), 0);
    hex(mac, 32, h);
    ck_assert_str_eq(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}
END_TEST

/* Secrets that share prefixes, cycled past ONS_HMAC_KEYS, each checked
 * against the one-shot HMAC of OpenSSL. */
START_TEST(more_secrets_than_kept_contexts)
{
    char secrets[ONS_HMAC_KEYS * 2 + 1][16];
    for (int i = 0; i < ONS_HMAC_KEYS * 2 + 1; i++)
        snprintf(secrets[i], sizeof secrets[i], "secret-%d", i);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < ONS_HMAC_KEYS * 2 + 1; i++) {
            char msg[32];
            int len = snprintf(msg, sizeof msg, "intent:%d:%d", round, i);
            unsigned char got[32], want[32];
            unsigned int want_len = 0;
            ck_assert_int_eq(ons_hmac_sha256(secrets[i], msg, (size_t)len, got), 0);
            ck_assert_ptr_nonnull(HMAC(EVP_sha256(), secrets[i], (int)strlen(secrets[i]),
                                       (const unsigned char *)msg, (size_t)len, want, &want_len));
            ck_assert_uint_eq(want_len, 32);
            ck_assert_mem_eq(got, want, 32);
        }
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"rfc4231_case_2", rfc4231_case_2},
        {"more_secrets_than_kept_contexts", more_secrets_than_kept_contexts},
    };
    return ons_check_run("hmac", cases, sizeof cases / sizeof *cases, 30);
}
