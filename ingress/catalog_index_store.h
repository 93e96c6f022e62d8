/*
 * catalog_index_store.h - the catalog index's data edge and its refresher
 * (docs/search.md "The index in each node").
 *
 * One thread per ingress node, with its own PostgreSQL connection: it loads
 * every event set-based (one REPEATABLE READ snapshot, pages of event ids),
 * then polls the change feed (events.catalog_seq, migration 0013) every
 * refresh_ms and applies what changed to the index's delta. When the delta
 * holds more than delta_max events it loads a new base (the old one serves
 * meanwhile) and swaps it in.
 *
 * The late-commit trap: catalog_seq comes from a sequence inside the writing
 * transaction, so a transaction that commits late makes a value visible
 * below one already seen. Each poll therefore reads "catalog_seq > L" where
 * L is the highest value seen by a poll that ended at least lookback_ms ago:
 * a row is missed only if its transaction committed more than lookback_ms
 * after taking its value (statement timeouts bound that). Rows read again
 * are skipped by their seq. lookback_ms = 0 is the unprotected poller (the
 * control of the test). The index serves only from the first poll whose
 * bound covers the load's snapshot (lookback_ms after the load began);
 * until then, and whenever it is off or over max_events, searches use the
 * database.
 */
#ifndef ONSALE_INGRESS_CATALOG_INDEX_STORE_H
#define ONSALE_INGRESS_CATALOG_INDEX_STORE_H

#include "common/metrics.h"
#include "ingress/catalog_index.h"

typedef struct cat_feed_opts {
    const char *pg_dsn;
    long long max_events;  /* more: no index (logged), the database answers */
    long long refresh_ms;  /* poll period */
    long long lookback_ms; /* re-read window for late commits */
    long long delta_max;   /* events in the delta before a new base is loaded */
    long long page_rows;   /* rows per statement of the load and the polls */
    ons_metrics *metrics;  /* may be NULL */
} cat_feed_opts;

typedef struct cat_feed cat_feed;

/* Starts the refresher thread. 0, ONS_ENOMEM or ONS_EINVAL. */
int cat_feed_start(const cat_feed_opts *o, cat_feed **out);
/* Stops and joins the thread, frees the index. After the HTTP server
 * stopped (searches hold the index). NULL: nothing. */
void cat_feed_stop(cat_feed *f);
/* The index once it serves, else NULL (search the database). Any thread. */
cat_ix *cat_feed_index(cat_feed *f);

#endif
