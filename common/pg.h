/*
 * pg.h - the one PostgreSQL edge of every Onsale process: a connection that
 * reconnects with backoff and sets its timeouts, statements that answer with
 * an ONS_E code from err.h, and typed, checked getters for result fields.
 *
 * Connection. An ons_pg owns at most one libpq connection and is used by one
 * thread at a time. ons_pg_conn() hands out a live connection, connecting
 * first when there is none or the last one broke; after a failed connect the
 * next attempt waits ons_pg_backoff_ms() (exponential from backoff_min_ms to
 * backoff_max_ms), so a PostgreSQL outage costs one connect per gate, not one
 * per call. The connection string's own keywords win over the options here
 * (connect_timeout, keepalives_*, application_name), so an operator's DSN
 * still decides. Statement and idle-in-transaction timeouts are set on the
 * session right after each connect. A connect failure is logged once per
 * outage (warn), the recovery once (info).
 *
 * Statements. ons_pg_exec() runs one statement and returns 0 with the result
 * when its status is the expected one; otherwise it logs the server's message
 * once ("postgres WHAT: message (SQLSTATE)"), clears the result and returns
 * ONS_EDB, so callers never inspect PGresult statuses nor log again.
 *
 * Getters. Fields arrive as text; ons_pg_get_*() parse them strictly (the
 * whole field, in range, not NULL unless asked for) and return ONS_EPARSE,
 * ONS_ERANGE, ONS_ENOTFOUND (SQL NULL) or ONS_EINVAL (no such row or column)
 * instead of the silent 0 that strtoll(PQgetvalue()) gives. For rows of many
 * fields, ons_pg_row reads them in sequence and keeps the first error, checked
 * once after the row.
 */
#ifndef ONSALE_COMMON_PG_H
#define ONSALE_COMMON_PG_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/* Defaults of ons_pg_opts_default(): a connect gives up after 5 s instead of
 * the kernel's TCP timeout (minutes), and a peer that vanished without a FIN
 * (host down, cable cut) is noticed after about 30 + 3 * 10 s. The reconnect
 * gate stays under a second, the retry period of the processes' own loops,
 * so a database that is back is found on their next retry. */
#define ONS_PG_CONNECT_TIMEOUT_S     5
#define ONS_PG_KEEPALIVES_IDLE_S     30
#define ONS_PG_KEEPALIVES_INTERVAL_S 10
#define ONS_PG_KEEPALIVES_COUNT      3
#define ONS_PG_BACKOFF_MIN_MS        100
#define ONS_PG_BACKOFF_MAX_MS        500

/* How to connect. Strings are copied by ons_pg_init(). */
typedef struct ons_pg_opts {
    const char *dsn;          /* libpq connection string (required) */
    const char *app_name;     /* fallback_application_name; NULL: none */
    int connect_timeout_s;    /* 0: libpq's default (no limit) */
    int statement_timeout_ms; /* set on each new session; 0: the server's */
    int idle_tx_timeout_ms;   /* idle_in_transaction_session_timeout; 0: the server's */
    int keepalives_idle_s;    /* TCP keepalive tuning; 0: the OS default */
    int keepalives_interval_s;
    int keepalives_count;
    int backoff_min_ms; /* wait after the first failed connect; 0: never wait */
    int backoff_max_ms; /* cap of the doubling wait */
} ons_pg_opts;

/* Fills o with the defaults above for dsn (no statement or idle timeout). */
void ons_pg_opts_default(ons_pg_opts *o, const char *dsn, const char *app_name);

/* The keyword/value arrays a session is opened with (PQconnectdbParams with
 * expand_dbname = 1): the options' keywords first, then the DSN as dbname,
 * so that a keyword the DSN names wins (libpq reads the arrays in order and
 * the last value of a keyword counts), then client_encoding=UTF8, which
 * the DSN cannot change. Points into o and p->buf. */
typedef struct ons_pg_params {
    const char *kw[12], *val[12]; /* NULL-terminated: 4 numbers, app name, DSN, encoding */
    char buf[8][16];
} ons_pg_params;

void ons_pg_params_fill(const ons_pg_opts *o, ons_pg_params *p);

/* The wait before the next connect after `failures` consecutive failed ones:
 * 0 when failures <= 0 or backoff_min_ms <= 0, else backoff_min_ms doubled
 * per further failure, capped at max(backoff_min_ms, backoff_max_ms). Pure. */
int64_t ons_pg_backoff_ms(const ons_pg_opts *o, int failures);

/* One connection and its reconnect state. Zeroed, or after ons_pg_fini(),
 * it holds nothing. */
typedef struct ons_pg {
    ons_pg_opts o;       /* dsn and app_name point at owned copies */
    PGconn *conn;        /* NULL, or the current connection */
    int failures;        /* consecutive failed connects */
    int64_t retry_at_ms; /* monotonic ms: no connect before this */
    int64_t connects;    /* sessions opened so far (more than 1: reconnects) */
} ons_pg;

/* Copies o into pg; does not connect. Returns 0, ONS_EINVAL (no dsn) or
 * ONS_ENOMEM. */
int ons_pg_init(ons_pg *pg, const ons_pg_opts *o);

/* Closes the connection and frees the copies. Safe on a zeroed ons_pg and
 * twice. */
void ons_pg_fini(ons_pg *pg);

/* Returns a live connection (owned by pg: do not PQfinish it), connecting
 * first when there is none or it broke, or NULL when PostgreSQL cannot be
 * reached now or the backoff gate is closed. Blocks up to the connect
 * timeout. The caller's thread. */
PGconn *ons_pg_conn(ons_pg *pg);

/* Connects now unless connected, ignoring the backoff gate (start-up, a
 * tool's one connection). Returns 0 or ONS_EUNAVAIL (logged). */
int ons_pg_connect(ons_pg *pg);

/* After a failed statement: forgets the connection when it is broken, so the
 * next ons_pg_conn() reconnects at once. Returns 1 when it was broken. */
int ons_pg_check(ons_pg *pg);

/* Runs sql with n text parameters (NULL = SQL NULL) on c. Returns 0 with
 * *out set (the caller PQclear()s it; out may be NULL: cleared here) when
 * the status is want; otherwise logs "postgres WHAT: message" once, sets
 * *out to NULL and returns ONS_EDB. */
int ons_pg_exec(PGconn *c, ExecStatusType want, const char *what, const char *sql, int n,
                const char *const *vals, PGresult **out);

/* ons_pg_exec() expecting PGRES_COMMAND_OK, the row count logged at debug
 * level. Returns 0 or ONS_EDB. */
int ons_pg_command(PGconn *c, const char *what, const char *sql, int n, const char *const *vals);

/* ons_pg_exec() on pg's connection: ONS_EUNAVAIL when there is none (see
 * ons_pg_conn), ONS_EDB when the statement failed; a connection the failure
 * broke is forgotten (ons_pg_check). */
int ons_pg_query(ons_pg *pg, ExecStatusType want, const char *what, const char *sql, int n,
                 const char *const *vals, PGresult **out);

/* ---- parsing a field's text (pure) ------------------------------------------ */

/* Parses a whole decimal integer ("-12"; no spaces, no '+'). 0, ONS_EPARSE
 * or ONS_ERANGE; *out is written only on success. */
int ons_pg_parse_i64(const char *s, int64_t *out);

/* Parses PostgreSQL's boolean text: "t"/"f" (also "true"/"false"). 0 or
 * ONS_EPARSE. */
int ons_pg_parse_bool(const char *s, int *out);

/* Parses a whole floating-point number ("1.5", "1e9", "NaN"). 0 or
 * ONS_EPARSE. */
int ons_pg_parse_f64(const char *s, double *out);

/* ---- typed getters ------------------------------------------------------------ */

/* 1 when the field is SQL NULL, 0 when not, ONS_EINVAL when there is no such
 * field. */
int ons_pg_isnull(const PGresult *r, int row, int col);

/* The field's text, NULL when it is SQL NULL or does not exist. Owned by r. */
const char *ons_pg_get_str(const PGresult *r, int row, int col);

/* Each returns 0 and writes *out, or ONS_EINVAL (no such field), ONS_ENOTFOUND
 * (SQL NULL), ONS_EPARSE (not that type) or ONS_ERANGE (does not fit); *out
 * is untouched on error. */
int ons_pg_get_i64(const PGresult *r, int row, int col, int64_t *out);
int ons_pg_get_i32(const PGresult *r, int row, int col, int32_t *out);
int ons_pg_get_bool(const PGresult *r, int row, int col, int *out);
int ons_pg_get_f64(const PGresult *r, int row, int col, double *out);

/* Copies the field's text into buf (cap bytes, NUL-terminated). ONS_ERANGE
 * when it does not fit (buf then holds nothing: ""), ONS_ENOTFOUND for NULL. */
int ons_pg_get_text(const PGresult *r, int row, int col, char *buf, size_t cap);

/* Like ons_pg_get_i64, but SQL NULL gives dflt. */
int ons_pg_get_i64_or(const PGresult *r, int row, int col, int64_t dflt, int64_t *out);

/* ---- reading a row field by field ----------------------------------------------- */

/* One row being read; err keeps the first failure and col where it was. */
typedef struct ons_pg_row {
    const PGresult *r;
    int row;
    int err; /* 0, or the first getter's error */
    int col; /* the column of err */
} ons_pg_row;

/* Starts reading row `row` of r. */
ons_pg_row ons_pg_row_at(const PGresult *r, int row);

/* Each returns the field's value, or 0 / "" / dflt with rw->err set (the
 * first error only is kept). */
int64_t ons_pg_row_i64(ons_pg_row *rw, int col);
int64_t ons_pg_row_i64_or(ons_pg_row *rw, int col, int64_t dflt);
int32_t ons_pg_row_i32(ons_pg_row *rw, int col);
int ons_pg_row_bool(ons_pg_row *rw, int col);
/* The text ("" for SQL NULL when nullable, else an error); owned by r. */
const char *ons_pg_row_str(ons_pg_row *rw, int col, int nullable);
/* Copies the text into buf (see ons_pg_get_text); SQL NULL gives "" when
 * nullable. */
void ons_pg_row_text(ons_pg_row *rw, int col, char *buf, size_t cap, int nullable);

/* Logs "postgres WHAT: row N column C: error" when rw->err is set and returns
 * rw->err (0 when the row read cleanly). */
int ons_pg_row_done(const ons_pg_row *rw, const char *what);

/* ---- reading every row into an array ---------------------------------------------- */

/* Reads row `row` of r into item: 0, or nonzero when a field does not read. */
typedef int (*ons_pg_row_fn)(const PGresult *r, int row, void *item);

/* Reads the rows of r (at most max; max < 0: all) into a new heap array of
 * elem-sized items. out is the address of the caller's pointer (T **out):
 * it is set to the array (NULL when there are no rows), *n to its length.
 * Returns 0, ONS_EDB (read() failed for a row) or ONS_ENOMEM; on error the
 * pointer is NULL and *n 0. Does not clear r. */
int ons_pg_rows(const PGresult *r, size_t elem, int max, ons_pg_row_fn read, void *out, size_t *n);

/* Frees an array ons_pg_rows() made: rows is the address of the caller's
 * pointer (T **), set to NULL; *n is set to 0. */
void ons_pg_rows_free(void *rows, size_t *n);

#endif
