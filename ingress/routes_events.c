/*
 * routes_events.c - sellers' venues and events, public event details, and
 * pausing, resuming and cancelling a sale.
 *
 * Creating an event writes every seat of its priced sections in one
 * set-based INSERT ... SELECT over generate_series, numbered in allocation
 * order (section position, row, seat), inside one transaction with the event
 * and its tiers; starts_at must be ahead and onsale_at before it. A status
 * change (pause, resume, cancel) writes nothing itself: after checking the
 * caller and the transition it sends an event_status record through the
 * event's partition, whose owner is the only writer of events.status and
 * applies it in order with the intents (cancelling also voids and refunds
 * the tickets: docs/checkout.md). The reply, 202, waits for the delivery
 * report; GET /v1/events/{id} shows the new status once it is applied.
 * An event whose show started events.end_grace_s ago is ended.
 */
#include "ingress/routes.h"
#include "common/err.h"
#include "common/log.h"
#include "ingress/event_cache.h"
#include "ingress/event_store.h"
#include "ingress/event_view.h"
#include "ingress/idem.h"
#include "ingress/json_io.h"
#include "ingress/pow.h"
#include "ingress/produce.h"
#include "queue/draw.h"
#include "queue/states.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SECTIONS 200
#define MAX_TIERS    200

/* The answer to a store failure that is not the request's fault:
 * no connection or out of memory 503, a failed statement 500 (what). */
static void store_failed(ing_req *r, ing_worker *w, int rc, const char *what)
{
    if (rc == ONS_EDB)
        ing_failf(r, w, ING_E_INTERNAL, NULL, "%s", what);
    else
        ing_fail(r, w, ING_E_UNAVAILABLE, NULL);
}

int ing_event_state(ing_req *r, ing_worker *w, int64_t event_id, q_event_state *out)
{
    int rc = ing_events_get(r->app->events, w, event_id, out);
    if (rc == ONS_ENOTFOUND)
        ing_fail(r, w, ING_E_EVENT_NOT_FOUND, NULL);
    else if (rc)
        ing_failf(r, w, ING_E_UNAVAILABLE, NULL, "Event data is unavailable; retry shortly.");
    return rc ? -1 : 0;
}

int ing_event_owned(ing_req *r, ing_worker *w, int64_t event_id, long long end_grace_s, int lock,
                    ing_event_owner *out)
{
    int rc = ing_event_owner_get(w, event_id, end_grace_s, lock, out);
    if (rc == ONS_ENOTFOUND) {
        ing_fail(r, w, ING_E_EVENT_NOT_FOUND, NULL);
        return -1;
    }
    if (rc) {
        ing_fail(r, w, ING_E_UNAVAILABLE, NULL);
        return -1;
    }
    if (r->who.role != ONS_ROLE_ADMIN && out->seller_id != r->who.user_id) {
        ing_failf(r, w, ING_E_FORBIDDEN, NULL, "This event belongs to another seller.");
        return -1;
    }
    return 0;
}

/* ---- POST /v1/venues ------------------------------------------------------------------- */

typedef struct venue_job {
    const char *name, *city, *country, *address;
    double lat, lon;
    int has_lat, has_lon;
    size_t n;
    const char *sec_names[MAX_SECTIONS];
    int64_t rows[MAX_SECTIONS], per_row[MAX_SECTIONS];
    int64_t capacity;
} venue_job;

static void venue_create_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    venue_job *j = r->job;
    if (ing_idem_begin(r, w, "venue"))
        return;
    ing_venue_new in = {r->who.user_id, j->name,    j->city,    j->country, j->address,
                        j->has_lat,     j->lat,     j->lon,     j->n,       j->sec_names,
                        j->rows,        j->per_row, j->capacity};
    int64_t venue_id = 0;
    int rc = ing_venue_insert(w, r->rid, &in, &venue_id);
    if (rc == ONS_ENOMEM)
        ing_fail(r, w, ING_E_OVERLOADED, NULL);
    else if (rc)
        store_failed(r, w, rc, "The venue could not be stored.");
    else
        ing_idem_reply(r, w, 201,
                       json_pack("{s:I, s:I}", "venue_id", (json_int_t)venue_id, "capacity",
                                 (json_int_t)j->capacity));
}

/* A name people read (a venue's, a section's, an event's, its category):
 * ing_json_str's string of minlen..maxlen bytes, and not only spaces, as a
 * display name may not be (it shows as nothing in lists and on tickets).
 * Returns 0 (absent and !required: *out untouched) or -1 (replied 400). */
static int json_label(ing_req *r, json_t *o, const char *key, int required, size_t minlen,
                      size_t maxlen, const char **out)
{
    const char *v = NULL;
    if (ing_json_str(r, o, key, required, minlen, maxlen, &v))
        return -1;
    if (v && !v[strspn(v, " ")]) {
        ing_failf(r, NULL, ING_E_INVALID_FIELD, key, "Field '%s' must not be only spaces.", key);
        return -1;
    }
    if (v)
        *out = v;
    return 0;
}

void ing_route_venue_create(ing_req *r)
{
    static const char *const allowed[] = {"name", "city", "country",  "address",
                                          "lat",  "lon",  "sections", NULL};
    static const char *const sec_allowed[] = {"name", "rows", "seats_per_row", NULL};
    venue_job *j = ing_req_job(r, sizeof *j, NULL);
    if (!j)
        return;
    json_t *secs = NULL;
    if (ing_json_only(r, r->body, allowed) || json_label(r, r->body, "name", 1, 1, 200, &j->name) ||
        json_label(r, r->body, "city", 1, 1, 100, &j->city) ||
        json_label(r, r->body, "country", 1, 2, 100, &j->country) ||
        json_label(r, r->body, "address", 0, 1, 300, &j->address) ||
        ing_json_num(r, r->body, "lat", -90, 90, &j->lat, &j->has_lat) ||
        ing_json_num(r, r->body, "lon", -180, 180, &j->lon, &j->has_lon) ||
        ing_json_objects(r, r->body, "sections", MAX_SECTIONS, &secs))
        return;
    /* A position is both coordinates (the catalog's distance filter). */
    if (j->has_lat != j->has_lon) {
        const char *missing = j->has_lat ? "lon" : "lat";
        ing_failf(r, NULL, ING_E_INVALID_FIELD, missing,
                  "Fields 'lat' and 'lon' go together ('%s' is missing).", missing);
        return;
    }
    j->n = json_array_size(secs);
    for (size_t i = 0; i < j->n; i++) {
        json_t *s = json_array_get(secs, i);
        if (ing_json_only(r, s, sec_allowed) ||
            json_label(r, s, "name", 1, 1, 64, &j->sec_names[i]) ||
            ing_json_int(r, s, "rows", 1, 1, 1000, &j->rows[i]) ||
            ing_json_int(r, s, "seats_per_row", 1, 1, 1000, &j->per_row[i]))
            return;
        for (size_t k = 0; k < i; k++) {
            if (strcmp(j->sec_names[k], j->sec_names[i]) == 0) {
                ing_failf(r, NULL, ING_E_INVALID_FIELD, "sections",
                          "Section names must be unique ('%s' repeats).", j->sec_names[i]);
                return;
            }
        }
        j->capacity += j->rows[i] * j->per_row[i];
    }
    if (j->capacity > r->app->o.venues_max_seats) {
        ing_failf(r, NULL, ING_E_INVALID_FIELD, "sections",
                  "A venue holds at most %lld seats; these sections hold %lld.",
                  r->app->o.venues_max_seats, (long long)j->capacity);
        return;
    }
    ing_req_submit(r, venue_create_job);
}

/* ---- POST /v1/events ------------------------------------------------------------------------ */

typedef struct event_job {
    int64_t venue_id;
    const char *name, *category, *description, *currency;
    int64_t starts_at_ms, onsale_at_ms;
    int has_onsale;
    int64_t prequeue_opens_at_ms;                    /* 0 = no pre-queue */
    int64_t max_active_holds, admissions_per_minute; /* 0 = no cap */
    int64_t pow_difficulty;                          /* 0 = no proof of work */
    int64_t max_per_user, hold_seconds;
    size_t ntiers;
    const char *tier_sections[MAX_TIERS];
    int64_t tier_prices[MAX_TIERS];
    /* Results, for the reply. */
    int64_t event_id, seats_total;
    char status[16];
} event_job;

/* Creates the event (event_store.h) and answers 201, or the error. */
/* The new event's row, from the request j: on sale now unless its
 * on-sale moment is later, with the draw's seed (seed_hex) committed to
 * from now on (docs/fairness.md). */
static ing_event_new event_row(const ing_req *r, const event_job *j, int64_t now,
                               const char *seed_hex, const char *commitment)
{
    const char *status = q_event_status_name(
        j->has_onsale && j->onsale_at_ms > now ? Q_EVENT_SCHEDULED : Q_EVENT_ON_SALE);
    return (ing_event_new){.venue_id = j->venue_id,
                           .acting_user = r->who.user_id,
                           .is_admin = r->who.role == ONS_ROLE_ADMIN,
                           .name = j->name,
                           .category = j->category,
                           .description = j->description,
                           .currency = j->currency,
                           .status = status,
                           .starts_at_ms = j->starts_at_ms,
                           .onsale_at_ms = j->has_onsale ? j->onsale_at_ms : now,
                           .prequeue_opens_at_ms = j->prequeue_opens_at_ms,
                           .max_per_user = j->max_per_user,
                           .hold_seconds = j->hold_seconds,
                           .max_active_holds = j->max_active_holds,
                           .admissions_per_minute = j->admissions_per_minute,
                           .pow_difficulty = j->pow_difficulty,
                           .max_seats = r->app->o.venues_max_seats,
                           .partitions = r->app->partitions,
                           .draw_seed_hex = seed_hex,
                           .draw_commitment = commitment,
                           .ntiers = j->ntiers,
                           .tier_sections = j->tier_sections,
                           .tier_prices = j->tier_prices};
}

/* Answers an event insert that failed with rc. */
static void event_insert_failed(ing_req *r, ing_worker *w, int rc)
{
    if (rc == ONS_ENOTFOUND)
        ing_fail(r, w, ING_E_VENUE_NOT_FOUND, "venue_id");
    else if (rc == ONS_EAUTH)
        ing_failf(r, w, ING_E_FORBIDDEN, "venue_id", "This venue belongs to another seller.");
    else if (rc == ONS_EINVAL)
        ing_failf(r, w, ING_E_INVALID_FIELD, "tiers",
                  "Every tier must name a section of the venue.");
    else if (rc == ONS_ERANGE)
        ing_failf(r, w, ING_E_INVALID_FIELD, "tiers",
                  "An event puts at most %lld seats on sale; these tiers' sections hold more.",
                  r->app->o.venues_max_seats);
    else
        store_failed(r, w, rc, "The event could not be stored.");
}

/* Publishes the new event's sale rules to the Redis projection (best
 * effort: a miss is logged, the worker publishes them again). */
static void event_publish(ing_req *r, ing_worker *w, const ing_event_new *in, int64_t event_id)
{
    const event_job *j = r->job;
    char *names = q_section_names_encode(j->tier_sections, j->ntiers);
    /* Without them (out of memory) a join's first fill reads PostgreSQL. */
    if (names)
        (void)q_status_event_set_section_names(w->st, event_id, names);
    free(names);
    if (q_status_event_set(w->st, event_id, in->status, in->onsale_at_ms, (int)j->max_per_user) ||
        q_status_event_set_fair(w->st, event_id, j->prequeue_opens_at_ms, j->max_active_holds,
                                j->admissions_per_minute) ||
        q_status_event_set_pow(w->st, event_id, (int)j->pow_difficulty) ||
        q_status_event_set_partitions(w->st, event_id, in->partitions))
        ons_logk(ONS_LOG_WARN, "request_id", r->rid, "event %" PRId64 ": redis not updated",
                 event_id);
}

static void event_create_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    /* The key first: a retry whose first 201 was lost is answered from
     * the stored reply, which needs no partition count; a key taken here
     * is given back by the 503 below (ing_fail), nothing being created. */
    if (ing_idem_begin(r, w, "event"))
        return;
    if (!ing_partitions_verified(r->app)) {
        ing_failf(r, w, ING_E_QUEUE_UNAVAILABLE, NULL,
                  "The queue's partition count is not confirmed by the brokers yet; nothing "
                  "was created. Retry shortly.");
        return;
    }
    uint8_t seed[Q_DRAW_SEED_LEN];
    char seed_hex[Q_DRAW_HEX_LEN + 1], commitment[Q_DRAW_HEX_LEN + 1];
    if (q_draw_seed_new(seed)) {
        ing_fail(r, w, ING_E_UNAVAILABLE, NULL);
        return;
    }
    q_draw_hex(seed, sizeof seed, seed_hex);
    q_draw_commitment(seed, commitment);
    ing_event_new in = event_row(r, r->job, ing_now_ms(), seed_hex, commitment);
    ing_event_created ev = {0};
    int rc = ing_event_insert(w, r->rid, &in, &ev);
    if (rc) {
        event_insert_failed(r, w, rc);
        return;
    }
    event_publish(r, w, &in, ev.event_id);
    json_t *body = json_pack("{s:I, s:I, s:s}", "event_id", (json_int_t)ev.event_id, "seats_total",
                             (json_int_t)ev.seats_total, "status", in.status);
    ing_idem_reply(r, w, 201, body);
}

/* The n price tiers of a request ({section, price_cents} objects, each
 * section once) into sections/prices (pointing into the body). 0, or -1
 * when a 400 was replied. */
static int parse_tiers(ing_req *r, json_t *tiers, size_t n, const char **sections, int64_t *prices)
{
    static const char *const tier_allowed[] = {"section", "price_cents", NULL};
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(tiers, i);
        if (ing_json_only(r, t, tier_allowed) ||
            ing_json_str(r, t, "section", 1, 1, 64, &sections[i]) ||
            ing_json_int(r, t, "price_cents", 1, 0, INT64_C(10000000000), &prices[i]))
            return -1;
        for (size_t k = 0; k < i; k++) {
            if (strcmp(sections[k], sections[i]) == 0) {
                ing_failf(r, NULL, ING_E_INVALID_FIELD, "tiers",
                          "Each section may be priced once ('%s' repeats).", sections[i]);
                return -1;
            }
        }
    }
    return 0;
}

/* The fields of a POST /v1/events body into j (strings point into the
 * body). 0, or -1 when r was finished with a 400. */
static int event_fields(ing_req *r, event_job *j, json_t **tiers)
{
    static const char *const allowed[] = {"venue_id",
                                          "name",
                                          "category",
                                          "starts_at",
                                          "onsale_at",
                                          "description",
                                          "max_per_user",
                                          "hold_seconds",
                                          "tiers",
                                          "currency",
                                          "prequeue_opens_at",
                                          "max_active_holds",
                                          "admissions_per_minute",
                                          "pow_difficulty",
                                          NULL};
    json_t *b = r->body;
    if (ing_json_only(r, b, allowed) ||
        ing_json_int(r, b, "venue_id", 1, 1, INT64_MAX, &j->venue_id) ||
        json_label(r, b, "name", 1, 1, 200, &j->name) ||
        json_label(r, b, "category", 1, 1, 64, &j->category) ||
        ing_json_time(r, b, "starts_at", 1, &j->starts_at_ms) ||
        ing_json_str(r, b, "description", 0, 0, 4000, &j->description) ||
        ing_json_int(r, b, "max_per_user", 0, 1, Q_MAX_SEATS, &j->max_per_user) ||
        ing_json_int(r, b, "hold_seconds", 0, 60, 3600, &j->hold_seconds) ||
        ing_json_str(r, b, "currency", 0, 3, 3, &j->currency) ||
        ing_json_objects(r, b, "tiers", MAX_TIERS, tiers) ||
        ing_json_int(r, b, "pow_difficulty", 0, 0, ING_POW_MAX_DIFFICULTY, &j->pow_difficulty))
        return -1;
    if (json_object_get(b, "onsale_at")) {
        if (ing_json_time(r, b, "onsale_at", 1, &j->onsale_at_ms))
            return -1;
        j->has_onsale = 1;
    }
    if (ing_json_cap(r, b, "max_active_holds", &j->max_active_holds) ||
        ing_json_cap(r, b, "admissions_per_minute", &j->admissions_per_minute))
        return -1;
    if (json_object_get(b, "prequeue_opens_at") &&
        ing_json_time(r, b, "prequeue_opens_at", 1, &j->prequeue_opens_at_ms))
        return -1;
    return 0;
}

/* The rules between the fields: the pre-queue opens before a future sale,
 * the show is ahead and after the sale opens, the currency is ISO 4217
 * shaped. They answer 400 invalid_field like every other field rule. 0, or
 * -1 when r was finished. */
static int event_rules(ing_req *r, const event_job *j)
{
    int64_t now = ing_now_ms();
    if (j->prequeue_opens_at_ms &&
        (!j->has_onsale || j->prequeue_opens_at_ms >= j->onsale_at_ms || j->onsale_at_ms <= now)) {
        ing_failf(r, NULL, ING_E_INVALID_FIELD, "prequeue_opens_at",
                  "Field 'prequeue_opens_at' needs an 'onsale_at' in the future and must be "
                  "before it: the pre-queue opens before the sale.");
        return -1;
    }
    if (j->starts_at_ms <= now) {
        ing_failf(r, NULL, ING_E_INVALID_FIELD, "starts_at",
                  "Field 'starts_at' must be in the future.");
        return -1;
    }
    if (j->has_onsale && j->onsale_at_ms >= j->starts_at_ms) {
        ing_failf(r, NULL, ING_E_INVALID_FIELD, "onsale_at",
                  "Field 'onsale_at' must be before 'starts_at': the sale opens before "
                  "the show.");
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        if (j->currency[i] < 'A' || j->currency[i] > 'Z') {
            ing_failf(r, NULL, ING_E_INVALID_FIELD, "currency",
                      "Field 'currency' must be an ISO 4217 code such as USD.");
            return -1;
        }
    }
    return 0;
}

void ing_route_event_create(ing_req *r)
{
    event_job *j = ing_req_job(r, sizeof *j, NULL);
    if (!j)
        return;
    j->description = "";
    j->currency = "USD";
    j->max_per_user = 8;
    j->hold_seconds = 900;
    json_t *tiers = NULL;
    if (event_fields(r, j, &tiers) || event_rules(r, j))
        return;
    j->ntiers = json_array_size(tiers);
    if (parse_tiers(r, tiers, j->ntiers, j->tier_sections, j->tier_prices))
        return;
    ing_req_submit(r, event_create_job);
}

/* ---- GET /v1/events/{id} -----------------------------------------------------------------------
 */

typedef struct event_ref {
    int64_t event_id;
    const char *to_status; /* status changes only */
    char status[16];
} event_ref;

static event_ref *new_event_ref(ing_req *r, const char *to_status)
{
    int64_t id;
    if (ing_path_id(r, r->params[0], &id))
        return NULL;
    event_ref *j = ing_req_job(r, sizeof *j, NULL);
    if (j) {
        j->event_id = id;
        j->to_status = to_status;
    }
    return j;
}

/* ---- pause / resume / cancel --------------------------------------------------------------------
 */

/* Which current statuses each change accepts. Repeating a change is
 * accepted (and re-sent), so a client may retry after a 503. */
static int transition_allowed(const char *to_name, const char *from_name)
{
    int to = q_event_status_parse(to_name), from = q_event_status_parse(from_name);
    if (to == Q_EVENT_PAUSED || to == Q_EVENT_ON_SALE)
        return from == Q_EVENT_ON_SALE || from == Q_EVENT_SCHEDULED || from == Q_EVENT_PAUSED ||
               from == Q_EVENT_SOLD_OUT;
    if (to == Q_EVENT_CANCELLED)
        return from != Q_EVENT_ENDED;
    return 0;
}

/* The owner applied nothing yet: the reply says what was asked and where
 * to watch for it (GET /v1/events/{id} shows the status once applied). */
int ing_event_change_delivered(ing_req *r, ing_worker *w, int64_t event_id, char url[48])
{
    if (r->produce_err) {
        ing_failf(r, w, ING_E_QUEUE_UNAVAILABLE, NULL,
                  "The queue could not take the change; retry the request.");
        return -1;
    }
    snprintf(url, 48, "/v1/events/%" PRId64, event_id);
    ing_events_forget(r->app->events, event_id);
    return 0;
}

static void status_delivered(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    event_ref *j = r->job;
    char url[48];
    if (ing_event_change_delivered(r, w, j->event_id, url))
        return;
    /* A fan told of the change elsewhere (a refund) must not then read
     * the old status in the view this node caches. */
    ing_views_expect(r->app->views, j->event_id, j->status);
    ing_reply_json(r, 202,
                   json_pack("{s:I, s:s, s:s}", "event_id", (json_int_t)j->event_id, "status",
                             j->status, "status_url", url));
}

/* Checks the caller may make the change and it is legal now, then sends an
 * event_status record through the event's partition: its owner is the only
 * writer of events.status and applies the change in order with the intents
 * (and re-checks it: a change that crossed a cancel in the log is dropped).
 * The reply waits for the delivery report. */
static void status_change_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    event_ref *j = r->job;
    ing_event_owner ev;
    if (ing_event_owned(r, w, j->event_id, r->app->o.events_end_grace_s, 0, &ev))
        return;
    const char *from = ev.status;
    if (!transition_allowed(j->to_status, from)) {
        ing_failf(r, w, ING_E_INVALID_TRANSITION, NULL, "This event is %s; it cannot become %s.",
                  from, j->to_status);
        return;
    }
    /* Resuming a sold-out or scheduled event keeps what it was; a paused
     * one whose onsale_at is ahead becomes scheduled (the owner's rule,
     * workers/partition.c next_status), which the reply and this node's view expectation
     * must say, not on_sale (a view expected on_sale was rendered back to
     * back for ing_views_expect's 10 s, and the seller told the sale was
     * open). The same instant as the owner's: the record's sent_ms. */
    int64_t now_ms = ing_now_ms();
    const char *to = j->to_status;
    int from_status = q_event_status_parse(from);
    if (q_event_status_parse(to) == Q_EVENT_ON_SALE &&
        (from_status == Q_EVENT_SOLD_OUT || from_status == Q_EVENT_SCHEDULED))
        to = from;
    else if (q_event_status_parse(to) == Q_EVENT_ON_SALE && from_status == Q_EVENT_PAUSED &&
             now_ms < ev.onsale_at_ms)
        to = q_event_status_name(Q_EVENT_SCHEDULED);
    snprintf(j->status, sizeof j->status, "%s", to);
    q_msg m;
    memset(&m, 0, sizeof m);
    m.type = Q_MSG_EVENT_STATUS;
    m.event_id = j->event_id;
    m.sent_ms = now_ms;
    /* The worker knows on_sale/paused/cancelled/ended; "on_sale" asks it to
     * resume (a paused sale whose onsale_at is ahead becomes scheduled). */
    snprintf(m.status, sizeof m.status, "%s", j->to_status);
    if (ing_produce(r, w, &m, status_delivered)) {
        ing_failf(r, w, ING_E_QUEUE_UNAVAILABLE, NULL,
                  "The queue cannot take the status change right now; nothing was queued.");
    }
}

void ing_route_event_pause(ing_req *r)
{
    if (new_event_ref(r, q_event_status_name(Q_EVENT_PAUSED)))
        ing_req_submit(r, status_change_job);
}

void ing_route_event_resume(ing_req *r)
{
    if (new_event_ref(r, q_event_status_name(Q_EVENT_ON_SALE)))
        ing_req_submit(r, status_change_job);
}

void ing_route_event_cancel(ing_req *r)
{
    if (new_event_ref(r, q_event_status_name(Q_EVENT_CANCELLED)))
        ing_req_submit(r, status_change_job);
}

/* ---- PATCH /v1/events/{id} ----------------------------------------------------------------------
 *
 * Who writes what (docs/api.md "Sellers", docs/tickets.md "Editing an
 * event"): name, description and category live only in PostgreSQL (the
 * partition owner never reads them), so ingress writes them at any time
 * until the event is cancelled or ended; GET /v1/events/{id} shows them
 * within event_view.ttl_ms. Tier prices and starts_at are also held in the
 * owner's memory once it loads the event (prices decide allocation and
 * totals, starts_at the end of the sale and the refund cut-off), and the
 * owner is their one writer from then on. So ingress changes them only
 * while the sale has not opened (status scheduled, onsale_at ahead) AND the
 * owner has never loaded the event (events.owner_loaded_at NULL, which the
 * owner sets with an UPDATE when it loads: that UPDATE and this transaction
 * serialise on the event row, so the owner loads either the old prices and
 * then nothing changes them, or the new ones). Otherwise they answer 409
 * prices_locked / starts_at_locked. */

typedef struct event_patch {
    int64_t event_id;
    const char *name, *description, *category; /* NULL: unchanged */
    int64_t starts_at_ms;                      /* 0: unchanged */
    size_t ntiers;
    const char *tier_sections[MAX_TIERS];
    int64_t tier_prices[MAX_TIERS];
} event_patch;

/* Why the edit cannot be made to an event in state ev, or ING_E_COUNT
 * when it can; *field and *msg say more. */
static ing_api_err edit_refusal(const event_patch *j, const ing_event_owner *ev, const char **field)
{
    *field = NULL;
    if (q_event_status_closed(q_event_status_parse(ev->status)))
        return ING_E_SALE_CLOSED;
    *field = "tiers";
    if (j->ntiers > 0 && !ev->before_sale)
        return ING_E_PRICES_LOCKED;
    *field = "starts_at";
    if (j->starts_at_ms > 0 && !ev->before_sale)
        return ING_E_STARTS_AT_LOCKED;
    if (j->starts_at_ms > 0 && j->starts_at_ms <= ev->onsale_at_ms)
        return ING_E_INVALID_FIELD;
    return ING_E_COUNT;
}

/* The transaction of an edit (event_store.h); replies in every case. */
static void event_update_job(ing_worker *w, void *arg)
{
    ing_req *r = arg;
    event_patch *j = r->job;
    ing_event_owner ev;
    if (ing_event_tx_begin(w)) {
        ing_fail(r, w, ING_E_UNAVAILABLE, NULL);
        return;
    }
    if (ing_event_owned(r, w, j->event_id, r->app->o.events_end_grace_s, 1, &ev)) {
        ing_event_tx_rollback(w);
        return;
    }
    const char *field;
    ing_api_err no = edit_refusal(j, &ev, &field);
    if (no == ING_E_SALE_CLOSED)
        ing_failf(r, w, no, NULL, "This event is %s; it can no longer change.", ev.status);
    else if (no == ING_E_PRICES_LOCKED)
        ing_failf(r, w, no, field,
                  "Prices can change only before the sale opens (this event is %s and its "
                  "sale is under way or about to be).",
                  ev.status);
    else if (no == ING_E_STARTS_AT_LOCKED)
        ing_failf(r, w, no, field,
                  "The show's time can change only before the sale opens: fans bought "
                  "tickets for it and refunds are timed from it.");
    else if (no == ING_E_INVALID_FIELD)
        ing_failf(r, w, no, field, "Field 'starts_at' must be after the sale opens (onsale_at).");
    if (no != ING_E_COUNT) {
        ing_event_tx_rollback(w);
        return;
    }
    ing_event_edit in = {j->event_id,     j->name,   j->description,   j->category,
                         j->starts_at_ms, j->ntiers, j->tier_sections, j->tier_prices};
    char *json = NULL;
    int rc = ing_event_update(w, r->rid, &in, &json);
    if (rc == ONS_EINVAL)
        ing_failf(r, w, ING_E_INVALID_FIELD, "tiers",
                  "Every tier must name a priced section of the event.");
    else if (rc)
        store_failed(r, w, rc, "The event could not be updated.");
    else
        ing_reply_raw(r, 200, json);
    free(json);
}

void ing_route_event_update(ing_req *r)
{
    static const char *const allowed[] = {"name",      "category", "description",
                                          "starts_at", "tiers",    NULL};
    int64_t id;
    if (ing_path_id(r, r->params[0], &id))
        return;
    event_patch *j = ing_req_job(r, sizeof *j, NULL);
    if (!j)
        return;
    j->event_id = id;
    json_t *tiers = NULL;
    if (ing_json_only(r, r->body, allowed) || json_label(r, r->body, "name", 0, 1, 200, &j->name) ||
        json_label(r, r->body, "category", 0, 1, 64, &j->category) ||
        ing_json_str(r, r->body, "description", 0, 0, 4000, &j->description) ||
        ing_json_time(r, r->body, "starts_at", 0, &j->starts_at_ms))
        return;
    if (json_object_size(r->body) == 0) {
        ing_failf(r, NULL, ING_E_MISSING_FIELD, NULL,
                  "Name at least one field to change (name, category, description, "
                  "starts_at, tiers).");
        return;
    }
    if (json_object_get(r->body, "starts_at") && j->starts_at_ms <= ing_now_ms()) {
        ing_failf(r, NULL, ING_E_INVALID_FIELD, "starts_at",
                  "Field 'starts_at' must be in the future.");
        return;
    }
    if (json_object_get(r->body, "tiers")) {
        if (ing_json_objects(r, r->body, "tiers", MAX_TIERS, &tiers))
            return;
        j->ntiers = json_array_size(tiers);
    }
    if (parse_tiers(r, tiers, j->ntiers, j->tier_sections, j->tier_prices))
        return;
    ing_req_submit(r, event_update_job);
}
