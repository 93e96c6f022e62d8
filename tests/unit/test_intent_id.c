/* test_intent_id.c - public ids: round trip, ownership, forgery, shape. */
#include "common/err.h"
#include "queue/intent_id.h"

#include "tests/check_run.h"

#include <check.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

static const char *secret = "test-secret-0123456789";

START_TEST(roundtrip_and_layout)
{
    int64_t seq = q_seq_make(3, 123456789);
    ck_assert_int_eq(q_seq_partition(seq), 3);
    ck_assert_int_eq(q_seq_offset(seq), 123456789);
    char id[Q_ID_LEN + 1];
    ck_assert_int_eq(q_id_encode(secret, Q_ID_INTENT, seq, 77, id), 0);
    ck_assert_uint_eq(strlen(id), Q_ID_LEN);
    ck_assert_int_eq(strncmp(id, "00000300075bcd15", 16), 0); /* hex16(seq) */
    int64_t back = -1;
    ck_assert_int_eq(q_id_decode(secret, Q_ID_INTENT, id, 77, &back), 0);
    ck_assert_int_eq(back, seq);
}
END_TEST

/* The tag is the first 8 bytes of HMAC-SHA256(secret, "<kind>:<seq>:<user>")
 * (docs/pipeline.md), checked against OpenSSL's one-shot HMAC, also when
 * the secret changes between calls on one thread. */
START_TEST(tag_is_hmac_sha256)
{
    const char *secrets[] = {secret, "another-secret-abcdefghijkl", secret};
    for (int k = 0; k < 3; k++) {
        for (int64_t i = 0; i < 50; i++) {
            int64_t seq = q_seq_make((int32_t)(i % 7), i * 1000003), user = 1 + i * 97;
            char id[Q_ID_LEN + 1], msg[96], want[17];
            ck_assert_int_eq(
                q_id_encode(secrets[k], i % 2 ? Q_ID_RESERVATION : Q_ID_INTENT, seq, user, id), 0);
            int n = snprintf(msg, sizeof msg, "%s:%lld:%lld", i % 2 ? "reservation" : "intent",
                             (long long)seq, (long long)user);
            unsigned char mac[EVP_MAX_MD_SIZE];
            unsigned maclen = 0;
            ck_assert_ptr_nonnull(HMAC(EVP_sha256(), secrets[k], (int)strlen(secrets[k]),
                                       (const unsigned char *)msg, (size_t)n, mac, &maclen));
            for (int b = 0; b < 8; b++)
                snprintf(want + 2 * b, 3, "%02x", mac[b]);
            ck_assert_str_eq(id + 16, want);
        }
    }
}
END_TEST

/* The extremes of seq and user, every kind: the id is hex16(seq) and the
 * tag of "<kind>:<seq>:<user>" in decimal, as snprintf writes them. */
START_TEST(extreme_values_as_snprintf_writes_them)
{
    static const char *kinds[] = {"intent", "reservation", "order"};
    const int64_t seqs[] = {0, 1, 9, 10, 255, 256, INT64_C(999999999999), INT64_MAX - 1, INT64_MAX};
    const int64_t users[] = {1, 10, 1234567890123, INT64_MAX};
    for (int k = 0; k < 3; k++)
        for (size_t s = 0; s < sizeof seqs / sizeof *seqs; s++)
            for (size_t u = 0; u < sizeof users / sizeof *users; u++) {
                char id[Q_ID_LEN + 1], msg[96], want[Q_ID_LEN + 1];
                ck_assert_int_eq(q_id_encode(secret, (enum q_id_kind)k, seqs[s], users[u], id), 0);
                int n = snprintf(msg, sizeof msg, "%s:%lld:%lld", kinds[k], (long long)seqs[s],
                                 (long long)users[u]);
                unsigned char mac[EVP_MAX_MD_SIZE];
                unsigned maclen = 0;
                ck_assert_ptr_nonnull(HMAC(EVP_sha256(), secret, (int)strlen(secret),
                                           (const unsigned char *)msg, (size_t)n, mac, &maclen));
                int w = snprintf(want, sizeof want, "%016llx", (unsigned long long)seqs[s]);
                for (int b = 0; b < 8; b++)
                    w += snprintf(want + w, sizeof want - (size_t)w, "%02x", mac[b]);
                ck_assert_str_eq(id, want);
                int64_t back = -1;
                ck_assert_int_eq(q_id_decode(secret, (enum q_id_kind)k, id, users[u], &back), 0);
                ck_assert_int_eq(back, seqs[s]);
            }
}
END_TEST

START_TEST(other_owner_kind_or_secret_is_not_found)
{
    char id[Q_ID_LEN + 1];
    int64_t seq = q_seq_make(0, 5), out;
    ck_assert_int_eq(q_id_encode(secret, Q_ID_INTENT, seq, 1, id), 0);
    ck_assert_int_eq(q_id_decode(secret, Q_ID_INTENT, id, 2, &out), ONS_ENOTFOUND);
    ck_assert_int_eq(q_id_decode(secret, Q_ID_RESERVATION, id, 1, &out), ONS_ENOTFOUND);
    ck_assert_int_eq(q_id_decode("another-secret-xxxxxxx", Q_ID_INTENT, id, 1, &out),
                     ONS_ENOTFOUND);
    /* flipping one hex digit of the sequence breaks the tag */
    id[15] = id[15] == '0' ? '1' : '0';
    ck_assert_int_eq(q_id_decode(secret, Q_ID_INTENT, id, 1, &out), ONS_ENOTFOUND);
}
END_TEST

START_TEST(bad_shapes_are_parse_errors)
{
    int64_t out;
    const char *bad[] = {"",
                         "abc",
                         "0000030000075bcdZZZZZZZZZZZZZZZZ",
                         "0000030000075BCD0000000000000000",
                         "0000030000075bcd00000000000000001",
                         "../../etc/passwd0000000000000000"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(q_id_decode(secret, Q_ID_INTENT, bad[i], 1, &out) == ONS_EPARSE, "%s",
                      bad[i]);
    char id[Q_ID_LEN + 1];
    ck_assert_int_eq(q_id_encode(secret, Q_ID_INTENT, -1, 1, id), ONS_EINVAL);
    ck_assert_int_eq(q_id_encode(secret, Q_ID_INTENT, 1, 0, id), ONS_EINVAL);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"roundtrip_and_layout", roundtrip_and_layout},
        {"tag_is_hmac_sha256", tag_is_hmac_sha256},
        {"extreme_values_as_snprintf_writes_them", extreme_values_as_snprintf_writes_them},
        {"other_owner_kind_or_secret_is_not_found", other_owner_kind_or_secret_is_not_found},
        {"bad_shapes_are_parse_errors", bad_shapes_are_parse_errors},
    };
    return ons_check_run("intent_id", cases, sizeof cases / sizeof *cases, 60);
}
