/*
 * auth.h - HS256 JWT bearer tokens (libjwt): verification for every HTTP
 * process, minting for onsalectl and tests.
 *
 * Claims: sub (user id, positive 64-bit integer in decimal string form),
 * role ("fan" | "seller" | "admin"), exp (required, seconds since epoch).
 * Thread-safe: no shared state.
 */
#ifndef ONSALE_COMMON_AUTH_H
#define ONSALE_COMMON_AUTH_H

#include <stdint.h>

enum ons_role { ONS_ROLE_FAN = 1, ONS_ROLE_SELLER = 2, ONS_ROLE_ADMIN = 4 };

typedef struct ons_principal {
    int64_t user_id;
    enum ons_role role;
    int64_t exp;
} ons_principal;

/* Verifies an Authorization header value ("Bearer <jwt>"). now is seconds
 * since epoch. Returns 0 and fills *out, or ONS_EAUTH for anything missing,
 * malformed, wrongly signed, not HS256, expired, or with bad claims. */
int ons_auth_verify(const char *secret, const char *authorization, int64_t now,
                    ons_principal *out);

/* Mints a token for user/role valid for ttl_s seconds from now. *out is a
 * heap string the caller frees with free(). Returns 0, ONS_EINVAL, ONS_ENOMEM. */
int ons_auth_mint(const char *secret, int64_t user_id, enum ons_role role, int64_t now,
                  int64_t ttl_s, char **out);

/* "fan", "seller", "admin"; NULL for anything else. */
const char *ons_role_name(enum ons_role role);

/* Parses a role name. Returns 0 or ONS_EINVAL. */
int ons_role_parse(const char *name, enum ons_role *out);

#endif
