/* partition.c - applying messages to one partition's memory; see partition.h. */
#include "workers/partition.h"
#include "common/err.h"
#include "workers/checkout.h"
#include "common/log.h"
#include "queue/draw.h"
#include "queue/intent_id.h"
#include "common/vec.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- events and the partition ------------------------------------------------- */

wk_event *wk_event_new(int64_t event_id)
{
    wk_event *ev = calloc(1, sizeof *ev);
    if (!ev)
        return NULL;
    ev->event_id = event_id;
    ev->status = Q_EVENT_ON_SALE;
    ev->hold_seconds = 900;
    ev->max_per_user = 8;
    strcpy(ev->currency, "USD");
    wk_inv_init(&ev->inv);
    ev->fit_gen = ev->inv.shrink_gen - 1; /* check loaded waiting intents once */
    wk_map_init(&ev->users);
    return ev;
}

void wk_event_free(wk_event *ev)
{
    if (!ev)
        return;
    wk_inv_fini(&ev->inv);
    wk_map_fini(&ev->users);
    free(ev->pre);
    free(ev);
}

/* The hold heap's order: min by expires_ms, then seq. */
static int hold_before(const void *a, const void *b)
{
    const wk_intent *x = *(wk_intent *const *)a, *y = *(wk_intent *const *)b;
    return x->expires_ms != y->expires_ms ? x->expires_ms < y->expires_ms : x->seq < y->seq;
}

static void hold_moved(void *ctx, void *elem, size_t pos)
{
    (void)ctx;
    (*(wk_intent **)elem)->heap_idx = pos == ONS_HEAP_NONE ? -1 : (int32_t)pos;
}

wk_part *wk_part_new(int32_t partition, int64_t epoch, int64_t next_offset, const wk_part_cfg *cfg)
{
    wk_part *p = malloc(sizeof *p);
    if (!p)
        return NULL;
    *p = (wk_part){.partition = partition,
                   .epoch = epoch,
                   .next_offset = next_offset,
                   .cfg = *cfg,
                   .fx.first_offset = next_offset};
    ons_heap_init(&p->holds, sizeof(wk_intent *), 0, 0, hold_before, hold_moved, NULL);
    return p;
}

int wk_part_add_tombstone(wk_part *p, int64_t offset, int64_t user_id)
{
    return wk_map_put(&p->tombs, offset, (void *)(uintptr_t)user_id);
}

static void fx_fini(wk_fx *fx)
{
    free(fx->intents);
    free(fx->seats);
    free(fx->events);
    free(fx->tombs);
    wk_map_fini(&fx->intent_idx);
    wk_map_fini(&fx->seat_idx);
}

void wk_part_free(wk_part *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->intents.cap; i++)
        free(p->intents.slots[i].val);
    for (size_t i = 0; i < p->events.cap; i++)
        wk_event_free(p->events.slots[i].val);
    wk_map_fini(&p->intents);
    wk_map_fini(&p->events);
    wk_map_fini(&p->tombs);
    wk_map_fini(&p->foreign);
    ons_heap_fini(&p->holds);
    fx_fini(&p->fx);
    wk_co_free(p->co);
    free(p);
}

wk_intent *wk_part_intent(const wk_part *p, int64_t seq)
{
    return wk_map_get(&p->intents, seq);
}

wk_event *wk_part_event(const wk_part *p, int64_t event_id)
{
    return wk_map_get(&p->events, event_id);
}

int wk_part_add_event(wk_part *p, wk_event *ev)
{
    ev->slot = p->next_slot++;
    return wk_map_put(&p->events, ev->event_id, ev);
}

/* ---- the hold heap (min by expires_ms, then seq) ---------------------------------- */

static int heap_push(wk_part *p, wk_intent *in)
{
    int rc = ons_heap_push(&p->holds, &in);
    if (rc == 0)
        in->ev->nholds++;
    return rc;
}

static void heap_remove(wk_part *p, wk_intent *in)
{
    if (in->heap_idx < 0)
        return;
    assert(*(wk_intent **)ons_heap_at(&p->holds, (size_t)in->heap_idx) == in);
    in->ev->nholds--;
    ons_heap_remove(&p->holds, (size_t)in->heap_idx, NULL);
}

/* The earliest hold, or NULL. */
static wk_intent *first_hold(const wk_part *p)
{
    wk_intent **first = ons_heap_at(&p->holds, 0);
    return first ? *first : NULL;
}

int64_t wk_part_next_expiry(const wk_part *p, int64_t now_ms)
{
    wk_intent *in = first_hold(p);
    if (!in)
        return INT64_MAX;
    int64_t d = in->expires_ms - now_ms;
    return d < 0 ? 0 : d;
}

/* ---- waiting lists ------------------------------------------------------------- */

/* Links in before next (NULL: at the tail). */
static void waiting_insert(wk_event *ev, wk_intent *in, wk_intent *next)
{
    in->wnext = next;
    in->wprev = next ? next->wprev : ev->wtail;
    if (in->wprev)
        in->wprev->wnext = in;
    else
        ev->whead = in;
    if (next)
        next->wprev = in;
    else
        ev->wtail = in;
    ev->nwaiting++;
    ev->waiting_by_qty[in->qty]++;
}

static void waiting_append(wk_event *ev, wk_intent *in)
{
    waiting_insert(ev, in, NULL);
}

static void waiting_remove(wk_event *ev, wk_intent *in)
{
    if (in->wprev)
        in->wprev->wnext = in->wnext;
    else
        ev->whead = in->wnext;
    if (in->wnext)
        in->wnext->wprev = in->wprev;
    else
        ev->wtail = in->wprev;
    in->wprev = in->wnext = NULL;
    ev->nwaiting--;
    ev->waiting_by_qty[in->qty]--;
}

/* At the front: the draw puts the pre-queue ahead of every later join. */
static void waiting_prepend(wk_event *ev, wk_intent *in)
{
    waiting_insert(ev, in, ev->whead);
}

/* The pre-queue: an unordered array until the draw (swap-remove). */
static int pre_add(wk_event *ev, wk_intent *in)
{
    if (ONS_VEC_RESERVE(ev->pre, ev->cap_pre, ev->npre + 1, 64))
        return ONS_ENOMEM;
    in->in_pre = 1;
    in->pre_idx = (uint32_t)ev->npre;
    ev->pre[ev->npre++] = in;
    return 0;
}

static void pre_remove(wk_event *ev, wk_intent *in)
{
    assert(in->in_pre && in->pre_idx < ev->npre && ev->pre[in->pre_idx] == in);
    wk_intent *last = ev->pre[--ev->npre];
    ev->pre[in->pre_idx] = last;
    last->pre_idx = in->pre_idx;
    in->in_pre = 0;
}

/* Takes a waiting intent out of whichever line it is in. */
static void unwait(wk_event *ev, wk_intent *in)
{
    if (in->in_pre)
        pre_remove(ev, in);
    else
        waiting_remove(ev, in);
}

/* ---- effects ------------------------------------------------------------------ */

static int fx_touch_event(wk_part *p, wk_event *ev)
{
    wk_fx *fx = &p->fx;
    if (ev->fx_mark)
        return 0;
    if (ONS_VEC_RESERVE(fx->events, fx->cap_events, fx->nevents + 1, 16))
        return ONS_ENOMEM;
    fx->events[fx->nevents++] = ev;
    ev->fx_mark = 1;
    return 0;
}

/* Returns the batch record for seq, creating it (zeroed, is_new as given)
 * when absent; NULL on allocation failure. */
static wk_fx_intent *fx_record(wk_part *p, int64_t seq, int is_new)
{
    wk_fx *fx = &p->fx;
    uintptr_t idx = (uintptr_t)wk_map_get(&fx->intent_idx, seq);
    if (idx)
        return &fx->intents[idx - 1];
    if (ONS_VEC_RESERVE(fx->intents, fx->cap_intents, fx->nintents + 1, 256))
        return NULL;
    if (wk_map_put(&fx->intent_idx, seq, (void *)(uintptr_t)(fx->nintents + 1)) != 0)
        return NULL;
    wk_fx_intent *r = &fx->intents[fx->nintents++];
    memset(r, 0, sizeof *r);
    r->seq = seq;
    r->is_new = (uint8_t)is_new;
    r->partition = q_seq_partition(seq);
    r->offset = q_seq_offset(seq);
    return r;
}

/* Snapshots an active intent's current state into the batch. res_changed:
 * its reservation changed state in this step. */
static int fx_intent(wk_part *p, const wk_intent *in, int reason, int res_changed)
{
    wk_fx_intent *r = fx_record(p, in->seq, 0);
    if (!r)
        return ONS_ENOMEM;
    r->event_id = in->ev->event_id;
    r->user_id = in->user_id;
    r->max_price = in->max_price;
    r->accepted_ms = in->accepted_ms;
    r->left_queue_ms = in->left_queue_ms;
    r->qty = in->qty;
    r->adjacent = in->adjacent;
    r->state = in->state;
    r->reason = (uint8_t)reason;
    r->res_state = in->res_state;
    r->nseats = in->nseats;
    memcpy(r->seats, in->seats, sizeof r->seats);
    r->total_cents = in->total_cents;
    r->expires_ms = in->expires_ms;
    r->ev = in->ev;
    r->in_pre = in->in_pre;
    r->draw_rank = in->draw_rank;
    if (res_changed)
        r->res_changed = 1;
    return fx_touch_event(p, in->ev);
}

static int fx_seat(wk_part *p, wk_event *ev, uint32_t seat, int state, int64_t rid)
{
    wk_fx *fx = &p->fx;
    int64_t key = ((int64_t)ev->slot << 32) | seat;
    uintptr_t idx = (uintptr_t)wk_map_get(&fx->seat_idx, key);
    if (!idx) {
        if (ONS_VEC_RESERVE(fx->seats, fx->cap_seats, fx->nseats + 1, 256))
            return ONS_ENOMEM;
        if (wk_map_put(&fx->seat_idx, key, (void *)(uintptr_t)(fx->nseats + 1)) != 0)
            return ONS_ENOMEM;
        idx = ++fx->nseats;
    }
    wk_fx_seat *s = &fx->seats[idx - 1];
    s->event_id = ev->event_id;
    s->seat_no = ev->inv.seat_no[seat];
    s->state = (uint8_t)state;
    s->reservation_id = rid;
    return 0;
}

int wk_part_dirty(const wk_part *p)
{
    return p->fx.nmessages > 0 || p->fx.nintents > 0 || p->fx.nseats > 0 || p->fx.nevents > 0 ||
           p->fx.ntombs > 0;
}

void wk_part_batch_done(wk_part *p)
{
    wk_fx *fx = &p->fx;
    for (size_t i = 0; i < fx->nevents; i++) {
        fx->events[i]->fx_mark = 0;
        fx->events[i]->status_dirty = 0;
        fx->events[i]->admission_dirty = 0;
    }
    fx->nintents = fx->nseats = fx->nevents = 0;
    wk_map_clear(&fx->intent_idx);
    wk_map_clear(&fx->seat_idx);
    fx->nmessages = fx->npoison = fx->nexpired = 0;
    memset(fx->napplied, 0, sizeof fx->napplied);
    fx->first_offset = p->next_offset;
    fx->first_ctl_offset = p->ctl_next_offset;
    fx->ntombs = 0;
    fx->tombs_spent = 0;
    if (p->co)
        wk_co_batch_done(p->co);
}

/* ---- state changes ------------------------------------------------------------- */

static int sale_open(const wk_event *ev, int64_t ts_ms)
{
    switch (ev->status) {
    case Q_EVENT_ON_SALE:
    case Q_EVENT_SOLD_OUT:
        return 1;
    case Q_EVENT_SCHEDULED:
        return ts_ms >= ev->onsale_at_ms;
    default:
        return 0;
    }
}

/* Has ev a pre-queue whose draw is not made yet? Then it allocates nothing. */
static int draw_pending(const wk_event *ev)
{
    return ev->prequeue_opens_at_ms > 0 && !ev->drawn;
}

/* Was a join sent at ts_ms in ev's pre-queue window? */
static int in_prequeue_window(const wk_event *ev, int64_t ts_ms)
{
    return ev->prequeue_opens_at_ms > 0 && ts_ms >= ev->prequeue_opens_at_ms &&
           ts_ms < ev->onsale_at_ms &&
           (ev->status == Q_EVENT_SCHEDULED || ev->status == Q_EVENT_ON_SALE ||
            ev->status == Q_EVENT_SOLD_OUT);
}

/* Does a cap keep ev from granting a hold now? */
static int admission_blocked(const wk_event *ev, int64_t now_ms)
{
    return (ev->max_active_holds > 0 && ev->nholds >= ev->max_active_holds) ||
           (ev->admissions_per_minute > 0 && now_ms < ev->next_admit_ms);
}

/* Charges one admission (a grant) against ev's rate. */
static void admission_charge(wk_event *ev, int64_t now_ms)
{
    if (ev->admissions_per_minute <= 0)
        return;
    int64_t period = 60000 / ev->admissions_per_minute;
    ev->next_admit_ms = (ev->next_admit_ms > now_ms ? ev->next_admit_ms : now_ms) + period;
}

static int sold_out(const wk_event *ev)
{
    return ev->inv.available == 0 && ev->inv.held == 0;
}

/* Forgets an intent that reached a terminal state (already snapshotted). */
static void forget(wk_part *p, wk_intent *in)
{
    if (in->doomed) {
        in->ev->ndoomed--;
        p->ndoomed--;
    }
    heap_remove(p, in);
    if (in->state == Q_INTENT_WAITING)
        unwait(in->ev, in);
    wk_map_del(&p->intents, in->seq);
    if (wk_map_get(&in->ev->users, in->user_id) == in)
        wk_map_del(&in->ev->users, in->user_id);
    free(in);
}

/* Holds seats for in (state becomes reserved) from now. */
static int reserve(wk_part *p, wk_intent *in, const uint32_t *seats, int n, int64_t now_ms)
{
    wk_event *ev = in->ev;
    int hold = p->cfg.hold_seconds_override > 0 ? p->cfg.hold_seconds_override : ev->hold_seconds;
    in->total_cents = 0;
    for (int i = 0; i < n; i++) {
        wk_inv_set(&ev->inv, seats[i], Q_SEAT_HELD);
        in->seats[i] = seats[i];
        in->total_cents += ev->inv.price[seats[i]];
        int rc = fx_seat(p, ev, seats[i], Q_SEAT_HELD, in->seq);
        if (rc)
            return rc;
    }
    in->nseats = (uint8_t)n;
    in->state = Q_INTENT_RESERVED;
    in->res_state = Q_RES_HELD;
    in->expires_ms = now_ms + (int64_t)hold * 1000;
    admission_charge(ev, now_ms);
    int rc = heap_push(p, in);
    if (rc)
        return rc;
    wk_fx_intent *r = fx_record(p, in->seq, 0);
    if (!r)
        return ONS_ENOMEM;
    r->res_new = 1;
    return fx_intent(p, in, Q_REASON_NONE, 1);
}

/* Gives a reservation's seats back and ends the intent as state/reason. */
static int end_reservation(wk_part *p, wk_intent *in, int istate, int rstate, int reason)
{
    wk_event *ev = in->ev;
    for (int i = 0; i < in->nseats; i++) {
        wk_inv_set(&ev->inv, in->seats[i], Q_SEAT_AVAILABLE);
        int rc = fx_seat(p, ev, in->seats[i], Q_SEAT_AVAILABLE, -1);
        if (rc)
            return rc;
    }
    in->state = (uint8_t)istate;
    in->res_state = (uint8_t)rstate;
    int rc = fx_intent(p, in, reason, 1);
    if (rc)
        return rc;
    forget(p, in);
    return 0;
}

/* Ends a waiting intent without seats. */
static int end_waiting(wk_part *p, wk_intent *in, int istate, int reason)
{
    unwait(in->ev, in);
    in->state = (uint8_t)istate;
    int rc = fx_intent(p, in, reason, 0);
    if (rc)
        return rc;
    forget(p, in);
    return 0;
}

static wk_req req_of(const wk_intent *in)
{
    wk_req r = {in->qty, in->section, in->max_price, in->adjacent};
    return r;
}

/* Keeps the event's sale status in step with its seats: on_sale becomes
 * sold_out when every seat is sold, and back when a cancelled ticket frees
 * one. Written to events.status in the batch (status_dirty). */
static void sync_sold_out(wk_event *ev)
{
    int now_sold_out = sold_out(ev);
    if (ev->status == Q_EVENT_ON_SALE && now_sold_out) {
        ev->status = Q_EVENT_SOLD_OUT;
        ev->status_dirty = 1;
    } else if (ev->status == Q_EVENT_SOLD_OUT && !now_sold_out) {
        ev->status = Q_EVENT_ON_SALE;
        ev->status_dirty = 1;
    }
}

/* Rejections decided in one batch may be written over several: a waiting
 * intent the owner has decided to reject (a sell-out, or seats it can never
 * get) is marked with its reason (in->doomed), and the marked ones are
 * rejected in waiting order, at most cfg.sold_out_rejects intent changes a
 * batch, the rest in the batches right after (wk_part_reject_due); the
 * owner polls without waiting meanwhile. A marked intent is never served,
 * and the event serves no one until its marked ones are gone, so every
 * answer is the one the batch that decided it would have given at once: a
 * seat a cancelled ticket frees meanwhile goes to whoever waits behind
 * them. The mark is memory only: after a restart the loaded waiting
 * intents are checked again and marked again. */
static void doom(wk_part *p, wk_intent *in, int reason)
{
    if (in->doomed)
        return;
    in->doomed = (uint8_t)reason;
    in->ev->ndoomed++;
    p->ndoomed++;
}

/* Rejects ev's marked intents, each with its reason, in waiting order, while
 * the batch has fewer than limit intent changes (0: no limit). */
static int reject_doomed(wk_part *p, wk_event *ev, int64_t limit)
{
    for (wk_intent *in = ev->whead, *next; in && ev->ndoomed > 0; in = next) {
        next = in->wnext;
        if (!in->doomed)
            continue;
        if (limit > 0 && (int64_t)p->fx.nintents >= limit)
            break;
        int rc = end_waiting(p, in, Q_INTENT_REJECTED, in->doomed);
        if (rc)
            return rc;
    }
    return 0;
}

/* Rejects the waiting intents that the seats left, counting held and
 * paying ones that may come back, can never fit: the answer a new arrival
 * with the same request gets. Walks the waiting list only when a sale may
 * have shrunk what could fit (inv.shrink_gen moved), which happens a bounded
 * number of times per section, not on every sale. */
static int reject_unfulfillable(wk_part *p, wk_event *ev)
{
    if (ev->fit_gen == ev->inv.shrink_gen)
        return 0;
    ev->fit_gen = ev->inv.shrink_gen;
    /* Answers for "any section, any price", the requests whose check walks
     * every section: -1 = not asked yet. */
    int8_t any[2][Q_MAX_SEATS + 1];
    memset(any, -1, sizeof any);
    for (wk_intent *in = ev->whead, *next; in; in = next) {
        next = in->wnext;
        wk_req r = req_of(in);
        int8_t *memo = r.section < 0 && r.max_price == 0 ? &any[r.adjacent != 0][r.qty] : NULL;
        if (memo && *memo < 0)
            *memo = (int8_t)wk_inv_could_fit(&ev->inv, &r);
        if (memo ? *memo : wk_inv_could_fit(&ev->inv, &r))
            continue;
        doom(p, in, Q_REASON_INSUFFICIENT_SEATS);
    }
    return reject_doomed(p, ev, p->cfg.sold_out_rejects);
}

/* Every seat is sold: each fan waiting now is rejected sold_out, in order,
 * cfg.sold_out_rejects a batch (reject_doomed). */
static int reject_waiting(wk_part *p, wk_event *ev)
{
    for (wk_intent *in = ev->whead; in; in = in->wnext)
        doom(p, in, Q_REASON_SOLD_OUT);
    return reject_doomed(p, ev, p->cfg.sold_out_rejects);
}

/* Hands free seats to waiting intents, in order, while any could fit. */
static int serve_waiting(wk_part *p, wk_event *ev, int64_t now_ms)
{
    sync_sold_out(ev);
    if (ev->ndoomed > 0) {
        int rc = reject_doomed(p, ev, p->cfg.sold_out_rejects);
        if (rc || ev->ndoomed > 0)
            return rc; /* the next batch goes on */
    }
    if (!ev->whead || !sale_open(ev, now_ms) || draw_pending(ev))
        return 0;
    if (sold_out(ev))
        return reject_waiting(p, ev);
    int err = reject_unfulfillable(p, ev);
    if (err || ev->ndoomed > 0)
        return err; /* the next batch goes on */
    /* left[q]: waiting intents of quantity q not yet visited. */
    int64_t left[Q_MAX_SEATS + 1];
    memcpy(left, ev->waiting_by_qty, sizeof left);
    wk_intent *in = ev->whead;
    while (in && ev->inv.available > 0 && !admission_blocked(ev, now_ms)) {
        int64_t fits = 0;
        for (int q = 1; q <= Q_MAX_SEATS && q <= ev->inv.available; q++)
            fits += left[q];
        if (fits == 0)
            break;
        wk_intent *next = in->wnext;
        left[in->qty]--;
        uint32_t seats[Q_MAX_SEATS];
        wk_req r = req_of(in);
        if (in->qty <= ev->inv.available && wk_inv_find(&ev->inv, &r, WK_FIND_FREE, seats)) {
            waiting_remove(ev, in);
            int rc = reserve(p, in, seats, in->qty, now_ms);
            if (rc)
                return rc;
        }
        in = next;
    }
    return 0;
}

/* ---- message handlers ---------------------------------------------------------- */

static int get_event(wk_part *p, int64_t event_id, wk_event **out)
{
    wk_event *ev = wk_map_get(&p->events, event_id);
    if (!ev) {
        if (!p->cfg.load)
            return ONS_ENOTFOUND;
        int rc = p->cfg.load(p->cfg.load_ctx, p, event_id);
        if (rc)
            return rc;
        ev = wk_map_get(&p->events, event_id);
        if (!ev)
            return ONS_ENOTFOUND;
    }
    *out = ev;
    return 0;
}

/* The batch's record of the join m at seq, ending in state (a refusal or a
 * tombstone; an admitted join's record is overwritten by fx_intent). ev:
 * the event's memory, NULL for a join applied nowhere (reject_misrouted). */
static wk_fx_intent *record_join(wk_part *p, wk_event *ev, const q_msg *m, int64_t seq,
                                 int64_t ts_ms, int64_t now_ms, int state)
{
    wk_fx_intent *r = fx_record(p, seq, 1);
    if (!r)
        return NULL;
    r->event_id = m->event_id;
    r->user_id = m->user_id;
    r->max_price = m->max_price_cents;
    r->accepted_ms = ts_ms;
    r->left_queue_ms = now_ms;
    r->qty = (uint8_t)m->quantity;
    r->adjacent = (uint8_t)(m->adjacent != 0);
    snprintf(r->section, sizeof r->section, "%s", m->section);
    r->ev = ev;
    r->state = (uint8_t)state;
    return r;
}

/* Why the join m is refused before any seat is looked at, or
 * Q_REASON_NONE; *section is the named section's index (-1: any). */
static int join_refused(const wk_event *ev, const q_msg *m, int64_t ts_ms, int window, int *section)
{
    *section = -1;
    if (!window && !sale_open(ev, ts_ms))
        return Q_REASON_SALE_CLOSED;
    if (m->quantity > ev->max_per_user || m->quantity > Q_MAX_SEATS)
        return Q_REASON_INSUFFICIENT_SEATS;
    if (wk_map_get(&ev->users, m->user_id))
        return Q_REASON_DUPLICATE;
    if (sold_out(ev))
        return Q_REASON_SOLD_OUT;
    if (m->section[0] && (*section = wk_inv_section_by_name(&ev->inv, m->section)) < 0)
        return Q_REASON_INSUFFICIENT_SEATS;
    return Q_REASON_NONE;
}

/* A new active intent for the join m at seq, indexed by seq and by user. */
static int new_intent(wk_part *p, wk_event *ev, const q_msg *m, int64_t seq, int64_t ts_ms,
                      int64_t now_ms, int section, wk_intent **out)
{
    wk_intent *in = calloc(1, sizeof *in);
    if (!in)
        return ONS_ENOMEM;
    in->seq = seq;
    in->user_id = m->user_id;
    in->max_price = m->max_price_cents;
    in->accepted_ms = ts_ms;
    in->left_queue_ms = now_ms;
    in->ev = ev;
    in->heap_idx = -1;
    in->section = (int16_t)section;
    in->qty = (uint8_t)m->quantity;
    in->adjacent = (uint8_t)(m->adjacent != 0);
    in->state = Q_INTENT_QUEUED;
    if (wk_map_put(&p->intents, seq, in) != 0) {
        free(in);
        return ONS_ENOMEM;
    }
    *out = in;
    if (wk_map_put(&ev->users, in->user_id, in) != 0)
        return ONS_ENOMEM; /* in is reachable through p->intents: freed with p */
    return 0;
}

/* Queues in behind the fans already waiting (or in the pre-queue pool
 * while its draw is pending). */
static int start_waiting(wk_part *p, wk_event *ev, wk_intent *in, int window)
{
    in->state = Q_INTENT_WAITING;
    if (window && !ev->drawn) {
        int rc = pre_add(ev, in);
        if (rc)
            return rc;
    } else {
        waiting_append(ev, in);
    }
    return fx_intent(p, in, Q_REASON_NONE, 0);
}

static int apply_intent(wk_part *p, wk_event *ev, const q_msg *m, int64_t seq, int64_t ts_ms,
                        int64_t now_ms)
{
    wk_fx_intent *r = record_join(p, ev, m, seq, ts_ms, now_ms, Q_INTENT_REJECTED);
    if (!r)
        return ONS_ENOMEM;
    int section;
    int window = in_prequeue_window(ev, ts_ms);
    if (window && ev->drawn)
        ons_log_warn("event %lld: a pre-queue join (seq %lld) came after the draw: it queues "
                     "behind it (raise draw.close_ms)",
                     (long long)ev->event_id, (long long)seq);
    if ((r->reason = (uint8_t)join_refused(ev, m, ts_ms, window, &section)) != Q_REASON_NONE)
        return fx_touch_event(p, ev);

    wk_req req = {m->quantity, section, m->max_price_cents, m->adjacent != 0};
    uint32_t seats[Q_MAX_SEATS];
    int mode;
    /* A cap that binds keeps a new fan behind those waiting, in order. */
    if (!draw_pending(ev) && !admission_blocked(ev, now_ms) &&
        !(ev->whead && (ev->max_active_holds > 0 || ev->admissions_per_minute > 0)) &&
        wk_inv_find(&ev->inv, &req, WK_FIND_FREE, seats))
        mode = Q_INTENT_RESERVED;
    else if (wk_inv_could_fit(&ev->inv, &req))
        mode = Q_INTENT_WAITING;
    else {
        r->reason = Q_REASON_INSUFFICIENT_SEATS;
        return fx_touch_event(p, ev);
    }
    wk_intent *in = NULL;
    int rc = new_intent(p, ev, m, seq, ts_ms, now_ms, section, &in);
    if (rc)
        return rc;
    if (mode == Q_INTENT_RESERVED)
        return reserve(p, in, seats, m->quantity, now_ms);
    return start_waiting(p, ev, in, window);
}

/* Remembers that the intent at offset (not applied yet) is cancelled. */
static int add_tomb(wk_part *p, int64_t offset, int64_t user_id)
{
    wk_fx *fx = &p->fx;
    if (ONS_VEC_RESERVE(fx->tombs, fx->cap_tombs, fx->ntombs + 1, 16))
        return ONS_ENOMEM;
    if (wk_part_add_tombstone(p, offset, user_id) != 0)
        return ONS_ENOMEM;
    fx->tombs[fx->ntombs++] = (wk_fx_tomb){offset, user_id};
    ons_log_info("cancel of %lld:%lld ahead of its intent: tombstone kept", (long long)p->partition,
                 (long long)offset);
    return 0;
}

/* The intent at seq was cancelled before it was applied (a tombstone): it
 * ends released, with no seats and no place in the queue. */
static int apply_tombstoned(wk_part *p, wk_event *ev, const q_msg *m, int64_t seq, int64_t ts_ms,
                            int64_t now_ms)
{
    wk_fx_intent *r = record_join(p, ev, m, seq, ts_ms, now_ms, Q_INTENT_RELEASED);
    if (!r)
        return ONS_ENOMEM;
    r->reason = Q_REASON_NONE;
    return fx_touch_event(p, ev);
}

static int apply_cancel(wk_part *p, wk_event *ev, const q_msg *m, int64_t now_ms)
{
    /* Ahead of its intent (the control lane overtook the intents lane). */
    if (m->cancel_kind == Q_CANCEL_INTENT && m->target_partition == p->partition &&
        m->target_offset >= p->next_offset && !p->cfg.debug_no_tombstones)
        return add_tomb(p, m->target_offset, m->user_id);
    int64_t seq = q_seq_make(m->target_partition, m->target_offset);
    wk_intent *in = m->target_partition == p->partition ? wk_map_get(&p->intents, seq) : NULL;
    if (m->cancel_kind == Q_CANCEL_RESERVATION && m->reservation_id != seq)
        in = NULL;
    if (!in || in->ev != ev || in->user_id != m->user_id) {
        ons_log_info("cancel of %lld:%lld ignored: no active intent of user %lld in event %lld",
                     (long long)m->target_partition, (long long)m->target_offset,
                     (long long)m->user_id, (long long)ev->event_id);
        return 0;
    }
    int rc = 0;
    if (in->state == Q_INTENT_WAITING && m->cancel_kind == Q_CANCEL_INTENT) {
        rc = end_waiting(p, in, Q_INTENT_RELEASED, Q_REASON_NONE);
    } else if (in->state == Q_INTENT_RESERVED) {
        rc = end_reservation(p, in, Q_INTENT_RELEASED, Q_RES_RELEASED, Q_REASON_NONE);
        if (rc == 0)
            rc = serve_waiting(p, ev, now_ms);
    } else if (in->state == Q_INTENT_PAYING) {
        /* A paying hold belongs to the payment saga until its result comes
         * back; ingress refuses such cancels with 409 payment_in_progress, so
         * only one produced before the checkout was applied lands here. */
        ons_log_info("cancel of intent %lld ignored: payment in progress", (long long)seq);
    } else {
        ons_log_info("cancel of intent %lld ignored in state %s", (long long)seq,
                     q_intent_state_name(in->state));
    }
    return rc;
}

/* wk_map_values: an intent holding seats (reserved or paying). */
static int holds_seats(const void *val, const void *ctx)
{
    const wk_intent *in = val;
    (void)ctx;
    return in->state == Q_INTENT_RESERVED || in->state == Q_INTENT_PAYING;
}

/* Ends everything of a cancelled or ended sale: waiting intents are
 * rejected, held and paying reservations released (a paying order fails
 * with reason `why`, so a charge that succeeds later is refunded, never
 * turned into tickets). */
static int close_sale(wk_part *p, wk_event *ev, const char *why)
{
    /* rejections already decided keep their reason */
    int rc = reject_doomed(p, ev, 0);
    if (rc)
        return rc;
    while (ev->whead)
        if ((rc = end_waiting(p, ev->whead, Q_INTENT_REJECTED, Q_REASON_SALE_CLOSED)) != 0)
            return rc;
    while (ev->npre)
        if ((rc = end_waiting(p, ev->pre[ev->npre - 1], Q_INTENT_REJECTED, Q_REASON_SALE_CLOSED)) !=
            0)
            return rc;
    /* Collect first: ending an intent deletes it from the map being walked. */
    size_t n;
    void **live = wk_map_values(&ev->users, holds_seats, NULL, &n);
    if (!live)
        return ONS_ENOMEM;
    rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        wk_intent *in = live[i];
        if (in->state == Q_INTENT_PAYING)
            rc = wk_co_paying_closed(p, in, why);
        if (rc == 0)
            rc = end_reservation(p, in, Q_INTENT_RELEASED, Q_RES_RELEASED, Q_REASON_CANCELLED);
    }
    free(live);
    return rc;
}

/* The status a sale moves to when asked for `to` (an event_status record
 * sent at when_ms), or -1 when the request changes nothing. cancelled and
 * ended are final; resuming keeps a scheduled or sold-out sale as it is and
 * brings a paused one back as scheduled until its onsale_at. */
static int next_status(const wk_event *ev, int to, int64_t when_ms)
{
    if (ev->status == Q_EVENT_CANCELLED || ev->status == Q_EVENT_ENDED || to == ev->status)
        return -1;
    switch (to) {
    case Q_EVENT_ON_SALE:
        if (ev->status != Q_EVENT_PAUSED)
            return -1;
        return when_ms < ev->onsale_at_ms ? Q_EVENT_SCHEDULED : Q_EVENT_ON_SALE;
    case Q_EVENT_PAUSED:
    case Q_EVENT_CANCELLED:
    case Q_EVENT_ENDED:
        return to;
    default:
        return -1;
    }
}

/* Moves ev to status st (from next_status) and applies what it implies. */
static int set_status(wk_part *p, wk_event *ev, int st, int64_t now_ms)
{
    ev->status = st;
    ev->status_dirty = 1;
    int rc = fx_touch_event(p, ev);
    if (rc)
        return rc;
    ons_log_info("event %lld status %s", (long long)ev->event_id, q_event_status_name(st));
    if (st == Q_EVENT_CANCELLED) {
        if ((rc = close_sale(p, ev, q_order_reason_name(Q_ORDER_REASON_CANCELLED))) != 0)
            return rc;
        return wk_co_void_tickets(p, ev);
    }
    if (st == Q_EVENT_ENDED)
        return close_sale(p, ev, q_order_reason_name(Q_ORDER_REASON_ENDED));
    if (st == Q_EVENT_ON_SALE)
        return serve_waiting(p, ev, now_ms);
    return 0;
}

static int apply_status(wk_part *p, wk_event *ev, const q_msg *m, int64_t when_ms, int64_t now_ms)
{
    int to = q_event_status_parse(m->status);
    int st = to < 0 ? -1 : next_status(ev, to, when_ms);
    if (st < 0) {
        if (to != ev->status)
            ons_log_info("event %lld: status %s ignored (the sale is %s)", (long long)ev->event_id,
                         m->status, q_event_status_name(ev->status));
        return fx_touch_event(p, ev);
    }
    return set_status(p, ev, st, now_ms);
}

/* Has ev's show started at least end_grace_ms ago while its sale is open? */
static int end_due(const wk_part *p, const wk_event *ev, int64_t now_ms)
{
    return ev->starts_at_ms > 0 && ev->status != Q_EVENT_CANCELLED && ev->status != Q_EVENT_ENDED &&
           now_ms >= ev->starts_at_ms + p->cfg.end_grace_ms;
}

/* Runs act on each of p's events that due says is due: the number acted
 * on, or the first error of act. */
static int each_due(wk_part *p, int64_t now_ms,
                    int (*due)(const wk_part *p, const wk_event *ev, int64_t now_ms),
                    int (*act)(wk_part *p, wk_event *ev, int64_t now_ms))
{
    int n = 0;
    for (size_t i = 0; i < p->events.cap; i++) {
        wk_event *ev = p->events.slots[i].val;
        if (!ev || !due(p, ev, now_ms))
            continue;
        int rc = act(p, ev, now_ms);
        if (rc)
            return rc;
        n++;
    }
    return n;
}

static int end_event(wk_part *p, wk_event *ev, int64_t now_ms)
{
    return set_status(p, ev, Q_EVENT_ENDED, now_ms);
}

int wk_part_end_due(wk_part *p, int64_t now_ms)
{
    return each_due(p, now_ms, end_due, end_event);
}

/* ---- the draw ----------------------------------------------------------------------- */

static int draw_due(const wk_part *p, const wk_event *ev, int64_t now_ms)
{
    return draw_pending(ev) && ev->status != Q_EVENT_CANCELLED && ev->status != Q_EVENT_ENDED &&
           now_ms >= ev->onsale_at_ms + p->cfg.draw_close_ms;
}

/* ev's pre-queue in draw order: *out a heap array of npre entries (NULL
 * when none) the caller frees, each naming its intent by index in ev->pre. */
static int draw_order(const wk_part *p, const wk_event *ev, q_draw_entry **out)
{
    size_t n = ev->npre;
    q_draw_entrant *in = n ? malloc(n * sizeof *in) : NULL;
    q_draw_entry *e = n ? malloc(n * sizeof *e) : NULL;
    int rc = n && (!in || !e) ? ONS_ENOMEM : 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        in[i] = (q_draw_entrant){ev->pre[i]->seq, ev->pre[i]->user_id};
    if (rc == 0)
        rc = q_draw_order(ev->draw_seed, p->cfg.ids_secret ? p->cfg.ids_secret : "", in, n, e);
    free(in);
    if (rc) {
        free(e);
        e = NULL;
    }
    *out = e;
    return rc;
}

/* Orders ev's pre-queue by draw key, puts it ahead of the waiting list and
 * serves it. Deterministic: the order depends only on the seed and the
 * pre-queued intents' ids, so an owner rebuilt from PostgreSQL after a crash
 * draws the same order (over the intents still waiting). */
static int make_draw(wk_part *p, wk_event *ev, int64_t now_ms)
{
    size_t n = ev->npre;
    q_draw_entry *e;
    int rc = draw_order(p, ev, &e);
    if (rc)
        return rc;
    wk_intent **pre = ev->pre; /* untouched below: nothing joins the pre-queue meanwhile */
    ev->npre = 0;
    for (size_t i = n; i-- > 0;) {
        wk_intent *in = pre[e[i].at];
        in->in_pre = 0;
        in->draw_rank = (int32_t)(i + 1);
        waiting_prepend(ev, in);
    }
    rc = fx_touch_event(p, ev);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = fx_intent(p, pre[e[i].at], Q_REASON_NONE, 0);
    free(e);
    if (rc)
        return rc;
    ev->drawn = 1;
    ons_log_info("event %lld: draw made over %zu pre-queued intents", (long long)ev->event_id, n);
    return serve_waiting(p, ev, now_ms);
}

int wk_part_draw_due(wk_part *p, int64_t now_ms)
{
    return each_due(p, now_ms, draw_due, make_draw);
}

/* ---- admission control ----------------------------------------------------------------- */

static int apply_admission(wk_part *p, wk_event *ev, const q_msg *m, int64_t now_ms)
{
    ev->max_active_holds = m->max_active_holds;
    ev->admissions_per_minute = m->admissions_per_minute;
    if (ev->admissions_per_minute <= 0)
        ev->next_admit_ms = 0;
    ev->admission_dirty = 1;
    ons_log_info("event %lld: admission caps: %lld active holds, %lld a minute (0 = none)",
                 (long long)ev->event_id, (long long)ev->max_active_holds,
                 (long long)ev->admissions_per_minute);
    int rc = fx_touch_event(p, ev);
    return rc ? rc : serve_waiting(p, ev, now_ms); /* a raised cap lets fans in now */
}

/* Has ev's admission rate a fan to let in now, and a seat for one? */
static int admit_due(const wk_part *p, const wk_event *ev, int64_t now_ms)
{
    (void)p;
    return ev->whead && ev->admissions_per_minute > 0 && now_ms >= ev->next_admit_ms &&
           ev->inv.available != 0;
}

int wk_part_admit_due(wk_part *p, int64_t now_ms)
{
    return each_due(p, now_ms, admit_due, serve_waiting);
}

/* Has ev decided rejections still to write? */
static int reject_pending(const wk_part *p, const wk_event *ev, int64_t now_ms)
{
    (void)p;
    (void)now_ms;
    return ev->ndoomed > 0;
}

/* serve_waiting writes the next rejections, and once they are all written,
 * what the event's waiting fans get next: seats, or a sell-out's answer. */
int wk_part_reject_due(wk_part *p, int64_t now_ms)
{
    return p->ndoomed > 0 ? each_due(p, now_ms, reject_pending, serve_waiting) : 0;
}

int wk_part_rejecting(const wk_part *p)
{
    return p->ndoomed > 0;
}

/* Moves the lane's cursor past offset; on the intents lane a tombstone for
 * offset is spent (its row is deleted with the batch). */
static void advance(wk_part *p, int lane, int64_t offset)
{
    if (lane == Q_TOPIC_CONTROL) {
        p->ctl_next_offset = offset + 1;
        return;
    }
    p->next_offset = offset + 1;
    if (p->tombs.len && wk_map_del(&p->tombs, offset))
        p->fx.tombs_spent = 1;
}

/* Brings ev up to now before a record of it is applied: a show that is
 * over ends its sale first, also when no sweep saw it yet (an event loaded
 * just now), and a due draw is made. */
static int catch_up_event(wk_part *p, wk_event *ev, int64_t now_ms)
{
    int rc = 0;
    if (end_due(p, ev, now_ms) && (rc = set_status(p, ev, Q_EVENT_ENDED, now_ms)) != 0)
        return rc;
    if (draw_due(p, ev, now_ms) && (rc = make_draw(p, ev, now_ms)) != 0)
        return rc;
    return 0;
}

/* When m counts as sent: its send time, bounded by the owner's clock. */
static int64_t send_time(const wk_part *p, const q_msg *m, int64_t ts_ms, int64_t now_ms)
{
    int64_t when = m->sent_ms > 0 ? m->sent_ms : ts_ms;
    /* The sender's clock may run ahead (a node 5 minutes off): a record is
     * never taken as sent later than the owner's own now (plus the batch's
     * own wait, max_ahead_ms), so no node opens a sale early; the owner's
     * clock decides (holds expire by it too). Within the bound the send
     * time is kept exact: a resumed join finds its intent by it. */
    return when > now_ms + p->cfg.max_ahead_ms ? now_ms : when;
}

/* Whether the join at offset of the intents lane was cancelled ahead of
 * it by the same user (a tombstone). */
static int tombstoned(const wk_part *p, int lane, const q_msg *m, int64_t offset)
{
    uintptr_t tomb;
    return lane == Q_TOPIC_INTENTS && p->tombs.len &&
           (tomb = (uintptr_t)wk_map_get(&p->tombs, offset)) != 0 && (int64_t)tomb == m->user_id;
}

/* Applies m, read at offset of lane, to its event ev by its type. */
static int apply_record(wk_part *p, int lane, wk_event *ev, const q_msg *m, int64_t offset,
                        int64_t when, int64_t now_ms)
{
    int64_t seq = q_seq_make(p->partition, offset);
    switch (m->type) {
    case Q_MSG_INTENT:
        if (tombstoned(p, lane, m, offset))
            return apply_tombstoned(p, ev, m, seq, when, now_ms);
        return apply_intent(p, ev, m, seq, when, now_ms);
    case Q_MSG_CANCEL:
        return apply_cancel(p, ev, m, now_ms);
    case Q_MSG_EVENT_STATUS:
        return apply_status(p, ev, m, when, now_ms);
    case Q_MSG_ADMISSION:
        return apply_admission(p, ev, m, now_ms);
    case Q_MSG_CHECKOUT:
    case Q_MSG_PAYMENT_RESULT:
    case Q_MSG_TICKET:
        /* An order is named by its checkout's place: on the control lane
         * with Q_SEQ_CONTROL_BIT (queue/intent_id.h). */
        return wk_co_apply(p, ev, m, lane == Q_TOPIC_CONTROL ? offset | Q_SEQ_CONTROL_BIT : offset,
                           now_ms);
    default:
        return ONS_EINVAL;
    }
}

/* The join m, read at seq of a partition that is not its event's home, is
 * rejected (reason misrouted): its fan gets a true answer, and nothing of
 * the event (seats, counters, waiting fans) is read or written here. */
static int reject_misrouted(wk_part *p, const q_msg *m, int64_t seq, int64_t ts_ms, int64_t now_ms)
{
    /* ev NULL: no reservation, never read */
    wk_fx_intent *r = record_join(p, NULL, m, seq, ts_ms, now_ms, Q_INTENT_REJECTED);
    if (!r)
        return ONS_ENOMEM;
    r->reason = Q_REASON_MISROUTED;
    return 0;
}

int wk_part_home_elsewhere(const wk_part *p, int64_t event_id)
{
    uintptr_t home = (uintptr_t)wk_map_get(&p->foreign, event_id);
    return home ? (int32_t)(home - 1) : -1;
}

int wk_part_set_home_elsewhere(wk_part *p, int64_t event_id, int32_t home)
{
    return wk_map_put(&p->foreign, event_id, (void *)(uintptr_t)(home + 1));
}

int wk_part_apply_lane(wk_part *p, int lane, const q_msg *m, int64_t offset, int64_t ts_ms,
                       int64_t now_ms)
{
    wk_event *ev = NULL;
    /* A record of an event homed on another partition (sent by a producer
     * that placed it by the key over the topics' current count) is never
     * applied: its event has one writer, its home's owner. */
    int rc = wk_part_home_elsewhere(p, m->event_id) >= 0 ? ONS_ENOTFOUND
                                                         : get_event(p, m->event_id, &ev);
    if (rc == ONS_ENOTFOUND && wk_part_home_elsewhere(p, m->event_id) >= 0)
        rc = ONS_ECONFLICT; /* (also when the load just found it so) */
    if (rc == ONS_ECONFLICT && m->type == Q_MSG_INTENT && lane == Q_TOPIC_INTENTS) {
        int err = reject_misrouted(p, m, q_seq_make(p->partition, offset),
                                   send_time(p, m, ts_ms, now_ms), now_ms);
        if (err)
            return err;
    }
    if (rc == ONS_ENOTFOUND || rc == ONS_ECONFLICT) {
        wk_part_skip_lane(p, lane, offset);
        return rc;
    }
    if (rc || (rc = catch_up_event(p, ev, now_ms)) != 0)
        return rc;
    int64_t when = send_time(p, m, ts_ms, now_ms);
    if ((rc = apply_record(p, lane, ev, m, offset, when, now_ms)) != 0)
        return rc;
    p->fx.napplied[m->type]++;
    p->fx.nmessages++;
    advance(p, lane, offset);
    return 0;
}

int wk_part_apply(wk_part *p, const q_msg *m, int64_t offset, int64_t ts_ms, int64_t now_ms)
{
    return wk_part_apply_lane(p, Q_TOPIC_INTENTS, m, offset, ts_ms, now_ms);
}

void wk_part_skip_lane(wk_part *p, int lane, int64_t offset)
{
    p->fx.npoison++;
    p->fx.nmessages++;
    advance(p, lane, offset);
}

void wk_part_skip(wk_part *p, int64_t offset)
{
    wk_part_skip_lane(p, Q_TOPIC_INTENTS, offset);
}

int wk_part_expire(wk_part *p, int64_t now_ms, size_t max)
{
    size_t n = 0;
    int rc;
    /* Expire first, then serve waiting intents, so that every released seat
     * of this round is offered in order. */
    wk_event *touched[64];
    size_t ntouched = 0;
    int overflow = 0;
    wk_intent *in;
    while ((in = first_hold(p)) && n < max && in->expires_ms <= now_ms) {
        wk_event *ev = in->ev;
        if (in->state == Q_INTENT_PAYING && (rc = wk_co_paying_expired(p, in)) != 0)
            return rc;
        if ((rc = end_reservation(p, in, Q_INTENT_EXPIRED, Q_RES_EXPIRED, Q_REASON_NONE)) != 0)
            return rc;
        n++;
        size_t k = 0;
        while (k < ntouched && touched[k] != ev)
            k++;
        if (k == ntouched) {
            if (ntouched < sizeof touched / sizeof touched[0])
                touched[ntouched++] = ev;
            else
                overflow = 1;
        }
    }
    if (overflow) {
        for (size_t i = 0; i < p->fx.nevents; i++)
            if ((rc = serve_waiting(p, p->fx.events[i], now_ms)) != 0)
                return rc;
    } else {
        for (size_t i = 0; i < ntouched; i++)
            if ((rc = serve_waiting(p, touched[i], now_ms)) != 0)
                return rc;
    }
    p->fx.nexpired += n;
    return (int)n;
}

int wk_part_add_loaded(wk_part *p, wk_event *ev, wk_intent *in)
{
    in->ev = ev;
    in->heap_idx = -1;
    in->wprev = in->wnext = NULL;
    if (wk_map_put(&p->intents, in->seq, in) != 0) {
        free(in);
        return ONS_ENOMEM;
    }
    if (wk_map_put(&ev->users, in->user_id, in) != 0)
        return ONS_ENOMEM; /* freed with p */
    if (in->state == Q_INTENT_WAITING && in_prequeue_window(ev, in->accepted_ms))
        return pre_add(ev, in); /* drawn again, to the same order, when due */
    if (in->state == Q_INTENT_WAITING)
        waiting_append(ev, in);
    else if (in->state == Q_INTENT_RESERVED && in->res_state == Q_RES_HELD)
        return heap_push(p, in);
    else if (in->state == Q_INTENT_PAYING && in->res_state == Q_RES_PAYING) {
        /* The paying grace of checkout.h, counted from the stored hold. */
        in->expires_ms += (int64_t)p->cfg.paying_grace_seconds * 1000;
        return heap_push(p, in);
    }
    return 0;
}

/* ---- for checkout.c ----------------------------------------------------------------- */

int wk_part_fx_intent(wk_part *p, const wk_intent *in, int reason, int res_changed)
{
    return fx_intent(p, in, reason, res_changed);
}

int wk_part_set_seat(wk_part *p, wk_event *ev, uint32_t seat, int state, int64_t rid)
{
    wk_inv_set(&ev->inv, seat, state);
    return fx_seat(p, ev, seat, state, rid);
}

void wk_part_hold_moved(wk_part *p, wk_intent *in)
{
    if (in->heap_idx >= 0)
        ons_heap_fix(&p->holds, (size_t)in->heap_idx);
}

void wk_part_forget(wk_part *p, wk_intent *in)
{
    forget(p, in);
}

int wk_part_serve_waiting(wk_part *p, wk_event *ev, int64_t now_ms)
{
    return serve_waiting(p, ev, now_ms);
}

int wk_part_touch_event(wk_part *p, wk_event *ev)
{
    return fx_touch_event(p, ev);
}
