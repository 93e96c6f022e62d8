/* map.c - int64 -> pointer hash map with linear probing; see map.h. */
#include "workers/map.h"
#include "common/err.h"

#include <stdlib.h>
#include <string.h>

static size_t hash(int64_t key, size_t cap)
{
    uint64_t x = (uint64_t)key;
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return (size_t)x & (cap - 1);
}

void wk_map_init(wk_map *m)
{
    memset(m, 0, sizeof *m);
}

void wk_map_fini(wk_map *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

void wk_map_clear(wk_map *m)
{
    if (m->slots)
        memset(m->slots, 0, m->cap * sizeof *m->slots);
    m->len = 0;
}

void *wk_map_get(const wk_map *m, int64_t key)
{
    if (m->len == 0)
        return NULL;
    for (size_t i = hash(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (!m->slots[i].val)
            return NULL;
        if (m->slots[i].key == key)
            return m->slots[i].val;
    }
}

static void insert_slot(wk_map_slot *slots, size_t cap, int64_t key, void *val)
{
    size_t i = hash(key, cap);
    while (slots[i].val && slots[i].key != key)
        i = (i + 1) & (cap - 1);
    slots[i].key = key;
    slots[i].val = val;
}

static int grow(wk_map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    wk_map_slot *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        return ONS_ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].val)
            insert_slot(ns, ncap, m->slots[i].key, m->slots[i].val);
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 0;
}

int wk_map_put(wk_map *m, int64_t key, void *val)
{
    /* Keep the load factor at or below 1/2 so probes stay short. */
    if ((m->len + 1) * 2 > m->cap && grow(m) != 0)
        return ONS_ENOMEM;
    size_t i = hash(key, m->cap);
    while (m->slots[i].val && m->slots[i].key != key)
        i = (i + 1) & (m->cap - 1);
    if (!m->slots[i].val)
        m->len++;
    m->slots[i].key = key;
    m->slots[i].val = val;
    return 0;
}

void *wk_map_del(wk_map *m, int64_t key)
{
    if (m->len == 0)
        return NULL;
    size_t mask = m->cap - 1, i = hash(key, m->cap);
    while (m->slots[i].val && m->slots[i].key != key)
        i = (i + 1) & mask;
    if (!m->slots[i].val)
        return NULL;
    void *val = m->slots[i].val;
    /* Backward-shift: move later members of the probe run into the hole
     * when their home slot does not lie cyclically in (hole, j]. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; m->slots[j].val; j = (j + 1) & mask) {
        size_t home = hash(m->slots[j].key, m->cap);
        int between = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!between) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].val = NULL;
    m->slots[hole].key = 0;
    m->len--;
    return val;
}

void **wk_map_values(const wk_map *m, int (*keep)(const void *val, const void *ctx),
                     const void *ctx, size_t *n)
{
    void **vals = malloc((m->len + 1) * sizeof *vals);
    *n = 0;
    if (!vals)
        return NULL;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].val && keep(m->slots[i].val, ctx))
            vals[(*n)++] = m->slots[i].val;
    return vals;
}
