/* cache_store.c - the reads behind ingress's caches; see cache_store.h. */
#include "ingress/cache_store.h"

#include "common/err.h"
#include "ingress/pg_row.h"
#include "queue/states.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ing_cache_event_state(ing_worker *w, int64_t event_id, q_event_state *st, char **names)
{
    *names = NULL;
    char idbuf[24];
    snprintf(idbuf, sizeof idbuf, "%" PRId64, event_id);
    const char *params[] = {idbuf};
    PGresult *res;
    if (ing_worker_exec(w, PGRES_TUPLES_OK, "event state",
                        "SELECT status, (extract(epoch FROM onsale_at) * 1000)::bigint, "
                        "max_per_user, "
                        "coalesce((extract(epoch FROM prequeue_opens_at) * 1000)::bigint, "
                        "0), coalesce(max_active_holds, 0), "
                        "coalesce(admissions_per_minute, 0), pow_difficulty, partitions, "
                        /* q_section_names_encode's form: bytes, ':', name */
                        "(SELECT coalesce(string_agg(octet_length(s.name) || ':' || s.name, "
                        "'' ORDER BY s.position), '') FROM price_tiers pt JOIN sections s "
                        "USING (section_id) WHERE pt.event_id = events.event_id) "
                        "FROM events WHERE event_id = $1",
                        1, params, &res))
        return ONS_EDB;
    int rc = ONS_ENOTFOUND;
    if (PQntuples(res) > 0) {
        ons_pg_row rw = ons_pg_row_at(res, 0);
        ons_pg_row_text(&rw, 0, st->status, sizeof st->status, 0);
        st->onsale_at_ms = ons_pg_row_i64(&rw, 1);
        st->max_per_user = ons_pg_row_i32(&rw, 2);
        st->prequeue_opens_at_ms = ons_pg_row_i64(&rw, 3);
        st->max_active_holds = ons_pg_row_i64(&rw, 4);
        st->admissions_per_minute = ons_pg_row_i64(&rw, 5);
        st->pow_difficulty = ons_pg_row_i32(&rw, 6);
        st->partitions = ons_pg_row_i32(&rw, 7);
        if (q_event_status_parse(st->status) == Q_EVENT_SOLD_OUT)
            st->sold_out = 1;
        const char *nm = ons_pg_row_str(&rw, 8, 0);
        rc = ons_pg_row_done(&rw, "event state") ? ONS_EDB : 0;
        if (rc == 0 && !(*names = strdup(nm)))
            rc = ONS_EDB;
    }
    PQclear(res);
    return rc;
}

int ing_cache_next_offsets(ons_pg *pg, int64_t *next, int n)
{
    PGresult *res;
    int rc = ons_pg_query(pg, PGRES_TUPLES_OK, "partition cursors",
                          "SELECT partition, next_offset FROM partition_owner", 0, NULL, &res);
    if (rc)
        return rc;
    for (int i = 0; i < PQntuples(res); i++) {
        ons_pg_row rw = ons_pg_row_at(res, i);
        int32_t p = ons_pg_row_i32(&rw, 0);
        int64_t v = ons_pg_row_i64(&rw, 1);
        if (ons_pg_row_done(&rw, "partition cursors") == 0 && p >= 0 && p < n)
            next[p] = v;
    }
    PQclear(res);
    return 0;
}
