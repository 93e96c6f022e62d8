/*
 * outbox_store.h - the PostgreSQL side of onsale-payments: the outbox's
 * three statements (claim due rows, give one back, finish a batch), typed rows
 * in and out, ONS_E... codes (common/err.h), and the wait for the writers'
 * notification that rows were written (migration 0015). No PGresult leaves
 * this module.
 *
 * Each function runs on the calling charger thread's own connection
 * (common/pg: (re)connects with backoff, logs a failed statement once);
 * ONS_EUNAVAIL means there was none, ONS_EDB that the statement failed.
 */
#ifndef ONSALE_PAYMENTS_OUTBOX_STORE_H
#define ONSALE_PAYMENTS_OUTBOX_STORE_H

#include <stdint.h>

#include "common/pg.h"
#include "workers/payments/relay.h"

/* Claims up to max due rows (pending, next_attempt_at passed, no live
 * lease) for lease_ms, skipping rows another process has locked, and counts
 * the attempt. Returns 0 with *n rows written to rows (a row whose fields do
 * not read is logged and left to its lease), or ONS_EUNAVAIL / ONS_EDB.
 * With *n > 0 the notifications received so far are dropped: the caller
 * claims again after the batch rather than wait (pay_outbox_wait). */
int pay_outbox_claim(ons_pg *pg, int64_t lease_ms, pay_row *rows, int max, int *n);

/* Gives w back for a later attempt after delay_ms, with why as last_error.
 * 0, ONS_EUNAVAIL or ONS_EDB (the lease then runs out instead). */
int pay_outbox_reschedule(ons_pg *pg, const pay_row *w, int64_t delay_ms, const char *why);

/* Records the payments row of each done[i].ans and marks done[i].row done
 * (a payment recorded before is left alone), all n in one set-based
 * statement; if that fails on a live connection, each row alone. 0, ONS_EUNAVAIL,
 * ONS_EINVAL (an answer that is not final) or ONS_EDB (some rows may not
 * be done; they are sent again, which is harmless). */
int pay_outbox_finish(ons_pg *pg, const pay_done *done, size_t n);

/* The channel every INSERT of outbox rows notifies (migration 0015). */
#define PAY_OUTBOX_CHANNEL "onsale_outbox"

/* A thread's listening state: the session (ons_pg.connects) it LISTENs on. */
typedef struct pay_listen {
    int64_t session; /* 0: not listening */
} pay_listen;

/* LISTENs on PAY_OUTBOX_CHANNEL unless pg's current session already does (a
 * reconnect opens a session that does not). Returns 0 when it already did,
 * 1 when it LISTENs from now on (a notification sent before was not heard:
 * look at the outbox before waiting), ONS_EUNAVAIL or ONS_EDB. */
int pay_outbox_listen(ons_pg *pg, pay_listen *l);

/* Waits at most wait_ms for a notification on pg's listening session;
 * notifications already received (while other statements ran) count.
 * Returns 1 when one came (all received are consumed), 0 when none came
 * in time, ONS_EUNAVAIL when pg has no connection, ONS_EIO when it broke
 * (forgotten: the next statement reconnects). */
int pay_outbox_wait(ons_pg *pg, int wait_ms);

#endif
