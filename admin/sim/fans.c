/*
 * fans.c - the virtual fans: arrival curve, the join -> poll -> act script
 * and the run loop (timers, HTTP, the once-a-second sampler, the progress
 * line).
 *
 * A fan's script, one request in flight at a time:
 *   arrive (burst at on-sale time, then a Poisson tail)
 *   join: POST /v1/events/{id}/intents with an Idempotency-Key. 202 -> poll;
 *     429/503, or a 409 with Retry-After (the same key still claimed) ->
 *     retry (retry_later; at most max_retries); 409 sold_out -> done (sold
 *     out); other answers -> done (refused, counted by code).
 *   poll: GET /v1/intents/{id} exactly poll_after_ms after the last answer
 *     (an error but 401/403/404: again after retry_wait_ms, web/api.js's
 *     backoff, at most max_retries). queued/waiting/paying -> poll again;
 *     reserved -> act once; purchased/rejected/expired/released -> done.
 *   act on reserved: with checkout_prob, POST .../checkout (when the route
 *     exists: a 404/405 answer marks checkout "not available" for the run
 *     and the fan keeps its hold; an answer retry_later names is sent
 *     again with the same key, as web/fan.js's pay() does; once accepted,
 *     the order is polled every second while pending, beside the intent's
 *     polls, and "paid" ends the visit, as pollOrder does); else with abandon_prob DELETE the
 *     reservation (mode delete) or keep polling until it expires (mode
 *     expire); else keep the hold (done).
 * When the event asks for a proof of work (the sim made it so, or a join
 * answered 403 pow_*), a join is preceded by GET /v1/events/{id}/challenge,
 * solved here (ingress/pow.h ing_pow_solve, on the loop's thread: a real
 * fan's browser spends that time, the sim's CPU stands in for it) and sent
 * with Onsale-PoW; a pow_* refusal fetches a new challenge (at most
 * POW_TRIES).
 * Beside that script, as web/fan.js does, each fan's page fetches the event
 * view (GET /v1/events/{id}) on arrival and then after event_view_ms or the
 * view's refresh_after_ms, whichever is longer, until the fan is done: at
 * most one view in flight per fan. The join waits for that first view (the
 * page shows its join button only then), and a first view that says sold
 * out ends the visit without a join, as the page does.
 * The page's own files (web/: the HTML, scripts and styles, ~20 KB
 * gzipped) are not fetched: they are static, cached by the browser after
 * a first visit, and in a real on-sale served by a CDN or the proxy's
 * cache in front of ingress; the simulator measures the API's load.
 * Every answer about an intent (the 202 and each poll) is one sim-log line
 * (format: admin/audit.h).
 * The fans share the HTTP pool's connections in two lanes (lanes.h): what a
 * fan sends before its join is answered (the page load, the challenge, the
 * join) on `connections`, everything after (polls, event refreshes, the
 * checkout) on `fan_connections`, and on that lane the steps of a fan
 * holding seats first. A real fan's browser has its own connection: its
 * checkout does not wait behind other fans' joins, which a single queue
 * in the simulator made it do.
 */
#include "admin/sim/sim.h"
#include "common/auth.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/vec.h"
#include "ingress/pow.h"
#include "queue/states.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROGRESS_MS  250
#define SAMPLE_MS    1000
#define POLL_MIN_MS  50
#define POLL_MAX_MS  60000
#define RETRY_DEF_MS 1000
#define RETRY_MAX_MS 30000 /* the longest wait between two tries (web/api.js backoffMs) */
#define TOKEN_SLACK  3600
#define DRAIN_MS     10000               /* in-flight requests get this long at the end */
#define POW_TRIES    3                   /* challenges a fan fetches for one join */
#define POW_MAX_HASH (UINT64_C(1) << 36) /* hashes per challenge before giving up */

/* A fan with no intent state yet; otherwise state is an enum q_intent_state. */
enum { S_NONE = 0xff };

const char *const sim_outcome_names[] = {"none",    "refused",   "sold_out", "rejected",
                                         "kept",    "purchased", "released", "expired",
                                         "waiting", "queued",    "error"};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* ---- small helpers ------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t x = *s; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

int64_t sim_now_ms(const sim *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - s->start_ns) / 1000000;
}

void sim_samples_add(sim_samples *sm, double v, uint64_t *rng)
{
    sm->seen++;
    if (sm->n < sm->cap) {
        sm->v[sm->n++] = (float)v;
    } else if (sm->n == sm->cap && sm->cap < SIM_MAX_SAMPLES) {
        if (ONS_VEC_RESERVE(sm->v, sm->cap, sm->n + 1, 4096))
            return; /* keep what we have: percentiles stay approximate */
        sm->v[sm->n++] = (float)v;
    } else if (sm->n > 0) { /* reservoir sampling past the bound */
        uint64_t j = rng_next(rng) % sm->seen;
        if (j < sm->n)
            sm->v[j] = (float)v;
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

double sim_samples_pct(sim_samples *sm, double p)
{
    if (sm->n == 0)
        return NAN;
    qsort(sm->v, sm->n, sizeof *sm->v, cmp_float);
    size_t i = (size_t)ceil(p / 100.0 * (double)sm->n);
    return sm->v[i ? i - 1 : 0];
}

void sim_count_code(sim *s, int status, const char *code)
{
    char key[48];
    snprintf(key, sizeof key, "%d %s", status, code && *code ? code : "-");
    if (status == 0)
        snprintf(key, sizeof key, "transport error");
    for (int i = 0; i < s->ncodes; i++)
        if (strcmp(s->codes[i].code, key) == 0) {
            s->codes[i].n++;
            return;
        }
    int i = s->ncodes < SIM_MAX_CODES ? s->ncodes++ : SIM_MAX_CODES - 1;
    if (i == SIM_MAX_CODES - 1 && s->ncodes == SIM_MAX_CODES)
        snprintf(s->codes[i].code, sizeof s->codes[i].code, "other");
    else
        snprintf(s->codes[i].code, sizeof s->codes[i].code, "%s", key);
    s->codes[i].n++;
}

/* ---- timers (min-heap of fans by due time) ----------------------------------- */

/* One fan's timer. */
typedef struct sim_timer {
    int64_t due_ms;
    uint32_t fan;
} sim_timer;

static int timer_before(const void *a, const void *b)
{
    return ((const sim_timer *)a)->due_ms < ((const sim_timer *)b)->due_ms;
}

static void timer_moved(void *ctx, void *elem, size_t pos)
{
    sim *s = ctx;
    s->fans[((sim_timer *)elem)->fan].heap_idx = pos == ONS_HEAP_NONE ? -1 : (int32_t)pos;
}

/* The earliest timer, or NULL. */
static const sim_timer *timer_first(const sim *s)
{
    return ons_heap_at(&s->timers, 0);
}

/* Schedules fan f at due_ms (a fan has at most one timer). The heap holds
 * room for every fan, so this never fails. */
static void timer_set(sim *s, uint32_t f, int64_t due_ms)
{
    sim_fan *fan = &s->fans[f];
    if (fan->heap_idx >= 0) { /* replace */
        sim_timer *t = ons_heap_at(&s->timers, (size_t)fan->heap_idx);
        t->due_ms = due_ms;
        ons_heap_fix(&s->timers, (size_t)fan->heap_idx);
        return;
    }
    sim_timer t = {due_ms, f};
    (void)ons_heap_push(&s->timers, &t);
}

static uint32_t timer_pop(sim *s)
{
    sim_timer t;
    ons_heap_remove(&s->timers, 0, &t);
    return t.fan;
}

/* ---- fan script --------------------------------------------------------------- */

static void fan_step(sim *s, uint32_t f);
static void view_send(sim *s, uint32_t f);

static void fan_done(sim *s, sim_fan *fan, enum sim_outcome o)
{
    fan->phase = P_DONE;
    fan->outcome = (uint8_t)o;
    s->outcome[o]++;
    s->last_change_ms = sim_now_ms(s);
    free(fan->token);
    fan->token = NULL;
    free(fan->pow);
    fan->pow = NULL;
}

static void log_answer(sim *s, const sim_fan *fan, int64_t pos)
{
    if (!s->log)
        return;
    if (pos >= 0)
        fprintf(s->log, "%" PRId64 "\t%s\t%" PRId64 "\t%s\t%" PRId64 "\n", fan->user_id,
                fan->intent_id, sim_now_ms(s), q_intent_state_name(fan->state), pos);
    else
        fprintf(s->log, "%" PRId64 "\t%s\t%" PRId64 "\t%s\t-\n", fan->user_id, fan->intent_id,
                sim_now_ms(s), q_intent_state_name(fan->state));
}

/* Error code string of an {"error":{"code":...}} body, or "". */
static void error_code(json_t *j, char *out, size_t cap)
{
    json_t *c = json_object_get(json_object_get(j, "error"), "code");
    snprintf(out, cap, "%s", json_is_string(c) ? json_string_value(c) : "");
}

/* Whether an error answer is sent again later, as web/api.js's
 * ApiError.transient says: overload (429, 503, and a gateway's 502/504)
 * and the 409s the server marks with Retry-After (docs/api.md: a request
 * with the same Idempotency-Key still running, a cancel waiting for its
 * intent), whose conflict clears by itself. */
static int retry_later(const ons_httpc_resp *r)
{
    return r->status == 429 || r->status == 503 || r->status == 502 || r->status == 504 ||
           (r->status == 409 && r->retry_after_s >= 0);
}

/* The wait before a fan's next try after r (NULL: a transport error),
 * the fan's tries-th failed answer in a row (from 1), as web/api.js's
 * backoffMs: 0.5 s doubling to RETRY_MAX_MS, jittered over its upper
 * half, and never sooner than Retry-After plus up to half of it again (a
 * crowd refused at once comes back spread over that time, not at one
 * instant). A join key left claimed by a request that lost Redis
 * mid-claim answers 409 until idem.inflight_ttl_s (60 s): the growing
 * wait outlasts it within max_retries. */
static int64_t retry_wait_ms(sim *s, const ons_httpc_resp *r, unsigned tries)
{
    unsigned up = tries > 0 ? tries - 1 : 0;
    double base = 500.0 * (double)(1u << (up < 6 ? up : 6));
    if (base > RETRY_MAX_MS)
        base = RETRY_MAX_MS;
    double wait = base / 2 + rng_unit(&s->rng) * base / 2;
    if (r && r->retry_after_s >= 0) {
        double ra = (double)r->retry_after_s * 1000;
        if (ra < 250)
            ra = 250;
        ra += rng_unit(&s->rng) * ra / 2;
        if (ra > wait)
            wait = ra;
    }
    return (int64_t)wait;
}

/* The fan index travels as the callback's pointer value; the callbacks
 * find the sim (one per process) here. */
#define FAN_ARG(f) ((void *)(uintptr_t)((f) + 1))
#define ARG_FAN(a) ((uint32_t)((uintptr_t)(a)-1))
static sim *the_sim;

static int lane_request(sim *s, int lane, int urgent, const ons_httpc_req *q, ons_httpc_cb cb,
                        void *arg)
{
    return sim_lanes_request(&s->lanes, lane, urgent, q, cb, arg);
}

/* The lane of a fan's request: before its join is answered it arrives
 * (the page load, the challenge, the join); after, it is the fan's own
 * (polls, the page's event refreshes, a checkout or delete). */
static int fan_lane(const sim_fan *fan)
{
    return fan->phase == P_ARRIVING || fan->phase == P_LOADING || fan->phase == P_JOINING
               ? SIM_LANE_ARRIVE
               : SIM_LANE_FAN;
}

/* Whether a fan's request goes before the other fans' requests on its
 * lane. Arriving, a fan whose page has loaded (its challenge and join)
 * goes before the page loads of fans who arrived after it; joined, the
 * steps of a fan holding seats (its checkout or delete, the polls that
 * follow its hold and its payment) go before the others' polls and views.
 * A real fan's browser sends these at once on its own connection; without
 * this, a join queued behind every later arrival's page load (the lane is
 * FIFO over the pool's connections) and came in only once all of them
 * were answered. */
static int fan_urgent(const sim_fan *fan)
{
    return fan->phase == P_JOINING || fan->phase == P_ACTING || fan->state == Q_INTENT_RESERVED ||
           fan->state == Q_INTENT_PAYING;
}

/* header: one more "Name: value" line, or NULL (the join's Onsale-PoW). */
static void send_request_hdr(sim *s, uint32_t f, const char *method, const char *path,
                             const char *idem, const char *header, const char *body,
                             ons_httpc_cb cb)
{
    sim_fan *fan = &s->fans[f];
    if (s->draining)
        return;
    const char *headers[] = {header, NULL};
    ons_httpc_req req = {.method = method,
                         .path = path,
                         .token = fan->token,
                         .idem_key = idem,
                         .headers = header ? headers : NULL,
                         .body = body};
    if (lane_request(s, fan_lane(fan), fan_urgent(fan), &req, cb, FAN_ARG(f)) != 0) {
        sim_count_code(s, 0, NULL);
        fan_done(s, fan, O_ERROR);
    }
}

static void send_request(sim *s, uint32_t f, const char *method, const char *path, const char *idem,
                         const char *body, ons_httpc_cb cb)
{
    send_request_hdr(s, f, method, path, idem, NULL, body, cb);
}

/* Retries after a transport error: a join is sent again (same
 * Idempotency-Key), anything else resumes polling (a reserved answer
 * repeats an unacknowledged checkout or delete). */
static void after_transport_error(sim *s, uint32_t f)
{
    sim_fan *fan = &s->fans[f];
    if (++fan->retries > s->o.max_retries) {
        fan_done(s, fan, O_ERROR);
        return;
    }
    if (fan->phase != P_JOINING)
        fan->phase = P_POLLING;
    timer_set(s, f, sim_now_ms(s) + retry_wait_ms(s, NULL, ++fan->tries));
}

/* The answer's time `name` (RFC 3339 with milliseconds) on the run's
 * clock, or -1 when absent. The server's clock is taken to be this
 * machine's (same host, or NTP). */
static int64_t server_time_ms(const sim *s, json_t *j, const char *name)
{
    const char *at = json_string_value(json_object_get(j, name));
    struct tm tm = {0};
    int ms = 0;
    const char *rest = at ? strptime(at, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!rest || sscanf(rest, ".%3dZ", &ms) != 1)
        return -1;
    return (int64_t)timegm(&tm) * 1000 + ms - s->start_wall_ms;
}

/* Keeps the first ETA a queued fan is shown (the fan page shows it too). */
static void note_eta(const sim *s, sim_fan *fan, json_t *j, int64_t now)
{
    json_t *ms = json_object_get(j, "eta_ms"), *eta = json_object_get(j, "eta_seconds");
    if (fan->eta_ms >= 0)
        return;
    /* the estimate itself when given: whole seconds would make a fan
     * reached in 30 ms look a second early */
    if (json_is_integer(ms) && json_integer_value(ms) >= 0)
        fan->eta_ms = json_integer_value(ms);
    else if (json_is_number(eta) && json_number_value(eta) >= 0)
        fan->eta_ms = (int64_t)(json_number_value(eta) * 1000.0);
    else
        return;
    fan->eta_at_ms = now;
    fan->eta_pos = json_integer_value(json_object_get(j, "position"));
    /* the moment promised, on the server's clock: free of the answer's
     * time on the wire and in the simulator's queue */
    fan->eta_due_ms = server_time_ms(s, j, "eta_at");
}

static void schedule_poll(sim *s, uint32_t f, json_t *j)
{
    json_t *pa = json_object_get(j, "poll_after_ms");
    int64_t wait = json_is_integer(pa) ? json_integer_value(pa) : RETRY_DEF_MS;
    if (wait < POLL_MIN_MS)
        wait = POLL_MIN_MS;
    if (wait > POLL_MAX_MS)
        wait = POLL_MAX_MS;
    s->fans[f].phase = P_POLLING;
    timer_set(s, f, sim_now_ms(s) + wait);
}

/* The JSON body of an answer, or NULL (the caller json_decrefs it). */
static json_t *answer_json(const ons_httpc_resp *r)
{
    return r->body_len ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
}

/* The fan's first answer (other than queued or waiting) came now. */
static void note_answer(sim *s, sim_fan *fan, int64_t now)
{
    if (fan->answer_ms >= 0)
        return;
    fan->answer_ms = now;
    sim_samples_add(&s->answer_lat, (double)(now - fan->join_ms), &s->rng);
}

/* The fan was told sold out now. */
static void note_sold_out(sim *s, int64_t now)
{
    s->sold_out_answers++;
    if (s->sold_out_ms < 0)
        s->sold_out_ms = now;
}

/* A 202 to a join: the fan has an intent and polls it. */
static void join_accepted(sim *s, uint32_t f, json_t *j, int64_t now)
{
    sim_fan *fan = &s->fans[f];
    json_t *id = json_object_get(j, "intent_id");
    json_t *pos = json_object_get(j, "position");
    if (!json_is_string(id) || strlen(json_string_value(id)) != 32) {
        sim_count_code(s, 202, "malformed");
        fan_done(s, fan, O_ERROR);
        return;
    }
    s->joins_accepted++;
    if (s->first_join_ms < 0)
        s->first_join_ms = fan->join_ms;
    snprintf(fan->intent_id, sizeof fan->intent_id, "%s", json_string_value(id));
    fan->state = Q_INTENT_QUEUED;
    fan->queued_seen_ms = now;
    if (json_is_integer(pos))
        note_eta(s, fan, j, now); /* a prequeued join has no place yet */
    fan->last_pos = json_is_integer(pos) ? json_integer_value(pos) : -1;
    log_answer(s, fan, fan->last_pos);
    schedule_poll(s, f, j);
}

/* A join answered with an error code (status not 0 or 202). */
static void join_refused(sim *s, uint32_t f, const ons_httpc_resp *r, const char *code, int64_t now)
{
    sim_fan *fan = &s->fans[f];
    if (retry_later(r) && fan->retries < s->o.max_retries) {
        fan->retries++;
        s->join_retries++;
        sim_count_code(s, r->status, code);
        fan->phase = P_ARRIVING;
        timer_set(s, f, now + retry_wait_ms(s, r, ++fan->tries));
        return;
    }
    sim_count_code(s, r->status, code);
    if (r->status == 403 && strncmp(code, "pow_", 4) == 0 && fan->pow_tries < POW_TRIES) {
        fan->pow_needed = 1; /* asked for, raised meanwhile, or expired: a new challenge */
        fan->phase = P_ARRIVING;
        timer_set(s, f, now);
        return;
    }
    if (r->status == 409 && strcmp(code, "sold_out") == 0) {
        note_sold_out(s, now);
        note_answer(s, fan, now);
        fan_done(s, fan, O_SOLD_OUT);
    } else {
        fan_done(s, fan, O_REFUSED);
    }
}

static void join_answer(void *arg, const ons_httpc_resp *r)
{
    sim *s = the_sim;
    uint32_t f = ARG_FAN(arg);
    sim_fan *fan = &s->fans[f];
    json_t *j = answer_json(r);
    char code[48] = "";
    int64_t now = sim_now_ms(s);

    sim_samples_add(&s->join_lat, r->latency_ms, &s->rng);
    if (r->status != 0) {
        free(fan->pow); /* spent, or refused: a retry needs a new one */
        fan->pow = NULL;
    }
    if (r->status == 202) {
        join_accepted(s, f, j, now);
    } else if (r->status == 0) {
        sim_count_code(s, 0, NULL);
        after_transport_error(s, f);
    } else {
        error_code(j, code, sizeof code);
        join_refused(s, f, r, code, now);
    }
    json_decref(j);
}

/* Decides what a fan does with its fresh reservation. */
static void decide(sim *s, sim_fan *fan)
{
    double u = rng_unit(&s->rng);
    if (u < s->o.checkout_prob) {
        if (s->checkout >= 0) {
            fan->plan = PLAN_CHECKOUT;
            return;
        }
        s->checkout_skipped++;
        fan->plan = PLAN_KEEP;
        return;
    }
    u = rng_unit(&s->rng);
    if (u < s->o.abandon_prob)
        fan->plan = strcmp(s->o.abandon_mode, "expire") == 0 ? PLAN_EXPIRE : PLAN_DELETE;
    else
        fan->plan = PLAN_KEEP;
}

static void act_answer(void *arg, const ons_httpc_resp *r);
static void order_start(sim *s, uint32_t f, const ons_httpc_resp *r);

/* Checkout attempts per fan before it gives up paying. */
#define SIM_PAY_ATTEMPTS 3
/* A reservation still (or again) held this long after an accepted checkout
 * had its payment fail, even when the poll never caught it in PAYING. */
#define SIM_PAY_SETTLE_MS 5000

/* Whether a fan whose checkout was accepted may pay again, i.e. the
 * payment did not go through: as the page, once its order poll says the
 * order failed (web/fan.js pollOrder gives the pay button back then, and
 * not while the order is pending); for a 202 that named no order, when the
 * reservation is held again after PAYING or SIM_PAY_SETTLE_MS. */
static int payment_failed(const sim *s, const sim_fan *fan, int64_t now)
{
    (void)s;
    if (!fan->acted || fan->pay_attempts == 0 || fan->order_state == ORDER_PENDING)
        return 0;
    if (fan->order_state == ORDER_FAILED)
        return 1;
    return fan->saw_paying || now - fan->acted_ms > SIM_PAY_SETTLE_MS;
}

static void act(sim *s, uint32_t f, json_t *j)
{
    sim_fan *fan = &s->fans[f];
    char path[128], body[256], idem[64];
    switch (fan->plan) {
    case PLAN_CHECKOUT:
        snprintf(path, sizeof path, "/v1/reservations/%s/checkout", fan->reservation_id);
        snprintf(body, sizeof body, "{\"payment_method\":\"%s\"}", s->o.payment_method);
        /* a new key per attempt: a retry after a decline is a new payment */
        snprintf(idem, sizeof idem, "co-%" PRId64 "-%s-%u", fan->user_id, fan->reservation_id,
                 (unsigned)fan->pay_attempts);
        fan->phase = P_ACTING;
        send_request(s, f, "POST", path, idem, body, act_answer);
        return;
    case PLAN_DELETE:
        snprintf(path, sizeof path, "/v1/reservations/%s", fan->reservation_id);
        fan->phase = P_ACTING;
        s->deletes++;
        send_request(s, f, "DELETE", path, NULL, NULL, act_answer);
        return;
    case PLAN_EXPIRE:
        schedule_poll(s, f, j);
        return;
    default:
        fan_done(s, fan, O_KEPT);
        return;
    }
}

static void act_answer(void *arg, const ons_httpc_resp *r)
{
    sim *s = the_sim;
    uint32_t f = ARG_FAN(arg);
    sim_fan *fan = &s->fans[f];
    if (fan->phase == P_DONE)
        return; /* its order poll said paid meanwhile */
    if (fan->plan == PLAN_CHECKOUT) {
        if (r->status == 404 || r->status == 405) {
            if (s->checkout == 0)
                fprintf(stderr,
                        "onsale-sim: checkout not available (POST "
                        "/v1/reservations/{id}/checkout answered %d): fans keep their "
                        "holds instead\n",
                        r->status);
            s->checkout = -1;
            s->checkout_skipped++;
            fan_done(s, fan, O_KEPT);
            return;
        }
        if (r->status == 202 || r->status == 200) {
            if (s->checkout == 0)
                sim_gateway_knobs(s);
            s->checkout = 1;
            fan->acted = 1;
            fan->pay_attempts++;
            fan->saw_paying = 0;
            fan->acted_ms = sim_now_ms(s);
            fan->tries = 0;
            order_start(s, f, r);
        } else if (r->status == 0) {
            after_transport_error(s, f);
            return;
        } else if (retry_later(r) && fan->retries < s->o.max_retries) {
            fan->retries++;
            s->checkout_retries++;
            sim_count_code(s, r->status, "checkout_retried");
            timer_set(s, f,
                      sim_now_ms(s) + retry_wait_ms(s, r, ++fan->tries)); /* fan_step: P_ACTING */
            return;
        } else {
            s->checkout_errors++;
            sim_count_code(s, r->status, "checkout");
        }
    } else if (r->status == 0) {
        after_transport_error(s, f);
        return;
    } else if (r->status != 202 && r->status != 200) {
        sim_count_code(s, r->status, "delete_reservation");
    }
    fan->acted = 1; /* an error answer is not repeated either */
    fan->phase = P_POLLING;
    timer_set(s, f, sim_now_ms(s) + POLL_MIN_MS);
}

/* Takes the reservation a fan's intent now holds; 0, or -1 after ending
 * the fan when the answer names none. */
static int take_reservation(sim *s, sim_fan *fan, json_t *j)
{
    json_t *res = json_object_get(j, "reservation");
    json_t *rid = json_object_get(res, "reservation_id");
    json_t *seats = json_object_get(res, "seats");
    if (!json_is_string(rid) || strlen(json_string_value(rid)) != 32) {
        sim_count_code(s, 200, "reservation_malformed");
        fan_done(s, fan, O_ERROR);
        return -1;
    }
    snprintf(fan->reservation_id, sizeof fan->reservation_id, "%s", json_string_value(rid));
    fan->seats_held = (uint8_t)(json_is_array(seats) ? json_array_size(seats) : fan->qty);
    s->reserved_ever++;
    s->seats_reserved_ever += fan->seats_held;
    return 0;
}

/* The fan's intent is reserved: decide and act on a new hold, repeat a lost
 * request, retry a failed payment, or keep polling. */
static void poll_reserved(sim *s, uint32_t f, json_t *j, int64_t now)
{
    sim_fan *fan = &s->fans[f];
    if (fan->plan == PLAN_NONE) {
        if (take_reservation(s, fan, j) == 0) {
            decide(s, fan);
            act(s, f, j);
        }
    } else if ((fan->plan == PLAN_CHECKOUT || fan->plan == PLAN_DELETE) && !fan->acted) {
        act(s, f, j); /* the request was lost in transport: again */
    } else if (fan->plan == PLAN_CHECKOUT && payment_failed(s, fan, now)) {
        /* Held again after a checkout: the charge was declined or
         * failed. Like a person, try again a few times, then give up
         * paying and keep the hold until it lapses. */
        if (fan->pay_attempts < SIM_PAY_ATTEMPTS) {
            fan->acted = 0;
            act(s, f, j);
        } else {
            fan_done(s, fan, O_KEPT);
        }
    } else {
        schedule_poll(s, f, j); /* expire plan, or the checkout/delete not applied yet */
    }
}

/* Records what a poll showed: state idx at position p (-1: none). */
static void poll_seen(sim *s, sim_fan *fan, json_t *j, int idx, int64_t now)
{
    json_t *pos = json_object_get(j, "position");
    int64_t p = json_is_integer(pos) ? json_integer_value(pos) : -1;
    if (idx != fan->state)
        s->last_change_ms = now;
    if (fan->state == Q_INTENT_QUEUED && idx != Q_INTENT_QUEUED && fan->served_ms < 0) {
        fan->served_ms = now;
        fan->left_ms = server_time_ms(s, j, "left_queue_at");
    }
    if (idx == Q_INTENT_QUEUED)
        fan->queued_seen_ms = now;
    if (idx == Q_INTENT_QUEUED && p >= 0)
        note_eta(s, fan, j, now);
    fan->state = (uint8_t)idx;
    if (p >= 0)
        fan->last_pos = p;
    log_answer(s, fan, p);
    if (idx != Q_INTENT_QUEUED && idx != Q_INTENT_WAITING)
        note_answer(s, fan, now);
}

/* The fan's next step for intent state idx. */
static void poll_next(sim *s, uint32_t f, json_t *j, int idx, int64_t now)
{
    sim_fan *fan = &s->fans[f];
    json_t *reason;
    switch (idx) {
    case Q_INTENT_PAYING:
        fan->saw_paying = 1;
        schedule_poll(s, f, j);
        break;
    case Q_INTENT_QUEUED:
    case Q_INTENT_WAITING:
        schedule_poll(s, f, j);
        break;
    case Q_INTENT_RESERVED:
        poll_reserved(s, f, j, now);
        break;
    case Q_INTENT_PURCHASED:
        fan_done(s, fan, O_PURCHASED);
        break;
    case Q_INTENT_EXPIRED:
        fan_done(s, fan, O_EXPIRED);
        break;
    case Q_INTENT_RELEASED:
        fan_done(s, fan, O_RELEASED);
        break;
    default: /* rejected */
        reason = json_object_get(j, "reason");
        if (json_is_string(reason) &&
            q_reason_parse(json_string_value(reason)) == Q_REASON_SOLD_OUT) {
            note_sold_out(s, now);
            fan_done(s, fan, O_SOLD_OUT);
        } else {
            fan_done(s, fan, O_REJECTED);
        }
    }
}

static void poll_answer(void *arg, const ons_httpc_resp *r)
{
    sim *s = the_sim;
    uint32_t f = ARG_FAN(arg);
    sim_fan *fan = &s->fans[f];
    json_t *j = answer_json(r);
    int64_t now = sim_now_ms(s);

    sim_samples_add(&s->poll_lat, r->latency_ms, &s->rng);
    s->polls++;
    fan->polls++;
    if (fan->phase == P_DONE) { /* its order poll said paid meanwhile */
        json_decref(j);
        return;
    }
    json_t *st = json_object_get(j, "state");
    int idx = json_is_string(st) ? q_intent_state_parse(json_string_value(st)) : -1;
    if (r->status == 429 || r->status == 503) {
        timer_set(s, f, now + retry_wait_ms(s, r, ++fan->tries));
    } else if (r->status == 0) {
        s->poll_errors++;
        after_transport_error(s, f);
    } else if ((retry_later(r) || r->status >= 500) && ++fan->retries <= s->o.max_retries) {
        /* the page keeps polling after any error but 401/403/404, backing off */
        char code[48];
        error_code(j, code, sizeof code);
        s->poll_errors++;
        sim_count_code(s, r->status, code[0] ? code : "poll");
        timer_set(s, f, now + retry_wait_ms(s, r, ++fan->tries));
    } else if (r->status != 200 || idx < 0) {
        char code[48];
        error_code(j, code, sizeof code);
        s->poll_errors++;
        sim_count_code(s, r->status, code[0] ? code : "poll");
        fan_done(s, fan, O_ERROR);
    } else {
        fan->tries = 0;
        poll_seen(s, fan, j, idx, now);
        poll_next(s, f, j, idx, now);
    }
    json_decref(j);
}

/* The challenge for a join: solve it and send the join with it. */
static void challenge_answer(void *arg, const ons_httpc_resp *r)
{
    sim *s = the_sim;
    uint32_t f = ARG_FAN(arg);
    sim_fan *fan = &s->fans[f];
    json_t *j = answer_json(r);
    char code[48] = "", nonce[24];
    if (r->status == 0) {
        sim_count_code(s, 0, NULL);
        fan->pow_tries--; /* the same challenge is fetched again */
        after_transport_error(s, f);
        goto done;
    }
    if (r->status != 200) {
        error_code(j, code, sizeof code);
        sim_count_code(s, r->status, code);
        if (retry_later(r) && fan->retries < s->o.max_retries) {
            fan->retries++;
            fan->pow_tries--;
            fan->phase = P_ARRIVING;
            timer_set(s, f, sim_now_ms(s) + retry_wait_ms(s, r, ++fan->tries));
        } else {
            fan_done(s, fan, O_REFUSED);
        }
        goto done;
    }
    json_t *ch = json_object_get(j, "challenge"), *d = json_object_get(j, "difficulty");
    fan->phase = P_ARRIVING;
    if (json_is_string(ch) && json_is_integer(d)) {
        int64_t t0 = ons_mono_ns();
        size_t cap = strlen(json_string_value(ch)) + sizeof nonce + 2;
        if (ing_pow_solve(json_string_value(ch), (int)json_integer_value(d), 0, POW_MAX_HASH, nonce,
                          sizeof nonce) != 0 ||
            !(fan->pow = malloc(cap))) {
            sim_count_code(s, 200, "pow_unsolved");
            fan_done(s, fan, O_ERROR);
            goto done;
        }
        snprintf(fan->pow, cap, "%s:%s", json_string_value(ch), nonce);
        s->pow_solves++;
        sim_samples_add(&s->pow_ms, (double)(ons_mono_ns() - t0) / 1e6, &s->rng);
    } else {
        fan->pow_needed = 0; /* no work asked (any more) */
    }
    fan_step(s, f);
done:
    json_decref(j);
}

/* A fan's timer fired: do the next step of its script. */
static void fan_step(sim *s, uint32_t f)
{
    sim_fan *fan = &s->fans[f];
    char path[96], body[160], idem[48];
    switch (fan->phase) {
    case P_ARRIVING:
        if (!fan->token) {
            int64_t ttl = s->o.max_seconds + TOKEN_SLACK;
            if (ons_auth_mint(s->o.auth_secret, fan->user_id, ONS_ROLE_FAN, (int64_t)time(NULL),
                              ttl, &fan->token) != 0) {
                fan_done(s, fan, O_ERROR);
                return;
            }
            fan->join_ms = sim_now_ms(s);
            if (s->o.event_view_ms > 0) {
                /* The page loads the event first, and its answer sends the
                 * join or ends the visit (page_loaded), maybe within this
                 * call (a refused send is answered at once). */
                fan->phase = P_LOADING;
                view_send(s, f);
                if (fan->phase != P_LOADING || fan->view_inflight)
                    return;
                fan->phase = P_ARRIVING; /* not sent (no memory): join without it */
            }
            s->joins_sent++;
        }
        fan->phase = P_JOINING;
        if (fan->pow_needed && !fan->pow) {
            fan->pow_tries++;
            snprintf(path, sizeof path, "/v1/events/%" PRId64 "/challenge", s->event_id);
            send_request(s, f, "GET", path, NULL, NULL, challenge_answer);
            return;
        }
        snprintf(path, sizeof path, "/v1/events/%" PRId64 "/intents", s->event_id);
        snprintf(body, sizeof body, "{\"quantity\":%d%s}", fan->qty,
                 fan->adjacent ? "" : ",\"adjacent\":false");
        snprintf(idem, sizeof idem, "join-%" PRId64 "-%" PRId64, fan->user_id, s->event_id);
        char pow[ING_POW_CHALLENGE_MAX + 64] = "";
        if (fan->pow)
            snprintf(pow, sizeof pow, "%s: %s", ING_POW_HEADER, fan->pow);
        send_request_hdr(s, f, "POST", path, idem, fan->pow ? pow : NULL, body, join_answer);
        return;
    case P_JOINING: /* again after a transport error, same Idempotency-Key */
        fan->phase = P_ARRIVING;
        fan_step(s, f);
        return;
    case P_POLLING:
        snprintf(path, sizeof path, "/v1/intents/%s", fan->intent_id);
        send_request(s, f, "GET", path, NULL, NULL, poll_answer);
        return;
    case P_ACTING: /* a checkout again after an answer to retry later, same key */
        act(s, f, NULL);
        return;
    default:
        return;
    }
}

/* ---- the page's own timers (its event view and order polls) -------------------- */

/* Each fan has at most one entry in each of these heaps (one view, one
 * order poll at a time), so they never grow past their fans. */
static void due_push(ons_heap *h, uint32_t f, int64_t due)
{
    sim_timer t = {due, f};
    (void)ons_heap_push(h, &t); /* room for every fan */
}

/* Sends, with send, every entry of h that is due. */
static void due_send(sim *s, ons_heap *h, int64_t now, void (*send)(sim *, uint32_t))
{
    const sim_timer *t;
    while ((t = ons_heap_at(h, 0)) && t->due_ms <= now) {
        sim_timer due;
        ons_heap_remove(h, 0, &due);
        send(s, due.fan);
    }
}

/* ---- the page's order poll ----------------------------------------------------- */

/* Once a checkout is accepted the page polls GET /v1/orders/{id} every
 * ORDER_POLL_MS while the order is pending, beside its intent polls
 * (web/fan.js pollOrder): "paid" ends the visit with the tickets; a
 * failed or refunded order leaves the intent's polls to tell the rest
 * (the seats held again, or released). */
#define ORDER_POLL_MS 1000

static void order_send(sim *s, uint32_t f);

/* The accepted checkout r names the order the page polls from now on. */
static void order_start(sim *s, uint32_t f, const ons_httpc_resp *r)
{
    sim_fan *fan = &s->fans[f];
    json_t *j = answer_json(r);
    json_t *id = json_object_get(j, "order_id");
    if (json_is_string(id) && strlen(json_string_value(id)) < sizeof fan->order_id) {
        snprintf(fan->order_id, sizeof fan->order_id, "%s", json_string_value(id));
        fan->order_state = ORDER_PENDING;
        fan->order_tries = 0;
        order_send(s, f);
    }
    json_decref(j);
}

static void order_answer(void *arg, const ons_httpc_resp *r)
{
    sim *s = the_sim;
    uint32_t f = ARG_FAN(arg);
    sim_fan *fan = &s->fans[f];
    fan->order_inflight = 0;
    s->order_polls++;
    if (fan->phase == P_DONE || s->draining)
        return;
    int64_t now = sim_now_ms(s);
    if (r->status != 200) {
        s->order_poll_errors++;
        due_push(&s->orders_heap, f,
                 now + (r->status == 404
                            ? 2000
                            : retry_wait_ms(s, r->status ? r : NULL, ++fan->order_tries)));
        return;
    }
    fan->order_tries = 0;
    json_t *j = answer_json(r);
    json_t *st = json_object_get(j, "state");
    const char *state = json_is_string(st) ? json_string_value(st) : "";
    if (strcmp(state, "pending") == 0)
        due_push(&s->orders_heap, f, now + ORDER_POLL_MS);
    else if (strcmp(state, "paid") == 0)
        fan_done(s, fan, O_PURCHASED);
    else /* failed or refunded: the intent's polls tell the rest */
        fan->order_state = ORDER_FAILED;
    json_decref(j);
}

static void order_send(sim *s, uint32_t f)
{
    sim_fan *fan = &s->fans[f];
    char path[96];
    if (s->draining || fan->phase == P_DONE || fan->order_inflight ||
        fan->order_state != ORDER_PENDING)
        return;
    snprintf(path, sizeof path, "/v1/orders/%s", fan->order_id);
    fan->order_inflight = 1; /* before: a refused request is answered at once */
    if (lane_request(s, fan_lane(fan), fan_urgent(fan),
                     &(ons_httpc_req){.method = "GET", .path = path, .token = fan->token},
                     order_answer, FAN_ARG(f)) != 0) {
        fan->order_inflight = 0;
        s->order_poll_errors++;
    }
}

/* ---- the page's event view ------------------------------------------------------ */

/* The page waits max(event_view_ms, the view's refresh_after_ms) before
 * the next view (web/fan.js loadEvent); every fan watches one event, so
 * the last hint seen is the one each fan's page would follow. */
static void note_view_refresh(sim *s, const ons_httpc_resp *r)
{
    const char *k = r->status == 200 ? strstr(r->body, "\"refresh_after_ms\":") : NULL;
    if (k)
        s->view_refresh_ms = strtoll(k + strlen("\"refresh_after_ms\":"), NULL, 10);
}

/* The integer after the last `"key":` of body, or -1: the view's own
 * counters follow its tiers', which use the same names. */
static long long last_int(const char *body, const char *key)
{
    const char *at = NULL;
    size_t n = strlen(key);
    for (const char *p = body; (p = strstr(p, key)) != NULL; p += n)
        at = p;
    return at ? strtoll(at + n, NULL, 10) : -1;
}

/* What the page shows a fan: every seat held (none available) or sold.
 * The view's counters are at most event_view.ttl_ms (1 s) older than the
 * owner's last commit (docs/api.md); the admin sample, paced, may come
 * later. */
static void note_view_counts(sim *s, const ons_httpc_resp *r)
{
    if (r->status != 200 || (s->all_taken_ms >= 0 && s->sold_out_ms >= 0))
        return;
    int64_t now = sim_now_ms(s);
    if (s->all_taken_ms < 0 && last_int(r->body, "\"available\":") == 0)
        s->all_taken_ms = now;
    if (s->sold_out_ms < 0 && s->seats_total > 0 &&
        last_int(r->body, "\"sold\":") >= s->seats_total)
        s->sold_out_ms = now;
}

/* The page's first view answered r: web/fan.js ends the visit when it
 * says sold out (renderJoinable), else the fan joins (any other answer
 * too: the page would retry it, the join tells the fan the same). */
static void page_loaded(sim *s, uint32_t f, const ons_httpc_resp *r)
{
    sim_fan *fan = &s->fans[f];
    if (r->status == 200 && strstr(r->body, "\"status\":\"sold_out\"")) {
        int64_t now = sim_now_ms(s);
        note_sold_out(s, now);
        note_answer(s, fan, now);
        s->sold_out_views++;
        fan_done(s, fan, O_SOLD_OUT);
        return;
    }
    fan->phase = P_ARRIVING;
    if (s->draining)
        return;
    s->joins_sent++;
    fan_step(s, f);
}

static void view_answer(void *arg, const ons_httpc_resp *r)
{
    sim *s = the_sim;
    uint32_t f = ARG_FAN(arg);
    sim_fan *fan = &s->fans[f];
    fan->view_inflight = 0;
    s->views++;
    if (r->status == 200 || r->status == 304)
        sim_samples_add(&s->view_lat, r->latency_ms, &s->rng);
    else
        s->view_errors++;
    note_view_refresh(s, r);
    note_view_counts(s, r);
    if (fan->phase == P_LOADING)
        page_loaded(s, f, r);
    int64_t wait = s->o.event_view_ms;
    if (s->view_refresh_ms > wait)
        wait = s->view_refresh_ms;
    if (fan->phase != P_DONE && !s->draining)
        due_push(&s->views_heap, f, sim_now_ms(s) + wait);
}

static void view_send(sim *s, uint32_t f)
{
    sim_fan *fan = &s->fans[f];
    char path[64];
    if (s->draining || fan->phase == P_DONE || fan->view_inflight)
        return;
    snprintf(path, sizeof path, "/v1/events/%" PRId64, s->event_id);
    fan->view_inflight = 1; /* before: a refused request is answered at once */
    if (lane_request(s, fan_lane(fan), 0, &(ons_httpc_req){.method = "GET", .path = path},
                     view_answer, FAN_ARG(f)) != 0) {
        fan->view_inflight = 0;
        s->view_errors++;
    }
}

/* ---- sampler ------------------------------------------------------------------- */

static void admin_answer(void *arg, const ons_httpc_resp *r)
{
    sim *s = the_sim;
    size_t i = (size_t)(uintptr_t)arg;
    s->admin_inflight = 0;
    /* the next one after three times this one's time: the server counts
     * the event's seats for it (200-1,500 ms of a PostgreSQL backend for
     * 50,000 seats on a busy box), and back to back that was most of a
     * core of the two the measured sale has */
    s->admin_next_ms = sim_now_ms(s) + 3 * (int64_t)r->latency_ms;
    json_t *j = r->status == 200 ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    if (!j) {
        if (r->status == 404 || r->status == 405 || r->status == 401 || r->status == 403)
            s->admin_ok = -1;
        return;
    }
    s->admin_ok = 1;
    sim_point *pt = &s->points[i];
    json_t *parts = json_object_get(j, "partitions"), *evs = json_object_get(j, "events"), *v;
    size_t k;
    pt->lag = 0;
    pt->drain_rate = 0;
    json_array_foreach(parts, k, v)
    {
        pt->lag += json_integer_value(json_object_get(v, "lag"));
        pt->drain_rate += json_number_value(json_object_get(v, "drain_rate"));
    }
    if (pt->drain_rate > s->max_drain_rate)
        s->max_drain_rate = pt->drain_rate;
    json_array_foreach(evs, k, v)
    {
        if (json_integer_value(json_object_get(v, "event_id")) != s->event_id)
            continue;
        pt->queued = json_integer_value(json_object_get(v, "queued"));
        pt->waiting = json_integer_value(json_object_get(v, "waiting"));
        pt->held = json_integer_value(json_object_get(v, "held"));
        pt->sold = json_integer_value(json_object_get(v, "sold"));
        pt->available = json_integer_value(json_object_get(v, "available"));
        int64_t now = sim_now_ms(s);
        if (pt->available == 0 && s->all_taken_ms < 0)
            s->all_taken_ms = now;
        if (pt->sold >= s->seats_total && s->sold_out_ms < 0)
            s->sold_out_ms = now;
    }
    json_decref(j);
}

static void sample(sim *s)
{
    if (ONS_VEC_RESERVE(s->points, s->cap_points, s->npoints + 1, 256))
        return;
    sim_point *pt = &s->points[s->npoints];
    memset(pt, 0, sizeof *pt);
    pt->t_s = (double)sim_now_ms(s) / 1000.0;
    pt->queued = pt->waiting = pt->held = pt->sold = pt->available = pt->lag = -1;
    for (size_t i = 0; i < s->nfans; i++) {
        const sim_fan *f = &s->fans[i];
        if (f->phase == P_DONE) {
            pt->fans_done++;
            if (f->outcome == O_KEPT)
                pt->fans_reserved++;
        } else if (f->state == Q_INTENT_QUEUED) {
            pt->fans_queued++;
        } else if (f->state == Q_INTENT_WAITING) {
            pt->fans_waiting++;
        } else if (f->state == Q_INTENT_RESERVED || f->state == Q_INTENT_PAYING) {
            pt->fans_reserved++;
        }
    }
    /* One at a time, and paced (admin_answer): the point keeps -1 when
     * none is sent. */
    size_t i = s->npoints++;
    if (s->admin_ok >= 0 && s->admin_token && !s->admin_inflight &&
        sim_now_ms(s) >= s->admin_next_ms) {
        s->admin_inflight = 1; /* before: a refused request is answered at once */
        if (lane_request(s, SIM_LANE_FAN, 0,
                         &(ons_httpc_req){
                             .method = "GET", .path = "/v1/admin/queues", .token = s->admin_token},
                         admin_answer, (void *)(uintptr_t)i) != 0)
            s->admin_inflight = 0;
    }
}

static void progress(sim *s, int final)
{
    const sim_point *pt = s->npoints ? &s->points[s->npoints - 1] : NULL;
    fprintf(stdout,
            "\r  t=%5.1fs  joined %lld/%zu  accepted %lld  queued %lld  waiting %lld  reserved "
            "%lld  done %lld  polls %lld  pending %zu   %s",
            (double)sim_now_ms(s) / 1000.0, s->joins_sent, s->nfans, s->joins_accepted,
            pt ? pt->fans_queued : 0, pt ? pt->fans_waiting : 0, s->reserved_ever,
            pt ? pt->fans_done : 0, s->polls, sim_lanes_pending(&s->lanes), final ? "\n" : "");
    fflush(stdout);
}

/* ---- run ----------------------------------------------------------------------- */

int sim_fans_init(sim *s)
{
    size_t n = (size_t)s->o.fans;
    s->fans = calloc(n, sizeof *s->fans);
    int rc = ons_heap_init(&s->timers, sizeof(sim_timer), n, n, timer_before, timer_moved, s);
    if (!rc)
        rc = ons_heap_init(&s->views_heap, sizeof(sim_timer), n, n, timer_before, NULL, NULL);
    if (!rc)
        rc = ons_heap_init(&s->orders_heap, sizeof(sim_timer), n, n, timer_before, NULL, NULL);
    if (rc || !s->fans)
        return ONS_ENOMEM;
    s->nfans = n;
    size_t nburst = (size_t)llround(s->o.burst_fraction * (double)n);
    size_t ntail = n - nburst;
    double rate = s->o.tail_seconds > 0 ? (double)ntail / (double)s->o.tail_seconds : 0;
    double t_tail = (double)s->o.burst_ms / 1000.0;
    for (size_t i = 0; i < n; i++) {
        sim_fan *f = &s->fans[i];
        f->user_id = s->o.user_base + (int64_t)i;
        f->heap_idx = -1;
        f->pow_needed = s->o.pow_difficulty > 0;
        f->state = S_NONE;
        f->join_ms = f->answer_ms = f->served_ms = f->eta_ms = f->eta_at_ms = -1;
        f->queued_seen_ms = f->left_ms = f->eta_due_ms = -1;
        f->last_pos = -1;
        f->qty = (uint8_t)(1 + rng_next(&s->rng) % (uint64_t)s->o.max_quantity);
        f->adjacent = rng_unit(&s->rng) >= s->o.non_adjacent_prob;
        if (i < nburst) {
            f->arrive_ms = (int64_t)(rng_unit(&s->rng) * (double)s->o.burst_ms);
        } else if (rate > 0) { /* Poisson tail: exponential gaps */
            t_tail += -log(1.0 - rng_unit(&s->rng)) / rate;
            f->arrive_ms = (int64_t)(t_tail * 1000.0);
        } else {
            f->arrive_ms = s->o.burst_ms;
        }
        if (f->arrive_ms > s->last_arrival_ms)
            s->last_arrival_ms = f->arrive_ms;
        timer_set(s, (uint32_t)i, f->arrive_ms);
    }
    return 0;
}

void sim_fans_fini(sim *s)
{
    for (size_t i = 0; i < s->nfans; i++)
        free(s->fans[i].token), free(s->fans[i].pow);
    free(s->fans);
    ons_heap_fini(&s->timers);
    ons_heap_fini(&s->views_heap);
    ons_heap_fini(&s->orders_heap);
    sim_lanes_clear(&s->lanes);
    free(s->points);
    free(s->view_lat.v);
    free(s->join_lat.v);
    free(s->pow_ms.v);
    free(s->poll_lat.v);
    free(s->answer_lat.v);
}

/* Whether every fan not done is waiting, arrivals are over and nothing has
 * changed for settle_ms: the sale is at rest until a hold expires. */
static int settled(sim *s, int64_t now, long long *active)
{
    long long busy = 0;
    *active = 0;
    /* the cheap conditions first: the walk over every fan, ten times a
     * second, was a fifth of the simulator's CPU in a 200,000-fan run,
     * taken from the server it measures on a shared box */
    if (now <= s->last_arrival_ms || now - s->last_change_ms < s->o.settle_ms)
        return 0;
    for (size_t i = 0; i < s->nfans; i++) {
        const sim_fan *f = &s->fans[i];
        if (f->phase == P_DONE)
            continue;
        (*active)++;
        if (!(f->phase == P_POLLING && f->state == Q_INTENT_WAITING && f->plan == PLAN_NONE))
            busy++;
    }
    return busy == 0;
}

/* Why the run stops now (sim.stopped_by: 0 all done, 1 settled with fans
 * still active, 2 max_seconds, 3 a signal), or -1 to go on. */
static int stop_reason(sim *s, int64_t now)
{
    long long active;
    if (stop_flag)
        return 3;
    if (settled(s, now, &active))
        return active ? 1 : 0;
    if (now >= s->o.max_seconds * 1000)
        return 2;
    return -1;
}

/* How long the loop may wait for answers: until the next timer or view is
 * due, at most 50 ms. */
static int64_t loop_wait_ms(const sim *s, int64_t now)
{
    int64_t wait = 50;
    if (timer_first(s) && timer_first(s)->due_ms - now < wait)
        wait = timer_first(s)->due_ms - now;
    const sim_timer *v = ons_heap_at(&s->views_heap, 0);
    if (v && v->due_ms - now < wait)
        wait = v->due_ms - now;
    const sim_timer *o = ons_heap_at(&s->orders_heap, 0);
    if (o && o->due_ms - now < wait)
        wait = o->due_ms - now;
    return wait < 0 ? 0 : wait;
}

/* Lets requests in flight finish (timers are dropped, nothing new is sent)
 * and ends every fan still going by the state it was last seen in. */
static void drain(sim *s)
{
    int64_t deadline = sim_now_ms(s) + DRAIN_MS;
    ons_heap_clear(&s->timers);
    s->draining = 1;
    while (sim_lanes_pending(&s->lanes) > 0 && sim_now_ms(s) < deadline)
        ons_httpc_poll(s->http, 50);
    sample(s);
    while (sim_lanes_pending(&s->lanes) > 0 && sim_now_ms(s) < deadline)
        ons_httpc_poll(s->http, 50);
    for (size_t i = 0; i < s->nfans; i++) {
        sim_fan *f = &s->fans[i];
        if (f->phase == P_DONE)
            continue;
        f->heap_idx = -1;
        if (f->state == Q_INTENT_WAITING)
            fan_done(s, f, O_WAITING);
        else if (f->state == Q_INTENT_QUEUED)
            fan_done(s, f, O_QUEUED);
        else if (f->state == Q_INTENT_RESERVED || f->state == Q_INTENT_PAYING)
            fan_done(s, f, O_KEPT);
        else if (f->state == S_NONE)
            fan_done(s, f, O_NONE);
        else
            fan_done(s, f, O_ERROR);
    }
}

int sim_fans_run(sim *s)
{
    int64_t next_progress = 0, next_sample = 0, next_check = 0;
    int tty = s->o.progress && isatty(STDOUT_FILENO);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    the_sim = s;
    s->first_join_ms = s->sold_out_ms = s->all_taken_ms = -1;
    for (;;) {
        int64_t now = sim_now_ms(s);
        while (timer_first(s) && timer_first(s)->due_ms <= now)
            fan_step(s, timer_pop(s));
        due_send(s, &s->views_heap, now, view_send);
        due_send(s, &s->orders_heap, now, order_send);
        if (now >= next_sample) {
            sample(s);
            next_sample = now + SAMPLE_MS;
        }
        if (tty && now >= next_progress) {
            progress(s, 0);
            next_progress = now + PROGRESS_MS;
        }
        if (now >= next_check) {
            next_check = now + 100;
            int why = stop_reason(s, now);
            if (why >= 0) {
                s->stopped_by = why;
                break;
            }
        }
        if (ons_httpc_poll(s->http, (int)loop_wait_ms(s, now)) != 0)
            return ONS_EIO;
    }
    s->end_ms = sim_now_ms(s);
    drain(s);
    if (tty)
        progress(s, 1);
    return 0;
}
