/* heap.c - binary min-heap of fixed-size values; see heap.h. */
#include "common/heap.h"
#include "common/err.h"

#include <stdlib.h>
#include <string.h>

int ons_heap_init(ons_heap *h, size_t size, size_t cap, size_t max,
                  int (*before)(const void *a, const void *b),
                  void (*moved)(void *ctx, void *elem, size_t pos), void *ctx)
{
    *h = (ons_heap){.size = size, .max = max, .before = before, .moved = moved, .ctx = ctx};
    if (size == 0 || size > ONS_HEAP_ELEM_MAX)
        return ONS_EINVAL;
    if (cap) {
        h->v = malloc(cap * size);
        if (!h->v)
            return ONS_ENOMEM;
        h->cap = cap;
    }
    return 0;
}

void ons_heap_fini(ons_heap *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

static void *at(ons_heap *h, size_t i)
{
    return h->v + i * h->size;
}

/* Writes elem at i and tells the caller. */
static void place(ons_heap *h, size_t i, const void *elem)
{
    memcpy(at(h, i), elem, h->size);
    if (h->moved)
        h->moved(h->ctx, at(h, i), i);
}

/* Moves the hole at i up to where elem belongs and puts it there. */
static void sift_up(ons_heap *h, size_t i, const void *elem)
{
    while (i > 0 && h->before(elem, at(h, (i - 1) / 2))) {
        place(h, i, at(h, (i - 1) / 2));
        i = (i - 1) / 2;
    }
    place(h, i, elem);
}

/* Moves the hole at i down to where elem belongs and puts it there. */
static void sift_down(ons_heap *h, size_t i, const void *elem)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = l;
        if (l >= h->n)
            break;
        if (r < h->n && h->before(at(h, r), at(h, l)))
            m = r;
        if (!h->before(at(h, m), elem))
            break;
        place(h, i, at(h, m));
        i = m;
    }
    place(h, i, elem);
}

int ons_heap_push(ons_heap *h, const void *elem)
{
    if (h->max && h->n >= h->max)
        return ONS_EFULL;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        if (h->max && cap > h->max)
            cap = h->max;
        unsigned char *v = realloc(h->v, cap * h->size);
        if (!v)
            return ONS_ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    sift_up(h, h->n++, elem);
    return 0;
}

void ons_heap_fix(ons_heap *h, size_t pos)
{
    unsigned char e[ONS_HEAP_ELEM_MAX];
    memcpy(e, at(h, pos), h->size);
    if (pos > 0 && h->before(e, at(h, (pos - 1) / 2)))
        sift_up(h, pos, e);
    else
        sift_down(h, pos, e);
}

void ons_heap_remove(ons_heap *h, size_t pos, void *out)
{
    unsigned char e[ONS_HEAP_ELEM_MAX];
    memcpy(e, at(h, pos), h->size);
    if (h->moved)
        h->moved(h->ctx, e, ONS_HEAP_NONE);
    if (out)
        memcpy(out, e, h->size);
    if (--h->n == pos)
        return;
    /* The last element fills the hole, then finds its place. */
    memcpy(e, at(h, h->n), h->size);
    if (pos > 0 && h->before(e, at(h, (pos - 1) / 2)))
        sift_up(h, pos, e);
    else
        sift_down(h, pos, e);
}

void ons_heap_clear(ons_heap *h)
{
    for (size_t i = 0; h->moved && i < h->n; i++)
        h->moved(h->ctx, at(h, i), ONS_HEAP_NONE);
    h->n = 0;
}
