/*
 * draw.h - the pre-queue's verifiable draw (docs/fairness.md).
 *
 * An event with a pre-queue has a 32-byte random seed made at its creation;
 * its commitment, hex SHA-256(seed), is public from then on and the seed
 * from onsale_at. The pre-queued intents are served in ascending order of
 * their draw key, hex HMAC-SHA256(key = seed, message = the intent's public
 * id in ASCII), ties (never seen) by seq. Anyone holding the seed and the
 * ids recomputes the order. Pure functions; any thread.
 */
#ifndef ONSALE_QUEUE_DRAW_H
#define ONSALE_QUEUE_DRAW_H

#include <stddef.h>
#include <stdint.h>

#define Q_DRAW_SEED_LEN 32
#define Q_DRAW_HEX_LEN  64

/* Fills seed with random bytes. Returns 0 or ONS_EIO (no randomness). */
int q_draw_seed_new(uint8_t seed[Q_DRAW_SEED_LEN]);
/* hex SHA-256(seed), NUL-terminated. */
void q_draw_commitment(const uint8_t seed[Q_DRAW_SEED_LEN], char out[Q_DRAW_HEX_LEN + 1]);
/* The draw key of one intent: hex HMAC-SHA256(seed, intent_id). Returns 0
 * or ONS_EINVAL. */
int q_draw_key(const uint8_t seed[Q_DRAW_SEED_LEN], const char *intent_id,
               char out[Q_DRAW_HEX_LEN + 1]);
/* Lowercase hex of n bytes into out (2n + 1 bytes). */
void q_draw_hex(const uint8_t *b, size_t n, char *out);
/* Parses 64 hex characters into seed. Returns 0 or ONS_EPARSE. */
int q_draw_seed_parse(const char *hex, uint8_t seed[Q_DRAW_SEED_LEN]);

#endif
