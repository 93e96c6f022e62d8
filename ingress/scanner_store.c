/* scanner_store.c - scanner assignments to venues and events; see
 * scanner_store.h. */
#include "ingress/scanner_store.h"
#include "common/err.h"
#include "ingress/pg_row.h"

#include <stdio.h>
#include <stdlib.h>

/* The columns every scanner read answers, in ing_scanner_row's order. */
#define SCANNER_COLS "s.scanner_id, " ING_PG_RFC3339("s.assigned_at")

static const ing_pg_col scanner_cols[] = {
    ING_PG_COL(ing_scanner_row, ING_PG_I64, 0, user_id),
    ING_PG_COL(ing_scanner_row, ING_PG_TEXT, 1, assigned_at),
};

static int read_scanner(const PGresult *res, int i, void *item)
{
    return ing_pg_read_cols(res, i, item, scanner_cols, sizeof scanner_cols / sizeof *scanner_cols);
}

/* The statements of one kind of assignment: a venue's (venue_scanners,
 * owned by venues.owner_id) or an event's (event_scanners, owned by
 * events.seller_id, the venue's owner when the event was made). $1 is the
 * venue or event id throughout. */
typedef struct scope_sql {
    const char *owner, *lock, *get, *put, *del, *list;
} scope_sql;

// clang-format off
#define SCOPE_SQL(table, key, parent, owner_col, lock_sql)                                         \
    {"SELECT " owner_col " FROM " parent " WHERE " key " = $1",                                    \
     lock_sql,                                                                                     \
     "SELECT " SCANNER_COLS " FROM " table " s WHERE s." key " = $1 AND s.scanner_id = $2",        \
     /* -1: no account with the role; 0: full; 1: inserted or already there.                    \
      * The count runs after the lock was granted (a statement of its own,                       \
      * so its snapshot sees every assignment committed before). */                             \
     "WITH ok AS (SELECT 1 FROM users WHERE user_id = $2 AND 'scanner' = ANY (roles)), "          \
     "have AS (SELECT 1 FROM " table " WHERE " key " = $1 AND scanner_id = $2), "                  \
     "room AS (SELECT (SELECT count(*) FROM " table " WHERE " key " = $1) < $4 AS r), "            \
     "ins AS (INSERT INTO " table " (" key ", scanner_id, assigned_by) "                           \
     "        SELECT $1, $2, $3 FROM room WHERE EXISTS (SELECT 1 FROM ok) "                        \
     "        AND NOT EXISTS (SELECT 1 FROM have) AND room.r RETURNING 1) "                        \
     "SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM ok) THEN -1 "                                     \
     "WHEN EXISTS (SELECT 1 FROM have) OR EXISTS (SELECT 1 FROM ins) THEN 1 ELSE 0 END",          \
     "DELETE FROM " table " WHERE " key " = $1 AND scanner_id = $2",                               \
     "SELECT " SCANNER_COLS " FROM " table " s WHERE s." key " = $1 "                              \
     "ORDER BY s.assigned_at, s.scanner_id LIMIT $2"}
// clang-format on

/* A venue's assignments are ordered by a lock of its row FOR NO KEY UPDATE,
 * which unlike FOR UPDATE does not block the FOR KEY SHARE of a foreign key
 * check (an INSERT INTO events naming the venue). An event's row is
 * updated by its partition owner during the sale, so its assignments are
 * ordered by a transaction advisory lock instead (class 19, after the
 * migration; events whose ids share the low 31 bits merely queue behind
 * each other), taken once the row is found. */
static const scope_sql venue_sql =
    SCOPE_SQL("venue_scanners", "venue_id", "venues", "owner_id",
              "SELECT venue_id FROM venues WHERE venue_id = $1 FOR NO KEY UPDATE");
static const scope_sql event_sql =
    SCOPE_SQL("event_scanners", "event_id", "events", "seller_id",
              "SELECT e.event_id FROM events e, LATERAL (SELECT pg_advisory_xact_lock(19, "
              "(e.event_id % 2147483647)::int)) l WHERE e.event_id = $1");

static const scope_sql *sql_of(const ing_scanner_scope *a)
{
    return a->event_id > 0 ? &event_sql : &venue_sql;
}

static int64_t id_of(const ing_scanner_scope *a)
{
    return a->event_id > 0 ? a->event_id : a->venue_id;
}

/* The venue's (event's) owner is the caller (or the caller is an admin): 0,
 * ONS_ENOTFOUND or ONS_EAUTH. Reads without a lock: an owner never
 * changes, and another seller's refused request must not lock the row. */
static int scope_owned(ing_worker *w, const char *rid, const ing_scanner_scope *a)
{
    int64_t v[] = {id_of(a)}, owner = 0;
    int rc = ing_pg_one(ing_pg_query_i64(w, 0, sql_of(a)->owner, 1, v), rid, "scanners' owner",
                        ing_pg_read_i64, &owner);
    if (rc == 0 && !a->is_admin && owner != a->user_id)
        rc = ONS_EAUTH;
    return rc;
}

/* Inside put's transaction: orders the assignments to one venue (event),
 * so they count each other (venue_sql, event_sql say how). 0 or
 * ONS_ENOTFOUND. */
static int scope_lock(ing_worker *w, const char *rid, const ing_scanner_scope *a)
{
    int64_t v[] = {id_of(a)}, got = 0;
    return ing_pg_one(ing_pg_query_i64(w, 0, sql_of(a)->lock, 1, v), rid, "scanners' lock",
                      ing_pg_read_i64, &got);
}

/* One scanner row of the venue (event): 0 or ONS_ENOTFOUND. */
static int scanner_get(ing_worker *w, const char *rid, const ing_scanner_scope *a,
                       int64_t scanner_id, ing_scanner_row *out)
{
    int64_t v[] = {id_of(a), scanner_id};
    return ing_pg_one(ing_pg_query_i64(w, 0, sql_of(a)->get, 2, v), rid, "scanner", read_scanner,
                      out);
}

/* Inside put's transaction, the venue (event) locked: inserts the row
 * unless it is there, after the role and the count checks. */
static int put_locked(ing_worker *w, const char *rid, const ing_scanner_scope *a,
                      int64_t scanner_id, int64_t max)
{
    int64_t v[] = {id_of(a), scanner_id, a->user_id, max};
    int64_t verdict = 0;
    int rc = ing_pg_one(ing_pg_query_i64(w, 0, sql_of(a)->put, 4, v), rid, "scanner insert",
                        ing_pg_read_i64, &verdict);
    if (rc == 0 && verdict < 0)
        rc = ONS_EINVAL;
    else if (rc == 0 && verdict == 0)
        rc = ONS_EFULL;
    return rc;
}

int ing_scanner_put(ing_worker *w, const char *rid, const ing_scanner_scope *a, int64_t scanner_id,
                    int64_t max, ing_scanner_row *out)
{
    int rc = scope_owned(w, rid, a);
    if (rc)
        return rc;
    if (ing_pg_exec(w, "BEGIN"))
        return ONS_EUNAVAIL;
    rc = scope_lock(w, rid, a);
    if (rc == 0)
        rc = put_locked(w, rid, a, scanner_id, max);
    if (rc == 0) {
        rc = scanner_get(w, rid, a, scanner_id, out);
        /* The row was inserted or found under the lock: not finding it
         * now is a failed statement, not a missing venue. */
        if (rc == ONS_ENOTFOUND)
            rc = ONS_EDB;
    }
    if (rc == 0 && ing_pg_exec(w, "COMMIT"))
        rc = ONS_EDB;
    if (rc)
        ing_pg_exec(w, "ROLLBACK");
    return rc;
}

int ing_scanner_delete(ing_worker *w, const char *rid, const ing_scanner_scope *a,
                       int64_t scanner_id)
{
    /* An owner never changes, so the check and the DELETE need no
     * transaction. */
    int rc = scope_owned(w, rid, a);
    if (rc)
        return rc;
    int64_t v[] = {id_of(a), scanner_id};
    PGresult *res = ing_pg_query_i64(w, 0, sql_of(a)->del, 2, v);
    rc = ing_pg_status(res, rid, "scanner delete");
    PQclear(res);
    return rc;
}

int ing_scanners_list(ing_worker *w, const char *rid, const ing_scanner_scope *a,
                      ing_scanner_row **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int rc = scope_owned(w, rid, a);
    if (rc)
        return rc;
    /* Every assignment, not the cap's count of them: a cap
     * lowered after assignments were made must not hide the ones its owner
     * has to remove. */
    int64_t v[] = {id_of(a), ING_VENUE_SCANNERS_MAX};
    return ing_pg_rows(ing_pg_query_i64(w, 0, sql_of(a)->list, 2, v), rid, "scanners", sizeof **out,
                       ING_VENUE_SCANNERS_MAX, read_scanner, out, n);
}
