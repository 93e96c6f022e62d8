/*
 * recycle.h - per-thread recycling of fixed-size blocks freed on another
 * thread.
 *
 * A join is allocated on the gate's thread and freed on the finisher's, so
 * glibc's per-thread cache of the allocating thread never refills: its
 * request (1,032 bytes), its join state and the gate's sink for its later
 * answer (over 1 KiB, beyond that cache) each took malloc's arena path, the
 * larger ones consolidating the arena's fast bins first, and each free took
 * the arena's lock (bench/NOTES.md, "Join, thirteenth round"). Here a block
 * freed on any thread goes back to the thread that allocated it (a
 * lock-free stack that only that thread empties, all at once), which hands
 * it out again before asking malloc. When it takes its returned blocks
 * back it keeps at most ONS_RECYCLE_KEEP of a kind waiting (however many
 * are handed out); the rest go back to malloc.
 *
 * Under AddressSanitizer a block waiting to be reused is poisoned, so a
 * use after ons_recycle_free is still reported, and a second
 * ons_recycle_free of it aborts.
 */
#ifndef ONSALE_COMMON_RECYCLE_H
#define ONSALE_COMMON_RECYCLE_H

#include <stddef.h>

/* The kinds of block, each of one size for the process. */
typedef enum ons_recycle_kind {
    ONS_RECYCLE_LATER_SINK, /* httpd_gate.c: a sink for an answer made later */
    ONS_RECYCLE_ING_REQ,    /* ingress: a request */
    ONS_RECYCLE_ING_JOIN,   /* ingress: a join's state */
    ONS_RECYCLE_NKINDS
} ons_recycle_kind;

/* Blocks of a kind a thread keeps for reuse, at most, until
 * ons_recycle_set_keep: ingress's http.recycle_keep. */
#define ONS_RECYCLE_KEEP 4096

/* Sets that bound for every thread (0: every block freed on another thread
 * goes back to malloc when its owner next allocates). */
void ons_recycle_set_keep(size_t blocks);

/* A block of size bytes (the same size at every call for a kind),
 * uninitialised, aligned as malloc's; NULL when out of memory. */
void *ons_recycle_alloc(ons_recycle_kind kind, size_t size);
/* Gives p (from ons_recycle_alloc, or NULL) back, from any thread. */
void ons_recycle_free(void *p);

/* For tests: blocks of kind held by the calling thread's cache (handed
 * out or waiting), and whether p's user bytes are poisoned (always 0
 * without AddressSanitizer). */
size_t ons_recycle_owned(ons_recycle_kind kind);
int ons_recycle_poisoned(const void *p);

#endif
