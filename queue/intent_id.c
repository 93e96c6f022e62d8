/* intent_id.c - public ids for intents and reservations; see intent_id.h. */
#include "queue/intent_id.h"
#include "common/hex.h"
#include "common/err.h"
#include "common/hmac.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

static const char *kind_names[] = {"intent", "reservation", "order"};

/* Writes the n bytes of b as lower-case hex at w (2n characters). The ids
 * are written on every join and poll answer: a table, not snprintf. */
static void put_hex(char *w, const unsigned char *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        w[2 * i] = digits[b[i] >> 4];
        w[2 * i + 1] = digits[b[i] & 15];
    }
}

/* Computes the 8-byte tag of (kind, seq, user) into tag: HMAC over
 * "<kind>:<seq>:<user>" (seq >= 0 and user > 0 by the callers' checks). */
static int make_tag(const char *secret, enum q_id_kind kind, int64_t seq, int64_t user_id,
                    unsigned char tag[8])
{
    char msg[96];
    size_t kl = strlen(kind_names[kind]);
    memcpy(msg, kind_names[kind], kl);
    char *w = msg + kl;
    *w++ = ':';
    w = ons_put_dec(w, (uint64_t)seq);
    *w++ = ':';
    w = ons_put_dec(w, (uint64_t)user_id);
    size_t len = (size_t)(w - msg);
    unsigned char mac[32];
    if (ons_hmac_sha256(secret, msg, len, mac))
        return ONS_ENOMEM;
    memcpy(tag, mac, 8);
    return 0;
}

int q_id_encode(const char *secret, enum q_id_kind kind, int64_t seq, int64_t user_id,
                char out[Q_ID_LEN + 1])
{
    unsigned char tag[8];
    if (seq < 0 || user_id <= 0 || (unsigned)kind > Q_ID_ORDER)
        return ONS_EINVAL;
    int rc = make_tag(secret, kind, seq, user_id, tag);
    if (rc)
        return rc;
    unsigned char be[8];
    for (int i = 0; i < 8; i++)
        be[i] = (unsigned char)((uint64_t)seq >> (56 - 8 * i));
    put_hex(out, be, 8);
    put_hex(out + 16, tag, 8);
    out[Q_ID_LEN] = '\0';
    return 0;
}

int q_id_decode(const char *secret, enum q_id_kind kind, const char *id, int64_t user_id,
                int64_t *seq)
{
    if (!id || strlen(id) != Q_ID_LEN || (unsigned)kind > Q_ID_ORDER)
        return ONS_EPARSE;
    unsigned char bytes[16];
    for (int i = 0; i < 16; i++) {
        int hi = ons_hex_digit_lower(id[2 * i]), lo = ons_hex_digit_lower(id[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return ONS_EPARSE;
        bytes[i] = (unsigned char)(hi << 4 | lo);
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | bytes[i];
    if (v > INT64_MAX || user_id <= 0)
        return ONS_ENOTFOUND;
    unsigned char tag[8];
    if (make_tag(secret, kind, (int64_t)v, user_id, tag))
        return ONS_ENOMEM;
    if (CRYPTO_memcmp(tag, bytes + 8, 8) != 0)
        return ONS_ENOTFOUND;
    *seq = (int64_t)v;
    return 0;
}
