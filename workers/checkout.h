/*
 * checkout.h - the partition owner's side of the checkout saga
 * (docs/checkout.md): the apply rules for checkout, payment_result and
 * ticket records, the partition's ticket map, and the batch effects they
 * add (orders, tickets, outbox rows) next to partition.h's.
 *
 * Rules, applied in offset order like every other record:
 *   checkout (order_id = the record's seq):
 *     the user's reservation is held and unexpired -> reservation paying,
 *       seats paying, order pending (+ items), outbox charge; the hold gets
 *       paying_grace_seconds more so a charge in flight is not cut short;
 *     otherwise -> order failed (not_held), nothing else changes.
 *   payment_result for the reservation's current order:
 *     succeeded -> seats sold, order paid, tickets issued, intent purchased;
 *     declined / failed -> order failed, reservation held again with its
 *       original expiry (it may expire at once).
 *   payment_result for anything else (the hold expired, a replay):
 *     the order already paid or refunded earlier in this batch (a result
 *       re-sent while the owner lagged) -> nothing changes;
 *     succeeded -> order refunded and an outbox refund, unless the order is
 *       already paid in PostgreSQL (a replayed success): decided in SQL;
 *     otherwise -> order failed unless paid.
 *   a paying hold that runs out (hold + grace) -> order failed (expired),
 *     seats released like any expired hold; a success after that is refunded.
 *   ticket (user must own the valid ticket, else ignored):
 *     transfer -> new owner, code_version + 1 (the gate code rotates:
 *     docs/tickets.md); cancel -> ticket cancelled, outbox refund of its
 *     price, seat available and offered to waiting intents first.
 *     Refused (ignored, as ingress already answered 409) when the record's
 *     sent_ms (the instant ingress judged it at) is at or past the end, or
 *     for a cancel within refund_cutoff_ms of starts_at, or when the sale
 *     was cancelled earlier in the log.
 *   event cancelled (partition.c) -> paying orders fail (cancelled), every
 *     valid ticket voided and each order refunded once (wk_co_void_tickets).
 * Owned by the partition's thread, like partition.h.
 */
#ifndef ONSALE_WORKERS_CHECKOUT_H
#define ONSALE_WORKERS_CHECKOUT_H

#include "queue/msg.h"
#include "workers/map.h"
#include "workers/partition.h"

#include <stddef.h>
#include <stdint.h>

/* Order states are queue/states.h's. */

/* ticket_id of the i-th seat (0..Q_MAX_SEATS-1) of an order: 16 ids per
 * order, so one order's tickets never take the next order's ids. */
_Static_assert(Q_MAX_SEATS < 16, "ticket ids give each order 16 slots");
static inline int64_t wk_ticket_id(int64_t order_id, int i)
{
    return order_id * 16 + i + 1;
}

/* A valid ticket of a loaded event. */
typedef struct wk_ticket {
    int64_t ticket_id, owner_id, order_id, price_cents;
    wk_event *ev;
    uint32_t seat; /* inventory index */
} wk_ticket;

/* One order's final state in the batch. */
typedef struct wk_fx_order {
    int64_t order_id, reservation_id, event_id, user_id, total_cents;
    char currency[4];
    char charge_id[Q_MSG_MAX_CHARGE + 1];
    uint8_t state, is_new, nseats;
    uint8_t voided;             /* its event was cancelled: paid -> refunded (the one exception) */
    int64_t void_cents;         /* what its voided tickets cost: the refund */
    const char *failure_reason; /* static string or NULL */
    int32_t seat_no[Q_MAX_SEATS];
    int64_t price[Q_MAX_SEATS];
} wk_fx_order;

/* One outbox row to insert. */
typedef struct wk_fx_outbox {
    int is_refund;
    int event_void;  /* the refund of an order whose event was cancelled */
    int unless_paid; /* insert only if the order is not paid (SQL decides) */
    int64_t order_id, reservation_id, event_id, ticket_id, amount_cents; /* ticket_id 0: none */
    char currency[4];
    char payment_method[Q_MSG_MAX_PM + 1];
    char charge_id[Q_MSG_MAX_CHARGE + 1]; /* refunds; "" = the order's charge */
} wk_fx_outbox;

/* One ticket's final state in the batch. */
typedef struct wk_fx_ticket {
    int64_t ticket_id, event_id, order_id, owner_id, price_cents;
    int32_t seat_no;
    uint8_t is_new, valid;
    uint8_t voided;     /* not valid because its event was cancelled */
    uint16_t transfers; /* transfers in this batch: each bumps code_version */
    uint8_t unclaim;    /* only a change ignored: clear its claim, nothing else */
} wk_fx_ticket;

typedef struct wk_co {
    wk_map tickets; /* ticket_id -> wk_ticket (valid tickets of loaded events) */
    /* the batch */
    wk_fx_order *orders;
    size_t norders, cap_orders;
    wk_map order_idx; /* order_id -> index + 1 */
    wk_fx_outbox *outbox;
    size_t noutbox, cap_outbox;
    wk_fx_ticket *tix;
    size_t ntix, cap_tix;
    wk_map tix_idx; /* ticket_id -> index + 1 */
} wk_co;

/* Returns p's checkout state, creating it on first use (NULL: no memory). */
wk_co *wk_co_of(wk_part *p);
/* Frees p->co and every ticket in it (wk_part_free calls this). */
void wk_co_free(wk_co *co);
/* Forgets the batch's checkout effects after commit. */
void wk_co_batch_done(wk_co *co);

/* The apply rules above. offset is the record's (with Q_SEQ_CONTROL_BIT set
 * for a record of the control lane: the order id is its seq); 0 or an error that fails
 * the batch (ONS_ENOMEM). */
int wk_co_apply(wk_part *p, wk_event *ev, const q_msg *m, int64_t offset, int64_t now_ms);

/* Called by hold expiry for a paying intent, before its seats are released:
 * the order fails (expired). */
int wk_co_paying_expired(wk_part *p, wk_intent *in);

/* Called when a sale closes (event cancelled or ended) while in is paying,
 * before its seats are released: the order fails with reason why
 * ("cancelled" / "ended"), so a charge that succeeds later is refunded. */
int wk_co_paying_closed(wk_part *p, wk_intent *in, const char *why);

/* Voids every valid ticket of ev (its event was cancelled): tickets voided,
 * seats available, each order refunded once for what its valid tickets
 * cost (outbox refund, gateway key refund-cancel-<order_id>), the order
 * paid -> refunded. 0 or ONS_ENOMEM. */
int wk_co_void_tickets(wk_part *p, wk_event *ev);

/* For the loader: registers a valid ticket of ev (seat_no of the event).
 * Returns 0, ONS_ENOMEM, or ONS_ENOTFOUND (no such seat: ignored). */
int wk_co_add_ticket(wk_part *p, wk_event *ev, int64_t ticket_id, int32_t seat_no, int64_t owner,
                     int64_t order_id, int64_t price_cents);

#endif
