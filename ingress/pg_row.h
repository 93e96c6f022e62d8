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

/* Decimal text of v (statement parameters). */
void ing_pg_i64_text(int64_t v, char out[24]);

/* PostgreSQL array literals: {"a","b\"c"} and {1,2,3}. Heap strings the
 * caller frees; NULL when out of memory. */
char *ing_pg_text_array(const char *const *items, size_t n);
char *ing_pg_int_array(const int64_t *v, size_t n);

#endif
