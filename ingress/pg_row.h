/*
 * pg_row.h - checked reads of libpq results, for ingress's data modules
 * only (event_store.c, order_store.c, ...): no other ingress file sees a
 * PGresult. A cell that is NULL, malformed or out of range is an error
 * (ONS_EPARSE), never a silent 0 the way strtoll(PQgetvalue()) was.
 */
#ifndef ONSALE_INGRESS_PG_ROW_H
#define ONSALE_INGRESS_PG_ROW_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "common/pg.h"
#include "ingress/pool.h"

/* Runs one statement with text parameters (NULL = SQL NULL) on the worker's
 * connection. Returns the result (the caller PQclears it; check its status),
 * or NULL when PostgreSQL is unreachable. Connection failures are noted so
 * the next call reconnects. */
PGresult *ing_worker_query(ing_worker *w, const char *sql, int nparams, const char *const *params);

/* Runs one statement expecting status want (common/pg: ons_pg_query).
 * Returns 0 with *out (the caller PQclears it), ONS_EUNAVAIL (no
 * connection) or ONS_EDB (logged once, naming what). */
int ing_worker_exec(ing_worker *w, ExecStatusType want, const char *what, const char *sql,
                    int nparams, const char *const *params, PGresult **out);

/* Runs a statement whose result is not needed (BEGIN, COMMIT, ROLLBACK):
 * ing_pg_status's codes, logged naming the statement. */
int ing_pg_exec(ing_worker *w, const char *sql);

/* SQL text of a timestamptz column col as RFC 3339 UTC to the second
 * ("2026-11-30T05:00:00Z"), the form every answer uses. Statements laid
 * out over many literals spell it inline instead (clang-format scatters a
 * macro spliced into them over the page); keep the two the same. */
#define ING_PG_RFC3339(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* The most bigint parameters ing_pg_query_i64 takes. */
#define ING_PG_MAX_I64 8

/* Runs sql with the n bigint parameters v ($1..$n, as decimal text) on the
 * job thread's connection, or (replica 1) through ing_read_query (the
 * replica while it is fresh). The result as ing_worker_query returns it
 * (NULL: no connection); n above ING_PG_MAX_I64 is a programming error. */
PGresult *ing_pg_query_i64(ing_worker *w, int replica, const char *sql, int n, const int64_t *v);

/* A statement a job thread prepares once per session and then only
 * executes: for the hot reads a fan's page repeats (its order, every second
 * while the payment is pending), where PostgreSQL's parse and plan cost
 * twice the execution (bench/NOTES.md, "The e2e's polls behind a saturated
 * box"). Declared static const; slot is its own bit (0..31, asserted),
 * which no other prepared statement of ingress may share. */
typedef struct ing_pg_stmt {
    const char *name; /* the session's statement name */
    const char *sql;
    int nparams; /* bigint parameters, $1..$n */
    int slot;
} ing_pg_stmt;

/* ing_pg_query_i64 for a prepared statement on the job thread's
 * connection: prepared on first use in each session (a reconnect, a new
 * backend pid, starts over), then executed with n bigint parameters (n
 * must be st->nparams). A session that lost the statement (DISCARD), or
 * whose plan no longer fits the schema (a migration changed a column's
 * type), has it prepared again and the call retried once; a name already
 * taken on the session is deallocated and prepared again. A pooler in
 * front of PostgreSQL must keep sessions in session mode (docs/scaling.md).
 * The result as ing_worker_query returns it, a failed prepare's too; NULL:
 * no connection. */
PGresult *ing_pg_prepared_i64(ing_worker *w, const ing_pg_stmt *st, int n, const int64_t *v);

/* The outcome of a statement: 0 when it returned rows or completed,
 * ONS_EUNAVAIL when there was no connection (res NULL), else ONS_EDB,
 * logged at warn with rid (may be NULL) and what. */
int ing_pg_status(const PGresult *res, const char *rid, const char *what);

/* A bigint / int cell: 0 or ONS_EPARSE (NULL, not a decimal, out of range). */
int ing_pg_i64(const PGresult *res, int row, int col, int64_t *out);
int ing_pg_int(const PGresult *res, int row, int col, int *out);
/* A boolean cell: 1 for 't', 0 otherwise (NULL included). */
int ing_pg_bool(const PGresult *res, int row, int col);
/* A text cell copied into out[cap] (truncated; "" for NULL). */
void ing_pg_text(const PGresult *res, int row, int col, char *out, size_t cap);
/* The row count of an INSERT/UPDATE/DELETE: 0 or ONS_EPARSE. */
int ing_pg_affected(PGresult *res, int64_t *out);

/* One column of a row and the member of a typed item it is read into
 * (ing_pg_read_cols): text (copied, truncated to the member's size, as
 * ing_pg_text), bigint (int64_t, as ing_pg_i64) or int (as ing_pg_int). */
typedef enum { ING_PG_TEXT, ING_PG_I64, ING_PG_INT } ing_pg_kind;
typedef struct ing_pg_col {
    int col;
    ing_pg_kind kind;
    size_t offset; /* offsetof the member */
    size_t cap;    /* its size */
} ing_pg_col;
/* The ing_pg_col of column col read as kind into member of struct T. */
#define ING_PG_COL(T, kind, col, member)                                                           \
    {                                                                                              \
        col, kind, offsetof(T, member), sizeof(((T *)0)->member)                                   \
    }

/* Reads the n columns of row into item, as the table says: 0, or ONS_EPARSE
 * when a number does not parse (the columns after it are not read). */
int ing_pg_read_cols(const PGresult *res, int row, void *item, const ing_pg_col *cols, size_t n);

/* Reads one row of a result into a typed item: 0, or nonzero when a cell
 * does not parse (the caller's result becomes ONS_EDB). */
typedef int (*ing_pg_row_fn)(const PGresult *res, int row, void *item);

/* The one-row answer of a statement: ing_pg_status's codes, ONS_ENOTFOUND
 * when it returned no row, ONS_EDB when read() failed, else 0 with *item
 * filled from row 0. Clears res. */
int ing_pg_one(PGresult *res, const char *rid, const char *what, ing_pg_row_fn read, void *item);

/* The rows of a statement (at most max; < 0: all) as a new array of
 * elem-sized items filled by read() (common/pg's ons_pg_rows): out is the
 * address of the caller's pointer (T **), set to the array (heap, the caller
 * frees it, e.g. with ons_pg_rows_free; NULL when there are no rows), *n to
 * its length. Returns 0, ing_pg_status's codes, ONS_EDB (a row failed to
 * read) or ONS_ENOMEM, with the pointer NULL on error. Clears res. */
int ing_pg_rows(PGresult *res, const char *rid, const char *what, size_t elem, int max,
                ing_pg_row_fn read, void *out, size_t *n);

/* The one-row answer (id bigint, state text) of a statement, e.g. the
 * intent or order a request made: ing_pg_one's codes; *id is written in
 * every case (0 when there is no row), state (16 bytes) when a row read.
 * Clears res. */
int ing_pg_one_id_state(PGresult *res, const char *what, int64_t *id, char state[16]);

/* An ing_pg_row_fn for a bigint in column 0 (item: int64_t). */
int ing_pg_read_i64(const PGresult *res, int row, void *item);

/* Decimal text of v (statement parameters). */
void ing_pg_i64_text(int64_t v, char out[24]);

/* PostgreSQL array literals: {"a","b\"c"} and {1,2,3}. Heap strings the
 * caller frees; NULL when out of memory. */
char *ing_pg_text_array(const char *const *items, size_t n);
char *ing_pg_int_array(const int64_t *v, size_t n);

#endif
