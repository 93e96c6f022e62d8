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
    double t; /* monotonic seconds */
} wk_published;

/* *out is owned by the caller (wk_project_free). secret signs the public
 * reservation ids in results. After a failed projection (Redis down, or
 * restarted and perhaps without its last writes) the next one first
 * deletes every result written within resync_window_ms before the last
 * projection Redis took, and every one since (readers fall back to
 * PostgreSQL), so no poll answers a state that is over. Returns 0 or
 * ONS_ENOMEM. */
int wk_project_new(const q_status_opts *o, const char *secret, int64_t resync_window_ms,
                   wk_project **out);
void wk_project_free(wk_project *pj);

/* Publishes p's committed batch (p->fx) with served = p->next_offset.
 * Returns 0, ONS_EREDIS or ONS_ENOMEM. */
int wk_project_batch(wk_project *pj, const wk_part *p, double rate, const q_status_drain *drain);

/* Owes a repair for the results of seqs (a partition just taken over:
 * wk_store_last_changed): they are dropped from Redis before the next
 * projection, as after a failed one, so readers answer them from
 * PostgreSQL until they change again. Returns 0 or ONS_ENOMEM. */
int wk_project_owe(wk_project *pj, const int64_t *seqs, size_t n);

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
 * Redis's reply; nothing while a repair is owed (the next projection
 * repairs first). Returns 0 or ONS_EREDIS (this write, or the last
 * projection's replies, failed). */
int wk_project_drain(wk_project *pj, int32_t partition, const q_status_drain *drain);

/* Builds one intent's result document (the r:<seq> value). *out is a heap
 * string the caller frees. Returns 0 or ONS_ENOMEM. */
int wk_result_json(const wk_fx_intent *r, const char *secret, char **out);

/* Is this state the end of the intent (its active:<event>:<user> key goes)?
 * A rejected duplicate is ended too: the delete is conditional on the key
 * naming this very intent (q_status_publish), so the user's other intent
 * keeps its key. */
int wk_result_ended(const wk_fx_intent *r);

#endif
