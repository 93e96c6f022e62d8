/*
 * project.h - the worker's projection to Redis after each COMMIT
 * (docs/pipeline.md): served cursor and drain rate of the partition, each
 * changed intent's result document, each touched event's counters, in one
 * pipeline through queue/status.h.
 *
 * Redis is a projection: a failed publish is reported to the caller (who
 * counts and logs it) and never undoes anything; the next one repairs what
 * it may have left stale (wk_project_new). Used by the consumer thread
 * only.
 */
#ifndef ONSALE_WORKERS_PROJECT_H
#define ONSALE_WORKERS_PROJECT_H

#include "queue/status.h"
#include "workers/partition.h"

typedef struct wk_project wk_project;

/* One result written (or tried), for the repair after a failure. */
typedef struct wk_published {
    int64_t seq;
    int32_t partition;
    double t;               /* monotonic seconds */
    int64_t epoch, version; /* of doc (docs/pipeline.md); a previous owner's: (epoch, -1) */
    char *doc;              /* the document written, kept for a repair; NULL: drop it */
} wk_published;

/* What the repairs did, since the start (wk_project_repair_stats). */
typedef struct wk_repair_stats {
    uint64_t republished; /* results written again */
    uint64_t dropped;     /* results deleted (no document kept: read from PostgreSQL) */
    uint64_t kept_newer;  /* left alone: Redis already held a later state */
    uint64_t absent;      /* to drop, and not in Redis (never written, or deleted) */
    uint64_t failed;      /* Redis refused it (a key of another type, over maxmemory): done */
    uint64_t forgotten;   /* past redis.repair_entries_max: not repaired */
    /* A batch's result writes Redis left alone: it held a later state, or
     * a newer owner of the partition had written (this worker lost it
     * while they were in flight). Not repaired: the later state is true. */
    uint64_t refused;
    size_t pending; /* results the repair owed still has to write or drop */
} wk_repair_stats;

/* *out is owned by the caller (wk_project_free). secret signs the public
 * reservation ids in results. After a failed projection (Redis down, or
 * restarted and perhaps without its last writes) a repair is owed:
 * every result written within resync_window_ms before the last projection
 * Redis took, and every one since, is written again from the documents
 * kept (the last republish_max of them; 0 keeps none) or else deleted
 * (readers fall back to PostgreSQL), never over a later state
 * (wk_project_repair), so no poll answers a state that is over. At most
 * entries_max results are owed (the oldest past it are forgotten, not
 * repaired: a long outage's memory is bounded). Returns 0 or ONS_ENOMEM. */
int wk_project_new(const q_status_opts *o, const char *secret, int64_t resync_window_ms,
                   int64_t republish_max, int64_t entries_max, wk_project **out);
void wk_project_free(wk_project *pj);

/* Publishes p's committed batch (p->fx) with served = p->next_offset.
 * Returns 0, ONS_EREDIS or ONS_ENOMEM. */
int wk_project_batch(wk_project *pj, const wk_part *p, double rate, const q_status_drain *drain);

/* Owes a repair for the results of seqs (partition just claimed at
 * epoch: wk_store_last_changed): what an earlier owner wrote of them is
 * dropped from Redis, as after a failed projection, so readers answer them
 * from PostgreSQL until they change again. What this worker kept of an
 * earlier ownership of partition is forgotten first (wk_project_forget),
 * and nothing else is owed: the other partitions' results are not written
 * again for a claim. Returns 0 or ONS_ENOMEM. */
int wk_project_owe(wk_project *pj, int32_t partition, int64_t epoch, const int64_t *seqs, size_t n);

/* The newest epoch of partition Redis's results were written at
 * (q_status_repair_epoch_get), -1 when none or Redis does not answer: a
 * claim takes an epoch past it (wk_store_claim's floor). */
int64_t wk_project_epoch_seen(wk_project *pj, int32_t partition);

/* Forgets the results kept of partition (revoked, or claimed again: an
 * earlier ownership's): their documents are freed, those a repair in
 * progress owes stay as drops (a drop deletes no later state and writes
 * none), the others go. A repair writes only the results of partitions
 * this worker owns, at the epoch it owns them with: an owner that lost a
 * partition writing its documents back would put an older state over a
 * newer owner's (after the newer one's drop, or onto an expired key: no
 * version is left in Redis to compare with). */
void wk_project_forget(wk_project *pj, int32_t partition);

/* A script call of the repair Redis refuses whole on a live connection
 * (BUSY, a script error, OOM) is tried again after first_ms, doubling
 * (at most 64 times it), up to retries_max times; then its results count
 * as failed (redis.repair_retries, redis.repair_retry_ms; defaults 8 and
 * 100 ms). */
void wk_project_retries(wk_project *pj, int64_t retries_max, int64_t first_ms);

/* Does the repair owed, if any, for up to max_ms (at least one chunk of
 * 512 results, a round trip each), from where it stopped: called once a
 * turn of the owner's loop, so the next batch waits at most about max_ms
 * for it. A result Redis refuses alone (outcome "failed") is done, not
 * retried; a call refused whole is retried (wk_project_retries). Returns 0 (done, or more to do) or
 * ONS_EREDIS / ONS_ENOMEM (Redis still fails: the repair starts over at the next call). */
int wk_project_repair(wk_project *pj, int64_t max_ms);

/* Is a repair owed and did its last step go through (Redis answers)? The
 * owner's loop then polls without waiting, to finish it soon. */
int wk_project_repairing(const wk_project *pj);

void wk_project_repair_stats(const wk_project *pj, wk_repair_stats *out);

/* Publishes only the cursors, rates and drains of n partitions (idle
 * ones, so they come back after a FLUSHALL), in one pipeline written out
 * without waiting for Redis's replies (read by the next call): a busy
 * Redis's round trip per partition is not added to the next batch's
 * period, which the drain (the ETA) times. Returns 0 or ONS_EREDIS (this
 * write, or the last projection's replies, failed). */
int wk_project_cursors(wk_project *pj, size_t n, const int32_t *partitions, const int64_t *served,
                       const double *rate, const q_status_drain *drains);
/* One partition's cursor, rate and drain, waited for (debug.idle_publish_wait:
 * the round trip per partition wk_project_cursors avoids). */
int wk_project_cursor(wk_project *pj, int32_t partition, int64_t served, double rate,
                      const q_status_drain *drain);

/* Publishes only partition's drain, the moment a batch was applied and
 * before its commit (q_status_drain, applying 1), without waiting for
 * Redis's reply. Returns 0 or ONS_EREDIS (this write, or the last
 * projection's replies, failed). */
int wk_project_drain(wk_project *pj, int32_t partition, const q_status_drain *drain);

/* Is this state the end of the intent (its active:<event>:<user> key goes)?
 * A rejected duplicate is ended too: the delete is conditional on the key
 * naming this very intent (q_status_publish), so the user's other intent
 * keeps its key. */
int wk_result_ended(const wk_fx_intent *r);

#endif
