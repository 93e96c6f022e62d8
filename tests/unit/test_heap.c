/* test_heap.c - the binary min-heap (common/heap.h): order against a sort
 * over random keys, ties broken by the caller's sequence, positions kept
 * for the caller through moved(), remove and fix at any position, the
 * bound (ONS_EFULL), clear, and element size limits. */
#include "common/err.h"
#include "common/heap.h"

#include "tests/check_run.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct item {
    int64_t key;
    uint32_t id;
} item;

#define N 2000

static long pos_of[N]; /* id -> position, -1 outside */

static int before(const void *a, const void *b)
{
    const item *x = a, *y = b;
    return x->key != y->key ? x->key < y->key : x->id < y->id;
}

static void moved(void *ctx, void *elem, size_t pos)
{
    ck_assert_ptr_eq(ctx, pos_of);
    pos_of[((item *)elem)->id] = pos == ONS_HEAP_NONE ? -1 : (long)pos;
}

/* Every element sits where moved() said, and no child comes before its parent. */
static void check_heap(const ons_heap *h)
{
    for (size_t i = 0; i < ons_heap_count(h); i++) {
        const item *e = ons_heap_at(h, i);
        ck_assert_int_eq(pos_of[e->id], (long)i);
        if (i > 0)
            ck_assert(!before(e, ons_heap_at(h, (i - 1) / 2)));
    }
}

static uint64_t rng = 88172645463325252ULL;
static int64_t next_key(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (int64_t)(rng % 500); /* many ties */
}

/* A heap of n items with ids 0..n-1 and random keys, cap reserved. */
static void fill(ons_heap *h, uint32_t n, size_t cap)
{
    ck_assert_int_eq(ons_heap_init(h, sizeof(item), cap, 0, before, moved, pos_of), 0);
    for (uint32_t i = 0; i < n; i++) {
        item e = {next_key(), i};
        ck_assert_int_eq(ons_heap_push(h, &e), 0);
    }
    ck_assert_uint_eq(ons_heap_count(h), n);
}

/* Pops everything, checking the order; returns how many came out. */
static size_t drain_in_order(ons_heap *h)
{
    item last = {INT64_MIN, 0};
    size_t n = 0;
    while (ons_heap_count(h)) {
        item e;
        ons_heap_remove(h, 0, &e);
        ck_assert(!before(&e, &last));
        ck_assert_int_eq(pos_of[e.id], -1);
        last = e;
        n++;
    }
    ck_assert_ptr_null(ons_heap_at(h, 0));
    return n;
}

START_TEST(pops_in_order_and_tracks_positions)
{
    ons_heap h;
    fill(&h, N, 0);
    check_heap(&h);
    ck_assert_uint_eq(drain_in_order(&h), N);
    ons_heap_fini(&h);
}
END_TEST

START_TEST(remove_and_fix_anywhere)
{
    ons_heap h;
    fill(&h, N, 16);
    /* Remove every third id by its position; move every fifth's key. */
    for (uint32_t i = 0; i < N; i += 3) {
        item e;
        ons_heap_remove(&h, (size_t)pos_of[i], &e);
        ck_assert_uint_eq(e.id, i);
        if (i % 64 == 0)
            check_heap(&h);
    }
    for (uint32_t i = 1; i < N; i += 5) {
        if (pos_of[i] < 0)
            continue;
        item *e = ons_heap_at(&h, (size_t)pos_of[i]);
        e->key = i % 2 ? -(int64_t)i : 1000 + (int64_t)i;
        ons_heap_fix(&h, (size_t)pos_of[i]);
        if (i % 64 == 1)
            check_heap(&h);
    }
    check_heap(&h);
    for (uint32_t i = 0; i < N; i += 3)
        ck_assert_int_eq(pos_of[i], -1);
    ck_assert_uint_eq(drain_in_order(&h), N - (N + 2) / 3);
    ons_heap_fini(&h);
}
END_TEST

static int int_before(const void *a, const void *b)
{
    return *(const int *)a < *(const int *)b;
}

START_TEST(bound_clear_and_sizes)
{
    ons_heap h;
    ck_assert_int_eq(ons_heap_init(&h, 0, 0, 0, int_before, NULL, NULL), ONS_EINVAL);
    ck_assert_int_eq(ons_heap_init(&h, ONS_HEAP_ELEM_MAX + 1, 0, 0, int_before, NULL, NULL),
                     ONS_EINVAL);
    ck_assert_int_eq(ons_heap_init(&h, sizeof(int), 0, 3, int_before, NULL, NULL), 0);
    int v[] = {5, 1, 3, 0};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(ons_heap_push(&h, &v[i]), 0);
    ck_assert_int_eq(ons_heap_push(&h, &v[3]), ONS_EFULL);
    ck_assert_int_eq(*(int *)ons_heap_at(&h, 0), 1);
    ck_assert_uint_le(h.cap, 3);
    ons_heap_clear(&h);
    ck_assert_uint_eq(ons_heap_count(&h), 0);
    ck_assert_int_eq(ons_heap_push(&h, &v[3]), 0);
    ck_assert_int_eq(*(int *)ons_heap_at(&h, 0), 0);
    ons_heap_fini(&h);

    /* clear tells moved() every element left. */
    fill(&h, 10, 0);
    ons_heap_clear(&h);
    for (uint32_t i = 0; i < 10; i++)
        ck_assert_int_eq(pos_of[i], -1);
    ons_heap_fini(&h);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"order", pops_in_order_and_tracks_positions},
        {"remove_fix", remove_and_fix_anywhere},
        {"bound_clear_sizes", bound_clear_and_sizes},
    };
    return ons_check_run("heap", cases, sizeof cases / sizeof *cases, 30);
}
