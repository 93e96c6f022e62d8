/* recycle.c - per-thread recycling of fixed-size blocks; see recycle.h. */
#include "common/recycle.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define RECYCLE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RECYCLE_ASAN 1
#endif
#endif
#ifdef RECYCLE_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

typedef struct home home;

/* In front of every block, never poisoned: its home and, while it waits,
 * the next waiting block. 16 bytes keep the user bytes aligned as
 * malloc's. */
typedef struct header {
    home *home;
    struct header *next;
} header;
_Static_assert(sizeof(header) % 16 == 0, "the user bytes stay aligned as malloc's");

/* One thread's cache of one kind. */
struct home {
    _Atomic(header *) returned; /* freed by any thread; emptied by the owner only */
    header *local;              /* the owner's, no atomics */
    size_t owned;               /* blocks malloc'ed by this home and not given back */
    ons_recycle_kind kind;
    home *all_next;
};

static atomic_size_t kind_size[ONS_RECYCLE_NKINDS];
static atomic_size_t keep_max = ONS_RECYCLE_KEEP;
static _Thread_local home *mine[ONS_RECYCLE_NKINDS];
/* Every home ever made, so none is lost when its thread ends (its blocks
 * may still come back to it): they stay reachable, and are never freed. */
static home *all_homes;
static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;

static home *home_of_thread(ons_recycle_kind kind)
{
    if (mine[kind])
        return mine[kind];
    home *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    atomic_init(&h->returned, NULL);
    h->kind = kind;
    pthread_mutex_lock(&all_lock);
    h->all_next = all_homes;
    all_homes = h;
    pthread_mutex_unlock(&all_lock);
    return mine[kind] = h;
}

void ons_recycle_set_keep(size_t blocks)
{
    atomic_store_explicit(&keep_max, blocks, memory_order_relaxed);
}

/* The owner takes everything returned so far (its local list is empty)
 * and keeps keep_max of them; the rest go back to malloc. The bound is on
 * the blocks waiting, not on those handed out: a thread with more than
 * the bound in flight at a peak still recycles. */
static void take_returned(home *h)
{
    size_t keep = atomic_load_explicit(&keep_max, memory_order_relaxed);
    header *list = atomic_exchange_explicit(&h->returned, NULL, memory_order_acquire);
    header **tail = &list;
    for (size_t n = 0; *tail && n < keep; n++)
        tail = &(*tail)->next;
    header *extra = *tail;
    *tail = NULL;
    while (extra) {
        header *next = extra->next;
        free(extra);
        h->owned--;
        extra = next;
    }
    h->local = list;
}

void *ons_recycle_alloc(ons_recycle_kind kind, size_t size)
{
    /* the same value from every thread */
    if (atomic_load_explicit(&kind_size[kind], memory_order_relaxed) != size)
        atomic_store_explicit(&kind_size[kind], size, memory_order_relaxed);
    home *h = home_of_thread(kind);
    if (!h)
        return NULL;
    if (!h->local)
        take_returned(h);
    header *b = h->local;
    if (b) {
        h->local = b->next;
        UNPOISON(b + 1, size);
        return b + 1;
    }
    b = malloc(sizeof *b + size);
    if (!b)
        return NULL;
    b->home = h;
    h->owned++;
    return b + 1;
}

void ons_recycle_free(void *p)
{
    if (!p)
        return;
    header *b = (header *)p - 1;
    home *h = b->home;
#ifdef RECYCLE_ASAN
    /* A waiting block is poisoned: freeing it again would push it twice
     * (handed out to two holders), where free() would have been reported. */
    if (__asan_address_is_poisoned(p)) {
        fprintf(stderr, "recycle: block %p freed twice\n", p);
        abort();
    }
#endif
    /* Poisoned before it is pushed: once pushed it is its owner's. */
    POISON(p, atomic_load_explicit(&kind_size[h->kind], memory_order_relaxed));
    header *old = atomic_load_explicit(&h->returned, memory_order_relaxed);
    do
        b->next = old;
    while (!atomic_compare_exchange_weak_explicit(&h->returned, &old, b, memory_order_release,
                                                  memory_order_relaxed));
}

size_t ons_recycle_owned(ons_recycle_kind kind)
{
    return mine[kind] ? mine[kind]->owned : 0;
}

int ons_recycle_poisoned(const void *p)
{
#ifdef RECYCLE_ASAN
    return __asan_address_is_poisoned(p);
#else
    (void)p;
    return 0;
#endif
}
