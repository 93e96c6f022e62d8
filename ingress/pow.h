/*
 * pow.h - proof-of-work challenges for joins (docs/fairness.md "Bot
 * friction"): making a signed challenge, checking a solution, solving one.
 *
 * A challenge is one ASCII string without ':' that carries what it is good
 * for and is signed by ingress:
 *
 *     1.<event_id>.<user_id>.<difficulty>.<expires_ms>.<salt>.<tag>
 *
 * salt is 16 random hex digits (two challenges never share a tag), tag is
 * the first 16 bytes of HMAC-SHA256(key, everything before ".<tag>") in
 * lowercase hex, where key = HMAC-SHA256(ids.secret, "onsale/pow/v1"): a
 * key derived from the ids secret (docs/security.md), so every node that
 * can read a public id can check a challenge and no id tag is ever a valid
 * challenge tag. A join proves the work with the header
 *
 *     Onsale-PoW: <challenge>:<nonce>
 *
 * where nonce is 1 to ING_POW_NONCE_MAX characters [0-9A-Za-z_-] and
 * SHA-256(challenge ":" nonce) starts with at least <difficulty> zero bits.
 *
 * Everything here is pure computation (no I/O, any thread); single use of
 * a solution is the caller's business (q_status_pow_spend).
 */
#ifndef ONSALE_INGRESS_POW_H
#define ONSALE_INGRESS_POW_H

#include <stddef.h>
#include <stdint.h>

/* The largest difficulty an event may ask for (schemas/migrations/0010). */
#define ING_POW_MAX_DIFFICULTY 32
/* The join's header carrying "<challenge>:<nonce>". */
#define ING_POW_HEADER "Onsale-PoW"
/* Room for the header's value (challenge, ":", nonce, NUL). */
#define ING_POW_HEADER_MAX 168
/* Room for any challenge: "1." + 6 numbers + salt + tag + dots, and NUL. */
#define ING_POW_CHALLENGE_MAX 128
#define ING_POW_NONCE_MAX     32
/* The tag in hex: what names a challenge for single use. */
#define ING_POW_TAG_HEX 32

/* What ing_pow_verify found. */
typedef enum ing_pow_verdict {
    ING_POW_OK = 0,
    ING_POW_MALFORMED, /* not "<challenge>:<nonce>" of our format */
    ING_POW_BAD_TAG,   /* not signed by this deployment (or altered) */
    ING_POW_WRONG_EVENT,
    ING_POW_WRONG_USER,
    ING_POW_EXPIRED,
    ING_POW_TOO_EASY, /* issued at a difficulty below the event's current one */
    ING_POW_UNSOLVED, /* the hash has too few leading zero bits */
} ing_pow_verdict;

/* A verified solution's facts. */
typedef struct ing_pow_proof {
    int64_t event_id, user_id, expires_ms;
    int difficulty;
    char tag[ING_POW_TAG_HEX + 1];
} ing_pow_proof;

/* Writes a challenge for (event_id, user_id) at difficulty (1 to
 * ING_POW_MAX_DIFFICULTY), valid until expires_ms, into out (cap >=
 * ING_POW_CHALLENGE_MAX), signed with the key derived from ids_secret.
 * Returns 0, ONS_EINVAL (bad argument) or ONS_EIO (no randomness or HMAC). */
int ing_pow_challenge(const char *ids_secret, int64_t event_id, int64_t user_id, int difficulty,
                      int64_t expires_ms, char *out, size_t cap);

/* Checks header (the Onsale-PoW value) for a join of event_id by user_id at
 * now_ms when the event asks for min_difficulty (>= 1) leading zero bits.
 * Checks run cheapest first: format, tag, binding, expiry, difficulty,
 * then the hash. Fills *proof when ING_POW_OK. */
ing_pow_verdict ing_pow_verify(const char *ids_secret, const char *header, int64_t event_id,
                               int64_t user_id, int min_difficulty, int64_t now_ms,
                               ing_pow_proof *proof);

/* A sentence for the client saying what was wrong (never NULL). */
const char *ing_pow_verdict_message(ing_pow_verdict v);

/* The number of leading zero bits of the n bytes at digest. */
int ing_pow_zero_bits(const unsigned char *digest, size_t n);

/* Leading zero bits of SHA-256(challenge ":" nonce); -1 if the input is
 * too long. */
int ing_pow_work(const char *challenge, const char *nonce);

/* Finds a nonce (decimal, counting from start) whose work reaches
 * difficulty, trying at most max_tries; writes it to nonce (cap >= 21).
 * Returns 0, or ONS_ENOTFOUND when none was found within max_tries. For
 * tests and the simulator: clients do this, ingress never does. */
int ing_pow_solve(const char *challenge, int difficulty, uint64_t start, uint64_t max_tries,
                  char *nonce, size_t cap);

#endif
