/*
 * routes_draw.c - GET /v1/events/{id}/draw: the pre-queue's draw, for
 * anyone to check (docs/fairness.md).
 *
 * {"commitment": hex SHA-256(seed), "seed": hex seed or null before
 * onsale_at, "entries": [intent_id, ...]} with the entries (every intent
 * whose join was sent in the pre-queue window, except duplicates the owner
 * refused) in draw order: ascending hex HMAC-SHA256(seed, intent_id), by
 * q_draw_order, the function the owner draws with (workers/partition.c
 * make_draw); before onsale_at the seed and the entries are withheld.
 */
#include "common/err.h"
#include "ingress/event_store.h"
#include "ingress/json_io.h"
#include "ingress/routes.h"
#include "queue/draw.h"
#include "queue/intent_id.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The entrants in draw order as a JSON array of intent ids (NULL: out of
 * memory or an id that cannot be made). */
static json_t *entries_json(ing_app *app, const uint8_t *seed, const q_draw_entrant *in, size_t n)
{
    q_draw_entry *e = n ? malloc(n * sizeof *e) : NULL;
    json_t *a = json_array();
    if ((n && !e) || !a || q_draw_order(seed, app->o.ids_secret, in, n, e))
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(a, json_string(e[i].id)))
            goto fail;
    free(e);
    return a;
fail:
    free(e);
    json_decref(a);
    return NULL;
}

/* The entries of an open draw with a seed; NULL when unavailable. */
static json_t *draw_entries(ing_req *r, ing_worker *w, int64_t event_id, const uint8_t *seed)
{
    q_draw_entrant *in = NULL;
    size_t n = 0;
    if (ing_event_draw_entrants(w, event_id, &in, &n))
        return NULL;
    json_t *a = entries_json(r->app, seed, in, n);
    free(in);
    return a;
}

static void draw_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    int64_t event_id = *(int64_t *)r->job;
    ing_event_draw d;
    int rc = ing_event_draw_get(w, event_id, &d);
    if (rc == ONS_ENOTFOUND) {
        ing_fail(r, w, ING_E_EVENT_NOT_FOUND, NULL);
        return;
    }
    uint8_t seed[Q_DRAW_SEED_LEN];
    int have_seed = rc == 0 && q_draw_seed_parse(d.pub.seed_hex, seed) == 0;
    json_t *entries = rc                                  ? NULL
                      : d.open && have_seed && d.prequeue ? draw_entries(r, w, event_id, seed)
                                                          : json_array();
    if (!entries) {
        ing_fail(r, w, ING_E_UNAVAILABLE, NULL);
        return;
    }
    ing_reply_json(r, 200,
                   json_pack("{s:I, s:o, s:o, s:o}", "event_id", (json_int_t)event_id, "commitment",
                             d.pub.commitment[0] ? json_string(d.pub.commitment) : json_null(),
                             "seed",
                             d.open && have_seed ? json_string(d.pub.seed_hex) : json_null(),
                             "entries", entries));
}

void ing_route_event_draw(ing_req *r)
{
    int64_t id;
    if (ing_path_id(r, r->params[0], &id))
        return;
    int64_t *job = ing_req_job(r, sizeof *job, NULL);
    if (!job)
        return;
    *job = id;
    ing_req_submit(r, draw_job);
}
