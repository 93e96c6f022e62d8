/*
 * routes_queue.c - the fan's side of the queue: join (POST
 * /v1/events/{id}/intents), status polls (GET /v1/intents/{id}), leaving the
 * line (DELETE /v1/intents/{id}) and giving back a hold (DELETE
 * /v1/reservations/{id}).
 *
 * A join runs: validate (nng thread) → sale state (cached) and the claim of
 * one active intent per user and event with its rate limit, on the claimer
 * thread (join.round_max > 0; else one at a time on a job thread) together with the claims of every
 * join queued meanwhile: one pipelined Redis round trip per round (ing_join_claim_round; a join
 * with an Idempotency-Key, a proof of work to spend or a key to take over runs one at a time on a
 * job thread) → produce (Kafka; a round's records reach librdkafka together) → on the delivery
 * report: public id from partition+offset, active key, idempotency record, 202 (the finisher
 * thread, batched likewise). A queued poll is answered on the nng thread from
 * the cursor cache alone; a served one reads the result from Redis, else
 * PostgreSQL.
 */
#include "ingress/routes.h"
#include "common/err.h"
#include "common/log.h"
#include "common/recycle.h"
#include "common/utc.h"
#include "ingress/cursor_cache.h"
#include "ingress/event_cache.h"
#include "ingress/idem.h"
#include "ingress/intent_store.h"
#include "ingress/json_io.h"
#include "ingress/log_reader.h"
#include "ingress/pow.h"
#include "ingress/produce.h"
#include "ingress/ratelimit.h"
#include "queue/intent_id.h"
#include "queue/msg.h"
#include "queue/states.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- position, eta, poll interval -------------------------------------------- */

typedef struct queue_numbers {
    int64_t position;
    int64_t eta_seconds; /* eta_ms rounded up: what a page shows */
    int64_t eta_ms;      /* the estimate itself */
    int64_t eta_at_ms;   /* when: now + eta_ms on this node's clock (shown as eta_at) */
    int64_t poll_after_ms;
} queue_numbers;

/* Poll when the fan is expected to be reached, not later (a fan told
 * "2 s" is not sent away for 9), and while the wait is long, spaced by
 * position (status.poll_ms_per_position) but at least a tenth of the ETA:
 * a long queue polls slowly, its head promptly. */
static int64_t queued_poll_after(ing_app *app, int64_t position, double eta_ms)
{
    int64_t poll = position * app->o.status_poll_ms_per_position;
    if ((double)poll > eta_ms)
        poll = (int64_t)eta_ms;
    if ((double)poll < eta_ms / 10)
        poll = (int64_t)(eta_ms / 10);
    if (poll < app->o.status_poll_min_ms)
        poll = app->o.status_poll_min_ms;
    if (poll > app->o.status_poll_max_ms)
        poll = app->o.status_poll_max_ms;
    return poll;
}

/* position = my offset − served cursor (docs/pipeline.md). An unknown
 * cursor counts as 0: the position can then only shrink once it is known. */
static queue_numbers numbers(ing_app *app, int32_t partition, int64_t offset,
                             const q_event_state *es)
{
    queue_numbers q;
    int64_t now = ing_now_ms();
    int64_t served = ing_cursors_served(app->cursors, partition);
    if (served < 0)
        served = 0;
    q.position = offset >= served ? offset - served : 0;
    double rate = ing_cursors_rate(app->cursors, partition);
    int measured = rate > 0;
    if (!measured)
        rate = (double)app->o.status_assumed_rate;
    /* An event's admission rate (docs/fairness.md) bounds how fast fans
     * ahead become holds: the ETA is the slower of the two, and polls are
     * spaced to match (a tenth of the ETA). From the cached event state
     * (es, NULL when not cached) only: no lookup on this path. */
    double admit =
        es && es->admissions_per_minute > 0 ? (double)es->admissions_per_minute / 60.0 : 0;
    double drained = -1;
    if (app->o.status_eta_owner_drain) {
        q_status_drain d = ing_cursors_drain(app->cursors, partition);
        drained = q_status_drain_wait_ms(&d, offset, now, app->o.status_eta_catch_up_ms);
    }
    double eta_ms;
    if (drained >= 0) {
        eta_ms = drained;
        if (admit > 0 && ceil((double)q.position * 1000.0 / admit) > eta_ms)
            eta_ms = ceil((double)q.position * 1000.0 / admit);
    } else {
        if (admit > 0 && admit < rate)
            rate = admit;
        eta_ms = ceil((double)q.position * 1000.0 / rate);
        /* The cursor was seen rising `ago` ms back, and the worker has
         * drained since at the measured rate: the ETA counts from now.
         * Only up to status.eta_catch_up_ms (a stalled worker is not
         * assumed to move). */
        int64_t ago = measured ? ing_cursors_moved_ago_ms(app->cursors, partition) : -1;
        if (ago > app->o.status_eta_catch_up_ms)
            ago = app->o.status_eta_catch_up_ms;
        if (ago > 0)
            eta_ms = eta_ms > (double)ago ? eta_ms - (double)ago : 0;
    }
    q.eta_ms = (int64_t)eta_ms;
    q.eta_at_ms = now + q.eta_ms;
    q.eta_seconds = (int64_t)ceil(eta_ms / 1000.0);
    q.poll_after_ms = queued_poll_after(app, q.position, eta_ms);
    return q;
}

/* How soon to poll again in a state past the queue. */
static int64_t poll_for_state(ing_app *app, const char *state)
{
    int64_t min = app->o.status_poll_min_ms, max = app->o.status_poll_max_ms;
    int64_t v = max;
    int s = q_intent_state_parse(state);
    if (s == Q_INTENT_WAITING)
        v = min * 4;
    else if (s == Q_INTENT_RESERVED || s == Q_INTENT_PAYING)
        v = min * 10;
    return v < min ? min : v > max ? max : v;
}

/* The body of a queued poll, formatted directly (the id is 32 validated hex
 * characters, everything else numbers): jansson's pack + dump was a fifth of
 * a poll's CPU. */
static void prequeued_body(ing_app *app, char *out, size_t cap, const char *intent_id,
                           int64_t event_id, int64_t draw_at_ms, int with_url);

/* Copies at most max bytes of s to w; returns the end. */
static char *put_text(char *w, const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    memcpy(w, s, n);
    return w + n;
}

/* Writes ms (Unix epoch) as RFC 3339 UTC with milliseconds, quoted
 * ("2026-11-29T07:01:02.345Z", 26 bytes), without printf or gmtime_r
 * (glibc's timezone lock): the queued poll's hot path. Returns the end. */
static char *put_time_ms(char *w, int64_t ms)
{
    char t[32];
    ons_format_utc(ms, 1, t);
    *w++ = '"';
    w = put_text(w, t, sizeof t);
    *w++ = '"';
    return w;
}

/* Writes v in decimal at w; returns the end. */
static char *put_int(char *w, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *w++ = '-';
    while (n)
        *w++ = tmp[--n];
    return w;
}

/* The queued answer for intent seq of event_id (0: unknown here), from the
 * event's cached state es (NULL: not cached). Memory only: this is the
 * poll's hot path (one seqmap and one event-cache lookup per poll, done by
 * the caller). */
/* Does this node watch partition (its cursors and the monitor's
 * watermarks: the first app->partitions)? An intent on a partition the
 * topics grew since it started has no position or ETA here: it is answered
 * queued without them (docs/scaling.md "Growing the topics"). */
static int watches(const ing_app *app, int32_t partition)
{
    return partition >= 0 && partition < app->partitions;
}

/* A queued intent's body without position or ETA (!watches), polled
 * again after status.poll_max_ms: this node learns the place only once
 * restarted, so polling faster shows nothing sooner but a state change,
 * and a grown event's whole crowd would poll at the fastest rate;
 * status_url only in a join's reply. */
static void unplaced_body(const ing_app *app, char *out, size_t cap, const char *intent_id,
                          int64_t event_id, int with_url)
{
    char url[64] = "", ev[40] = "";
    if (with_url)
        snprintf(url, sizeof url, ",\"status_url\":\"/v1/intents/%.32s\"", intent_id);
    if (event_id > 0)
        snprintf(ev, sizeof ev, ",\"event_id\":%" PRId64, event_id);
    snprintf(out, cap, "{\"intent_id\":\"%.32s\",\"state\":\"%s\",\"poll_after_ms\":%lld%s%s}",
             intent_id, q_intent_state_name(Q_INTENT_QUEUED), app->o.status_poll_max_ms, ev, url);
}

/* A queued intent's body once its event is sold out: rejected now. */
static void sold_out_body(const ing_app *app, char *out, size_t cap, const char *intent_id,
                          int64_t event_id)
{
    char ev[40] = "";
    if (event_id > 0)
        snprintf(ev, sizeof ev, ",\"event_id\":%" PRId64, event_id);
    snprintf(out, cap,
             "{\"intent_id\":\"%s\",\"state\":\"%s\",\"reason\":\"%s\",\"poll_after_ms\":%lld%s}",
             intent_id, q_intent_state_name(Q_INTENT_REJECTED), q_reason_name(Q_REASON_SOLD_OUT),
             app->o.status_poll_max_ms, ev);
}

static void reply_queued_known(ing_req *r, const char *intent_id, int64_t seq, int64_t event_id,
                               const q_event_state *es)
{
    ing_app *app = r->app;
    char body[384];
    /* Before onsale_at every join of a pre-queued event is in the draw. */
    if (es && es->prequeue_opens_at_ms > 0 && ing_now_ms() < es->onsale_at_ms) {
        prequeued_body(app, body, sizeof body, intent_id, event_id, es->onsale_at_ms, 0);
        ing_reply_raw(r, 200, body);
        return;
    }
    /* Truthful waiting (docs/fairness.md): once every seat is sold the
     * answer is sold_out now, not when the worker reaches this record; while
     * every unsold seat is held, the fan is told so. */
    int sold_out = es && es->sold_out;
    if (sold_out || !watches(app, q_seq_partition(seq))) {
        if (sold_out)
            sold_out_body(app, body, sizeof body, intent_id, event_id);
        else
            unplaced_body(app, body, sizeof body, intent_id, event_id, 0);
        ing_reply_raw(r, 200, body);
        return;
    }
    queue_numbers q = numbers(app, q_seq_partition(seq), q_seq_offset(seq), es);
    /* The common answer, built without printf (two snprintf calls were ~4%
     * of a queued poll's instructions): at most 14 + 32 + 31 + 5 * 20 + 8 +
     * 36 + 50 + 22 bytes, well within body. */
    char *w = body;
    w = put_text(w, "{\"intent_id\":\"", SIZE_MAX);
    w = put_text(w, intent_id, Q_ID_LEN);
    w = put_text(w, "\",\"state\":\"", SIZE_MAX);
    w = put_text(w, q_intent_state_name(Q_INTENT_QUEUED), SIZE_MAX);
    w = put_text(w, "\",\"position\":", SIZE_MAX);
    w = put_int(w, q.position);
    w = put_text(w, ",\"eta_seconds\":", SIZE_MAX);
    w = put_int(w, q.eta_seconds);
    w = put_text(w, ",\"eta_ms\":", SIZE_MAX);
    w = put_int(w, q.eta_ms);
    w = put_text(w, ",\"eta_at\":", SIZE_MAX);
    w = put_time_ms(w, q.eta_at_ms);
    w = put_text(w, ",\"poll_after_ms\":", SIZE_MAX);
    w = put_int(w, q.poll_after_ms);
    if (event_id > 0) {
        w = put_text(w, ",\"event_id\":", SIZE_MAX);
        w = put_int(w, event_id);
    }
    /* Every unsold seat is held: the fans already waiting for one (the
     * owner's count) are ahead of every queued fan too. */
    if (es && es->available == 0 && es->held > 0) {
        w = put_text(w, ",\"seats_all_held\":true,\"waiting_ahead\":", SIZE_MAX);
        w = put_int(w, es->waiting > 0 ? es->waiting : 0);
    }
    w = put_text(w, "}", SIZE_MAX);
    *w = '\0';
    ing_reply_raw(r, 200, body);
}

static void reply_queued(ing_req *r, const char *intent_id, int64_t seq)
{
    int64_t event_id = 0;
    q_event_state es;
    int known = ing_seqmap_get(r->app->seqs, seq, &event_id) == 0 && event_id > 0 &&
                ing_events_peek(r->app->events, event_id, &es) == 0;
    reply_queued_known(r, intent_id, seq, event_id, known ? &es : NULL);
}

/* The body of a pre-queued intent: no position until the draw at
 * draw_at_ms, a countdown to it instead (docs/fairness.md). status_url
 * only in a join's reply. */
static void prequeued_body(ing_app *app, char *out, size_t cap, const char *intent_id,
                           int64_t event_id, int64_t draw_at_ms, int with_url)
{
    char at[32], url[64] = "";
    int64_t left = draw_at_ms - ing_now_ms();
    if (left < 0)
        left = 0;
    int64_t poll = left;
    if (poll < app->o.status_poll_min_ms)
        poll = app->o.status_poll_min_ms;
    if (poll > app->o.status_poll_max_ms)
        poll = app->o.status_poll_max_ms;
    ing_format_rfc3339(draw_at_ms, at);
    if (with_url)
        snprintf(url, sizeof url, ",\"status_url\":\"/v1/intents/%.32s\"", intent_id);
    snprintf(out, cap,
             "{\"intent_id\":\"%.32s\",\"event_id\":%" PRId64 ",\"state\":\"" Q_INTENT_PREQUEUED
             "\",\"draw_at\":\"%s\",\"eta_seconds\":%" PRId64 ",\"poll_after_ms\":%" PRId64 "%s}",
             intent_id, event_id, at, (left + 999) / 1000, poll, url);
}

/* ---- join ------------------------------------------------------------------------ */

typedef struct join_job {
    q_msg msg;
    int64_t draw_at_ms;           /* > 0: a pre-queue join; the draw is at onsale_at */
    char active_claim[40];        /* "pending:<msg.sent_ms>": this join's claim of the active key */
    char own_old[40];             /* a resumed request's earlier claim, "" when none */
    char existing[64];            /* the key's value when the claimer found it held */
    char pow[ING_POW_HEADER_MAX]; /* the Onsale-PoW header, "" when absent */
    /* The event's partition count, read with its sale state (which names
     * its home partition): producing the join reads no PostgreSQL. */
    int partitions;
    /* The queued answer's numbers as estimated at the delivery report
     * (join_noted; status.eta_at_delivery), when noted is set. */
    queue_numbers noted_q;
    int noted;
} join_job;

/* At the delivery report (the producer's thread): the queued answer's
 * position and ETA, estimated the moment the join is in the log, rather
 * than when the finisher writes its answer after its Redis round trips
 * (status.eta_at_delivery): from that moment on the owner may reach it. */
static void join_noted(ing_req *r)
{
    join_job *j = r->job;
    if (r->produce_err || j->draw_at_ms > 0 || !r->app->o.status_eta_at_delivery)
        return;
    q_event_state es;
    int known = ing_events_peek(r->app->events, j->msg.event_id, &es) == 0;
    j->noted_q = numbers(r->app, r->produced_partition, r->produced_offset, known ? &es : NULL);
    j->noted = 1;
}

/* The queued answer's numbers: as noted at the delivery report, else now. */
static queue_numbers join_numbers(ing_req *r)
{
    join_job *j = r->job;
    if (j->noted)
        return j->noted_q;
    q_event_state es;
    int known = ing_events_peek(r->app->events, j->msg.event_id, &es) == 0;
    return numbers(r->app, r->produced_partition, r->produced_offset, known ? &es : NULL);
}

/* The finisher writes the intent id over the join's own pending claim
 * only (compare-and-set): if the worker already ended the intent and
 * deleted the claim, nothing is resurrected. debug.active_unchecked
 * restores the old unconditional write, for the race's control test. */
static const char *claim_expected(const ing_req *r)
{
    const join_job *j = r->job;
    return r->app->o.debug_active_unchecked ? NULL : j->active_claim;
}

/* Nothing was queued: give back the claim (only while it is still ours). */
static void join_fail_503(ing_req *r, ing_worker *w, ing_api_err e, const char *why)
{
    join_job *j = r->job;
    q_status_clear_active(w->st, j->msg.event_id, j->msg.user_id, j->active_claim);
    ing_failf(r, w, e, NULL, "%s", why);
}

/* After the delivery report: the intent is durable, certainly not queued,
 * or (ONS_EUNKNOWN) maybe queued: then the claim stays (the worker deletes
 * it by its "pending:<sent_ms>" name if the intent ends) and the
 * Idempotency-Key remembers where to look for it. */
static void join_delivered(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    join_job *j = r->job;
    ing_app *app = r->app;
    if (r->produce_err == ONS_EUNKNOWN) {
        ing_idem_unknown_reply(r, w, r->produced_partition, j->msg.sent_ms);
        return;
    }
    if (r->produce_err) {
        join_fail_503(r, w, ING_E_QUEUE_UNAVAILABLE,
                      "The queue could not take the request; nothing was queued. Retry shortly.");
        return;
    }
    int64_t seq = q_seq_make(r->produced_partition, r->produced_offset);
    char id[Q_ID_LEN + 1];
    if (q_id_encode(app->o.ids_secret, Q_ID_INTENT, seq, j->msg.user_id, id)) {
        /* Offsets beyond 2^40: cannot happen on a sane topic. */
        ing_failf(r, w, ING_E_INTERNAL, NULL, "Could not name the intent.");
        return;
    }
    ing_seqmap_put(app->seqs, seq, j->msg.event_id);
    q_active_set item = {j->msg.event_id, j->msg.user_id, id, claim_expected(r), 0};
    if (q_status_set_active_many(w->st, &item, 1))
        ons_logk(ONS_LOG_WARN, "intent_id", id, "active key not updated (redis down)");
    if (j->draw_at_ms > 0) {
        char pre[384];
        prequeued_body(app, pre, sizeof pre, id, j->msg.event_id, j->draw_at_ms, 1);
        ing_idem_reply(r, w, 202, json_loads(pre, 0, NULL));
        return;
    }
    if (!watches(app, r->produced_partition)) {
        char body[384];
        unplaced_body(app, body, sizeof body, id, j->msg.event_id, 1);
        ing_idem_reply(r, w, 202, json_loads(body, 0, NULL));
        return;
    }
    queue_numbers q = join_numbers(r);
    char url[64], at[40]; /* a quoted RFC 3339 time, strftime's longest too */
    snprintf(url, sizeof url, "/v1/intents/%s", id);
    *put_time_ms(at, q.eta_at_ms) = '\0';
    at[strlen(at) - 1] = '\0'; /* unquoted */
    json_t *body =
        json_pack("{s:s, s:I, s:s, s:I, s:I, s:I, s:s, s:I, s:s}", "intent_id", id, "event_id",
                  (json_int_t)j->msg.event_id, "state", q_intent_state_name(Q_INTENT_QUEUED),
                  "position", (json_int_t)q.position, "eta_seconds", (json_int_t)q.eta_seconds,
                  "eta_ms", (json_int_t)q.eta_ms, "eta_at", at + 1, "poll_after_ms",
                  (json_int_t)q.poll_after_ms, "status_url", url);
    ons_logk2(
        r->app->o.log_intents ? ONS_LOG_INFO : ONS_LOG_DEBUG, "intent_id", id, "request_id", r->rid,
        "join accepted: queued event=%" PRId64 " user=%" PRId64 " partition=%d offset=%" PRId64,
        j->msg.event_id, j->msg.user_id, r->produced_partition, r->produced_offset);
    ing_idem_reply(r, w, 202, body);
}

/* The 202 body of a delivered join r named id (at most 384 bytes: 138 of
 * text, two ids of at most 32, five numbers of at most 20, a quoted time
 * of at most 33), formatted directly as the queued poll's is: its
 * snprintf was ~3,500 instructions a join on the finisher. */
static void accepted_body(ing_req *r, const char *id, char body[384])
{
    join_job *j = r->job;
    if (j->draw_at_ms > 0) {
        prequeued_body(r->app, body, 384, id, j->msg.event_id, j->draw_at_ms, 1);
        return;
    }
    if (!watches(r->app, r->produced_partition)) {
        unplaced_body(r->app, body, 384, id, j->msg.event_id, 1);
        return;
    }
    queue_numbers q = join_numbers(r);
    char *w = put_text(body, "{\"intent_id\":\"", SIZE_MAX);
    w = put_text(w, id, 32);
    w = put_int(put_text(w, "\",\"event_id\":", SIZE_MAX), j->msg.event_id);
    w = put_int(put_text(w, ",\"state\":\"queued\",\"position\":", SIZE_MAX), q.position);
    w = put_int(put_text(w, ",\"eta_seconds\":", SIZE_MAX), q.eta_seconds);
    w = put_int(put_text(w, ",\"eta_ms\":", SIZE_MAX), q.eta_ms);
    w = put_time_ms(put_text(w, ",\"eta_at\":", SIZE_MAX), q.eta_at_ms);
    w = put_int(put_text(w, ",\"poll_after_ms\":", SIZE_MAX), q.poll_after_ms);
    w = put_text(put_text(w, ",\"status_url\":\"/v1/intents/", SIZE_MAX), id, 32);
    *put_text(w, "\"}", SIZE_MAX) = '\0';
}

/* The finisher's batch of delivered joins: the active keys of all of them
 * in one pipelined round trip (each a compare-and-set over the join's own
 * claim), the Idempotency-Key records of those that hold one in one more,
 * then each 202. Failures take the one-by-one path (join_delivered). */
static void join_delivered_batch(ing_worker *w, ing_req **rs, size_t n)
{
    q_active_set items[ING_FINISH_BATCH];
    char ids[ING_FINISH_BATCH][Q_ID_LEN + 1];
    ing_req *ok[ING_FINISH_BATCH], *keyed[ING_FINISH_BATCH];
    const char *keyed_bodies[ING_FINISH_BATCH];
    /* Sized to the batch, not to ING_FINISH_BATCH: glibc's free() of a
     * chunk of 64 KiB or more consolidates every fast bin of the arena,
     * once per batch on the join's path. */
    char(*bodies)[384] = malloc((n ? n : 1) * sizeof *bodies);
    size_t m = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        ing_req *r = rs[i];
        join_job *j = r->job;
        if (r->produce_err || (r->idem_owned && !bodies)) {
            join_delivered(w, r);
            continue;
        }
        int64_t seq = q_seq_make(r->produced_partition, r->produced_offset);
        if (q_id_encode(r->app->o.ids_secret, Q_ID_INTENT, seq, j->msg.user_id, ids[m])) {
            join_delivered(w, r);
            continue;
        }
        ing_seqmap_put(r->app->seqs, seq, j->msg.event_id);
        items[m] = (q_active_set){j->msg.event_id, j->msg.user_id, ids[m], claim_expected(r), 0};
        ok[m++] = r;
    }
    q_status_set_active_many(w->st, items, m);
    for (size_t i = 0; i < m; i++) {
        ing_req *r = ok[i];
        join_job *j = r->job;
        if (items[i].rc == ONS_EREDIS)
            ons_logk(ONS_LOG_WARN, "intent_id", ids[i], "active key not updated (redis down)");
        ons_logk2(r->app->o.log_intents ? ONS_LOG_INFO : ONS_LOG_DEBUG, "intent_id", ids[i],
                  "request_id", r->rid,
                  "join accepted: queued event=%" PRId64 " user=%" PRId64
                  " partition=%d offset=%" PRId64,
                  j->msg.event_id, j->msg.user_id, r->produced_partition, r->produced_offset);
        char body[384];
        accepted_body(r, ids[i], r->idem_owned ? bodies[k] : body);
        if (r->idem_owned) {
            keyed_bodies[k] = bodies[k];
            keyed[k++] = r;
        } else {
            ing_reply_raw(r, 202, body);
        }
    }
    /* A retry with the key replays exactly these bodies. */
    ing_idem_reply_many(w, keyed, keyed_bodies, k, 202);
    free(bodies);
}

/* The sale must be open; answers 409/404/400 itself and returns -1 if not. */
static int check_sale(ing_req *r, ing_worker *w, const q_event_state *ev, int quantity)
{
    join_job *j = r->job;
    int64_t now = ing_now_ms();
    int status = q_event_status_parse(ev->status);
    if (q_event_status_closed(status)) {
        ing_fail(r, w, ING_E_SALE_CLOSED, NULL);
        return -1;
    }
    if (status == Q_EVENT_PAUSED) {
        ing_failf(r, w, ING_E_SALE_NOT_OPEN, NULL, "The sale is paused.");
        return -1;
    }
    if (now < ev->onsale_at_ms && ev->prequeue_opens_at_ms > 0 && now >= ev->prequeue_opens_at_ms) {
        j->draw_at_ms = ev->onsale_at_ms; /* pre-queued: in the draw (docs/fairness.md) */
    } else if (now < ev->onsale_at_ms) {
        char at[32];
        ing_format_rfc3339(ev->onsale_at_ms, at);
        ing_failf(r, w, ING_E_SALE_NOT_OPEN, NULL, "The sale opens at %s.", at);
        return -1;
    }
    if (ev->sold_out || status == Q_EVENT_SOLD_OUT) {
        ing_fail(r, w, ING_E_SOLD_OUT, NULL);
        return -1;
    }
    if (quantity > ev->max_per_user) {
        ing_failf(r, w, ING_E_INVALID_FIELD, "quantity",
                  "Field 'quantity' must be from 1 to %d for this event.", ev->max_per_user);
        return -1;
    }
    /* Memory only (the names ride with the sale state); not known: the
     * worker refuses it (insufficient_seats), as before. */
    if (j->msg.section[0] &&
        ing_events_section_priced(r->app->events, j->msg.event_id, j->msg.section) == 0) {
        ing_failf(r, w, ING_E_SECTION_NOT_SOLD, "section",
                  "Event %lld sells no seats in section '%s'.", (long long)j->msg.event_id,
                  j->msg.section);
        return -1;
    }
    return 0;
}

static int terminal(const char *state);

/* The state of the caller's intent seq: Redis result, else PostgreSQL.
 * Returns 0 (state filled), ONS_ENOTFOUND (not processed yet) or
 * ONS_EUNAVAIL. */
static int intent_state(ing_req *r, ing_worker *w, int64_t seq, char state[16])
{
    char *text = NULL;
    int rc = q_status_get_result(w->st, seq, &text);
    if (rc == 0) {
        json_error_t jerr;
        json_t *doc = json_loads(text, 0, &jerr);
        free(text);
        json_t *st = json_object_get(doc, "state");
        rc = json_is_string(st) ? 0 : ONS_EUNAVAIL;
        if (rc == 0)
            snprintf(state, 16, "%s", json_string_value(st));
        json_decref(doc);
        if (rc == 0)
            return 0;
    }
    rc = ing_intent_state_get(w, seq, r->who.user_id, state);
    return rc == 0 || rc == ONS_ENOTFOUND ? rc : ONS_EUNAVAIL;
}

/* The active key names intent `existing`: may this join take the place
 * over? Only when that intent has ended (its key outlived it: a delete
 * that was lost, or a finisher that wrote after the worker's delete). */
static int may_take_over(ing_req *r, ing_worker *w, const char *existing)
{
    if (r->app->o.debug_active_unchecked)
        return 0;
    int64_t seq;
    if (q_id_decode(r->app->o.ids_secret, Q_ID_INTENT, existing, r->who.user_id, &seq))
        return 1; /* not an intent of this user: nothing to protect */
    char state[16];
    return intent_state(r, w, seq, state) == 0 && terminal(state);
}

/* Answers a join whose claim was refused: rc ONS_EEXIST (existing holds
 * the key's value: 409 already_in_queue) or a Redis failure (503). */
static void claim_refused(ing_req *r, ing_worker *w, int rc, const char *existing)
{
    if (rc != ONS_EEXIST) {
        ing_failf(r, w, ING_E_UNAVAILABLE, NULL, "The queue store is unavailable.");
        return;
    }
    if (strncmp(existing, "pending", 7) == 0) {
        ing_fail(r, w, ING_E_ALREADY_IN_QUEUE, NULL);
        return;
    }
    json_t *e = json_pack("{s:s, s:s, s:s}", "code", "already_in_queue", "message",
                          "You already have an active place in the queue for this event.",
                          "intent_id", existing);
    json_t *body = json_pack("{s:o, s:s}", "error", e, "intent_id", existing);
    ing_idem_reply(r, w, 409, body);
}

static int64_t claim_stale_ms(const ing_app *app);

/* May a stale pending claim made at sent_ms whose record is not in
 * PostgreSQL be taken over? Only once nothing it sent can still land: a
 * HUNG broker appends a produce request it held in its socket long after
 * librdkafka gave up on it (503 outcome_unknown), so time alone proves
 * nothing; the intents lane must be settled past it (ing_produce_settled:
 * a healthy monitor round after the settle point, and the cursors past the
 * high watermark it read) on the partition the producer sends the event's
 * records to (ing_event_home: the event's home partition, fixed when
 * it was created): another partition lagging cannot hold the record, so it no
 * longer holds the takeover. Without this a fan retrying with a new key
 * after a long broker stall got a second intent, rejected as a duplicate,
 * while its first one held its place unseen (test_kafka_hang.py). */
static int pending_settled(ing_app *app, ing_worker *w, int64_t event_id, int64_t sent_ms)
{
    int32_t p;
    if (ing_event_home(app, w, event_id, &p) != 0)
        return 0; /* cannot tell: the claim waits */
    return ing_produce_settled(app, Q_TOPIC_INTENTS, p, sent_ms + app->o.kafka_produce_timeout_ms,
                               NULL, NULL);
}

/* The key holds another request's "pending:<sent_ms>" claim (existing):
 * a join in flight, or one whose ingress died after its record reached
 * the log and before it answered (kill -9 between the delivery report and
 * the finisher). The intent the log holds for that claim is looked up by
 * (user, event, accepted_at = sent_ms), as join_resume does. Returns 1
 * (take the key over: that intent has ended, or the claim is stale and
 * settled (pending_settled) with nothing written), 0 (refuse; named holds
 * the live intent's id when one was found, "" otherwise) or -1 (replied
 * 503). */
static int pending_claim(ing_req *r, ing_worker *w, const char *existing, char *named, size_t cap)
{
    join_job *j = r->job;
    named[0] = '\0';
    int64_t sent_ms = strtoll(existing + strlen("pending:"), NULL, 10), seq;
    int stale = ing_now_ms() - sent_ms > claim_stale_ms(r->app);
    /* settled before the lookup: a record applied in between is found */
    int settled = stale && pending_settled(r->app, w, j->msg.event_id, sent_ms);
    char state[16];
    int rc = ing_intent_of_join(w, j->msg.user_id, j->msg.event_id, -1, sent_ms, &seq, state);
    if (rc == ONS_ENOTFOUND)
        return settled;
    if (rc == 0 && terminal(state))
        return 1;
    if (rc == 0 && cap > Q_ID_LEN &&
        q_id_encode(r->app->o.ids_secret, Q_ID_INTENT, seq, j->msg.user_id, named) == 0) {
        /* The key names the intent from now on (its worker deletes it by
         * id when it ends); the fan is pointed at its place. */
        q_status_replace_active(w->st, j->msg.event_id, j->msg.user_id, existing, named);
        ing_seqmap_put(r->app->seqs, seq, j->msg.event_id);
        return 0;
    }
    if (!stale)
        return 0;
    ing_failf(r, w, ING_E_UNAVAILABLE, NULL, "Intent data is unavailable; retry shortly.");
    return -1;
}

/* The outcome of a claim (rc, existing: the key's value on ONS_EEXIST):
 * a key that names an intent which has ended is taken over, and so is a
 * pending claim whose intent ended or that is stale with nothing written
 * (pending_claim); a pending claim whose intent lives is answered with that
 * intent. Returns 0 (claimed) or -1 (replied). */
static int claim_settle(ing_req *r, ing_worker *w, int rc, const char *existing)
{
    join_job *j = r->job;
    char named[Q_ID_LEN + 1] = "";
    int take = 0;
    if (rc == ONS_EEXIST && r->app->o.debug_active_unchecked)
        take = 0;
    else if (rc == ONS_EEXIST && strncmp(existing, "pending:", 8) == 0)
        take = pending_claim(r, w, existing, named, sizeof named);
    else if (rc == ONS_EEXIST)
        take = may_take_over(r, w, existing);
    if (take < 0)
        return -1;
    if (take)
        rc = q_status_replace_active(w->st, j->msg.event_id, j->msg.user_id, existing,
                                     j->active_claim) == 0
                 ? 0
                 : ONS_EEXIST;
    if (rc == 0)
        return 0;
    claim_refused(r, w, rc, named[0] ? named : existing);
    return -1;
}

/* The join's claim token for a claim made at now: the worker names the
 * claim by the record's sent_ms, so the record carries the same time. */
static void claim_token(join_job *j, int64_t now)
{
    j->msg.sent_ms = now;
    if (j->draw_at_ms > 0 && now >= j->draw_at_ms)
        j->draw_at_ms = 0; /* the sale opened meanwhile: the worker queues it after the draw */
    /* 8 + at most 20 digits: fits active_claim; no snprintf per join */
    *put_int(put_text(j->active_claim, "pending:", SIZE_MAX), now) = '\0';
}

/* A pending claim older than any produce could take on a live broker is
 * left over from a crashed request (or a stalled broker: pending_settled
 * must say so too before it is taken over). */
static int64_t claim_stale_ms(const ing_app *app)
{
    return 2 * app->o.kafka_produce_timeout_ms + 5000;
}

/* What the claim scripts treat as stale: never, so a pending claim is
 * settled here, where PostgreSQL can tell whether its record was written
 * (pending_claim); debug.active_unchecked keeps the old in-script takeover
 * for the control tests. */
static int64_t script_stale_ms(const ing_app *app)
{
    return app->o.debug_active_unchecked ? claim_stale_ms(app) : INT64_C(1) << 50;
}

/* The join's rate limit rode on its claim (rc, rate): 1 when it refused
 * (replied 429), else 0 (the RateLimit headers are noted on r). */
static int claim_rate_limited(ing_req *r, ing_worker *w, const q_rate_key *keys, size_t nkeys,
                              int rc, const q_rate_out *rate)
{
    if (nkeys && (rc == 0 || rc == ONS_EEXIST || rc == ONS_EFULL) &&
        ing_ratelimit_note(r, keys, rate)) {
        ing_failf(r, w, ING_E_RATE_LIMITED, NULL, ING_RL_MESSAGE);
        return 1;
    }
    return 0;
}

/* Claims active:<event>:<user> with this join's own "pending:<sent_ms>"
 * token, the join's rate limit checked in the same round trip. Returns 0
 * (claimed) or -1 (replied). A stale pending claim is taken over, as is a
 * key that names an intent which has ended. */
static int claim_active(ing_req *r, ing_worker *w)
{
    join_job *j = r->job;
    int64_t now = ing_now_ms();
    if (!r->idem_at_ms)
        r->idem_at_ms = now;
    claim_token(j, r->idem_at_ms); /* the time its key's in-flight record names */
    char existing[64] = "";
    q_rate_key keys[Q_RATE_KEYS_MAX];
    q_rate_out rate;
    size_t nkeys = ing_ratelimit_keys(r, keys);
    int rc = q_status_claim_active_rated(
        w->st, j->msg.event_id, j->msg.user_id, j->active_claim, now, script_stale_ms(r->app),
        j->own_old[0] ? j->own_old : NULL, existing, sizeof existing, keys, nkeys, &rate);
    if (claim_rate_limited(r, w, keys, nkeys, rc, &rate))
        return -1;
    return claim_settle(r, w, rc, existing);
}

/* Is the intents lane settled past u (nothing its attempt sent can still
 * land)? On u's partition; an attempt whose node died never said which:
 * the event's home (where the producer sends all its records), else all. */
static int resume_settled(ing_req *r, ing_worker *w, const ing_idem_unknown *u)
{
    if (u->orphan && r->app->o.debug_orphan_unsettled)
        return 1; /* the control of test_ingress_dead_node_join */
    int32_t p = u->partition;
    if (p < 0 && ing_event_home(r->app, w, ((join_job *)r->job)->msg.event_id, &p) != 0)
        p = -1;
    return ing_produce_settled(r->app, Q_TOPIC_INTENTS, p, u->at_ms, NULL, NULL);
}

/* A retry of a join whose earlier attempt's outcome is unknown (u: its
 * report was lost, or its node died before it answered): finds the intent
 * that attempt wrote, by user, event, partition and its sent_ms (the
 * worker stores it as accepted_at). Returns 0 (found: replied with it),
 * 1 (certainly never written: r now owns the key; produce again, taking
 * over the old claim) or -1 (replied: cannot tell yet, or unavailable). */
static int join_resume(ing_req *r, ing_worker *w, const ing_idem_unknown *u)
{
    join_job *j = r->job;
    int64_t seq;
    char state[16];
    /* settled before the lookup: a record applied in between is found */
    int settled = resume_settled(r, w, u);
    int rc = ing_intent_of_join(w, j->msg.user_id, j->msg.event_id, u->partition, u->sent_ms, &seq,
                                state);
    if (rc && rc != ONS_ENOTFOUND) {
        ing_failf(r, w, ING_E_UNAVAILABLE, NULL, "Intent data is unavailable; retry shortly.");
        return -1;
    }
    if (rc == 0) {
        char id[Q_ID_LEN + 1];
        if (q_id_encode(r->app->o.ids_secret, Q_ID_INTENT, seq, j->msg.user_id, id)) {
            ing_failf(r, w, ING_E_INTERNAL, NULL, "Could not name the intent.");
            return -1;
        }
        ing_seqmap_put(r->app->seqs, seq, j->msg.event_id);
        /* The claim the first attempt left becomes the intent's id while
         * it lives; an ended intent's claim was deleted by the worker. */
        char old[40];
        snprintf(old, sizeof old, "pending:%" PRId64, u->sent_ms);
        if (!terminal(state))
            q_status_replace_active(w->st, j->msg.event_id, j->msg.user_id, old, id);
        char url[64];
        snprintf(url, sizeof url, "/v1/intents/%s", id);
        ons_logk(ONS_LOG_INFO, "intent_id", id, "unknown outcome resolved: it was queued (%s)",
                 state);
        /* Processed: at the front (position 0), in its current state. */
        ing_idem_found(r, w, 202,
                       json_pack("{s:s, s:I, s:s, s:i, s:i, s:I, s:s}", "intent_id", id, "event_id",
                                 (json_int_t)j->msg.event_id, "state", state, "position", 0,
                                 "eta_seconds", 0, "poll_after_ms",
                                 (json_int_t)poll_for_state(r->app, state), "status_url", url));
        return 0;
    }
    if (!settled) {
        ing_idem_unknown_reply(r, w, -1, 0); /* the record stays as it is */
        return -1;
    }
    r->idem_at_ms = ing_now_ms(); /* the new attempt's claim time, in its record */
    if (ing_idem_retake(r, w, u))
        return -1;
    if (u->orphan)
        ons_logk(ONS_LOG_INFO, "request_id", r->rid,
                 "join of a node gone (claimed at %" PRId64 ") never written: sent again",
                 u->sent_ms);
    snprintf(j->own_old, sizeof j->own_old, "pending:%" PRId64, u->sent_ms);
    return 1;
}

/* Test only (debug.join_delay_ms): hold the join before it is produced
 * (shutdown under load). */
static void debug_join_delay(const ing_app *app)
{
    if (app->o.debug_join_delay_ms > 0) {
        struct timespec ts = {(time_t)(app->o.debug_join_delay_ms / 1000),
                              (long)(app->o.debug_join_delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Sends a claimed join; on a refusal gives the claim back and replies.
 * A join with an Idempotency-Key is sent within idem.send_by_ms of its
 * claim or not at all: a retry that takes its key over once its node is
 * gone (ing_idem_begin_orphans) relies on that bound. */
static void join_produce(ing_req *r, ing_worker *w)
{
    join_job *j = r->job;
    j->noted = 0;
    if (r->idem_owned && ing_now_ms() - j->msg.sent_ms > r->app->o.idem_send_by_ms) {
        join_fail_503(r, w, ING_E_OVERLOADED,
                      "The join waited too long to be sent; nothing was queued. Retry shortly.");
        return;
    }
    int rc = ing_produce_batched(r, w, &j->msg, j->partitions, join_delivered_batch, join_noted);
    if (rc)
        join_fail_503(r, w, rc == ONS_EFULL ? ING_E_OVERLOADED : ING_E_QUEUE_UNAVAILABLE,
                      "The queue cannot take requests right now; nothing was queued.");
}

/* The Idempotency-Key scope of a join: the key is per event. */
static void join_scope(const ing_req *r, char scope[ING_IDEM_SCOPE_MAX])
{
    const join_job *j = r->job;
    snprintf(scope, ING_IDEM_SCOPE_MAX, "join:%" PRId64, j->msg.event_id);
}

/* A join whose key (if any) is settled: sale checks, its proof of work
 * (unless resumed: the first attempt spent it), its claim, the produce. */
static void join_checked_run(ing_req *r, ing_worker *w, int resumed)
{
    join_job *j = r->job;
    q_event_state ev;
    if (ing_event_state(r, w, j->msg.event_id, &ev))
        return;
    j->partitions = ev.partitions;
    if (check_sale(r, w, &ev, j->msg.quantity) ||
        (!resumed && ing_pow_admit(r, w, j->msg.event_id, &ev, j->pow)) || claim_active(r, w))
        return;
    debug_join_delay(r->app);
    join_produce(r, w);
}

/* A join on a job thread, one at a time: its Idempotency-Key record
 * first (a replay, a key in flight, a resume), then the rest. Also where
 * the claimer hands on a join whose key it found taken. */
static void join_job_run(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    ing_idem_unknown u;
    r->idem_at_ms = ing_now_ms(); /* its key's claim time, the record's sent_ms */
    int rc = ing_idem_begin_orphans(r, w, join_scope, &u);
    if (rc == 1 || (rc == 2 && join_resume(r, w, &u) <= 0))
        return;
    join_checked_run(r, w, rc == 2);
}

/* A claimer join with a proof of work to spend (one Redis call), its key
 * (if any) already claimed by the claimer. */
static void join_owned_job(ing_worker *w, void *arg)
{
    join_checked_run(arg, w, 0);
}

/* A claimer join whose key is held (j->existing: an intent's id or another
 * request's pending claim): the take-over check may read Redis and
 * PostgreSQL, so it runs here, off the claimer.
 * Its rate limit was charged with the claim. */
static void join_takeover_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    join_job *j = r->job;
    if (claim_settle(r, w, ONS_EEXIST, j->existing))
        return;
    join_produce(r, w);
}

/* Hands a claimer join on to a job thread (bounded by pool.queue_depth:
 * full, 503 overloaded; nothing was claimed for it). */
static void join_hand_on(ing_req *r, ing_worker *w, ing_job_fn fn)
{
    if (ing_pool_submit(r->app->pool, fn, r, 0))
        ing_failf(r, w, ING_E_OVERLOADED, NULL, "The server is busy; retry shortly.");
}

/* The claims of one round, on the claimer's stack. */
typedef struct claim_round {
    q_active_claim claims[ING_JOIN_ROUND_MAX];
    q_rate_key keys[ING_JOIN_ROUND_MAX][Q_RATE_KEYS_MAX];
    ing_req *rs[ING_JOIN_ROUND_MAX];
} claim_round;

/* Claims and produces up to ING_JOIN_ROUND_MAX joins: see
 * ing_join_claim_round. */
static void claim_round_run(ing_worker *w, ing_app *app, claim_round *cr, ing_req **items, size_t n)
{
    size_t m = 0;
    /* One claim time for the round: each key's in-flight record names it,
     * and it becomes the join's sent_ms (claim_token). */
    int64_t now = ing_now_ms();
    for (size_t i = 0; i < n; i++)
        items[i]->idem_at_ms = now;
    /* The keys first: a taken key (replay, in flight, resume) goes to a
     * job thread, which reads its record. */
    n = ing_idem_begin_round(w, items, n, join_scope, join_job_run);
    for (size_t i = 0; i < n; i++) {
        ing_req *r = items[i];
        join_job *j = r->job;
        q_event_state ev;
        if (ing_event_state(r, w, j->msg.event_id, &ev) || check_sale(r, w, &ev, j->msg.quantity))
            continue;
        j->partitions = ev.partitions;
        if (ev.pow_difficulty > 0) {
            join_hand_on(r, w, join_owned_job); /* a proof to spend first: one Redis call */
            continue;
        }
        claim_token(j, now);
        size_t nk = ing_ratelimit_keys(r, cr->keys[m]);
        cr->claims[m] = (q_active_claim){.event_id = j->msg.event_id,
                                         .user_id = j->msg.user_id,
                                         .token = j->active_claim,
                                         .rate_keys = cr->keys[m],
                                         .nrate = nk};
        cr->rs[m++] = r;
    }
    if (m == 0)
        return;
    q_status_claim_active_many(w->st, cr->claims, m, now, script_stale_ms(app));
    if (app->join_claim_rounds) {
        ons_counter_add(app->join_claim_rounds, 1);
        ons_counter_add(app->join_claims, (double)m);
    }
    debug_join_delay(app);
    for (size_t k = 0; k < m; k++) {
        ing_req *r = cr->rs[k];
        join_job *j = r->job;
        const q_active_claim *c = &cr->claims[k];
        if (claim_rate_limited(r, w, c->rate_keys, c->nrate, c->rc, &c->rate))
            continue;
        if (c->rc == 0) {
            join_produce(r, w);
        } else if (c->rc == ONS_EEXIST && !app->o.debug_active_unchecked) {
            snprintf(j->existing, sizeof j->existing, "%s", c->current);
            join_hand_on(r, w, join_takeover_job);
        } else {
            claim_refused(r, w, c->rc, c->current);
        }
    }
}

void ing_join_claim_round(ing_worker *w, void *arg, void **items, size_t n)
{
    ing_app *app = arg;
    claim_round cr;
    size_t max = app->o.join_round_max > 0 ? (size_t)app->o.join_round_max : 1;
    if (max > ING_JOIN_ROUND_MAX)
        max = ING_JOIN_ROUND_MAX;
    for (size_t base = 0; base < n; base += max)
        claim_round_run(w, app, &cr, (ing_req **)items + base, n - base < max ? n - base : max);
}

/* What a join asks for, from its body. */
typedef struct join_fields {
    int64_t quantity, max_price;
    const char *section; /* into r->body; NULL: any */
    int adjacent;
} join_fields;

/* The join's body (route->body ING_BODY_OWN): the common shape,
 * {"quantity":N} with N in range, is read without jansson on the gate
 * thread (ons_httpd_body_sole_int, which accepts only what the parse
 * and checks below accept, with the same value); anything else is parsed
 * as every route's body is, its 400 (invalid_json) before the path's id
 * is looked at, as server.c did. Returns 1 when the common shape was read
 * (f->quantity set), 0 when r->body holds the parsed object, -1 when r
 * was answered. */
static int join_body_parse(ing_req *r, join_fields *f)
{
    if (ons_httpd_body_sole_int(r->raw, r->raw_len, "quantity", &f->quantity) && f->quantity >= 1 &&
        f->quantity <= Q_MAX_SEATS)
        return 1;
    ons_httpd_err e;
    if (!r->body && ons_httpd_body_parse(r->raw, r->raw_len, &r->body, &e)) {
        ing_fail_httpd(r, &e);
        return -1;
    }
    return 0;
}

/* The field checks of a body that is not the common shape. */
static int join_body_fields(ing_req *r, join_fields *f)
{
    static const char *const allowed[] = {"quantity", "section", "max_price_cents", "adjacent",
                                          NULL};
    return ing_json_only(r, r->body, allowed) ||
           ing_json_int(r, r->body, "quantity", 1, 1, Q_MAX_SEATS, &f->quantity) ||
           ing_json_str(r, r->body, "section", 0, 1, Q_MSG_MAX_SECTION, &f->section) ||
           ing_json_int(r, r->body, "max_price_cents", 0, 1, INT64_C(1000000000000),
                        &f->max_price) ||
           ing_json_bool(r, r->body, "adjacent", &f->adjacent);
}

void ing_route_join(ing_req *r)
{
    join_fields f = {.adjacent = 1};
    int64_t event_id;
    int common = join_body_parse(r, &f);
    if (common < 0 || ing_path_id(r, r->params[0], &event_id) ||
        (!common && join_body_fields(r, &f)))
        return;
    /* Freed with the request, usually on the finisher's thread: recycled
     * to this one (common/recycle.h). */
    join_job *j = ons_recycle_alloc(ONS_RECYCLE_ING_JOIN, sizeof *j);
    if (!j) {
        ing_fail(r, NULL, ING_E_OVERLOADED, NULL);
        return;
    }
    memset(j, 0, sizeof *j);
    j->msg.type = Q_MSG_INTENT;
    j->msg.event_id = event_id;
    j->msg.user_id = r->who.user_id;
    j->msg.quantity = (int)f.quantity;
    if (f.section)
        snprintf(j->msg.section, sizeof j->msg.section, "%s", f.section);
    j->msg.max_price_cents = f.max_price;
    j->msg.adjacent = f.adjacent;
    ing_pow_header(r, j->pow, sizeof j->pow);
    r->job = j;
    r->job_free = ons_recycle_free;
    /* Joins share the claimer's pipelined rounds (their keys' records,
     * then their claims); without a claimer each goes alone. */
    if (r->app->claimer)
        ing_req_submit_batch(r, r->app->claimer);
    else
        ing_req_submit(r, join_job_run);
}

/* ---- status poll -------------------------------------------------------------------- */

typedef struct intent_job {
    int64_t seq;
    char id[Q_ID_LEN + 1];
    int64_t event_id; /* 0 until known */
    char state[16];
    json_t *result; /* the result document (Redis r: or rebuilt from PostgreSQL) */
} intent_job;

static void intent_job_free(void *p)
{
    intent_job *j = p;
    json_decref(j->result);
    free(j);
}

/* The result document (as the worker writes it to Redis) of res, whose
 * reservation's public id is signed for user_id. NULL when out of memory. */
static json_t *result_json(const char *ids_secret, int64_t user_id, const ing_intent_result *res)
{
    json_t *doc =
        json_pack("{s:s, s:I}", "state", res->state, "event_id", (json_int_t)res->event_id);
    if (!doc)
        return NULL;
    json_object_set_new(doc, "reason", res->has_reason ? json_string(res->reason) : json_null());
    if (!res->has_reservation)
        return doc;
    char pub[Q_ID_LEN + 1] = "";
    q_id_encode(ids_secret, Q_ID_RESERVATION, res->reservation_id, user_id, pub);
    json_t *seats = json_array();
    for (size_t i = 0; i < res->nseats; i++) {
        const ing_intent_seat *s = &res->seats[i];
        json_array_append_new(seats, json_pack("{s:s, s:i, s:i, s:I}", "section", s->seat.section,
                                               "row", s->seat.row, "seat", s->seat.seat,
                                               "price_cents", (json_int_t)s->price_cents));
    }
    json_object_set_new(doc, "reservation",
                        json_pack("{s:s, s:o, s:I, s:s, s:s}", "reservation_id", pub, "seats",
                                  seats, "total_cents", (json_int_t)res->total_cents, "currency",
                                  res->currency, "expires_at", res->expires_at));
    return doc;
}

/* Rebuilds the result document from PostgreSQL. Returns 0, ONS_ENOTFOUND
 * or ONS_EDB. */
static int result_from_postgres(ing_req *r, ing_worker *w, intent_job *j)
{
    ing_intent_result res;
    int rc = ing_intent_result_get(w, j->seq, r->who.user_id, &res);
    if (rc == ONS_ENOTFOUND)
        return rc;
    if (rc)
        return ONS_EDB;
    j->result = result_json(r->app->o.ids_secret, r->who.user_id, &res);
    ing_intent_result_clear(&res);
    return j->result ? 0 : ONS_EDB;
}

/* Reads the intent's result: Redis first, PostgreSQL when Redis misses or
 * is down. Returns 0 (j->result, j->state, j->event_id set), ONS_ENOTFOUND
 * (not processed yet) or ONS_EUNAVAIL. */
/* Parses a result document read from Redis into j->result (text is
 * consumed); 0, or -1 when it is not a JSON object (read it again). */
static int parse_result(intent_job *j, char *text)
{
    json_error_t jerr;
    j->result = json_loads(text, 0, &jerr);
    free(text);
    if (json_is_object(j->result))
        return 0;
    json_decref(j->result);
    j->result = NULL;
    return -1;
}

/* What a loaded result document (j->result) tells: its state and event,
 * remembered for the next polls. */
static void result_loaded(ing_req *r, intent_job *j)
{
    json_t *st = json_object_get(j->result, "state");
    json_t *ev = json_object_get(j->result, "event_id");
    snprintf(j->state, sizeof j->state, "%s", json_is_string(st) ? json_string_value(st) : "");
    if (json_is_integer(ev))
        j->event_id = json_integer_value(ev);
    if (j->event_id > 0)
        ing_seqmap_put(r->app->seqs, j->seq, j->event_id);
    /* A processed intent proves its partition's cursor is past it. */
    ing_cursors_raise(r->app->cursors, q_seq_partition(j->seq), q_seq_offset(j->seq) + 1);
}

static int load_result(ing_req *r, ing_worker *w, intent_job *j)
{
    char *text = NULL;
    if (q_status_get_result(w->st, j->seq, &text) == 0)
        (void)parse_result(j, text);
    if (!j->result) {
        int rc = result_from_postgres(r, w, j);
        if (rc == ONS_EDB)
            return ONS_EUNAVAIL;
        if (rc)
            return rc;
    }
    result_loaded(r, j);
    return 0;
}

/* Answers a poll from its loaded result document. */
static void reply_result(ing_req *r, ing_worker *w, intent_job *j)
{
    q_event_state es;
    if (json_is_true(json_object_get(j->result, "prequeued")) && j->event_id > 0 &&
        ing_events_get(r->app->events, w, j->event_id, &es) == 0) {
        char pre[384];
        prequeued_body(r->app, pre, sizeof pre, j->id, j->event_id, es.onsale_at_ms, 0);
        ing_reply_raw(r, 200, pre);
        return;
    }
    json_t *body = json_pack("{s:s, s:s, s:I}", "intent_id", j->id, "state", j->state,
                             "poll_after_ms", (json_int_t)poll_for_state(r->app, j->state));
    /* A drawn fan still waiting: the place the draw gave them. */
    json_t *rank = json_object_get(j->result, "draw_rank");
    if (q_intent_state_parse(j->state) == Q_INTENT_WAITING && json_is_integer(rank))
        json_object_set_new(body, "position", json_integer(json_integer_value(rank)));
    if (j->event_id > 0)
        json_object_set_new(body, "event_id", json_integer(j->event_id));
    json_t *resv = json_object_get(j->result, "reservation");
    if (json_is_object(resv))
        json_object_set(body, "reservation", resv);
    json_t *reason = json_object_get(j->result, "reason");
    if (json_is_string(reason))
        json_object_set(body, "reason", reason);
    json_t *left = json_object_get(j->result, "left_queue_at");
    if (json_is_string(left))
        json_object_set(body, "left_queue_at", left);
    ing_reply_json(r, 200, body);
}

/* A poll of a processed intent on a job thread, alone: Redis, then
 * PostgreSQL when Redis lacks the result or is down. */
static void intent_get_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    intent_job *j = r->job;
    int rc = load_result(r, w, j);
    if (rc == ONS_ENOTFOUND) {
        reply_queued(r, j->id, j->seq);
        return;
    }
    if (rc) {
        ing_failf(r, w, ING_E_UNAVAILABLE, NULL, "Intent status is unavailable; retry shortly.");
        return;
    }
    reply_result(r, w, j);
}

void ing_result_round(ing_worker *w, void *arg, void **items, size_t n)
{
    ing_app *app = arg;
    int64_t seqs[ING_RESULT_ROUND_MAX];
    char *texts[ING_RESULT_ROUND_MAX];
    for (size_t base = 0; base < n; base += ING_RESULT_ROUND_MAX) {
        size_t m = n - base < ING_RESULT_ROUND_MAX ? n - base : ING_RESULT_ROUND_MAX;
        ing_req **rs = (ing_req **)items + base;
        for (size_t i = 0; i < m; i++)
            seqs[i] = ((intent_job *)rs[i]->job)->seq;
        (void)q_status_get_results(w->st, seqs, m, texts); /* failed: all NULL */
        if (app->result_rounds) {
            ons_counter_add(app->result_rounds, 1);
            ons_counter_add(app->result_reads, (double)m);
        }
        for (size_t i = 0; i < m; i++) {
            ing_req *r = rs[i];
            intent_job *j = r->job;
            if (!texts[i] || parse_result(j, texts[i]) != 0) {
                /* missing, unreadable or Redis down: alone, with the fallback */
                if (ing_pool_submit(r->app->pool, intent_get_job, r, 0))
                    ing_failf(r, w, ING_E_OVERLOADED, NULL, "The server is busy; retry shortly.");
                continue;
            }
            result_loaded(r, j);
            reply_result(r, w, j);
        }
    }
}

/* Decodes the {id} of an intent or reservation route owned by the caller.
 * Returns 0 or -1 (replied 400/404). */
/* q_id_decode of r's id: 0, ONS_EPARSE (malformed) or another error (not
 * this caller's, or a partition this cluster does not have). Memory only. */
static int id_seq(ing_req *r, enum q_id_kind kind, int64_t *seq)
{
    int rc = q_id_decode(r->app->o.ids_secret, kind, r->params[0], r->who.user_id, seq);
    if (rc == 0 && q_seq_partition(*seq) >= ing_partitions_known(r->app))
        rc = ONS_ENOTFOUND;
    return rc;
}

/* Replies to an id id_seq refused (rc not 0): 400 invalid_id or 404. */
static void id_refused(ing_req *r, enum q_id_kind kind, int rc)
{
    if (rc == ONS_EPARSE) {
        ing_fail(r, NULL, ING_E_INVALID_ID, NULL);
        return;
    }
    ing_failf(r, NULL, ING_E_NOT_FOUND, NULL, "No such %s.",
              kind == Q_ID_INTENT ? "intent" : "reservation");
}

static int decode_id(ing_req *r, enum q_id_kind kind, int64_t *seq)
{
    int rc = id_seq(r, kind, seq);
    if (rc) {
        id_refused(r, kind, rc);
        return -1;
    }
    return 0;
}

static intent_job *new_intent_job(ing_req *r, int64_t seq)
{
    intent_job *j = calloc(1, sizeof *j);
    if (!j) {
        ing_fail(r, NULL, ING_E_OVERLOADED, NULL);
        return NULL;
    }
    j->seq = seq;
    snprintf(j->id, sizeof j->id, "%s", r->params[0]);
    r->job = j;
    r->job_free = intent_job_free;
    return j;
}

/* A queued poll whose event state is older than event_cache.ttl_ms: one
 * job refreshes it (then the next polls are memory again), and answers. */
static void queued_refresh_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    intent_job *j = r->job;
    q_event_state es;
    if (j->event_id > 0)
        (void)ing_events_get(r->app->events, w, j->event_id, &es);
    reply_queued(r, j->id, j->seq);
}

/* What a poll found in memory before answering: the same reads for the
 * route's now hook (the accept gate) and its handler, so the answer is the
 * one the hook tested. */
typedef struct poll_plan {
    int rc; /* id_seq's */
    int64_t seq;
    int queued; /* still queued by this node's cursor */
    int mapped; /* this node's seqmap knows the event */
    int64_t event_id;
    int known, fresh; /* the event's cached state, and whether it is fresh */
    q_event_state es;
} poll_plan;

static void poll_plan_make(ing_req *r, poll_plan *p)
{
    p->rc = id_seq(r, Q_ID_INTENT, &p->seq);
    p->queued = p->mapped = p->known = p->fresh = 0;
    p->event_id = 0;
    if (p->rc)
        return;
    int64_t served = ing_cursors_served(r->app->cursors, q_seq_partition(p->seq));
    p->queued = served >= 0 && q_seq_offset(p->seq) >= served;
    if (!p->queued)
        return;
    /* Still queued: memory, no Redis round trip, unless the event's state
     * (sold out?) is older than its ttl: then one job per ttl refreshes
     * it. */
    if (ing_seqmap_get(r->app->seqs, p->seq, &p->event_id) == 0) {
        p->mapped = 1;
        p->known = p->event_id > 0 &&
                   ing_events_lookup(r->app->events, p->event_id, &p->es, &p->fresh) == 0;
    }
}

int ing_route_intent_get_now(ing_req *r)
{
    static _Thread_local poll_plan plan;
    poll_plan_make(r, &plan);
    if (plan.rc == 0 && !(plan.queued && !(plan.mapped && !plan.fresh)))
        return 0;
    r->now = &plan;
    return 1;
}

void ing_route_intent_get(ing_req *r)
{
    poll_plan own, *p = r->now;
    if (!p) {
        p = &own;
        poll_plan_make(r, p);
    }
    r->now = NULL;
    if (p->rc) {
        id_refused(r, Q_ID_INTENT, p->rc);
        return;
    }
    if (p->queued) {
        if (p->mapped && !p->fresh) {
            intent_job *j = new_intent_job(r, p->seq);
            if (j) {
                j->event_id = p->event_id;
                ing_req_submit(r, queued_refresh_job);
            }
            return;
        }
        reply_queued_known(r, r->params[0], p->seq, p->event_id, p->known ? &p->es : NULL);
        return;
    }
    if (!new_intent_job(r, p->seq))
        return;
    /* Polls of processed intents share the result reader's MGETs; without
     * it each reads alone on a job thread. */
    if (r->app->result_reader)
        ing_req_submit_batch(r, r->app->result_reader);
    else
        ing_req_submit(r, intent_get_job);
}

/* ---- leaving the line, giving back a hold ----------------------------------------------- */

static int terminal(const char *state)
{
    return q_intent_state_final(q_intent_state_parse(state));
}

static void cancel_delivered(ing_worker *w, void *arg)
{
    (void)w;
    ing_req *r = arg;
    intent_job *j = r->job;
    if (r->produce_err) {
        ing_failf(r, w, ING_E_QUEUE_UNAVAILABLE, NULL,
                  "The queue could not take the request; retry shortly.");
        return;
    }
    int is_intent = r->route->handler == ing_route_intent_delete;
    json_t *body = json_pack("{s:s, s:s}", is_intent ? "intent_id" : "reservation_id", j->id,
                             "state", is_intent ? "cancelling" : "releasing");
    ing_reply_json(r, 202, body);
}

/* The event of a still-queued intent that another node accepted (so not in
 * this node's map): its join record, read back from its place in the log.
 * The id's HMAC already ties the place to the caller; the record must be a
 * join by the same user. Returns 0 (j->event_id set) or ONS_ENOTFOUND. */
static int event_from_log(ing_req *r, intent_job *j)
{
    q_msg m;
    int rc = ing_log_read(r->app->log_reader, q_seq_partition(j->seq), q_seq_offset(j->seq),
                          (int)r->app->o.cancel_lookup_timeout_ms, &m);
    if (rc || m.type != Q_MSG_INTENT || m.user_id != r->who.user_id || m.event_id <= 0) {
        if (rc != ONS_ENOTFOUND)
            ons_logk(ONS_LOG_WARN, "intent_id", j->id, "intent record not read back: %s",
                     rc ? ons_strerror(rc) : "not this user's join");
        return ONS_ENOTFOUND;
    }
    j->event_id = m.event_id;
    ing_seqmap_put(r->app->seqs, j->seq, j->event_id);
    return 0;
}

/* Finds the event of j->seq: the result (Redis, PostgreSQL), this process's
 * map, then the join record itself (any node may cancel any intent).
 * Returns 0, ONS_ENOTFOUND or ONS_EUNAVAIL. */
static int find_event(ing_req *r, ing_worker *w, intent_job *j)
{
    int rc = load_result(r, w, j);
    if (rc == 0 && j->event_id > 0)
        return 0;
    if (ing_seqmap_get(r->app->seqs, j->seq, &j->event_id) == 0)
        return 0;
    if (rc == ONS_ENOTFOUND && !r->app->o.debug_cancel_local_only)
        return event_from_log(r, j);
    return rc ? rc : ONS_ENOTFOUND;
}

static void cancel_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    intent_job *j = r->job;
    int is_intent = r->route->handler == ing_route_intent_delete;
    int rc = find_event(r, w, j);
    if (rc == ONS_EUNAVAIL) {
        ing_failf(r, w, ING_E_UNAVAILABLE, NULL, "Status data is unavailable; retry shortly.");
        return;
    }
    if (rc) {
        /* Still queued and accepted by another ingress process: the id
         * does not tell which event it is for until the worker reached it. */
        ing_fail(r, w, ING_E_NOT_CANCELLABLE_YET, NULL);
        return;
    }
    if (j->state[0] && terminal(j->state)) {
        ing_failf(r, w, ING_E_INVALID_STATE, NULL, "This %s has already ended (%s).",
                  is_intent ? "intent" : "reservation", j->state);
        return;
    }
    if (q_intent_state_parse(j->state) == Q_INTENT_PAYING) {
        /* The payment saga owns a paying hold: the owner would ignore the
         * cancel (workers/partition.c apply_cancel), so say so instead of a
         * 202 that changes nothing. */
        ing_failf(r, w, ING_E_PAYMENT_IN_PROGRESS, NULL,
                  "This %s is being paid for and cannot be cancelled now.",
                  is_intent ? "intent" : "reservation");
        return;
    }
    if (!is_intent && j->state[0] && q_intent_state_parse(j->state) != Q_INTENT_RESERVED) {
        ing_failf(r, w, ING_E_INVALID_STATE, NULL, "There is no held reservation to release.");
        return;
    }
    q_msg m;
    memset(&m, 0, sizeof m);
    m.type = Q_MSG_CANCEL;
    m.event_id = j->event_id;
    m.user_id = r->who.user_id;
    m.sent_ms = ing_now_ms();
    m.cancel_kind = is_intent ? Q_CANCEL_INTENT : Q_CANCEL_RESERVATION;
    m.target_partition = q_seq_partition(j->seq);
    m.target_offset = q_seq_offset(j->seq);
    m.reservation_id = is_intent ? 0 : j->seq;
    rc = ing_produce(r, w, &m, cancel_delivered);
    if (rc) {
        ing_failf(r, w, ING_E_QUEUE_UNAVAILABLE, NULL,
                  "The queue cannot take requests right now; retry shortly.");
    }
}

void ing_route_intent_delete(ing_req *r)
{
    int64_t seq;
    if (decode_id(r, Q_ID_INTENT, &seq) || !new_intent_job(r, seq))
        return;
    ing_req_submit(r, cancel_job);
}

void ing_route_reservation_delete(ing_req *r)
{
    int64_t seq;
    if (decode_id(r, Q_ID_RESERVATION, &seq) || !new_intent_job(r, seq))
        return;
    ing_req_submit(r, cancel_job);
}
