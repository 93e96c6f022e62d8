/*
 * order_store.h - the PostgreSQL reads behind checkout, orders and a fan's
 * tickets (routes_orders.c): one function per statement, typed rows, and
 * ONS_E... codes (common/err.h). No PGresult leaves this module.
 *
 * Every function runs on a job thread with that thread's connection and
 * may return, besides its own codes: ONS_EUNAVAIL (no connection),
 * ONS_EDB (the statement failed or a row did not parse; logged),
 * ONS_ENOMEM. Orders, reservations and tickets are written by the
 * partition owner (workers/); ingress only reads them here.
 */
#ifndef ONSALE_INGRESS_ORDER_STORE_H
#define ONSALE_INGRESS_ORDER_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ingress/pool.h"

/* The newest order a checkout of reservation_id by user_id made, in
 * partition (< 0: any). ONS_ENOTFOUND when there is none. */
int ing_order_of_checkout(ing_worker *w, int64_t reservation_id, int64_t user_id, int32_t partition,
                          int64_t *order_id, char state[16]);

/* ing_served_fn (produce.h) of the control lane: partition's
 * partition_owner.control_next_offset, or -1 when it can't be read. arg is
 * the ing_worker. */
int64_t ing_control_lane_served(void *arg, int32_t partition);

/* A reservation as checkout needs it. */
typedef struct ing_reservation {
    int64_t event_id;
    char state[16];
    int live; /* expires_at is ahead */
} ing_reservation;

/* Reads user_id's reservation_id. ONS_ENOTFOUND when it is not theirs or
 * does not exist. */
int ing_reservation_get(ing_worker *w, int64_t reservation_id, int64_t user_id,
                        ing_reservation *out);

/* One reservation of ing_reservations_get_many. */
typedef struct ing_reservation_ask {
    int64_t reservation_id, user_id; /* in */
    int rc;                          /* out: 0 (res filled) or ONS_ENOTFOUND */
    ing_reservation res;             /* out */
} ing_reservation_ask;

/* ing_reservation_get of n reservations in ONE statement (a checkout
 * round's): each item is found only when its reservation is its user_id's
 * (else rc ONS_ENOTFOUND, as ing_reservation_get answers); an id may be
 * asked for more than once. Returns 0 (every item's rc set) or the
 * statement's error for all of them. */
int ing_reservations_get_many(ing_worker *w, ing_reservation_ask *items, size_t n);

/* A seat as the API shows it. */
typedef struct ing_seat {
    char section[65];
    int row, seat;
} ing_seat;

typedef struct ing_order_ticket {
    int64_t ticket_id, price_cents;
    char status[16]; /* valid | cancelled | voided | transferred (valid, another owner) */
    ing_seat seat;
} ing_order_ticket;

typedef struct ing_order {
    char state[16];
    int64_t total_cents, event_id;
    char currency[8];
    int has_reason; /* failure_reason is set */
    char reason[128];
    size_t ntickets;
    ing_order_ticket *tickets; /* heap; ing_order_clear frees */
} ing_order;

/* Reads user_id's order_id and its tickets. ONS_ENOTFOUND when no such
 * order (yet). *out is cleared first; call ing_order_clear after a 0. */
int ing_order_get(ing_worker *w, int64_t order_id, int64_t user_id, ing_order *out);
void ing_order_clear(ing_order *o);

/* One ticket of a fan's history. */
typedef struct ing_ticket_row {
    int64_t ticket_id, event_id, price_cents, issued_us;
    char event_name[256]; /* truncated */
    char currency[8], status[16];
    char issued_at[32]; /* RFC 3339 UTC */
    char starts_at[32]; /* the event's, RFC 3339 UTC */
    ing_seat seat;
} ing_ticket_row;

typedef struct ing_ticket_page {
    size_t n;
    ing_ticket_row *rows; /* heap; ing_ticket_page_clear frees */
    int more;             /* another page follows the last row */
} ing_ticket_page;

/* user_id's tickets, newest first, after the cursor (issued_us,
 * ticket_id; ticket_id 0: from the newest), at most limit; read through
 * the replica when fresh (replica.h). */
int ing_tickets_of_user(ing_worker *w, int64_t user_id, int64_t cursor_us, int64_t cursor_tid,
                        int64_t limit, ing_ticket_page *out);
void ing_ticket_page_clear(ing_ticket_page *p);

/* A ticket and its event as a transfer or cancel needs them. */
typedef struct ing_ticket_change {
    int64_t event_id, owner_id;
    char status[16], event_status[16];
    int ended;                   /* the event ended, or its show started end_grace_s ago
                                  * (at judged_ms) */
    int past_cutoff;             /* the show starts within refund_cutoff_s (at judged_ms) */
    int64_t judged_ms;           /* the instant ended and past_cutoff are judged at */
    int64_t starts_at_ms;        /* the show's start, as the partition owner loads it */
    int admitted;                /* a scan admitted it (tickets.admitted_at set) */
    int change_pending;          /* a change was claimed within claim_timeout_s (an older
                                  * one: change_claim_age_ms, ing_ticket_claim_blocks) */
    int64_t change_claim_age_ms; /* how long ago a change was claimed, -1: none pending */
    char starts_at[32];
} ing_ticket_change;

/* The bounds a ticket change is judged by (ingress options tickets.*,
 * events.end_grace_s), and this node's clock when it judges. */
typedef struct ing_ticket_change_opts {
    long long refund_cutoff_s, end_grace_s, claim_timeout_s;
    int64_t at_ms;        /* this node's wall clock, ms */
    int64_t max_ahead_ms; /* clock.max_ahead_ms: at_ms is believed up to this past PostgreSQL's */
} ing_ticket_change_opts;

/* Reads ticket_id. ONS_ENOTFOUND when there is no such ticket.
 * The refund cut-off and the end are judged at one instant, judged_ms: the
 * later of o->at_ms and PostgreSQL's clock at the read (a node whose clock
 * lags does not stretch the refund window), but at most o->max_ahead_ms
 * past PostgreSQL's (a node whose clock runs fast does not close the window
 * early; logged at warn when it clamps), against the starts_at_ms the
 * partition owner loads (the same expression as workers/store.c). The
 * caller sends judged_ms as the record's sent_ms, the instant the owner
 * judges the same rules at (workers/checkout.c ticket_refused), so a change
 * accepted here is never refused there for the time it took to send. */
int ing_ticket_for_change(ing_worker *w, int64_t ticket_id, const ing_ticket_change_opts *o,
                          ing_ticket_change *out);

/* The instant a ticket change is judged at: the later of node_ms (this
 * node's clock) and pg_ms (PostgreSQL's at the read), at most max_ahead_ms
 * past pg_ms (logged at warn when that bound clamps it). */
int64_t ing_judged_ms(int64_t node_ms, int64_t pg_ms, int64_t max_ahead_ms);

/* Claims ticket_id for a transfer or cancel by owner_id before its record
 * is sent: one UPDATE that adds one to code_version and sets
 * change_claimed_at = now() only while the ticket is owner_id's, valid, not
 * admitted and no other change of it was claimed within claim_timeout_s
 * (an older one the caller judged freed: ing_ticket_claim_blocks). A scan admits only at the
 * code_version it checked and while no change is pending (tickets_store.h), and the code route
 * shows no code while one is: from this commit until the partition owner applies or ignores the
 * change (its batch clears change_claimed_at) no scan admits, and a scan that committed first makes
 * this claim fail: a ticket is never both admitted and then cancelled (refunded) or transferred.
 * Returns 0 with *claim (the claimed code_version, the token of ing_ticket_unclaim_change),
 * ONS_ECONFLICT (the ticket changed since it was read: read it again for why) or ONS_EUNAVAIL /
 * ONS_EDB. */
int ing_ticket_claim_change(ing_worker *w, int64_t ticket_id, int64_t owner_id,
                            long long claim_timeout_s, int64_t *claim);

/* Undoes the marker of a claim whose record was certainly not sent (the
 * produce failed): clears change_claimed_at while the ticket is still at
 * the claimed code_version (nothing claimed or applied since). The code
 * stays rotated. 0 or ONS_EUNAVAIL / ONS_EDB (then the claim is freed
 * after tickets.change_claim_timeout_s, once the lane is settled past it). */
int ing_ticket_unclaim_change(ing_worker *w, int64_t ticket_id, int64_t claim);

#endif
