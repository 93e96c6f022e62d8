/* test_recycle.c - per-thread recycling (common/recycle.h): a block freed
 * on another thread comes back to its allocating thread, never to two
 * holders at once under concurrent frees, the keep bound gives memory
 * back, and (under AddressSanitizer) a block waiting is poisoned. */
#include "common/recycle.h"

#include "tests/check_run.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { SIZE = 1032 };

static void *free_all(void *arg)
{
    void **v = arg;
    for (size_t i = 0; v[i]; i++)
        ons_recycle_free(v[i]);
    return NULL;
}

START_TEST(a_block_freed_elsewhere_comes_back_to_its_thread)
{
    void *v[9] = {0}, *w[8];
    for (int i = 0; i < 8; i++) {
        v[i] = ons_recycle_alloc(ONS_RECYCLE_ING_REQ, SIZE);
        ck_assert_ptr_nonnull(v[i]);
        memset(v[i], 0xab, SIZE);
    }
    size_t owned = ons_recycle_owned(ONS_RECYCLE_ING_REQ);
    ck_assert_uint_ge(owned, 8);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, free_all, v), 0);
    pthread_join(t, NULL);
    /* The same 8 blocks again, no new memory from malloc. */
    for (int i = 0; i < 8; i++) {
        void *p = ons_recycle_alloc(ONS_RECYCLE_ING_REQ, SIZE);
        int found = 0;
        for (int k = 0; k < 8; k++)
            found |= p == v[k];
        ck_assert(found);
        memset(p, 0, SIZE);
        w[i] = p;
    }
    ck_assert_uint_eq(ons_recycle_owned(ONS_RECYCLE_ING_REQ), owned);
    /* The control: nothing freed, so the next one is new memory. */
    void *fresh = ons_recycle_alloc(ONS_RECYCLE_ING_REQ, SIZE);
    for (int k = 0; k < 8; k++)
        ck_assert_ptr_ne(fresh, v[k]);
    ck_assert_uint_eq(ons_recycle_owned(ONS_RECYCLE_ING_REQ), owned + 1);
    ons_recycle_free(fresh);
    ons_recycle_free(NULL);
    for (int i = 0; i < 8; i++)
        ons_recycle_free(w[i]);
}
END_TEST

/* Many threads free blocks of one allocating thread while it allocates:
 * each block handed out is marked held (p[2] = 1) until its freer clears
 * the mark just before freeing it; a block handed out while still marked
 * would be held twice. (Control, run by hand: with take_returned reading
 * the returned list without emptying it, this case counts blocks handed
 * out twice.) */
enum { FREERS = 4, ROUNDS = 20000 };

typedef struct ring {
    _Atomic(uint64_t *) slot[64];
    _Atomic int done;
} ring;

static void *freer(void *arg)
{
    ring *r = arg;
    unsigned seed = (unsigned)(uintptr_t)&seed;
    while (!atomic_load(&r->done)) {
        size_t i = (size_t)rand_r(&seed) % 64;
        uint64_t *p = atomic_exchange(&r->slot[i], NULL);
        if (!p)
            continue;
        p[2] = 0;
        ons_recycle_free(p);
    }
    return NULL;
}

START_TEST(concurrent_frees_never_hand_a_block_out_twice)
{
    static ring r;
    memset(&r, 0, sizeof r);
    pthread_t t[FREERS];
    for (int i = 0; i < FREERS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, freer, &r), 0);
    long twice = 0;
    size_t owned = ons_recycle_owned(ONS_RECYCLE_ING_JOIN);
    for (uint64_t n = 1; n <= ROUNDS; n++) {
        uint64_t *p = ons_recycle_alloc(ONS_RECYCLE_ING_JOIN, 728);
        ck_assert_ptr_nonnull(p);
        if (ons_recycle_owned(ONS_RECYCLE_ING_JOIN) != owned) {
            owned = ons_recycle_owned(ONS_RECYCLE_ING_JOIN); /* new from malloc */
            p[2] = 0;
        }
        twice += p[2] != 0;
        p[2] = 1;
        size_t i = n % 64;
        uint64_t *old = NULL;
        while (!atomic_compare_exchange_weak(&r.slot[i], &old, p))
            old = NULL;
    }
    atomic_store(&r.done, 1);
    for (int i = 0; i < FREERS; i++)
        pthread_join(t[i], NULL);
    for (size_t i = 0; i < 64; i++)
        ons_recycle_free(atomic_exchange(&r.slot[i], NULL));
    ck_assert_int_eq(twice, 0);
    /* reused: far fewer blocks than allocations */
    ck_assert_uint_lt(ons_recycle_owned(ONS_RECYCLE_ING_JOIN), ROUNDS / 4);
}
END_TEST

/* arg: the bound set (ons_recycle_set_keep), at most ONS_RECYCLE_KEEP. */
static void *keep_thread(void *arg)
{
    size_t keep = (size_t)(uintptr_t)arg;
    ons_recycle_set_keep(keep);
    enum { N = ONS_RECYCLE_KEEP + 500 };
    void **v = calloc(N + 1, sizeof *v);
    for (int i = 0; i < N; i++)
        v[i] = ons_recycle_alloc(ONS_RECYCLE_LATER_SINK, 64);
    size_t before = ons_recycle_owned(ONS_RECYCLE_LATER_SINK);
    pthread_t t;
    pthread_create(&t, NULL, free_all, v);
    pthread_join(t, NULL);
    /* the next allocation takes them back and gives the surplus to malloc */
    void *p = ons_recycle_alloc(ONS_RECYCLE_LATER_SINK, 64);
    size_t after = ons_recycle_owned(ONS_RECYCLE_LATER_SINK);
    ons_recycle_free(p);
    free(v);
    /* with a bound of 0 every block went back, and p is a new one */
    return (void *)(uintptr_t)(before == N && after == (keep ? keep : 1));
}

START_TEST(a_thread_keeps_at_most_the_bound)
{
    /* the default, a bound set lower, and none kept */
    const size_t bounds[] = {ONS_RECYCLE_KEEP, 100, 0};
    for (size_t i = 0; i < sizeof bounds / sizeof *bounds; i++) {
        pthread_t t;
        void *ok = NULL;
        ck_assert_int_eq(pthread_create(&t, NULL, keep_thread, (void *)(uintptr_t)bounds[i]), 0);
        pthread_join(t, &ok);
        ck_assert_msg(ok, "bound %zu", bounds[i]);
    }
    ons_recycle_set_keep(ONS_RECYCLE_KEEP);
}
END_TEST

/* 500 handed out, the first 200 freed on another thread while 300 stay
 * out: with a bound of 100 the owner keeps 100 of the 200 (the bound is on
 * the blocks waiting; counted on every block owned, it gave all 200 back
 * to malloc and owned 301 after the next allocation). */
static void *peak_thread(void *arg)
{
    (void)arg;
    ons_recycle_set_keep(100);
    enum { N = 500, FREED = 200 };
    void **v = calloc(N + 1, sizeof *v);
    for (int i = 0; i < N; i++)
        v[i] = ons_recycle_alloc(ONS_RECYCLE_ING_JOIN, 64);
    void *tail = v[FREED];
    v[FREED] = NULL; /* free_all stops there */
    pthread_t t;
    pthread_create(&t, NULL, free_all, v);
    pthread_join(t, NULL);
    v[FREED] = tail;
    void *p = ons_recycle_alloc(ONS_RECYCLE_ING_JOIN, 64);
    size_t owned = ons_recycle_owned(ONS_RECYCLE_ING_JOIN);
    ons_recycle_free(p);
    for (int i = FREED; i < N; i++)
        ons_recycle_free(v[i]);
    free(v);
    return (void *)(uintptr_t)(owned == N - FREED + 100);
}

START_TEST(a_thread_past_the_bound_in_flight_still_recycles)
{
    pthread_t t;
    void *ok = NULL;
    ck_assert_int_eq(pthread_create(&t, NULL, peak_thread, NULL), 0);
    pthread_join(t, &ok);
    ck_assert(ok);
    ons_recycle_set_keep(ONS_RECYCLE_KEEP);
}
END_TEST

START_TEST(a_waiting_block_is_poisoned_under_asan)
{
    char *p = ons_recycle_alloc(ONS_RECYCLE_ING_REQ, SIZE);
    ck_assert(!ons_recycle_poisoned(p) && !ons_recycle_poisoned(p + SIZE - 1));
    ons_recycle_free(p);
#if defined(__SANITIZE_ADDRESS__)
    ck_assert(ons_recycle_poisoned(p) && ons_recycle_poisoned(p + SIZE - 1));
#endif
    /* handed out again (this thread's own free comes back to it), then
     * unpoisoned */
    char *q = NULL;
    char *held[ONS_RECYCLE_KEEP];
    size_t n = 0;
    while (n < ONS_RECYCLE_KEEP && (q = ons_recycle_alloc(ONS_RECYCLE_ING_REQ, SIZE)) != p)
        held[n++] = q;
    ck_assert_ptr_eq(q, p);
    ck_assert(!ons_recycle_poisoned(q) && !ons_recycle_poisoned(q + SIZE - 1));
    for (size_t i = 0; i < n; i++)
        ons_recycle_free(held[i]);
    ons_recycle_free(q);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"a_block_freed_elsewhere_comes_back_to_its_thread",
         a_block_freed_elsewhere_comes_back_to_its_thread},
        {"concurrent_frees_never_hand_a_block_out_twice",
         concurrent_frees_never_hand_a_block_out_twice},
        {"a_thread_keeps_at_most_the_bound", a_thread_keeps_at_most_the_bound},
        {"a_thread_past_the_bound_in_flight_still_recycles",
         a_thread_past_the_bound_in_flight_still_recycles},
        {"a_waiting_block_is_poisoned_under_asan", a_waiting_block_is_poisoned_under_asan},
    };
    return ons_check_run("recycle", cases, sizeof cases / sizeof *cases, 30);
}
