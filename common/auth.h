/*
 * auth.h - HS256 JWT bearer tokens (libjwt): verification for every HTTP
 * process, minting for onsalectl and tests.
 *
 * Claims: sub (user id, positive 64-bit integer in decimal string form),
 * role ("fan" | "seller" | "scanner" | "admin"), exp (required, seconds since epoch).
 * Thread-safe: no shared state, except an ons_auth_cache (internally locked).
 */
#ifndef ONSALE_COMMON_AUTH_H
#define ONSALE_COMMON_AUTH_H

#include <stddef.h>
#include <stdint.h>

/* auth.secret: the one HMAC key of a deployment (JWTs and public ids). Every
 * binary's options table uses these bounds and this default. */
#define ONS_AUTH_SECRET_MIN 16
#define ONS_AUTH_SECRET_MAX 4096
#define ONS_AUTH_SECRET_DEV "onsale-dev-secret-change-me"

/* Longest token (characters after "Bearer ") ons_auth_verify accepts. */
#define ONS_AUTH_TOKEN_MAX 4096

/* Bit values, so that a route can allow a set of roles. A scanner admits
 * tickets at a venue's gate. */
enum ons_role { ONS_ROLE_FAN = 1, ONS_ROLE_SELLER = 2, ONS_ROLE_ADMIN = 4, ONS_ROLE_SCANNER = 8 };

typedef struct ons_principal {
    int64_t user_id;
    enum ons_role role;
    int64_t exp;
} ons_principal;

/* Verifies an Authorization header value ("Bearer <jwt>"; the scheme is
 * case-insensitive). now is seconds since epoch; the token is expired when
 * exp <= now, and not yet valid when it carries nbf > now. sub may be a
 * decimal string (canonical: no sign, no leading zero) or a JSON integer.
 * Returns 0 and fills *out, or ONS_EAUTH for anything missing, malformed,
 * wrongly signed, not HS256, expired, or with bad claims (also when secret is
 * NULL or shorter than ONS_AUTH_SECRET_MIN: fail closed). */
int ons_auth_verify(const char *secret, const char *authorization, int64_t now, ons_principal *out);

/* Mints a token for user/role valid for ttl_s seconds from now (claims sub as
 * a decimal string, role, iat, exp). *out is a heap string the caller frees
 * with free(), NULL on error. Returns 0, ONS_EINVAL (secret shorter than
 * ONS_AUTH_SECRET_MIN, user_id <= 0, unknown role, ttl_s <= 0) or ONS_ENOMEM. */
int ons_auth_mint(const char *secret, int64_t user_id, enum ons_role role, int64_t now,
                  int64_t ttl_s, char **out);

/* A bounded cache of verified tokens: the full token string → its principal,
 * valid until the token's exp. A hit compares the whole token in constant
 * time (a hash only picks the slot), so it answers exactly what
 * ons_auth_verify would (a cached token was verified once against the
 * cache's secret and its claims cannot change; exp is re-checked on every
 * hit; nbf was already <= now when it was cached). Sets of 4 slots with
 * oldest-out replacement keep memory bounded (about capacity × (token
 * length + 64) bytes). Thread-safe (striped locks). */
typedef struct ons_auth_cache ons_auth_cache;

/* capacity: tokens remembered (rounded up to a multiple of 4; 0 = no
 * caching: every call verifies). The secret is copied. Returns 0,
 * ONS_EINVAL or ONS_ENOMEM. */
int ons_auth_cache_new(const char *secret, size_t capacity, ons_auth_cache **out);
void ons_auth_cache_free(ons_auth_cache *c);

/* ons_auth_verify with the cache's secret, answered from the cache when the
 * same token was verified before and has not expired. */
int ons_auth_verify_cached(ons_auth_cache *c, const char *authorization, int64_t now,
                           ons_principal *out);

/* Hits and misses so far (for metrics and tests). */
void ons_auth_cache_stats(ons_auth_cache *c, uint64_t *hits, uint64_t *misses);

/* "fan", "seller", "scanner", "admin"; NULL for anything else. */
const char *ons_role_name(enum ons_role role);

/* Parses a role name. Returns 0 or ONS_EINVAL. */
int ons_role_parse(const char *name, enum ons_role *out);

/* Parses a user id: a positive 64-bit integer in canonical decimal (digits
 * only, no sign, no leading zero). Returns 0 and *out, or ONS_EINVAL. */
int ons_user_id_parse(const char *s, int64_t *out);

#endif
