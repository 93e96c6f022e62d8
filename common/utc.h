/*
 * utc.h - Unix milliseconds as RFC 3339 UTC text, without gmtime_r (glibc
 * takes its timezone lock in it) or printf: the queued poll's answer and
 * every result document the worker writes carry one or two. Any thread.
 */
#ifndef ONSALE_COMMON_UTC_H
#define ONSALE_COMMON_UTC_H

#include <stdint.h>

/* ms as "2026-11-29T06:01:02Z", or with with_ms "2026-11-29T06:01:02.345Z",
 * NUL-terminated, into out. Byte for byte what gmtime_r + strftime print
 * (instants outside 1970..9999 are printed by them). */
void ons_format_utc(int64_t ms, int with_ms, char out[32]);

/* The same through gmtime_r + strftime (takes glibc's timezone lock): the
 * path for instants outside 1970..9999, and the reference test_utc checks
 * ons_format_utc against. */
void ons_format_utc_strftime(int64_t ms, int with_ms, char out[32]);

#endif
