/*
 * main.c - onsale-worker: the single writer of its Kafka partitions.
 *
 * One thread runs everything that touches state, in this loop:
 *   1. claim / reload partitions that need it (after assignment or failure);
 *      a new partition memory first loads the events with live holds
 *      (wk_store_load_live), the others load on their first record;
 *   2. expire holds that are due (wk_part_expire), records or not, and go on
 *      rejecting a sold-out event's waiting fans (wk_part_reject_due);
 *   3. consume up to batch.max_messages records or batch.max_ms, applying
 *      each in offset order of its lane to its partition's memory
 *      (wk_part_apply_lane); a waiting control record (checkout,
 *      payment_result, cancel, ticket, event_status: docs/pipeline.md "Two
 *      lanes") is always taken before the next intent;
 *   4. per dirty partition: one transaction of effects + both lanes' fenced
 *      cursors (wk_store_commit), then the Redis projection
 *      (wk_project_batch) and advisory async Kafka commits.
 * A failed batch drops the partition's memory, re-reads next_offset and
 * seeks there; a fenced one stops consuming that partition: the partition
 * slots and their retries are workers/supervisor.c, this file gives it the
 * store and the consumer (sup_ops). Rebalances arrive inside the consumer
 * poll (on_assign / on_revoke below). The metrics HTTP
 * endpoint runs on nng's threads and only reads atomics.
 */
#include "common/auth.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/signals.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/opts.h"
#include "queue/consumer.h"
#include "queue/intent_id.h"
#include "queue/msg.h"
#include "queue/status.h"
#include "workers/checkout.h"
#include "workers/httpd.h"
#include "workers/partition.h"
#include "workers/project.h"
#include "workers/store.h"
#include "workers/supervisor.h"
#include "workers/watchdog.h"

#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- options ------------------------------------------------------------------ */

/* The options: a field per line of options.def. */
typedef struct wk_opts {
#define X(...) ONS_OPT_FIELD(__VA_ARGS__)
#include "workers/options.def"
#undef X
} wk_opts;

/* The options (workers/options.def), one row each. */
static const ons_opt opt_table[] = {
#define X(...) ONS_OPT_TABLE_ROW(wk_opts, __VA_ARGS__)
#include "workers/options.def"
#undef X
};
#define NOPTS ONS_OPT_COUNT(opt_table)

/* ---- state ------------------------------------------------------------------ */

/* The consumer is asked to call back within this long between polls; a
 * batch never takes near it, but debug.commit_delay_ms adds to it so a race
 * test's sleeping worker is not thrown out of the group. */
#define MAX_POLL_INTERVAL_MS 300000
/* How long the broker holds a fetch that finds nothing new (both lanes).
 * Not a latency: with fetch.min.bytes 1 the broker answers a held fetch as
 * soon as a record arrives (produce to consume on an idle partition took
 * ~1 ms with 10, 100 and 500 here, bench/NOTES.md "e2e, ninth round"). A
 * short one only costs empty fetches: 10 ms was ~100 a second per lane. */
#define FETCH_WAIT_MS 100
/* Prefetch bound of the consumer, per process (16 MiB: several full
 * batches of ~200-byte records, without holding a backlog in memory). */
#define QUEUED_MAX_KBYTES 16384
/* An idle partition's cursor is projected to Redis this often, so a
 * FLUSHALL or a new Redis is filled again within a second. */
#define IDLE_PUBLISH_S 1.0

/* Partitions whose claim waits are tracked one by one (note_claim_wait);
 * a claim of a partition past it is counted and logged each time. */
#define WK_CLAIM_WAITS_MAX 4096

/* One polled record, decoded, waiting for its batch's events to load. */
typedef struct polled {
    q_record rec;
    q_msg m;
    int decoded; /* 0: poison (why says why) */
    char why[160];
} polled;

typedef struct worker {
    wk_opts o;
    polled *buf; /* batch.max_messages of them */
    wk_map want; /* scratch: event ids a batch needs loaded */
    int64_t *want_ids;
    char owner[160];
    ons_metrics *m;
    wk_httpd *httpd; /* GET /metrics and /healthz; NULL: metrics.port 0 */
    wk_store *store;
    wk_project *proj;
    q_consumer *cons;
    wk_sup sup; /* the partition slots */
    /* metrics */
    char control_topic[256];
    ons_histogram *batch_size, *commit_lat;
    ons_counter *applied[Q_MSG_TYPE_COUNT];
    ons_counter *poison, *unknown_event, *misrouted, *redis_err, *expired;
    /* Misrouted records' warnings: one per WK_MISROUTED_LOG_S, the rest
     * counted (a producer placing by the key sends a stream of them). */
    double misrouted_logged_s;
    long misrouted_quiet;
    ons_counter *republished, *repair_dropped, *repair_newer, *repair_absent, *repair_failed,
        *repair_forgotten, *results_refused, *claim_lock_timeouts;
    /* per partition: the claim's lock timeouts in a row (note_claim_wait) */
    int claim_waits[WK_CLAIM_WAITS_MAX];
    ons_gauge *repair_pending;
    wk_repair_stats repair_seen; /* the counters' last values */
    ons_counter *results[Q_INTENT_STATE_COUNT];
    /* The batch in progress: when its first record was polled and when
     * its poll (and any event's first load) ended (monotonic s), and
     * when it was applied (wall ms, its joins' left_queue_at). */
    double batch_first_s, batch_polled_s;
    int64_t batch_applied_ms;
    int batch_waited; /* its first record took longer than batch.max_ms to come */
    int idled;        /* a poll since the last batch found nothing */
} worker;

/* ---- the supervisor's operations (supervisor.h) ---------------------------------- */

/* Claims the partition, then owes a repair of the results its last
 * commits wrote: the previous owner may have died between a COMMIT and its
 * projection, and Redis would then keep an older result ("reserved" after
 * the release) that nothing rewrites. Not served until that is owed. */
/* A claim that timed out on its row (ONS_ETIMEDOUT: another session
 * holds it, a previous owner's that died mid-COMMIT, until the server
 * drops that session) is retried each second by the supervisor: the wait
 * is logged once at warn when it starts and once when the claim goes
 * through (with how many timed out), and each timeout counted
 * (onsale_worker_claim_lock_timeouts_total), not an error line a second. */
static void note_claim_wait(worker *w, int32_t partition, int rc)
{
    int spare = 0, tracked = partition >= 0 && partition < WK_CLAIM_WAITS_MAX;
    int *waits = tracked ? &w->claim_waits[partition] : &spare;
    if (rc == ONS_ETIMEDOUT) {
        ons_counter_add(w->claim_lock_timeouts, 1);
        if ((*waits)++ == 0)
            ons_log_warn("claim of partition %d: its row is held by another session (a previous "
                         "owner's, perhaps dead mid-COMMIT, until PostgreSQL drops it): retried "
                         "each second, logged again when it goes through",
                         (int)partition);
    } else if (rc == 0 && *waits > 0) {
        ons_log_warn("claim of partition %d went through after %d lock timeout(s)", (int)partition,
                     *waits);
        *waits = 0;
    }
}

static int sup_claim(void *ctx, int32_t partition, int64_t *next, int64_t *ctl_next, int64_t *epoch)
{
    worker *w = ctx;
    /* each claim is a turn for the watchdog: its wait on the row is bounded
     * (half of worker.stuck_restart_ms), and a rebalance or a retry round
     * may claim several partitions in one poll */
    wk_watchdog_turn();
    /* read before the claim: an epoch Redis saw is then one PostgreSQL had
     * handed out before this claim, unless PostgreSQL went back (restored) */
    int64_t seen = wk_project_epoch_seen(w->proj, partition);
    int rc = wk_store_claim(w->store, partition, seen + 1, next, ctl_next, epoch);
    note_claim_wait(w, partition, rc);
    int64_t *seqs = NULL;
    size_t n = 0;
    if (rc == 0 && (rc = wk_store_last_changed(w->store, partition, w->o.redis_resync_window_ms,
                                               &seqs, &n)) == 0)
        rc = wk_project_owe(w->proj, partition, *epoch, seqs, n);
    free(seqs);
    return rc;
}

static int sup_recheck(void *ctx, int32_t partition, int64_t epoch, int64_t *next,
                       int64_t *ctl_next)
{
    worker *w = ctx;
    return wk_store_recheck(w->store, partition, epoch, next, ctl_next);
}

static wk_part *sup_new_part(void *ctx, int32_t partition, int64_t epoch, int64_t next,
                             int64_t ctl_next)
{
    worker *w = ctx;
    wk_part_cfg cfg = {wk_store_load_event,
                       w->store,
                       (int)w->o.hold_seconds_override,
                       (int)w->o.paying_grace_s,
                       (int64_t)w->o.end_grace_s * 1000,
                       (int64_t)w->o.refund_cutoff_s * 1000,
                       w->o.no_tombstones,
                       w->o.ids_secret,
                       (int64_t)w->o.draw_close_ms,
                       (int64_t)w->o.clock_max_ahead_ms,
                       (int64_t)w->o.sold_out_rejects};
    wk_part *p = wk_part_new(partition, epoch, next, &cfg);
    if (!p)
        return NULL;
    p->ctl_next_offset = ctl_next;
    p->fx.first_ctl_offset = ctl_next;
    /* Before any record: a cancel that overtook its intent must win over
     * the intent whichever worker applies it (a claim may come in the
     * middle of a batch's polling, so this cannot wait for run_batch). */
    if (wk_store_load_tombstones(w->store, p) != 0) {
        wk_part_free(p);
        return NULL;
    }
    return p;
}

static int sup_seek(void *ctx, int32_t partition, int64_t next, int64_t ctl_next)
{
    worker *w = ctx;
    int rc = q_consumer_seek(w->cons, Q_TOPIC_INTENTS, partition, next);
    return rc ? rc : q_consumer_seek(w->cons, Q_TOPIC_CONTROL, partition, ctl_next);
}

static void sup_pause(void *ctx, int32_t partition)
{
    worker *w = ctx;
    q_consumer_pause(w->cons, partition);
}

static const wk_sup_ops sup_ops = {sup_claim, sup_recheck, sup_new_part, sup_seek, sup_pause};

static void on_assign(void *arg, const int32_t *parts, int64_t *start, int64_t *cstart, size_t n)
{
    worker *w = arg;
    double now = ons_mono_s();
    for (size_t i = 0; i < n; i++)
        start[i] = wk_sup_assign(&w->sup, parts[i], now, &cstart[i]);
}

static void on_revoke(void *arg, const int32_t *parts, size_t n)
{
    worker *w = arg;
    for (size_t i = 0; i < n; i++) {
        wk_sup_revoke(&w->sup, parts[i]);
        if (parts[i] >= 0 && parts[i] < WK_CLAIM_WAITS_MAX)
            w->claim_waits[parts[i]] = 0;     /* no longer claimed: a next wait is a new one */
        wk_project_forget(w->proj, parts[i]); /* its results are the next owner's */
    }
}

/* A batch of the partition failed: drop memory, re-read next_offset later
 * and seek there (supervisor.h). */
static void fail_partition(worker *w, int32_t partition, const char *why)
{
    wk_sup_fail(&w->sup, partition, ons_mono_s(), why);
}

/* The public id of the intent whose place in the log is seq, into out
 * ("" when it cannot be named). */
static const char *intent_name(const worker *w, int64_t seq, int64_t user_id,
                               char out[Q_ID_LEN + 1])
{
    if (q_id_encode(w->o.ids_secret, Q_ID_INTENT, seq, user_id, out) != 0)
        out[0] = '\0';
    return out;
}

/* Records of events homed elsewhere, skipped: a warning at most once every
 * WK_MISROUTED_LOG_S seconds (with how many were not logged since), every
 * one counted (onsale_worker_poison_records_total{reason="misrouted"}). */
#define WK_MISROUTED_LOG_S 10.0

static void note_misrouted(worker *w, const q_record *rec, int lane, int64_t event_id, int home)
{
    ons_counter_add(w->misrouted, 1);
    double now = ons_mono_s();
    if (w->misrouted_logged_s > 0 && now - w->misrouted_logged_s < WK_MISROUTED_LOG_S) {
        w->misrouted_quiet++;
        return;
    }
    ons_log_warn("record at partition %d%s offset %" PRId64 " of event %" PRId64
                 " (homed on partition %d) skipped: misrouted (%ld more not logged since the "
                 "last such line)",
                 (int)rec->partition, lane == Q_TOPIC_CONTROL ? " (control)" : "", rec->offset,
                 event_id, home, w->misrouted_quiet);
    w->misrouted_logged_s = now;
    w->misrouted_quiet = 0;
}

/* log.intents: one line per applied record that names an intent. */
static void log_applied(const worker *w, const q_record *rec, const q_msg *m)
{
    char iid[Q_ID_LEN + 1], rid[40];
    const char *req = q_record_header(rec, Q_HEADER_REQUEST_ID, rid, sizeof rid);
    int64_t seq;
    switch (m->type) {
    case Q_MSG_INTENT:
        seq = q_seq_make(rec->partition, rec->offset);
        break;
    case Q_MSG_CHECKOUT:
        seq = m->reservation_id;
        break;
    case Q_MSG_CANCEL:
        seq = m->cancel_kind == Q_CANCEL_RESERVATION
                  ? m->reservation_id
                  : q_seq_make(m->target_partition, m->target_offset);
        break;
    default:
        return; /* payment results and tickets: logged with their order at commit */
    }
    ons_logk2(ONS_LOG_INFO, "intent_id", intent_name(w, seq, m->user_id, iid), "request_id", req,
              "applied %s at partition %d%s offset %" PRId64 " (event %" PRId64 ")",
              q_msg_type_name(m->type), (int)rec->partition,
              rec->lane == Q_TOPIC_CONTROL ? " (control)" : "", rec->offset, m->event_id);
}

static void apply_record(worker *w, polled *pr, int64_t now_ms)
{
    const q_record *rec = &pr->rec;
    wk_slot *s = wk_sup_active(&w->sup, rec->partition);
    if (!s)
        return;
    wk_part *p = s->part;
    int lane = rec->lane;
    int64_t expect = lane == Q_TOPIC_CONTROL ? p->ctl_next_offset : p->next_offset;
    if (rec->offset < expect)
        return; /* delivered again after a seek: already applied */
    if (rec->offset > expect)
        ons_log_debug("partition %d%s: offsets %" PRId64 "..%" PRId64 " absent from the log",
                      (int)rec->partition, lane == Q_TOPIC_CONTROL ? " (control)" : "", expect,
                      rec->offset - 1);
    const q_msg m = pr->m;
    if (!pr->decoded) {
        ons_log_warn("poison record at partition %d offset %" PRId64 " skipped: %s",
                     (int)rec->partition, rec->offset, pr->why);
        ons_counter_add(w->poison, 1);
        wk_part_skip_lane(p, lane, rec->offset);
        return;
    }
    int rc = wk_part_apply_lane(p, lane, &m, rec->offset, rec->timestamp_ms, now_ms);
    if (rc == ONS_ENOTFOUND) {
        ons_log_warn("record at partition %d offset %" PRId64 " names unknown event %" PRId64
                     ": skipped",
                     (int)rec->partition, rec->offset, m.event_id);
        ons_counter_add(w->unknown_event, 1);
    } else if (rc == ONS_ECONFLICT) {
        /* Placed on a partition that is not its event's home (a producer
         * that placed it by the key over grown topics): its event's owner is
         * another, so it is never applied here (docs/scaling.md). */
        note_misrouted(w, rec, lane, m.event_id, wk_part_home_elsewhere(p, m.event_id));
    } else if (rc != 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "applying offset %" PRId64 " failed: %s", rec->offset,
                 ons_strerror(rc));
        fail_partition(w, rec->partition, msg);
    } else {
        ons_counter_add(w->applied[m.type], 1);
        if (w->o.log_intents)
            log_applied(w, rec, &m);
    }
}

static void log_results(worker *w, const wk_part *p)
{
    char iid[Q_ID_LEN + 1];
    for (size_t i = 0; i < p->fx.nintents; i++) {
        const wk_fx_intent *r = &p->fx.intents[i];
        if (r->state < Q_INTENT_STATE_COUNT && w->results[r->state])
            ons_counter_add(w->results[r->state], 1);
        if (w->o.log_intents)
            ons_logk(ONS_LOG_INFO, "intent_id", intent_name(w, r->seq, r->user_id, iid),
                     "committed and projected: intent %s, reservation %s, %d seats, "
                     "partition %d offset %" PRId64,
                     q_intent_state_name(r->state), q_res_state_name(r->res_state), (int)r->nseats,
                     (int)r->partition, r->offset);
    }
    const wk_co *co = p->co;
    for (size_t i = 0; w->o.log_intents && co && i < co->norders; i++) {
        const wk_fx_order *o = &co->orders[i];
        char oid[24];
        snprintf(oid, sizeof oid, "%" PRId64, o->order_id);
        ons_logk2(ONS_LOG_INFO, "intent_id", intent_name(w, o->reservation_id, o->user_id, iid),
                  "order", oid, "committed: order %s%s%s, %d tickets%s, charge %s",
                  q_order_state_name(o->state), o->failure_reason ? " " : "",
                  o->failure_reason ? o->failure_reason : "", (int)o->nseats,
                  o->state == Q_ORDER_PAID ? " issued" : "",
                  o->charge_id[0] ? o->charge_id : "none");
    }
}

/* A batch's busy time so far: from the end of its poll (its collecting
 * window and an event's first load left out) to now. */
static double busy_s(const worker *w)
{
    return ons_mono_s() - w->batch_polled_s;
}

/* Between batches (d->applying 0): when records are waiting in the log
 * (as the consumer last fetched its high watermarks: no round trip), the
 * next poll takes them at once and ends by now + the window, and that
 * batch's period is forecast from them (q_status_drain.polled_by_ms,
 * next_ms, and applying_end: the intents it takes); a fan whose record is
 * past them is in a batch after. */
/* Whether a partition the worker owns other than s has records waiting in
 * either lane (cached high watermarks: no round trip). */
static int others_waiting(worker *w, const wk_slot *s)
{
    for (size_t i = 0; i < w->sup.nslots; i++) {
        const wk_slot *o = wk_sup_active(&w->sup, (int32_t)i);
        int64_t high;
        if (!o || o == s)
            continue;
        if ((q_consumer_high_watermark(w->cons, Q_TOPIC_INTENTS, o->part->partition, &high) == 0 &&
             high > o->part->next_offset) ||
            (q_consumer_high_watermark(w->cons, Q_TOPIC_CONTROL, o->part->partition, &high) == 0 &&
             high > o->part->ctl_next_offset))
            return 1;
    }
    return 0;
}

static void note_next_poll(worker *w, const wk_slot *s, q_status_drain *d)
{
    int64_t high, waiting = 0, ctl = d->ctl_queued > 0 ? d->ctl_queued : 0;
    /* The forecast is of a poll this partition's records fill alone: with
     * records waiting in another partition of this worker too, the poll
     * shares batch_max with them and starts after their commits, so the
     * fans keep the collecting window's estimate (found in review). */
    if (others_waiting(w, s))
        return;
    if (q_consumer_high_watermark(w->cons, Q_TOPIC_INTENTS, s->part->partition, &high) == 0 &&
        high > s->part->next_offset)
        waiting = high - s->part->next_offset;
    if (waiting + ctl <= 0)
        return;
    if (ctl > d->batch_max)
        ctl = d->batch_max;
    if (waiting > d->batch_max - ctl)
        waiting = d->batch_max - ctl;
    int full = waiting + ctl >= d->batch_max;
    d->polled_by_ms = ons_wall_ms() + (full ? 0 : d->window_ms);
    d->applying_end = d->served + waiting;
    d->next_ms = d->batch_ms + (double)waiting * d->record_ms + (double)ctl * d->ctl_ms;
}

/* The drain s publishes (q_status_drain): served, the moment of its last
 * batch (applying: that batch, n intents from served and ctl control
 * records, is being committed; else n and ctl are the last batch's) and
 * the owner's pace, with the control records in the log not applied yet
 * (the control lane's high watermark as the consumer last fetched it: no
 * round trip). Before the first batch was timed, the pace is this
 * batch's busy time so far plus a collecting window, when seed (after the
 * commit: the first batches of a new owner are not left without an ETA). */
static q_status_drain slot_drain(worker *w, wk_slot *s, int64_t served, int applying, int64_t n,
                                 int64_t ctl, int seed)
{
    int full = n + ctl >= w->o.batch_max_messages;
    q_status_drain d = {served,
                        s->served_at_ms,
                        0,
                        0,
                        w->o.batch_max_messages,
                        full ? 0 : w->o.batch_max_ms,
                        applying,
                        applying ? served + n : served,
                        ctl,
                        0,
                        wk_slot_ctl_left(s),
                        -1,
                        0,
                        0};
    int64_t high;
    if (q_consumer_high_watermark(w->cons, Q_TOPIC_CONTROL, s->part->partition, &high) == 0)
        d.ctl_queued = high > s->part->ctl_next_offset ? high - s->part->ctl_next_offset : 0;
    wk_slot first;
    const wk_slot *m = s;
    if (seed && s->drain_w <= 0 && n + ctl > 0) {
        first = *s;
        wk_slot_drain(&first, n, ctl, busy_s(w) + (double)w->o.batch_max_ms / 1000.0, 1);
        m = &first;
    }
    wk_slot_drain_model(m, &d.batch_ms, &d.record_ms, &d.ctl_ms);
    if (!applying)
        note_next_poll(w, s, &d);
    return d;
}

/* The batch's records of partition p: intents (*n) and control (*ctl). */
static void batch_counts(const wk_part *p, int64_t *n, int64_t *ctl)
{
    *n = p->next_offset - p->fx.first_offset;
    *ctl = p->ctl_next_offset - p->fx.first_ctl_offset;
}

/* Right after a batch's records were applied in memory, before its
 * commit (the last batch's period ended at this apply: wk_slot_batch_end),
 * the owner publishes that it is committing this batch (applying 1): a
 * fan behind it is in the next batch, applied when this one's period ends
 * (docs/fairness.md "The ETA"). One more write per batch, not waited for. */
static void note_batch_applied(worker *w, int32_t partition, wk_slot *s)
{
    int64_t n, ctl;
    batch_counts(s->part, &n, &ctl);
    if (n + ctl <= 0)
        return; /* due work alone (expiries): not a batch of the drain */
    s->served_at_ms = w->batch_applied_ms;
    q_status_drain d = slot_drain(w, s, s->part->fx.first_offset, 1, n, ctl, 0);
    if (wk_project_drain(w->proj, partition, &d) != 0)
        ons_counter_add(w->redis_err, 1);
}

/* After its projection: the batch is timed when the worker's next batch
 * is applied (wk_slot_batch_pend, wk_slot_batch_end). */
static void note_batch_pace(worker *w, wk_slot *s)
{
    int64_t n, ctl;
    batch_counts(s->part, &n, &ctl);
    wk_slot_batch_pend(s, n, ctl, busy_s(w));
}

static void commit_partition(worker *w, int32_t partition, wk_slot *s)
{
    wk_part *p = s->part;
    double lat = 0;
    size_t n = p->fx.nmessages;
    int64_t from = p->fx.first_offset, cfrom = p->fx.first_ctl_offset;
    int rc = wk_store_commit(w->store, p, &lat);
    if (rc == ONS_EFENCED) {
        wk_sup_fence(&w->sup, partition);
        return;
    }
    if (rc != 0) {
        fail_partition(w, partition, "batch transaction failed (rolled back)");
        return;
    }
    wk_sup_committed(&w->sup, partition);
    int64_t drained, ctl;
    batch_counts(p, &drained, &ctl);
    ons_histogram_observe(w->commit_lat, lat);
    if (n > 0)
        ons_histogram_observe(w->batch_size, (double)n);
    ons_counter_add(w->expired, (double)p->fx.nexpired);
    log_results(w, p);
    double now = ons_mono_s();
    wk_slot_rate(s, n, now);
    ons_log_info("committed partition %d offsets %" PRId64 "..%" PRId64 " epoch %" PRId64
                 " control %" PRId64 "..%" PRId64
                 " (%zu records, %zu intents changed, %zu expired) in %.1f ms",
                 (int)partition, from, p->next_offset, s->epoch, cfrom, p->ctl_next_offset, n,
                 p->fx.nintents, p->fx.nexpired, lat * 1000);
    q_status_drain d = slot_drain(w, s, p->next_offset, 0, drained, ctl, 1);
    if (w->o.project_delay_ms > 0) /* test only: a window to die in (sup_claim) */
        nanosleep(&(struct timespec){w->o.project_delay_ms / 1000,
                                     (long)(w->o.project_delay_ms % 1000) * 1000000},
                  NULL);
    if (wk_project_batch(w->proj, p, s->rate, &d) != 0) {
        ons_counter_add(w->redis_err, 1);
        ons_log_warn("redis projection of partition %d failed (Redis is a projection: "
                     "continuing)",
                     (int)partition);
    } else {
        s->last_publish = now;
    }
    if (n > 0 && p->next_offset != from)
        q_consumer_commit_async(w->cons, Q_TOPIC_INTENTS, partition, p->next_offset);
    if (n > 0 && p->ctl_next_offset != cfrom)
        q_consumer_commit_async(w->cons, Q_TOPIC_CONTROL, partition, p->ctl_next_offset);
    if (s->served)
        ons_gauge_set(s->served, (double)p->next_offset);
    note_batch_pace(w, s);
    wk_part_batch_done(p);
}

/* The idle partitions' cursors due for republishing, sent together. */
/* A second chunk in one round waits for the first one's replies (a round
 * trip): sized past any owner's partition count (docs: 8 by default). */
enum { IDLE_CHUNK = 256 };
typedef struct idle_cursors {
    size_t n;
    int32_t partition[IDLE_CHUNK];
    int64_t served[IDLE_CHUNK];
    double rate[IDLE_CHUNK];
    q_status_drain drain[IDLE_CHUNK];
} idle_cursors;

/* Writes out the cursors in ic in one pipeline, not waited for
 * (wk_project_cursors): a round trip per partition to a busy Redis was a
 * hiccup of hundreds of ms once a second in the busy partition's batch
 * periods, which its fans' ETA is forecast from. */
static void flush_idle(worker *w, idle_cursors *ic)
{
    for (size_t i = 0; w->o.idle_publish_wait && i < ic->n; i++)
        if (wk_project_cursor(w->proj, ic->partition[i], ic->served[i], ic->rate[i],
                              &ic->drain[i]) != 0)
            ons_counter_add(w->redis_err, 1);
    if (!w->o.idle_publish_wait && ic->n > 0 &&
        wk_project_cursors(w->proj, ic->n, ic->partition, ic->served, ic->rate, ic->drain) != 0)
        ons_counter_add(w->redis_err, 1);
    ic->n = 0;
}

/* Idle housekeeping: republish cursors (after a FLUSHALL they come back within
 * a second) and refresh lag gauges from cached watermarks. */
static void idle_publish(worker *w)
{
    double now = ons_mono_s();
    idle_cursors ic = {0};
    for (size_t i = 0; i < w->sup.nslots; i++) {
        wk_slot *s = wk_sup_active(&w->sup, (int32_t)i);
        if (!s)
            continue;
        int64_t high;
        if (s->lag && q_consumer_high_watermark(w->cons, Q_TOPIC_INTENTS, (int32_t)i, &high) == 0)
            ons_gauge_set(
                s->lag,
                (double)(high > s->part->fx.first_offset ? high - s->part->fx.first_offset : 0));
        int64_t cfirst = s->part->fx.first_ctl_offset;
        if (s->ctl_lag &&
            q_consumer_high_watermark(w->cons, Q_TOPIC_CONTROL, (int32_t)i, &high) == 0)
            ons_gauge_set(s->ctl_lag, (double)(high > cfirst ? high - cfirst : 0));
        if (now - s->last_publish < IDLE_PUBLISH_S)
            continue;
        wk_slot_rate(s, 0, now);
        int64_t at = s->part->fx.first_offset;
        ic.partition[ic.n] = (int32_t)i;
        ic.served[ic.n] = at;
        ic.rate[ic.n] = s->rate;
        ic.drain[ic.n++] = slot_drain(w, s, at, 0, s->drain_pend_n, s->drain_pend_c, 0);
        s->last_publish = now;
        if (ic.n == IDLE_CHUNK)
            flush_idle(w, &ic);
    }
    flush_idle(w, &ic);
}

/* Loads, per partition, every event the n polled records name that is not
 * in memory yet, in one go (wk_store_load_events): a batch spread over
 * 1,000 events costs a few round trips instead of eight per event. */
static void load_batch_events(worker *w, size_t n)
{
    for (size_t i = 0; i < w->sup.nslots; i++) {
        wk_slot *s = wk_sup_active(&w->sup, (int32_t)i);
        if (!s)
            continue;
        size_t k = 0;
        wk_map_clear(&w->want);
        for (size_t j = 0; j < n; j++) {
            const polled *pr = &w->buf[j];
            /* Events homed elsewhere are never loaded here (fenced). */
            if (pr->rec.partition != (int32_t)i || !pr->decoded ||
                wk_part_event(s->part, pr->m.event_id) || wk_map_get(&w->want, pr->m.event_id) ||
                wk_part_home_elsewhere(s->part, pr->m.event_id) >= 0)
                continue;
            if (wk_map_put(&w->want, pr->m.event_id, (void *)1) != 0)
                break; /* no memory: the rest load one by one on their records */
            w->want_ids[k++] = pr->m.event_id;
        }
        if (k > 1 && wk_store_load_events(w->store, s->part, w->want_ids, k) != 0)
            fail_partition(w, (int32_t)i, "loading the batch's events failed");
    }
}

/* Holds due now are expired before this batch's records, in each
 * partition's own transaction. This runs every loop, records or not (the
 * poll waits at most hold.check_ms), on every hold in memory: a
 * partition's memory first loads the events with live holds, so no hold
 * waits for a record of its event to expire. Due ends, draws and paced
 * admissions are made here too. */
static void run_due(worker *w, int64_t now_ms)
{
    for (size_t i = 0; i < w->sup.nslots; i++) {
        wk_slot *s = wk_sup_active(&w->sup, (int32_t)i);
        if (!s)
            continue;
        if (s->load_live) {
            if (wk_store_load_live(w->store, s->part) != 0) {
                fail_partition(w, (int32_t)i, "loading events with live holds failed");
                continue;
            }
            s->load_live = 0;
        }
        int rc = wk_part_expire(s->part, now_ms, (size_t)w->o.batch_max_messages);
        if (rc < 0)
            fail_partition(w, (int32_t)i, "expiring holds failed");
        else if (wk_part_end_due(s->part, now_ms) < 0)
            fail_partition(w, (int32_t)i, "ending past events failed");
        else if (wk_part_draw_due(s->part, now_ms) < 0)
            fail_partition(w, (int32_t)i, "making a due draw failed");
        else if (wk_part_admit_due(s->part, now_ms) < 0)
            fail_partition(w, (int32_t)i, "admitting paced fans failed");
        else if (wk_part_reject_due(s->part, now_ms) < 0)
            fail_partition(w, (int32_t)i, "rejecting a sold-out event's waiting fans failed");
    }
}

/* Polls up to batch.max_messages records into w->buf, for at most
 * batch.max_ms after the first (hold.check_ms while none comes), decoding
 * each. Returns how many. */
static size_t poll_batch(worker *w)
{
    size_t n = 0;
    double deadline = 0, start = ons_mono_s();
    int timeout = (int)w->o.hold_check_ms;
    /* a sold-out event's rejections go on in the next batch, at once, and
     * so does a repair Redis answers */
    if (wk_project_repairing(w->proj))
        timeout = 0;
    for (size_t i = 0; i < w->sup.nslots && timeout > 0; i++) {
        wk_slot *s = wk_sup_active(&w->sup, (int32_t)i);
        if (s && wk_part_rejecting(s->part))
            timeout = 0;
    }
    while (n < (size_t)w->o.batch_max_messages && !ons_stop_requested) {
        polled *pr = &w->buf[n];
        int rc = q_consumer_poll(w->cons, timeout, &pr->rec);
        if (rc == ONS_ETIMEDOUT)
            break;
        if (rc != 0)
            continue;
        if (n == 0) {
            w->batch_first_s = ons_mono_s();
            w->batch_waited = w->batch_first_s - start > (double)w->o.batch_max_ms / 1000.0;
            deadline = w->batch_first_s + (double)w->o.batch_max_ms / 1000.0;
        }
        pr->decoded =
            q_msg_decode(pr->rec.value, pr->rec.len, &pr->m, pr->why, sizeof pr->why) == 0;
        n++;
        double left = deadline - ons_mono_s();
        timeout = left > 0 ? (int)(left * 1000) : 0;
    }
    return n;
}

/* The repair owed after a failed projection, a step of at most
 * redis.republish_step_ms (wk_project_repair), and its counters. */
static void run_repair(worker *w)
{
    (void)wk_project_repair(w->proj, w->o.redis_republish_step_ms);
    wk_repair_stats now;
    wk_project_repair_stats(w->proj, &now);
    ons_counter_add(w->republished, (double)(now.republished - w->repair_seen.republished));
    ons_counter_add(w->repair_dropped, (double)(now.dropped - w->repair_seen.dropped));
    ons_counter_add(w->repair_newer, (double)(now.kept_newer - w->repair_seen.kept_newer));
    ons_counter_add(w->repair_absent, (double)(now.absent - w->repair_seen.absent));
    ons_counter_add(w->repair_failed, (double)(now.failed - w->repair_seen.failed));
    ons_counter_add(w->repair_forgotten, (double)(now.forgotten - w->repair_seen.forgotten));
    if (now.refused > w->repair_seen.refused)
        ons_log_warn("%" PRIu64 " result write(s) left alone by Redis: a later state or a newer "
                     "owner of the partition was there (this worker lost it while they were "
                     "in flight)",
                     now.refused - w->repair_seen.refused);
    ons_counter_add(w->results_refused, (double)(now.refused - w->repair_seen.refused));
    ons_gauge_set(w->repair_pending, (double)now.pending);
    w->repair_seen = now;
}

/* One turn of the loop: due work, a batch polled and applied, each dirty
 * partition committed and projected, a step of any repair owed. */
static void run_batch(worker *w)
{
    run_due(w, ons_wall_ms());
    size_t n = poll_batch(w);
    if (n == 0)
        w->idled = 1;
    /* Loading an event first named in this batch is a one-off, not the
     * drain's pace: left out of the busy time the ETA's drain measures. */
    load_batch_events(w, n);
    w->batch_polled_s = ons_mono_s();
    /* The batch is applied now, after the poll that may have waited up to
     * hold.check_ms for its first record: a join leaves the queue (its
     * left_queue_at, the moment its ETA promised) when it is applied, not
     * when the owner started waiting for it. */
    int64_t now_ms = ons_wall_ms();
    w->batch_applied_ms = now_ms;
    for (size_t i = 0; i < n; i++) {
        apply_record(w, &w->buf[i], now_ms);
        q_record_release(&w->buf[i].rec);
    }
    for (size_t i = 0; i < w->sup.nslots && n > 0; i++) {
        wk_slot *s = wk_sup_active(&w->sup, (int32_t)i);
        if (s)
            wk_slot_batch_end(s, now_ms, w->batch_waited || w->idled,
                              (double)w->o.batch_max_ms / 1000.0, (double)w->o.eta_window_batches);
    }
    for (size_t i = 0; i < w->sup.nslots; i++) {
        wk_slot *s = wk_sup_active(&w->sup, (int32_t)i);
        if (s && wk_part_dirty(s->part))
            note_batch_applied(w, (int32_t)i, s);
    }
    for (size_t i = 0; i < w->sup.nslots; i++) {
        wk_slot *s = wk_sup_active(&w->sup, (int32_t)i);
        if (s && wk_part_dirty(s->part))
            commit_partition(w, (int32_t)i, s);
    }
    if (n > 0)
        w->idled = 0;
    idle_publish(w);
    run_repair(w);
}

/* The repair's counters (wk_repair_stats), one series per outcome. */
static int setup_repair_metrics(worker *w)
{
    static const char *const outcomes[] = {"written", "dropped", "newer",
                                           "absent",  "failed",  "forgotten"};
    ons_counter **c[] = {&w->republished,   &w->repair_dropped, &w->repair_newer,
                         &w->repair_absent, &w->repair_failed,  &w->repair_forgotten};
    for (size_t i = 0; i < sizeof outcomes / sizeof *outcomes; i++) {
        char labels[32];
        snprintf(labels, sizeof labels, "outcome=\"%s\"", outcomes[i]);
        *c[i] = ons_metrics_counter(
            w->m, "onsale_worker_results_repaired_total",
            "results the repair after a failed projection handled, by outcome (written again, "
            "dropped, left: Redis held a later state, absent: nothing to drop, failed: Redis "
            "refused it, forgotten: past redis.repair_entries_max)",
            labels);
        if (!*c[i])
            return ONS_ENOMEM;
    }
    w->repair_pending = ons_metrics_gauge(w->m, "onsale_worker_results_repair_pending",
                                          "results the repair owed has still to handle", "");
    w->results_refused = ons_metrics_counter(
        w->m, "onsale_worker_results_refused_total",
        "a batch's result writes Redis left alone: it held a later state of the intent, or a "
        "newer owner of the partition had written (this worker lost it while they were in "
        "flight)",
        "");
    w->claim_lock_timeouts = ons_metrics_counter(
        w->m, "onsale_worker_claim_lock_timeouts_total",
        "claims that timed out on the partition's row held by another session (retried each "
        "second)",
        "");
    return w->repair_pending && w->results_refused && w->claim_lock_timeouts ? 0 : ONS_ENOMEM;
}

static int setup_metrics(worker *w)
{
    static const double sizes[] = {1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000};
    w->m = ons_metrics_new();
    if (!w->m)
        return ONS_ENOMEM;
    w->batch_size =
        ons_metrics_histogram(w->m, "onsale_worker_batch_records", "records per committed batch",
                              "", sizes, sizeof sizes / sizeof sizes[0]);
    w->commit_lat =
        ons_metrics_histogram(w->m, "onsale_worker_commit_seconds", "batch transaction latency", "",
                              ons_latency_buckets, ons_latency_buckets_n);
    for (int t = 0; t < Q_MSG_TYPE_COUNT; t++) {
        char labels[48];
        snprintf(labels, sizeof labels, "type=\"%s\"", q_msg_type_name((enum q_msg_type)t));
        w->applied[t] = ons_metrics_counter(w->m, "onsale_worker_messages_applied_total",
                                            "records applied, by message type", labels);
    }
    for (int st = Q_INTENT_WAITING; st < Q_INTENT_STATE_COUNT; st++) {
        char labels[48];
        snprintf(labels, sizeof labels, "state=\"%s\"", q_intent_state_name(st));
        w->results[st] =
            ons_metrics_counter(w->m, "onsale_worker_intent_results_total",
                                "intent state changes committed, by new state", labels);
    }
    w->poison =
        ons_metrics_counter(w->m, "onsale_worker_poison_records_total",
                            "records skipped, by reason (decode: undecodable; unknown_event: no "
                            "such event; misrouted: not on its event's home partition)",
                            "reason=\"decode\"");
    w->unknown_event =
        ons_metrics_counter(w->m, "onsale_worker_poison_records_total",
                            "records skipped, by reason (decode: undecodable; unknown_event: no "
                            "such event; misrouted: not on its event's home partition)",
                            "reason=\"unknown_event\"");
    w->misrouted =
        ons_metrics_counter(w->m, "onsale_worker_poison_records_total",
                            "records skipped, by reason (decode: undecodable; unknown_event: no "
                            "such event; misrouted: not on its event's home partition)",
                            "reason=\"misrouted\"");
    w->redis_err = ons_metrics_counter(w->m, "onsale_worker_redis_errors_total",
                                       "failed Redis projections (not fatal)", "");
    w->expired = ons_metrics_counter(w->m, "onsale_worker_holds_expired_total",
                                     "holds expired by this worker", "");
    if (!w->batch_size || !w->commit_lat || !w->poison || setup_repair_metrics(w) != 0)
        return ONS_ENOMEM;
    return wk_sup_init(&w->sup, &sup_ops, w, w->owner, w->m);
}

static const ons_opt_secret secrets[] = {{"ids.secret", ONS_IDS_SECRET_DEV}};
static const ons_start start_cfg = {
    .cli = {"onsale-worker", "config",
            "usage: onsale-worker [--config FILE] [--KEY=VALUE ...]\n"
            "Consumes its Kafka partitions and applies intents FIFO to PostgreSQL.\n"
            "Options (file 'key = value' lines, environment ONSALE_KEY, or --key=value):\n"},
    .log_name = "worker",
    .secrets = secrets,
    .nsecrets = 1};

/* The name recorded as partition owner: worker.id, else host-pid. Warns
 * about debug options that are on. */
static void name_owner(worker *w)
{
    if (w->o.worker_id[0]) {
        snprintf(w->owner, sizeof w->owner, "%s", w->o.worker_id);
    } else {
        char host[64] = "host";
        gethostname(host, sizeof host - 1);
        snprintf(w->owner, sizeof w->owner, "%s-%d", host, (int)getpid());
    }
    if (w->o.skip_epoch_check)
        ons_log_warn("debug.skip_epoch_check is ON: commits are NOT fenced (tests only)");
    if (w->o.unversioned_results)
        ons_log_warn("debug.unversioned_results is ON: a deposed owner's late result writes can "
                     "replace newer states (tests only)");
    if (w->o.no_tombstones)
        ons_log_warn(
            "debug.no_tombstones is ON: a cancel ahead of its intent is lost (tests only)");
    if (w->o.hold_seconds_override)
        ons_log_warn("debug.hold_seconds_override=%lld: holds do not follow their events",
                     w->o.hold_seconds_override);
}

/* Joins the consumer group (the rebalance callbacks claim partitions). */
static int start_consumer(worker *w)
{
    if (q_topic_control_name(w->o.topic, w->o.control_topic, w->control_topic,
                             sizeof w->control_topic) != 0) {
        ons_log_error("kafka.control_topic: too long");
        return ONS_EINVAL;
    }
    q_consumer_opts co = {
        .brokers = w->o.brokers,
        .sec = {w->o.security_protocol, w->o.ssl_ca_location},
        .topic = w->o.topic,
        .control_topic = w->control_topic,
        .group = w->o.group,
        .client_id = w->owner,
        .session_timeout_ms = (int)w->o.session_timeout_ms,
        .metadata_refresh_ms = (int)w->o.metadata_refresh_ms,
        .max_poll_interval_ms = MAX_POLL_INTERVAL_MS + (int)w->o.commit_delay_ms,
        .fetch_wait_ms = FETCH_WAIT_MS,
        .queued_max_kbytes = QUEUED_MAX_KBYTES,
        .on_assign = on_assign,
        .on_revoke = on_revoke,
        .arg = w,
    };
    return q_consumer_new(&co, &w->cons);
}

/* A worker the watchdog started again (its PostgreSQL hung) joins the
 * group only once PostgreSQL answers: until then a rebalance would hand it
 * partitions it cannot claim, held from the healthy workers. A stop
 * request ends the wait. */
static void wait_for_postgres(worker *w)
{
    ons_log_warn("started again by the watchdog (%d time(s)): waiting for PostgreSQL to answer "
                 "before joining the group",
                 wk_watchdog_restarted());
    while (!ons_stop_requested && wk_store_ping(w->store) != 0) {
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
    if (!ons_stop_requested)
        ons_log_info("PostgreSQL answers: joining the group");
}

/* Builds the worker: metrics and their endpoint, the store, the projection,
 * the batch buffers, the consumer. 0 or an error (logged); stop() undoes
 * what was built. */
static int start(worker *w, char *const *argv)
{
    if (setup_metrics(w) != 0) {
        ons_log_error("out of memory");
        return ONS_ENOMEM;
    }
    if (w->o.metrics_port > 0 && wk_httpd_start((int)w->o.metrics_port, w->m, &w->httpd) != 0)
        return ONS_EIO;
    /* a claim blocked on a dead owner's row must not last a stuck turn */
    wk_store_opts so = {w->o.pg_dsn, w->owner, w->o.skip_epoch_check, (int)w->o.commit_delay_ms,
                        (int)(w->o.stuck_restart_ms / 2)};
    if (wk_store_new(&so, &w->store) != 0)
        return ONS_EDB;
    q_status_opts ro = {.host = w->o.redis_host,
                        .port = (int)w->o.redis_port,
                        .prefix = w->o.redis_prefix,
                        .timeout_ms = (int)w->o.redis_timeout_ms,
                        .result_ttl_s = (int)w->o.result_ttl_s,
                        .down_ms = (int)w->o.redis_down_ms,
                        .unversioned_results = w->o.unversioned_results};
    if (wk_project_new(&ro, w->o.ids_secret, w->o.redis_resync_window_ms, w->o.redis_republish_max,
                       w->o.redis_repair_entries_max, &w->proj) != 0)
        return ONS_EREDIS;
    wk_project_retries(w->proj, w->o.redis_repair_retries, w->o.redis_repair_retry_ms);
    /* the debug sleeps are part of a turn, not a hang */
    if (wk_watchdog_start(w->o.stuck_restart_ms == 0
                              ? 0
                              : w->o.stuck_restart_ms + w->o.commit_delay_ms +
                                    w->o.project_delay_ms,
                          argv) != 0)
        return ONS_ENOMEM;
    w->buf = calloc((size_t)w->o.batch_max_messages, sizeof *w->buf);
    w->want_ids = calloc((size_t)w->o.batch_max_messages, sizeof *w->want_ids);
    if (!w->buf || !w->want_ids) {
        ons_log_error("out of memory");
        return ONS_ENOMEM;
    }
    if (wk_watchdog_restarted())
        wait_for_postgres(w);
    return start_consumer(w);
}

static void stop(worker *w)
{
    q_consumer_free(w->cons);
    wk_sup_fini(&w->sup);
    free(w->buf);
    free(w->want_ids);
    wk_map_fini(&w->want);
    wk_project_free(w->proj);
    wk_store_free(w->store);
    wk_httpd_stop(w->httpd);
    ons_metrics_free(w->m);
}

int main(int argc, char **argv)
{
    worker w;
    memset(&w, 0, sizeof w);
    int prc = ons_opts_start(opt_table, NOPTS, &w.o, argc, argv, &start_cfg);
    if (prc)
        return ons_opts_exit(prc);
    name_owner(&w);
    ons_signals_stop_flag_on();
    int code = 1;
    if (start(&w, argv) == 0) {
        ons_log_info("worker %s consuming %s (control lane %s) as group %s (batch %lld records / "
                     "%lld ms)",
                     w.owner, w.o.topic, w.control_topic, w.o.group, w.o.batch_max_messages,
                     w.o.batch_max_ms);
        while (!ons_stop_requested) {
            /* two turns for the watchdog: a claim retried here and a batch
             * (whose poll may claim in a rebalance) are each bounded */
            wk_watchdog_turn();
            wk_sup_retry_due(&w.sup, ons_mono_s());
            wk_watchdog_turn();
            run_batch(&w);
        }
        ons_log_info("stopping: leaving the consumer group");
        q_consumer_close(w.cons);
        code = 0;
    }
    stop(&w);
    ons_log_info("stopped");
    ons_opts_free(opt_table, NOPTS, &w.o);
    return code;
}
