/* supervisor.c - the worker's partition slots and their retries; see
 * supervisor.h. */
#include "workers/supervisor.h"

#include "common/err.h"
#include "common/log.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void count(ons_counter *c)
{
    if (c)
        ons_counter_add(c, 1);
}

int wk_sup_init(wk_sup *sup, const wk_sup_ops *ops, void *ctx, const char *owner, ons_metrics *m)
{
    memset(sup, 0, sizeof *sup);
    sup->ops = *ops;
    sup->ctx = ctx;
    sup->owner = owner;
    sup->m = m;
    if (!m)
        return 0;
    sup->fenced =
        ons_metrics_counter(m, "onsale_worker_fenced_total",
                            "batches refused because a newer owner claimed the partition", "");
    sup->failures = ons_metrics_counter(m, "onsale_worker_batch_failures_total",
                                        "batches rolled back and reloaded", "");
    sup->claims = ons_metrics_counter(m, "onsale_worker_partition_claims_total",
                                      "partitions claimed (epoch bumps)", "");
    return sup->fenced && sup->failures && sup->claims ? 0 : ONS_ENOMEM;
}

/* Forgets a partition's memory (it is rebuilt from PostgreSQL). */
static void slot_drop(wk_slot *s)
{
    wk_part_free(s->part);
    s->part = NULL;
}

void wk_sup_fini(wk_sup *sup)
{
    for (size_t i = 0; i < sup->nslots; i++)
        slot_drop(&sup->slots[i]);
    free(sup->slots);
    sup->slots = NULL;
    sup->nslots = 0;
}

/* The per-partition gauges, made on the first assignment. */
static void slot_gauges(wk_sup *sup, int32_t partition, wk_slot *s)
{
    if (s->served || !sup->m)
        return;
    char labels[32];
    snprintf(labels, sizeof labels, "partition=\"%d\"", (int)partition);
    s->served = ons_metrics_gauge(sup->m, "onsale_worker_served_offset",
                                  "next unapplied offset committed to PostgreSQL", labels);
    s->lag = ons_metrics_gauge(sup->m, "onsale_worker_lag",
                               "records behind the high watermark (cached watermark)", labels);
    s->owned = ons_metrics_gauge(sup->m, "onsale_worker_partition_owned",
                                 "1 while this worker holds the partition's claim and consumes it",
                                 labels);
    snprintf(labels, sizeof labels, "partition=\"%d\",lane=\"control\"", (int)partition);
    s->ctl_lag = ons_metrics_gauge(sup->m, "onsale_worker_lag",
                                   "records behind the high watermark (cached watermark)", labels);
}

/* Sets a partition's onsale_worker_partition_owned gauge. */
static void slot_owned(wk_slot *s, int owned)
{
    if (s->owned)
        ons_gauge_set(s->owned, owned);
}

wk_slot *wk_sup_slot(wk_sup *sup, int32_t partition, int create)
{
    if (partition < 0)
        return NULL;
    if ((size_t)partition >= sup->nslots) {
        if (!create)
            return NULL;
        size_t n = (size_t)partition + 1;
        wk_slot *s = realloc(sup->slots, n * sizeof *s);
        if (!s)
            return NULL;
        memset(s + sup->nslots, 0, (n - sup->nslots) * sizeof *s);
        sup->slots = s;
        sup->nslots = n;
    }
    return &sup->slots[partition];
}

wk_slot *wk_sup_active(wk_sup *sup, int32_t partition)
{
    wk_slot *s = wk_sup_slot(sup, partition, 0);
    return s && s->state == WK_SLOT_ACTIVE && s->part ? s : NULL;
}

double wk_sup_backoff_s(int fails)
{
    if (fails <= 0)
        return 0;
    double delay = WK_SUP_BACKOFF_FIRST_S;
    for (int i = 1; i < fails && delay < WK_SUP_BACKOFF_MAX_S; i++)
        delay *= 2;
    return delay > WK_SUP_BACKOFF_MAX_S ? WK_SUP_BACKOFF_MAX_S : delay;
}

/* Claims the partition of slot s (both lanes). Returns the intents offset to
 * start at, *ctl_next the control one, or -1 (both). */
static int64_t claim(wk_sup *sup, int32_t partition, wk_slot *s, double now, int64_t *ctl_next)
{
    int64_t next = 0, epoch = 0;
    *ctl_next = -1;
    if (sup->ops.claim(sup->ctx, partition, &next, ctl_next, &epoch) != 0) {
        *ctl_next = -1;
        s->state = WK_SLOT_CLAIM;
        s->retry_at = now + WK_SUP_RETRY_S;
        return -1;
    }
    slot_drop(s);
    /* The claim holds whatever happens to the memory: a reload rechecks
     * under this epoch, not the one before it (which would fence us). */
    s->epoch = epoch;
    s->part = sup->ops.new_part(sup->ctx, partition, epoch, next, *ctl_next);
    if (!s->part) {
        s->state = WK_SLOT_RELOAD;
        s->retry_at = now + WK_SUP_RETRY_S;
        *ctl_next = -1;
        return -1;
    }
    s->state = WK_SLOT_ACTIVE;
    slot_owned(s, 1);
    s->load_live = 1;
    s->last_publish = 0; /* publish the cursor at once */
    count(sup->claims);
    if (s->served)
        ons_gauge_set(s->served, (double)next);
    ons_log_info("claimed partition %d epoch %" PRId64 " next_offset %" PRId64
                 " control_next_offset %" PRId64 " as %s",
                 (int)partition, epoch, next, *ctl_next, sup->owner ? sup->owner : "");
    return next;
}

int64_t wk_sup_assign(wk_sup *sup, int32_t partition, double now, int64_t *ctl_next)
{
    *ctl_next = -1;
    wk_slot *s = wk_sup_slot(sup, partition, 1);
    if (!s)
        return -1;
    slot_gauges(sup, partition, s);
    return claim(sup, partition, s, now, ctl_next);
}

void wk_sup_revoke(wk_sup *sup, int32_t partition)
{
    wk_slot *s = wk_sup_slot(sup, partition, 0);
    if (!s)
        return;
    if (s->part && wk_part_dirty(s->part))
        ons_log_info("partition %d revoked with an uncommitted batch (the next owner "
                     "re-applies it)",
                     (int)partition);
    slot_drop(s);
    s->state = WK_SLOT_NONE;
    slot_owned(s, 0);
    ons_log_info("partition %d revoked", (int)partition);
}

void wk_sup_fail(wk_sup *sup, int32_t partition, double now, const char *why)
{
    wk_slot *s = wk_sup_slot(sup, partition, 0);
    if (!s)
        return;
    ons_log_warn("partition %d: %s; dropping its state and reloading from PostgreSQL",
                 (int)partition, why);
    count(sup->failures);
    slot_drop(s);
    s->state = WK_SLOT_RELOAD;
    s->retry_at = now + wk_sup_backoff_s(s->fails);
    s->fails++;
    sup->ops.pause(sup->ctx, partition);
}

void wk_sup_fence(wk_sup *sup, int32_t partition)
{
    wk_slot *s = wk_sup_slot(sup, partition, 0);
    if (!s)
        return;
    ons_log_warn("fenced: partition %d has a newer owner than epoch %" PRId64
                 "; batch rolled back, no longer consuming it",
                 (int)partition, s->epoch);
    count(sup->fenced);
    slot_drop(s);
    s->state = WK_SLOT_FENCED;
    slot_owned(s, 0);
    sup->ops.pause(sup->ctx, partition);
}

void wk_sup_committed(wk_sup *sup, int32_t partition)
{
    wk_slot *s = wk_sup_slot(sup, partition, 0);
    if (s)
        s->fails = 0;
}

/* RELOAD: re-reads the cursors under the slot's epoch and rebuilds the
 * memory. Returns the intents offset (*ctl_next the control one), -1 to try
 * again later, or -2 when fenced. */
static int64_t reload(wk_sup *sup, int32_t p, wk_slot *s, int64_t *ctl_next)
{
    int64_t next = -1;
    int rc = sup->ops.recheck(sup->ctx, p, s->epoch, &next, ctl_next);
    if (rc == ONS_EFENCED) {
        wk_sup_fence(sup, p);
        return -2;
    }
    if (rc != 0 || (s->part = sup->ops.new_part(sup->ctx, p, s->epoch, next, *ctl_next)) == NULL)
        return -1;
    s->state = WK_SLOT_ACTIVE;
    s->load_live = 1;
    return next;
}

void wk_sup_retry_due(wk_sup *sup, double now)
{
    for (size_t i = 0; i < sup->nslots; i++) {
        wk_slot *s = &sup->slots[i];
        if ((s->state != WK_SLOT_CLAIM && s->state != WK_SLOT_RELOAD) || now < s->retry_at)
            continue;
        int32_t p = (int32_t)i;
        int64_t ctl_next = -1;
        int64_t next = s->state == WK_SLOT_CLAIM ? claim(sup, p, s, now, &ctl_next)
                                                 : reload(sup, p, s, &ctl_next);
        if (next == -2)
            continue;
        if (next < 0) {
            s->retry_at = now + WK_SUP_RETRY_S;
            continue;
        }
        if (sup->ops.seek(sup->ctx, p, next, ctl_next) != 0) {
            slot_drop(s);
            s->state = WK_SLOT_RELOAD;
            s->retry_at = now + WK_SUP_RETRY_S;
            sup->ops.pause(sup->ctx, p);
            continue;
        }
        ons_log_info("partition %d resumed at offset %" PRId64 " (control %" PRId64 ")", (int)p,
                     next, ctl_next);
    }
}

void wk_slot_rate(wk_slot *s, size_t n, double now)
{
    s->win_count += (int64_t)n;
    if (s->win_start == 0)
        s->win_start = now;
    double dt = now - s->win_start;
    if (dt >= WK_SUP_RATE_WINDOW_S) {
        double inst = (double)s->win_count / dt;
        s->rate = s->rate > 0 ? 0.5 * s->rate + 0.5 * inst : inst;
        s->win_start = now;
        s->win_count = 0;
    }
}

void wk_slot_drain(wk_slot *s, int64_t n, int64_t c, double secs, double half_life)
{
    if (n < 0 || c < 0 || n + c <= 0 || secs <= 0)
        return;
    double keep = half_life > 0 ? exp2(-1.0 / half_life) : 0;
    double x = (double)n, y = (double)c;
    s->drain_w = s->drain_w * keep + 1;
    s->drain_n = s->drain_n * keep + x;
    s->drain_c = s->drain_c * keep + y;
    s->drain_nn = s->drain_nn * keep + x * x;
    s->drain_nc = s->drain_nc * keep + x * y;
    s->drain_cc = s->drain_cc * keep + y * y;
    s->drain_b = s->drain_b * keep + secs;
    s->drain_nb = s->drain_nb * keep + x * secs;
    s->drain_cb = s->drain_cb * keep + y * secs;
}

void wk_slot_batch_pend(wk_slot *s, int64_t n, int64_t c, double busy_s)
{
    if (n + c <= 0)
        return;
    s->drain_pend = s->drain_seen++ == 0 ? 2 : 1;
    s->drain_pend_n = n;
    s->drain_pend_c = c;
    s->drain_pend_busy = busy_s;
}

void wk_slot_batch_end(wk_slot *s, int64_t applied_ms, int waited, double window_s,
                       double half_life)
{
    if (!s->drain_pend)
        return;
    double secs = !waited && s->served_at_ms > 0 && applied_ms > s->served_at_ms
                      ? (double)(applied_ms - s->served_at_ms) / 1000.0
                      : s->drain_pend_busy + window_s;
    if (s->drain_pend == 2)
        s->drain_cold_s = secs;
    else
        wk_slot_drain(s, s->drain_pend_n, s->drain_pend_c, secs, half_life);
    s->drain_pend = 0;
}

/* Remembers ev among s's recent events (most recent first). */
static void remember_event(wk_slot *s, int64_t event_id)
{
    int i = 0;
    while (i < s->nctl_events && s->ctl_events[i] != event_id)
        i++;
    if (i == s->nctl_events && s->nctl_events < WK_SLOT_CTL_EVENTS)
        s->nctl_events++;
    if (i == WK_SLOT_CTL_EVENTS)
        i--;
    memmove(&s->ctl_events[1], &s->ctl_events[0], (size_t)i * sizeof s->ctl_events[0]);
    s->ctl_events[0] = event_id;
}

/* The intents ev's free seats may still take. */
static int64_t takers(const wk_event *ev)
{
    int64_t free = ev->inv.available > 0 ? ev->inv.available : 0;
    if (free == 0)
        return 0;
    return ev->nholds > 0 && ev->inv.held > ev->nholds ? free * ev->nholds / ev->inv.held : free;
}

int64_t wk_slot_ctl_left(wk_slot *s)
{
    const wk_part *p = s->part;
    int64_t n = 0;
    for (size_t i = 0; i < p->fx.nevents; i++)
        n += takers(p->fx.events[i]);
    for (int i = 0; i < s->nctl_events; i++) {
        const wk_event *ev = wk_part_event(p, s->ctl_events[i]);
        if (ev && !ev->fx_mark) /* not counted with the batch's */
            n += takers(ev);
    }
    for (size_t i = p->fx.nevents; i-- > 0;)
        remember_event(s, p->fx.events[i]->event_id);
    return 2 * ((int64_t)ons_heap_count(&p->holds) + n);
}

/* A count's weighted variance is too small to split the time by when it
 * is under 1 % of its mean squared (or the count is never above 0). */
static int varies(double var, double mean)
{
    return mean > 0 && var > 1e-4 * mean * mean;
}

void wk_slot_drain_model(const wk_slot *s, double *batch_ms, double *record_ms, double *ctl_ms)
{
    *batch_ms = *record_ms = *ctl_ms = 0;
    if (s->drain_w <= 0) {
        *batch_ms = s->drain_cold_s * 1000.0;
        return;
    }
    double w = s->drain_w, mn = s->drain_n / w, mc = s->drain_c / w, mb = s->drain_b / w;
    double vnn = s->drain_nn / w - mn * mn, vcc = s->drain_cc / w - mc * mc;
    double vnc = s->drain_nc / w - mn * mc;
    double cnb = s->drain_nb / w - mn * mb, ccb = s->drain_cb / w - mc * mb;
    int use_n = varies(vnn, mn), use_c = varies(vcc, mc);
    double bn = 0, bc = 0;
    /* Least squares over the counts that vary; a negative share (noise, or
     * one count standing in for the other) is left out and the rest
     * fitted again: at most twice. */
    for (int round = 0; round < 3; round++) {
        double det = vnn * vcc - vnc * vnc;
        bn = bc = 0;
        if (use_n && use_c && det > 1e-9 * vnn * vcc) {
            bn = (cnb * vcc - ccb * vnc) / det;
            bc = (ccb * vnn - cnb * vnc) / det;
        } else if (use_n && use_c) { /* the counts move together: the intents carry both */
            use_c = 0;
            continue;
        } else if (use_n) {
            bn = cnb / vnn;
        } else if (use_c) {
            bc = ccb / vcc;
        }
        if (bn < 0 && use_n) {
            use_n = 0;
            continue;
        }
        if (bc < 0 && use_c) {
            use_c = 0;
            continue;
        }
        break;
    }
    if (bn < 0)
        bn = 0;
    if (bc < 0)
        bc = 0;
    double fixed = mb - bn * mn - bc * mc;
    if (fixed < 0) { /* all of it per record, in the fitted proportion */
        double f = mb / (bn * mn + bc * mc);
        fixed = 0;
        bn *= f;
        bc *= f;
    }
    *batch_ms = fixed * 1000.0;
    *record_ms = bn * 1000.0;
    *ctl_ms = bc * 1000.0;
}
