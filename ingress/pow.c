/* pow.c - proof-of-work challenges: sign, verify, solve; see pow.h. */
#include "ingress/pow.h"
#include "common/err.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_LABEL "onsale/pow/v1"
#define SALT_HEX  16

/* key = HMAC-SHA256(ids_secret, KEY_LABEL). Two HMACs per challenge is a
 * few microseconds, paid only on events that ask for work. */
static int derive_key(const char *ids_secret, unsigned char key[32])
{
    unsigned int len = 0;
    return HMAC(EVP_sha256(), ids_secret, (int)strlen(ids_secret), (const unsigned char *)KEY_LABEL,
                sizeof KEY_LABEL - 1, key, &len) &&
                   len == 32
               ? 0
               : ONS_EIO;
}

static void hex(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The tag of body[0..len) in hex (ING_POW_TAG_HEX digits). */
static int tag_of(const char *ids_secret, const char *body, size_t len,
                  char out[ING_POW_TAG_HEX + 1])
{
    unsigned char key[32], mac[32];
    unsigned int mlen = 0;
    int rc = derive_key(ids_secret, key);
    if (rc == 0 &&
        !(HMAC(EVP_sha256(), key, sizeof key, (const unsigned char *)body, len, mac, &mlen) &&
          mlen == 32))
        rc = ONS_EIO;
    OPENSSL_cleanse(key, sizeof key);
    if (rc == 0)
        hex(mac, ING_POW_TAG_HEX / 2, out);
    return rc;
}

int ing_pow_challenge(const char *ids_secret, int64_t event_id, int64_t user_id, int difficulty,
                      int64_t expires_ms, char *out, size_t cap)
{
    unsigned char salt[SALT_HEX / 2];
    char salt_hex[SALT_HEX + 1], tag[ING_POW_TAG_HEX + 1];
    if (event_id <= 0 || user_id <= 0 || difficulty < 1 || difficulty > ING_POW_MAX_DIFFICULTY ||
        expires_ms <= 0 || cap < ING_POW_CHALLENGE_MAX)
        return ONS_EINVAL;
    if (RAND_bytes(salt, sizeof salt) != 1)
        return ONS_EIO;
    hex(salt, sizeof salt, salt_hex);
    int n = snprintf(out, cap, "1.%" PRId64 ".%" PRId64 ".%d.%" PRId64 ".%s", event_id, user_id,
                     difficulty, expires_ms, salt_hex);
    if (n < 0 || (size_t)n + 1 + ING_POW_TAG_HEX >= cap)
        return ONS_EINVAL;
    int rc = tag_of(ids_secret, out, (size_t)n, tag);
    if (rc)
        return rc;
    snprintf(out + n, cap - (size_t)n, ".%s", tag);
    return 0;
}

/* A decimal field of 1 to 19 digits without a leading zero, ending at
 * '.'; advances *p past the dot. */
static int field(const char **p, int64_t *out)
{
    const char *s = *p;
    size_t n = 0;
    int64_t v = 0;
    while (s[n] >= '0' && s[n] <= '9') {
        if (n == 18)
            return -1;
        v = v * 10 + (s[n] - '0');
        n++;
    }
    if (n == 0 || s[n] != '.' || (n > 1 && s[0] == '0'))
        return -1;
    *out = v;
    *p = s + n + 1;
    return 0;
}

static int lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int nonce_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ING_POW_NONCE_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

int ing_pow_zero_bits(const unsigned char *d, size_t n)
{
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] == 0) {
            bits += 8;
            continue;
        }
        for (int b = 7; b >= 0 && !(d[i] >> b & 1); b--)
            bits++;
        break;
    }
    return bits;
}

int ing_pow_work(const char *challenge, const char *nonce)
{
    char buf[ING_POW_CHALLENGE_MAX + 1 + ING_POW_NONCE_MAX + 1];
    unsigned char d[SHA256_DIGEST_LENGTH];
    int n = snprintf(buf, sizeof buf, "%s:%s", challenge, nonce);
    if (n < 0 || (size_t)n >= sizeof buf)
        return -1;
    SHA256((const unsigned char *)buf, (size_t)n, d);
    return ing_pow_zero_bits(d, sizeof d);
}

ing_pow_verdict ing_pow_verify(const char *ids_secret, const char *header, int64_t event_id,
                               int64_t user_id, int min_difficulty, int64_t now_ms,
                               ing_pow_proof *proof)
{
    char challenge[ING_POW_CHALLENGE_MAX], tag[ING_POW_TAG_HEX + 1];
    const char *colon = header ? strrchr(header, ':') : NULL;
    if (!colon || (size_t)(colon - header) >= sizeof challenge || !nonce_ok(colon + 1))
        return ING_POW_MALFORMED;
    size_t clen = (size_t)(colon - header);
    memcpy(challenge, header, clen);
    challenge[clen] = '\0';

    /* 1.<event>.<user>.<difficulty>.<expires_ms>.<salt>.<tag> */
    int64_t ev, user, diff, expires;
    const char *p = challenge;
    if (strncmp(p, "1.", 2) != 0)
        return ING_POW_MALFORMED;
    p += 2;
    if (field(&p, &ev) || field(&p, &user) || field(&p, &diff) || field(&p, &expires))
        return ING_POW_MALFORMED;
    size_t rest = clen - (size_t)(p - challenge);
    if (rest != SALT_HEX + 1 + ING_POW_TAG_HEX || !lower_hex(p, SALT_HEX) || p[SALT_HEX] != '.' ||
        !lower_hex(p + SALT_HEX + 1, ING_POW_TAG_HEX) || diff < 1 || diff > ING_POW_MAX_DIFFICULTY)
        return ING_POW_MALFORMED;
    size_t body_len = clen - 1 - ING_POW_TAG_HEX;
    if (tag_of(ids_secret, challenge, body_len, tag) ||
        CRYPTO_memcmp(tag, challenge + body_len + 1, ING_POW_TAG_HEX) != 0)
        return ING_POW_BAD_TAG;
    if (ev != event_id)
        return ING_POW_WRONG_EVENT;
    if (user != user_id)
        return ING_POW_WRONG_USER;
    if (expires <= now_ms)
        return ING_POW_EXPIRED;
    if (diff < min_difficulty)
        return ING_POW_TOO_EASY;
    if (ing_pow_work(challenge, colon + 1) < (int)diff)
        return ING_POW_UNSOLVED;
    if (proof) {
        proof->event_id = ev;
        proof->user_id = user;
        proof->expires_ms = expires;
        proof->difficulty = (int)diff;
        memcpy(proof->tag, tag, sizeof tag);
    }
    return ING_POW_OK;
}

const char *ing_pow_verdict_message(ing_pow_verdict v)
{
    switch (v) {
    case ING_POW_OK:
        return "The proof of work is valid.";
    case ING_POW_MALFORMED:
        return "Header 'Onsale-PoW' must be '<challenge>:<nonce>' with a challenge from "
               "GET /v1/events/{id}/challenge.";
    case ING_POW_BAD_TAG:
        return "The challenge was not issued by this service.";
    case ING_POW_WRONG_EVENT:
        return "The challenge was issued for another event.";
    case ING_POW_WRONG_USER:
        return "The challenge was issued to another user.";
    case ING_POW_EXPIRED:
        return "The challenge has expired; fetch a new one.";
    case ING_POW_TOO_EASY:
        return "The event's difficulty was raised; fetch a new challenge.";
    case ING_POW_UNSOLVED:
        return "The nonce does not solve the challenge.";
    }
    return "The proof of work is invalid.";
}

int ing_pow_solve(const char *challenge, int difficulty, uint64_t start, uint64_t max_tries,
                  char *nonce, size_t cap)
{
    char buf[ING_POW_CHALLENGE_MAX + 1 + 21];
    unsigned char d[SHA256_DIGEST_LENGTH];
    int prefix = snprintf(buf, sizeof buf, "%s:", challenge);
    if (prefix < 0 || (size_t)prefix >= ING_POW_CHALLENGE_MAX + 1 || cap < 21)
        return ONS_EINVAL;
    /* The prefix's state is hashed once; each try adds only the nonce. */
    EVP_MD_CTX *base = EVP_MD_CTX_new(), *c = EVP_MD_CTX_new();
    int rc = ONS_ENOTFOUND;
    if (!base || !c || EVP_DigestInit_ex(base, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(base, buf, (size_t)prefix) != 1)
        rc = ONS_ENOMEM;
    for (uint64_t i = 0; rc == ONS_ENOTFOUND && i < max_tries; i++) {
        char num[21];
        unsigned int dlen = 0;
        int n = snprintf(num, sizeof num, "%" PRIu64, start + i);
        if (EVP_MD_CTX_copy_ex(c, base) != 1 || EVP_DigestUpdate(c, num, (size_t)n) != 1 ||
            EVP_DigestFinal_ex(c, d, &dlen) != 1) {
            rc = ONS_ENOMEM;
            break;
        }
        if (ing_pow_zero_bits(d, sizeof d) >= difficulty) {
            snprintf(nonce, cap, "%s", num);
            rc = 0;
        }
    }
    EVP_MD_CTX_free(c);
    EVP_MD_CTX_free(base);
    return rc;
}
