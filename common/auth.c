/*
 * auth.c - HS256 JWT bearer tokens: verification for every HTTP process and
 * minting for onsalectl and tests; see auth.h.
 *
 * libjwt does the base64url decoding and the HMAC; this file adds what libjwt
 * 1.10.2 leaves to the caller: the algorithm must be HS256 (libjwt accepts
 * whatever the token's header names, including "none" when no key is given),
 * and the claims are checked with strict JSON types through jansson, because
 * jwt_get_grant_int() cannot tell a missing or non-integer claim from 0.
 *
 * Every token first meets a fast path (fast_verify) that only ever ACCEPTS,
 * and only a token the libjwt path would accept too: canonical base64url,
 * an HMAC-SHA256 over the same bytes equal to the signature's text (what
 * libjwt compares), the same jansson parse of header and claims, the same
 * header and claims checks. Anything else (malformed, a header field it does
 * not judge, a wrong signature) goes to the libjwt path, which decides. The
 * fast path exists because libjwt's decode (one-shot HMAC() fetching the
 * digest and keying each call, base64 via BIO, claims dumped and re-parsed)
 * was ~37% of a join's instructions, every join carrying a fan's first
 * token.
 */
#include "common/auth.h"
#include "common/b64url.h"
#include "common/err.h"
#include "common/hash.h"
#include "common/hmac.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <jwt.h>
#include <pthread.h>
#include <stdatomic.h>
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
    {ONS_ROLE_SCANNER, "scanner"},
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

/* ---- fast path ------------------------------------------------------------------ */

/* A flat JSON object as the fast path reads it: members whose values are
 * plain strings (printable ASCII, no escapes) or integers of at most 18
 * digits (no sign but '-', no leading zero, no fraction). Anything else in
 * the document (nesting, escapes, true/false/null, a repeated name, more
 * than FLAT_MAX members, any syntax jansson might read differently) makes
 * the parse give up, and libjwt decides. Names and strings point into the
 * decoded buffer, NUL-terminated in place. */
#define FLAT_MAX 16

typedef struct flat_member {
    const char *name;
    const char *str; /* NULL: an integer */
    int64_t num;
} flat_member;

typedef struct flat_obj {
    flat_member m[FLAT_MAX];
    size_t n;
} flat_obj;

static char *skip_ws(char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* A plain string at p (after its opening quote): returns the character
 * after the closing quote, the string NUL-terminated in place, or NULL. */
static char *flat_string(char *p, const char **out)
{
    *out = p;
    for (; *p != '"'; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e || *p == '\\')
            return NULL;
    *p = '\0';
    return p + 1;
}

/* Returns 0 (parsed, *o filled) or -1 (not for the fast path). buf is
 * NUL-terminated and modified. */
static int flat_parse(char *buf, flat_obj *o)
{
    o->n = 0;
    char *p = skip_ws(buf);
    if (*p++ != '{')
        return -1;
    p = skip_ws(p);
    if (*p == '}')
        return *skip_ws(p + 1) ? -1 : 0;
    for (;;) {
        if (o->n == FLAT_MAX || *p++ != '"')
            return -1;
        flat_member *m = &o->m[o->n];
        if (!(p = flat_string(p, &m->name)))
            return -1;
        for (size_t i = 0; i < o->n; i++)
            if (strcmp(o->m[i].name, m->name) == 0)
                return -1;
        p = skip_ws(p);
        if (*p++ != ':')
            return -1;
        p = skip_ws(p);
        if (*p == '"') {
            if (!(p = flat_string(p + 1, &m->str)))
                return -1;
        } else {
            int neg = *p == '-';
            if (neg)
                p++;
            if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9'))
                return -1;
            int64_t v = 0;
            int digits = 0;
            for (; *p >= '0' && *p <= '9'; p++) {
                if (++digits > 18)
                    return -1; /* 18 digits cannot overflow int64 */
                v = v * 10 + (*p - '0');
            }
            if (*p == '.' || *p == 'e' || *p == 'E')
                return -1;
            m->str = NULL;
            m->num = neg ? -v : v;
        }
        o->n++;
        p = skip_ws(p);
        if (*p == '}')
            return *skip_ws(p + 1) ? -1 : 0;
        if (*p++ != ',')
            return -1;
        p = skip_ws(p);
    }
}

static const flat_member *flat_get(const flat_obj *o, const char *name)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->m[i].name, name) == 0)
            return &o->m[i];
    return NULL;
}

/* Decodes and parses one segment. Returns 0 or -1. */
static int segment_flat(const char *seg, size_t n, char *buf, flat_obj *o)
{
    long len = ons_b64url_decode(seg, n, (unsigned char *)buf);
    if (len <= 0 || memchr(buf, 0, (size_t)len))
        return -1;
    buf[len] = '\0';
    return flat_parse(buf, o);
}

/* check_claims over a flat object: the same rules. 0 or -1. */
static int flat_claims(const flat_obj *c, int64_t now, ons_principal *out)
{
    const flat_member *exp = flat_get(c, "exp"), *nbf = flat_get(c, "nbf");
    const flat_member *sub = flat_get(c, "sub"), *role = flat_get(c, "role");
    if (!exp || exp->str || exp->num <= now)
        return -1;
    if (nbf && (nbf->str || nbf->num > now))
        return -1;
    int64_t user_id;
    if (!sub)
        return -1;
    if (sub->str) {
        if (ons_user_id_parse(sub->str, &user_id) != 0)
            return -1;
    } else if (sub->num > 0) {
        user_id = sub->num;
    } else {
        return -1;
    }
    enum ons_role r;
    if (!role || !role->str || ons_role_parse(role->str, &r) != 0)
        return -1;
    out->user_id = user_id;
    out->role = r;
    out->exp = exp->num;
    return 0;
}

/* Returns 0 (accepted: *out filled) or 1 (not judged here: ask libjwt). */
static int fast_verify(const char *secret, const char *token, int64_t now, ons_principal *out)
{
    const char *d1 = strchr(token, '.');
    const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    if (!d2 || strlen(d2 + 1) != 43)
        return 1;
    /* The signature first: it is the cheapest way to turn away a forgery
     * before any JSON is parsed (libjwt then says no for good). */
    unsigned char mac[32];
    if (ons_hmac_sha256(secret, token, (size_t)(d2 - token), mac))
        return 1;
    char sig[44];
    ons_b64url_encode(mac, 32, sig);
    volatile unsigned char diff = 0;
    for (size_t i = 0; i < 43; i++)
        diff |= (unsigned char)(sig[i] ^ d2[1 + i]);
    if (diff)
        return 1;
    /* The header: alg exactly HS256 (libjwt matches it ignoring case, then
     * ons_auth_verify insists on the exact name); typ absent or "JWT" in
     * any case (libjwt's rule); no other member (crit or anything unusual
     * goes to libjwt). */
    char hbuf[ONS_AUTH_TOKEN_MAX], cbuf[ONS_AUTH_TOKEN_MAX];
    flat_obj head, claims;
    if (segment_flat(token, (size_t)(d1 - token), hbuf, &head))
        return 1;
    const flat_member *alg = flat_get(&head, "alg"), *typ = flat_get(&head, "typ");
    if (!alg || !alg->str || strcmp(alg->str, "HS256") != 0 ||
        (typ && (!typ->str || strcasecmp(typ->str, "JWT") != 0)) || head.n != 1 + (typ != NULL))
        return 1;
    if (segment_flat(d1 + 1, (size_t)(d2 - d1 - 1), cbuf, &claims) ||
        flat_claims(&claims, now, out))
        return 1;
    return 0;
}

int ons_auth_verify(const char *secret, const char *authorization, int64_t now, ons_principal *out)
{
    assert(out);
    const char *token = bearer_token(authorization);
    if (token && secret && strlen(secret) >= ONS_AUTH_SECRET_MIN &&
        fast_verify(secret, token, now, out) == 0)
        return 0;
    return ons_auth_verify_libjwt(secret, authorization, now, out);
}

int ons_auth_verify_libjwt(const char *secret, const char *authorization, int64_t now,
                           ons_principal *out)
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
    /* libjwt matches the name ignoring case; JWS names are case-sensitive. */
    const char *alg = jwt_get_header(jwt, "alg");
    if (jwt_get_alg(jwt) != JWT_ALG_HS256 || !alg || strcmp(alg, "HS256") != 0)
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

/* ---- verified-token cache ------------------------------------------------------ */

#define CACHE_WAYS    4
#define CACHE_STRIPES 64

typedef struct cache_slot {
    char *token; /* NULL: empty */
    size_t len;
    uint64_t hash;
    uint64_t stamp; /* insertion order; the set's smallest goes first */
    ons_principal who;
} cache_slot;

struct ons_auth_cache {
    char *secret;
    size_t nsets;      /* power of two */
    cache_slot *slots; /* nsets * CACHE_WAYS */
    uint64_t seed;
    atomic_uint_fast64_t clock;
    atomic_uint_fast64_t hits, misses;
    pthread_mutex_t locks[CACHE_STRIPES];
};

int ons_auth_cache_new(const char *secret, size_t capacity, ons_auth_cache **out)
{
    if (!secret || strlen(secret) < ONS_AUTH_SECRET_MIN)
        return ONS_EINVAL;
    ons_auth_cache *c = calloc(1, sizeof *c);
    if (!c)
        return ONS_ENOMEM;
    size_t sets = 0;
    if (capacity > 0) {
        sets = 1;
        while (sets * CACHE_WAYS < capacity)
            sets <<= 1;
    }
    c->nsets = sets;
    c->secret = strdup(secret);
    c->slots = sets ? calloc(sets * CACHE_WAYS, sizeof *c->slots) : NULL;
    if (!c->secret || (sets && !c->slots)) {
        free(c->secret);
        free(c->slots);
        free(c);
        return ONS_ENOMEM;
    }
    /* A per-process seed so that nobody can aim tokens at one set. */
    c->seed = (uint64_t)(uintptr_t)c ^ 0x9E3779B97F4A7C15ULL;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        uint64_t r = 0;
        if (fread(&r, sizeof r, 1, f) == 1)
            c->seed ^= r;
        fclose(f);
    }
    for (int i = 0; i < CACHE_STRIPES; i++)
        pthread_mutex_init(&c->locks[i], NULL);
    *out = c;
    return 0;
}

void ons_auth_cache_free(ons_auth_cache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nsets * CACHE_WAYS; i++)
        free(c->slots[i].token);
    for (int i = 0; i < CACHE_STRIPES; i++)
        pthread_mutex_destroy(&c->locks[i]);
    free(c->slots);
    free(c->secret);
    free(c);
}

void ons_auth_cache_stats(ons_auth_cache *c, uint64_t *hits, uint64_t *misses)
{
    *hits = atomic_load(&c->hits);
    *misses = atomic_load(&c->misses);
}

/* Constant time in the length: no early exit on the first difference. A
 * word at a time; the empty asm keeps the compiler from reasoning about acc
 * inside the loop (and adding an exit). */
static int same_bytes(const char *a, const char *b, size_t n)
{
    uint64_t acc = 0, x, y;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        acc |= x ^ y;
        __asm__("" : "+r"(acc));
    }
    for (; i < n; i++) {
        acc |= (unsigned char)(a[i] ^ b[i]);
        __asm__("" : "+r"(acc));
    }
    return acc == 0;
}

/* Does slot e hold token (hashed h, len bytes)? */
static int slot_holds(const cache_slot *e, const char *token, size_t len, uint64_t h)
{
    return e->token && e->hash == h && e->len == len && same_bytes(e->token, token, len);
}

/* The set's slot for token: a live entry (1, *out filled), or 0 (none, or
 * expired and dropped so that the caller verifies it, to refuse it). */
static int cache_lookup(cache_slot *ways, pthread_mutex_t *mu, const char *token, size_t len,
                        uint64_t h, int64_t now, ons_principal *out)
{
    int hit = 0;
    pthread_mutex_lock(mu);
    for (int i = 0; i < CACHE_WAYS; i++) {
        cache_slot *e = &ways[i];
        if (!slot_holds(e, token, len, h))
            continue;
        if (e->who.exp > now) {
            *out = e->who;
            hit = 1;
        } else {
            free(e->token);
            e->token = NULL;
        }
        break;
    }
    pthread_mutex_unlock(mu);
    return hit;
}

/* Remembers a verified token in its set: an empty slot, else the oldest;
 * nothing when another thread cached it meanwhile. copy is taken. */
static void cache_store(cache_slot *ways, pthread_mutex_t *mu, char *copy, size_t len, uint64_t h,
                        uint64_t stamp, const ons_principal *who)
{
    pthread_mutex_lock(mu);
    cache_slot *victim = &ways[0];
    for (int i = 0; i < CACHE_WAYS; i++) {
        cache_slot *e = &ways[i];
        if (slot_holds(e, copy, len, h)) {
            victim = NULL;
            break;
        }
        if (!e->token) {
            if (victim->token)
                victim = e;
        } else if (victim->token && e->stamp < victim->stamp) {
            victim = e;
        }
    }
    if (victim) {
        free(victim->token);
        *victim = (cache_slot){.token = copy, .len = len, .hash = h, .stamp = stamp, .who = *who};
        copy = NULL;
    }
    pthread_mutex_unlock(mu);
    free(copy);
}

int ons_auth_verify_cached(ons_auth_cache *c, const char *authorization, int64_t now,
                           ons_principal *out)
{
    if (!c->nsets)
        return ons_auth_verify(c->secret, authorization, now, out);
    const char *token = bearer_token(authorization);
    if (!token)
        return ONS_EAUTH;
    size_t len = strlen(token);
    /* Seeded per process; the hash only picks a set: equality is always the
     * full constant-time compare. */
    uint64_t h = ons_hash64(c->seed, token, len);
    size_t set = (size_t)(h >> 7) & (c->nsets - 1);
    cache_slot *ways = &c->slots[set * CACHE_WAYS];
    pthread_mutex_t *mu = &c->locks[set % CACHE_STRIPES];
    if (cache_lookup(ways, mu, token, len, h, now, out)) {
        atomic_fetch_add(&c->hits, 1);
        return 0;
    }
    atomic_fetch_add(&c->misses, 1);
    int rc = ons_auth_verify(c->secret, authorization, now, out);
    if (rc)
        return rc;
    char *copy = malloc(len + 1);
    if (!copy)
        return 0; /* verified; just not remembered */
    memcpy(copy, token, len + 1);
    cache_store(ways, mu, copy, len, h, atomic_fetch_add(&c->clock, 1) + 1, out);
    return 0;
}

/* "auth.secret" -> "ONSALE_AUTH_SECRET" (the name ons_opts_load reads). */
static void env_name(const char *option, char *out, size_t len)
{
    size_t o = (size_t)snprintf(out, len, "ONSALE_");
    for (const char *p = option; *p && o + 1 < len; p++)
        out[o++] = (*p == '.' || *p == '-') ? '_' : (char)toupper((unsigned char)*p);
    out[o < len ? o : len - 1] = '\0';
}

int ons_secrets_check(const ons_secret *s, size_t n, int dev_mode, char *errbuf, size_t errlen)
{
    char env[128];
    size_t used = 0;
    if (errlen)
        errbuf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *why = NULL;
        const char *other = NULL;
        if (!s[i].value || !s[i].value[0])
            why = "is missing";
        else if (s[i].dev_default && strcmp(s[i].value, s[i].dev_default) == 0)
            why = "is the public development default";
        for (size_t k = 0; !why && k < i; k++)
            if (s[k].value && strcmp(s[k].value, s[i].value) == 0) {
                why = "has the same value as";
                other = s[k].option;
            }
        if (!why)
            continue;
        env_name(s[i].option, env, sizeof env);
        if (!dev_mode || !s[i].value || !s[i].value[0]) {
            snprintf(errbuf, errlen,
                     "%s %s%s%s: set a secret of its own (%s or the config file's %s), "
                     "or dev_mode = true (ONSALE_DEV_MODE=1) on a development machine",
                     s[i].option, why, other ? " " : "", other ? other : "", env, s[i].option);
            return ONS_EINVAL;
        }
        if (used < errlen) {
            int w = snprintf(errbuf + used, errlen - used, "%s%s",
                             used ? ", " : "dev_mode: ", s[i].option);
            used += w > 0 ? (size_t)w : 0;
        }
    }
    if (used && used < errlen)
        snprintf(errbuf + used, errlen - used,
                 " use development values; never run this way in production");
    return 0;
}
