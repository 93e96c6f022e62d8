/* intent_id.c - public ids for intents and reservations; see intent_id.h. */
#include "queue/intent_id.h"
#include "common/hex.h"
#include "common/err.h"
#include "common/hmac.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static const char *kind_names[] = {"intent", "reservation", "order"};

/* Computes the 8-byte tag of (kind, seq, user) into tag. */
static int make_tag(const char *secret, enum q_id_kind kind, int64_t seq, int64_t user_id,
                    unsigned char tag[8])
{
    char msg[96];
    int len = snprintf(msg, sizeof msg, "%s:%lld:%lld", kind_names[kind], (long long)seq,
                       (long long)user_id);
    unsigned char mac[32];
    if (ons_hmac_sha256(secret, msg, (size_t)len, mac))
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
    int n = snprintf(out, Q_ID_LEN + 1, "%016llx", (unsigned long long)seq);
    for (int i = 0; i < 8; i++)
        n += snprintf(out + n, (size_t)(Q_ID_LEN + 1 - n), "%02x", tag[i]);
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
