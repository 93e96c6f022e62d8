/*
 * routes_tickets.c - tickets at the gate (docs/tickets.md):
 *   GET  /v1/tickets/{id}/code   (the ticket's owner) the rotating code, its
 *                                step, seconds left, scannable string, QR SVG
 *   POST /v1/scans               (scanner) admits a ticket once, of a venue
 *                                the scanner is assigned to (routes_scanners.c)
 *
 * The code is derived from tickets.secret, the ticket id and code_version
 * (ticket_code.h), so ingress stores nothing per code and the secret never
 * leaves the process. A scan checks the code first, then admits with one
 * guarded UPDATE (tickets_store.h): a replay, a second scanner, a code from
 * before a transfer (the owner bumped code_version), a stale step, a ticket
 * that is no longer valid and one whose transfer or cancel is in flight are
 * each refused with their own code.
 */
#include "common/err.h"
#include "common/log.h"
#include "common/metrics.h"
#include "ingress/json_io.h"
#include "ingress/order_store.h"
#include "ingress/produce.h"
#include "ingress/routes.h"
#include "ingress/ticket_code.h"
#include "ingress/tickets_store.h"
#include "queue/states.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct gate_job {
    int64_t ticket_id;
    int64_t step; /* the step the scanner read; -1: not given */
    char code[ING_TCODE_DIGITS + 1];
} gate_job;

static gate_job *new_job(ing_req *r)
{
    gate_job *j = ing_req_job(r, sizeof *j, NULL);
    if (j)
        j->step = -1;
    return j;
}

/* Counts a scan's outcome (onsale_ingress_scans_total{result}); scans are
 * rare next to joins, so the registry lookup per scan costs nothing. */
static void count_scan(ing_req *r, const char *result)
{
    char labels[48];
    snprintf(labels, sizeof labels, "result=\"%s\"", result);
    ons_counter *c = ons_metrics_counter(r->app->metrics, "onsale_ingress_scans_total",
                                         "Ticket scans at the gate by outcome", labels);
    if (c)
        ons_counter_add(c, 1);
}

static void unavailable(ing_req *r)
{
    ing_failf(r, NULL, ING_E_UNAVAILABLE, NULL, "Tickets are unavailable; retry shortly.");
}

/* A transfer or cancel of the ticket was claimed and is on its way to the
 * partition owner: no code is shown and no scan admits until it is applied
 * (or ignored), or the claim is older than tickets.change_claim_timeout_s. */
static void change_pending(ing_req *r)
{
    if (r->route->handler == ing_route_scan)
        count_scan(r, "ticket_change_pending");
    ing_fail(r, NULL, ING_E_TICKET_CHANGE_PENDING, NULL);
}

int ing_ticket_claim_blocks(ing_req *r, ing_worker *w, int64_t event_id, int young, int64_t age_ms)
{
    if (young)
        return 1;
    if (age_ms < 0)
        return 0;
    /* The claim on this node's clock (its age, not PostgreSQL's time: a
     * clock behind would make it look older), and its record sent at most
     * kafka.produce_timeout_ms after it (the claim's commit and hand-off;
     * the time was taken once the row was locked), as pending_settled
     * counts a join's. */
    int64_t sent_by = ing_now_ms() - age_ms + r->app->o.kafka_produce_timeout_ms;
    int32_t p;
    if (ing_event_home(r->app, w, event_id, &p) != 0)
        return 1; /* cannot tell: the claim still blocks */
    return !ing_produce_settled(r->app, Q_TOPIC_CONTROL, p, sent_by, ing_control_lane_served, w);
}

/* Reads the ticket for the code route or a scan (ing_tickets_gate), with
 * change_pending set while a claimed change still blocks it
 * (ing_ticket_claim_blocks; not asked when the answer is refused whatever
 * it says: a scan by a scanner not assigned to the venue, 403, or the code
 * of someone else's ticket, 404) and, on a scan, scanner_assigned for the
 * caller. */
static int gate_read(ing_req *r, ing_worker *w, int64_t ticket_id, ing_ticket_gate *g)
{
    int64_t scanner = r->route->handler == ing_route_scan ? r->who.user_id : 0;
    int rc = ing_tickets_gate(w, ticket_id, r->app->o.tickets_change_claim_timeout_s, scanner, g);
    /* Refused on the read alone: settling an old claim for these too (a
     * PostgreSQL read of the control lane's progress) would make their
     * refusal slower for an existing ticket with an old claim than for a
     * missing one, telling the ticket. */
    if (rc == 0 && (scanner ? g->scanner_assigned : g->owner_id == r->who.user_id))
        g->change_pending =
            ing_ticket_claim_blocks(r, w, g->event_id, g->change_pending, g->change_claim_age_ms);
    return rc;
}

static void ticket_not_valid(ing_req *r, const ing_ticket_gate *g)
{
    if (r->route->handler == ing_route_scan)
        count_scan(r, "ticket_not_valid");
    ing_failf(r, NULL, ING_E_TICKET_NOT_VALID, NULL, "This ticket is %s: it does not admit anyone.",
              g->status);
}

/* ---- GET /v1/tickets/{id}/code ------------------------------------------------------- */

static void code_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    gate_job *j = r->job;
    ing_ticket_gate g;
    int rc = gate_read(r, w, j->ticket_id, &g);
    if (rc == ONS_EUNAVAIL) {
        unavailable(r);
        return;
    }
    /* Someone else's ticket is not revealed: 404 like a missing one. */
    if (rc == ONS_ENOTFOUND || g.owner_id != r->who.user_id) {
        ing_failf(r, w, ING_E_NOT_FOUND, NULL, "No such ticket.");
        return;
    }
    if (q_ticket_status_parse(g.status) != Q_TICKET_VALID) {
        ticket_not_valid(r, &g);
        return;
    }
    if (g.change_pending) {
        change_pending(r);
        return;
    }
    int64_t step_s = r->app->o.tickets_code_step_s;
    int64_t now_s = ing_now_ms() / 1000, step = now_s / step_s;
    char code[ING_TCODE_DIGITS + 1], scan[ING_TCODE_SCAN_MAX], valid_until[32];
    if (ing_tcode_at(r->app->o.tickets_secret, g.ticket_id, g.code_version, step, code)) {
        ing_failf(r, w, ING_E_INTERNAL, NULL, "The code could not be made.");
        return;
    }
    ing_tcode_scan_format(g.ticket_id, step, code, scan);
    char *svg = ing_qr_svg(scan);
    if (!svg) {
        ing_fail(r, w, ING_E_OVERLOADED, NULL);
        return;
    }
    ing_format_rfc3339((step + 1) * step_s * 1000, valid_until);
    json_t *body =
        json_pack("{s:I, s:I, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s}", "ticket_id",
                  (json_int_t)g.ticket_id, "event_id", (json_int_t)g.event_id, "event_name",
                  g.event_name, "code", code, "step", (json_int_t)step, "step_seconds",
                  (json_int_t)step_s, "seconds_left", (json_int_t)((step + 1) * step_s - now_s),
                  "valid_until", valid_until, "scan", scan, "qr_svg", svg);
    free(svg);
    if (body && g.admitted_at[0])
        json_object_set_new(body, "admitted_at", json_string(g.admitted_at));
    ing_reply_json(r, 200, body);
}

void ing_route_ticket_code(ing_req *r)
{
    int64_t id;
    if (ing_path_id(r, r->params[0], &id))
        return;
    gate_job *j = new_job(r);
    if (!j)
        return;
    j->ticket_id = id;
    ing_req_submit(r, code_job);
}

/* ---- POST /v1/scans ------------------------------------------------------------------ */

/* A scan of a ticket that is not of a venue the scanner is assigned to, or
 * of no ticket at all: one answer for both, before the code is checked, so
 * a foreign scanner learns nothing of the ticket (whether it exists, is
 * valid, was admitted) and changes nothing. */
static void not_assigned(ing_req *r, ing_worker *w)
{
    count_scan(r, "scanner_not_assigned");
    ing_fail(r, w, ING_E_SCANNER_NOT_ASSIGNED, NULL);
}

/* Answers a scan whose code matched the ticket's current version within the
 * grace steps, from the ticket's state as read (admission was refused, or
 * not yet tried). Returns 1 when it replied. */
static int refuse_state(ing_req *r, const ing_ticket_gate *g, int64_t version)
{
    if (!g->scanner_assigned) { /* unassigned since the first read */
        not_assigned(r, NULL);
        return 1;
    }
    if (q_ticket_status_parse(g->status) != Q_TICKET_VALID) {
        ticket_not_valid(r, g);
        return 1;
    }
    if (g->code_version != version) {
        count_scan(r, "ticket_transferred");
        ing_fail(r, NULL, ING_E_TICKET_TRANSFERRED, NULL);
        return 1;
    }
    if (g->admitted_at[0]) {
        count_scan(r, "already_admitted");
        ing_failf(r, NULL, ING_E_ALREADY_ADMITTED, NULL, "This ticket was already admitted at %s.",
                  g->admitted_at);
        return 1;
    }
    if (g->change_pending) {
        change_pending(r);
        return 1;
    }
    return 0;
}

/* Checks the code the scanner read against g's current code window:
 * 0 when it is the current one, else -1 with r finished (400 code_invalid,
 * 409 ticket_transferred for a code of an earlier version, or
 * ticket_not_valid when the ticket is no longer valid: a cancel rotates the
 * code too, and its codes are genuine, so they may learn the state; 400
 * code_expired). */
static int refuse_code(ing_req *r, ing_worker *w, const ing_ticket_gate *g, const gate_job *j)
{
    const ing_opts *o = &r->app->o;
    ing_tcode_window win = {ing_now_ms() / 1000 / o->tickets_code_step_s, j->step,
                            (int)o->tickets_code_grace_steps, (int)o->tickets_code_versions_back};
    switch (ing_tcode_check(o->tickets_secret, g->ticket_id, g->code_version, &win, j->code)) {
    case ING_TCODE_NONE:
        count_scan(r, "code_invalid");
        ing_fail(r, w, ING_E_CODE_INVALID, "code");
        return -1;
    case ING_TCODE_OLD_VERSION:
        if (q_ticket_status_parse(g->status) != Q_TICKET_VALID) {
            ticket_not_valid(r, g);
            return -1;
        }
        count_scan(r, "ticket_transferred");
        ing_fail(r, w, ING_E_TICKET_TRANSFERRED, NULL);
        return -1;
    case ING_TCODE_STALE:
        count_scan(r, "code_expired");
        ing_fail(r, w, ING_E_CODE_EXPIRED, "step");
        return -1;
    case ING_TCODE_CURRENT:
        break;
    }
    return 0;
}

static void scan_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    gate_job *j = r->job;
    const ing_opts *o = &r->app->o;
    ing_ticket_gate g;
    int rc = gate_read(r, w, j->ticket_id, &g);
    if (rc == ONS_EUNAVAIL) {
        unavailable(r);
        return;
    }
    if (rc == ONS_ENOTFOUND || !g.scanner_assigned) {
        not_assigned(r, w);
        return;
    }
    if (refuse_code(r, w, &g, j))
        return;
    int64_t version = g.code_version;
    if (refuse_state(r, &g, version))
        return;
    if (o->debug_scan_delay_ms > 0) {
        /* Test only: widens the window between reading and admitting. */
        struct timespec ts = {o->debug_scan_delay_ms / 1000,
                              o->debug_scan_delay_ms % 1000 * 1000000};
        nanosleep(&ts, NULL);
    }
    char at[32];
    rc = ing_tickets_admit(w, g.ticket_id, version, o->tickets_change_claim_timeout_s,
                           r->who.user_id, o->debug_scan_unchecked, at);
    if (rc == ONS_EUNAVAIL) {
        unavailable(r);
        return;
    }
    if (rc == ONS_ECONFLICT) {
        /* Someone changed the ticket since it was read: say what. */
        rc = gate_read(r, w, j->ticket_id, &g);
        if (rc == 0 && refuse_state(r, &g, version))
            return;
        unavailable(r);
        return;
    }
    count_scan(r, "admitted");
    ons_logk(ONS_LOG_INFO, "request_id", r->rid, "ticket %" PRId64 " admitted by scanner %" PRId64,
             g.ticket_id, r->who.user_id);
    ing_reply_json(r, 200,
                   json_pack("{s:I, s:I, s:s, s:s, s:s, s:s}", "ticket_id", (json_int_t)g.ticket_id,
                             "event_id", (json_int_t)g.event_id, "state", "admitted", "admitted_at",
                             at, "event_name", g.event_name, "seat", g.seat));
}

void ing_route_scan(ing_req *r)
{
    static const char *const allowed[] = {"scan", "ticket_id", "step", "code", NULL};
    const char *code = NULL, *scan = NULL;
    int64_t tid = 0, step = -1;
    if (ing_json_only(r, r->body, allowed) ||
        ing_json_str(r, r->body, "scan", 0, 1, ING_TCODE_SCAN_MAX - 1, &scan))
        return;
    gate_job *j = new_job(r);
    if (!j)
        return;
    if (scan) {
        if (json_object_get(r->body, "ticket_id") || json_object_get(r->body, "code") ||
            json_object_get(r->body, "step")) {
            ing_failf(r, NULL, ING_E_INVALID_FIELD, "scan",
                      "Send either 'scan' or 'ticket_id' and 'code', not both.");
            return;
        }
        if (ing_tcode_scan_parse(scan, &j->ticket_id, &j->step, j->code)) {
            ing_failf(r, NULL, ING_E_INVALID_FIELD, "scan",
                      "Field 'scan' must be a ticket's scannable string "
                      "(ONS1:<ticket_id>:<step>:<code>).");
            return;
        }
        ing_req_submit(r, scan_job);
        return;
    }
    /* Neither form: name the one a door sends (the QR's text), not the
     * other form's first field. */
    if (!json_object_get(r->body, "ticket_id")) {
        ing_failf(r, NULL, ING_E_MISSING_FIELD, "scan",
                  "Send 'scan' (the QR's text, ONS1:<ticket_id>:<step>:<code>), or "
                  "'ticket_id' and 'code'.");
        return;
    }
    if (ing_json_int(r, r->body, "ticket_id", 1, 1, INT64_MAX, &tid) ||
        ing_json_str(r, r->body, "code", 1, ING_TCODE_DIGITS, ING_TCODE_DIGITS, &code) ||
        ing_json_int(r, r->body, "step", 0, 0, INT64_MAX, &step))
        return;
    if (!ing_tcode_well_formed(code)) {
        ing_failf(r, NULL, ING_E_INVALID_FIELD, "code", "Field 'code' must be %d digits.",
                  ING_TCODE_DIGITS);
        return;
    }
    j->ticket_id = tid;
    j->step = step;
    memcpy(j->code, code, sizeof j->code);
    ing_req_submit(r, scan_job);
}
