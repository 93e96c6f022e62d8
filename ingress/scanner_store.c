/* scanner_store.c - scanner assignments to venues; see scanner_store.h. */
#include "ingress/scanner_store.h"
#include "common/err.h"
#include "ingress/pg_row.h"

#include <stdio.h>
#include <stdlib.h>

/* The columns every scanner read answers, in ing_venue_scanner's order. */
#define SCANNER_COLS "s.scanner_id, " ING_PG_RFC3339("s.assigned_at")

static const ing_pg_col scanner_cols[] = {
    ING_PG_COL(ing_venue_scanner, ING_PG_I64, 0, user_id),
    ING_PG_COL(ing_venue_scanner, ING_PG_TEXT, 1, assigned_at),
};

static int read_scanner(const PGresult *res, int i, void *item)
{
    return ing_pg_read_cols(res, i, item, scanner_cols, sizeof scanner_cols / sizeof *scanner_cols);
}

/* The venue's owner is the caller (or the caller is an admin): 0,
 * ONS_ENOTFOUND or ONS_EAUTH. Reads without a lock: an owner never
 * changes, and another seller's refused request must not lock the venue. */
static int venue_owned(ing_worker *w, const char *rid, const ing_venue_actor *a)
{
    int64_t v[] = {a->venue_id}, owner = 0;
    int rc =
        ing_pg_one(ing_pg_query_i64(w, 0, "SELECT owner_id FROM venues WHERE venue_id = $1", 1, v),
                   rid, "venue owner", ing_pg_read_i64, &owner);
    if (rc == 0 && !a->is_admin && owner != a->user_id)
        rc = ONS_EAUTH;
    return rc;
}

/* Inside put's transaction: locks the venue's row FOR NO KEY UPDATE, which
 * orders assignments to one venue (they count each other) and, unlike FOR
 * UPDATE, does not block the FOR KEY SHARE of a foreign key check (an
 * INSERT INTO events naming the venue). 0 or ONS_ENOTFOUND. */
static int venue_lock(ing_worker *w, const char *rid, int64_t venue_id)
{
    int64_t v[] = {venue_id}, got = 0;
    return ing_pg_one(ing_pg_query_i64(w, 0,
                                       "SELECT venue_id FROM venues WHERE venue_id = $1 "
                                       "FOR NO KEY UPDATE",
                                       1, v),
                      rid, "venue lock", ing_pg_read_i64, &got);
}

/* One scanner row of the venue: 0 or ONS_ENOTFOUND. */
static int scanner_get(ing_worker *w, const char *rid, int64_t venue_id, int64_t scanner_id,
                       ing_venue_scanner *out)
{
    int64_t v[] = {venue_id, scanner_id};
    return ing_pg_one(ing_pg_query_i64(w, 0,
                                       "SELECT " SCANNER_COLS " FROM venue_scanners s "
                                       "WHERE s.venue_id = $1 AND s.scanner_id = $2",
                                       2, v),
                      rid, "venue scanner", read_scanner, out);
}

/* Inside put's transaction, the venue locked: inserts the row unless it
 * is there, after the role and the count checks. */
static int put_locked(ing_worker *w, const char *rid, const ing_venue_actor *a, int64_t scanner_id,
                      int64_t max)
{
    int64_t v[] = {a->venue_id, scanner_id, a->user_id, max};
    /* -1: no account with the role; 0: full; 1: inserted or already there.
     * The count runs after the lock was granted (a statement of its own,
     * so its snapshot sees every assignment committed before). */
    int64_t verdict = 0;
    int rc = ing_pg_one(
        ing_pg_query_i64(
            w, 0,
            "WITH ok AS (SELECT 1 FROM users WHERE user_id = $2 AND 'scanner' = ANY (roles)), "
            "have AS (SELECT 1 FROM venue_scanners WHERE venue_id = $1 AND scanner_id = $2), "
            "room AS (SELECT (SELECT count(*) FROM venue_scanners WHERE venue_id = $1) < $4 AS r), "
            "ins AS (INSERT INTO venue_scanners (venue_id, scanner_id, assigned_by) "
            "        SELECT $1, $2, $3 FROM room WHERE EXISTS (SELECT 1 FROM ok) "
            "        AND NOT EXISTS (SELECT 1 FROM have) AND room.r RETURNING 1) "
            "SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM ok) THEN -1 "
            "WHEN EXISTS (SELECT 1 FROM have) OR EXISTS (SELECT 1 FROM ins) THEN 1 ELSE 0 END",
            4, v),
        rid, "venue scanner insert", ing_pg_read_i64, &verdict);
    if (rc == 0 && verdict < 0)
        rc = ONS_EINVAL;
    else if (rc == 0 && verdict == 0)
        rc = ONS_EFULL;
    return rc;
}

int ing_venue_scanner_put(ing_worker *w, const char *rid, const ing_venue_actor *a,
                          int64_t scanner_id, int64_t max, ing_venue_scanner *out)
{
    int rc = venue_owned(w, rid, a);
    if (rc)
        return rc;
    if (ing_pg_exec(w, "BEGIN"))
        return ONS_EUNAVAIL;
    rc = venue_lock(w, rid, a->venue_id);
    if (rc == 0)
        rc = put_locked(w, rid, a, scanner_id, max);
    if (rc == 0) {
        rc = scanner_get(w, rid, a->venue_id, scanner_id, out);
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

int ing_venue_scanner_delete(ing_worker *w, const char *rid, const ing_venue_actor *a,
                             int64_t scanner_id)
{
    /* A venue's owner never changes, so the check and the DELETE need no
     * transaction. */
    int rc = venue_owned(w, rid, a);
    if (rc)
        return rc;
    int64_t v[] = {a->venue_id, scanner_id};
    PGresult *res = ing_pg_query_i64(
        w, 0, "DELETE FROM venue_scanners WHERE venue_id = $1 AND scanner_id = $2", 2, v);
    rc = ing_pg_status(res, rid, "venue scanner delete");
    PQclear(res);
    return rc;
}

int ing_venue_scanners_list(ing_worker *w, const char *rid, const ing_venue_actor *a,
                            ing_venue_scanner **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int rc = venue_owned(w, rid, a);
    if (rc)
        return rc;
    /* Every assignment, not tickets.scanners_per_venue of them: a cap
     * lowered after assignments were made must not hide the ones its owner
     * has to remove. */
    int64_t v[] = {a->venue_id, ING_VENUE_SCANNERS_MAX};
    return ing_pg_rows(ing_pg_query_i64(w, 0,
                                        "SELECT " SCANNER_COLS " FROM venue_scanners s "
                                        "WHERE s.venue_id = $1 "
                                        "ORDER BY s.assigned_at, s.scanner_id LIMIT $2",
                                        2, v),
                       rid, "venue scanners", sizeof **out, ING_VENUE_SCANNERS_MAX, read_scanner,
                       out, n);
}
