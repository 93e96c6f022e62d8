/*
 * b64url.h - unpadded base64url (RFC 4648 section 5): JWT segments and
 * signatures (common/auth.c) and the catalog's opaque cursors
 * (ingress/catalog_store.c).
 */
#ifndef ONSALE_COMMON_B64URL_H
#define ONSALE_COMMON_B64URL_H

#include <stddef.h>

/* Characters ons_b64url_encode writes for n bytes (without the NUL). */
#define ONS_B64URL_LEN(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

/* Writes the unpadded base64url text of in[0..n) and a NUL into out (room
 * for ONS_B64URL_LEN(n) + 1). Returns the text's length. */
size_t ons_b64url_encode(const void *in, size_t n, char *out);

/* Decodes canonical unpadded base64url in[0..n) (the unused trailing bits
 * zero: one text per byte string) into out (room for n * 3 / 4 bytes).
 * Returns the byte count, or -1 when the text is not canonical base64url. */
long ons_b64url_decode(const char *in, size_t n, unsigned char *out);

#endif
