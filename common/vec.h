/*
 * vec.h - the grow-by-doubling idiom, once: a caller's array (pointer,
 * element count kept by the caller, capacity) gets room for at least need
 * elements, its capacity doubling from first.
 *
 *     if (ONS_VEC_RESERVE(ev->pre, ev->cap_pre, ev->npre + 1, 64))
 *         return ONS_ENOMEM;
 *     ev->pre[ev->npre++] = in;
 *
 * On failure the array and its capacity are unchanged (and still the
 * caller's). cap must be a size_t lvalue; arr a pointer lvalue.
 */
#ifndef ONSALE_COMMON_VEC_H
#define ONSALE_COMMON_VEC_H

#include "common/err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Returns 0 with room for need elements of size bytes in the array whose
 * pointer is at *arrp, or ONS_ENOMEM. Through ONS_VEC_RESERVE. */
static inline int ons_vec_reserve(void *arrp, size_t *cap, size_t need, size_t size, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : (first ? first : 1);
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return ONS_ENOMEM;
        ncap *= 2;
    }
    if (ncap > SIZE_MAX / size)
        return ONS_ENOMEM;
    void *old;
    memcpy(&old, arrp, sizeof old); /* any object pointer, without a cast through void ** */
    void *n = realloc(old, ncap * size);
    if (!n)
        return ONS_ENOMEM;
    memcpy(arrp, &n, sizeof n);
    *cap = ncap;
    return 0;
}

#define ONS_VEC_RESERVE(arr, cap, need, first)                                                     \
    ons_vec_reserve(&(arr), &(cap), (need), sizeof *(arr), (first))

#endif
