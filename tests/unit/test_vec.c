/* test_vec.c - the grow-by-doubling helper (common/vec.h): the first
 * capacity, doubling past need in one call, no change when room is left,
 * an array left intact when the request cannot be met. */
#include "common/err.h"
#include "common/vec.h"

#include "tests/check_run.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct pair {
    int64_t a, b;
} pair;

START_TEST(grows_by_doubling_and_keeps_contents)
{
    pair *v = NULL;
    size_t n = 0, cap = 0;
    ck_assert_int_eq(ONS_VEC_RESERVE(v, cap, 1, 4), 0);
    ck_assert_uint_eq(cap, 4);
    for (int i = 0; i < 100; i++) {
        size_t before = cap;
        ck_assert_int_eq(ONS_VEC_RESERVE(v, cap, n + 1, 4), 0);
        ck_assert(cap == before || cap == 2 * before);
        v[n++] = (pair){i, -i};
    }
    ck_assert_uint_eq(cap, 128);
    for (int i = 0; i < 100; i++)
        ck_assert(v[i].a == i && v[i].b == -i);
    /* Room left: nothing moves. */
    pair *same = v;
    ck_assert_int_eq(ONS_VEC_RESERVE(v, cap, 128, 4), 0);
    ck_assert_ptr_eq(v, same);
    /* Far past: one call doubles as often as needed. */
    ck_assert_int_eq(ONS_VEC_RESERVE(v, cap, 1000, 4), 0);
    ck_assert_uint_eq(cap, 1024);
    ck_assert(v[99].a == 99);
    free(v);
}
END_TEST

START_TEST(refuses_what_cannot_fit)
{
    char *s = NULL;
    size_t cap = 0;
    ck_assert_int_eq(ONS_VEC_RESERVE(s, cap, 10, 0), 0); /* first 0: starts at 1 */
    ck_assert_uint_eq(cap, 16);
    s[0] = 'x';
    ck_assert_int_eq(ONS_VEC_RESERVE(s, cap, SIZE_MAX, 16), ONS_ENOMEM);
    ck_assert_uint_eq(cap, 16);
    ck_assert_int_eq(s[0], 'x');
    pair *p = NULL;
    size_t pcap = 0;
    ck_assert_int_eq(ONS_VEC_RESERVE(p, pcap, SIZE_MAX / 8, 16), ONS_ENOMEM); /* bytes overflow */
    ck_assert_ptr_null(p);
    ck_assert_uint_eq(pcap, 0);
    free(s);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"grows_by_doubling_and_keeps_contents", grows_by_doubling_and_keeps_contents},
        {"refuses_what_cannot_fit", refuses_what_cannot_fit},
    };
    return ons_check_run("vec", cases, sizeof cases / sizeof *cases, 30);
}
