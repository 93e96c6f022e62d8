/*
 * routes_admission.c - POST /v1/events/{id}/admission: the seller (or an
 * admin) changes the event's admission caps live (docs/fairness.md).
 *
 * Body {max_active_holds?, admissions_per_minute?}: each an integer 1 to
 * Q_MSG_MAX_ADMISSION, or null / absent for no cap. Like pause and resume
 * the change travels as a record (admission) through the event's partition,
 * so its owner applies it in order with the intents around it; the reply
 * (202) waits for the delivery report only.
 */
#include "common/err.h"
#include "ingress/event_cache.h"
#include "ingress/json_io.h"
#include "ingress/produce.h"
#include "ingress/routes.h"
#include "queue/msg.h"
#include "queue/states.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct admission_job {
    int64_t event_id;
    int64_t max_active_holds, admissions_per_minute; /* 0 = no cap */
} admission_job;

static void admission_delivered(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    admission_job *j = r->job;
    char url[48];
    if (ing_event_change_delivered(r, w, j->event_id, url))
        return;
    json_t *body =
        json_pack("{s:I, s:o, s:o, s:s}", "event_id", (json_int_t)j->event_id, "max_active_holds",
                  j->max_active_holds ? json_integer(j->max_active_holds) : json_null(),
                  "admissions_per_minute",
                  j->admissions_per_minute ? json_integer(j->admissions_per_minute) : json_null(),
                  "status_url", url);
    ing_reply_json(r, 202, body);
}

/* Checks the caller owns the event (or is an admin) and it is not over,
 * then sends the admission record. */
static void admission_job_run(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    admission_job *j = r->job;
    ing_event_owner ev;
    /* The stored status as is (-1): a show past its grace still takes caps. */
    if (ing_event_owned(r, w, j->event_id, -1, 0, &ev))
        return;
    if (q_event_status_closed(q_event_status_parse(ev.status))) {
        ing_failf(r, w, ING_E_INVALID_TRANSITION, NULL,
                  "This event is %s; its admission can no longer change.", ev.status);
        return;
    }
    q_msg m;
    memset(&m, 0, sizeof m);
    m.type = Q_MSG_ADMISSION;
    m.event_id = j->event_id;
    m.sent_ms = ing_now_ms();
    m.max_active_holds = j->max_active_holds;
    m.admissions_per_minute = j->admissions_per_minute;
    if (ing_produce(r, w, &m, admission_delivered)) {
        ing_failf(r, w, ING_E_QUEUE_UNAVAILABLE, NULL,
                  "The queue cannot take the change right now; nothing was queued.");
    }
}

/* An optional cap: absent or null = 0 (none), else 1..Q_MSG_MAX_ADMISSION.
 * Returns 0 or -1 (replied 400). */
int ing_json_cap(ing_req *r, json_t *body, const char *key, int64_t *out)
{
    *out = 0;
    json_t *v = json_object_get(body, key);
    if (!v || json_is_null(v))
        return 0;
    return ing_json_int(r, body, key, 1, 1, Q_MSG_MAX_ADMISSION, out);
}

void ing_route_event_admission(ing_req *r)
{
    static const char *const allowed[] = {"max_active_holds", "admissions_per_minute", NULL};
    int64_t id;
    admission_job *j = NULL;
    if (ing_path_id(r, r->params[0], &id) || ing_json_only(r, r->body, allowed) ||
        !(j = ing_req_job(r, sizeof *j, NULL)))
        return;
    j->event_id = id;
    if (ing_json_cap(r, r->body, "max_active_holds", &j->max_active_holds) ||
        ing_json_cap(r, r->body, "admissions_per_minute", &j->admissions_per_minute))
        return;
    ing_req_submit(r, admission_job_run);
}
