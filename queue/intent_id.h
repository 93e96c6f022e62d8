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

#include "queue/states.h" /* seq = partition << Q_SEQ_OFFSET_BITS | offset */

#include <stdint.h>

#define Q_ID_LEN 32 /* characters, without NUL */

/* Q_ID_ORDER: an order, seq = its checkout record's place (docs/checkout.md). */
enum q_id_kind { Q_ID_INTENT, Q_ID_RESERVATION, Q_ID_ORDER };

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
