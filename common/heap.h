/*
 * heap.h - the one binary min-heap of Onsale: the worker's hold expiries,
 * the gateway simulator's delays and the load simulator's fan timers.
 *
 * Elements are values of a fixed size (at most ONS_HEAP_ELEM_MAX bytes,
 * e.g. a pointer or a small struct) ordered by the caller's before(); ties
 * come out in no particular order, so a caller that wants first-in
 * first-out puts a sequence number in the element. When moved is set it
 * is told every element's new position (and ONS_HEAP_NONE when one
 * leaves), so the caller can keep an index to update or remove it later.
 *
 * Not thread-safe: the caller serialises access.
 */
#ifndef ONSALE_COMMON_HEAP_H
#define ONSALE_COMMON_HEAP_H

#include <stddef.h>

#define ONS_HEAP_ELEM_MAX 64
#define ONS_HEAP_NONE     ((size_t)-1)

typedef struct ons_heap {
    unsigned char *v; /* n elements of size bytes; room for cap */
    size_t size, n, cap;
    size_t max; /* most elements held; 0: no bound but memory */
    int (*before)(const void *a, const void *b);
    void (*moved)(void *ctx, void *elem, size_t pos); /* may be NULL */
    void *ctx;
} ons_heap;

/* An empty heap of size-byte elements holding at most max (0: unbounded),
 * with room for cap reserved now (0: none yet). Returns 0, ONS_EINVAL
 * (size 0 or over ONS_HEAP_ELEM_MAX) or ONS_ENOMEM. */
int ons_heap_init(ons_heap *h, size_t size, size_t cap, size_t max,
                  int (*before)(const void *a, const void *b),
                  void (*moved)(void *ctx, void *elem, size_t pos), void *ctx);
/* Frees the elements' storage (not what they point to). */
void ons_heap_fini(ons_heap *h);

/* Elements held. */
static inline size_t ons_heap_count(const ons_heap *h)
{
    return h->n;
}
/* The element at pos (0 is the least), or NULL past the end. Valid until
 * the heap changes. */
static inline void *ons_heap_at(const ons_heap *h, size_t pos)
{
    return pos < h->n ? h->v + pos * h->size : NULL;
}

/* Adds a copy of elem. Returns 0, ONS_EFULL (max reached) or ONS_ENOMEM. */
int ons_heap_push(ons_heap *h, const void *elem);
/* Removes the element at pos (0: the least), copying it to out when out is
 * not NULL. pos < count. */
void ons_heap_remove(ons_heap *h, size_t pos, void *out);
/* Restores the order after the element at pos changed its key. */
void ons_heap_fix(ons_heap *h, size_t pos);
/* Removes every element (moved is told each one leaves). */
void ons_heap_clear(ons_heap *h);

#endif
