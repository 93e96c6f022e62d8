/*
 * cache_store.h - the PostgreSQL reads behind ingress's in-memory caches:
 * an event's sale state (event_cache.c, when Redis lacks it) and the
 * partitions' applied offsets (cursor_cache.c, when Redis lacks a cursor).
 * One function per statement, typed outputs, ONS_E... codes (common/err.h);
 * no PGresult leaves this module.
 */
#ifndef ONSALE_INGRESS_CACHE_STORE_H
#define ONSALE_INGRESS_CACHE_STORE_H

#include <stdint.h>

#include "common/pg.h"
#include "ingress/pool.h"
#include "queue/status.h"

/* Reads event_id's events row into st on a job thread (w's connection):
 * status, onsale_at_ms, max_per_user, prequeue_opens_at_ms (0 none),
 * max_active_holds and admissions_per_minute (0 none), pow_difficulty, and
 * sold_out set when the status says so. Every other field of st is left as
 * it was (the counters Redis may have given). Returns 0, ONS_ENOTFOUND (no
 * such event) or ONS_EDB (no connection, the statement failed or the row
 * did not read; logged). *names gets the names of the sections the event
 * prices, encoded as q_section_names_encode does (heap, the caller's; NULL
 * unless 0 is returned). */
int ing_cache_event_state(ing_worker *w, int64_t event_id, q_event_state *st, char **names);

/* Writes partition_owner.next_offset of every partition p in [0, n) that
 * has a readable row into next[p]; the other entries are untouched. pg is
 * the caller's own connection (the refresh thread's). Returns 0,
 * ONS_EUNAVAIL (no connection) or ONS_EDB (the statement failed). */
int ing_cache_next_offsets(ons_pg *pg, int64_t *next, int n);

#endif
