/* pg_row.c - checked libpq result reads for the data modules; see pg_row.h. */
#include "ingress/pg_row.h"
#include "common/err.h"
#include "common/log.h"
#include "ingress/replica_store.h"

#include <assert.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

PGresult *ing_pg_query_i64(ing_worker *w, int replica, const char *sql, int n, const int64_t *v)
{
    assert(n >= 0 && n <= ING_PG_MAX_I64);
    char text[ING_PG_MAX_I64][24];
    const char *p[ING_PG_MAX_I64];
    for (int i = 0; i < n; i++) {
        ing_pg_i64_text(v[i], text[i]);
        p[i] = text[i];
    }
    return replica ? ing_read_query(w, sql, n, p) : ing_worker_query(w, sql, n, p);
}

/* The statements this thread's session has prepared (ing_pg_stmt.slot
 * bits), valid while the session is the one they were prepared on: the
 * connection and its backend pid (a reconnect may reuse the address). */
static _Thread_local PGconn *prepared_conn;
static _Thread_local int prepared_pid;
static _Thread_local uint32_t prepared_slots;

static int sqlstate_is(const PGresult *res, const char *code)
{
    const char *s = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return s && strcmp(s, code) == 0;
}

/* Drops st's name from the session (its result, an error when it is not
 * there, is of no use). */
static void deallocate(PGconn *c, const ing_pg_stmt *st)
{
    char sql[96];
    snprintf(sql, sizeof sql, "DEALLOCATE %s", st->name);
    PQclear(PQexec(c, sql));
}

/* Prepares st on c unless this session has it: 0, or -1 with *err the
 * failed prepare's result for the caller to answer (NULL when the
 * connection broke: ons_pg_check dropped it). A 42P05 (the name is taken:
 * an earlier prepare whose answer was lost, or another build's statement
 * on a pooled session) deallocates the name and prepares once more. */
static int prepare_once(ing_worker *w, PGconn *c, const ing_pg_stmt *st, PGresult **err)
{
    uint32_t bit = UINT32_C(1) << st->slot;
    *err = NULL;
    if (c != prepared_conn || PQbackendPID(c) != prepared_pid) {
        prepared_conn = c;
        prepared_pid = PQbackendPID(c);
        prepared_slots = 0;
    }
    if (prepared_slots & bit)
        return 0;
    PGresult *res = PQprepare(c, st->name, st->sql, st->nparams, NULL);
    if (sqlstate_is(res, "42P05")) {
        PQclear(res);
        deallocate(c, st);
        res = PQprepare(c, st->name, st->sql, st->nparams, NULL);
    }
    if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        PQclear(res);
        prepared_slots |= bit;
        return 0;
    }
    if (res && PQstatus(c) == CONNECTION_OK) {
        *err = res; /* refused on a live session: the caller answers it */
        return -1;
    }
    /* The session is gone (or gave no result): nothing to answer, so said
     * here, before ons_pg_check frees c. */
    ons_log_warn("job thread %d: postgres: prepare %s: %s", w->index, st->name,
                 res ? PQresultErrorMessage(res) : PQerrorMessage(c));
    PQclear(res);
    ons_pg_check(&w->pg);
    return -1;
}

static PGresult *exec_prepared(ing_worker *w, const ing_pg_stmt *st, const char *const *p)
{
    PGconn *c = ing_worker_pg(w);
    PGresult *err;
    if (!c)
        return NULL;
    if (prepare_once(w, c, st, &err) != 0)
        return err;
    return PQexecPrepared(c, st->name, st->nparams, p, NULL, NULL, 0);
}

/* The session's statement is gone (26000: DISCARD, a pooler) or no longer
 * fits the schema (0A000: a migration changed a column's type under its
 * cached plan): it is prepared again and the call retried once. */
static int stale_statement(const PGresult *res)
{
    return sqlstate_is(res, "26000") || sqlstate_is(res, "0A000");
}

PGresult *ing_pg_prepared_i64(ing_worker *w, const ing_pg_stmt *st, int n, const int64_t *v)
{
    assert(n == st->nparams && n >= 0 && n <= ING_PG_MAX_I64);
    assert(st->slot >= 0 && st->slot < 32);
    char text[ING_PG_MAX_I64][24];
    const char *p[ING_PG_MAX_I64];
    for (int i = 0; i < n; i++) {
        ing_pg_i64_text(v[i], text[i]);
        p[i] = text[i];
    }
    PGresult *res = exec_prepared(w, st, p);
    if (stale_statement(res)) {
        PQclear(res);
        prepared_slots &= ~(UINT32_C(1) << st->slot);
        deallocate(ing_worker_pg(w), st);
        res = exec_prepared(w, st, p);
    }
    ExecStatusType s = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (res && s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
        ons_log_warn("job thread %d: postgres: %s: %s", w->index, st->name,
                     PQresultErrorMessage(res));
        if (ons_pg_check(&w->pg)) {
            PQclear(res);
            return NULL;
        }
    }
    return res;
}

int ing_pg_status(const PGresult *res, const char *rid, const char *what)
{
    if (!res)
        return ONS_EUNAVAIL;
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return 0;
    ons_logk(ONS_LOG_WARN, "request_id", rid ? rid : "-", "%s: %s", what,
             PQresultErrorMessage(res));
    return ONS_EDB;
}

int ing_pg_exec(ing_worker *w, const char *sql)
{
    PGresult *res = ing_worker_query(w, sql, 0, NULL);
    int rc = ing_pg_status(res, NULL, sql);
    PQclear(res);
    return rc;
}

PGresult *ing_worker_query(ing_worker *w, const char *sql, int nparams, const char *const *params)
{
    PGconn *pg = ing_worker_pg(w);
    if (!pg)
        return NULL;
    PGresult *res = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        ons_log_warn("job thread %d: postgres: %s", w->index, PQerrorMessage(pg));
        if (ons_pg_check(&w->pg)) {
            PQclear(res);
            return NULL;
        }
    }
    return res;
}

int ing_worker_exec(ing_worker *w, ExecStatusType want, const char *what, const char *sql,
                    int nparams, const char *const *params, PGresult **out)
{
    return ons_pg_query(&w->pg, want, what, sql, nparams, params, out);
}

static int parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s)
        return ONS_EPARSE;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return ONS_EPARSE;
    *out = v;
    return 0;
}

int ing_pg_i64(const PGresult *res, int row, int col, int64_t *out)
{
    if (row >= PQntuples(res) || col >= PQnfields(res) || PQgetisnull(res, row, col))
        return ONS_EPARSE;
    return parse_i64(PQgetvalue(res, row, col), out);
}

int ing_pg_int(const PGresult *res, int row, int col, int *out)
{
    int64_t v;
    if (ing_pg_i64(res, row, col, &v) || v < INT_MIN || v > INT_MAX)
        return ONS_EPARSE;
    *out = (int)v;
    return 0;
}

int ing_pg_bool(const PGresult *res, int row, int col)
{
    return row < PQntuples(res) && col < PQnfields(res) && !PQgetisnull(res, row, col) &&
           PQgetvalue(res, row, col)[0] == 't';
}

void ing_pg_text(const PGresult *res, int row, int col, char *out, size_t cap)
{
    const char *v = row < PQntuples(res) && col < PQnfields(res) ? PQgetvalue(res, row, col) : "";
    snprintf(out, cap, "%s", v ? v : "");
}

int ing_pg_read_cols(const PGresult *res, int row, void *item, const ing_pg_col *cols, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        const ing_pg_col *c = &cols[k];
        void *m = (char *)item + c->offset;
        int rc = 0;
        if (c->kind == ING_PG_TEXT)
            ing_pg_text(res, row, c->col, m, c->cap);
        else if (c->kind == ING_PG_I64)
            rc = ing_pg_i64(res, row, c->col, m);
        else
            rc = ing_pg_int(res, row, c->col, m);
        if (rc)
            return rc;
    }
    return 0;
}

int ing_pg_affected(PGresult *res, int64_t *out)
{
    return parse_i64(PQcmdTuples(res), out);
}

int ing_pg_one(PGresult *res, const char *rid, const char *what, ing_pg_row_fn read, void *item)
{
    int rc = ing_pg_status(res, rid, what);
    if (rc == 0 && PQntuples(res) == 0)
        rc = ONS_ENOTFOUND;
    else if (rc == 0 && read(res, 0, item))
        rc = ONS_EDB;
    PQclear(res);
    return rc;
}

int ing_pg_rows(PGresult *res, const char *rid, const char *what, size_t elem, int max,
                ing_pg_row_fn read, void *out, size_t *n)
{
    int rc = ing_pg_status(res, rid, what);
    int rrc = ons_pg_rows(rc ? NULL : res, elem, max, read, out, n);
    PQclear(res);
    return rc ? rc : rrc;
}

typedef struct id_state {
    int64_t id;
    char *state; /* 16 bytes */
} id_state;

static int read_id_state(const PGresult *res, int i, void *item)
{
    id_state *r = item;
    ing_pg_text(res, i, 1, r->state, 16);
    return ing_pg_i64(res, i, 0, &r->id);
}

int ing_pg_one_id_state(PGresult *res, const char *what, int64_t *id, char state[16])
{
    id_state r = {0, state};
    int rc = ing_pg_one(res, NULL, what, read_id_state, &r);
    *id = r.id;
    return rc;
}

int ing_pg_read_i64(const PGresult *res, int row, void *item)
{
    return ing_pg_i64(res, row, 0, item);
}

void ing_pg_i64_text(int64_t v, char out[24])
{
    snprintf(out, 24, "%" PRId64, v);
}

char *ing_pg_text_array(const char *const *items, size_t n)
{
    size_t cap = 3;
    for (size_t i = 0; i < n; i++)
        cap += 2 * strlen(items[i]) + 3;
    char *out = malloc(cap), *p = out;
    if (!out)
        return NULL;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        *p++ = '"';
        for (const char *c = items[i]; *c; c++) {
            if (*c == '"' || *c == '\\')
                *p++ = '\\';
            *p++ = *c;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return out;
}

char *ing_pg_int_array(const int64_t *v, size_t n)
{
    char *out = malloc(n * 21 + 3), *p = out;
    if (!out)
        return NULL;
    *p++ = '{';
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, i ? ",%" PRId64 : "%" PRId64, v[i]);
    *p++ = '}';
    *p = '\0';
    return out;
}
