/*
 * accounts_store.c - SQL of accounts, sessions, refresh tokens and login
 * throttling; see accounts_store.h.
 */
#include "ingress/accounts_store.h"
#include "ingress/pg_row.h"
#include "common/auth.h"
#include "common/err.h"
#include "common/log.h"
#include "ingress/json_io.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Delete ended throttle windows on every this many failures per thread. */
#define THROTTLE_SWEEP_EVERY 64
#define THROTTLE_SWEEP_ROWS  "500"

/* The columns ing_account is read from, in this order. */
#define ACCOUNT_COLS                                                                               \
    "user_id, coalesce(email, ''), coalesce(display_name, ''), coalesce(password_hash, ''), "      \
    "array_to_string(roles, ','), "                                                                \
    "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* Translates a result into our codes: NULL (unreachable) → ONS_EUNAVAIL, a
 * failed statement → ONS_EDB. */
static int status(const PGresult *res)
{
    if (!res)
        return ONS_EUNAVAIL;
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK ? 0 : ONS_EDB;
}

static int run(ing_worker *w, const char *sql, int n, const char *const *p)
{
    PGresult *res = ing_worker_query(w, sql, n, p);
    int rc = status(res);
    PQclear(res);
    return rc;
}

static void fmt_i64(char out[24], int64_t v)
{
    snprintf(out, 24, "%" PRId64, v);
}

int ing_roles_mask(const char *csv)
{
    int mask = 0;
    char name[16];
    while (csv && *csv) {
        size_t n = strcspn(csv, ",");
        if (n < sizeof name) {
            memcpy(name, csv, n);
            name[n] = '\0';
            enum ons_role role;
            if (ons_role_parse(name, &role) == 0)
                mask |= (int)role;
        }
        csv += n;
        if (*csv == ',')
            csv++;
    }
    return mask;
}

/* Reads row i of a result with ACCOUNT_COLS: 0, or ONS_EDB when the user
 * id does not parse. */
static int read_account(const PGresult *res, int i, ing_account *out)
{
    memset(out, 0, sizeof *out);
    int rc = ing_pg_i64(res, i, 0, &out->user_id) ? ONS_EDB : 0;
    snprintf(out->email, sizeof out->email, "%s", PQgetvalue(res, i, 1));
    snprintf(out->display_name, sizeof out->display_name, "%s", PQgetvalue(res, i, 2));
    snprintf(out->password_hash, sizeof out->password_hash, "%s", PQgetvalue(res, i, 3));
    out->roles = ing_roles_mask(PQgetvalue(res, i, 4));
    snprintf(out->created_at, sizeof out->created_at, "%s", PQgetvalue(res, i, 5));
    return rc;
}

/* Runs a statement returning at most one account row. */
static int one_account(ing_worker *w, const char *sql, int n, const char *const *p,
                       ing_account *out)
{
    PGresult *res = ing_worker_query(w, sql, n, p);
    int rc = status(res);
    if (rc == 0 && PQntuples(res) == 0)
        rc = ONS_ENOTFOUND;
    else if (rc == 0)
        rc = read_account(res, 0, out);
    PQclear(res);
    return rc;
}

int ing_acct_create(ing_worker *w, const char *email, const char *password_hash,
                    const char *display_name, ing_account *out)
{
    const char *p[] = {email, password_hash, display_name};
    int rc = one_account(w,
                         "INSERT INTO users (email, password_hash, display_name) "
                         "VALUES ($1, $2, $3) ON CONFLICT (lower(email)) DO NOTHING "
                         "RETURNING " ACCOUNT_COLS,
                         3, p, out);
    return rc == ONS_ENOTFOUND ? ONS_EEXIST : rc;
}

int ing_acct_by_email(ing_worker *w, const char *email, ing_account *out)
{
    const char *p[] = {email};
    return one_account(w, "SELECT " ACCOUNT_COLS " FROM users WHERE lower(email) = lower($1)", 1, p,
                       out);
}

int ing_acct_by_id(ing_worker *w, int64_t user_id, ing_account *out)
{
    char id[24];
    fmt_i64(id, user_id);
    const char *p[] = {id};
    return one_account(
        w, "SELECT " ACCOUNT_COLS " FROM users WHERE user_id = $1 AND email IS NOT NULL", 1, p,
        out);
}

int ing_acct_set_hash(ing_worker *w, int64_t user_id, const char *password_hash)
{
    char id[24];
    fmt_i64(id, user_id);
    const char *p[] = {id, password_hash};
    return run(w, "UPDATE users SET password_hash = $2 WHERE user_id = $1", 2, p);
}

int ing_acct_grant(ing_worker *w, int64_t user_id, const char *role, ing_account *out)
{
    char id[24];
    fmt_i64(id, user_id);
    const char *p[] = {id, role};
    return one_account(w,
                       "UPDATE users SET roles = CASE WHEN $2 = ANY (roles) THEN roles "
                       "                         ELSE array_append(roles, $2::text) END "
                       "WHERE user_id = $1 AND email IS NOT NULL RETURNING " ACCOUNT_COLS,
                       2, p, out);
}

/* ---- failed-login counters ----------------------------------------------------- */

int ing_throttle_check(ing_worker *w, const ing_throttle_key *keys, int n, int *retry_after_s)
{
    char lim[2][24];
    const char *p[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < n && i < 2; i++) {
        fmt_i64(lim[i], keys[i].limit);
        p[2 * i] = keys[i].key;
        p[2 * i + 1] = lim[i];
    }
    PGresult *res = ing_worker_query(
        w,
        "SELECT coalesce(max(ceil(extract(epoch FROM window_ends - now()))), 0)::bigint "
        "FROM login_throttle WHERE window_ends > now() AND "
        "((key = $1 AND failures >= $2::int) OR (key = $3 AND failures >= $4::int))",
        4, p);
    int rc = status(res);
    int64_t wait = 0;
    if (rc == 0 && PQntuples(res) == 1 && ing_pg_i64(res, 0, 0, &wait) == 0) {
        if (wait > 0) {
            *retry_after_s = wait > 86400 ? 86400 : (int)wait;
            rc = ONS_EFULL;
        }
    } else if (rc == 0) {
        rc = ONS_EDB;
    }
    PQclear(res);
    return rc;
}

int ing_throttle_fail(ing_worker *w, const ing_throttle_key *keys, int n, int64_t window_s)
{
    static _Thread_local unsigned failures;
    char win[24];
    fmt_i64(win, window_s);
    const char *p[3] = {n > 0 ? keys[0].key : NULL, n > 1 ? keys[1].key : NULL, win};
    int rc = run(w,
                 "INSERT INTO login_throttle AS t (key, failures, window_ends) "
                 "SELECT k, 1, now() + make_interval(secs => $3::bigint) "
                 "FROM unnest(ARRAY[$1, $2]::text[]) AS k WHERE k IS NOT NULL "
                 "ON CONFLICT (key) DO UPDATE SET "
                 "  failures = CASE WHEN t.window_ends > now() THEN t.failures + 1 ELSE 1 END, "
                 "  window_ends = CASE WHEN t.window_ends > now() THEN t.window_ends "
                 "                     ELSE excluded.window_ends END",
                 3, p);
    /* Keys of addresses that never log in again would stay forever. */
    if (rc == 0 && ++failures % THROTTLE_SWEEP_EVERY == 0)
        run(w,
            "DELETE FROM login_throttle WHERE key IN (SELECT key FROM login_throttle "
            "WHERE window_ends < now() LIMIT " THROTTLE_SWEEP_ROWS ")",
            0, NULL);
    return rc;
}

int ing_throttle_clear(ing_worker *w, const char *key)
{
    const char *p[] = {key};
    return run(w, "DELETE FROM login_throttle WHERE key = $1", 1, p);
}

/* ---- sessions and refresh tokens ------------------------------------------------- */

/* Splits a token into its selector and the hex SHA-256 of its verifier.
 * Returns 0 or ONS_EAUTH when the token is not of our shape. */
static int token_parts(const char *token, char selector[ING_RTOKEN_SELECTOR + 1],
                       char verifier_hash[65])
{
    if (!token || strlen(token) != ING_RTOKEN_LEN || token[ING_RTOKEN_SELECTOR] != '.')
        return ONS_EAUTH;
    for (size_t i = 0; i < ING_RTOKEN_LEN; i++) {
        char c = token[i];
        if (i == ING_RTOKEN_SELECTOR)
            continue;
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return ONS_EAUTH;
    }
    memcpy(selector, token, ING_RTOKEN_SELECTOR);
    selector[ING_RTOKEN_SELECTOR] = '\0';
    const char *verifier = token + ING_RTOKEN_SELECTOR + 1;
    ing_sha256_hex(verifier, ING_RTOKEN_VERIFIER, "", 0, verifier_hash);
    return 0;
}

/* Makes a fresh token and the parts to store. */
static void token_new(char token[ING_RTOKEN_LEN + 1], char selector[ING_RTOKEN_SELECTOR + 1],
                      char verifier_hash[65])
{
    char verifier[ING_RTOKEN_VERIFIER + 1];
    ons_random_token(16, selector, ING_RTOKEN_SELECTOR + 1);
    ons_random_token(32, verifier, sizeof verifier);
    snprintf(token, ING_RTOKEN_LEN + 1, "%s.%s", selector, verifier);
    ing_sha256_hex(verifier, ING_RTOKEN_VERIFIER, "", 0, verifier_hash);
}

int ing_session_open(ing_worker *w, int64_t user_id, const char *role, int64_t ttl_s,
                     char token[ING_RTOKEN_LEN + 1])
{
    char id[24], ttl[24], selector[ING_RTOKEN_SELECTOR + 1], vhash[65];
    fmt_i64(id, user_id);
    fmt_i64(ttl, ttl_s);
    token_new(token, selector, vhash);
    const char *p[] = {id, role, selector, vhash, ttl};
    int rc = run(w,
                 "WITH s AS (INSERT INTO login_sessions (user_id, requested_role) "
                 "           VALUES ($1, $2) RETURNING session_id) "
                 "INSERT INTO refresh_tokens (session_id, selector, verifier_hash, expires_at) "
                 "SELECT session_id, $3, $4, now() + make_interval(secs => $5::bigint) FROM s",
                 5, p);
    if (rc)
        token[0] = '\0';
    return rc;
}

/* The locked row of a presented token. */
typedef struct token_row {
    char token_id[24], session_id[24];
    int rotated, expired, revoked;
    int64_t user_id;
    int roles, requested_role;
} token_row;

/* Looks the token up (locking its row and its session's row when lock) and
 * checks its verifier. Returns 0, ONS_EAUTH or a database code. */
static int token_find(ing_worker *w, const char *token, int lock, token_row *out)
{
    char selector[ING_RTOKEN_SELECTOR + 1], vhash[65];
    if (token_parts(token, selector, vhash))
        return ONS_EAUTH;
    const char *p[] = {selector};
    PGresult *res = ing_worker_query(
        w,
        lock ? "SELECT t.token_id, t.session_id, t.verifier_hash, t.rotated_at IS NOT NULL, "
               "t.expires_at <= now(), s.revoked_at IS NOT NULL, s.user_id, "
               "array_to_string(u.roles, ','), coalesce(s.requested_role, '') "
               "FROM refresh_tokens t JOIN login_sessions s USING (session_id) "
               "JOIN users u USING (user_id) WHERE t.selector = $1 FOR UPDATE OF t, s"
             : "SELECT t.token_id, t.session_id, t.verifier_hash, t.rotated_at IS NOT NULL, "
               "t.expires_at <= now(), s.revoked_at IS NOT NULL, s.user_id, "
               "array_to_string(u.roles, ','), coalesce(s.requested_role, '') "
               "FROM refresh_tokens t JOIN login_sessions s USING (session_id) "
               "JOIN users u USING (user_id) WHERE t.selector = $1",
        1, p);
    int rc = status(res);
    if (rc == 0 && PQntuples(res) != 1)
        rc = ONS_EAUTH;
    /* The selector is public; the verifier is the secret, compared in
     * constant time against its stored hash. */
    if (rc == 0 &&
        (PQgetlength(res, 0, 2) != 64 || !ons_secure_equal(PQgetvalue(res, 0, 2), vhash, 64)))
        rc = ONS_EAUTH;
    if (rc == 0) {
        snprintf(out->token_id, sizeof out->token_id, "%s", PQgetvalue(res, 0, 0));
        snprintf(out->session_id, sizeof out->session_id, "%s", PQgetvalue(res, 0, 1));
        out->rotated = PQgetvalue(res, 0, 3)[0] == 't';
        out->expired = PQgetvalue(res, 0, 4)[0] == 't';
        out->revoked = PQgetvalue(res, 0, 5)[0] == 't';
        out->roles = ing_roles_mask(PQgetvalue(res, 0, 7));
        out->requested_role = ing_roles_mask(PQgetvalue(res, 0, 8));
        if (ing_pg_i64(res, 0, 6, &out->user_id))
            rc = ONS_EDB;
    }
    PQclear(res);
    return rc;
}

static int revoke_session(ing_worker *w, const char *session_id, const char *reason)
{
    const char *p[] = {session_id, reason};
    return run(w,
               "UPDATE login_sessions SET revoked_at = now(), revoke_reason = $2 "
               "WHERE session_id = $1 AND revoked_at IS NULL",
               2, p);
}

int ing_session_refresh(ing_worker *w, const char *token, int64_t ttl_s, ing_refreshed *out)
{
    token_row t;
    int rc = run(w, "BEGIN", 0, NULL);
    if (rc)
        return rc;
    if ((rc = token_find(w, token, 1, &t)))
        goto rollback;
    if (t.rotated) {
        /* A rotated token came back: someone holds a copy. Kill the family,
         * and keep that decision (commit) even though the answer is 401. */
        if ((rc = revoke_session(w, t.session_id, "reuse")) || (rc = run(w, "COMMIT", 0, NULL)))
            goto rollback;
        ons_log_warn("refresh token reuse: session %s of user %" PRId64 " revoked", t.session_id,
                     t.user_id);
        return ONS_ECONFLICT;
    }
    if (t.revoked || t.expired) {
        rc = ONS_EAUTH;
        goto rollback;
    }
    char selector[ING_RTOKEN_SELECTOR + 1], vhash[65], ttl[24];
    token_new(out->token, selector, vhash);
    fmt_i64(ttl, ttl_s);
    const char *p[] = {t.token_id, t.session_id, selector, vhash, ttl};
    if ((rc = run(w,
                  "WITH old AS (UPDATE refresh_tokens SET rotated_at = now() WHERE token_id = $1) "
                  "INSERT INTO refresh_tokens (session_id, selector, verifier_hash, expires_at) "
                  "VALUES ($2, $3, $4, now() + make_interval(secs => $5::bigint))",
                  5, p)) ||
        (rc = run(w, "COMMIT", 0, NULL)))
        goto rollback;
    out->user_id = t.user_id;
    out->roles = t.roles;
    out->requested_role = t.requested_role;
    return 0;
rollback:
    run(w, "ROLLBACK", 0, NULL);
    out->token[0] = '\0';
    return rc;
}

int ing_session_revoke(ing_worker *w, const char *token)
{
    token_row t;
    int rc = token_find(w, token, 0, &t);
    if (rc == 0)
        rc = revoke_session(w, t.session_id, "logout");
    return rc;
}
