/*
 * api.c - the gateway simulator's routes and handlers.
 *
 * Charges and refunds go through the same steps:
 *   validate (400, nothing stored) -> Idempotency-Key (replay, 409, 422)
 *   -> roll the fault dice -> wait the planned latency on the timer thread
 *   -> execute: inject a 5xx (key released, nothing charged), or charge /
 *      decline / refund and store the result under the key
 *   -> answer, or drop the connection (lost response), or hang (answer
 *      nothing, close the connection after hang_ms).
 * While a first attempt waits or hangs before its result is stored, the
 * key is in flight and a retry gets 409 idempotency_in_progress.
 */
#include "admin/gateway/gateway.h"
#include "common/err.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void charge_create(gw_req *r);
static void charge_get(gw_req *r);
static void refund_create(gw_req *r);
static void ledger(gw_req *r);
static void faults_get(gw_req *r);
static void faults_set(gw_req *r);
static void healthz(gw_req *r);
static void metrics(gw_req *r);

const gw_route gw_routes[] = {
    {"charges_create", "POST", "/v1/charges", charge_create, GW_AUTH | GW_BODY | GW_IDEM},
    {"charges_get", "GET", "/v1/charges/{}", charge_get, GW_AUTH},
    {"refunds_create", "POST", "/v1/refunds", refund_create, GW_AUTH | GW_BODY | GW_IDEM},
    {"ledger", "GET", "/v1/ledger", ledger, GW_AUTH},
    {"faults_get", "GET", "/v1/_faults", faults_get, GW_AUTH},
    {"faults_set", "POST", "/v1/_faults", faults_set, GW_AUTH | GW_BODY},
    {"healthz", "GET", "/healthz", healthz, 0},
    {"metrics", "GET", "/metrics", metrics, 0},
};
const size_t gw_route_count = sizeof gw_routes / sizeof gw_routes[0];

/* Stripe-style test payment methods. decline_code NULL: the charge succeeds. */
typedef struct pay_method {
    const char *name;
    const char *decline_code;
    const char *message;
    ons_counter *count; /* onsale_gateway_charges_total for this outcome */
} pay_method;

static pay_method methods[] = {
    {"pm_card_visa", NULL, NULL, NULL},
    {"pm_card_mastercard", NULL, NULL, NULL},
    {"pm_card_chargeDeclined", "generic_decline", "Your card was declined.", NULL},
    {"pm_card_insufficientFunds", "insufficient_funds", "Your card has insufficient funds.", NULL},
    {"pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds",
     "Your card has insufficient funds.", NULL},
    {"pm_card_chargeDeclinedExpiredCard", "expired_card", "Your card has expired.", NULL},
    {"pm_card_chargeDeclinedFraudulent", "fraudulent", "Your card was declined.", NULL},
};
#define NMETHODS (sizeof methods / sizeof methods[0])

/* decline_rate's outcome, whatever the card. */
static pay_method forced_decline = {"(decline_rate)", "generic_decline", "Your card was declined.",
                                    NULL};

enum fault_kind { F_LATENCY, F_ERROR, F_HANG, F_LOST, F_DECLINE, NFAULTS };
static const char *fault_names[NFAULTS] = {"latency", "error", "hang", "lost_response", "decline"};
static ons_counter *fault_count[NFAULTS];

enum refund_outcome { R_OK, R_NOT_FOUND, R_TOO_LARGE, NREFUND };
static ons_counter *refund_count[NREFUND];

/* The state a first attempt carries across its deferrals. */
typedef struct op {
    gw_plan plan;
    const pay_method *pm; /* charges */
    int is_charge;
} op;

int gw_api_init(gw_app *app)
{
    ons_metrics *m = app->metrics;
    char labels[128];
    int ok = 1;
    for (size_t i = 0; i < NMETHODS; i++) {
        pay_method *pm = &methods[i];
        snprintf(labels, sizeof labels, "outcome=\"%s\",decline_code=\"%s\"",
                 pm->decline_code ? "declined" : "succeeded",
                 pm->decline_code ? pm->decline_code : "");
        pm->count = ons_metrics_counter(m, "onsale_gateway_charges_total",
                                        "Charges attempted (first attempts), by outcome.", labels);
        ok &= pm->count != NULL;
    }
    forced_decline.count = methods[2].count;
    for (int i = 0; i < NFAULTS; i++) {
        snprintf(labels, sizeof labels, "kind=\"%s\"", fault_names[i]);
        fault_count[i] = ons_metrics_counter(m, "onsale_gateway_faults_injected_total",
                                             "Faults injected, by kind.", labels);
        ok &= fault_count[i] != NULL;
    }
    static const char *refund_names[NREFUND] = {"succeeded", "charge_not_found",
                                                "amount_too_large"};
    for (int i = 0; i < NREFUND; i++) {
        snprintf(labels, sizeof labels, "outcome=\"%s\"", refund_names[i]);
        refund_count[i] =
            ons_metrics_counter(m, "onsale_gateway_refunds_total",
                                "Refunds attempted (first attempts), by outcome.", labels);
        ok &= refund_count[i] != NULL;
    }
    app->replays =
        ons_metrics_counter(m, "onsale_gateway_idempotent_replays_total",
                            "Stored results replayed for a repeated Idempotency-Key.", NULL);
    app->in_progress =
        ons_metrics_counter(m, "onsale_gateway_idempotency_conflicts_total",
                            "Repeated keys refused, by reason.", "reason=\"in_progress\"");
    app->mismatches =
        ons_metrics_counter(m, "onsale_gateway_idempotency_conflicts_total",
                            "Repeated keys refused, by reason.", "reason=\"mismatch\"");
    app->ledger_charges = ons_metrics_gauge(m, "onsale_gateway_ledger_charges",
                                            "Succeeded charges in the ledger.", NULL);
    app->ledger_refunds =
        ons_metrics_gauge(m, "onsale_gateway_ledger_refunds", "Refunds in the ledger.", NULL);
    app->idem_keys = ons_metrics_gauge(m, "onsale_gateway_idempotency_keys",
                                       "Idempotency keys stored (in flight or completed).", NULL);
    app->pending = ons_metrics_gauge(m, "onsale_gateway_pending_replies",
                                     "Requests waiting on injected latency or hangs.", NULL);
    ok &= app->replays && app->in_progress && app->mismatches && app->ledger_charges &&
          app->ledger_refunds && app->idem_keys && app->pending;
    return ok ? 0 : ONS_ENOMEM;
}

/* ---- validation --------------------------------------------------------------------- */

enum field_type { T_INT, T_STR };

typedef struct field {
    const char *name;
    enum field_type type;
    int required;
    long long min, max; /* T_INT: value range; T_STR: length range */
} field;

/* Checks body against fields: no unknown field, required ones present,
 * types and ranges. Optional fields that are absent are set to null, so
 * that the body can be stored as is. Replies 400 and returns -1 on the
 * first problem. */
static int validate(gw_req *r, const field *fields, size_t n)
{
    const char *name;
    json_t *v;
    json_object_foreach(r->body, name, v)
    {
        size_t i = 0;
        while (i < n && strcmp(fields[i].name, name) != 0)
            i++;
        if (i == n) {
            gw_reply_error(r, 400, "unknown_field", name, "Unknown field '%s'.", name);
            return -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const field *f = &fields[i];
        v = json_object_get(r->body, f->name);
        if (!v || json_is_null(v)) {
            if (f->required) {
                gw_reply_error(r, 400, "missing_field", f->name, "'%s' is required.", f->name);
                return -1;
            }
            if (json_object_set_new(r->body, f->name, json_null()) != 0) {
                gw_reply_error(r, 503, "overloaded", NULL, "Out of memory.");
                return -1;
            }
            continue;
        }
        if (f->type == T_INT) {
            if (!json_is_integer(v)) {
                gw_reply_error(r, 400, "invalid_type", f->name, "'%s' must be an integer.",
                               f->name);
                return -1;
            }
            if (json_integer_value(v) < f->min || json_integer_value(v) > f->max) {
                gw_reply_error(r, 400, "invalid_value", f->name, "'%s' must be in %lld..%lld.",
                               f->name, f->min, f->max);
                return -1;
            }
        } else {
            if (!json_is_string(v)) {
                gw_reply_error(r, 400, "invalid_type", f->name, "'%s' must be a string.", f->name);
                return -1;
            }
            size_t len = json_string_length(v);
            if ((long long)len < f->min || (long long)len > f->max ||
                strlen(json_string_value(v)) != len) {
                gw_reply_error(r, 400, "invalid_value", f->name,
                               "'%s' must be %lld to %lld characters.", f->name, f->min, f->max);
                return -1;
            }
        }
    }
    return 0;
}

/* "POST /v1/charges\n" + the canonical body (sorted keys, compact). */
static char *fingerprint(gw_req *r)
{
    char *canon = json_dumps(r->body, JSON_COMPACT | JSON_SORT_KEYS);
    if (!canon)
        return NULL;
    size_t n = strlen(r->method) + strlen(r->path) + strlen(canon) + 3;
    char *fp = malloc(n);
    if (fp)
        snprintf(fp, n, "%s %s\n%s", r->method, r->path, canon);
    free(canon);
    return fp;
}

/* ---- the shared flow ------------------------------------------------------------------- */

static void execute(gw_req *r);

/* Runs the idempotency check; on a fresh key rolls the plan and executes
 * now or after the planned latency. Takes ownership of o. */
static void begin(gw_req *r, op *o)
{
    gw_app *app = r->app;
    enum gw_idem state = GW_IDEM_NEW;
    int status = 0;
    char *stored = NULL;
    char *fp = fingerprint(r);
    int rc = fp ? gw_idem_begin(app->store, r->idem, fp, &state, &status, &stored) : ONS_ENOMEM;
    free(fp);
    if (rc) {
        free(o);
        if (rc == ONS_EFULL)
            gw_reply_error(r, 503, "store_full", NULL,
                           "The simulator's idempotency store is full (gateway.max_records).");
        else
            gw_reply_error(r, 503, "overloaded", NULL, "Out of memory.");
        return;
    }
    switch (state) {
    case GW_IDEM_REPLAY:
        free(o);
        ons_counter_add(app->replays, 1);
        gw_reply(r, status, stored, 1);
        free(stored);
        return;
    case GW_IDEM_IN_PROGRESS:
        free(o);
        ons_counter_add(app->in_progress, 1);
        gw_reply_error(r, 409, "idempotency_in_progress", "Idempotency-Key",
                       "A request with this key is still being processed; retry later.");
        return;
    case GW_IDEM_MISMATCH:
        free(o);
        ons_counter_add(app->mismatches, 1);
        gw_reply_error(r, 422, "idempotency_mismatch", "Idempotency-Key",
                       "This key was used with a different request.");
        return;
    case GW_IDEM_NEW:
        break;
    }
    r->ctx = o;
    r->ctx_free = free;
    gw_chaos_plan(app->chaos, o->is_charge, &o->plan);
    if (o->plan.delay_ms <= 0) {
        execute(r);
        return;
    }
    ons_counter_add(fault_count[F_LATENCY], 1);
    rc = gw_defer(r, o->plan.delay_ms, execute);
    if (rc) {
        gw_idem_release(app->store, r->idem);
        gw_reply_error(r, 503, "overloaded", NULL,
                       "Too many delayed replies (gateway.max_pending); retry shortly.");
    }
}

static void hang_over(gw_req *r)
{
    gw_drop(r);
}

/* Answers nothing; the connection closes after hang_ms. */
static void hang(gw_req *r, const op *o)
{
    if (gw_defer(r, o->plan.hang_ms, hang_over) != 0)
        gw_drop(r);
}

/* Sends the stored result, or loses it as the plan says. */
static void deliver(gw_req *r, const op *o, int status, const char *text)
{
    if (o->plan.fault == GW_FAULT_HANG) {
        ons_counter_add(fault_count[F_HANG], 1);
        ons_logk(ONS_LOG_INFO, "idempotency_key", r->idem,
                 "fault: hang after storing %d; closing after %lld ms", status,
                 (long long)o->plan.hang_ms);
        hang(r, o);
    } else if (o->plan.fault == GW_FAULT_LOST) {
        ons_counter_add(fault_count[F_LOST], 1);
        ons_logk(ONS_LOG_INFO, "idempotency_key", r->idem, "fault: response lost after storing %d",
                 status);
        gw_drop(r);
    } else {
        gw_reply(r, status, text, 0);
    }
}

static void execute_charge(gw_req *r, op *o)
{
    const pay_method *pm = o->plan.decline ? &forced_decline : o->pm;
    char *text = NULL;
    int status;
    if (o->plan.decline)
        ons_counter_add(fault_count[F_DECLINE], 1);
    if (pm->decline_code) {
        status = 402;
        json_t *e =
            json_pack("{s:{s:s, s:s, s:s, s:s}}", "error", "code", "card_declined", "decline_code",
                      pm->decline_code, "message", pm->message, "payment_method", o->pm->name);
        text = e ? json_dumps(e, JSON_COMPACT) : NULL;
        json_decref(e);
        if (!text || gw_idem_complete(r->app->store, r->idem, status, text) != 0) {
            if (text)
                free(text);
            else
                gw_idem_release(r->app->store, r->idem);
            gw_reply_error(r, 503, "overloaded", NULL, "Out of memory.");
            return;
        }
        ons_logk(ONS_LOG_INFO, "idempotency_key", r->idem, "charge declined: %s", pm->decline_code);
    } else {
        int rc = gw_store_charge(r->app->store, r->idem, r->body, &text);
        if (rc == ONS_EFULL) {
            gw_reply_error(r, 503, "store_full", NULL,
                           "The simulator's ledger is full (gateway.max_records).");
            return;
        }
        if (rc) {
            gw_reply_error(r, 503, "overloaded", NULL, "Out of memory.");
            return;
        }
        status = 200;
        ons_logk(ONS_LOG_INFO, "idempotency_key", r->idem, "charge succeeded: %s", text);
    }
    ons_counter_add(pm->count, 1);
    deliver(r, o, status, text);
    free(text);
}

static void execute_refund(gw_req *r, op *o)
{
    json_t *amount = json_object_get(r->body, "amount_cents");
    char *text = NULL;
    int status = 0;
    int rc = gw_store_refund(
        r->app->store, r->idem, json_string_value(json_object_get(r->body, "charge")),
        json_is_integer(amount) ? json_integer_value(amount) : 0, &status, &text);
    if (rc == ONS_EFULL) {
        gw_reply_error(r, 503, "store_full", NULL,
                       "The simulator's refund store is full (gateway.max_records).");
        return;
    }
    if (rc) {
        gw_reply_error(r, 503, "overloaded", NULL, "Out of memory.");
        return;
    }
    ons_counter_add(refund_count[status == 200   ? R_OK
                                 : status == 404 ? R_NOT_FOUND
                                                 : R_TOO_LARGE],
                    1);
    ons_logk(ONS_LOG_INFO, "idempotency_key", r->idem, "refund %d: %s", status, text);
    deliver(r, o, status, text);
    free(text);
}

/* The planned latency is over: inject, or do the work. */
static void execute(gw_req *r)
{
    op *o = r->ctx;
    if (r->early) {
        /* Stopping: charge nothing more; the connection is already closed. */
        gw_idem_release(r->app->store, r->idem);
        gw_drop(r);
        return;
    }
    if (o->plan.fault == GW_FAULT_ERROR) {
        ons_counter_add(fault_count[F_ERROR], 1);
        gw_idem_release(r->app->store, r->idem);
        if (o->plan.error_status == 503)
            gw_reply_error(r, 503, "service_unavailable", NULL,
                           "Simulated outage; nothing was charged. Retry with the same key.");
        else
            gw_reply_error(r, 500, "api_error", NULL,
                           "Simulated internal error; nothing was charged. Retry with the same "
                           "key.");
        return;
    }
    if (o->plan.fault == GW_FAULT_HANG && !o->plan.hang_after_charge) {
        ons_counter_add(fault_count[F_HANG], 1);
        ons_logk(ONS_LOG_INFO, "idempotency_key", r->idem,
                 "fault: hang before processing; nothing stored, closing after %lld ms",
                 (long long)o->plan.hang_ms);
        gw_idem_release(r->app->store, r->idem);
        hang(r, o);
        return;
    }
    if (o->is_charge)
        execute_charge(r, o);
    else
        execute_refund(r, o);
}

/* ---- handlers ------------------------------------------------------------------------------ */

/* POST /v1/charges {amount_cents, currency, payment_method, order_id?,
 * description?} */
static void charge_create(gw_req *r)
{
    const field fields[] = {
        {"amount_cents", T_INT, 1, 1, r->app->o.max_amount_cents},
        {"currency", T_STR, 1, 3, 3},
        {"payment_method", T_STR, 1, 1, 255},
        {"order_id", T_STR, 0, 1, 255},
        {"description", T_STR, 0, 0, 1000},
    };
    if (validate(r, fields, sizeof fields / sizeof fields[0]))
        return;
    const char *cur = json_string_value(json_object_get(r->body, "currency"));
    for (int i = 0; i < 3; i++) {
        if (cur[i] < 'A' || cur[i] > 'Z') {
            gw_reply_error(r, 400, "invalid_value", "currency",
                           "'currency' must be three upper-case letters (ISO 4217, e.g. USD).");
            return;
        }
    }
    const char *pmname = json_string_value(json_object_get(r->body, "payment_method"));
    const pay_method *pm = NULL;
    for (size_t i = 0; i < NMETHODS && !pm; i++)
        if (strcmp(methods[i].name, pmname) == 0)
            pm = &methods[i];
    if (!pm) {
        gw_reply_error(r, 400, "unknown_payment_method", "payment_method",
                       "No such payment method; test methods are pm_card_visa, "
                       "pm_card_chargeDeclined, pm_card_insufficientFunds and the like.");
        return;
    }
    op *o = calloc(1, sizeof *o);
    if (!o) {
        gw_reply_error(r, 503, "overloaded", NULL, "Out of memory.");
        return;
    }
    o->is_charge = 1;
    o->pm = pm;
    begin(r, o);
}

/* POST /v1/refunds {charge, amount_cents?} */
static void refund_create(gw_req *r)
{
    const field fields[] = {
        {"charge", T_STR, 1, 1, 255},
        {"amount_cents", T_INT, 0, 1, r->app->o.max_amount_cents},
    };
    if (validate(r, fields, sizeof fields / sizeof fields[0]))
        return;
    op *o = calloc(1, sizeof *o);
    if (!o) {
        gw_reply_error(r, 503, "overloaded", NULL, "Out of memory.");
        return;
    }
    begin(r, o);
}

/* GET /v1/charges/{id} */
static void charge_get(gw_req *r)
{
    char *text = NULL;
    int rc = gw_store_charge_get(r->app->store, r->param, &text);
    if (rc == ONS_ENOTFOUND)
        gw_reply_error(r, 404, "charge_not_found", NULL, "No charge has this id.");
    else if (rc)
        gw_reply_error(r, 503, "overloaded", NULL, "Out of memory.");
    else
        gw_reply(r, 200, text, 0);
    free(text);
}

/* GET /v1/ledger: every succeeded charge (with refunded_cents) and refund. */
static void ledger(gw_req *r)
{
    char *text = NULL;
    if (gw_store_ledger(r->app->store, &text))
        gw_reply_error(r, 503, "overloaded", NULL, "Out of memory.");
    else
        gw_reply(r, 200, text, 0);
    free(text);
}

static void reply_faults(gw_req *r, const gw_faults *f)
{
    json_t *j = gw_faults_json(f);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text)
        gw_reply(r, 200, text, 0);
    else
        gw_reply_error(r, 503, "overloaded", NULL, "Out of memory.");
    free(text);
}

/* GET /v1/_faults */
static void faults_get(gw_req *r)
{
    gw_faults f;
    gw_chaos_get(r->app->chaos, &f);
    reply_faults(r, &f);
}

/* POST /v1/_faults {any of the knobs}: changes only the fields given. */
static void faults_set(gw_req *r)
{
    gw_faults f;
    const char *bad = NULL;
    char msg[160];
    gw_chaos_get(r->app->chaos, &f);
    int rc = gw_faults_patch(&f, r->body, &bad, msg, sizeof msg);
    if (rc) {
        gw_reply_error(r, 400, rc == ONS_ENOTFOUND ? "unknown_field" : "invalid_value", bad, "%s",
                       msg);
        return;
    }
    gw_chaos_set(r->app->chaos, &f);
    ons_log_info("faults: latency_ms=%lld jitter_ms=%lld decline=%g error=%g hang=%g "
                 "hang_after_charge=%d hang_ms=%lld lost_response=%g",
                 f.latency_ms, f.latency_jitter_ms, f.decline_rate, f.error_rate, f.hang_rate,
                 f.hang_after_charge, f.hang_ms, f.lost_response_rate);
    reply_faults(r, &f);
}

static void healthz(gw_req *r)
{
    gw_reply(r, 200, "{\"status\":\"ok\"}", 0);
}

static void metrics(gw_req *r)
{
    gw_app *app = r->app;
    size_t charges, refunds, keys;
    gw_store_counts(app->store, &charges, &refunds, &keys);
    ons_gauge_set(app->ledger_charges, (double)charges);
    ons_gauge_set(app->ledger_refunds, (double)refunds);
    ons_gauge_set(app->idem_keys, (double)keys);
    ons_gauge_set(app->pending, (double)gw_timer_pending(app->timer));
    char *text = ons_metrics_render(app->metrics);
    if (text)
        gw_reply_text(r, 200, "text/plain; version=0.0.4", text, 0);
    else
        gw_reply_error(r, 503, "overloaded", NULL, "Out of memory.");
    free(text);
}
