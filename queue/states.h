/*
 * states.h - the vocabularies every layer shares: the states of intents,
 * reservations, seats, orders and tickets, the event (sale) statuses, why an
 * intent is rejected, and the limits that ids and requests are built on.
 *
 * Each vocabulary is one X-macro list, X(enum constant, wire name), spelled
 * as the schema's CHECK constraints (schemas/migrations), the HTTP contract
 * (schemas/openapi.yaml) and the Kafka records spell it;
 * tests/unit/check_vocab.py fails when any of those drifts from these lists.
 * Enum values follow list order and live in memory only: PostgreSQL, Redis,
 * Kafka and HTTP carry the names, never the numbers.
 *
 * The functions are pure and thread-safe. A *_name function returns the
 * static wire name, NULL for a NONE entry (no reason, no reservation) and
 * "?" for a value outside the list (a programmer error, shown in a log line
 * instead of crashing it). A *_parse function returns the enum value or
 * ONS_EPARSE for a name that is not in the list (or NULL).
 */
#ifndef ONSALE_QUEUE_STATES_H
#define ONSALE_QUEUE_STATES_H

#include <stdint.h>

/* ---- limits ------------------------------------------------------------------ */

/* Seats per intent, reservation and order, and the highest max_per_user:
 * the CHECKs on intents.quantity, reservations.seat_count and
 * events.max_per_user, the join's quantity, the worker's arrays. */
#define Q_MAX_SEATS 10

/* An intent, reservation and order is named by its record's place in the
 * log, seq = partition << Q_SEQ_OFFSET_BITS | offset (the intents CHECK
 * spells the 40); offsets must stay below 2^40. */
#define Q_SEQ_OFFSET_BITS 40
/* An order made by a checkout on the control topic (docs/pipeline.md "Two
 * lanes") has this bit set in its offset part, so it never equals an order
 * id made from the intents topic's offsets; control offsets stay below it. */
#define Q_SEQ_CONTROL_BIT (INT64_C(1) << 39)

/* events.end_grace_s and tickets.refund_cutoff_s: rules of the sale that
 * ingress (its answers and refusals) and the worker (status ended, refunds)
 * both apply, so both read the same keys with the same range and default
 * (lines of an options.def, common/opts.h: X is the .def's X). */
#define Q_END_GRACE_OPT_ROW(X, field, help)                                                        \
    X(field, ONS_OPT_INT, "events.end_grace_s", 0, 7 * 86400, "21600", help)
#define Q_REFUND_CUTOFF_OPT_ROW(X, field)                                                          \
    X(field, ONS_OPT_INT, "tickets.refund_cutoff_s", 0, 365 * 86400, "86400",                      \
      "a fan may cancel (and be refunded for) a ticket until this long before starts_at")
/* clock.max_ahead_ms: how far past PostgreSQL's (or a batch's) clock a
 * sender's clock is believed, by the worker (a record's send time) and by
 * ingress (the instant a ticket change is judged at): one key, one range,
 * one default. */
#define Q_CLOCK_MAX_AHEAD_OPT_ROW(X, field, help)                                                  \
    X(field, ONS_OPT_INT, "clock.max_ahead_ms", 0, 60000, "2000", help)

static inline int64_t q_seq_make(int32_t partition, int64_t offset)
{
    return ((int64_t)partition << Q_SEQ_OFFSET_BITS) | offset;
}
/* The seq of a record at offset of the intents topic (control 0) or of the
 * control topic (control 1: with Q_SEQ_CONTROL_BIT). */
static inline int64_t q_seq_make_lane(int32_t partition, int64_t offset, int control)
{
    return q_seq_make(partition, control ? (offset | Q_SEQ_CONTROL_BIT) : offset);
}
static inline int32_t q_seq_partition(int64_t seq)
{
    return (int32_t)(seq >> Q_SEQ_OFFSET_BITS);
}
static inline int64_t q_seq_offset(int64_t seq)
{
    return seq & ((INT64_C(1) << Q_SEQ_OFFSET_BITS) - 1);
}

/* ---- vocabularies -------------------------------------------------------------- */

/* intents.state. queued: in the log, not applied yet; waiting: in the
 * event's FIFO line; reserved: holds seats; paying: its order is being
 * charged; the last four are final. */
#define Q_INTENT_STATES(X)                                                                         \
    X(Q_INTENT_QUEUED, "queued")                                                                   \
    X(Q_INTENT_WAITING, "waiting")                                                                 \
    X(Q_INTENT_RESERVED, "reserved")                                                               \
    X(Q_INTENT_PAYING, "paying")                                                                   \
    X(Q_INTENT_PURCHASED, "purchased")                                                             \
    X(Q_INTENT_REJECTED, "rejected")                                                               \
    X(Q_INTENT_EXPIRED, "expired")                                                                 \
    X(Q_INTENT_RELEASED, "released")
/* The one intent state that exists only on the wire: a join in the event's
 * pre-queue before the draw (docs/fairness.md). The worker stores it as
 * waiting (not drawn yet); the API's IntentState lists it first. */
#define Q_INTENT_PREQUEUED "prequeued"

/* intents.reason: why an intent was rejected (or released, cancelled). */
#define Q_INTENT_REASONS(X)                                                                        \
    X(Q_REASON_NONE, NULL)                                                                         \
    X(Q_REASON_SOLD_OUT, "sold_out")                                                               \
    X(Q_REASON_INSUFFICIENT_SEATS, "insufficient_seats")                                           \
    X(Q_REASON_DUPLICATE, "duplicate")                                                             \
    X(Q_REASON_SALE_CLOSED, "sale_closed")                                                         \
    X(Q_REASON_CANCELLED, "cancelled")                                                             \
    X(Q_REASON_MISROUTED, "misrouted")

/* reservations.state (NONE: the intent holds no reservation). */
#define Q_RES_STATES(X)                                                                            \
    X(Q_RES_NONE, NULL)                                                                            \
    X(Q_RES_HELD, "held")                                                                          \
    X(Q_RES_PAYING, "paying")                                                                      \
    X(Q_RES_PURCHASED, "purchased")                                                                \
    X(Q_RES_EXPIRED, "expired")                                                                    \
    X(Q_RES_RELEASED, "released")

/* events.status, the sale's status; written by the event's partition
 * owner only. cancelled and ended are final. */
#define Q_EVENT_STATUSES(X)                                                                        \
    X(Q_EVENT_SCHEDULED, "scheduled")                                                              \
    X(Q_EVENT_ON_SALE, "on_sale")                                                                  \
    X(Q_EVENT_PAUSED, "paused")                                                                    \
    X(Q_EVENT_SOLD_OUT, "sold_out")                                                                \
    X(Q_EVENT_CANCELLED, "cancelled")                                                              \
    X(Q_EVENT_ENDED, "ended")

/* seats.status. */
#define Q_SEAT_STATES(X)                                                                           \
    X(Q_SEAT_AVAILABLE, "available")                                                               \
    X(Q_SEAT_HELD, "held")                                                                         \
    X(Q_SEAT_PAYING, "paying")                                                                     \
    X(Q_SEAT_SOLD, "sold")

/* orders.state. */
#define Q_ORDER_STATES(X)                                                                          \
    X(Q_ORDER_PENDING, "pending")                                                                  \
    X(Q_ORDER_PAID, "paid")                                                                        \
    X(Q_ORDER_FAILED, "failed")                                                                    \
    X(Q_ORDER_REFUNDED, "refunded")

/* orders.failure_reason: why an order failed (not_held: no live hold to
 * pay for; declined / failed: the gateway's answer; expired: the hold ran
 * out while paying; cancelled / ended: the sale closed while paying). */
#define Q_ORDER_REASONS(X)                                                                         \
    X(Q_ORDER_REASON_NONE, NULL)                                                                   \
    X(Q_ORDER_REASON_NOT_HELD, "not_held")                                                         \
    X(Q_ORDER_REASON_DECLINED, "declined")                                                         \
    X(Q_ORDER_REASON_FAILED, "failed")                                                             \
    X(Q_ORDER_REASON_EXPIRED, "expired")                                                           \
    X(Q_ORDER_REASON_CANCELLED, "cancelled")                                                       \
    X(Q_ORDER_REASON_ENDED, "ended")

/* tickets.status: cancelled by its owner (price refunded) or voided
 * because its event was cancelled (order refunded). */
#define Q_TICKET_STATUSES(X)                                                                       \
    X(Q_TICKET_VALID, "valid")                                                                     \
    X(Q_TICKET_CANCELLED, "cancelled")                                                             \
    X(Q_TICKET_VOIDED, "voided")

#define Q_STATES_ENUM(e, s) e,
enum q_intent_state { Q_INTENT_STATES(Q_STATES_ENUM) Q_INTENT_STATE_COUNT };
enum q_reason { Q_INTENT_REASONS(Q_STATES_ENUM) Q_REASON_COUNT };
enum q_res_state { Q_RES_STATES(Q_STATES_ENUM) Q_RES_STATE_COUNT };
enum q_event_status { Q_EVENT_STATUSES(Q_STATES_ENUM) Q_EVENT_STATUS_COUNT };
enum q_seat_state { Q_SEAT_STATES(Q_STATES_ENUM) Q_SEAT_STATE_COUNT };
enum q_order_state { Q_ORDER_STATES(Q_STATES_ENUM) Q_ORDER_STATE_COUNT };
enum q_order_reason { Q_ORDER_REASONS(Q_STATES_ENUM) Q_ORDER_REASON_COUNT };
enum q_ticket_status { Q_TICKET_STATUSES(Q_STATES_ENUM) Q_TICKET_STATUS_COUNT };
#undef Q_STATES_ENUM

const char *q_intent_state_name(int s);
int q_intent_state_parse(const char *name);
const char *q_reason_name(int r);
int q_reason_parse(const char *name);
const char *q_res_state_name(int s);
int q_res_state_parse(const char *name);
const char *q_event_status_name(int s);
int q_event_status_parse(const char *name);
const char *q_seat_state_name(int s);
int q_seat_state_parse(const char *name);
const char *q_order_state_name(int s);
int q_order_state_parse(const char *name);
const char *q_order_reason_name(int r);
int q_order_reason_parse(const char *name);
const char *q_ticket_status_name(int s);
int q_ticket_status_parse(const char *name);

/* 1 for queued, waiting, reserved and paying: the states in which a fan
 * holds his one place per event (the intents_one_active index). */
int q_intent_state_active(int s);
/* 1 for purchased, rejected, expired and released: nothing changes after. */
int q_intent_state_final(int s);
/* 1 for the statuses an event_status record may ask for (on_sale: resume;
 * paused, cancelled, ended); scheduled and sold_out are the owner's. */
int q_event_status_settable(int s);
/* 1 for cancelled and ended: the sale is over, for good. */
int q_event_status_closed(int s);

#endif
