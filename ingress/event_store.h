/*
 * event_store.h - the PostgreSQL side of sellers' venues and events for
 * ingress (routes_events.c, routes_admission.c): one function per
 * statement or transaction, typed inputs and outputs, and ONS_E... codes
 * (common/err.h). No PGresult leaves this module.
 *
 * Every function runs on a job thread with that thread's worker connection
 * (pool.h). The codes every function may return besides its own:
 *   ONS_EUNAVAIL  no connection (PostgreSQL is away; the caller answers 503),
 *   ONS_EDB       a statement failed (logged here with request_id),
 *   ONS_ENOMEM    out of memory.
 * A function that fails inside a transaction has rolled it back.
 */
#ifndef ONSALE_INGRESS_EVENT_STORE_H
#define ONSALE_INGRESS_EVENT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ingress/pool.h"

/* A new venue and its sections, in position order. */
typedef struct ing_venue_new {
    int64_t owner_id;
    const char *name, *city, *country, *address; /* address may be NULL */
    int has_pos;                                 /* lat and lon given */
    double lat, lon;
    size_t nsections;
    const char *const *section_names;
    const int64_t *rows, *seats_per_row;
    int64_t capacity;
} ing_venue_new;

/* Inserts the venue and its sections; *venue_id is its id. */
int ing_venue_insert(ing_worker *w, const char *rid, const ing_venue_new *in, int64_t *venue_id);

/* A new event (docs/api.md POST /v1/events). */
typedef struct ing_event_new {
    int64_t venue_id;
    int64_t acting_user; /* the caller: must own the venue unless is_admin */
    int is_admin;
    const char *name, *category, *description, *currency, *status;
    int64_t starts_at_ms, onsale_at_ms, prequeue_opens_at_ms; /* prequeue 0 = none */
    int64_t max_per_user, hold_seconds;
    int64_t max_active_holds, admissions_per_minute; /* 0 = no cap */
    const char *draw_seed_hex, *draw_commitment;
    size_t ntiers;
    const char *const *tier_sections;
    const int64_t *tier_prices;
} ing_event_new;

typedef struct ing_event_created {
    int64_t event_id, seats_total;
} ing_event_created;

/* One transaction: the event (its seller the venue's owner), its price
 * tiers and every seat of the priced sections, numbered in allocation
 * order. Returns 0, ONS_ENOTFOUND (no such venue), ONS_EAUTH (the venue is
 * another seller's and the caller no admin), ONS_EINVAL (a tier names no
 * section of the venue), or the common codes. */
int ing_event_insert(ing_worker *w, const char *rid, const ing_event_new *in,
                     ing_event_created *out);

/* What deciding a change to an event needs. */
typedef struct ing_event_owner {
    int64_t seller_id;
    char status[16]; /* "ended" once the show started end_grace_s ago */
    int before_sale; /* scheduled, onsale_at ahead, never loaded by its owner */
    int64_t onsale_at_ms;
} ing_event_owner;

/* Reads the event's owner row. end_grace_s < 0: the stored status as is.
 * lock: FOR UPDATE, inside a transaction the caller opened with
 * ing_event_tx_begin. Returns 0, ONS_ENOTFOUND or the common codes. */
int ing_event_owner_get(ing_worker *w, int64_t event_id, long long end_grace_s, int lock,
                        ing_event_owner *out);

/* An edit of an event (PATCH /v1/events/{id}); NULL / 0 = unchanged. */
typedef struct ing_event_edit {
    int64_t event_id;
    const char *name, *description, *category;
    int64_t starts_at_ms;
    size_t ntiers;
    const char *const *tier_sections;
    const int64_t *tier_prices;
} ing_event_edit;

/* The edit's transaction, around the caller's decisions:
 * ing_event_tx_begin, ing_event_owner_get(lock 1), then either
 * ing_event_update (commits, or rolls back on failure) or
 * ing_event_tx_rollback. */
int ing_event_tx_begin(ing_worker *w);
void ing_event_tx_rollback(ing_worker *w);
/* Writes the edit (seats take their tier's new price) and commits.
 * *json is the event as JSON text afterwards (heap; caller frees).
 * Returns 0, ONS_EINVAL (a tier names no priced section) or the common
 * codes. */
int ing_event_update(ing_worker *w, const char *rid, const ing_event_edit *in, char **json);

#endif
