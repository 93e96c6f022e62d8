/* cache_store.c - the reads behind ingress's caches; see cache_store.h. */
#include "ingress/cache_store.h"

#include "common/err.h"
#include "ingress/pg_row.h"
#include "queue/states.h"
#include "queue/status.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

/* The names in column col of res's rows (NULL: the event prices no
 * section) in q_section_names_encode's form: heap, or NULL out of memory.
 * Encoded here, by the encoder event creation uses, so each length is the
 * bytes of the name as received, whatever the client encoding. */
static char *encode_names(const PGresult *res, int col)
{
    int n = PQntuples(res);
    const char **names = malloc((size_t)(n > 0 ? n : 1) * sizeof *names);
    if (!names)
        return NULL;
    size_t k = 0;
    for (int i = 0; i < n; i++)
        if (!PQgetisnull(res, i, col))
            names[k++] = PQgetvalue(res, i, col);
    char *out = q_section_names_encode(names, k);
    free(names);
    return out;
}

int ing_cache_event_state(ing_worker *w, int64_t event_id, q_event_state *st, char **names)
{
    *names = NULL;
    char idbuf[24];
    snprintf(idbuf, sizeof idbuf, "%" PRId64, event_id);
    const char *params[] = {idbuf};
    PGresult *res;
    /* One row per priced section (in position order), or one with a NULL
     * name when there is none; the event's columns repeat on each. */
    if (ing_worker_exec(w, PGRES_TUPLES_OK, "event state",
                        "SELECT status, (extract(epoch FROM onsale_at) * 1000)::bigint, "
                        "max_per_user, "
                        "coalesce((extract(epoch FROM prequeue_opens_at) * 1000)::bigint, "
                        "0), coalesce(max_active_holds, 0), "
                        "coalesce(admissions_per_minute, 0), pow_difficulty, partitions, n.name "
                        "FROM events LEFT JOIN LATERAL (SELECT s.name, s.position "
                        "FROM price_tiers pt JOIN sections s USING (section_id) "
                        "WHERE pt.event_id = events.event_id) n ON true "
                        "WHERE events.event_id = $1 ORDER BY n.position",
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
        rc = ons_pg_row_done(&rw, "event state") ? ONS_EDB : 0;
        if (rc == 0 && !(*names = encode_names(res, 8)))
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
