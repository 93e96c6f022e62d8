/*
 * fuzz_jwt.c - libFuzzer target for the bearer-token path (common/auth.c
 * ons_auth_verify and the verified-token cache every route's 401 check uses).
 *
 * Input: one mode byte, then
 *   even: the raw Authorization header value ("Bearer <jwt>");
 *   odd:  "<header JSON>\n<claims JSON>", which the target base64url-encodes
 *         and signs with the right key (HMAC-SHA256), so the fuzzer gets past
 *         the signature to the algorithm, header and claim checks.
 * Oracle, besides ASan/UBSan/LSan: the cache answers exactly what
 * ons_auth_verify answers (first call a miss, second a hit), and
 * ons_auth_verify (its fast path first) exactly what libjwt alone answers; an accepted
 * token names a positive user, a known role and an exp after now; and in
 * signed mode it was an HS256 token without "crit".
 */
#include "common/auth.h"
#include "common/err.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/unit/b64url.h"

#define SECRET "fuzz-secret-0123456789abcdef"
#define NOW    1800000000LL

static ons_auth_cache *cache;

static void fail(const char *what, const char *authz)
{
    fprintf(stderr, "fuzz_jwt: %s\n  authorization: %s\n", what, authz);
    abort();
}

/* "Bearer " + b64(header) "." b64(claims) "." b64(HMAC) into a heap string. */
static char *sign(const uint8_t *h, size_t hlen, const uint8_t *c, size_t clen)
{
    char *buf = malloc(B64URL_BEARER_LEN(hlen, clen));
    if (buf && b64url_bearer(buf, h, hlen, c, clen, SECRET) != 0) {
        free(buf);
        buf = NULL;
    }
    return buf;
}

/* The signed header names HS256 and carries no "crit", read as libjwt
 * reads it: as a C string (bytes after a NUL are ignored; they are signed
 * all the same), a repeated name counting with its last value, as RFC 7515
 * section 4 allows ("use a JSON parser that returns only the lexically last
 * duplicate member name"). */
static int header_is_plain_hs256(const uint8_t *h, size_t hlen)
{
    char *text = strndup((const char *)h, hlen);
    json_t *o = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    json_t *alg = json_object_get(o, "alg");
    int ok = json_is_string(alg) && strcmp(json_string_value(alg), "HS256") == 0 &&
             !json_object_get(o, "crit");
    json_decref(o);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cache && ons_auth_cache_new(SECRET, 16, &cache) != 0)
        abort();
    if (size < 1)
        return 0;
    int signed_mode = data[0] & 1;
    data++;
    size--;
    char *authz;
    const uint8_t *hdr = NULL;
    size_t hlen = 0;
    if (signed_mode) {
        const uint8_t *nl = memchr(data, '\n', size);
        if (!nl)
            return 0;
        hdr = data;
        hlen = (size_t)(nl - data);
        authz = sign(hdr, hlen, nl + 1, size - hlen - 1);
    } else {
        authz = malloc(size + 1);
        if (authz) {
            memcpy(authz, data, size);
            authz[size] = '\0';
        }
    }
    if (!authz)
        return 0;

    ons_principal a = {0}, b = {0}, c = {0};
    int ra = ons_auth_verify(SECRET, authz, NOW, &a);
    int rb = ons_auth_verify_cached(cache, authz, NOW, &b);
    int rc = ons_auth_verify_cached(cache, authz, NOW, &c);
    if (ra != 0 && ra != ONS_EAUTH)
        fail("verify returned neither 0 nor ONS_EAUTH", authz);
    if (ra != rb || ra != rc)
        fail("the cache and verify disagree", authz);
    ons_principal d = {0};
    int rd = ons_auth_verify_libjwt(SECRET, authz, NOW, &d);
    if (ra != rd || (ra == 0 && memcmp(&a, &d, sizeof a) != 0))
        fail("the fast path and libjwt disagree", authz);
    if (ra == 0) {
        if (memcmp(&a, &b, sizeof a) != 0 || memcmp(&a, &c, sizeof a) != 0)
            fail("the cache returned another principal", authz);
        if (a.user_id <= 0 || !ons_role_name(a.role) || a.exp <= NOW)
            fail("accepted a token with bad claims", authz);
        if (signed_mode && !header_is_plain_hs256(hdr, hlen))
            fail("accepted a token that is not plain HS256", authz);
    }
    /* The wrong key never verifies. */
    if (ons_auth_verify("another-secret-0123456789", authz, NOW, &a) == 0 && signed_mode)
        fail("a token signed with another key verified", authz);
    free(authz);
    return 0;
}
