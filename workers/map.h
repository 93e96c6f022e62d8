/*
 * map.h - an open-addressing hash map from int64 keys to pointers.
 *
 * The worker keeps every lookup of its hot path in these maps: active intents
 * by intent_seq, a user's active intent per event, events by id, and the
 * per-batch coalescing of effects. Linear probing with backward-shift
 * deletion, so no tombstones accumulate. Not thread-safe: one owner thread.
 */
#ifndef ONSALE_WORKERS_MAP_H
#define ONSALE_WORKERS_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct wk_map_slot {
    int64_t key;
    void *val; /* NULL marks an empty slot, so values are never NULL */
} wk_map_slot;

typedef struct wk_map {
    wk_map_slot *slots;
    size_t cap; /* power of two, or 0 before the first insert */
    size_t len;
} wk_map;

/* An empty map needs no allocation: zero-initialise or call wk_map_init. */
void wk_map_init(wk_map *m);
void wk_map_fini(wk_map *m);

/* Removes every entry, keeping the allocation. */
void wk_map_clear(wk_map *m);

/* Returns the value for key, or NULL. */
void *wk_map_get(const wk_map *m, int64_t key);

/* Inserts or replaces. val must not be NULL. Returns 0 or ONS_ENOMEM. */
int wk_map_put(wk_map *m, int64_t key, void *val);

/* Removes key; returns its value or NULL when absent. */
void *wk_map_del(wk_map *m, int64_t key);

/* Iteration: for (size_t i = 0; i < m->cap; i++) if (m->slots[i].val) ... */

/* A snapshot of the values of m for which keep(val, ctx) holds, to walk
 * while the map changes: a new array (the caller frees it) with their count
 * in *n, or NULL when memory runs out. */
void **wk_map_values(const wk_map *m, int (*keep)(const void *val, const void *ctx),
                     const void *ctx, size_t *n);

#endif
