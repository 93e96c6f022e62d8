/*
 * tickets_store.h - the SQL of gate codes and admission
 * (schemas/migrations/0007_ticket_codes.sql, docs/tickets.md).
 *
 * Every function runs on a job thread with that thread's connection and
 * returns 0 or a negative code: ONS_EUNAVAIL when PostgreSQL is unreachable
 * or a statement failed, and the function's own codes below. Ticket rows are
 * written by the partition owner (issue, transfer, cancel); ingress writes
 * only admitted_at / admitted_by.
 */
#ifndef ONSALE_INGRESS_TICKETS_STORE_H
#define ONSALE_INGRESS_TICKETS_STORE_H

#include <stdint.h>

#include "ingress/pool.h"

/* What a gate needs to know about one ticket. */
typedef struct ing_ticket_gate {
    int64_t ticket_id, event_id, owner_id, code_version;
    char status[16];      /* valid | cancelled | voided */
    char admitted_at[32]; /* RFC 3339 UTC; "" while not admitted */
    char event_name[256]; /* truncated for display */
    char seat[96];        /* "<section> row <r> seat <s>", truncated */
} ing_ticket_gate;

/* Reads ticket_id. ONS_ENOTFOUND when there is no such ticket. */
int ing_tickets_gate(ing_worker *w, int64_t ticket_id, ing_ticket_gate *out);

/* Admits ticket_id once: sets admitted_at and admitted_by = scanner only
 * while the ticket is valid, not admitted, and still at code_version (one
 * UPDATE ... WHERE admitted_at IS NULL ... RETURNING, so of two scanners
 * racing on one code exactly one gets 0). Returns 0 and *admitted_at, or
 * ONS_ECONFLICT when nothing was admitted (re-read the ticket for why).
 * unchecked (debug.scan_unchecked, test only) drops the guards: the race
 * control, where both scanners admit. */
int ing_tickets_admit(ing_worker *w, int64_t ticket_id, int64_t code_version, int64_t scanner,
                      int unchecked, char admitted_at[32]);

#endif
