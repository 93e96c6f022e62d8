/* pg.c - PostgreSQL connections, statements and typed getters; see pg.h. */
#include "common/pg.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- options and backoff ------------------------------------------------------ */

void ons_pg_opts_default(ons_pg_opts *o, const char *dsn, const char *app_name)
{
    *o = (ons_pg_opts){.dsn = dsn,
                       .app_name = app_name,
                       .connect_timeout_s = ONS_PG_CONNECT_TIMEOUT_S,
                       .keepalives_idle_s = ONS_PG_KEEPALIVES_IDLE_S,
                       .keepalives_interval_s = ONS_PG_KEEPALIVES_INTERVAL_S,
                       .keepalives_count = ONS_PG_KEEPALIVES_COUNT,
                       .backoff_min_ms = ONS_PG_BACKOFF_MIN_MS,
                       .backoff_max_ms = ONS_PG_BACKOFF_MAX_MS};
}

int64_t ons_pg_backoff_ms(const ons_pg_opts *o, int failures)
{
    if (failures <= 0 || o->backoff_min_ms <= 0)
        return 0;
    int64_t cap = o->backoff_max_ms > o->backoff_min_ms ? o->backoff_max_ms : o->backoff_min_ms;
    int64_t d = o->backoff_min_ms;
    for (int i = 1; i < failures && d < cap; i++)
        d *= 2;
    return d < cap ? d : cap;
}

/* ---- connection ------------------------------------------------------------------ */

int ons_pg_init(ons_pg *pg, const ons_pg_opts *o)
{
    memset(pg, 0, sizeof *pg);
    if (!o || !o->dsn)
        return ONS_EINVAL;
    pg->o = *o;
    pg->o.dsn = strdup(o->dsn);
    pg->o.app_name = o->app_name ? strdup(o->app_name) : NULL;
    if (!pg->o.dsn || (o->app_name && !pg->o.app_name)) {
        ons_pg_fini(pg);
        return ONS_ENOMEM;
    }
    return 0;
}

void ons_pg_fini(ons_pg *pg)
{
    if (pg->conn)
        PQfinish(pg->conn);
    free((char *)pg->o.dsn);
    free((char *)pg->o.app_name);
    memset(pg, 0, sizeof *pg);
}

/* The prefix of log lines: "application name: ", or "". */
static const char *who(const ons_pg *pg)
{
    return pg->o.app_name ? pg->o.app_name : "";
}

static const char *colon(const ons_pg *pg)
{
    return pg->o.app_name ? ": " : "";
}

/* The length of msg without its trailing newlines (libpq ends messages
 * with one; a log line must not). */
static int trimmed(const char *msg)
{
    size_t len = strlen(msg);
    while (len && msg[len - 1] == '\n')
        len--;
    return (int)len;
}

/* Appends keyword k = the decimal v when v > 0. */
static void param_int(ons_pg_params *p, int *n, const char *k, int v)
{
    if (v <= 0)
        return;
    snprintf(p->buf[*n], sizeof p->buf[*n], "%d", v);
    p->kw[*n] = k;
    p->val[*n] = p->buf[*n];
    (*n)++;
}

void ons_pg_params_fill(const ons_pg_opts *o, ons_pg_params *p)
{
    int n = 0;
    param_int(p, &n, "connect_timeout", o->connect_timeout_s);
    param_int(p, &n, "keepalives_idle", o->keepalives_idle_s);
    param_int(p, &n, "keepalives_interval", o->keepalives_interval_s);
    param_int(p, &n, "keepalives_count", o->keepalives_count);
    if (o->app_name) {
        p->kw[n] = "fallback_application_name";
        p->val[n++] = o->app_name;
    }
    p->kw[n] = "dbname";
    p->val[n++] = o->dsn;
    /* After the DSN, so it wins over one there (and over PGCLIENTENCODING):
     * every text Onsale reads or writes is UTF-8 (JSON, section names
     * compared byte for byte with a join's), whatever the database's or
     * the DSN's encoding. */
    p->kw[n] = "client_encoding";
    p->val[n++] = "UTF8";
    p->kw[n] = NULL;
    p->val[n] = NULL;
}

/* Opens a session (blocking, up to the connect timeout). */
static PGconn *open_conn(const ons_pg_opts *o)
{
    ons_pg_params p;
    ons_pg_params_fill(o, &p);
    return PQconnectdbParams(p.kw, p.val, 1);
}

/* Sets the session's timeouts. 0 or ONS_EDB (logged). */
static int set_timeouts(PGconn *c, const ons_pg_opts *o)
{
    static const char *const names[] = {"statement_timeout", "idle_in_transaction_session_timeout"};
    const int ms[] = {o->statement_timeout_ms, o->idle_tx_timeout_ms};
    for (int i = 0; i < 2; i++) {
        if (ms[i] <= 0)
            continue;
        char v[16];
        snprintf(v, sizeof v, "%d", ms[i]);
        const char *p[] = {names[i], v};
        if (ons_pg_exec(c, PGRES_TUPLES_OK, names[i], "SELECT set_config($1, $2, false)", 2, p,
                        NULL))
            return ONS_EDB;
    }
    return 0;
}

/* Connects now. 0, or ONS_EUNAVAIL with the failure counted and the next
 * attempt gated. The first failure of an outage is logged as a warning, the
 * others at debug level. */
static int connect_now(ons_pg *pg)
{
    if (pg->conn) {
        PQfinish(pg->conn);
        pg->conn = NULL;
    }
    PGconn *c = open_conn(&pg->o);
    int ok = c && PQstatus(c) == CONNECTION_OK && set_timeouts(c, &pg->o) == 0;
    if (!ok) {
        const char *msg = c ? PQerrorMessage(c) : "out of memory";
        if (pg->failures == 0)
            ons_log_warn("%s%spostgres unreachable: %.*s", who(pg), colon(pg), trimmed(msg), msg);
        else
            ons_log_debug("%s%spostgres connect failed: %.*s", who(pg), colon(pg), trimmed(msg),
                          msg);
        PQfinish(c);
        if (pg->failures < INT_MAX)
            pg->failures++;
        pg->retry_at_ms = ons_mono_ms() + ons_pg_backoff_ms(&pg->o, pg->failures);
        return ONS_EUNAVAIL;
    }
    if (pg->failures > 0 || pg->connects > 0) {
        char after[48] = "";
        if (pg->failures > 0)
            snprintf(after, sizeof after, " after %d failed attempt%s", pg->failures,
                     pg->failures == 1 ? "" : "s");
        ons_log_info("%s%spostgres %s%s", who(pg), colon(pg),
                     pg->connects ? "connected again" : "reachable", after);
    }
    pg->conn = c;
    pg->failures = 0;
    pg->retry_at_ms = 0;
    pg->connects++;
    return 0;
}

PGconn *ons_pg_conn(ons_pg *pg)
{
    if (pg->conn && PQstatus(pg->conn) == CONNECTION_OK)
        return pg->conn;
    if (pg->failures > 0 && ons_mono_ms() < pg->retry_at_ms)
        return NULL;
    return connect_now(pg) == 0 ? pg->conn : NULL;
}

int ons_pg_connect(ons_pg *pg)
{
    if (pg->conn && PQstatus(pg->conn) == CONNECTION_OK)
        return 0;
    return connect_now(pg);
}

int ons_pg_check(ons_pg *pg)
{
    if (!pg->conn || PQstatus(pg->conn) == CONNECTION_OK)
        return 0;
    PQfinish(pg->conn);
    pg->conn = NULL;
    return 1;
}

/* ---- statements ------------------------------------------------------------------ */

int ons_pg_exec(PGconn *c, ExecStatusType want, const char *what, const char *sql, int n,
                const char *const *vals, PGresult **out)
{
    PGresult *r = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);
    if (r && PQresultStatus(r) == want) {
        if (out)
            *out = r;
        else
            PQclear(r);
        return 0;
    }
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorMessage(r) : PQerrorMessage(c);
    if (!msg[0])
        msg = PQresStatus(r ? PQresultStatus(r) : PGRES_FATAL_ERROR);
    ons_log_error("postgres%s%s: %.*s%s%s%s", what ? " " : "", what ? what : "", trimmed(msg), msg,
                  state ? " (" : "", state ? state : "", state ? ")" : "");
    PQclear(r);
    if (out)
        *out = NULL;
    return ONS_EDB;
}

int ons_pg_command(PGconn *c, const char *what, const char *sql, int n, const char *const *vals)
{
    PGresult *r;
    if (ons_pg_exec(c, PGRES_COMMAND_OK, what, sql, n, vals, &r))
        return ONS_EDB;
    ons_log_debug("%s: %s rows", what ? what : "statement", PQcmdTuples(r));
    PQclear(r);
    return 0;
}

int ons_pg_query(ons_pg *pg, ExecStatusType want, const char *what, const char *sql, int n,
                 const char *const *vals, PGresult **out)
{
    if (out)
        *out = NULL;
    PGconn *c = ons_pg_conn(pg);
    if (!c)
        return ONS_EUNAVAIL;
    int rc = ons_pg_exec(c, want, what, sql, n, vals, out);
    if (rc)
        ons_pg_check(pg);
    return rc;
}

/* ---- parsing ---------------------------------------------------------------------- */

int ons_pg_parse_i64(const char *s, int64_t *out)
{
    if (!s)
        return ONS_EPARSE;
    const char *d = s[0] == '-' ? s + 1 : s;
    if (*d < '0' || *d > '9')
        return ONS_EPARSE;
    for (const char *c = d; *c; c++)
        if (*c < '0' || *c > '9')
            return ONS_EPARSE;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE)
        return ONS_ERANGE;
    *out = (int64_t)v;
    return 0;
}

int ons_pg_parse_bool(const char *s, int *out)
{
    if (!s)
        return ONS_EPARSE;
    if (!strcmp(s, "t") || !strcmp(s, "true")) {
        *out = 1;
        return 0;
    }
    if (!strcmp(s, "f") || !strcmp(s, "false")) {
        *out = 0;
        return 0;
    }
    return ONS_EPARSE;
}

int ons_pg_parse_f64(const char *s, double *out)
{
    if (!s || !s[0] || s[0] == ' ')
        return ONS_EPARSE;
    char *end;
    double v = strtod(s, &end);
    if (*end)
        return ONS_EPARSE;
    *out = v;
    return 0;
}

/* ---- getters ------------------------------------------------------------------------ */

int ons_pg_isnull(const PGresult *r, int row, int col)
{
    if (!r || row < 0 || col < 0 || row >= PQntuples(r) || col >= PQnfields(r))
        return ONS_EINVAL;
    return PQgetisnull(r, row, col) ? 1 : 0;
}

/* The field's text in *s: 0, ONS_EINVAL or ONS_ENOTFOUND (NULL). */
static int field(const PGresult *r, int row, int col, const char **s)
{
    int null = ons_pg_isnull(r, row, col);
    if (null < 0)
        return null;
    if (null)
        return ONS_ENOTFOUND;
    *s = PQgetvalue(r, row, col);
    return 0;
}

const char *ons_pg_get_str(const PGresult *r, int row, int col)
{
    const char *s = NULL;
    return field(r, row, col, &s) == 0 ? s : NULL;
}

int ons_pg_get_i64(const PGresult *r, int row, int col, int64_t *out)
{
    const char *s;
    int rc = field(r, row, col, &s);
    return rc ? rc : ons_pg_parse_i64(s, out);
}

int ons_pg_get_i64_or(const PGresult *r, int row, int col, int64_t dflt, int64_t *out)
{
    int rc = ons_pg_get_i64(r, row, col, out);
    if (rc == ONS_ENOTFOUND) {
        *out = dflt;
        return 0;
    }
    return rc;
}

int ons_pg_get_i32(const PGresult *r, int row, int col, int32_t *out)
{
    int64_t v;
    int rc = ons_pg_get_i64(r, row, col, &v);
    if (rc)
        return rc;
    if (v < INT32_MIN || v > INT32_MAX)
        return ONS_ERANGE;
    *out = (int32_t)v;
    return 0;
}

int ons_pg_get_bool(const PGresult *r, int row, int col, int *out)
{
    const char *s;
    int rc = field(r, row, col, &s);
    return rc ? rc : ons_pg_parse_bool(s, out);
}

int ons_pg_get_f64(const PGresult *r, int row, int col, double *out)
{
    const char *s;
    int rc = field(r, row, col, &s);
    return rc ? rc : ons_pg_parse_f64(s, out);
}

int ons_pg_get_text(const PGresult *r, int row, int col, char *buf, size_t cap)
{
    if (cap)
        buf[0] = '\0';
    const char *s;
    int rc = field(r, row, col, &s);
    if (rc)
        return rc;
    size_t len = (size_t)PQgetlength(r, row, col);
    if (len >= cap)
        return ONS_ERANGE;
    memcpy(buf, s, len + 1);
    return 0;
}

/* ---- rows ---------------------------------------------------------------------------- */

ons_pg_row ons_pg_row_at(const PGresult *r, int row)
{
    ons_pg_row rw = {r, row, 0, -1};
    return rw;
}

/* Keeps rc as the row's error when it is the first. Returns rc. */
static int note(ons_pg_row *rw, int col, int rc)
{
    if (rc && !rw->err) {
        rw->err = rc;
        rw->col = col;
    }
    return rc;
}

int64_t ons_pg_row_i64(ons_pg_row *rw, int col)
{
    int64_t v = 0;
    return note(rw, col, ons_pg_get_i64(rw->r, rw->row, col, &v)) ? 0 : v;
}

int64_t ons_pg_row_i64_or(ons_pg_row *rw, int col, int64_t dflt)
{
    int64_t v = dflt;
    return note(rw, col, ons_pg_get_i64_or(rw->r, rw->row, col, dflt, &v)) ? dflt : v;
}

int32_t ons_pg_row_i32(ons_pg_row *rw, int col)
{
    int32_t v = 0;
    return note(rw, col, ons_pg_get_i32(rw->r, rw->row, col, &v)) ? 0 : v;
}

int ons_pg_row_bool(ons_pg_row *rw, int col)
{
    int v = 0;
    return note(rw, col, ons_pg_get_bool(rw->r, rw->row, col, &v)) ? 0 : v;
}

const char *ons_pg_row_str(ons_pg_row *rw, int col, int nullable)
{
    const char *s = NULL;
    int rc = field(rw->r, rw->row, col, &s);
    if (rc == ONS_ENOTFOUND && nullable)
        return "";
    return note(rw, col, rc) ? "" : s;
}

void ons_pg_row_text(ons_pg_row *rw, int col, char *buf, size_t cap, int nullable)
{
    int rc = ons_pg_get_text(rw->r, rw->row, col, buf, cap);
    if (rc == ONS_ENOTFOUND && nullable)
        rc = 0;
    note(rw, col, rc);
}

int ons_pg_row_done(const ons_pg_row *rw, const char *what)
{
    if (rw->err)
        ons_log_error("postgres %s: row %d column %d: %s", what ? what : "result", rw->row, rw->col,
                      ons_strerror(rw->err));
    return rw->err;
}

/* ---- reading every row into an array ---------------------------------------------- */

int ons_pg_rows(const PGresult *r, size_t elem, int max, ons_pg_row_fn read, void *out, size_t *n)
{
    int rows = r ? PQntuples(r) : 0, rc = 0;
    if (max >= 0 && rows > max)
        rows = max;
    char *items = rows > 0 ? calloc((size_t)rows, elem) : NULL;
    if (rows > 0 && !items)
        rc = ONS_ENOMEM;
    for (int i = 0; rc == 0 && i < rows; i++)
        if (read(r, i, items + (size_t)i * elem))
            rc = ONS_EDB;
    if (rc) {
        free(items);
        items = NULL;
        rows = 0;
    }
    memcpy(out, &items, sizeof items);
    *n = (size_t)rows;
    return rc;
}

void ons_pg_rows_free(void *rows, size_t *n)
{
    void *p;
    memcpy(&p, rows, sizeof p);
    free(p);
    p = NULL;
    memcpy(rows, &p, sizeof p);
    *n = 0;
}
