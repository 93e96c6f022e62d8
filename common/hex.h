/* hex.h - one hexadecimal digit's value: the public ids, the draw's seed
 * and commitment, and percent-escapes in query strings all read it. */
#ifndef ONSALE_COMMON_HEX_H
#define ONSALE_COMMON_HEX_H

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

#endif
