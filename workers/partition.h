/*
 * partition.h - the in-memory state of one owned Kafka partition and the
 * rules that apply its messages, in offset order, to that state.
 *
 * A partition owns the events whose messages it carries (loaded from
 * PostgreSQL through the wk_load_fn on their first message, or up front by
 * the owner when they have live holds, so holds expire without traffic),
 * their active intents (waiting / reserved / paying), each event's FIFO
 * list of waiting intents, and one min-heap of holds by expiry. Applying a
 * message only touches memory and records the batch's effects in p->fx
 * (coalesced: one record per intent, per seat, per event, holding its final
 * state); the store writes them in one transaction and the projection
 * publishes them.
 * Memory is a cache of the database: after any failure the owner frees the
 * partition and builds a new one from PostgreSQL.
 *
 * Decisions on a new intent, in this order:
 *   sale not open (scheduled before onsale_at, paused, cancelled, ended)
 *                                          -> rejected sale_closed
 *   quantity > the event's max_per_user    -> rejected insufficient_seats
 *   the user already has an active intent  -> rejected duplicate
 *   every seat sold (none free, none held) -> rejected sold_out
 *   unknown section name                   -> rejected insufficient_seats
 *   seats found among the free ones        -> reserved (hold starts now)
 *   seats found counting held ones         -> waiting (FIFO)
 *   otherwise                              -> rejected insufficient_seats
 * Paused events keep their waiting intents and holds but allocate nothing
 * until resumed; cancelled / ended events reject their waiting intents
 * (sale_closed) and release held and paying reservations (released, reason
 * cancelled; a paying order fails and a later charge is refunded). A
 * cancelled event also voids its valid tickets and refunds each order once
 * (checkout.h). cancelled and ended are final: a later event_status record
 * changes nothing. An event ends (status ended) end_grace_ms after its
 * starts_at, checked before each of its records and by wk_part_end_due.
 * Released and expired seats go to waiting intents first, in order, before
 * any later message is applied. A waiting intent that the unsold seats
 * (free, held or paying) can no longer fit once seats are sold is rejected
 * insufficient_seats at once, as it would be on arrival, instead of waiting
 * for the whole event to sell out. Owned by one thread.
 */
#ifndef ONSALE_WORKERS_PARTITION_H
#define ONSALE_WORKERS_PARTITION_H

#include "common/heap.h"
#include "queue/msg.h"
#include "queue/states.h"
#include "workers/inventory.h"
#include "workers/map.h"

#include <stddef.h>
#include <stdint.h>

/* The intent, reservation and event vocabularies are queue/states.h's. */

struct wk_event;

/* An active intent (waiting, reserved or paying). Its reservation, if any,
 * has reservation_id = seq. */
typedef struct wk_intent {
    int64_t seq, user_id;
    int64_t max_price; /* 0 = none */
    int64_t accepted_ms, expires_ms, total_cents;
    /* When this owner applied the join (left the queue); 0 = unknown (loaded
     * after a restart). Shown as left_queue_at (docs/fairness.md). */
    int64_t left_queue_ms;
    struct wk_event *ev;
    struct wk_intent *wprev, *wnext; /* the event's waiting list */
    int64_t order_id;                /* the order being paid while state == paying */
    int32_t heap_idx;                /* -1 when not in the hold heap */
    int16_t section;                 /* section index, -1 = any */
    uint8_t in_pre;                  /* waiting in the event's pre-queue (until the draw) */
    uint8_t doomed;    /* waiting when its event sold out: rejected sold_out (reject_doomed) */
    uint32_t pre_idx;  /* its index in ev->pre while in_pre */
    int32_t draw_rank; /* 1-based place in the draw; 0 = not drawn */
    uint8_t qty, adjacent, state, res_state, nseats;
    uint32_t seats[Q_MAX_SEATS]; /* inventory indices */
} wk_intent;

typedef struct wk_event {
    int64_t event_id;
    uint32_t slot; /* partition-local number, keys seat effects */
    int status;    /* enum wk_evstatus */
    int64_t onsale_at_ms;
    int64_t starts_at_ms; /* the show; 0 = unknown (never ends by time) */
    int hold_seconds, max_per_user;
    char currency[4];
    wk_inv inv;
    wk_map users; /* user_id -> active wk_intent */
    wk_intent *whead, *wtail;
    int64_t nwaiting;
    int64_t waiting_by_qty[Q_MAX_SEATS + 1];
    int fx_mark;      /* listed in the batch's touched events */
    int status_dirty; /* status changed in this batch */
    uint32_t fit_gen; /* inv.shrink_gen when waiting intents were last checked */
    int64_t ndoomed;  /* waiting intents whose rejection is decided, not written yet */
    /* The pre-queue (docs/fairness.md): joins sent from prequeue_opens_at
     * until onsale_at wait in pre[] (state waiting, no order yet) until the
     * draw, which puts them, by ascending draw key (queue/draw.h), ahead of
     * everything in the waiting list. Until the draw the event allocates
     * nothing. */
    int64_t prequeue_opens_at_ms; /* 0 = no pre-queue */
    uint8_t draw_seed[32];
    int drawn;
    wk_intent **pre;
    size_t npre, cap_pre;
    /* Admission control (docs/fairness.md): at most max_active_holds holds
     * (reserved or paying) at once, at most admissions_per_minute grants a
     * minute (one per 60000/apm ms); 0 = no cap. While a cap binds, waiting
     * fans stay in order even if seats are free. */
    int64_t max_active_holds, admissions_per_minute;
    int64_t next_admit_ms; /* no grant before this (admissions_per_minute) */
    int64_t nholds;        /* this event's intents in the hold heap */
    int admission_dirty;   /* caps changed in this batch */
} wk_event;

/* One intent's final state in the batch being built. */
typedef struct wk_fx_intent {
    int64_t seq, event_id, user_id, max_price, accepted_ms;
    int64_t offset, total_cents, expires_ms;
    int64_t left_queue_ms; /* 0 = unknown */
    int32_t partition;
    uint8_t qty, adjacent, state, reason, res_state, nseats;
    uint8_t is_new; /* INSERT the intent (else UPDATE) */
    uint8_t in_pre; /* pre-queued, not drawn yet */
    int32_t draw_rank;
    uint8_t res_new; /* INSERT the reservation (else UPDATE if res_state) */
    uint8_t res_changed;
    uint32_t seats[Q_MAX_SEATS];
    char section[Q_MSG_MAX_SECTION + 1];
    wk_event *ev;
} wk_fx_intent;

typedef struct wk_fx_seat {
    int64_t event_id;
    int64_t reservation_id; /* -1 = none (0 is a valid id: partition 0, offset 0) */
    int32_t seat_no;
    uint8_t state;
} wk_fx_seat;

/* A cancel that overtook its intent: persisted in the batch (0009). */
typedef struct wk_fx_tomb {
    int64_t offset, user_id; /* the intent's offset in the intents topic; its user */
} wk_fx_tomb;

/* The effects of one batch. */
typedef struct wk_fx {
    wk_fx_intent *intents;
    size_t nintents, cap_intents;
    wk_map intent_idx; /* seq -> index + 1 */
    wk_fx_seat *seats;
    size_t nseats, cap_seats;
    wk_map seat_idx; /* slot << 32 | seat -> index + 1 */
    wk_event **events;
    size_t nevents, cap_events;
    int64_t first_offset;     /* offset the batch started at (committed cursor) */
    int64_t first_ctl_offset; /* the same on the control lane */
    wk_fx_tomb *tombs;        /* tombstones to persist */
    size_t ntombs, cap_tombs;
    int tombs_spent;  /* the intents cursor passed a tombstone: delete rows below it */
    size_t nmessages; /* messages consumed, poison included */
    size_t napplied[Q_MSG_TYPE_COUNT];
    size_t npoison, nexpired;
} wk_fx;

typedef struct wk_part wk_part;

/* Loads one event into p (wk_event_new, wk_inv_* builders, wk_part_add_loaded,
 * wk_part_attach_seat, then wk_part_add_event). Returns 0, ONS_ENOTFOUND
 * (no such event) or another error (the batch fails). */
typedef int (*wk_load_fn)(void *ctx, wk_part *p, int64_t event_id);

typedef struct wk_part_cfg {
    wk_load_fn load;
    void *load_ctx;
    int hold_seconds_override; /* > 0: debug: every hold lasts this long */
    int paying_grace_seconds;  /* a paying hold lasts this much longer (checkout.h) */
    int64_t end_grace_ms;      /* an event ends this long after its starts_at */
    int64_t refund_cutoff_ms;  /* a ticket cancel is refused this close to starts_at */
    int debug_no_tombstones;   /* DEBUG: a cancel ahead of its intent is ignored (control test) */
    /* The draw (docs/fairness.md): made draw_close_ms after onsale_at, so
     * that every pre-queued join ingress accepted before onsale_at is in
     * the log by then (keep it above ingress's kafka.produce_timeout_ms);
     * ids_secret names the intents whose draw keys order it. */
    const char *ids_secret;
    int64_t draw_close_ms;
    /* A record's send time is believed up to this far ahead of the owner's
     * now (the batch's clock, read before its records arrived); further
     * ahead, the sender's clock is off and the owner's now counts. */
    int64_t max_ahead_ms;
    /* Waiting intents whose rejection a batch decided (sold out, or seats
     * they can never get) are rejected at most this many per batch
     * (counting the batch's other intent changes), in waiting order, the
     * rest in the batches that follow (wk_part_reject_due): the batch that
     * sold the last seat commits, and the sale shows sold out, without
     * waiting for 180,000 rejections. 0 = all in that batch. */
    int64_t sold_out_rejects;
} wk_part_cfg;

struct wk_part {
    int32_t partition;
    int64_t epoch;
    int64_t next_offset;     /* first offset of the intents topic not yet applied in memory */
    int64_t ctl_next_offset; /* the same for the control topic (docs/pipeline.md "Two lanes") */
    wk_map tombs;            /* intents offset -> user_id: cancels that overtook their intent */
    wk_part_cfg cfg;
    wk_map events; /* event_id -> wk_event */
    /* event_id -> its home partition + 1, for events homed on another
     * partition (events.partitions; docs/scaling.md "Growing the topics"):
     * never loaded here, their records never applied here (fenced). */
    wk_map foreign;
    wk_map intents; /* seq -> active wk_intent */
    ons_heap holds; /* of wk_intent *, by expires_ms then seq; in->heap_idx is its place */
    uint32_t next_slot;
    wk_fx fx;
    struct wk_co *co; /* checkout state and effects (checkout.h); NULL until used */
    int64_t ndoomed;  /* waiting intents whose rejection is decided, not written yet */
};

/* Returns a new, empty partition state, or NULL on allocation failure. The
 * caller frees it with wk_part_free (which frees every event and intent). */
wk_part *wk_part_new(int32_t partition, int64_t epoch, int64_t next_offset, const wk_part_cfg *cfg);
void wk_part_free(wk_part *p);

/* Applies one decoded message at offset. ts_ms is the record's timestamp
 * (used when the message has no sent_ms), now_ms the wall clock holds start
 * from. Returns 0; ONS_ENOTFOUND when the event does not exist (the record
 * is skipped like a poison record: counted, offset advanced); any other code
 * means the batch failed and the partition must be rebuilt. */
int wk_part_apply(wk_part *p, const q_msg *m, int64_t offset, int64_t ts_ms, int64_t now_ms);

/* Skips an undecodable record at offset (counted, offset advanced). */
void wk_part_skip(wk_part *p, int64_t offset);

/* The home partition of event_id when it is another than p's (its records
 * are fenced here), else -1. */
int wk_part_home_elsewhere(const wk_part *p, int64_t event_id);
/* Notes that event_id is homed on partition home, not p's (the store's
 * load, which then loads nothing of it). 0 or ONS_ENOMEM. */
int wk_part_set_home_elsewhere(wk_part *p, int64_t event_id, int32_t home);

/* wk_part_apply / wk_part_skip for a record of either lane (enum q_topic):
 * each lane advances its own cursor (next_offset, ctl_next_offset). Any
 * record type is applied on either lane (records produced to the intents
 * topic before the control lane existed); a checkout on the control lane
 * names its order with Q_SEQ_CONTROL_BIT.
 * A cancel of an intent the intents lane has not reached yet (it came on
 * the control lane, ahead of its intent) leaves a tombstone: when that
 * intent is applied it is released at once (state released), takes no
 * seats and is never reserved or waiting. Tombstones are written with the
 * batch and loaded back by the store, so a crash between the cancel's commit
 * and the intent's changes nothing.
 * Returns 0; ONS_ENOTFOUND (no such event) or ONS_ECONFLICT (the event is
 * homed on another partition: wk_part_home_elsewhere), the record skipped
 * either way (the cursor advances; a join of an event homed elsewhere is
 * rejected, reason misrouted, so its fan is answered; nothing else
 * changes); or another error (the partition's memory is no longer
 * usable). */
int wk_part_apply_lane(wk_part *p, int lane, const q_msg *m, int64_t offset, int64_t ts_ms,
                       int64_t now_ms);
void wk_part_skip_lane(wk_part *p, int lane, int64_t offset);

/* Registers a persisted tombstone (the store's loader). 0 or ONS_ENOMEM. */
int wk_part_add_tombstone(wk_part *p, int64_t offset, int64_t user_id);

/* Expires holds whose time is up (at most max of them), handing their seats
 * to waiting intents. Returns how many expired, or a negative error (the
 * batch failed). */
int wk_part_expire(wk_part *p, int64_t now_ms, size_t max);

/* Ends the sale of every loaded event whose show started end_grace_ms ago
 * or more (status ended: waiting intents rejected, holds released, paying
 * orders failed; tickets stay valid). Returns how many ended, or a negative
 * error (the batch failed). */
int wk_part_end_due(wk_part *p, int64_t now_ms);

/* Makes the draw of every loaded event whose draw is due (onsale_at +
 * draw_close_ms passed): its pre-queued intents are ordered by draw key
 * ahead of the waiting list and served. Returns how many draws were made,
 * or a negative error (the batch failed). */
int wk_part_draw_due(wk_part *p, int64_t now_ms);

/* Serves the waiting fans of events whose admission rate held them back
 * and whose next admission is due. Returns how many events were served, or
 * a negative error (the batch failed). */
int wk_part_admit_due(wk_part *p, int64_t now_ms);

/* Writes the next decided rejections of waiting intents (cfg.sold_out_rejects
 * per batch) of every event that has some; an event whose last ones are
 * written serves its waiting fans again (seats, or a sell-out's answer).
 * Returns how many events had some, or a negative error (the batch
 * failed). */
int wk_part_reject_due(wk_part *p, int64_t now_ms);

/* Are rejections of a sold-out event's waiting intents still to come? The
 * owner's loop then polls without waiting, so each batch of them follows
 * the last at once. */
int wk_part_rejecting(const wk_part *p);

/* Does the batch have anything to write? */
int wk_part_dirty(const wk_part *p);

/* Forgets the batch's effects after they were committed. */
void wk_part_batch_done(wk_part *p);

/* Milliseconds until the earliest hold expires (INT64_MAX when none). */
int64_t wk_part_next_expiry(const wk_part *p, int64_t now_ms);

/* ---- for loaders ----------------------------------------------------------- */

/* Returns a zeroed event with defaults, or NULL. Owned by the caller until
 * wk_part_add_event; free a never-added one with wk_event_free. */
wk_event *wk_event_new(int64_t event_id);
void wk_event_free(wk_event *ev);

/* Registers a loaded active intent of ev (state waiting/reserved/paying);
 * waiting ones must come in seq order. Takes ownership of in (allocate it
 * with calloc). Returns 0 or ONS_ENOMEM (in is freed). */
int wk_part_add_loaded(wk_part *p, wk_event *ev, wk_intent *in);

/* Looks up an active intent by seq (NULL when none). */
wk_intent *wk_part_intent(const wk_part *p, int64_t seq);

/* Registers ev (taking ownership) once its inventory and intents are loaded. */
int wk_part_add_event(wk_part *p, wk_event *ev);

/* Looks up a loaded event. */
wk_event *wk_part_event(const wk_part *p, int64_t event_id);

/* ---- for checkout.c: the state changes it shares with the rules above ------- */

/* Records in's current state in the batch (res_changed: its reservation
 * changed state). */
int wk_part_fx_intent(wk_part *p, const wk_intent *in, int reason, int res_changed);
/* Sets a seat's state in memory and in the batch (rid -1 = none). */
int wk_part_set_seat(wk_part *p, wk_event *ev, uint32_t seat, int state, int64_t rid);
/* Re-sorts in in the hold heap after its expires_ms changed. */
void wk_part_hold_moved(wk_part *p, wk_intent *in);
/* Forgets an intent that reached a terminal state (already recorded). */
void wk_part_forget(wk_part *p, wk_intent *in);
/* Hands free seats of ev to its waiting intents, in order. */
int wk_part_serve_waiting(wk_part *p, wk_event *ev, int64_t now_ms);
/* Marks ev touched in this batch (its counters are projected). */
int wk_part_touch_event(wk_part *p, wk_event *ev);

#endif
