/* hash.h - a fast 64-bit hash of bytes, a word at a time, for the hot paths
 * that hash whole buffers: the verified-token cache (a ~200-byte token per
 * request) and the ETags of answers (a catalog page is ~6 KB). Not
 * cryptographic: seed it where a client chooses the bytes, and compare the
 * bytes themselves where a collision would matter. */
#ifndef ONSALE_COMMON_HASH_H
#define ONSALE_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>

/* The hash of data[0..len) under seed: every bit of the input moves about
 * half of the output's bits (a 64-bit finalizer after the words). */
uint64_t ons_hash64(uint64_t seed, const void *data, size_t len);

/* A strong ETag of a body: its hash under a fixed seed, as "\"<16 hex>\""
 * with a NUL, in out (ONS_ETAG_SIZE bytes). */
#define ONS_ETAG_SIZE 24
void ons_etag(const void *data, size_t len, char out[ONS_ETAG_SIZE]);

#endif
