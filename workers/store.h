/*
 * store.h - the worker's PostgreSQL side: claiming partitions (the epoch
 * fence), loading an event's inventory and live intents, and writing one
 * batch's effects in one transaction.
 *
 * One wk_store owns one libpq connection and is used by the worker's single
 * consumer thread. A broken connection is reset on the next call. Every
 * function translates libpq failures to ONS_EDB after logging them.
 */
#ifndef ONSALE_WORKERS_STORE_H
#define ONSALE_WORKERS_STORE_H

#include "workers/partition.h"

#include <stddef.h>
#include <stdint.h>

typedef struct wk_store wk_store;

typedef struct wk_store_opts {
    const char *dsn;
    const char *owner;    /* written to partition_owner.owner */
    int skip_epoch_check; /* debug: commit without the fence (control test only) */
    int commit_delay_ms;  /* debug: sleep between applying and writing a batch */
    /* A claim waits at most this long for the partition's row (held by the
     * previous owner's transaction); then it fails and is retried. 0: no
     * bound. */
    int claim_lock_timeout_ms;
} wk_store_opts;

/* Connects (the database may be down: calls then fail with ONS_EDB until it
 * is back; common/pg reconnects with backoff). *out is owned by the caller
 * (wk_store_free). 0, ONS_EINVAL (no dsn) or ONS_ENOMEM. */
int wk_store_new(const wk_store_opts *o, wk_store **out);
void wk_store_free(wk_store *st);

/* One round trip to PostgreSQL (connecting first when needed): 0 when it
 * answered, else an error (logged once per outage). Blocks as long as the
 * server takes to answer (a connect gives up after its timeout). */
int wk_store_ping(wk_store *st);

/* Claims the partition: epoch + 1, or epoch_floor when that is higher
 * (the results in Redis were written at epochs up to epoch_floor - 1,
 * past PostgreSQL's: it was restored from an older backup, and an epoch
 * below them would have every result write refused; logged), owner = me
 * (the row is created if missing). The epoch covers both lanes. Returns 0 with the partition's
 * next_offset (intents topic), ctl_next (control topic) and my epoch,
 * ONS_ETIMEDOUT (bounded claim: another session holds the row past the
 * lock timeout; not logged, the caller retries and counts them) or ONS_EDB
 * (logged). */
int wk_store_claim(wk_store *st, int32_t partition, int64_t epoch_floor, int64_t *next_offset,
                   int64_t *ctl_next, int64_t *epoch);

/* The intents of partition whose rows the last commits changed: those
 * updated within window_ms before the partition's latest change. A new
 * owner drops their Redis results (wk_project_owe): the previous owner may
 * have committed them and died before projecting them. *seqs is the
 * caller's (free). Read over the partition's range of intent_seq (the
 * primary key; intents has no index on partition). Returns 0, ONS_EDB or
 * ONS_ENOMEM. */
int wk_store_last_changed(wk_store *st, int32_t partition, int64_t window_ms, int64_t **seqs,
                          size_t *n);

/* Re-reads the partition after a failed batch: 0 and both cursors while the
 * epoch is still mine, ONS_EFENCED when a newer owner claimed it, ONS_EDB. */
int wk_store_recheck(wk_store *st, int32_t partition, int64_t epoch, int64_t *next_offset,
                     int64_t *ctl_next);

/* wk_load_fn for partition.h: loads event_id (its seats, price, status,
 * hold window, live reservations and waiting intents) into p. ctx is the
 * wk_store. Returns 0, ONS_ENOTFOUND (no such event), ONS_EDB or ONS_ENOMEM. */
int wk_store_load_event(void *ctx, wk_part *p, int64_t event_id);

/* Loads the events not in p yet (ids distinct, none loaded) into p, in one
 * snapshot and a fixed number of round trips whatever their number; an id
 * with no event is left out. Returns 0, ONS_EDB or ONS_ENOMEM (p must then
 * be rebuilt). */
int wk_store_load_events(wk_store *st, wk_part *p, const int64_t *event_ids, size_t n);

/* Loads into p every event with live holds (held or paying
 * reservations) in p's partition that is not loaded yet, earliest expiry first. Memory starts empty
 * after a claim or a reload and events load lazily on their records: without this a hold on a quiet
 * event would outlive its expiry until some record named the event. Returns 0, ONS_EDB or
 * ONS_ENOMEM (p must then be rebuilt). */
int wk_store_load_live(wk_store *st, wk_part *p);

/* Loads p's tombstones at or above p->next_offset (partition.h: cancels
 * that overtook their intent). Must run before p applies any record.
 * Returns 0, ONS_EDB or ONS_ENOMEM. */
int wk_store_load_tombstones(wk_store *st, wk_part *p);

/* Writes p's batch (p->fx, next_offset = p->next_offset, control_next_offset
 * = p->ctl_next_offset, tombstones) in one transaction with set-based
 * statements, ending with the epoch fence over both cursors. Returns 0
 * (committed), ONS_EFENCED (a newer owner exists: rolled back) or ONS_EDB
 * (rolled back). *latency_s receives the transaction's duration. */
int wk_store_commit(wk_store *st, wk_part *p, double *latency_s);

/* A binary COPY stream (PostgreSQL's COPY ... (FORMAT binary) format). A
 * zeroed one is empty; b is the caller's to free. */
typedef struct wk_copybuf {
    unsigned char *b;
    size_t len, cap;
    int oom; /* an allocation failed: the stream is incomplete */
} wk_copybuf;

/* Writes the new intents of fx (is_new) into c (reset first) as the binary
 * COPY stream wk_store_commit sends. Returns how many rows (0: none), or
 * ONS_ENOMEM. Exposed for its unit test. */
int wk_store_intents_copy(const wk_fx *fx, wk_copybuf *c);

#endif
