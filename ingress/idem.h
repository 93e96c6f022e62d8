/*
 * idem.h - Idempotency-Key handling for POSTs that create things (docs/api.md),
 * on job threads, over the Redis records of docs/pipeline.md.
 *
 * ing_idem_begin() claims the key for this request, or answers for it: the
 * original response is replayed when the same key comes with the same body,
 * 422 idempotency_mismatch with another body, 409 idempotency_in_progress
 * while the first request is still running, 503 when Redis is down. The
 * body hash covers a scope string (route and target) and the raw body, so a
 * key reused on another endpoint is a mismatch too.
 *
 * A request that owns its key must end through ing_idem_reply() or
 * ing_fail() (api_error.h): a 2xx answer is stored for replay, anything else gives
 * the key back (the request changed nothing, so a retry may succeed).
 */
#ifndef ONSALE_INGRESS_IDEM_H
#define ONSALE_INGRESS_IDEM_H

#include <jansson.h>
#include <stdint.h>

#include "ingress/pool.h"
#include "ingress/server.h"

/* Returns 0: proceed (r owns the key, or carries none); 1: already replied.
 * A key whose earlier outcome is unknown answers 409 idempotency_in_progress
 * here (only routes that resume such keys use ing_idem_begin_resumable). */
int ing_idem_begin(ing_req *r, ing_worker *w, const char *scope);

/* An earlier request with this key sent its record and the outcome is
 * unknown (ing_idem_unknown_reply): where the record would be. */
typedef struct ing_idem_unknown {
    int32_t partition; /* -1: not known */
    int64_t sent_ms;   /* the record's sent_ms (a join's active claim) */
    int64_t at_ms;     /* when the outcome was reported: its lane settles from then */
    char record[256];  /* the stored record, for ing_idem_retake */
    /* 1: not reported unknown but in flight on a node that is gone
     * (ing_idem_begin_orphans); at_ms is the latest moment its record
     * could still have been reported. */
    int orphan;
} ing_idem_unknown;

/* ing_idem_begin, except that a key with an unknown outcome returns 2 and
 * fills *u: r does NOT own the key; the caller looks for what was written
 * and then answers with ing_idem_found (it was written), replies 503 again
 * with ing_idem_unknown_reply(r, w, -1, 0) (cannot tell yet: the record
 * stays), or takes the key for a new attempt with ing_idem_retake (it was
 * certainly not written). */
int ing_idem_begin_resumable(ing_req *r, ing_worker *w, const char *scope, ing_idem_unknown *u);

/* The keys of n requests that each carry one, claimed in ONE pipelined
 * round trip (scopes[i]: r[i]'s scope, as for ing_idem_begin). Replies to
 * nothing: rc[i] = 0 (rs[i] owns its key now), ONS_EEXIST (the key is
 * taken: ing_idem_begin answers for it) or ONS_EREDIS. */
void ing_idem_begin_many(ing_worker *w, ing_req **rs, const char *const *scopes, size_t n, int *rc);

/* A request's Idempotency-Key scope (ing_idem_begin's scope), written
 * into scope (at most ING_IDEM_SCOPE_MAX bytes with its NUL). */
#define ING_IDEM_SCOPE_MAX 64
typedef void (*ing_idem_scope_fn)(const ing_req *r, char scope[ING_IDEM_SCOPE_MAX]);

/* ing_idem_begin_resumable under scope(r)'s scope: the one-at-a-time
 * path of a route whose rounds use ing_idem_begin_round. */
int ing_idem_begin_scoped(ing_req *r, ing_worker *w, ing_idem_scope_fn scope, ing_idem_unknown *u);

/* ing_idem_begin_scoped, except that a key in flight on a node that is
 * gone is resumed too (returns 2, u->orphan set): its node's liveness key
 * lapsed (node_live.h), or the request is past the time a live node
 * answers (idem.send_by_ms + kafka.produce_timeout_ms +
 * idem.node_ttl_ms after its claim). Only for a route that sends within
 * idem.send_by_ms of its claim (the join: join_produce), so the record's
 * claim time bounds when it could still land. The in-flight record of r
 * names this node and r->idem_at_ms (set by the caller first, else now). */
int ing_idem_begin_orphans(ing_req *r, ing_worker *w, ing_idem_scope_fn scope, ing_idem_unknown *u);

/* The keys of a batch thread's round (items[0..n), each under scope(r)),
 * claimed in ONE pipelined round trip (ing_idem_begin_many). Keeps at the
 * front of items, in order, the requests that go on (no key, or the key is
 * theirs now) and returns their count. A request whose key is taken (a
 * replay, a request in flight, an unknown outcome to resume) is handed to
 * a job thread running taken, which reads the record through
 * ing_idem_begin or ing_idem_begin_resumable (pool full: 503 overloaded);
 * Redis down answers 503 unavailable, as ing_idem_begin would. */
size_t ing_idem_begin_round(ing_worker *w, ing_req **items, size_t n, ing_idem_scope_fn scope,
                            ing_job_fn taken);

/* Takes the key back from the unknown record u for a new attempt. Returns
 * 0 (r owns the key now) or 1 (replied: another retry took it first, or
 * Redis is down). */
int ing_idem_retake(ing_req *r, ing_worker *w, const ing_idem_unknown *u);

/* Replies status/body (stolen) for a resumed key and stores it as the key's
 * answer (a 2xx replaces the unknown record). */
void ing_idem_found(ing_req *r, ing_worker *w, int status, json_t *body);

/* The record was sent and its outcome is unknown (ONS_EUNKNOWN): an owned
 * key is kept, marked unknown with where the record would be (partition,
 * sent_ms), instead of being given back; replies 503 outcome_unknown with
 * Retry-After, telling the client to retry with the same key. */
void ing_idem_unknown_reply(ing_req *r, ing_worker *w, int32_t partition, int64_t sent_ms);

/* Replies status/body (stolen), recording or releasing the key first. */
void ing_idem_reply(ing_req *r, ing_worker *w, int status, json_t *body);

/* ing_idem_reply of n requests at once (a batch thread's, e.g. the
 * finisher's): each is answered status (a 2xx) with its body text
 * bodies[i] (the caller's), the records of those that own a key stored
 * first in ONE pipelined round trip (q_status_idem_finish_many); a record
 * not stored is logged, as ing_idem_reply does. */
void ing_idem_reply_many(ing_worker *w, ing_req **rs, const char *const *bodies, size_t n,
                         int status);

/* Gives r's key back (the request ends without an answer to store) when r
 * owns one; does nothing otherwise. Called by ing_fail(); w may be NULL
 * only when r owns no key. */
void ing_idem_release(ing_req *r, ing_worker *w);

#endif
