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
 * ing_idem_error(): a 2xx answer is stored for replay, anything else gives
 * the key back (the request changed nothing, so a retry may succeed).
 */
#ifndef ONSALE_INGRESS_IDEM_H
#define ONSALE_INGRESS_IDEM_H

#include <jansson.h>

#include "ingress/pool.h"
#include "ingress/server.h"

/* Returns 0: proceed (r owns the key, or carries none); 1: already replied. */
int ing_idem_begin(ing_req *r, ing_worker *w, const char *scope);

/* Replies status/body (stolen), recording or releasing the key first. */
void ing_idem_reply(ing_req *r, ing_worker *w, int status, json_t *body);

/* Replies the API error shape, releasing the key first. */
void ing_idem_error(ing_req *r, ing_worker *w, int status, const char *code, const char *field,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#endif
