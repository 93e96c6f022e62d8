/*
 * auth.c - HS256 JWT bearer tokens: verification for every HTTP process and
 * minting for onsalectl and tests; see auth.h.
 *
 * libjwt does the base64url decoding and the HMAC; this file adds what libjwt
 * 1.10.2 leaves to the caller: the algorithm must be HS256 (libjwt accepts
 * whatever the token's header names, including "none" when no key is given),
 * and the claims are checked with strict JSON types through jansson, because
 * jwt_get_grant_int() cannot tell a missing or non-integer claim from 0.
 */
#include "common/auth.h"
#include "common/err.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

_Static_assert(sizeof(long) == sizeof(int64_t), "libjwt integer grants are long");

static const struct {
    enum ons_role role;
    const char *name;
} roles[] = {
    {ONS_ROLE_FAN, "fan"},
    {ONS_ROLE_SELLER, "seller"},
    {ONS_ROLE_ADMIN, "admin"},
};

const char *ons_role_name(enum ons_role role)
{
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (roles[i].role == role)
            return roles[i].name;
    return NULL;
}

int ons_role_parse(const char *name, enum ons_role *out)
{
    if (!name)
        return ONS_EINVAL;
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        if (strcmp(roles[i].name, name) == 0) {
            *out = roles[i].role;
            return 0;
        }
    }
    return ONS_EINVAL;
}

int ons_user_id_parse(const char *s, int64_t *out)
{
    if (!s || *s < '1' || *s > '9')
        return ONS_EINVAL; /* empty, sign, space, leading zero, "0" */
    int64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return ONS_EINVAL;
        int d = *s - '0';
        if (v > (INT64_MAX - d) / 10)
            return ONS_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Returns the token part of "Bearer <token>" (scheme case-insensitive, one or
 * more spaces), or NULL when the value is not of that shape or the token
 * holds characters no compact JWS can contain. */
static const char *bearer_token(const char *authorization)
{
    static const char scheme[] = "Bearer";
    const size_t slen = sizeof scheme - 1;
    if (!authorization || strncasecmp(authorization, scheme, slen) != 0 ||
        authorization[slen] != ' ')
        return NULL;
    const char *tok = authorization + slen;
    while (*tok == ' ')
        tok++;
    size_t len = 0, dots = 0;
    for (const char *p = tok; *p; p++, len++) {
        char c = *p;
        if (c == '.')
            dots++;
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_'))
            return NULL;
    }
    if (len == 0 || len > ONS_AUTH_TOKEN_MAX || dots != 2)
        return NULL;
    return tok;
}

/* Reads the claims object into *out. Returns 0 or ONS_EAUTH. */
static int check_claims(const json_t *claims, int64_t now, ons_principal *out)
{
    const json_t *exp = json_object_get(claims, "exp");
    if (!json_is_integer(exp) || json_integer_value(exp) <= now)
        return ONS_EAUTH;
    const json_t *nbf = json_object_get(claims, "nbf");
    if (nbf && (!json_is_integer(nbf) || json_integer_value(nbf) > now))
        return ONS_EAUTH;

    const json_t *sub = json_object_get(claims, "sub");
    int64_t user_id;
    if (json_is_string(sub)) {
        if (ons_user_id_parse(json_string_value(sub), &user_id) != 0)
            return ONS_EAUTH;
    } else if (json_is_integer(sub) && json_integer_value(sub) > 0) {
        user_id = json_integer_value(sub);
    } else {
        return ONS_EAUTH;
    }

    enum ons_role role;
    const json_t *r = json_object_get(claims, "role");
    if (!json_is_string(r) || ons_role_parse(json_string_value(r), &role) != 0)
        return ONS_EAUTH;

    out->user_id = user_id;
    out->role = role;
    out->exp = json_integer_value(exp);
    return 0;
}

int ons_auth_verify(const char *secret, const char *authorization, int64_t now, ons_principal *out)
{
    jwt_t *jwt = NULL;
    char *crit = NULL, *grants = NULL;
    json_t *claims = NULL;
    int rc = ONS_EAUTH;

    assert(out);
    const char *token = bearer_token(authorization);
    if (!token || !secret || strlen(secret) < ONS_AUTH_SECRET_MIN)
        goto fail;
    /* With a key, libjwt refuses alg "none"; the HS256 check below makes the
     * algorithm ours to choose rather than the token's. */
    if (jwt_decode(&jwt, token, (const unsigned char *)secret, (int)strlen(secret)) != 0)
        goto fail;
    if (jwt_get_alg(jwt) != JWT_ALG_HS256)
        goto fail;
    /* RFC 7515 4.1.11: extensions we do not understand must not be ignored. */
    if ((crit = jwt_get_headers_json(jwt, "crit")) != NULL)
        goto fail;
    if (!(grants = jwt_get_grants_json(jwt, NULL)))
        goto fail;
    if (!(claims = json_loads(grants, JSON_REJECT_DUPLICATES, NULL)) || !json_is_object(claims))
        goto fail;
    rc = check_claims(claims, now, out);
fail:
    json_decref(claims);
    free(grants);
    free(crit);
    jwt_free(jwt);
    return rc;
}

int ons_auth_mint(const char *secret, int64_t user_id, enum ons_role role, int64_t now,
                  int64_t ttl_s, char **out)
{
    jwt_t *jwt = NULL;
    char sub[24];
    int rc = ONS_EINVAL;

    *out = NULL;
    if (!secret || strlen(secret) < ONS_AUTH_SECRET_MIN || user_id <= 0 || !ons_role_name(role) ||
        ttl_s <= 0 || now < 0 || now > INT64_MAX - ttl_s)
        goto fail;
    snprintf(sub, sizeof sub, "%lld", (long long)user_id);

    rc = ONS_ENOMEM;
    if (jwt_new(&jwt) != 0)
        goto fail;
    if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)) ||
        jwt_add_grant(jwt, "sub", sub) || jwt_add_grant(jwt, "role", ons_role_name(role)) ||
        jwt_add_grant_int(jwt, "iat", (long)now) ||
        jwt_add_grant_int(jwt, "exp", (long)(now + ttl_s)))
        goto fail;
    /* jwt_encode_str() returns malloc'd memory: the caller's free() matches. */
    if (!(*out = jwt_encode_str(jwt)))
        goto fail;
    rc = 0;
fail:
    jwt_free(jwt);
    return rc;
}
