/*
 * event_cache.h - the sale state of events as a join needs it, cached in
 * memory for event_cache_ms (~250 ms), and the intent → event map.
 *
 * ing_events_get() runs on a job thread: a fresh cache entry answers at
 * once; otherwise it reads Redis ev:<id>, and when Redis lacks the event
 * (never written, flushed; or its pow_difficulty field, so that a lost
 * field never reads as "no proof of work"; or its section_names) or is
 * down, PostgreSQL's events row (and its priced sections' names), writing
 * it back to Redis so the next reader finds it there.
 *
 * ing_seqmap remembers which event each intent accepted by this process
 * belongs to (a bounded cache: the id of an intent encodes its partition and
 * offset but not its event). Both are thread-safe.
 */
#ifndef ONSALE_INGRESS_EVENT_CACHE_H
#define ONSALE_INGRESS_EVENT_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "ingress/pool.h"
#include "queue/status.h"

typedef struct ing_events ing_events;
typedef struct ing_seqmap ing_seqmap;

int ing_events_new(int ttl_ms, size_t slots, ing_events **out);
void ing_events_free(ing_events *c);

/* Fills *out (status "scheduled" | "on_sale" | "paused" | "sold_out" |
 * "cancelled" | "ended"; counters -1 when unknown). Returns 0, ONS_ENOTFOUND
 * (no such event) or ONS_EUNAVAIL (neither Redis nor PostgreSQL answered). */
int ing_events_get(ing_events *c, ing_worker *w, int64_t event_id, q_event_state *out);

/* Drops the cached entry (after pause/resume/cancel): a fill whose reads
 * began before this call does not bring it back. */
void ing_events_forget(ing_events *c, int64_t event_id);
/* Caches st, read from Redis or PostgreSQL from read_ms on (ons_mono_ms),
 * unless the entry holds a state read later or was forgotten later (then
 * ONS_ECONFLICT, nothing changed): the cache never goes back. Returns 0 or
 * ONS_ECONFLICT. Its age (the ttl) counts from read_ms. */
int ing_events_put(ing_events *c, int64_t event_id, const q_event_state *st, int64_t read_ms);
/* The cached state of event_id however old, without fetching (any thread,
 * never blocks on I/O). Returns 0 or ONS_ENOTFOUND (not cached). */
int ing_events_peek(ing_events *c, int64_t event_id, q_event_state *out);
/* Both at once, under one lock (the queued poll's path): the cached state
 * (out may be NULL) and whether it is younger than the ttl (*fresh, may be
 * NULL). Returns 0 or ONS_ENOTFOUND (not cached; *fresh = 0). */
int ing_events_lookup(ing_events *c, int64_t event_id, q_event_state *out, int *fresh);
/* Does event_id price a section named section? 1 yes, 0 no, -1 not known
 * (not cached, its names were not read, or their text is not in
 * q_section_names_encode's form). From the cache alone, however
 * old (an event's priced sections never change): any thread, no I/O. */
int ing_events_section_priced(ing_events *c, int64_t event_id, const char *section);
/* Is event_id cached and younger than the ttl? (any thread, no I/O) */
int ing_events_fresh(ing_events *c, int64_t event_id);

int ing_seqmap_new(size_t slots, ing_seqmap **out);
void ing_seqmap_free(ing_seqmap *m);
void ing_seqmap_put(ing_seqmap *m, int64_t seq, int64_t event_id);
/* Returns 0 and *event_id, or ONS_ENOTFOUND. */
int ing_seqmap_get(ing_seqmap *m, int64_t seq, int64_t *event_id);

/* Calls fn(seq, event_id, arg) for every remembered intent (each pair read
 * under its stripe's lock, fn called outside it). Admin views only. */
void ing_seqmap_scan(ing_seqmap *m, void (*fn)(int64_t seq, int64_t event_id, void *arg),
                     void *arg);

#endif
