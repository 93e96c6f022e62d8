/*
 * intent_id.h - public ids for intents and reservations (docs/pipeline.md).
 *
 * An intent is named by its place in the log, seq = partition << 40 | offset.
 * Its public id is hex16(seq) || hex16(tag), tag = HMAC-SHA256(secret,
 * "<kind>:<seq>:<user_id>") truncated to 8 bytes, so any node can locate the
 * intent and check its owner without a lookup. Thread-safe.
 */
#ifndef ONSALE_QUEUE_INTENT_ID_H
#define ONSALE_QUEUE_INTENT_ID_H

#include <stdint.h>

#define Q_ID_LEN 32          /* characters, without NUL */
#define Q_SEQ_OFFSET_BITS 40 /* offsets must stay below 2^40 */

/* Q_ID_ORDER: an order, seq = its checkout record's place (docs/checkout.md). */
enum q_id_kind { Q_ID_INTENT, Q_ID_RESERVATION, Q_ID_ORDER };

static inline int64_t q_seq_make(int32_t partition, int64_t offset)
{
    return ((int64_t)partition << Q_SEQ_OFFSET_BITS) | offset;
}
/* An order made by a checkout on the control topic (docs/pipeline.md "Two
 * lanes") has this bit set in its offset part, so it never equals an order
 * id made from the intents topic's offsets; control offsets stay below it. */
#define Q_SEQ_CONTROL_BIT (INT64_C(1) << 39)

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

/* Writes the public id (Q_ID_LEN chars + NUL) into out. Returns 0 or
 * ONS_EINVAL (seq or user out of range). */
int q_id_encode(const char *secret, enum q_id_kind kind, int64_t seq, int64_t user_id,
                char out[Q_ID_LEN + 1]);

/* Parses id and checks it belongs to user_id. Returns 0 and *seq, ONS_EPARSE
 * (not 32 lowercase hex chars) or ONS_ENOTFOUND (valid shape, other owner or
 * forged: answer 404). Comparison is constant-time. */
int q_id_decode(const char *secret, enum q_id_kind kind, const char *id, int64_t user_id,
                int64_t *seq);

#endif
