/*
 * routes_scanners.c - who may scan where (docs/tickets.md "Who may scan
 * where"): the owner of a venue (or an admin) assigns scanner accounts to
 * it, and POST /v1/scans admits only tickets of events at a venue the
 * scanner is assigned to.
 *   PUT    /v1/venues/{id}/scanners/{user_id}  assign (idempotent)   200
 *   DELETE /v1/venues/{id}/scanners/{user_id}  unassign (idempotent) 204
 *   GET    /v1/venues/{id}/scanners            the venue's scanners  200
 * Only an account holding the scanner role can be assigned; a venue holds
 * at most tickets.scanners_per_venue of them, and the list answers all its
 * assignments (up to ING_VENUE_SCANNERS_MAX, the option's upper bound), so
 * a cap lowered later hides none.
 */
#include "common/auth.h"
#include "common/err.h"
#include "common/log.h"
#include "ingress/json_io.h"
#include "ingress/routes.h"
#include "ingress/scanner_store.h"

#include <inttypes.h>
#include <stdlib.h>

typedef struct scanner_job {
    ing_venue_actor who;
    int64_t scanner_id; /* 0 on the list */
} scanner_job;

/* Answers a store failure rc. */
static void scanner_failed(ing_req *r, ing_worker *w, int rc)
{
    switch (rc) {
    case ONS_ENOTFOUND:
        ing_fail(r, w, ING_E_VENUE_NOT_FOUND, NULL);
        return;
    case ONS_EAUTH:
        ing_failf(r, w, ING_E_FORBIDDEN, NULL, "This venue belongs to another seller.");
        return;
    case ONS_EINVAL:
        ing_fail(r, w, ING_E_NOT_A_SCANNER, NULL);
        return;
    case ONS_EFULL:
        ing_failf(r, w, ING_E_INVALID_STATE, NULL,
                  "This venue has %" PRId64 " scanners, the most allowed "
                  "(tickets.scanners_per_venue); remove one first.",
                  (int64_t)r->app->o.tickets_scanners_per_venue);
        return;
    case ONS_EDB:
        ing_failf(r, w, ING_E_INTERNAL, NULL, "The venue's scanners could not be read or written.");
        return;
    default:
        ing_fail(r, w, ING_E_UNAVAILABLE, NULL);
    }
}

/* An assignment: the scanner's id and when, nothing of its account (a
 * seller could otherwise walk ids through PUT to learn who they are). */
static json_t *scanner_json(int64_t venue_id, const ing_venue_scanner *s)
{
    return json_pack("{s:I, s:I, s:s}", "venue_id", (json_int_t)venue_id, "user_id",
                     (json_int_t)s->user_id, "assigned_at", s->assigned_at);
}

/* The job of a route: the venue (params[0]) and, when with_user, the
 * scanner (params[1]); NULL when r was answered (400 invalid_id). */
static scanner_job *new_job(ing_req *r, int with_user)
{
    int64_t venue_id, user_id = 0;
    if (ing_path_id(r, r->params[0], &venue_id) ||
        (with_user && ing_path_id(r, r->params[1], &user_id)))
        return NULL;
    scanner_job *j = ing_req_job(r, sizeof *j, NULL);
    if (!j)
        return NULL;
    j->who = (ing_venue_actor){venue_id, r->who.user_id, r->who.role == ONS_ROLE_ADMIN};
    j->scanner_id = user_id;
    return j;
}

static void put_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    scanner_job *j = r->job;
    ing_venue_scanner s = {0};
    int rc = ing_venue_scanner_put(w, r->rid, &j->who, j->scanner_id,
                                   r->app->o.tickets_scanners_per_venue, &s);
    /* Logged either way: a run of refusals is a seller walking user ids
     * for scanner accounts (docs/tickets.md). */
    ons_logk(ONS_LOG_INFO, "request_id", r->rid,
             "scanner %" PRId64 " %s venue %" PRId64 " by %" PRId64, j->scanner_id,
             rc ? "not assigned to" : "assigned to", j->who.venue_id, j->who.user_id);
    if (rc) {
        scanner_failed(r, w, rc);
        return;
    }
    ing_reply_json(r, 200, scanner_json(j->who.venue_id, &s));
}

void ing_route_venue_scanner_put(ing_req *r)
{
    if (new_job(r, 1))
        ing_req_submit(r, put_job);
}

static void delete_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    scanner_job *j = r->job;
    int rc = ing_venue_scanner_delete(w, r->rid, &j->who, j->scanner_id);
    if (rc) {
        scanner_failed(r, w, rc);
        return;
    }
    ons_logk(ONS_LOG_INFO, "request_id", r->rid,
             "scanner %" PRId64 " removed from venue %" PRId64 " by %" PRId64, j->scanner_id,
             j->who.venue_id, j->who.user_id);
    ing_reply_json(r, 204, NULL);
}

void ing_route_venue_scanner_delete(ing_req *r)
{
    if (new_job(r, 1))
        ing_req_submit(r, delete_job);
}

static void list_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    scanner_job *j = r->job;
    ing_venue_scanner *rows = NULL;
    size_t n = 0;
    int rc = ing_venue_scanners_list(w, r->rid, &j->who, &rows, &n);
    if (rc) {
        scanner_failed(r, w, rc);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; list && i < n; i++)
        json_array_append_new(list, scanner_json(j->who.venue_id, &rows[i]));
    free(rows);
    json_t *body =
        list ? json_pack("{s:I, s:o}", "venue_id", (json_int_t)j->who.venue_id, "scanners", list)
             : NULL;
    if (!body) {
        ing_fail(r, w, ING_E_OVERLOADED, NULL);
        return;
    }
    ing_reply_json(r, 200, body);
}

void ing_route_venue_scanners_list(ing_req *r)
{
    if (new_job(r, 0))
        ing_req_submit(r, list_job);
}
