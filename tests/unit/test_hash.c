/* test_hash.c - common/hash.c: the hash behind the token cache and the
 * ETags sees every byte, the tail past the last whole word and the length,
 * and an ETag is a quoted strong tag of 16 hex digits. */
#include "tests/check_run.h"
#include "common/hash.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

START_TEST(etag_is_quoted_hex_and_stable)
{
    char a[ONS_ETAG_SIZE], b[ONS_ETAG_SIZE];
    ons_etag("{\"id\":1}", 8, a);
    ons_etag("{\"id\":1}", 8, b);
    ck_assert_str_eq(a, b);
    ck_assert_uint_eq(strlen(a), 18);
    ck_assert_int_eq(a[0], '"');
    ck_assert_int_eq(a[17], '"');
    ck_assert_uint_eq(strspn(a + 1, "0123456789abcdef"), 16);
    ons_etag("{\"id\":2}", 8, b);
    ck_assert_str_ne(a, b);
}
END_TEST

/* Every single-bit change of a catalog-page-sized body, at every length
 * around the word size, changes the hash. */
START_TEST(every_bit_counts)
{
    enum { N = 6000 };
    unsigned char *buf = malloc(N);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < N; i++)
        buf[i] = (unsigned char)(i * 131 + 7);
    size_t lens[] = {1, 7, 8, 9, 15, 16, 17, N - 1, N};
    for (size_t l = 0; l < sizeof lens / sizeof *lens; l++) {
        size_t len = lens[l];
        uint64_t h = ons_hash64(42, buf, len);
        for (size_t i = 0; i < len; i++)
            for (int bit = 0; bit < 8; bit++) {
                buf[i] ^= (unsigned char)(1u << bit);
                ck_assert_msg(ons_hash64(42, buf, len) != h, "len %zu byte %zu bit %d", len, i,
                              bit);
                buf[i] ^= (unsigned char)(1u << bit);
            }
    }
    free(buf);
}
END_TEST

/* Trailing zero bytes are not padding: the length is hashed too. The seed
 * changes everything (a cache seeded per process). */
START_TEST(length_and_seed_count)
{
    const char z[16] = {0};
    for (size_t a = 0; a < sizeof z; a++)
        for (size_t b = a + 1; b <= sizeof z; b++)
            ck_assert(ons_hash64(0, z, a) != ons_hash64(0, z, b));
    ck_assert(ons_hash64(1, "token", 5) != ons_hash64(2, "token", 5));
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"etag_is_quoted_hex_and_stable", etag_is_quoted_hex_and_stable},
        {"every_bit_counts", every_bit_counts},
        {"length_and_seed_count", length_and_seed_count},
    };
    return ons_check_run("hash", cases, sizeof cases / sizeof *cases, 60);
}
