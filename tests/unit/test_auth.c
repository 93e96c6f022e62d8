/* test_auth.c - JWT bearer tokens: mint/verify round trip, and every way a
 * token must be refused (expiry, signature, algorithm, claims, header shape).
 * Hostile tokens are built by hand here (base64url + OpenSSL HMAC) so that
 * the tests do not depend on the code under test to produce them. */
#include "common/auth.h"
#include "common/err.h"

#include "tests/check_run.h"

#include <check.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "b64url.h"

#define SECRET "test-secret-0123456789abcdef"
#define NOW    1800000000LL

/* Builds "Bearer <b64(header)>.<b64(payload)>.<sig>" into a static buffer;
 * the signature is HMAC-SHA256 with key when key is non-NULL, else empty. */
static const char *craft(const char *header, const char *payload, const char *key)
{
    static char buf[8192];
    ck_assert_int_eq(b64url_bearer(buf, header, strlen(header), payload, strlen(payload), key), 0);
    return buf;
}

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* A payload with the given sub and role JSON values and exp = NOW + 60. */
static const char *payload(const char *sub_json, const char *role_json)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "{\"sub\":%s,\"role\":%s,\"exp\":%lld}", sub_json, role_json,
             NOW + 60);
    return buf;
}

static int verify(const char *authorization, ons_principal *p)
{
    return ons_auth_verify(SECRET, authorization, NOW, p);
}

static char *bearer(const char *token)
{
    static char buf[8192];
    snprintf(buf, sizeof buf, "Bearer %s", token);
    return buf;
}

START_TEST(mint_verify_round_trip)
{
    static const enum ons_role roles[] = {ONS_ROLE_FAN, ONS_ROLE_SELLER, ONS_ROLE_ADMIN,
                                          ONS_ROLE_SCANNER};
    for (int i = 0; i < 4; i++) {
        char *tok = NULL;
        ck_assert_int_eq(ons_auth_mint(SECRET, INT64_MAX - i, roles[i], NOW, 600, &tok), 0);
        ons_principal p = {0};
        ck_assert_int_eq(verify(bearer(tok), &p), 0);
        ck_assert(p.user_id == INT64_MAX - i);
        ck_assert_int_eq(p.role, roles[i]);
        ck_assert(p.exp == NOW + 600);
        free(tok);
    }
}
END_TEST

START_TEST(hand_built_token_verifies)
{
    /* Cross-check with an independent encoder: libjwt is not the only judge. */
    ons_principal p = {0};
    ck_assert_int_eq(verify(craft(HS256, payload("\"7\"", "\"seller\""), SECRET), &p), 0);
    ck_assert(p.user_id == 7);
    ck_assert_int_eq(p.role, ONS_ROLE_SELLER);
    /* sub as a JSON integer is accepted too. */
    ck_assert_int_eq(verify(craft(HS256, payload("9223372036854775807", "\"fan\""), SECRET), &p),
                     0);
    ck_assert(p.user_id == INT64_MAX);
    /* Extra claims are ignored. */
    ck_assert_int_eq(verify(craft(HS256,
                                  "{\"sub\":\"8\",\"role\":\"admin\",\"exp\":1900000000,"
                                  "\"iat\":1,\"iss\":\"x\"}",
                                  SECRET),
                            &p),
                     0);
    ck_assert_int_eq(p.role, ONS_ROLE_ADMIN);
}
END_TEST

START_TEST(scheme_spelling)
{
    char *tok = NULL;
    ck_assert_int_eq(ons_auth_mint(SECRET, 5, ONS_ROLE_FAN, NOW, 60, &tok), 0);
    char buf[4096];
    ons_principal p;
    snprintf(buf, sizeof buf, "bearer %s", tok);
    ck_assert_int_eq(verify(buf, &p), 0);
    snprintf(buf, sizeof buf, "Bearer   %s", tok);
    ck_assert_int_eq(verify(buf, &p), 0);

    ck_assert_int_eq(verify(tok, &p), ONS_EAUTH); /* no scheme */
    snprintf(buf, sizeof buf, "Basic %s", tok);
    ck_assert_int_eq(verify(buf, &p), ONS_EAUTH);
    snprintf(buf, sizeof buf, "Bearer%s", tok);
    ck_assert_int_eq(verify(buf, &p), ONS_EAUTH);
    snprintf(buf, sizeof buf, "Bearer %s ", tok);
    ck_assert_int_eq(verify(buf, &p), ONS_EAUTH);
    snprintf(buf, sizeof buf, "Bearer %s extra", tok);
    ck_assert_int_eq(verify(buf, &p), ONS_EAUTH);
    snprintf(buf, sizeof buf, "Bearer\t%s", tok);
    ck_assert_int_eq(verify(buf, &p), ONS_EAUTH);
    ck_assert_int_eq(verify(NULL, &p), ONS_EAUTH);
    ck_assert_int_eq(verify("", &p), ONS_EAUTH);
    ck_assert_int_eq(verify("Bearer", &p), ONS_EAUTH);
    ck_assert_int_eq(verify("Bearer ", &p), ONS_EAUTH);
    free(tok);
}
END_TEST

START_TEST(expired)
{
    char *tok = NULL;
    ck_assert_int_eq(ons_auth_mint(SECRET, 5, ONS_ROLE_FAN, NOW, 60, &tok), 0);
    ons_principal p;
    ck_assert_int_eq(ons_auth_verify(SECRET, bearer(tok), NOW + 59, &p), 0);
    ck_assert_int_eq(ons_auth_verify(SECRET, bearer(tok), NOW + 60, &p), ONS_EAUTH);
    ck_assert_int_eq(ons_auth_verify(SECRET, bearer(tok), NOW + 100000, &p), ONS_EAUTH);
    free(tok);
}
END_TEST

START_TEST(not_before)
{
    ons_principal p;
    const char *future = "{\"sub\":\"1\",\"role\":\"fan\",\"exp\":1900000000,\"nbf\":1800000001}";
    ck_assert_int_eq(verify(craft(HS256, future, SECRET), &p), ONS_EAUTH);
    const char *past = "{\"sub\":\"1\",\"role\":\"fan\",\"exp\":1900000000,\"nbf\":1800000000}";
    ck_assert_int_eq(verify(craft(HS256, past, SECRET), &p), 0);
    const char *str = "{\"sub\":\"1\",\"role\":\"fan\",\"exp\":1900000000,\"nbf\":\"0\"}";
    ck_assert_int_eq(verify(craft(HS256, str, SECRET), &p), ONS_EAUTH);
}
END_TEST

START_TEST(wrong_secret)
{
    char *tok = NULL;
    ck_assert_int_eq(ons_auth_mint("another-secret-0123456789", 5, ONS_ROLE_FAN, NOW, 60, &tok), 0);
    ons_principal p;
    ck_assert_int_eq(verify(bearer(tok), &p), ONS_EAUTH);
    free(tok);
    ck_assert_int_eq(verify(craft(HS256, payload("\"5\"", "\"fan\""), "not-the-secret-at-all"), &p),
                     ONS_EAUTH);
}
END_TEST

START_TEST(tampered)
{
    /* A valid signature over one payload, glued to another. */
    char good[4096], evil[4096];
    strcpy(good, craft(HS256, payload("\"5\"", "\"fan\""), SECRET));
    strcpy(evil, craft(HS256, payload("\"5\"", "\"admin\""), SECRET));
    char *gsig = strrchr(good, '.'), *esig = strrchr(evil, '.');
    strcpy(esig, gsig);
    ons_principal p;
    ck_assert_int_eq(verify(evil, &p), ONS_EAUTH);
    /* Flip one signature character. */
    char *last = good + strlen(good) - 2;
    *last = *last == 'A' ? 'B' : 'A';
    ck_assert_int_eq(verify(good, &p), ONS_EAUTH);
}
END_TEST

START_TEST(alg_none)
{
    ons_principal p;
    const char *pl = payload("\"5\"", "\"admin\"");
    ck_assert_int_eq(verify(craft("{\"alg\":\"none\"}", pl, NULL), &p), ONS_EAUTH);
    ck_assert_int_eq(verify(craft("{\"alg\":\"none\",\"typ\":\"JWT\"}", pl, NULL), &p), ONS_EAUTH);
    ck_assert_int_eq(verify(craft("{\"alg\":\"NONE\"}", pl, NULL), &p), ONS_EAUTH);
    /* alg none with a signature that would be valid for HS256. */
    ck_assert_int_eq(verify(craft("{\"alg\":\"none\"}", pl, SECRET), &p), ONS_EAUTH);
    /* No alg at all. */
    ck_assert_int_eq(verify(craft("{\"typ\":\"JWT\"}", pl, SECRET), &p), ONS_EAUTH);
}
END_TEST

START_TEST(other_algs)
{
    ons_principal p;
    const char *pl = payload("\"5\"", "\"fan\"");
    /* HS512 genuinely signed with the right secret is still refused. */
    jwt_t *jwt = NULL;
    ck_assert_int_eq(jwt_new(&jwt), 0);
    ck_assert_int_eq(jwt_set_alg(jwt, JWT_ALG_HS512, (const unsigned char *)SECRET, strlen(SECRET)),
                     0);
    ck_assert_int_eq(jwt_add_grants_json(jwt, pl), 0);
    char *tok = jwt_encode_str(jwt);
    ck_assert_ptr_nonnull(tok);
    ck_assert_int_eq(verify(bearer(tok), &p), ONS_EAUTH);
    free(tok);
    jwt_free(jwt);
    /* RS256 / HS384 headers over an HS256 signature. */
    ck_assert_int_eq(verify(craft("{\"alg\":\"RS256\"}", pl, SECRET), &p), ONS_EAUTH);
    ck_assert_int_eq(verify(craft("{\"alg\":\"HS384\"}", pl, SECRET), &p), ONS_EAUTH);
    /* A critical header extension we cannot honour. */
    ck_assert_int_eq(
        verify(craft("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", pl, SECRET), &p),
        ONS_EAUTH);
}
END_TEST

START_TEST(exp_required)
{
    ons_principal p;
    ck_assert_int_eq(verify(craft(HS256, "{\"sub\":\"5\",\"role\":\"fan\"}", SECRET), &p),
                     ONS_EAUTH);
    ck_assert_int_eq(
        verify(craft(HS256, "{\"sub\":\"5\",\"role\":\"fan\",\"exp\":\"1900000000\"}", SECRET), &p),
        ONS_EAUTH);
    ck_assert_int_eq(
        verify(craft(HS256, "{\"sub\":\"5\",\"role\":\"fan\",\"exp\":1900000000.5}", SECRET), &p),
        ONS_EAUTH);
    ck_assert_int_eq(
        verify(craft(HS256, "{\"sub\":\"5\",\"role\":\"fan\",\"exp\":null}", SECRET), &p),
        ONS_EAUTH);
}
END_TEST

START_TEST(bad_sub)
{
    static const char *bad[] = {
        "\"0\"",
        "\"-5\"",
        "\"abc\"",
        "\"\"",
        "\"9223372036854775808\"",
        "\"99999999999999999999\"",
        "\"007\"",
        "\" 5\"",
        "\"5 \"",
        "\"+5\"",
        "\"5x\"",
        "\"1e3\"",
        "0",
        "-5",
        "1.5",
        "true",
        "null",
        "[5]",
        "{\"id\":5}",
        "9223372036854775808",
    };
    ons_principal p;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(verify(craft(HS256, payload(bad[i], "\"fan\""), SECRET), &p) == ONS_EAUTH,
                      "sub %s accepted", bad[i]);
    ck_assert_int_eq(verify(craft(HS256, "{\"role\":\"fan\",\"exp\":1900000000}", SECRET), &p),
                     ONS_EAUTH);
}
END_TEST

START_TEST(bad_role)
{
    static const char *bad[] = {"\"root\"", "\"Admin\"", "\"FAN\"", "\"\"",
                                "\"fan \"", "1",         "null",    "[\"fan\"]"};
    ons_principal p;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(verify(craft(HS256, payload("\"5\"", bad[i]), SECRET), &p) == ONS_EAUTH,
                      "role %s accepted", bad[i]);
    ck_assert_int_eq(verify(craft(HS256, "{\"sub\":\"5\",\"exp\":1900000000}", SECRET), &p),
                     ONS_EAUTH);
}
END_TEST

START_TEST(garbage)
{
    static const char *bad[] = {
        "Bearer abc",         "Bearer a.b.c",       "Bearer ..",
        "Bearer a.b",         "Bearer a.b.c.d",     "Bearer e30.e30.",
        "Bearer e30.e30.e30", "Bearer !!!.???.***", "Bearer eyJhbGciOiJIUzI1NiJ9..",
        "Bearer ===.===.===", "Bearer a+b/c.d.e",
    };
    ons_principal p;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(verify(bad[i], &p) == ONS_EAUTH, "'%s' accepted", bad[i]);
    /* Signed, but the payload is not a JSON object. */
    ck_assert_int_eq(verify(craft(HS256, "[1,2,3]", SECRET), &p), ONS_EAUTH);
    ck_assert_int_eq(verify(craft(HS256, "not json", SECRET), &p), ONS_EAUTH);
    ck_assert_int_eq(verify(craft("not json", payload("\"5\"", "\"fan\""), SECRET), &p), ONS_EAUTH);
    /* Over the length limit. */
    char *big = malloc(ONS_AUTH_TOKEN_MAX + 64);
    strcpy(big, "Bearer ");
    memset(big + 7, 'a', ONS_AUTH_TOKEN_MAX);
    big[7 + 10] = '.';
    big[7 + 20] = '.';
    big[7 + ONS_AUTH_TOKEN_MAX] = 'a';
    big[8 + ONS_AUTH_TOKEN_MAX] = '\0';
    ck_assert_int_eq(verify(big, &p), ONS_EAUTH);
    free(big);
}
END_TEST

START_TEST(short_secret_fails_closed)
{
    ons_principal p;
    const char *tok = craft(HS256, payload("\"5\"", "\"fan\""), "short");
    ck_assert_int_eq(ons_auth_verify("short", tok, NOW, &p), ONS_EAUTH);
    ck_assert_int_eq(ons_auth_verify(NULL, tok, NOW, &p), ONS_EAUTH);
    ck_assert_int_eq(ons_auth_verify("", tok, NOW, &p), ONS_EAUTH);
}
END_TEST

START_TEST(mint_rejects_bad_input)
{
    char *tok = (char *)"untouched";
    ck_assert_int_eq(ons_auth_mint("short", 5, ONS_ROLE_FAN, NOW, 60, &tok), ONS_EINVAL);
    ck_assert_ptr_null(tok);
    ck_assert_int_eq(ons_auth_mint(NULL, 5, ONS_ROLE_FAN, NOW, 60, &tok), ONS_EINVAL);
    ck_assert_int_eq(ons_auth_mint(SECRET, 0, ONS_ROLE_FAN, NOW, 60, &tok), ONS_EINVAL);
    ck_assert_int_eq(ons_auth_mint(SECRET, -1, ONS_ROLE_FAN, NOW, 60, &tok), ONS_EINVAL);
    ck_assert_int_eq(ons_auth_mint(SECRET, 5, (enum ons_role)3, NOW, 60, &tok), ONS_EINVAL);
    ck_assert_int_eq(ons_auth_mint(SECRET, 5, ONS_ROLE_FAN, NOW, 0, &tok), ONS_EINVAL);
    ck_assert_int_eq(ons_auth_mint(SECRET, 5, ONS_ROLE_FAN, NOW, INT64_MAX, &tok), ONS_EINVAL);
    ck_assert_ptr_null(tok);
}
END_TEST

START_TEST(roles_and_user_ids)
{
    enum ons_role r;
    ck_assert_int_eq(ons_role_parse("fan", &r), 0);
    ck_assert_int_eq(r, ONS_ROLE_FAN);
    ck_assert_int_eq(ons_role_parse("seller", &r), 0);
    ck_assert_int_eq(r, ONS_ROLE_SELLER);
    ck_assert_int_eq(ons_role_parse("admin", &r), 0);
    ck_assert_int_eq(r, ONS_ROLE_ADMIN);
    ck_assert_int_eq(ons_role_parse("Admin", &r), ONS_EINVAL);
    ck_assert_int_eq(ons_role_parse(NULL, &r), ONS_EINVAL);
    ck_assert_str_eq(ons_role_name(ONS_ROLE_SELLER), "seller");
    ck_assert_ptr_null(ons_role_name((enum ons_role)0));
    ck_assert_ptr_null(ons_role_name((enum ons_role)3));

    int64_t id;
    ck_assert_int_eq(ons_user_id_parse("1", &id), 0);
    ck_assert(id == 1);
    ck_assert_int_eq(ons_user_id_parse("9223372036854775807", &id), 0);
    ck_assert(id == INT64_MAX);
    ck_assert_int_eq(ons_user_id_parse("9223372036854775808", &id), ONS_EINVAL);
    ck_assert_int_eq(ons_user_id_parse("0", &id), ONS_EINVAL);
    ck_assert_int_eq(ons_user_id_parse("", &id), ONS_EINVAL);
    ck_assert_int_eq(ons_user_id_parse(NULL, &id), ONS_EINVAL);
}
END_TEST

/* The verified-token cache answers exactly like ons_auth_verify. */
START_TEST(cache_hits_and_expiry)
{
    ons_auth_cache *c = NULL;
    ck_assert_int_eq(ons_auth_cache_new(SECRET, 16, &c), 0);
    char *tok = NULL;
    ck_assert_int_eq(ons_auth_mint(SECRET, 42, ONS_ROLE_SELLER, NOW, 60, &tok), 0);
    ons_principal p = {0};
    uint64_t hits, misses;
    ck_assert_int_eq(ons_auth_verify_cached(c, bearer(tok), NOW, &p), 0);
    ck_assert(p.user_id == 42 && p.role == ONS_ROLE_SELLER && p.exp == NOW + 60);
    memset(&p, 0, sizeof p);
    ck_assert_int_eq(ons_auth_verify_cached(c, bearer(tok), NOW + 59, &p), 0);
    ck_assert(p.user_id == 42 && p.role == ONS_ROLE_SELLER);
    ons_auth_cache_stats(c, &hits, &misses);
    ck_assert(hits == 1 && misses == 1);
    /* Expiry is checked on every hit. */
    ck_assert_int_eq(ons_auth_verify_cached(c, bearer(tok), NOW + 60, &p), ONS_EAUTH);
    ck_assert_int_eq(ons_auth_verify_cached(c, bearer(tok), NOW + 59, &p), 0);
    /* A token differing in its last character (signature) is not a hit. */
    char bad[8192];
    snprintf(bad, sizeof bad, "%s", bearer(tok));
    size_t n = strlen(bad);
    bad[n - 1] = bad[n - 1] == 'A' ? 'B' : 'A';
    ck_assert_int_eq(ons_auth_verify_cached(c, bad, NOW, &p), ONS_EAUTH);
    /* A prefix is not a hit either. */
    bad[n - 1] = '\0';
    ck_assert_int_eq(ons_auth_verify_cached(c, bad, NOW, &p), ONS_EAUTH);
    ck_assert_int_eq(ons_auth_verify_cached(c, "Bearer", NOW, &p), ONS_EAUTH);
    ck_assert_int_eq(
        ons_auth_verify_cached(c, craft(HS256, payload("\"7\"", "\"fan\""), SECRET), NOW, &p), 0);
    ck_assert(p.user_id == 7 && p.role == ONS_ROLE_FAN);
    ck_assert_int_eq(
        ons_auth_verify_cached(c, craft(HS256, payload("\"7\"", "\"fan\""), "x-other-secret-0123"),
                               NOW, &p),
        ONS_EAUTH);
    free(tok);
    ons_auth_cache_free(c);
}
END_TEST

/* More tokens than slots: every answer stays right, memory stays bounded. */
START_TEST(cache_bounded)
{
    ons_auth_cache *c = NULL;
    ck_assert_int_eq(ons_auth_cache_new(SECRET, 8, &c), 0);
    enum { N = 200 };
    char *toks[N];
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(ons_auth_mint(SECRET, 1000 + i, ONS_ROLE_FAN, NOW, 600, &toks[i]), 0);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            ons_principal p = {0};
            ck_assert_int_eq(ons_auth_verify_cached(c, bearer(toks[i]), NOW, &p), 0);
            ck_assert(p.user_id == 1000 + i);
        }
    }
    /* The most recent token of a set is still there. */
    ons_principal p = {0};
    uint64_t h0, m0, h1, m1;
    ons_auth_cache_stats(c, &h0, &m0);
    ck_assert_int_eq(ons_auth_verify_cached(c, bearer(toks[N - 1]), NOW, &p), 0);
    ons_auth_cache_stats(c, &h1, &m1);
    ck_assert(h1 == h0 + 1 && m1 == m0);
    for (int i = 0; i < N; i++)
        free(toks[i]);
    ons_auth_cache_free(c);
    /* capacity 0: no caching, still verifies */
    ck_assert_int_eq(ons_auth_cache_new(SECRET, 0, &c), 0);
    char *tok = NULL;
    ck_assert_int_eq(ons_auth_mint(SECRET, 9, ONS_ROLE_ADMIN, NOW, 600, &tok), 0);
    ck_assert_int_eq(ons_auth_verify_cached(c, bearer(tok), NOW, &p), 0);
    ck_assert(p.user_id == 9 && p.role == ONS_ROLE_ADMIN);
    free(tok);
    ons_auth_cache_free(c);
    ck_assert_int_eq(ons_auth_cache_new("short", 8, &c), ONS_EINVAL);
}
END_TEST

/* A secret that is its public default, missing, or shared with another
 * purpose stops the process, unless dev_mode; the message names the
 * option, its environment variable and dev_mode. */
/* ons_auth_verify answers the common token on a fast path of its own and
 * leaves the rest to libjwt: both must give the same verdict and principal
 * on every header and claims shape that might tell them apart. */
START_TEST(fast_path_agrees_with_libjwt)
{
    static const char *const headers[] = {
        HS256,
        "{\"alg\":\"HS256\"}",
        "{\"typ\":\"JWT\",\"alg\":\"HS256\"}",
        "{\"alg\":\"HS256\",\"typ\":\"jwt\"}",
        "{\"alg\":\"HS256\",\"typ\":\"JOSE\"}",
        "{\"alg\":\"HS256\",\"typ\":1}",
        "{\"alg\":\"hs256\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS384\"}",
        "{\"alg\":\"none\"}",
        "{\"alg\":null}",
        "{\"typ\":\"JWT\"}",
        "{\"alg\":\"HS256\",\"kid\":\"k1\"}",
        "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
        "{\"alg\":\"HS256\",\"alg\":\"none\"}",
        "{\"alg\":\"none\",\"alg\":\"HS256\"}",
        "[\"alg\",\"HS256\"]",
        "{\"alg\":\"HS256\"",
        "",
    };
    char claims[12][160];
    snprintf(claims[0], sizeof claims[0], "{\"sub\":\"7\",\"role\":\"fan\",\"exp\":%lld}",
             NOW + 60);
    snprintf(claims[1], sizeof claims[1], "{\"sub\":7,\"role\":\"admin\",\"exp\":%lld}", NOW + 1);
    snprintf(claims[2], sizeof claims[2], "{\"sub\":\"7\",\"role\":\"fan\",\"exp\":%lld}", NOW);
    snprintf(claims[3], sizeof claims[3],
             "{\"sub\":\"7\",\"role\":\"fan\",\"exp\":%lld,\"nbf\":%lld}", NOW + 60, NOW + 1);
    snprintf(claims[4], sizeof claims[4], "{\"sub\":\"07\",\"role\":\"fan\",\"exp\":%lld}",
             NOW + 60);
    snprintf(claims[5], sizeof claims[5],
             "{\"sub\":\"7\",\"sub\":\"8\",\"role\":\"fan\",\"exp\":%lld}", NOW + 60);
    snprintf(claims[6], sizeof claims[6], "{\"sub\":\"7\",\"role\":\"fan\",\"exp\":%lld.0}",
             NOW + 60);
    snprintf(claims[7], sizeof claims[7], "[1,2]");
    snprintf(claims[8], sizeof claims[8],
             " { \"sub\" : \"7\" ,\n\"role\":\"\\u0066an\",\t\"exp\":%lld } ", NOW + 60);
    snprintf(claims[9], sizeof claims[9],
             "{\"sub\":\"7\",\"role\":\"fan\",\"aud\":[\"x\"],\"exp\":%lld}", NOW + 60);
    snprintf(claims[10], sizeof claims[10], "{\"sub\":\"7\",\"role\":\"fan\",\"exp\":%lld}x",
             NOW + 60);
    snprintf(claims[11], sizeof claims[11], "{\"sub\":-7,\"role\":\"fan\",\"exp\":0%lld}",
             NOW + 60);
    const char *keys[] = {SECRET, "another-secret-0123456789"};
    int accepted = 0;
    for (size_t h = 0; h < sizeof headers / sizeof *headers; h++)
        for (size_t c = 0; c < 12; c++)
            for (size_t k = 0; k < 2; k++) {
                char tok[1024];
                snprintf(tok, sizeof tok, "%s", craft(headers[h], claims[c], keys[k]));
                ons_principal a = {0}, b = {0};
                int ra = ons_auth_verify(SECRET, tok, NOW, &a);
                int rb = ons_auth_verify_libjwt(SECRET, tok, NOW, &b);
                ck_assert_msg(ra == rb, "verdicts differ on %s / %s", headers[h], claims[c]);
                if (ra == 0) {
                    ck_assert(memcmp(&a, &b, sizeof a) == 0);
                    accepted++;
                }
                /* Signature text altered in its last character's unused bits
                 * (not canonical base64url): libjwt compares the text. */
                size_t n = strlen(tok);
                tok[n - 1] = tok[n - 1] == 'A' ? 'B' : 'A';
                ck_assert_int_eq(ons_auth_verify(SECRET, tok, NOW, &a),
                                 ons_auth_verify_libjwt(SECRET, tok, NOW, &b));
            }
    ck_assert_int_gt(accepted, 4);
}
END_TEST

START_TEST(secrets_refused_outside_dev_mode)
{
    char err[512];
    ons_secret ok[] = {{"auth.secret", "jwt-key-0123456789abcdef", ONS_AUTH_SECRET_DEV},
                       {"ids.secret", "ids-key-0123456789abcdef", ONS_IDS_SECRET_DEV}};
    ck_assert_int_eq(ons_secrets_check(ok, 2, 0, err, sizeof err), 0);
    ck_assert_str_eq(err, "");

    ons_secret dflt[] = {{"auth.secret", "jwt-key-0123456789abcdef", ONS_AUTH_SECRET_DEV},
                         {"ids.secret", ONS_IDS_SECRET_DEV, ONS_IDS_SECRET_DEV}};
    ck_assert_int_eq(ons_secrets_check(dflt, 2, 0, err, sizeof err), ONS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "ids.secret is the public development default"));
    ck_assert_ptr_nonnull(strstr(err, "ONSALE_IDS_SECRET"));
    ck_assert_ptr_nonnull(strstr(err, "ONSALE_DEV_MODE=1"));
    ck_assert_int_eq(ons_secrets_check(dflt, 2, 1, err, sizeof err), 0);
    ck_assert_ptr_nonnull(strstr(err, "dev_mode: ids.secret use development values"));

    ons_secret shared[] = {{"auth.secret", "one-key-for-both-0123456", ONS_AUTH_SECRET_DEV},
                           {"ids.secret", "one-key-for-both-0123456", ONS_IDS_SECRET_DEV}};
    ck_assert_int_eq(ons_secrets_check(shared, 2, 0, err, sizeof err), ONS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "ids.secret has the same value as auth.secret"));
    ck_assert_int_eq(ons_secrets_check(shared, 2, 1, err, sizeof err), 0);

    ons_secret missing[] = {{"payments.api_key", "", ONS_GATEWAY_KEY_DEV}};
    ck_assert_int_eq(ons_secrets_check(missing, 1, 1, err, sizeof err), ONS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "payments.api_key is missing"));
    ck_assert_ptr_nonnull(strstr(err, "ONSALE_PAYMENTS_API_KEY"));
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"round_trip", mint_verify_round_trip},
        {"hand_built", hand_built_token_verifies},
        {"scheme", scheme_spelling},
        {"expired", expired},
        {"not_before", not_before},
        {"wrong_secret", wrong_secret},
        {"tampered", tampered},
        {"alg_none", alg_none},
        {"other_algs", other_algs},
        {"exp_required", exp_required},
        {"bad_sub", bad_sub},
        {"bad_role", bad_role},
        {"garbage", garbage},
        {"short_secret", short_secret_fails_closed},
        {"mint_errors", mint_rejects_bad_input},
        {"roles_and_user_ids", roles_and_user_ids},
        {"cache_hits_and_expiry", cache_hits_and_expiry},
        {"cache_bounded", cache_bounded},
        {"secrets_refused_outside_dev_mode", secrets_refused_outside_dev_mode},
        {"fast_path_agrees_with_libjwt", fast_path_agrees_with_libjwt},
    };
    return ons_check_run("auth", cases, sizeof cases / sizeof *cases, 60);
}
