/*
 * tickets_store.h - the SQL of gate codes and admission
 * (schemas/migrations/0007_ticket_codes.sql, docs/tickets.md).
 *
 * Every function runs on a job thread with that thread's connection and
 * returns 0 or a negative code: ONS_EUNAVAIL when PostgreSQL is unreachable
 * or a statement failed, and the function's own codes below. Ticket rows are
 * written by the partition owner (issue, transfer, cancel); here ingress
 * writes only admitted_at / admitted_by (order_store.h claims a change:
 * code_version + 1 and change_claimed_at).
 */
#ifndef ONSALE_INGRESS_TICKETS_STORE_H
#define ONSALE_INGRESS_TICKETS_STORE_H

#include <stdint.h>

#include "ingress/pool.h"

/* What a gate needs to know about one ticket. */
typedef struct ing_ticket_gate {
    int64_t ticket_id, event_id, owner_id, code_version;
    char status[16];             /* valid | cancelled | voided */
    char admitted_at[32];        /* RFC 3339 UTC; "" while not admitted */
    char event_name[256];        /* truncated for display */
    char seat[96];               /* "<section> row <r> seat <s>", truncated */
    int change_pending;          /* a transfer or cancel is in flight (claimed, not applied) */
    int64_t change_claim_age_ms; /* how long ago a change was claimed, -1: none pending */
    int scanner_assigned;        /* the scanner read for is assigned to the event's venue */
} ing_ticket_gate;

/* Reads ticket_id. ONS_ENOTFOUND when there is no such ticket.
 * scanner_assigned says whether user scanner (0: none) is assigned to the
 * venue of the ticket's event (venue_scanners, scanner_store.h).
 * change_pending is set for a change claimed within claim_timeout_s
 * (tickets.change_claim_timeout_s); an older claim is in
 * change_claim_age_ms, for the caller to judge (ing_ticket_claim_blocks). */
int ing_tickets_gate(ing_worker *w, int64_t ticket_id, int64_t claim_timeout_s, int64_t scanner,
                     ing_ticket_gate *out);

/* Admits ticket_id once: sets admitted_at and admitted_by = scanner only
 * while scanner is assigned to the venue of the ticket's event, the ticket
 * is valid, not admitted, still at code_version and no
 * change of it was claimed within claim_timeout_s (an older claim the
 * caller judged freed: ing_ticket_claim_blocks) (one UPDATE ...
 * WHERE admitted_at IS NULL ... RETURNING, so of two scanners racing on one
 * code exactly one gets 0, and a scan racing a claim loses to it or makes it
 * fail). Returns 0 and *admitted_at, or ONS_ECONFLICT when nothing was
 * admitted (re-read the ticket for why). unchecked (debug.scan_unchecked,
 * test only) drops the guards but the scanner's assignment: the race
 * control, where both scanners admit. */
int ing_tickets_admit(ing_worker *w, int64_t ticket_id, int64_t code_version,
                      int64_t claim_timeout_s, int64_t scanner, int unchecked,
                      char admitted_at[32]);

#endif
