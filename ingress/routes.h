/*
 * routes.h - the route handlers of ingress, grouped by file:
 *   routes_queue.c   the fan's queue: join, status poll, leave, release
 *   routes_events.c  sellers' venues and events, event details, pause/resume/cancel
 *   routes_ops.c     health, readiness, metrics, the admin queue view
 * Each handler runs on an nng thread (server.h): it validates, then replies
 * or submits a job.
 */
#ifndef ONSALE_INGRESS_ROUTES_H
#define ONSALE_INGRESS_ROUTES_H

#include "ingress/event_store.h"
#include "ingress/server.h"
#include "queue/status.h"

void ing_route_join(ing_req *r);
/* The join claimer's round (an ing_batcher run; arg is the app): items
 * are joins (ing_req *) without an Idempotency-Key. At most
 * join.round_max (<= ING_JOIN_ROUND_MAX) claims share a round trip. */
#define ING_JOIN_ROUND_MAX 256
void ing_join_claim_round(ing_worker *w, void *arg, void **items, size_t n);
void ing_route_intent_get(ing_req *r);
/* Its now hook (ing_route.now): a poll answered from memory (a queued
 * intent whose event state is fresh, or a refused id). */
int ing_route_intent_get_now(ing_req *r);
/* The result reader's round (an ing_batcher run; arg is the app): items
 * are polls (ing_req *) of processed intents. Reads their result documents
 * in one MGET per ING_RESULT_ROUND_MAX and answers; a poll whose document
 * is missing (or Redis down) goes to a job thread, which falls back to
 * PostgreSQL. */
#define ING_RESULT_ROUND_MAX 256
void ing_result_round(ing_worker *w, void *arg, void **items, size_t n);
void ing_route_intent_delete(ing_req *r);
void ing_route_reservation_delete(ing_req *r);

/* routes_orders.c: checkout, orders, tickets */
void ing_route_checkout(ing_req *r);
/* The checkout claimer's round (an ing_batcher run; arg is the app):
 * items are checkouts (ing_req *). Their rate limits in one pipelined
 * Redis round trip, their Idempotency-Keys in one more (a taken key goes
 * to a job thread: replay, in flight, resume), their reservations in one
 * PostgreSQL read, then each is checked and produced as alone. At most
 * checkout.round_max (<= ING_CHECKOUT_ROUND_MAX) a round. */
#define ING_CHECKOUT_ROUND_MAX 256
void ing_checkout_round(ing_worker *w, void *arg, void **items, size_t n);
void ing_route_order_get(ing_req *r);
void ing_route_my_tickets(ing_req *r);
void ing_route_ticket_transfer(ing_req *r);
void ing_route_ticket_cancel(ing_req *r);

/* routes_tickets.c: gate codes and scans */
void ing_route_ticket_code(ing_req *r);
void ing_route_scan(ing_req *r);
/* routes_scanners.c: a venue's or an event's scanner accounts (docs/tickets.md);
 * the route's path says which. */
void ing_route_scanners_list(ing_req *r);
void ing_route_scanner_put(ing_req *r);
void ing_route_scanner_delete(ing_req *r);
/* Does a change of a ticket of event_id, claimed age_ms ago (by
 * PostgreSQL's clock, just read; -1: none) and young (within
 * tickets.change_claim_timeout_s), still block the ticket's code, the door
 * and another change? Young, yes; older, until the control lane of the
 * event's partition is settled past the claim's send (ing_produce_settled):
 * the record it may have sent is then certainly applied, and would have
 * cleared it. So an owner lagging past the timeout never meets a ticket
 * admitted meanwhile; only a claim whose record was never sent (ingress
 * died in between) is freed, by the age and the owner's progress. */
int ing_ticket_claim_blocks(ing_req *r, ing_worker *w, int64_t event_id, int young, int64_t age_ms);

void ing_route_venue_create(ing_req *r);
void ing_route_event_create(ing_req *r);
void ing_route_event_get(ing_req *r);
/* Its now hook (ing_route.now): a view cached and fresh (or being
 * refreshed), or a refused id. */
int ing_route_event_get_now(ing_req *r);
void ing_route_event_get_now_end(void *now);
void ing_route_event_update(ing_req *r);
/* routes_events.c: reads the event's owner row (event_store.h; lock: FOR
 * UPDATE inside the caller's transaction) and checks the caller may change
 * the event (its seller, or an admin). Returns 0 with *out filled, or -1
 * when r was FINISHED (ing_fail: 503 unavailable, 404 event_not_found, 403
 * forbidden) and must not be touched again. */
int ing_event_owned(ing_req *r, ing_worker *w, int64_t event_id, long long end_grace_s, int lock,
                    ing_event_owner *out);
/* routes_events.c: the event's sale state as joins see it (event_cache.h:
 * the node's cache, else Redis, else PostgreSQL). Returns 0 with *out
 * filled, or -1 when r was FINISHED (ing_fail: 404 event_not_found, 503
 * unavailable). */
int ing_event_state(ing_req *r, ing_worker *w, int64_t event_id, q_event_state *out);
/* routes_events.c: the delivery report of a change sent through the event's
 * partition (status, admission). 0 with url = "/v1/events/<id>" (the
 * cached event is forgotten: GET shows the change once it is applied), or
 * -1 when the record was not taken: r was FINISHED with 503
 * queue_unavailable. */
int ing_event_change_delivered(ing_req *r, ing_worker *w, int64_t event_id, char url[48]);
/* routes_admission.c: live admission caps (docs/fairness.md) */
void ing_route_event_admission(ing_req *r);
/* An optional admission cap in body: absent or null = 0, else 1 to
 * Q_MSG_MAX_ADMISSION. 0 or -1 (replied 400). */
int ing_json_cap(ing_req *r, json_t *body, const char *key, int64_t *out);
/* routes_pow.c: proof of work before a join (docs/fairness.md "Bot friction") */
void ing_route_event_challenge(ing_req *r);
void ing_route_event_pow(ing_req *r);
/* Copies the Onsale-PoW header into out (cap ING_POW_HEADER_MAX; "" when
 * absent, "!" when too long). nng thread, in the join's handler. */
void ing_pow_header(ing_req *r, char *out, size_t cap);
/* A join's proof of work, on its job thread, before anything is queued:
 * 0 when the event asks for none (no I/O) or header solves a valid unused
 * challenge (now spent on every node); else replied 403 pow_required /
 * pow_invalid / pow_used (or 503) through the idempotency key, and -1. */
int ing_pow_admit(ing_req *r, ing_worker *w, int64_t event_id, const q_event_state *ev,
                  const char *header);
/* routes_draw.c: the pre-queue's draw (docs/fairness.md), answered from
 * the node's cache of draw answers (app->draws: draw.cache_ttl_ms,
 * draw.cache_events; ttl 0: every request renders). */
void ing_route_event_draw(ing_req *r);
int ing_draws_new(int64_t ttl_ms, size_t slots, ing_draws **out);
void ing_draws_free(ing_draws *c);
void ing_route_event_pause(ing_req *r);
void ing_route_event_resume(ing_req *r);
void ing_route_event_cancel(ing_req *r);

/* routes_catalog.c: the public catalog search */
void ing_route_events_list(ing_req *r);

/* routes_accounts.c: sign-up, login sessions, the caller's account, role grants */
void ing_route_user_create(ing_req *r);
void ing_route_session_create(ing_req *r);
void ing_route_session_refresh(ing_req *r);
void ing_route_session_delete(ing_req *r);
void ing_route_me(ing_req *r);
void ing_route_user_roles_grant(ing_req *r);

void ing_route_healthz(ing_req *r);
void ing_route_readyz(ing_req *r);
void ing_route_metrics(ing_req *r);
void ing_route_admin_queues(ing_req *r);
/* routes_history.c: the ops dashboard's history, from Prometheus */
void ing_route_admin_history(ing_req *r);

#endif
