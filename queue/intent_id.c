/* intent_id.c - public ids for intents and reservations; see intent_id.h. */
#include "queue/intent_id.h"
#include "common/hex.h"
#include "common/err.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static const char *kind_names[] = {"intent", "reservation", "order"};

/* Each thread keeps one keyed HMAC context and re-initialises it per tag
 * with the same key (EVP_MAC_init with a NULL key reuses the prepared key):
 * the one-shot HMAC() fetched the algorithm and derived the key pads on
 * every call, a few microseconds per status poll. */
typedef struct mac_cache {
    char *secret;
    EVP_MAC_CTX *ctx;
} mac_cache;

static pthread_key_t mac_key;
static pthread_once_t mac_once = PTHREAD_ONCE_INIT;
static int mac_key_ok;

static void mac_cache_free(void *p)
{
    mac_cache *m = p;
    if (!m)
        return;
    EVP_MAC_CTX_free(m->ctx);
    free(m->secret);
    free(m);
}

static void mac_key_init(void)
{
    mac_key_ok = pthread_key_create(&mac_key, mac_cache_free) == 0;
}

/* This thread's context keyed with secret, or NULL. */
static EVP_MAC_CTX *thread_mac(const char *secret)
{
    pthread_once(&mac_once, mac_key_init);
    if (!mac_key_ok)
        return NULL;
    mac_cache *m = pthread_getspecific(mac_key);
    if (m && strcmp(m->secret, secret) == 0)
        return EVP_MAC_init(m->ctx, NULL, 0, NULL) == 1 ? m->ctx : NULL;
    mac_cache_free(m);
    pthread_setspecific(mac_key, NULL);
    m = calloc(1, sizeof *m);
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!m || !mac || !(m->secret = strdup(secret)) || !(m->ctx = EVP_MAC_CTX_new(mac))) {
        EVP_MAC_free(mac);
        mac_cache_free(m);
        return NULL;
    }
    EVP_MAC_free(mac);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end()};
    if (EVP_MAC_init(m->ctx, (const unsigned char *)secret, strlen(secret), params) != 1) {
        mac_cache_free(m);
        return NULL;
    }
    pthread_setspecific(mac_key, m);
    return m->ctx;
}

/* Computes the 8-byte tag of (kind, seq, user) into tag. */
static int make_tag(const char *secret, enum q_id_kind kind, int64_t seq, int64_t user_id,
                    unsigned char tag[8])
{
    char msg[96];
    int len = snprintf(msg, sizeof msg, "%s:%lld:%lld", kind_names[kind], (long long)seq,
                       (long long)user_id);
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;
    EVP_MAC_CTX *ctx = thread_mac(secret);
    if (ctx && EVP_MAC_update(ctx, (const unsigned char *)msg, (size_t)len) == 1 &&
        EVP_MAC_final(ctx, mac, &mac_len, sizeof mac) == 1 && mac_len >= 8) {
        memcpy(tag, mac, 8);
        return 0;
    }
    unsigned int one_shot_len = 0;
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg, (size_t)len,
              mac, &one_shot_len))
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
