/* hex.h - digits by hand on hot paths: one hexadecimal digit's value (the
 * public ids, the draw's seed and commitment, and percent-escapes in query
 * strings all read it) and a number written in decimal (the ids' MAC input,
 * Content-Length). */
#ifndef ONSALE_COMMON_HEX_H
#define ONSALE_COMMON_HEX_H

#include <stddef.h>
#include <stdint.h>

/* The value of lower-case hex digit c, or -1 when c is not one (the public
 * ids are lower case only: one id, one spelling). */
static inline int ons_hex_digit_lower(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The value of hex digit c in either case, or -1 when c is not one. */
static inline int ons_hex_digit(int c)
{
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return ons_hex_digit_lower(c);
}

/* Writes v in decimal at w (at most 20 characters, no NUL); returns the
 * end. On every join and poll answer: no snprintf. */
static inline char *ons_put_dec(char *w, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *w++ = tmp[--n];
    return w;
}

#endif
