/* jsonw.h - JSON text written straight into a growing buffer, where a
 * jansson tree per answer cost too much: the worker's result documents
 * (one per intent drained) and the catalog's pages. The text is what
 * jansson's json_dumps(JSON_COMPACT) writes for the same values; the caller
 * writes the punctuation and keys with ons_jw_lit. */
#ifndef ONSALE_COMMON_JSONW_H
#define ONSALE_COMMON_JSONW_H

#include <stddef.h>
#include <stdint.h>

/* Zero-initialise. s is NUL-terminated once anything is written; the caller
 * owns it (free). Out of memory is sticky: every later write does nothing
 * and oom stays 1, so a writer checks it once at the end. */
typedef struct ons_jw {
    char *s;
    size_t len, cap;
    int oom;
} ons_jw;

/* n bytes of s as they are. */
void ons_jw_raw(ons_jw *b, const char *s, size_t n);
/* A NUL-terminated literal as it is (punctuation, keys, null/true). */
void ons_jw_lit(ons_jw *b, const char *s);
/* A JSON string: '"', '\\' and control characters escaped as jansson does,
 * UTF-8 kept, a byte that does not begin valid UTF-8 written as U+FFFD. */
void ons_jw_str(ons_jw *b, const char *s);
/* An integer in decimal. */
void ons_jw_int(ons_jw *b, int64_t v);
/* A real as jansson writes one (%.17g, ".0" when integral, a short
 * exponent). */
void ons_jw_real(ons_jw *b, double v);
/* The same with digits significant digits (1 to 17): what jansson writes
 * under JSON_REAL_PRECISION(digits). 15 gives back any decimal of at most
 * 15 digits as it was written (1.64, where 17 write 1.6399999999999999). */
void ons_jw_real_digits(ons_jw *b, double v, int digits);

#endif
