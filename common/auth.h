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

/* A deployment has one key per purpose (docs/security.md says how to rotate
 * them):
 *   auth.secret  HS256 key of the bearer tokens (JWTs): ingress verifies,
 *                onsalectl and the simulator mint;
 *   ids.secret   HMAC key of the public ids (queue/intent_id.h): ingress and
 *                the workers encode and decode them.
 * Every binary's options table uses these bounds and these defaults. The
 * defaults are public, so a process refuses to start with one unless
 * dev_mode is on (ons_secrets_check). */
#define ONS_AUTH_SECRET_MIN 16
#define ONS_AUTH_SECRET_MAX 4096
#define ONS_AUTH_SECRET_DEV "onsale-dev-secret-change-me"
#define ONS_IDS_SECRET_DEV  "onsale-dev-ids-secret-change-me"
/* The payment gateway's API key (gateway.api_key of the simulator,
 * payments.api_key of onsale-payments, gateway.api_key of onsale-sim). */
#define ONS_GATEWAY_KEY_DEV "sk_test_onsale"
/* The shortest API key any of them accepts: a key of a few characters is a
 * typo or a placeholder, refused at start like a default. */
#define ONS_GATEWAY_KEY_MIN 8

/* The dev_mode option, the same row in every binary's table. */
#define ONS_DEV_MODE_HELP                                                                          \
    "development mode: accept the public default secrets (auth.secret, ids.secret, API keys); "    \
    "never in production"

/* One secret option of a binary, checked at start. */
typedef struct ons_secret {
    const char *option;      /* "auth.secret" */
    const char *value;       /* the loaded value (NULL or "" = missing) */
    const char *dev_default; /* its public development default */
} ons_secret;

/* Checks a binary's secrets before it starts. Returns 0 when every secret
 * is usable: set, not its development default, and not equal to another of
 * the list (one key, one purpose), or when dev_mode is on. Else ONS_EINVAL,
 * with errbuf naming the first bad option, its environment variable and
 * dev_mode. On 0, errbuf is "" or, when dev_mode let a default or shared
 * key through, a warning naming the options (for the log). */
int ons_secrets_check(const ons_secret *s, size_t n, int dev_mode, char *errbuf, size_t errlen);

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
/* ons_auth_verify through libjwt alone, without the fast path that answers
 * the common well-formed token first (auth.c). The same verdict by
 * contract: the JWT fuzz target and tests/unit/test_auth.c compare them. */
int ons_auth_verify_libjwt(const char *secret, const char *authorization, int64_t now,
                           ons_principal *out);

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
