/*
 * password.c - argon2id password hashes and random secrets through
 * libsodium; see password.h.
 *
 * The argon2id functions are named explicitly (not crypto_pwhash_str, whose
 * algorithm is whatever the library's default is) so that a stored hash is
 * always "$argon2id$", and so that a hash of any other kind counts as
 * needing a rehash rather than as current.
 */
#include "common/password.h"
#include "common/err.h"

#include <sodium.h>

_Static_assert(ONS_PASSWORD_HASH_MAX >= crypto_pwhash_argon2id_STRBYTES, "hash buffer too small");

int ons_password_init(void)
{
    return sodium_init() < 0 ? ONS_EIO : 0;
}

uint64_t ons_password_default_ops(void)
{
    return crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE;
}

uint64_t ons_password_default_mem_kib(void)
{
    return crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE / 1024;
}

static int limits_ok(uint64_t ops, uint64_t mem_kib)
{
    return ops >= ONS_PASSWORD_OPS_MIN && ops <= ONS_PASSWORD_OPS_MAX &&
           mem_kib >= ONS_PASSWORD_MEM_KIB_MIN && mem_kib <= ONS_PASSWORD_MEM_KIB_MAX;
}

int ons_password_hash(const char *password, size_t len, uint64_t ops, uint64_t mem_kib,
                      char out[ONS_PASSWORD_HASH_MAX])
{
    out[0] = '\0';
    if (!limits_ok(ops, mem_kib) || len > crypto_pwhash_argon2id_PASSWD_MAX)
        return ONS_EINVAL;
    /* The only runtime failure of argon2id is its memory allocation. */
    if (crypto_pwhash_argon2id_str(out, password, len, ops, (size_t)mem_kib * 1024) != 0)
        return ONS_ENOMEM;
    return 0;
}

int ons_password_verify(const char *hash, const char *password, size_t len)
{
    return crypto_pwhash_argon2id_str_verify(hash, password, len) == 0;
}

int ons_password_needs_rehash(const char *hash, uint64_t ops, uint64_t mem_kib)
{
    /* 1: other limits; -1: not an argon2id string. Both mean "hash again". */
    return crypto_pwhash_argon2id_str_needs_rehash(hash, ops, (size_t)mem_kib * 1024) != 0;
}

void ons_random_bytes(void *buf, size_t n)
{
    randombytes_buf(buf, n);
}

void ons_random_token(size_t n, char *out, size_t cap)
{
    unsigned char raw[64];
    if (n > sizeof raw || cap < ONS_B64URL_LEN(n) + 1) {
        if (cap)
            out[0] = '\0';
        return;
    }
    randombytes_buf(raw, n);
    sodium_bin2base64(out, cap, raw, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(raw, sizeof raw);
}

int ons_secure_equal(const void *a, const void *b, size_t n)
{
    return sodium_memcmp(a, b, n) == 0;
}
