/*
 * checkout_store.h - PostgreSQL side of checkout.h: writing a batch's
 * orders, order items, tickets and outbox rows inside the batch transaction
 * store.c opened (before its epoch fence), and loading an event's pending
 * orders and valid tickets inside its load snapshot.
 *
 * Both take the store's connection and run on the worker's consumer thread.
 * libpq failures are logged and returned as ONS_EDB; the caller rolls back.
 */
#ifndef ONSALE_WORKERS_CHECKOUT_STORE_H
#define ONSALE_WORKERS_CHECKOUT_STORE_H

#include <libpq-fe.h>

#include "workers/partition.h"

/* Writes p->co's batch effects. 0, ONS_EDB or ONS_ENOMEM. */
int wk_co_store_write(PGconn *conn, wk_part *p);

/* Loads the pending orders (into their paying intents) and valid tickets
 * of the n events just loaded into p whose ids `ids` names as a bigint
 * array literal ("{1,2}"). 0, ONS_EDB or ONS_ENOMEM. */
int wk_co_store_load_many(PGconn *conn, wk_part *p, size_t n, const char *ids);

#endif
