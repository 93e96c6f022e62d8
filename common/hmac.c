/* hmac.c - per-thread keyed HMAC-SHA256 contexts; see hmac.h. */
#include "common/hmac.h"
#include "common/err.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct keyed {
    char *secret;
    EVP_MAC_CTX *ctx;
    uint64_t used; /* the thread's call count at its last use */
} keyed;

typedef struct thread_keys {
    keyed k[ONS_HMAC_KEYS];
    uint64_t calls;
} thread_keys;

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_ok;

static void keyed_clear(keyed *k)
{
    EVP_MAC_CTX_free(k->ctx);
    free(k->secret);
    memset(k, 0, sizeof *k);
}

static void thread_keys_free(void *p)
{
    thread_keys *t = p;
    if (!t)
        return;
    for (int i = 0; i < ONS_HMAC_KEYS; i++)
        keyed_clear(&t->k[i]);
    free(t);
}

static void tls_init(void)
{
    tls_ok = pthread_key_create(&tls_key, thread_keys_free) == 0;
}

/* A new context keyed with secret into k (cleared first). 0 or -1. */
static int keyed_make(keyed *k, const char *secret)
{
    keyed_clear(k);
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!mac || !(k->secret = strdup(secret)) || !(k->ctx = EVP_MAC_CTX_new(mac))) {
        EVP_MAC_free(mac);
        keyed_clear(k);
        return -1;
    }
    EVP_MAC_free(mac);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end()};
    if (EVP_MAC_init(k->ctx, (const unsigned char *)secret, strlen(secret), params) != 1) {
        keyed_clear(k);
        return -1;
    }
    return 0;
}

/* This thread's context for secret, ready for data, or NULL. */
static EVP_MAC_CTX *thread_ctx(const char *secret)
{
    pthread_once(&tls_once, tls_init);
    if (!tls_ok)
        return NULL;
    thread_keys *t = pthread_getspecific(tls_key);
    if (!t) {
        if (!(t = calloc(1, sizeof *t)) || pthread_setspecific(tls_key, t) != 0) {
            free(t);
            return NULL;
        }
    }
    t->calls++;
    keyed *lru = &t->k[0];
    for (int i = 0; i < ONS_HMAC_KEYS; i++) {
        keyed *k = &t->k[i];
        if (k->secret && strcmp(k->secret, secret) == 0) {
            k->used = t->calls;
            /* a NULL key keeps the prepared one */
            return EVP_MAC_init(k->ctx, NULL, 0, NULL) == 1 ? k->ctx : NULL;
        }
        if (k->used < lru->used)
            lru = k;
    }
    if (keyed_make(lru, secret))
        return NULL;
    lru->used = t->calls;
    return lru->ctx;
}

int ons_hmac_sha256(const char *secret, const void *data, size_t len, unsigned char out[32])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t mac_len = 0;
    EVP_MAC_CTX *ctx = thread_ctx(secret);
    if (ctx && EVP_MAC_update(ctx, data, len) == 1 &&
        EVP_MAC_final(ctx, mac, &mac_len, sizeof mac) == 1 && mac_len == 32) {
        memcpy(out, mac, 32);
        return 0;
    }
    unsigned int one_shot_len = 0;
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), data, len, mac, &one_shot_len) ||
        one_shot_len != 32)
        return ONS_ENOMEM;
    memcpy(out, mac, 32);
    return 0;
}
