/*
 * scanner_store.h - the SQL of scanner assignments: which scanner accounts
 * may admit tickets at a venue (every event there: venue_scanners,
 * schemas/migrations/0017_venue_scanners.sql) or of one event
 * (event_scanners, 0019_event_scanners.sql); docs/tickets.md "Who may scan
 * where". The scan's own check is part of the gate read and the admitting
 * UPDATE (tickets_store.h).
 *
 * Every function runs on a job thread with that thread's connection and
 * returns 0 or a negative code: ONS_EUNAVAIL (no connection), ONS_EDB (a
 * statement failed), ONS_ENOTFOUND (no such venue or event), ONS_EAUTH
 * (the venue or event is another seller's and the caller is no admin),
 * and its own codes below.
 */
#ifndef ONSALE_INGRESS_SCANNER_STORE_H
#define ONSALE_INGRESS_SCANNER_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ingress/pool.h"

/* SQL: scanner (an expression) is assigned to venue or to event (the
 * ticket's; expressions). The one predicate of the scan's gate read and its
 * admitting UPDATE (tickets_store.c), each arm served by a primary key. */
#define ING_SCANNER_ASSIGNED_SQL(venue, event, scanner)                                            \
    "(EXISTS (SELECT 1 FROM venue_scanners vs WHERE vs.venue_id = " venue                          \
    " AND vs.scanner_id = " scanner ") OR EXISTS (SELECT 1 FROM event_scanners es "                \
    "WHERE es.event_id = " event " AND es.scanner_id = " scanner "))"

/* Who asks, on which venue or event (exactly one of the two ids > 0). */
typedef struct ing_scanner_scope {
    int64_t venue_id;
    int64_t event_id; /* > 0: the event's own scanners, its seller's to assign */
    int64_t user_id;  /* the caller */
    int is_admin;     /* an admin acts on any venue or event */
} ing_scanner_scope;

/* One scanner assigned to a venue or event: its id and when, nothing of its
 * account (no name: a seller must not learn who holds an id). */
typedef struct ing_scanner_row {
    int64_t user_id;
    char assigned_at[32]; /* RFC 3339 UTC */
} ing_scanner_row;

/* Assigns scanner_id to the venue (or event), in one transaction that
 * locks its row (so two assignments at once count each other against max).
 * Assigning a scanner already assigned changes nothing and answers its row.
 * ONS_EINVAL: scanner_id is no account holding the scanner role;
 * ONS_EFULL: the venue (or event) has max scanners already. */
int ing_scanner_put(ing_worker *w, const char *rid, const ing_scanner_scope *a, int64_t scanner_id,
                    int64_t max, ing_scanner_row *out);

/* Removes scanner_id from the venue or event (0 whether or not it was assigned);
 * a scan's UPDATE that runs after this commits no longer admits. */
int ing_scanner_delete(ing_worker *w, const char *rid, const ing_scanner_scope *a,
                       int64_t scanner_id);

/* The most assignments a venue's or event's list answers: the upper bound
 * of tickets.scanners_per_venue and tickets.scanners_per_event
 * (options.def), so no cap the options can set hides an assignment. */
#define ING_VENUE_SCANNERS_MAX 100000

/* The venue's (or event's) scanners, oldest assignment first, all of them
 * (at most ING_VENUE_SCANNERS_MAX), whatever the cap is now: *out
 * is heap (the caller frees; NULL when there are none), *n its length. */
int ing_scanners_list(ing_worker *w, const char *rid, const ing_scanner_scope *a,
                      ing_scanner_row **out, size_t *n);

#endif
