/*
 * routes_draw.c - GET /v1/events/{id}/draw: the pre-queue's draw, for
 * anyone to check (docs/fairness.md).
 *
 * {"commitment": hex SHA-256(seed), "seed": hex seed or null before
 * onsale_at, "entries": [intent_id, ...]} with the entries (every intent
 * whose join was sent in the pre-queue window, except duplicates the owner
 * refused) in draw order: ascending hex HMAC-SHA256(seed, intent_id). The
 * owner draws by the same rule (workers/partition.c make_draw); before
 * onsale_at the seed and the entries are withheld.
 */
#include "common/err.h"
#include "ingress/json_io.h"
#include "ingress/routes.h"
#include "queue/draw.h"
#include "queue/intent_id.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct draw_entry {
    char key[Q_DRAW_HEX_LEN + 1];
    char id[Q_ID_LEN + 1];
} draw_entry;

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const draw_entry *)a)->key, ((const draw_entry *)b)->key);
}

/* The entries in draw order as a JSON array (NULL: out of memory or a bad
 * row). Takes the rows of (intent_seq, user_id). */
static json_t *entries_json(ing_app *app, const uint8_t *seed, PGresult *rows)
{
    int n = PQntuples(rows);
    draw_entry *e = n ? malloc((size_t)n * sizeof *e) : NULL;
    json_t *a = json_array();
    if ((n && !e) || !a)
        goto fail;
    for (int i = 0; i < n; i++) {
        int64_t seq = strtoll(PQgetvalue(rows, i, 0), NULL, 10);
        int64_t user = strtoll(PQgetvalue(rows, i, 1), NULL, 10);
        if (q_id_encode(app->o.ids_secret, Q_ID_INTENT, seq, user, e[i].id) ||
            q_draw_key(seed, e[i].id, e[i].key))
            goto fail;
    }
    if (n)
        qsort(e, (size_t)n, sizeof *e, entry_cmp);
    for (int i = 0; i < n; i++)
        if (json_array_append_new(a, json_string(e[i].id)))
            goto fail;
    free(e);
    return a;
fail:
    free(e);
    json_decref(a);
    return NULL;
}

static void draw_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    int64_t event_id = *(int64_t *)r->job;
    char ev[24];
    snprintf(ev, sizeof ev, "%" PRId64, event_id);
    const char *p[] = {ev};
    PGresult *rows = NULL;
    PGresult *res = ing_worker_query(
        w,
        "SELECT coalesce(draw_commitment, ''), coalesce(encode(draw_seed, 'hex'), ''), "
        "now() >= onsale_at, prequeue_opens_at IS NOT NULL FROM events WHERE event_id = $1",
        1, p);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        goto unavailable;
    if (PQntuples(res) == 0) {
        PQclear(res);
        ing_fail(r, w, ING_E_EVENT_NOT_FOUND, NULL);
        return;
    }
    const char *commitment = PQgetvalue(res, 0, 0);
    int open = PQgetvalue(res, 0, 2)[0] == 't', prequeue = PQgetvalue(res, 0, 3)[0] == 't';
    uint8_t seed[Q_DRAW_SEED_LEN];
    int have_seed = q_draw_seed_parse(PQgetvalue(res, 0, 1), seed) == 0;
    json_t *entries = json_array();
    if (open && have_seed && prequeue) {
        rows = ing_worker_query(w,
                                "SELECT i.intent_seq, i.user_id FROM intents i "
                                "JOIN events e USING (event_id) WHERE i.event_id = $1 "
                                "AND i.accepted_at >= e.prequeue_opens_at "
                                "AND i.accepted_at < e.onsale_at "
                                "AND NOT (i.state = 'rejected' AND i.reason = 'duplicate')",
                                1, p);
        if (!rows || PQresultStatus(rows) != PGRES_TUPLES_OK) {
            json_decref(entries);
            goto unavailable;
        }
        json_decref(entries);
        entries = entries_json(r->app, seed, rows);
        if (!entries)
            goto unavailable;
    }
    json_t *body = json_pack("{s:I, s:o, s:o, s:o}", "event_id", (json_int_t)event_id, "commitment",
                             commitment[0] ? json_string(commitment) : json_null(), "seed",
                             open && have_seed ? json_string(PQgetvalue(res, 0, 1)) : json_null(),
                             "entries", entries ? entries : json_array());
    PQclear(res);
    PQclear(rows);
    ing_reply_json(r, 200, body);
    return;
unavailable:
    PQclear(res);
    PQclear(rows);
    ing_fail(r, w, ING_E_UNAVAILABLE, NULL);
}

void ing_route_event_draw(ing_req *r)
{
    int64_t id;
    if (ing_path_id(r, r->params[0], &id))
        return;
    int64_t *job = malloc(sizeof *job);
    if (!job) {
        ing_fail(r, NULL, ING_E_OVERLOADED, NULL);
        return;
    }
    *job = id;
    r->job = job;
    r->job_free = free;
    ing_req_submit(r, draw_job);
}
