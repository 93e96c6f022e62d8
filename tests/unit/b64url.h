/*
 * b64url.h - base64url without padding and bearer tokens signed by hand, for
 * tests that build JWTs themselves so that ons_auth_mint plays no part
 * (tests/unit/test_auth.c, test_fuzz_regressions.c, tests/fuzz/fuzz_jwt.c).
 * Header-only: each includer gets its own static copy.
 */
#ifndef ONSALE_TESTS_B64URL_H
#define ONSALE_TESTS_B64URL_H

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stddef.h>
#include <string.h>

/* Appends the base64url (no padding) of len bytes of in to the string out. */
static inline void b64url(char *out, const void *in, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = in;
    char *o = out + strlen(out);
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
        *o++ = tab[v >> 6 & 63];
        *o++ = tab[v & 63];
    }
    if (len - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
    } else if (len - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
        *o++ = tab[v >> 6 & 63];
    }
    *o = '\0';
}

/* The room b64url_bearer needs for a header of hlen and claims of clen
 * bytes. */
#define B64URL_BEARER_LEN(hlen, clen) (16 + 2 * ((hlen) + (clen)) + 64)

/* Writes "Bearer <b64(header)>.<b64(claims)>.<b64(sig)>" into out (room for
 * B64URL_BEARER_LEN bytes): sig is HMAC-SHA256 with key over the first two
 * segments, or empty when key is NULL. Returns 0, or -1 when HMAC failed. */
static inline int b64url_bearer(char *out, const void *header, size_t hlen, const void *claims,
                                size_t clen, const char *key)
{
    strcpy(out, "Bearer ");
    const char *input = out + strlen(out);
    b64url(out, header, hlen);
    strcat(out, ".");
    b64url(out, claims, clen);
    strcat(out, ".");
    if (!key)
        return 0;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    if (!HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)input, strlen(input) - 1,
              mac, &maclen))
        return -1;
    b64url(out, mac, maclen);
    return 0;
}

#endif
