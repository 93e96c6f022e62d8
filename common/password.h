/*
 * password.h - password hashing (argon2id through libsodium) and the random
 * secrets of refresh tokens.
 *
 * Hashes are libsodium's self-describing strings ("$argon2id$v=19$m=...,
 * t=...,p=1$salt$hash"): the parameters travel with each hash, so raising
 * them later only needs a rehash at the next successful login
 * (ons_password_needs_rehash). Hashing costs what the limits say (tens of
 * milliseconds of CPU and memlimit bytes of memory per call): call these
 * from job threads only, never from an event loop. Thread-safe once
 * ons_password_init() returned 0.
 */
#ifndef ONSALE_COMMON_PASSWORD_H
#define ONSALE_COMMON_PASSWORD_H

#include <stddef.h>
#include <stdint.h>

/* Room for any hash string, NUL included (crypto_pwhash_STRBYTES). */
#define ONS_PASSWORD_HASH_MAX 128

/* Limits accepted by ons_password_hash (libsodium's argon2id bounds, with a
 * practical ceiling on memory: 4 GiB). */
#define ONS_PASSWORD_OPS_MIN     1
#define ONS_PASSWORD_OPS_MAX     32
#define ONS_PASSWORD_MEM_KIB_MIN 8
#define ONS_PASSWORD_MEM_KIB_MAX 4194304

/* Initialises libsodium (idempotent). Returns 0 or ONS_EIO. */
int ons_password_init(void);

/* The interactive limits libsodium recommends for logins (2 passes, 64 MiB). */
uint64_t ons_password_default_ops(void);
uint64_t ons_password_default_mem_kib(void);

/* Hashes password (len bytes, any content) with argon2id, a fresh random
 * salt, ops passes and mem_kib KiB of memory into out (NUL-terminated).
 * Returns 0, ONS_EINVAL (limits outside the bounds above) or ONS_ENOMEM
 * (the memory could not be had). */
int ons_password_hash(const char *password, size_t len, uint64_t ops, uint64_t mem_kib,
                      char out[ONS_PASSWORD_HASH_MAX]);

/* Returns 1 when password matches hash, 0 otherwise (also for a hash that is
 * not an argon2id string). Takes as long as hashing with hash's limits. */
int ons_password_verify(const char *hash, const char *password, size_t len);

/* Returns 1 when hash was made with limits other than ops/mem_kib (or is not
 * an argon2id string), 0 when it is current. Cheap. */
int ons_password_needs_rehash(const char *hash, uint64_t ops, uint64_t mem_kib);

/* Fills buf with n cryptographically random bytes. */
void ons_random_bytes(void *buf, size_t n);

/* Characters in the unpadded base64url form of n bytes. */
#define ONS_B64URL_LEN(n) (((n)*4 + 2) / 3)

/* Writes the unpadded base64url form of n (<= 64) fresh random bytes into
 * out, NUL-terminated; cap must be at least ONS_B64URL_LEN(n) + 1. */
void ons_random_token(size_t n, char *out, size_t cap);

/* Compares n bytes in constant time. Returns 1 when equal. */
int ons_secure_equal(const void *a, const void *b, size_t n);

#endif
