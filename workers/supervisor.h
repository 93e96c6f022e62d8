/*
 * supervisor.h - the worker's partition slots: which partitions it owns,
 * in which state, and when a failed one is tried again.
 *
 * One slot per partition number, in one of five states:
 *
 *   NONE    not assigned to us (the start, and after a revoke);
 *   CLAIM   assigned, the claim failed (the database was down): claimed
 *           again at retry_at, WK_SUP_RETRY_S later;
 *   ACTIVE  claimed at epoch, memory built, consuming both lanes;
 *   RELOAD  a batch failed (or the memory could not be built): memory
 *           dropped, the partition paused; at retry_at its cursors are read
 *           again under the same epoch and both lanes seek there;
 *   FENCED  a newer owner claimed it (a commit or a recheck said so):
 *           memory dropped, paused, never retried (the group rebalance
 *           revokes it).
 *
 *   assign:          any -> ACTIVE, or CLAIM (claim failed), or RELOAD
 *                    (memory not built);
 *   revoke:          any -> NONE;
 *   batch failed:    ACTIVE -> RELOAD at now + wk_sup_backoff_s(fails);
 *   fenced:          any -> FENCED;
 *   batch committed: fails back to 0 (the next failure retries at once);
 *   retry (due):     CLAIM -> as assign; RELOAD -> ACTIVE, or FENCED, or
 *                    RELOAD again WK_SUP_RETRY_S later.
 *
 * The supervisor does no I/O itself: it calls its wk_sup_ops (the store's
 * claim and recheck, the consumer's seek and pause, building a partition's
 * memory), so the machine is unit tested with fakes (tests/unit/
 * test_supervisor.c). It runs on the worker's one thread, including inside
 * the consumer poll (rebalance callbacks); it is not thread-safe.
 */
#ifndef ONSALE_WORKERS_SUPERVISOR_H
#define ONSALE_WORKERS_SUPERVISOR_H

#include "common/metrics.h"
#include "workers/partition.h"

#include <stddef.h>
#include <stdint.h>

enum wk_slot_state {
    WK_SLOT_NONE,
    WK_SLOT_CLAIM,
    WK_SLOT_ACTIVE,
    WK_SLOT_RELOAD,
    WK_SLOT_FENCED,
};

/* A claim or a reload that failed on the database is tried again this
 * much later: often enough to come back soon after PostgreSQL does, rarely
 * enough not to flood its log while it is down. */
#define WK_SUP_RETRY_S 1.0
/* A failed batch is retried at once the first time (most failures are one
 * lost connection); a failure that repeats (a database down, a record that
 * cannot be applied) waits WK_SUP_BACKOFF_FIRST_S, doubling per failure up
 * to WK_SUP_BACKOFF_MAX_S, so a poison batch costs a few reloads a minute
 * and a recovered database is noticed within 5 s. */
#define WK_SUP_BACKOFF_FIRST_S 0.05
#define WK_SUP_BACKOFF_MAX_S   5.0
/* The records-per-second rate projected with a partition's cursor is
 * measured over windows of at least this long, each averaged half-and-half
 * with the previous rate (fans see a steady estimate, not per-batch noise). */
#define WK_SUP_RATE_WINDOW_S 1.0

/* What the supervisor needs from the store, the consumer and the worker.
 * ctx is wk_sup.ctx. Each returns 0 or an ONS_E... code unless noted. */
typedef struct wk_sup_ops {
    /* Claims partition (bumps its epoch): its two lanes' next offsets and
     * the new epoch (wk_store_claim). */
    int (*claim)(void *ctx, int32_t partition, int64_t *next, int64_t *ctl_next, int64_t *epoch);
    /* Re-reads the cursors under epoch; ONS_EFENCED when a newer owner
     * exists (wk_store_recheck). */
    int (*recheck)(void *ctx, int32_t partition, int64_t epoch, int64_t *next, int64_t *ctl_next);
    /* A new partition memory starting at the cursors, or NULL (no memory,
     * or its tombstones could not be read). */
    wk_part *(*new_part)(void *ctx, int32_t partition, int64_t epoch, int64_t next,
                         int64_t ctl_next);
    /* Moves both lanes' consumption to the cursors (and resumes them). */
    int (*seek)(void *ctx, int32_t partition, int64_t next, int64_t ctl_next);
    /* Stops fetching partition until a seek. */
    void (*pause)(void *ctx, int32_t partition);
} wk_sup_ops;

/* One partition's slot. The first block is the supervisor's; the rest is
 * the worker's bookkeeping for its projection and gauges, kept here so one
 * lookup finds both. */
/* How many events of its recent batches a slot remembers for the control
 * records still to come (wk_slot_ctl_left). */
#define WK_SLOT_CTL_EVENTS 8

typedef struct wk_slot {
    int state;     /* enum wk_slot_state */
    wk_part *part; /* the partition's memory (ACTIVE only; owned) */
    int64_t epoch;
    double retry_at; /* CLAIM / RELOAD: monotonic seconds */
    int fails;       /* consecutive failed batches: backs the retries off */
    int load_live;   /* memory is new: load the events with live holds */

    double rate, win_start; /* records per second (wk_slot_rate) */
    int64_t win_count;
    /* The drain published for the ETA (wk_slot_drain): decayed sums over
     * batches of 1, n, c, n*n, n*c, c*c, t, n*t and c*t (n intents and c
     * control records, t seconds from the batch's apply to the next's). */
    double drain_w, drain_n, drain_c, drain_nn, drain_nc, drain_cc, drain_b, drain_nb, drain_cb;
    /* The last batch, timed when the worker applies its next batch,
     * whether or not this partition has records in it
     * (wk_slot_batch_end): its records, and its busy time (apply to
     * projection), the sample instead when the owner waited for records
     * before the next batch. */
    int drain_pend; /* 1: pending; 2: pending, the owner's first (cold) batch */
    int64_t drain_pend_n, drain_pend_c;
    double drain_pend_busy;
    /* the owner's first batch's period: its pace until a batch is timed */
    double drain_cold_s;
    int64_t drain_seen; /* batches applied since the process started */
    /* The events of its recent batches, most recent first (wk_slot_ctl_left:
     * their free seats may still take intents that are in the log) */
    int64_t ctl_events[WK_SLOT_CTL_EVENTS];
    int nctl_events;
    /* the owner's wall clock when its last batch was applied (that batch's
     * left_queue_at; 0 none yet) */
    int64_t served_at_ms;
    double last_publish; /* when the cursor was last projected (0: at once) */
    ons_gauge *served, *lag, *ctl_lag, *owned;
} wk_slot;

typedef struct wk_sup {
    wk_sup_ops ops;
    void *ctx;
    const char *owner; /* for the log: the worker's name */
    ons_metrics *m;    /* may be NULL (no gauges, no counters) */
    ons_counter *claims, *fenced, *failures;
    wk_slot *slots; /* indexed by partition; grows on assignment */
    size_t nslots;
} wk_sup;

/* Initialises sup (no slots yet). m may be NULL; owner is borrowed. 0 or
 * ONS_ENOMEM (a counter). */
int wk_sup_init(wk_sup *sup, const wk_sup_ops *ops, void *ctx, const char *owner, ons_metrics *m);
/* Frees every slot's memory and the slots. */
void wk_sup_fini(wk_sup *sup);

/* The slot of partition, or NULL (never assigned, or create and no
 * memory). create grows the table. */
wk_slot *wk_sup_slot(wk_sup *sup, int32_t partition, int create);

/* Delay before the reload after a batch failure when fails batches in a
 * row have failed before it: 0, then WK_SUP_BACKOFF_FIRST_S doubling, at
 * most WK_SUP_BACKOFF_MAX_S. */
double wk_sup_backoff_s(int fails);

/* The partition was assigned: claims it. Returns the intents offset to
 * start at and *ctl_next the control lane's, or -1 for both (the slot is
 * CLAIM or RELOAD, retried from wk_sup_retry_due). */
int64_t wk_sup_assign(wk_sup *sup, int32_t partition, double now, int64_t *ctl_next);

/* The partition was revoked: memory dropped, slot NONE. */
void wk_sup_revoke(wk_sup *sup, int32_t partition);

/* A batch of the partition failed (why for the log): memory dropped,
 * partition paused, RELOAD at now + wk_sup_backoff_s(fails), fails + 1. */
void wk_sup_fail(wk_sup *sup, int32_t partition, double now, const char *why);

/* A newer owner exists: memory dropped, partition paused, FENCED. */
void wk_sup_fence(wk_sup *sup, int32_t partition);

/* A batch of the partition committed: the failure count starts again. */
void wk_sup_committed(wk_sup *sup, int32_t partition);

/* Claims and reloads whose retry_at has come (see the table above). */
void wk_sup_retry_due(wk_sup *sup, double now);

/* The slot of partition while it consumes (ACTIVE with memory), or NULL. */
wk_slot *wk_sup_active(wk_sup *sup, int32_t partition);

/* Adds n records applied at now to s's rate (records per second, averaged
 * per WK_SUP_RATE_WINDOW_S window). */
void wk_slot_rate(wk_slot *s, size_t n, double now);

/* Adds to s's drain a batch of n intents and c control records that took
 * secs seconds from its apply to the next batch's; each earlier batch
 * weighs half as much per half_life batches since (counted in batches,
 * not time: the pace of the owner's last drain is the best guess for its
 * next one, and idle time is never in a sample). n + c == 0 or secs <= 0
 * adds nothing. */
void wk_slot_drain(wk_slot *s, int64_t n, int64_t c, double secs, double half_life);
/* s's batch of n intents and c control records was committed and
 * projected, busy_s seconds after it was applied: it is timed when the
 * worker applies its next batch (wk_slot_batch_end). The owner's first
 * batch (cold statements and caches) is not its pace: not a sample, but
 * the pace until one is (wk_slot_drain_model). */
void wk_slot_batch_pend(wk_slot *s, int64_t n, int64_t c, double busy_s);
/* The worker applied a batch of records at applied_ms (its wall clock):
 * s's pending batch, if any, was the worker's batch before, and its
 * period ends now, whether or not s has records in this one (a record of
 * s's that came meanwhile would have been applied now): applied_ms - its
 * apply, or when the owner waited for records between them (waited), its
 * busy time plus window_s. A quiet partition of a worker owning several
 * is not timed to its own next apply, across other partitions' batches:
 * its fans wait for the worker's next batch, not for its next records.
 * Adds the sample to s's drain (wk_slot_drain). */
void wk_slot_batch_end(wk_slot *s, int64_t applied_ms, int waited, double window_s,
                       double half_life);
/* The control records s's partition can still send (q_status_drain's
 * ctl_left): a checkout and a payment result a hold, and as many for each
 * intent the free seats of its events may still take (their free seats
 * over the seats a hold has on average), over the events of the batch in
 * memory (p->fx) and of the recent batches before it (remembered here):
 * between batches, when the batch's effects are cleared, the events whose
 * fans are in the log still count. */
int64_t wk_slot_ctl_left(wk_slot *s);
/* The period of a batch of n intents and c control records as s's recent
 * batches show it: *batch_ms + n * *record_ms + c * *ctl_ms, fitted by
 * least squares over their sizes (all >= 0; a count that hardly varies
 * cannot be told from the batch's own cost and gives its share to
 * *batch_ms; a negative share is left out and the rest fitted again).
 * Before a batch is timed, the owner's first (cold) batch's period all in
 * *batch_ms (a new owner's first fans are not told the assumed rate's
 * pace, status.assumed_rate, while its first batches commit); all 0 before
 * that. Control records cost the owner several times
 * an intent (a checkout writes an order, its items and an outbox row), so
 * a batch's period follows both counts. */
void wk_slot_drain_model(const wk_slot *s, double *batch_ms, double *record_ms, double *ctl_ms);

#endif
