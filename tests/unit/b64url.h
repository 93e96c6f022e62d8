/*
 * b64url.h - base64url without padding, for tests that build JWTs by hand
 * (tests/unit/test_auth.c, test_fuzz_regressions.c, tests/fuzz/fuzz_jwt.c).
 * Header-only: each includer gets its own static copy.
 */
#ifndef ONSALE_TESTS_B64URL_H
#define ONSALE_TESTS_B64URL_H

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

#endif
