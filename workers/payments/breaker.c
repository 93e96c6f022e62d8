/* breaker.c - the gateway circuit breaker; see breaker.h. */
#include "workers/payments/breaker.h"
#include "common/log.h"

static const char *names[] = {"closed", "open", "half-open"};

/* While the half-open probe is out, the other calls are told to look again
 * after this fraction of the open period (+1 ms): soon enough to follow a
 * probe that succeeds, rarely enough not to churn the outbox rows. */
#define PROBE_WAIT_DIVISOR 4

/* With b->mu held. */
static void set_state(pay_breaker *b, int state, int64_t now_ms)
{
    if (b->state == state)
        return;
    ons_log_warn("circuit breaker %s -> %s (consecutive failures %d)", names[b->state],
                 names[state], b->failures);
    b->state = state;
    if (state == PAY_BR_OPEN) {
        b->opened_at_ms = now_ms;
        if (b->opened)
            ons_counter_add(b->opened, 1);
    }
    if (b->gauge)
        ons_gauge_set(b->gauge, state);
}

void pay_breaker_init(pay_breaker *b, int threshold, int64_t open_ms, ons_metrics *m)
{
    pthread_mutex_init(&b->mu, NULL);
    b->state = PAY_BR_CLOSED;
    b->failures = b->probing = 0;
    b->threshold = threshold < 1 ? 1 : threshold;
    b->open_ms = open_ms < 1 ? 1 : open_ms;
    b->opened_at_ms = 0;
    b->gauge = m ? ons_metrics_gauge(m, "onsale_payments_breaker_state",
                                     "gateway circuit breaker: 0 closed, 1 open, 2 half-open", NULL)
                 : NULL;
    b->opened = m ? ons_metrics_counter(m, "onsale_payments_breaker_opened_total",
                                        "times the gateway circuit breaker opened", NULL)
                  : NULL;
    b->fast_fails =
        m ? ons_metrics_counter(m, "onsale_payments_breaker_fast_fails_total",
                                "calls refused at once while the breaker was open", NULL)
          : NULL;
    if (b->gauge)
        ons_gauge_set(b->gauge, PAY_BR_CLOSED);
}

void pay_breaker_fini(pay_breaker *b)
{
    pthread_mutex_destroy(&b->mu);
}

int pay_breaker_allow(pay_breaker *b, int64_t now_ms, int64_t *retry_in_ms)
{
    int ok = 1;
    pthread_mutex_lock(&b->mu);
    if (b->state == PAY_BR_OPEN && now_ms - b->opened_at_ms >= b->open_ms)
        set_state(b, PAY_BR_HALF_OPEN, now_ms);
    if (b->state == PAY_BR_OPEN) {
        ok = 0;
        *retry_in_ms = b->open_ms - (now_ms - b->opened_at_ms);
    } else if (b->state == PAY_BR_HALF_OPEN) {
        if (b->probing) {
            ok = 0;
            *retry_in_ms = b->open_ms / PROBE_WAIT_DIVISOR + 1;
        } else {
            b->probing = 1;
        }
    }
    if (!ok && b->fast_fails)
        ons_counter_add(b->fast_fails, 1);
    pthread_mutex_unlock(&b->mu);
    return ok;
}

void pay_breaker_report(pay_breaker *b, int ok, int64_t now_ms)
{
    pthread_mutex_lock(&b->mu);
    int was_probe = b->state == PAY_BR_HALF_OPEN && b->probing;
    if (was_probe)
        b->probing = 0;
    if (ok) {
        b->failures = 0;
        set_state(b, PAY_BR_CLOSED, now_ms);
    } else {
        b->failures++;
        if (was_probe || (b->state == PAY_BR_CLOSED && b->failures >= b->threshold))
            set_state(b, PAY_BR_OPEN, now_ms);
    }
    pthread_mutex_unlock(&b->mu);
}

int pay_breaker_state(pay_breaker *b)
{
    pthread_mutex_lock(&b->mu);
    int s = b->state;
    pthread_mutex_unlock(&b->mu);
    return s;
}
