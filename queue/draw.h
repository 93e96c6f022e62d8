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

#include "queue/intent_id.h"

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

/* An event's draw as stored (events.draw_commitment, draw_seed): both as
 * hex, "" when none. Room for twice the length: a longer (corrupt) text is
 * cut, and then matches no hash. */
typedef struct q_draw_published {
    char commitment[2 * Q_DRAW_HEX_LEN + 1];
    char seed_hex[2 * Q_DRAW_HEX_LEN + 1];
} q_draw_published;

/* The two columns (commitment, seed) of a q_draw_published, as SQL over
 * the events table. */
#define Q_DRAW_PUBLISHED_COLUMNS                                                                   \
    "coalesce(draw_commitment, ''), coalesce(encode(draw_seed, 'hex'), '')"

/* The entrants of event $1's draw as stored (columns intent_seq, user_id;
 * in no order): every intent whose join was sent in the pre-queue window,
 * prequeue_opens_at <= accepted_at < onsale_at, except duplicates the
 * owner refused. */
#define Q_DRAW_ENTRANTS_SQL                                                                        \
    "SELECT i.intent_seq, i.user_id FROM intents i "                                               \
    "JOIN events e USING (event_id) WHERE i.event_id = $1 "                                        \
    "AND e.prequeue_opens_at IS NOT NULL "                                                         \
    "AND i.accepted_at >= e.prequeue_opens_at AND i.accepted_at < e.onsale_at "                    \
    "AND NOT (i.state = 'rejected' AND i.reason = 'duplicate')"

/* An intent in an event's draw: what its public id is made of. */
typedef struct q_draw_entrant {
    int64_t seq, user_id;
} q_draw_entrant;

/* An entrant's place in the draw. */
typedef struct q_draw_entry {
    char key[Q_DRAW_HEX_LEN + 1]; /* its draw key */
    char id[Q_ID_LEN + 1];        /* its public intent id */
    int64_t seq;
    size_t at; /* its index among the entrants */
} q_draw_entry;

/* The draw of in[0..n): out[0..n) (the caller's) gets each entrant's public
 * intent id (ids_secret), draw key and index, in draw order (ascending key,
 * ties by seq). The one rule the owner (workers/partition.c), GET
 * /v1/events/{id}/draw and the audit's verify-draw follow. Returns 0 or
 * ONS_EINVAL (an id that cannot be made). */
int q_draw_order(const uint8_t seed[Q_DRAW_SEED_LEN], const char *ids_secret,
                 const q_draw_entrant *in, size_t n, q_draw_entry *out);

#endif
