/* draw.c - seeds, commitments and draw keys of the pre-queue; see draw.h. */
#include "queue/draw.h"
#include "common/hex.h"
#include "common/err.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

int q_draw_seed_new(uint8_t seed[Q_DRAW_SEED_LEN])
{
    return RAND_bytes(seed, Q_DRAW_SEED_LEN) == 1 ? 0 : ONS_EIO;
}

void q_draw_hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

void q_draw_commitment(const uint8_t seed[Q_DRAW_SEED_LEN], char out[Q_DRAW_HEX_LEN + 1])
{
    uint8_t d[SHA256_DIGEST_LENGTH];
    SHA256(seed, Q_DRAW_SEED_LEN, d);
    q_draw_hex(d, sizeof d, out);
}

int q_draw_key(const uint8_t seed[Q_DRAW_SEED_LEN], const char *intent_id,
               char out[Q_DRAW_HEX_LEN + 1])
{
    uint8_t d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!intent_id ||
        !HMAC(EVP_sha256(), seed, Q_DRAW_SEED_LEN, (const unsigned char *)intent_id,
              strlen(intent_id), d, &n) ||
        n != 32)
        return ONS_EINVAL;
    q_draw_hex(d, n, out);
    return 0;
}

int q_draw_seed_parse(const char *hex, uint8_t seed[Q_DRAW_SEED_LEN])
{
    if (!hex || strlen(hex) != Q_DRAW_HEX_LEN)
        return ONS_EPARSE;
    for (size_t i = 0; i < Q_DRAW_SEED_LEN; i++) {
        int hi = ons_hex_digit(hex[2 * i]), lo = ons_hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return ONS_EPARSE;
        seed[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static int entry_cmp(const void *a, const void *b)
{
    const q_draw_entry *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->seq > y->seq) - (x->seq < y->seq);
}

int q_draw_order(const uint8_t seed[Q_DRAW_SEED_LEN], const char *ids_secret,
                 const q_draw_entrant *in, size_t n, q_draw_entry *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i].seq = in[i].seq;
        out[i].at = i;
        if (q_id_encode(ids_secret, Q_ID_INTENT, in[i].seq, in[i].user_id, out[i].id) ||
            q_draw_key(seed, out[i].id, out[i].key))
            return ONS_EINVAL;
    }
    if (n)
        qsort(out, n, sizeof *out, entry_cmp);
    return 0;
}
