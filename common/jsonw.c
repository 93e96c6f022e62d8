/* jsonw.c - see jsonw.h. */
#include "common/jsonw.h"
#include "common/vec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ons_jw_raw(ons_jw *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (ONS_VEC_RESERVE(b->s, b->cap, b->len + n + 1, 256)) {
        b->oom = 1;
        return;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void ons_jw_lit(ons_jw *b, const char *s)
{
    ons_jw_raw(b, s, strlen(s));
}

/* The length of the valid UTF-8 sequence at s (1-4), or 0. */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n = c < 0x80             ? 1
               : (c & 0xE0) == 0xC0 ? 2
               : (c & 0xF0) == 0xE0 ? 3
               : (c & 0xF8) == 0xF0 ? 4
                                    : 0;
    if (!n || (n == 2 && c < 0xC2) || (n == 4 && c > 0xF4))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if (n == 3 && ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0)))
        return 0; /* overlong, or a surrogate */
    if (n == 4 && ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90)))
        return 0;
    return n;
}

/* A JSON string as jansson's json_dumps writes it (UTF-8 kept, '"', '\\'
 * and control characters escaped, \u with capital hex); a byte that does
 * not begin valid UTF-8 (a field cut inside a character) becomes U+FFFD. */
void ons_jw_str(ons_jw *b, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    ons_jw_raw(b, "\"", 1);
    while (*u) {
        const unsigned char *run = u;
        size_t n;
        while (*u >= 0x20 && *u != '"' && *u != '\\' && (n = utf8_seq(u)) > 0)
            u += n;
        ons_jw_raw(b, (const char *)run, (size_t)(u - run));
        if (!*u)
            break;
        char esc[8];
        switch (*u) {
        case '"':
            ons_jw_lit(b, "\\\"");
            break;
        case '\\':
            ons_jw_lit(b, "\\\\");
            break;
        case '\b':
            ons_jw_lit(b, "\\b");
            break;
        case '\f':
            ons_jw_lit(b, "\\f");
            break;
        case '\n':
            ons_jw_lit(b, "\\n");
            break;
        case '\r':
            ons_jw_lit(b, "\\r");
            break;
        case '\t':
            ons_jw_lit(b, "\\t");
            break;
        default:
            if (*u < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04X", *u);
                ons_jw_lit(b, esc);
            } else {
                ons_jw_lit(b, "\xEF\xBF\xBD");
            }
        }
        u++;
    }
    ons_jw_raw(b, "\"", 1);
}

/* Decimal digits by hand: snprintf's format parsing was a tenth of the
 * worker's CPU per intent drained (every result carries a few integers). */
void ons_jw_int(ons_jw *b, int64_t v)
{
    char t[24], *e = t + sizeof t, *p = e;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *--p = '-';
    ons_jw_raw(b, p, (size_t)(e - p));
}

void ons_jw_real(ons_jw *b, double v)
{
    ons_jw_real_digits(b, v, 17);
}

/* A real as jansson's dtostr writes one: %.<digits>g, ".0" when neither
 * '.' nor 'e', and an exponent without '+' or leading zeros. */
void ons_jw_real_digits(ons_jw *b, double v, int digits)
{
    char d[40];
    if (digits < 1 || digits > 17)
        digits = 17;
    int n = snprintf(d, sizeof d - 3, "%.*g", digits, v);
    if (n < 0 || (size_t)n >= sizeof d - 3)
        n = snprintf(d, sizeof d, "0.0");
    if (!strchr(d, '.') && !strchr(d, 'e')) {
        memcpy(d + n, ".0", 3);
        n += 2;
    }
    char *e = strchr(d, 'e');
    if (e) {
        char *start = e + 1, *end = start + 1;
        if (*start == '-')
            start++;
        while (*end == '0')
            end++;
        if (end != start) {
            memmove(start, end, (size_t)(d + n - end) + 1);
            n -= (int)(end - start);
        }
    }
    ons_jw_raw(b, d, (size_t)n);
}
