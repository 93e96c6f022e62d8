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

static int read_counts(const PGresult *res, int i, void *item)
{
    ing_event_counts *e = item;
    ing_pg_text(res, i, 1, e->status, sizeof e->status);
    return ing_pg_i64(res, i, 0, &e->event_id) || ing_pg_i64(res, i, 2, &e->available) ||
           ing_pg_i64(res, i, 3, &e->held) || ing_pg_i64(res, i, 4, &e->sold) ||
           ing_pg_i64(res, i, 5, &e->waiting) || ing_pg_i64(res, i, 6, &e->max_active_holds) ||
           ing_pg_i64(res, i, 7, &e->admissions_per_minute) ||
           ing_pg_i64(res, i, 8, &e->active_holds);
}

int ing_live_event_counts(ing_worker *w, int limit, ing_event_counts **out, size_t *n)
{
    int64_t v[] = {limit};
    PGresult *res = ing_pg_query_i64(
        w, 0,
        "SELECT e.event_id, e.status, "
        "  count(s.*) FILTER (WHERE s.status = 'available'), "
        "  count(s.*) FILTER (WHERE s.status IN ('held', 'paying')), "
        "  count(s.*) FILTER (WHERE s.status = 'sold'), "
        "  (SELECT count(*) FROM intents i WHERE i.event_id = e.event_id AND i.state = 'waiting'), "
        "  coalesce(e.max_active_holds, 0), coalesce(e.admissions_per_minute, 0), "
        "  (SELECT count(*) FROM intents i WHERE i.event_id = e.event_id "
        "   AND i.state IN ('reserved', 'paying')) "
        "FROM events e LEFT JOIN seats s USING (event_id) "
        "WHERE e.status IN ('scheduled', 'on_sale', 'paused', 'sold_out') "
        "GROUP BY e.event_id, e.status ORDER BY e.event_id DESC LIMIT $1",
        1, v);
    return ing_pg_rows(res, NULL, "live event counts", sizeof **out, -1, read_counts, out, n);
}
