/*
 * routes_accounts.c - accounts and logins: sign-up, login, refresh, logout,
 * the caller's account, and role grants by an admin (docs/accounts.md).
 *
 * Handlers validate on the nng thread; everything that touches PostgreSQL
 * or hashes a password runs on a job thread. Sign-up and login first take a
 * slot of the hashing gate (accounts.h) and answer 503 when none is free,
 * so password hashing can never take every job thread from the queue.
 *
 * A login gives the same answer (401 invalid_credentials) for an unknown
 * email and a wrong password, after the same work: the same queries, one
 * argon2id verification (against a dummy hash when there is no account),
 * and the same failure counting. Failures are counted per email (whether
 * or not it has an account) and per client address; at the limit a login
 * is refused with 429 and Retry-After before any hashing.
 */
#include "common/err.h"
#include "common/log.h"
#include "common/password.h"
#include "ingress/accounts.h"
#include "ingress/accounts_store.h"
#include "ingress/client_addr.h"
#include "ingress/json_io.h"
#include "ingress/routes.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PASSWORD_MIN     8
#define PASSWORD_MAX     256
#define DISPLAY_NAME_MAX 100                 /* characters (code points) */
#define ADDR_MAX         ING_CLIENT_ADDR_MAX /* an IPv6 address in text */

/* Roles in the order a login picks the default from: the highest first. */
static const enum ons_role role_rank[] = {ONS_ROLE_ADMIN, ONS_ROLE_SELLER, ONS_ROLE_SCANNER,
                                          ONS_ROLE_FAN};
#define NROLES (sizeof role_rank / sizeof *role_rank)

typedef struct acct_job {
    ing_accounts *acc;
    int holds_slot; /* a hashing slot, given back when the request is freed */
    const char *email, *password, *display_name, *token; /* point into r->body */
    size_t password_len;
    int role;                          /* requested or granted role, 0 = none */
    int64_t user_id;                   /* path id */
    char email_key[6 + ING_EMAIL_MAX]; /* "acct:" + lower-cased email */
    char addr_key[6 + ADDR_MAX];       /* "addr:" + address, "" = unknown */
} acct_job;

static void job_free(void *p)
{
    acct_job *j = p;
    if (j->holds_slot)
        ing_accounts_hash_release(j->acc);
    free(j);
}

static acct_job *job_new(ing_req *r)
{
    acct_job *j = ing_req_job(r, sizeof *j, job_free);
    if (j)
        j->acc = r->app->accounts;
    return j;
}

/* Takes a hashing slot for r's job, or replies 503 and returns -1. */
static int take_hash_slot(ing_req *r, acct_job *j)
{
    if (!ing_accounts_hash_acquire(j->acc)) {
        ing_accounts_count(j->acc->hash_busy);
        ing_failf(r, NULL, ING_E_OVERLOADED, NULL,
                  "Too many logins and sign-ups at once; retry shortly.");
        return -1;
    }
    j->holds_slot = 1;
    return 0;
}

static void db_unavailable(ing_req *r)
{
    ing_failf(r, NULL, ING_E_UNAVAILABLE, NULL, "Accounts are unavailable; retry shortly.");
}

/* ---- validation ------------------------------------------------------------------ */

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* An address of the common shape local@domain.tld in ASCII: local part of
 * 1..64 letters, digits and !#$%&'*+-/=?^_`{|}~ with single inner dots;
 * domain of dot-separated labels of letters, digits and inner hyphens, at
 * least two labels. Quoted local parts and IP literals are refused. */
int ing_email_ok(const char *s)
{
    const char *at = strchr(s, '@');
    size_t len = strlen(s);
    if (!at || len < 3 || len > ING_EMAIL_MAX || strchr(at + 1, '@'))
        return 0;
    size_t local = (size_t)(at - s);
    if (local < 1 || local > 64 || s[0] == '.' || s[local - 1] == '.')
        return 0;
    for (size_t i = 0; i < local; i++) {
        if (s[i] == '.' && s[i + 1] == '.')
            return 0;
        if (!is_alnum(s[i]) && !strchr("!#$%&'*+-/=?^_`{|}~.", s[i]))
            return 0;
    }
    int labels = 0;
    for (const char *p = at + 1;;) {
        size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-");
        if (n < 1 || n > 63 || p[0] == '-' || p[n - 1] == '-')
            return 0;
        labels++;
        p += n;
        if (*p == '\0')
            break;
        if (*p++ != '.')
            return 0;
    }
    return labels >= 2;
}

/* Reads a valid "email" into j (and its lower-cased throttle key). */
static int read_email(ing_req *r, acct_job *j)
{
    if (ing_json_str(r, r->body, "email", 1, 3, ING_EMAIL_MAX, &j->email))
        return -1;
    if (!ing_email_ok(j->email)) {
        ing_failf(r, NULL, ING_E_INVALID_FIELD, "email",
                  "Field 'email' must be an address like name@example.com (ASCII).");
        return -1;
    }
    int n = snprintf(j->email_key, sizeof j->email_key, "acct:%s", j->email);
    for (int i = 5; i < n; i++)
        if (j->email_key[i] >= 'A' && j->email_key[i] <= 'Z')
            j->email_key[i] = (char)(j->email_key[i] - 'A' + 'a');
    return 0;
}

static int read_password(ing_req *r, acct_job *j)
{
    if (ing_json_str(r, r->body, "password", 1, PASSWORD_MIN, PASSWORD_MAX, &j->password))
        return -1;
    j->password_len = strlen(j->password);
    return 0;
}

/* 1..100 characters (UTF-8, validated by jansson), not only spaces. */
static int read_display_name(ing_req *r, acct_job *j)
{
    if (ing_json_str(r, r->body, "display_name", 1, 1, ING_DISPLAY_NAME_MAX, &j->display_name))
        return -1;
    size_t chars = 0;
    int visible = 0;
    for (const unsigned char *p = (const unsigned char *)j->display_name; *p; p++) {
        if ((*p & 0xC0) != 0x80)
            chars++;
        if (*p != ' ')
            visible = 1;
    }
    if (chars > DISPLAY_NAME_MAX || !visible) {
        ing_failf(r, NULL, ING_E_INVALID_FIELD, "display_name",
                  "Field 'display_name' must be 1 to %d characters, not only spaces.",
                  DISPLAY_NAME_MAX);
        return -1;
    }
    return 0;
}

/* The client's address as the proxy in front reports it (client_addr.h)
 * into j->addr_key, or leaves it empty when none is known or believed. */
static void read_client_addr(ing_req *r, acct_job *j)
{
    char addr[ING_CLIENT_ADDR_MAX + 1];
    if (ing_client_addr(r, addr, sizeof addr) == 0)
        snprintf(j->addr_key, sizeof j->addr_key, "addr:%s", addr);
}

/* ---- replies ----------------------------------------------------------------------- */

static json_t *roles_json(int mask)
{
    static const enum ons_role order[] = {ONS_ROLE_FAN, ONS_ROLE_SELLER, ONS_ROLE_SCANNER,
                                          ONS_ROLE_ADMIN};
    json_t *a = json_array();
    for (size_t i = 0; a && i < sizeof order / sizeof *order; i++)
        if (mask & (int)order[i])
            json_array_append_new(a, json_string(ons_role_name(order[i])));
    return a;
}

static json_t *user_json(const ing_account *u)
{
    return json_pack("{s:I, s:s, s:s, s:o, s:s}", "user_id", (json_int_t)u->user_id, "email",
                     u->email, "display_name", u->display_name, "roles", roles_json(u->roles),
                     "created_at", u->created_at);
}

/* The role an access token carries: the requested one while it is granted,
 * else the highest granted (admin > seller > scanner > fan). */
static enum ons_role token_role(int granted, int requested)
{
    if (requested && (granted & requested))
        return (enum ons_role)requested;
    for (size_t i = 0; i < NROLES; i++)
        if (granted & (int)role_rank[i])
            return role_rank[i];
    return ONS_ROLE_FAN;
}

/* Replies status with a fresh access token for user/role plus the refresh
 * token; user (may be NULL) is added as "user". Steals user. */
static void reply_tokens(ing_req *r, int status, int64_t user_id, enum ons_role role,
                         const char *refresh, json_t *user)
{
    const ing_opts *o = &r->app->o;
    char *access = NULL;
    if (ons_auth_mint(o->auth_secret, user_id, role, (int64_t)time(NULL), o->accounts_access_ttl_s,
                      &access)) {
        json_decref(user);
        ing_failf(r, NULL, ING_E_INTERNAL, NULL, "The access token could not be made.");
        return;
    }
    json_t *body =
        json_pack("{s:s, s:s, s:I, s:s, s:s, s:I, s:I}", "access_token", access, "token_type",
                  "Bearer", "expires_in", (json_int_t)o->accounts_access_ttl_s, "role",
                  ons_role_name(role), "refresh_token", refresh, "refresh_expires_in",
                  (json_int_t)o->accounts_refresh_ttl_s, "user_id", (json_int_t)user_id);
    free(access);
    if (!body) {
        json_decref(user);
        ing_fail(r, NULL, ING_E_OVERLOADED, NULL);
        return;
    }
    if (user)
        json_object_set_new(body, "user", user);
    ing_reply_json(r, status, body);
}

/* ---- POST /v1/users ---------------------------------------------------------------- */

static void user_create_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    acct_job *j = r->job;
    char hash[ONS_PASSWORD_HASH_MAX];
    if (ons_password_hash(j->password, j->password_len, j->acc->hash_ops, j->acc->hash_mem_kib,
                          hash)) {
        ing_fail(r, w, ING_E_OVERLOADED, NULL);
        return;
    }
    ing_account u;
    int rc = ing_acct_create(w, j->email, hash, j->display_name, &u);
    if (rc == ONS_EEXIST)
        ing_fail(r, w, ING_E_EMAIL_TAKEN, "email");
    else if (rc)
        db_unavailable(r);
    else
        ing_reply_json(r, 201, user_json(&u));
}

void ing_route_user_create(ing_req *r)
{
    static const char *const allowed[] = {"email", "password", "display_name", NULL};
    acct_job *j = job_new(r);
    if (!j || ing_json_only(r, r->body, allowed) || read_email(r, j) || read_password(r, j) ||
        read_display_name(r, j) || take_hash_slot(r, j))
        return;
    ing_req_submit(r, user_create_job);
}

/* ---- POST /v1/sessions --------------------------------------------------------------- */

static void login_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    acct_job *j = r->job;
    const ing_opts *o = &r->app->o;
    ing_throttle_key keys[2] = {
        {j->email_key, o->accounts_login_account_failures},
        {j->addr_key[0] ? j->addr_key : NULL, o->accounts_login_addr_failures}};
    int retry = 0;
    int rc = ing_throttle_check(w, keys, 2, &retry);
    if (rc == ONS_EFULL) {
        ing_accounts_count(j->acc->logins_throttled);
        r->retry_after = retry;
        ing_failf(r, w, ING_E_TOO_MANY_ATTEMPTS, NULL,
                  "Too many failed logins; retry in %d seconds.", retry);
        return;
    }
    ing_account u;
    if (rc || ((rc = ing_acct_by_email(w, j->email, &u)) && rc != ONS_ENOTFOUND)) {
        db_unavailable(r);
        return;
    }
    int found = rc == 0 && u.password_hash[0];
    /* Same cost whether or not the account exists (see the file comment). */
    int match = ons_password_verify(found ? u.password_hash : j->acc->dummy_hash, j->password,
                                    j->password_len);
    if (!found || !match) {
        if (ing_throttle_fail(w, keys, 2, o->accounts_login_window_s))
            ons_log_warn("login: cannot count a failure for %s", j->email_key);
        ing_accounts_count(j->acc->logins_failed);
        ing_fail(r, w, ING_E_INVALID_CREDENTIALS, NULL);
        return;
    }
    if (j->role && !(u.roles & j->role)) {
        ing_failf(r, w, ING_E_ROLE_NOT_GRANTED, "role", "This account has no role '%s'.",
                  ons_role_name((enum ons_role)j->role));
        return;
    }
    /* The limits rose (or fell) since this hash was made: store a new one
     * while we hold the password. A failure only postpones it. */
    if (ons_password_needs_rehash(u.password_hash, j->acc->hash_ops, j->acc->hash_mem_kib)) {
        char hash[ONS_PASSWORD_HASH_MAX];
        if (ons_password_hash(j->password, j->password_len, j->acc->hash_ops, j->acc->hash_mem_kib,
                              hash) ||
            ing_acct_set_hash(w, u.user_id, hash))
            ons_log_warn("login: rehash of user %" PRId64 " failed", u.user_id);
    }
    ing_throttle_clear(w, j->email_key);
    char refresh[ING_RTOKEN_LEN + 1];
    if (ing_session_open(w, u.user_id, j->role ? ons_role_name((enum ons_role)j->role) : NULL,
                         o->accounts_refresh_ttl_s, refresh)) {
        db_unavailable(r);
        return;
    }
    ing_accounts_count(j->acc->logins_ok);
    reply_tokens(r, 201, u.user_id, token_role(u.roles, j->role), refresh, user_json(&u));
}

/* Reads the "role" a login asks for (optional) or a grant gives
 * (required); an unknown name is refused with the roles the route takes,
 * which for a grant leaves out fan (every account is one). */
static int read_role(ing_req *r, acct_job *j, int required)
{
    const char *name = NULL;
    enum ons_role role;
    if (ing_json_str(r, r->body, "role", required, 1, 16, &name))
        return -1;
    if (!name)
        return 0;
    if (ons_role_parse(name, &role)) {
        ing_failf(r, NULL, ING_E_INVALID_FIELD, "role", "Field 'role' must be one of %s.",
                  required ? "seller, scanner, admin" : "fan, seller, scanner, admin");
        return -1;
    }
    j->role = (int)role;
    return 0;
}

void ing_route_session_create(ing_req *r)
{
    static const char *const allowed[] = {"email", "password", "role", NULL};
    acct_job *j = job_new(r);
    if (!j || ing_json_only(r, r->body, allowed) || read_email(r, j) || read_password(r, j) ||
        read_role(r, j, 0))
        return;
    read_client_addr(r, j);
    if (take_hash_slot(r, j))
        return;
    ing_req_submit(r, login_job);
}

/* ---- POST /v1/sessions/refresh, DELETE /v1/sessions ---------------------------------- */

static int read_refresh_token(ing_req *r, acct_job *j)
{
    static const char *const allowed[] = {"refresh_token", NULL};
    return ing_json_only(r, r->body, allowed) ||
           ing_json_str(r, r->body, "refresh_token", 1, 1, 256, &j->token);
}

static void refresh_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    acct_job *j = r->job;
    ing_refreshed out;
    int rc = ing_session_refresh(w, j->token, r->app->o.accounts_refresh_ttl_s, &out);
    if (rc == ONS_ECONFLICT)
        ing_accounts_count(j->acc->refresh_reuse);
    if (rc == ONS_EAUTH || rc == ONS_ECONFLICT)
        ing_failf(r, w, ING_E_INVALID_REFRESH_TOKEN, NULL,
                  "The refresh token is not valid (expired, revoked or already used); "
                  "log in again.");
    else if (rc)
        db_unavailable(r);
    else
        reply_tokens(r, 200, out.user_id, token_role(out.roles, out.requested_role), out.token,
                     NULL);
}

void ing_route_session_refresh(ing_req *r)
{
    acct_job *j = job_new(r);
    if (!j || read_refresh_token(r, j))
        return;
    ing_req_submit(r, refresh_job);
}

static void logout_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    acct_job *j = r->job;
    int rc = ing_session_revoke(w, j->token);
    if (rc == ONS_EAUTH)
        ing_fail(r, w, ING_E_INVALID_REFRESH_TOKEN, NULL);
    else if (rc)
        db_unavailable(r);
    else
        ing_reply_json(r, 204, NULL);
}

void ing_route_session_delete(ing_req *r)
{
    acct_job *j = job_new(r);
    if (!j || read_refresh_token(r, j))
        return;
    ing_req_submit(r, logout_job);
}

/* ---- GET /v1/me --------------------------------------------------------------------- */

static void me_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    ing_account u;
    int rc = ing_acct_by_id(w, r->who.user_id, &u);
    if (rc == ONS_ENOTFOUND) {
        ing_failf(r, w, ING_E_NO_ACCOUNT, NULL,
                  "User %" PRId64 " has no account (its token was minted by an operator).",
                  r->who.user_id);
        return;
    }
    if (rc) {
        db_unavailable(r);
        return;
    }
    json_t *body = user_json(&u);
    json_object_set_new(body, "role", json_string(ons_role_name(r->who.role)));
    ing_reply_json(r, 200, body);
}

void ing_route_me(ing_req *r)
{
    ing_req_submit(r, me_job);
}

/* ---- POST /v1/admin/users/{id}/roles ------------------------------------------------------- */

static void grant_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    acct_job *j = r->job;
    ing_account u;
    int rc = ing_acct_grant(w, j->user_id, ons_role_name((enum ons_role)j->role), &u);
    if (rc == ONS_ENOTFOUND)
        ing_failf(r, w, ING_E_NOT_FOUND, NULL, "No such account.");
    else if (rc)
        db_unavailable(r);
    else
        ing_reply_json(r, 200, user_json(&u));
}

void ing_route_user_roles_grant(ing_req *r)
{
    static const char *const allowed[] = {"role", NULL};
    acct_job *j = job_new(r);
    if (!j || ing_path_id(r, r->params[0], &j->user_id) || ing_json_only(r, r->body, allowed) ||
        read_role(r, j, 1))
        return;
    if (j->role == ONS_ROLE_FAN) {
        ing_failf(r, NULL, ING_E_INVALID_FIELD, "role",
                  "Every account is a fan; grant seller, scanner or admin.");
        return;
    }
    ing_req_submit(r, grant_job);
}
