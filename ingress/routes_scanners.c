/*
 * routes_scanners.c - who may scan where (docs/tickets.md "Who may scan
 * where"): the owner of a venue (or an admin) assigns scanner accounts to
 * it, or to one event there, and POST /v1/scans admits only tickets of
 * events at a venue the scanner is assigned to, or of an event it is.
 *   PUT    /v1/venues/{id}/scanners/{user_id}  assign (idempotent)   200
 *   DELETE /v1/venues/{id}/scanners/{user_id}  unassign (idempotent) 204
 *   GET    /v1/venues/{id}/scanners            the venue's scanners  200
 *   and the same three under /v1/events/{id}/scanners (the event's own).
 * Only an account holding the scanner role can be assigned; a venue holds
 * at most tickets.scanners_per_venue of them and an event
 * tickets.scanners_per_event, and the lists answer all their assignments
 * (up to ING_VENUE_SCANNERS_MAX, the options' upper bound), so a cap
 * lowered later hides none.
 */
#include "common/auth.h"
#include "common/err.h"
#include "common/log.h"
#include "ingress/json_io.h"
#include "ingress/routes.h"
#include "ingress/scanner_store.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct scanner_job {
    ing_scanner_scope who;
    int64_t scanner_id; /* 0 on the list */
} scanner_job;

/* The most scanners the job's venue or event may have. */
static int64_t scanners_max(const ing_req *r, const scanner_job *j)
{
    return j->who.event_id > 0 ? r->app->o.tickets_scanners_per_event
                               : r->app->o.tickets_scanners_per_venue;
}

/* Answers a store failure rc. */
static void scanner_failed(ing_req *r, ing_worker *w, int rc)
{
    const scanner_job *j = r->job;
    int ev = j->who.event_id > 0;
    const char *what = ev ? "event" : "venue";
    switch (rc) {
    case ONS_ENOTFOUND:
        ing_fail(r, w, ev ? ING_E_EVENT_NOT_FOUND : ING_E_VENUE_NOT_FOUND, NULL);
        return;
    case ONS_EAUTH:
        ing_failf(r, w, ING_E_FORBIDDEN, NULL, "This %s belongs to another seller.", what);
        return;
    case ONS_EINVAL:
        ing_fail(r, w, ING_E_NOT_A_SCANNER, NULL);
        return;
    case ONS_EFULL:
        ing_failf(r, w, ING_E_INVALID_STATE, NULL,
                  "This %s has %" PRId64 " scanners, the most allowed "
                  "(tickets.scanners_per_%s); remove one first.",
                  what, scanners_max(r, j), what);
        return;
    case ONS_EDB:
        ing_failf(r, w, ING_E_INTERNAL, NULL, "The %s's scanners could not be read or written.",
                  what);
        return;
    default:
        ing_fail(r, w, ING_E_UNAVAILABLE, NULL);
    }
}

/* The key and id of the job's venue or event in its answers. */
static const char *scope_key(const scanner_job *j)
{
    return j->who.event_id > 0 ? "event_id" : "venue_id";
}

static int64_t scope_id(const scanner_job *j)
{
    return j->who.event_id > 0 ? j->who.event_id : j->who.venue_id;
}

/* An assignment: the scanner's id and when, nothing of its account (a
 * seller could otherwise walk ids through PUT to learn who they are). */
static json_t *scanner_json(const scanner_job *j, const ing_scanner_row *s)
{
    return json_pack("{s:I, s:I, s:s}", scope_key(j), (json_int_t)scope_id(j), "user_id",
                     (json_int_t)s->user_id, "assigned_at", s->assigned_at);
}

/* The job of a route: the venue or event (params[0]; an event when the
 * route's path is under /v1/events) and, when with_user, the scanner
 * (params[1]); NULL when r was answered (400 invalid_id). */
static scanner_job *new_job(ing_req *r, int with_user)
{
    int64_t id, user_id = 0;
    if (ing_path_id(r, r->params[0], &id) || (with_user && ing_path_id(r, r->params[1], &user_id)))
        return NULL;
    scanner_job *j = ing_req_job(r, sizeof *j, NULL);
    if (!j)
        return NULL;
    int event = strncmp(r->route->pattern, "/v1/events/", 11) == 0;
    j->who = (ing_scanner_scope){event ? 0 : id, event ? id : 0, r->who.user_id,
                                 r->who.role == ONS_ROLE_ADMIN};
    j->scanner_id = user_id;
    return j;
}

static void put_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    scanner_job *j = r->job;
    ing_scanner_row s = {0};
    int rc = ing_scanner_put(w, r->rid, &j->who, j->scanner_id, scanners_max(r, j), &s);
    /* Logged either way: a run of refusals is a seller walking user ids
     * for scanner accounts (docs/tickets.md). */
    ons_logk(ONS_LOG_INFO, "request_id", r->rid,
             "scanner %" PRId64 " %s %s %" PRId64 " by %" PRId64, j->scanner_id,
             rc ? "not assigned to" : "assigned to", scope_key(j), scope_id(j), j->who.user_id);
    if (rc) {
        scanner_failed(r, w, rc);
        return;
    }
    ing_reply_json(r, 200, scanner_json(j, &s));
}

void ing_route_scanner_put(ing_req *r)
{
    if (new_job(r, 1))
        ing_req_submit(r, put_job);
}

static void delete_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    scanner_job *j = r->job;
    int rc = ing_scanner_delete(w, r->rid, &j->who, j->scanner_id);
    if (rc) {
        scanner_failed(r, w, rc);
        return;
    }
    ons_logk(ONS_LOG_INFO, "request_id", r->rid,
             "scanner %" PRId64 " removed from %s %" PRId64 " by %" PRId64, j->scanner_id,
             scope_key(j), scope_id(j), j->who.user_id);
    ing_reply_json(r, 204, NULL);
}

void ing_route_scanner_delete(ing_req *r)
{
    if (new_job(r, 1))
        ing_req_submit(r, delete_job);
}

static void list_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    scanner_job *j = r->job;
    ing_scanner_row *rows = NULL;
    size_t n = 0;
    int rc = ing_scanners_list(w, r->rid, &j->who, &rows, &n);
    if (rc) {
        scanner_failed(r, w, rc);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; list && i < n; i++)
        json_array_append_new(list, scanner_json(j, &rows[i]));
    free(rows);
    json_t *body =
        list ? json_pack("{s:I, s:o}", scope_key(j), (json_int_t)scope_id(j), "scanners", list)
             : NULL;
    if (!body) {
        ing_fail(r, w, ING_E_OVERLOADED, NULL);
        return;
    }
    ing_reply_json(r, 200, body);
}

void ing_route_scanners_list(ing_req *r)
{
    if (new_job(r, 0))
        ing_req_submit(r, list_job);
}
