/*
 * accounts_store.h - the SQL of accounts, login sessions, refresh tokens and
 * failed-login counters (schemas/migrations/0004_accounts.sql).
 *
 * Every function runs on a job thread with that thread's connection and
 * returns 0 or a negative code: ONS_EUNAVAIL when PostgreSQL is unreachable,
 * ONS_EDB when a statement failed, and the function's own codes below.
 *
 * Refresh tokens are "<selector>.<verifier>": 16 and 32 random bytes in
 * base64url. The selector finds the row; only the SHA-256 of the verifier
 * is stored and it is compared in constant time, so neither a database read
 * nor a timing probe yields a usable token.
 */
#ifndef ONSALE_INGRESS_ACCOUNTS_STORE_H
#define ONSALE_INGRESS_ACCOUNTS_STORE_H

#include <stdint.h>

#include "common/password.h"
#include "ingress/pool.h"

#define ING_EMAIL_MAX        254
#define ING_DISPLAY_NAME_MAX 400 /* bytes: 100 characters of up to 4 bytes */
#define ING_RTOKEN_SELECTOR  ONS_B64URL_LEN(16)
#define ING_RTOKEN_VERIFIER  ONS_B64URL_LEN(32)
#define ING_RTOKEN_LEN       (ING_RTOKEN_SELECTOR + 1 + ING_RTOKEN_VERIFIER)

/* One account row. roles is a mask of enum ons_role (fan always set). */
typedef struct ing_account {
    int64_t user_id;
    char email[ING_EMAIL_MAX + 1];
    char display_name[ING_DISPLAY_NAME_MAX + 1];
    char password_hash[ONS_PASSWORD_HASH_MAX];
    int roles;
    char created_at[32]; /* RFC 3339, UTC */
} ing_account;

/* Inserts an account with role fan. Returns 0 and the row, or ONS_EEXIST
 * when the email is taken (compared case-insensitively). */
int ing_acct_create(ing_worker *w, const char *email, const char *password_hash,
                    const char *display_name, ing_account *out);

/* Looks an account up by email (case-insensitively) or id. ONS_ENOTFOUND
 * when there is none. */
int ing_acct_by_email(ing_worker *w, const char *email, ing_account *out);
int ing_acct_by_id(ing_worker *w, int64_t user_id, ing_account *out);

/* Replaces the password hash (a rehash with current limits). */
int ing_acct_set_hash(ing_worker *w, int64_t user_id, const char *password_hash);

/* Adds role to the account's roles (granting one it has changes nothing)
 * and returns the row. ONS_ENOTFOUND when there is no such account. */
int ing_acct_grant(ing_worker *w, int64_t user_id, const char *role, ing_account *out);

/* Failed-login counters. keys[i] may be NULL (not counted). */
typedef struct ing_throttle_key {
    const char *key; /* "acct:<email>" or "addr:<address>" */
    int64_t limit;   /* failures allowed per window */
} ing_throttle_key;

/* Returns 0 when every key is under its limit, or ONS_EFULL with
 * *retry_after_s (>= 1) the seconds until the latest blocking window ends. */
int ing_throttle_check(ing_worker *w, const ing_throttle_key *keys, int n, int *retry_after_s);
/* Counts one failure on each key; a key's window of window_s seconds starts
 * at its first failure. Also deletes some ended windows now and then. */
int ing_throttle_fail(ing_worker *w, const ing_throttle_key *keys, int n, int64_t window_s);
/* Forgets a key's failures (an account after its successful login). */
int ing_throttle_clear(ing_worker *w, const char *key);

/* Opens a login session for user_id and writes its first refresh token,
 * valid for ttl_s, into token (NUL-terminated). role: the role asked for at
 * login, or NULL. */
int ing_session_open(ing_worker *w, int64_t user_id, const char *role, int64_t ttl_s,
                     char token[ING_RTOKEN_LEN + 1]);

/* What a refresh returns: the account's current roles, the role its login
 * asked for (0: none) and the new token. */
typedef struct ing_refreshed {
    int64_t user_id;
    int roles;
    int requested_role;
    char token[ING_RTOKEN_LEN + 1];
} ing_refreshed;

/* Rotates token: marks it rotated and issues its successor in the same
 * session, valid for ttl_s. Returns 0, ONS_EAUTH (malformed, unknown, wrong
 * verifier, expired, or the session is revoked) or ONS_ECONFLICT (token was
 * already rotated: taken as a stolen token, the whole session is revoked
 * now). Concurrent refreshes of one session are serialised by row locks. */
int ing_session_refresh(ing_worker *w, const char *token, int64_t ttl_s, ing_refreshed *out);

/* Revokes the session of token (any of its tokens, rotated or not; revoking
 * twice is harmless). Returns 0 or ONS_EAUTH (malformed, unknown or wrong
 * verifier). */
int ing_session_revoke(ing_worker *w, const char *token);

/* Parses "fan,seller" into a role mask (unknown names are ignored). */
int ing_roles_mask(const char *csv);

#endif
