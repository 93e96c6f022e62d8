/*
 * intent_store.h - the PostgreSQL reads of intents for ingress
 * (routes_queue.c): an intent's state, the intent an unknown join outcome
 * made, and an intent's result rebuilt when Redis has none. One function
 * per statement, typed rows, ONS_E... codes; no PGresult leaves it.
 *
 * Job threads only, with that thread's connection. Besides its own codes
 * each may return ONS_EUNAVAIL (no connection), ONS_EDB (the statement
 * failed or a row did not parse; logged) or ONS_ENOMEM. Intents are written
 * by the partition owner; ingress reads them only when Redis cannot answer,
 * so none of this is on the join or poll fast path.
 */
#ifndef ONSALE_INGRESS_INTENT_STORE_H
#define ONSALE_INGRESS_INTENT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ingress/order_store.h"
#include "ingress/pool.h"

/* The state of user_id's intent seq. ONS_ENOTFOUND: not processed yet. */
int ing_intent_state_get(ing_worker *w, int64_t seq, int64_t user_id, char state[16]);

/* The intent a join by user_id for event_id made when its record was sent
 * at sent_ms (its accepted_at) into partition (< 0: any). ONS_ENOTFOUND:
 * none (yet). */
int ing_intent_of_join(ing_worker *w, int64_t user_id, int64_t event_id, int32_t partition,
                       int64_t sent_ms, int64_t *seq, char state[16]);

typedef struct ing_intent_seat {
    ing_seat seat;
    int64_t price_cents;
} ing_intent_seat;

/* An intent's result as the worker would have put it in Redis. */
typedef struct ing_intent_result {
    char state[16];
    int64_t event_id;
    int has_reason;
    char reason[64];
    int has_reservation;
    int seats_named; /* the reservation names its seat numbers (migration 0018) */
    int64_t reservation_id, total_cents;
    char currency[8];
    char expires_at[32]; /* RFC 3339 UTC */
    size_t nseats;
    ing_intent_seat *seats; /* heap; ing_intent_result_clear frees */
} ing_intent_result;

/* Reads user_id's intent seq with its reservation and seats, if any.
 * ONS_ENOTFOUND: not processed yet. Call ing_intent_result_clear after 0. */
int ing_intent_result_get(ing_worker *w, int64_t seq, int64_t user_id, ing_intent_result *out);
void ing_intent_result_clear(ing_intent_result *r);

#endif
