/* idem.c - Idempotency-Key claim, replay and release; see idem.h. */
#include "ingress/idem.h"
#include "common/err.h"
#include "common/log.h"
#include "ingress/json_io.h"
#include "ingress/app.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ing_idem_begin(ing_req *r, ing_worker *w, const char *scope)
{
    return ing_idem_begin_resumable(r, w, scope, NULL);
}

/* The node an in-flight record of this process names ("" when none). */
static const char *node_token(const ing_req *r)
{
    return ing_node_live_token(r->app->node_live);
}

/* The claim time an in-flight record of r names: the one its route set
 * (a join's sent_ms), else now. */
static int64_t claim_ms(ing_req *r)
{
    if (!r->idem_at_ms)
        r->idem_at_ms = ing_now_ms();
    return r->idem_at_ms;
}

/* Another request's in-flight record o (a join's): is that request gone?
 * Its node's liveness key lapsed (it died), or it is past the time any
 * live node answers a join (idem.send_by_ms to send it, the produce
 * timeout for its report, one node TTL to write the answer). Then it is
 * resumed as an unknown outcome: *u is filled with its claim time (the
 * record's sent_ms) and the latest moment it could have been handed to
 * Kafka plus the produce timeout (the send is gated by idem.send_by_ms,
 * join_produce), from which its lane must settle. Returns 1 (resume) or 0
 * (still running, or Redis cannot tell: 409 as before). */
static int inflight_gone(ing_req *r, ing_worker *w, json_t *o, ing_idem_unknown *u)
{
    json_t *n = json_object_get(o, "n"), *t = json_object_get(o, "t");
    if (!json_is_string(n) || !json_is_integer(t))
        return 0;
    const ing_opts *op = &r->app->o;
    int64_t sent = json_integer_value(t);
    int64_t sent_by = sent + op->idem_send_by_ms + op->kafka_produce_timeout_ms;
    if (ing_now_ms() < sent_by + op->idem_node_ttl_ms &&
        q_status_node_alive(w->st, json_string_value(n)) != 0)
        return 0;
    u->partition = -1;
    u->sent_ms = sent;
    u->at_ms = sent_by;
    u->orphan = 1;
    return 1;
}

/* An unknown outcome's record o: where its record would be, into *u.
 * Returns 1. */
static int unknown_read(json_t *o, ing_idem_unknown *u)
{
    json_t *p = json_object_get(o, "p"), *t = json_object_get(o, "t"),
           *at = json_object_get(o, "at");
    u->partition = json_is_integer(p) ? (int32_t)json_integer_value(p) : -1;
    u->sent_ms = json_is_integer(t) ? json_integer_value(t) : 0;
    u->at_ms = json_is_integer(at) ? json_integer_value(at) : 0;
    u->orphan = 0;
    return 1;
}

/* ing_idem_begin_resumable; orphans: an in-flight record whose request is
 * gone (inflight_gone) is resumed (2) too. */
static int begin_record(ing_req *r, ing_worker *w, const char *scope, ing_idem_unknown *u,
                        int orphans)
{
    if (!r->idem[0])
        return 0;
    ing_sha256_hex(scope, strlen(scope) + 1, r->raw ? r->raw : "", r->raw_len, r->idem_hash);
    char *rec = NULL;
    /* In flight the record lives only idem.inflight_ttl_s, so a request
     * that dies half-way does not block its key for a day. */
    int rc = q_status_idem_begin(w->st, r->who.user_id, r->idem, r->idem_hash, node_token(r),
                                 claim_ms(r), (int)r->app->o.idem_inflight_ttl_s, &rec);
    if (rc == 0) {
        r->idem_owned = 1;
        return 0;
    }
    if (rc != ONS_EEXIST) {
        free(rec);
        ing_failf(r, w, ING_E_UNAVAILABLE, NULL,
                  "The idempotency store is unavailable; retry shortly.");
        return 1;
    }
    json_error_t jerr;
    json_t *o = json_loads(rec ? rec : "", 0, &jerr);
    if (u)
        snprintf(u->record, sizeof u->record, "%s", rec ? rec : "");
    free(rec);
    json_t *h = json_object_get(o, "h"), *s = json_object_get(o, "s");
    if (!json_is_string(h) || !json_is_integer(s)) {
        json_decref(o);
        ing_fail(r, w, ING_E_IDEMPOTENCY_IN_PROGRESS, NULL);
        return 1;
    }
    if (strcmp(json_string_value(h), r->idem_hash) != 0) {
        json_decref(o);
        ing_fail(r, w, ING_E_IDEMPOTENCY_MISMATCH, NULL);
        return 1;
    }
    int status = (int)json_integer_value(s);
    if ((status == -1 && u && unknown_read(o, u)) ||
        (status == 0 && u && orphans && inflight_gone(r, w, o, u))) {
        json_decref(o);
        return 2;
    }
    if (status <= 0) {
        json_decref(o);
        ing_fail(r, w, ING_E_IDEMPOTENCY_IN_PROGRESS, NULL);
        return 1;
    }
    json_t *b = json_object_get(o, "b");
    json_incref(b);
    json_decref(o);
    ing_reply_json(r, status, b);
    return 1;
}

int ing_idem_begin_resumable(ing_req *r, ing_worker *w, const char *scope, ing_idem_unknown *u)
{
    return begin_record(r, w, scope, u, 0);
}

void ing_idem_begin_many(ing_worker *w, ing_req **rs, const char *const *scopes, size_t n, int *rc)
{
    q_idem_begin *items = calloc(n ? n : 1, sizeof *items);
    if (!items) {
        for (size_t i = 0; i < n; i++)
            rc[i] = ONS_EREDIS;
        return;
    }
    int ttl = n ? (int)rs[0]->app->o.idem_inflight_ttl_s : 0;
    for (size_t i = 0; i < n; i++) {
        ing_req *r = rs[i];
        ing_sha256_hex(scopes[i], strlen(scopes[i]) + 1, r->raw ? r->raw : "", r->raw_len,
                       r->idem_hash);
        items[i] =
            (q_idem_begin){r->who.user_id, r->idem, r->idem_hash, node_token(r), claim_ms(r), 0};
    }
    q_status_idem_begin_many(w->st, items, n, ttl);
    for (size_t i = 0; i < n; i++) {
        rc[i] = items[i].rc;
        if (rc[i] == 0)
            rs[i]->idem_owned = 1;
    }
    free(items);
}

int ing_idem_begin_scoped(ing_req *r, ing_worker *w, ing_idem_scope_fn scope, ing_idem_unknown *u)
{
    char text[ING_IDEM_SCOPE_MAX];
    scope(r, text);
    return begin_record(r, w, text, u, 0);
}

int ing_idem_begin_orphans(ing_req *r, ing_worker *w, ing_idem_scope_fn scope, ing_idem_unknown *u)
{
    char text[ING_IDEM_SCOPE_MAX];
    scope(r, text);
    return begin_record(r, w, text, u, 1);
}

size_t ing_idem_begin_round(ing_worker *w, ing_req **items, size_t n, ing_idem_scope_fn scope,
                            ing_job_fn taken)
{
    size_t k = 0, m = 0;
    char(*scope_buf)[ING_IDEM_SCOPE_MAX] = malloc((n ? n : 1) * sizeof *scope_buf);
    const char **scopes = malloc((n ? n : 1) * sizeof *scopes);
    ing_req **keyed = malloc((n ? n : 1) * sizeof *keyed);
    int *rc = malloc((n ? n : 1) * sizeof *rc);
    int ok = scope_buf && scopes && keyed && rc;
    for (size_t i = 0; ok && i < n; i++) {
        if (!items[i]->idem[0])
            continue;
        scope(items[i], scope_buf[k]);
        scopes[k] = scope_buf[k];
        keyed[k++] = items[i];
    }
    if (ok && k)
        ing_idem_begin_many(w, keyed, scopes, k, rc);
    for (size_t i = 0, q = 0; i < n; i++) {
        ing_req *r = items[i];
        /* Out of memory: as if Redis failed (503, nothing claimed). */
        int code = !r->idem[0] ? 0 : ok ? rc[q++] : ONS_EREDIS;
        if (code == 0)
            items[m++] = r;
        else if (code != ONS_EEXIST)
            ing_failf(r, w, ING_E_UNAVAILABLE, NULL,
                      "The idempotency store is unavailable; retry shortly.");
        else if (ing_pool_submit(r->app->pool, taken, r, 0))
            ing_failf(r, w, ING_E_OVERLOADED, NULL, "The server is busy; retry shortly.");
    }
    free(scope_buf);
    free(scopes);
    free(keyed);
    free(rc);
    return m;
}

/* Gives r's key back: removes its own in-flight record only (the one
 * begin_record or ing_idem_retake wrote: r->idem_hash, this node,
 * r->idem_at_ms), so a request refused after a retry took its key over
 * (ing_idem_begin_orphans) does not remove the retry's record. */
static void idem_abort_own(ing_req *r, ing_worker *w)
{
    /* Redis down: the record lapses after idem.inflight_ttl_s, as before */
    (void)q_status_idem_abort(w->st, r->who.user_id, r->idem, r->idem_hash, node_token(r),
                              r->idem_at_ms);
}

void ing_idem_reply(ing_req *r, ing_worker *w, int status, json_t *body)
{
    if (!r->idem_owned) {
        ing_reply_json(r, status, body);
        return;
    }
    r->idem_owned = 0;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (status >= 200 && status < 300 && text) {
        if (q_status_idem_finish(w->st, r->who.user_id, r->idem, r->idem_hash, status, text,
                                 (int)r->app->o.idem_ttl_s))
            ons_logk(ONS_LOG_WARN, "request_id", r->rid, "idempotency record not stored");
    } else {
        idem_abort_own(r, w);
    }
    ing_reply_raw(r, status, text);
    free(text);
}

void ing_idem_reply_many(ing_worker *w, ing_req **rs, const char *const *bodies, size_t n,
                         int status)
{
    q_idem_done *done = malloc((n ? n : 1) * sizeof *done);
    size_t k = 0;
    for (size_t i = 0; done && i < n; i++) {
        ing_req *r = rs[i];
        if (r->idem_owned)
            done[k++] = (q_idem_done){r->who.user_id, r->idem, r->idem_hash,
                                      bodies[i],      status,  (int)r->app->o.idem_ttl_s,
                                      ONS_EREDIS};
    }
    if (done)
        q_status_idem_finish_many(w->st, done, k);
    for (size_t i = 0, q = 0; i < n; i++) {
        ing_req *r = rs[i];
        if (r->idem_owned) {
            r->idem_owned = 0;
            if (!done || done[q++].rc)
                ons_logk(ONS_LOG_WARN, "request_id", r->rid, "idempotency record not stored");
        }
        ing_reply_raw(r, status, bodies[i]);
    }
    free(done);
}

void ing_idem_release(ing_req *r, ing_worker *w)
{
    if (!r->idem_owned || !w)
        return;
    r->idem_owned = 0;
    idem_abort_own(r, w);
}

int ing_idem_retake(ing_req *r, ing_worker *w, const ing_idem_unknown *u)
{
    int rc = q_status_idem_retake(w->st, r->who.user_id, r->idem, u->record, r->idem_hash,
                                  node_token(r), claim_ms(r), (int)r->app->o.idem_inflight_ttl_s);
    if (rc == 0) {
        r->idem_owned = 1;
        return 0;
    }
    if (rc == ONS_ECONFLICT)
        ing_fail(r, w, ING_E_IDEMPOTENCY_IN_PROGRESS, NULL);
    else
        ing_failf(r, w, ING_E_UNAVAILABLE, NULL,
                  "The idempotency store is unavailable; retry shortly.");
    return 1;
}

void ing_idem_found(ing_req *r, ing_worker *w, int status, json_t *body)
{
    r->idem_owned = 1; /* the answer is now known: store it for the key */
    ing_idem_reply(r, w, status, body);
}

void ing_idem_unknown_reply(ing_req *r, ing_worker *w, int32_t partition, int64_t sent_ms)
{
    if (r->idem_owned) {
        r->idem_owned = 0;
        if (q_status_idem_unknown(w->st, r->who.user_id, r->idem, r->idem_hash, partition, sent_ms,
                                  ing_now_ms(), (int)r->app->o.idem_ttl_s))
            ons_logk(ONS_LOG_WARN, "request_id", r->rid,
                     "idempotency record of an unknown outcome not stored");
    }
    ing_fail(r, w, ING_E_OUTCOME_UNKNOWN, NULL);
}
