/*
 * cursor_cache.h - every partition's served cursor and drain rate, held in
 * memory so a queued status poll costs no Redis round trip.
 *
 * One thread refreshes all partitions every status.refresh_ms with one
 * q_status_read_cursors() call and publishes into atomics. A partition Redis
 * knows nothing about (never published, or after FLUSHALL) is read from
 * PostgreSQL's partition_owner.next_offset, at most once a second. The
 * served value only ever grows, so a fan's position never increases.
 * Readers (any thread) never block.
 */
#ifndef ONSALE_INGRESS_CURSOR_CACHE_H
#define ONSALE_INGRESS_CURSOR_CACHE_H

#include <stdint.h>

#include "queue/status.h"

typedef struct ing_cursors ing_cursors;

/* Starts the refresh thread. *out is owned by the caller. Returns 0,
 * ONS_EINVAL or ONS_ENOMEM. */
int ing_cursors_new(int partitions, const q_status_opts *redis, const char *pg_dsn, int refresh_ms,
                    ing_cursors **out);
void ing_cursors_free(ing_cursors *c);

int ing_cursors_count(const ing_cursors *c);
/* The partition's served cursor (all offsets below it are applied), or -1
 * while unknown (and for a partition out of range). */
int64_t ing_cursors_served(ing_cursors *c, int32_t partition);
/* Smoothed drain rate, messages per second; 0 when unknown. */
double ing_cursors_rate(ing_cursors *c, int32_t partition);
/* The partition's drain as its owner last published it (q_status_drain:
 * the cursor it reached, when, its rate and batch cycle), read whole;
 * served -1 while unknown. */
q_status_drain ing_cursors_drain(ing_cursors *c, int32_t partition);
/* Milliseconds since the partition's cursor last rose; -1 never. */
int64_t ing_cursors_moved_ago_ms(ing_cursors *c, int32_t partition);
/* Milliseconds since the last successful refresh from Redis; -1 never. */
int64_t ing_cursors_age_ms(ing_cursors *c);

/* Raises the partition's cursor to at least served (e.g. learned from a
 * result read); never lowers it. */
void ing_cursors_raise(ing_cursors *c, int32_t partition, int64_t served);

#endif
