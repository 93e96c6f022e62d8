/* admin_store.c - the queue view's reads; see admin_store.h. */
#include "ingress/admin_store.h"
#include "common/err.h"
#include "ingress/pg_row.h"

#include <stdio.h>
#include <stdlib.h>

static int read_owner(const PGresult *res, int i, void *item)
{
    ing_partition_owner *o = item;
    o->has_owner = !PQgetisnull(res, i, 1);
    ing_pg_text(res, i, 1, o->owner, sizeof o->owner);
    return ing_pg_int(res, i, 0, &o->partition) || ing_pg_i64(res, i, 2, &o->epoch) ||
           ing_pg_i64(res, i, 3, &o->next_offset);
}

int ing_partition_owners(ing_worker *w, ing_partition_owner **out, size_t *n)
{
    PGresult *res = ing_worker_query(
        w, "SELECT partition, owner, epoch, next_offset FROM partition_owner ORDER BY partition", 0,
        NULL);
    return ing_pg_rows(res, NULL, "partition owners", sizeof **out, -1, read_owner, out, n);
}

static int read_live_event(const PGresult *res, int i, void *item)
{
    ing_event_counts *e = item;
    ing_pg_text(res, i, 1, e->status, sizeof e->status);
    e->available = e->held = e->sold = e->waiting = e->active_holds = -1;
    return ing_pg_i64(res, i, 0, &e->event_id) || ing_pg_i64(res, i, 2, &e->max_active_holds) ||
           ing_pg_i64(res, i, 3, &e->admissions_per_minute);
}

int ing_live_events(ing_worker *w, int limit, ing_event_counts **out, size_t *n)
{
    int64_t v[] = {limit};
    PGresult *res =
        ing_pg_query_i64(w, 0,
                         "SELECT event_id, status, coalesce(max_active_holds, 0), "
                         "  coalesce(admissions_per_minute, 0) FROM events "
                         "WHERE status IN ('scheduled', 'on_sale', 'paused', 'sold_out') "
                         "ORDER BY event_id DESC LIMIT $1",
                         1, v);
    return ing_pg_rows(res, NULL, "live events", sizeof **out, -1, read_live_event, out, n);
}

static int read_counts(const PGresult *res, int i, void *item)
{
    ing_event_counts *e = item;
    return ing_pg_i64(res, i, 0, &e->event_id) || ing_pg_i64(res, i, 1, &e->available) ||
           ing_pg_i64(res, i, 2, &e->held) || ing_pg_i64(res, i, 3, &e->sold) ||
           ing_pg_i64(res, i, 4, &e->waiting) || ing_pg_i64(res, i, 5, &e->active_holds);
}

int ing_event_counts_fill(ing_worker *w, ing_event_counts *ev, size_t n)
{
    int64_t *ids = malloc((n ? n : 1) * sizeof *ids);
    size_t nids = 0;
    for (size_t i = 0; ids && i < n; i++)
        if (ev[i].available < 0)
            ids[nids++] = ev[i].event_id;
    if (ids && nids == 0) {
        free(ids);
        return 0;
    }
    char *arr = ids ? ing_pg_int_array(ids, nids) : NULL;
    free(ids);
    if (!arr)
        return ONS_ENOMEM;
    const char *p[] = {arr};
    /* By the primary keys' prefixes: the seats of these events only, and
     * their active intents through intents_one_active's predicate. */
    ing_event_counts *rows = NULL;
    size_t nrows = 0;
    int rc = ing_pg_rows(
        ing_worker_query(w,
                         "SELECT e.event_id, "
                         "  count(s.*) FILTER (WHERE s.status = 'available'), "
                         "  count(s.*) FILTER (WHERE s.status IN ('held', 'paying')), "
                         "  count(s.*) FILTER (WHERE s.status = 'sold'), "
                         "  (SELECT count(*) FROM intents i WHERE i.event_id = e.event_id "
                         "   AND i.state = 'waiting'), "
                         "  (SELECT count(*) FROM intents i WHERE i.event_id = e.event_id "
                         "   AND i.state IN ('reserved', 'paying')) "
                         "FROM events e LEFT JOIN seats s USING (event_id) "
                         "WHERE e.event_id = ANY($1::bigint[]) GROUP BY e.event_id",
                         1, p),
        NULL, "event counts", sizeof *rows, -1, read_counts, &rows, &nrows);
    free(arr);
    if (rc)
        return rc;
    for (size_t k = 0; k < nrows; k++)
        for (size_t i = 0; i < n; i++)
            if (ev[i].event_id == rows[k].event_id && ev[i].available < 0) {
                ev[i].available = rows[k].available;
                ev[i].held = rows[k].held;
                ev[i].sold = rows[k].sold;
                ev[i].waiting = rows[k].waiting;
                ev[i].active_holds = rows[k].active_holds;
                break;
            }
    free(rows);
    return 0;
}
