/*
 * breaker.h - a circuit breaker around the payment gateway.
 *
 *   closed    calls go through; `failures` consecutive transient failures
 *             (timeouts, connection errors, 5xx) open it;
 *   open      calls fail fast (the gateway is not called) for `open_ms`;
 *   half-open after open_ms one probe call goes through (the others still
 *             fail fast): success closes the breaker, failure opens it again.
 * Definitive answers (success, decline, 4xx) count as successes: the gateway
 * is healthy. Thread-safe (one mutex); transitions are logged and the state
 * is a gauge (0 closed, 1 open, 2 half-open).
 */
#ifndef ONSALE_PAYMENTS_BREAKER_H
#define ONSALE_PAYMENTS_BREAKER_H

#include <pthread.h>
#include <stdint.h>

#include "common/metrics.h"

enum pay_breaker_state { PAY_BR_CLOSED, PAY_BR_OPEN, PAY_BR_HALF_OPEN };

typedef struct pay_breaker {
    pthread_mutex_t mu;
    int state, failures, threshold, probing;
    int64_t open_ms, opened_at_ms;
    ons_gauge *gauge;
    ons_counter *opened, *fast_fails;
} pay_breaker;

/* Initialises b (threshold >= 1, open_ms >= 1); metrics may be NULL. */
void pay_breaker_init(pay_breaker *b, int threshold, int64_t open_ms, ons_metrics *m);
void pay_breaker_fini(pay_breaker *b);

/* May a call go now? 1 yes (in half-open, the caller is the probe and must
 * report), 0 no (fail fast; *retry_in_ms says when to try again). */
int pay_breaker_allow(pay_breaker *b, int64_t now_ms, int64_t *retry_in_ms);

/* Reports the outcome of an allowed call: ok = the gateway answered
 * definitively. */
void pay_breaker_report(pay_breaker *b, int ok, int64_t now_ms);

/* The current state (for logs and tests). */
int pay_breaker_state(pay_breaker *b);

#endif
