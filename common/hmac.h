/*
 * hmac.h - HMAC-SHA256 with each secret's key prepared once per thread.
 *
 * The one-shot HMAC() fetches the algorithm and derives the key pads on
 * every call, a few microseconds that a status poll (public ids) and a
 * token check (JWT signatures) pay on every request. Here each thread keeps
 * up to ONS_HMAC_KEYS keyed contexts (a process signs with a few secrets:
 * ids, auth, tickets), the least recently used one replaced, and
 * re-initialises one per call with the prepared key. Thread-safe: nothing
 * is shared between threads; a thread's contexts are freed when it exits.
 */
#ifndef ONSALE_COMMON_HMAC_H
#define ONSALE_COMMON_HMAC_H

#include <stddef.h>

#define ONS_HMAC_KEYS 4

/* out := HMAC-SHA256(key = secret's bytes, data). Returns 0, or ONS_ENOMEM
 * when OpenSSL could not make a context (out untouched). */
int ons_hmac_sha256(const char *secret, const void *data, size_t len, unsigned char out[32]);

#endif
