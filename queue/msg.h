/*
 * msg.h - the versioned codec for messages on the "intents" topic.
 *
 * Every record on the topic is a JSON object {"v":1,"type":...} whose shape
 * is documented as JSON Schema in schemas/messages/<type>.schema.json. The key
 * of every record is the decimal event_id, so all messages about one event
 * land in one partition and are applied in order by that partition's owner.
 *
 * Decoding is strict: unknown versions, types or fields, wrong JSON types and
 * out-of-range values are rejected with ONS_EPARSE, because a worker must be
 * able to skip (and count) a poison record instead of crashing on it.
 */
#ifndef ONSALE_QUEUE_MSG_H
#define ONSALE_QUEUE_MSG_H

#include <stddef.h>
#include <stdint.h>

#define Q_MSG_VERSION     1
#define Q_MSG_MAX_SECTION 64

#define Q_MSG_TYPES(X)                                                         \
    X(Q_MSG_INTENT, "intent")                                                  \
    X(Q_MSG_CANCEL, "cancel")                                                  \
    X(Q_MSG_EVENT_STATUS, "event_status")                                      \
    X(Q_MSG_CHECKOUT, "checkout")                                              \
    X(Q_MSG_PAYMENT_RESULT, "payment_result")                                  \
    X(Q_MSG_TICKET, "ticket")                                                  \
    X(Q_MSG_ADMISSION, "admission")

enum q_msg_type {
#define Q_MSG_ENUM(e, s) e,
    Q_MSG_TYPES(Q_MSG_ENUM)
#undef Q_MSG_ENUM
        Q_MSG_TYPE_COUNT
};

/* The two co-partitioned topics (docs/pipeline.md "Two lanes"): joins ride
 * the intents topic; records that must not wait behind a join backlog
 * (checkout, payment_result, cancel, ticket) ride the control topic, which
 * has the same partition count and key, so partition p of both carries the
 * same events and has one owner. event_status stays with the joins: a sale
 * status applies to the joins after it in send order and to none before
 * (test_sale_rules), an order two lanes cannot keep. */
enum q_topic { Q_TOPIC_INTENTS, Q_TOPIC_CONTROL, Q_TOPIC_COUNT };

/* The topic a record of this type is produced to. */
static inline enum q_topic q_msg_topic(enum q_msg_type type)
{
    return type == Q_MSG_INTENT || type == Q_MSG_EVENT_STATUS ? Q_TOPIC_INTENTS
                                                              : Q_TOPIC_CONTROL;
}

/* The control topic's name: `configured` when not empty, else
 * "<intents>.control". Returns 0 or ONS_EINVAL (does not fit out). */
int q_topic_control_name(const char *intents, const char *configured, char *out, size_t out_len);

/* What a cancel message withdraws. */
enum q_cancel_kind { Q_CANCEL_INTENT, Q_CANCEL_RESERVATION };

/* A payment_result's outcome: the gateway's definitive answer. */
enum q_pay_outcome { Q_PAY_SUCCEEDED, Q_PAY_DECLINED, Q_PAY_FAILED };

/* What a ticket message does to the ticket. */
enum q_ticket_kind { Q_TICKET_TRANSFER, Q_TICKET_CANCEL };

#define Q_MSG_MAX_PM     64 /* payment_method */
#define Q_MSG_MAX_CHARGE 64 /* gateway_charge_id */

/* The record header naming the HTTP request that produced a record (its
 * X-Request-Id), so the worker's log lines about it carry the same id
 * (q_producer_send_at, q_record_header). Not part of the value. */
#define Q_HEADER_REQUEST_ID "request_id"

typedef struct q_msg {
    enum q_msg_type type;
    int64_t event_id; /* > 0; also the record key */
    int64_t user_id;  /* > 0 for intent/cancel; 0 for event_status */
    /* ms since epoch: the producer's wall clock at the send, except in a
     * Q_MSG_TICKET record: the instant ingress judged the change at
     * (ing_ticket_for_change), which the owner judges it at again. */
    int64_t sent_ms;

    /* Q_MSG_INTENT */
    int quantity;                        /* 1..Q_MAX_SEATS */
    char section[Q_MSG_MAX_SECTION + 1]; /* "" = any section */
    int64_t max_price_cents;             /* 0 = no limit */
    int adjacent;                        /* 0/1 */

    /* Q_MSG_CANCEL: the intent is named by where it sits in the log. */
    enum q_cancel_kind cancel_kind;
    int32_t target_partition;
    int64_t target_offset;
    int64_t reservation_id; /* Q_CANCEL_RESERVATION only */

    /* Q_MSG_EVENT_STATUS */
    char status[16]; /* q_event_status_settable: on_sale, paused, cancelled, ended */

    /* Q_MSG_CHECKOUT: pay for reservation_id (above; user_id owns it). The
     * order is named by the checkout record's own place in the log:
     * order_id = partition << 40 | offset (docs/checkout.md). */
    char payment_method[Q_MSG_MAX_PM + 1];

    /* Q_MSG_PAYMENT_RESULT: the gateway's answer for order_id, whose
     * reservation is reservation_id (above); user_id is 0. */
    int64_t order_id;
    enum q_pay_outcome outcome;
    char charge_id[Q_MSG_MAX_CHARGE + 1]; /* "" = none (declined / failed) */
    int64_t amount_cents;

    /* Q_MSG_TICKET: user_id (the current owner) transfers or cancels. */
    enum q_ticket_kind ticket_kind;
    int64_t ticket_id;  /* > 0 */
    int64_t to_user_id; /* > 0 for a transfer, else 0 */

    /* Q_MSG_ADMISSION: the event's admission caps (docs/fairness.md);
     * 0 = no cap. */
    int64_t max_active_holds;
    int64_t admissions_per_minute;
} q_msg;

/* Largest admission cap a record may carry. */
#define Q_MSG_MAX_ADMISSION 10000000

/* Returns "intent", "cancel", ...; never NULL. */
const char *q_msg_type_name(enum q_msg_type type);

/* Encodes m as JSON into a heap string the caller frees with free().
 * Returns 0, ONS_EINVAL (m violates the schema) or ONS_ENOMEM. */
int q_msg_encode(const q_msg *m, char **out, size_t *out_len);

/* Decodes len bytes (not NUL-terminated) into *m. Returns 0 or ONS_EPARSE,
 * writing the reason into why (may be NULL). */
int q_msg_decode(const void *buf, size_t len, q_msg *m, char *why, size_t why_len);

/* q_msg_decode through jansson alone. q_msg_decode reads plain join
 * records in a fast path of its own and hands everything else to this; the
 * two agree on every input (test_msg). */
int q_msg_decode_json(const void *buf, size_t len, q_msg *m, char *why, size_t why_len);

#endif
