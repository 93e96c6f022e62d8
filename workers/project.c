/* project.c - result documents and the post-COMMIT Redis pipeline; see project.h. */
#include "workers/project.h"
#include "common/err.h"
#include "queue/intent_id.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct wk_project {
    q_status *st;
    char *secret;
    q_status_result *res;
    size_t cap_res;
    q_status_event *evs;
    size_t cap_evs;
};

int wk_project_new(const q_status_opts *o, const char *secret, wk_project **out)
{
    wk_project *pj = calloc(1, sizeof *pj);
    if (!pj)
        return ONS_ENOMEM;
    pj->secret = strdup(secret);
    if (!pj->secret || q_status_new(o, &pj->st) != 0) {
        free(pj->secret);
        free(pj);
        return ONS_ENOMEM;
    }
    *out = pj;
    return 0;
}

void wk_project_free(wk_project *pj)
{
    if (!pj)
        return;
    q_status_free(pj->st);
    free(pj->secret);
    free(pj->res);
    free(pj->evs);
    free(pj);
}

int wk_result_ended(const wk_fx_intent *r)
{
    switch (r->state) {
    case WK_I_REJECTED:
        return r->reason != WK_R_DUPLICATE;
    case WK_I_EXPIRED:
    case WK_I_RELEASED:
    case WK_I_PURCHASED:
        return 1;
    default:
        return 0;
    }
}

static void rfc3339(int64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *reservation_json(const wk_fx_intent *r, const char *secret)
{
    char id[Q_ID_LEN + 1], exp[32];
    if (q_id_encode(secret, Q_ID_RESERVATION, r->seq, r->user_id, id) != 0)
        return NULL;
    rfc3339(r->expires_ms, exp);
    json_t *seats = json_array();
    const wk_inv *inv = &r->ev->inv;
    for (int i = 0; seats && i < r->nseats; i++) {
        uint32_t s = r->seats[i];
        const wk_row *row = &inv->rows[inv->row_of[s]];
        json_array_append_new(seats, json_pack("{s:s, s:i, s:i, s:I}", "section",
                                               inv->sections[row->section].name, "row",
                                               (int)row->row_no, "seat", (int)inv->seat_in_row[s],
                                               "price_cents", (json_int_t)inv->price[s]));
    }
    if (!seats)
        return NULL;
    return json_pack("{s:s, s:o, s:I, s:s, s:s}", "reservation_id", id, "seats", seats,
                     "total_cents", (json_int_t)r->total_cents, "currency", r->ev->currency,
                     "expires_at", exp);
}

int wk_result_json(const wk_fx_intent *r, const char *secret, char **out)
{
    const char *reason = wk_reason_name(r->reason);
    json_t *res = NULL;
    if (r->state == WK_I_RESERVED || r->state == WK_I_PAYING || r->state == WK_I_PURCHASED) {
        res = reservation_json(r, secret);
        if (!res)
            return ONS_ENOMEM;
    }
    json_t *doc =
        json_pack("{s:s, s:I, s:o, s:o}", "state", wk_istate_name(r->state), "event_id",
                  (json_int_t)r->event_id, "reason", reason ? json_string(reason) : json_null(),
                  "reservation", res ? res : json_null());
    if (!doc)
        return ONS_ENOMEM;
    *out = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return *out ? 0 : ONS_ENOMEM;
}

int wk_project_batch(wk_project *pj, const wk_part *p, double rate)
{
    const wk_fx *fx = &p->fx;
    if (fx->nintents > pj->cap_res) {
        q_status_result *n = realloc(pj->res, fx->nintents * sizeof *n);
        if (!n)
            return ONS_ENOMEM;
        pj->res = n;
        pj->cap_res = fx->nintents;
    }
    if (fx->nevents > pj->cap_evs) {
        q_status_event *n = realloc(pj->evs, fx->nevents * sizeof *n);
        if (!n)
            return ONS_ENOMEM;
        pj->evs = n;
        pj->cap_evs = fx->nevents;
    }
    size_t nres = 0;
    int rc = 0;
    for (size_t i = 0; i < fx->nintents && rc == 0; i++) {
        const wk_fx_intent *r = &fx->intents[i];
        char *json = NULL;
        if ((rc = wk_result_json(r, pj->secret, &json)) != 0)
            break;
        q_status_result *o = &pj->res[nres++];
        o->intent_seq = r->seq;
        o->event_id = r->event_id;
        o->user_id = r->user_id;
        o->json = json;
        o->ended = wk_result_ended(r);
    }
    for (size_t i = 0; i < fx->nevents; i++) {
        const wk_event *ev = fx->events[i];
        q_status_event *e = &pj->evs[i];
        e->event_id = ev->event_id;
        e->available = ev->inv.available;
        e->held = ev->inv.held;
        e->sold = ev->inv.sold;
        e->waiting = ev->nwaiting;
        e->sold_out = ev->inv.available == 0 && ev->inv.held == 0;
    }
    if (rc == 0)
        rc = q_status_publish(pj->st, p->partition, p->next_offset, rate, pj->res, nres, pj->evs,
                              fx->nevents);
    for (size_t i = 0; i < nres; i++)
        free((char *)pj->res[i].json);
    return rc;
}

int wk_project_cursor(wk_project *pj, int32_t partition, int64_t served, double rate)
{
    return q_status_publish(pj->st, partition, served, rate, NULL, 0, NULL, 0);
}
