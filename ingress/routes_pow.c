/*
 * routes_pow.c - bot friction by proof of work (docs/fairness.md "Bot
 * friction"): a fan asks for a challenge (GET /v1/events/{id}/challenge),
 * solves it, and joins with it (the join calls ing_pow_admit); the seller or
 * an admin changes the event's difficulty live (POST /v1/events/{id}/pow).
 *
 * The difficulty lives in PostgreSQL (events.pow_difficulty) and in the
 * event's Redis hash (ev:<id> pow_difficulty), which every ingress node
 * reads through its event cache: a change is live on this node at once and
 * on every other within event_cache.ttl_ms. The partition owner never reads
 * it, so unlike the admission caps the change does not travel through the
 * event's partition. The challenge logic itself is in pow.c.
 */
#include "common/err.h"
#include "common/log.h"
#include "ingress/event_cache.h"
#include "ingress/idem.h"
#include "ingress/json_io.h"
#include "ingress/pow.h"
#include "ingress/api_error.h"
#include "ingress/event_store.h"
#include "ingress/routes.h"
#include "queue/states.h"

#include <inttypes.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- GET /v1/events/{id}/challenge ------------------------------------------------------- */

static void challenge_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    int64_t event_id = *(int64_t *)r->job;
    q_event_state ev;
    if (ing_event_state(r, w, event_id, &ev))
        return;
    if (ev.pow_difficulty <= 0) {
        /* No work asked: joins need no header. */
        ing_reply_json(r, 200,
                       json_pack("{s:I, s:i, s:n, s:n}", "event_id", (json_int_t)event_id,
                                 "difficulty", 0, "challenge", "expires_at"));
        return;
    }
    char challenge[ING_POW_CHALLENGE_MAX], at[32];
    int64_t ttl_ms = r->app->o.pow_challenge_ttl_s * 1000;
    int64_t expires = ing_now_ms() + ttl_ms;
    if (ing_pow_challenge(r->app->o.ids_secret, event_id, r->who.user_id, ev.pow_difficulty,
                          expires, challenge, sizeof challenge)) {
        ing_failf(r, w, ING_E_INTERNAL, NULL, "Could not make a challenge.");
        return;
    }
    ing_format_rfc3339(expires, at);
    ing_reply_json(r, 200,
                   json_pack("{s:I, s:i, s:s, s:s, s:I}", "event_id", (json_int_t)event_id,
                             "difficulty", ev.pow_difficulty, "challenge", challenge, "expires_at",
                             at, "expires_in_ms", (json_int_t)ttl_ms));
}

void ing_route_event_challenge(ing_req *r)
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
    ing_req_submit(r, challenge_job);
}

/* ---- the join's check ------------------------------------------------------------------------ */

/* Counts a check's outcome. Only joins of events that ask for work get
 * here, so the registry lookup (a mutex) is off the ordinary join path. */
static void count(ing_req *r, const char *result)
{
    char labels[32];
    snprintf(labels, sizeof labels, "result=\"%s\"", result);
    ons_counter *c = ons_metrics_counter(
        r->app->metrics, "onsale_ingress_pow_checks_total",
        "Joins of events asking for a proof of work, by the check's result.", labels);
    if (c)
        ons_counter_add(c, 1);
}

void ing_pow_header(ing_req *r, char *out, size_t cap)
{
    const char *v = ing_req_header(r, ING_POW_HEADER); /* nng's request or the gate's view */
    out[0] = '\0';
    if (!v)
        return;
    if (strlen(v) >= cap)
        v = "!"; /* too long: kept as present but malformed */
    snprintf(out, cap, "%s", v);
}

int ing_pow_admit(ing_req *r, ing_worker *w, int64_t event_id, const q_event_state *ev,
                  const char *header)
{
    if (ev->pow_difficulty <= 0)
        return 0;
    if (!header[0]) {
        count(r, "required");
        ing_failf(r, w, ING_E_POW_REQUIRED, NULL,
                  "This event asks for a proof of work: get a challenge from "
                  "GET /v1/events/%" PRId64 "/challenge, solve it and send header '%s'.",
                  event_id, ING_POW_HEADER);
        return -1;
    }
    ing_pow_proof proof;
    int64_t now = ing_now_ms();
    ing_pow_verdict v = ing_pow_verify(r->app->o.ids_secret, header, event_id, r->who.user_id,
                                       ev->pow_difficulty, now, &proof);
    if (v != ING_POW_OK) {
        count(r, "invalid");
        ing_failf(r, w, ING_E_POW_INVALID, NULL, "%s", ing_pow_verdict_message(v));
        return -1;
    }
    /* Single use on every node. The mark outlives the challenge by one more
     * ttl, so a node whose clock runs that much behind still finds it. */
    int rc = q_status_pow_spend(w->st, proof.tag,
                                proof.expires_ms - now + r->app->o.pow_challenge_ttl_s * 1000);
    if (rc == ONS_EEXIST) {
        count(r, "used");
        ing_fail(r, w, ING_E_POW_USED, NULL);
        return -1;
    }
    if (rc) {
        ing_failf(r, w, ING_E_UNAVAILABLE, NULL, "The queue store is unavailable.");
        return -1;
    }
    count(r, "ok");
    return 0;
}

/* ---- POST /v1/events/{id}/pow ---------------------------------------------------------------- */

typedef struct pow_job {
    int64_t event_id, difficulty;
} pow_job;

/* Checks the caller owns the event (or is an admin) and it is not over,
 * stores the difficulty in PostgreSQL, then in Redis for the other nodes. */
static void pow_job_run(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    pow_job *j = r->job;
    ing_event_owner ev;
    /* The stored status as is (-1): a show past its grace may still change it. */
    if (ing_event_owned(r, w, j->event_id, -1, 0, &ev))
        return;
    if (q_event_status_closed(q_event_status_parse(ev.status))) {
        ing_failf(r, w, ING_E_INVALID_TRANSITION, NULL,
                  "This event is %s; its proof of work can no longer change.", ev.status);
        return;
    }
    if (ing_event_set_pow(w, r->rid, j->event_id, j->difficulty)) {
        ing_failf(r, w, ING_E_UNAVAILABLE, NULL, "The database is unavailable; retry shortly.");
        return;
    }
    /* PostgreSQL holds it; the other nodes read it from Redis. Should that
     * fail, a retry of the same request sets the same value. */
    if (q_status_event_set_pow(w->st, j->event_id, (int)j->difficulty)) {
        ing_failf(r, w, ING_E_UNAVAILABLE, NULL,
                  "The difficulty was stored but not yet given to every node; retry the "
                  "request.");
        return;
    }
    ing_events_forget(r->app->events, j->event_id);
    ons_logk(ONS_LOG_INFO, "request_id", r->rid, "event %" PRId64 ": pow_difficulty = %" PRId64,
             j->event_id, j->difficulty);
    ing_reply_json(r, 200,
                   json_pack("{s:I, s:I}", "event_id", (json_int_t)j->event_id, "pow_difficulty",
                             (json_int_t)j->difficulty));
}

void ing_route_event_pow(ing_req *r)
{
    static const char *const allowed[] = {"difficulty", NULL};
    int64_t id;
    if (ing_path_id(r, r->params[0], &id) || ing_json_only(r, r->body, allowed))
        return;
    pow_job *j = calloc(1, sizeof *j);
    if (!j) {
        ing_fail(r, NULL, ING_E_OVERLOADED, NULL);
        return;
    }
    r->job = j;
    r->job_free = free;
    j->event_id = id;
    if (ing_json_int(r, r->body, "difficulty", 1, 0, ING_POW_MAX_DIFFICULTY, &j->difficulty))
        return;
    ing_req_submit(r, pow_job_run);
}
