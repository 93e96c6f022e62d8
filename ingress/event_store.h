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
#include "queue/draw.h"

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
    int64_t pow_difficulty;                          /* 0 = no proof of work */
    int64_t max_seats;  /* the priced sections may hold at most this many seats */
    int64_t partitions; /* events.partitions: the topics' count now (> 0) */
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
 * section of the venue), ONS_ERANGE (the priced sections hold more than
 * in->max_seats seats: nothing written), or the common codes. */
int ing_event_insert(ing_worker *w, const char *rid, const ing_event_new *in,
                     ing_event_created *out);

/* events.partitions of event_id into *n: the partition count its home
 * partition is taken over (q_partition_of_event). Returns 0, ONS_ENOTFOUND
 * or ONS_EDB. */
int ing_event_partitions(ing_worker *w, int64_t event_id, int *n);

/* Stores the event's proof-of-work difficulty (0 = off). 0 or the common
 * codes. */
int ing_event_set_pow(ing_worker *w, const char *rid, int64_t event_id, int64_t difficulty);

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
 * *json is the event as compact JSON text afterwards (heap; caller frees).
 * Returns 0, ONS_EINVAL (a tier names no priced section) or the common
 * codes. */
int ing_event_update(ing_worker *w, const char *rid, const ing_event_edit *in, char **json);

/* A price tier as the event view shows it. */
typedef struct ing_view_tier {
    char section[72];
    int64_t section_id, price_cents, seats;
} ing_view_tier;

/* An event and its venue as GET /v1/events/{id} shows them. Text fields are
 * as stored (bounded by what POST /v1/venues and /v1/events accept). */
typedef struct ing_event_view_row {
    char name[256], category[80], description[4096], currency[8], status[16];
    char starts_at[32], onsale_at[32], prequeue_opens_at[32]; /* RFC 3339 UTC */
    int has_prequeue;
    int64_t starts_ms, onsale_ms, seats_total, venue_id;
    int max_per_user, hold_seconds, pow_difficulty;
    char venue_name[256], city[128], country[128], address[512];
    int has_lat, has_lon, has_address;
    double lat, lon;
    char draw_commitment[72], draw_seed[72]; /* hex, "" when none */
    size_t ntiers;
    ing_view_tier *tiers; /* heap, in section position order; ing_event_view_clear */
} ing_event_view_row;

/* Reads event_id, its venue and its tiers through the replica when it is
 * fresh (replica.h). ONS_ENOTFOUND when there is no such event. Call
 * ing_event_view_clear after 0. */
int ing_event_view_get(ing_worker *w, int64_t event_id, ing_event_view_row *out);
void ing_event_view_clear(ing_event_view_row *v);

/* Free seats of one section. */
typedef struct ing_section_free {
    int64_t section_id, available;
} ing_section_free;

/* Seat counts of event_id counted in PostgreSQL (replica when fresh), for
 * an event the owner has not published: the totals and, per section with
 * free seats, how many. *sections is heap (caller frees; NULL when *n 0). */
int ing_event_seat_counts(ing_worker *w, int64_t event_id, int64_t *available, int64_t *held,
                          int64_t *sold, ing_section_free **sections, size_t *n);

/* What GET /v1/events/{id}/draw shows of an event. */
typedef struct ing_event_draw {
    q_draw_published pub;
    int open;     /* onsale_at has passed */
    int prequeue; /* the event has a pre-queue */
} ing_event_draw;

/* Reads event_id's draw. ONS_ENOTFOUND when there is no such event. */
int ing_event_draw_get(ing_worker *w, int64_t event_id, ing_event_draw *out);

/* The entrants of event_id's draw (Q_DRAW_ENTRANTS_SQL). *out is heap
 * (caller frees; NULL when *n is 0). */
int ing_event_draw_entrants(ing_worker *w, int64_t event_id, q_draw_entrant **out, size_t *n);

#endif
