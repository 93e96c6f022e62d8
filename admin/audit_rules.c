/* audit_rules.c - the audit's rules over rows already read; see
 * audit_rules.h (and audit.c's header for the rules themselves). */
#include "admin/audit_rules.h"

#include "common/err.h"
#include "queue/intent_id.h"
#include "queue/states.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int adm_state_reachable(int seen, int now)
{
    switch (seen) {
    case Q_INTENT_QUEUED:
        return 1;
    case Q_INTENT_WAITING:
        return now != Q_INTENT_QUEUED;
    case Q_INTENT_RESERVED:
        return now == Q_INTENT_RESERVED || now == Q_INTENT_PAYING || now == Q_INTENT_PURCHASED ||
               now == Q_INTENT_EXPIRED || now == Q_INTENT_RELEASED;
    case Q_INTENT_PAYING:
        /* A declined or failed payment gives the hold back (docs/checkout.md):
         * a fan who last saw paying may find its intent reserved again. */
        return now == Q_INTENT_PAYING || now == Q_INTENT_RESERVED || now == Q_INTENT_PURCHASED ||
               now == Q_INTENT_EXPIRED || now == Q_INTENT_RELEASED;
    default:
        return now == seen;
    }
}

int adm_released_between(const adm_release *rel, size_t n, int64_t event, int64_t from, int64_t to)
{
    size_t lo = 0, hi = n;
    while (lo < hi) { /* first index with (event, t) >= (event, from) */
        size_t mid = lo + (hi - lo) / 2;
        if (rel[mid].event_id < event || (rel[mid].event_id == event && rel[mid].t < from))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && rel[lo].event_id == event && rel[lo].t <= to;
}

/* ---- serving order -------------------------------------------------------------- */

/* The serving order of one row: a pre-queued intent by its draw key
 * (queue/draw.h; "0" + key, ahead of every other), the rest by seq ("1" +
 * 16 hex digits). */
typedef struct ordered {
    const adm_fifo_row *row;
    size_t index; /* in the input: the last tie-break */
    char key[Q_DRAW_HEX_LEN + 2];
} ordered;

static int cmp_i64(int64_t a, int64_t b)
{
    return (a > b) - (a < b);
}

/* Orders request classes (event, quantity, section, price, adjacency). */
static int class_cmp(const adm_fifo_row *x, const adm_fifo_row *y)
{
    int d = cmp_i64(x->event_id, y->event_id);
    if (!d)
        d = cmp_i64(x->quantity, y->quantity);
    if (!d)
        d = strcmp(x->section, y->section);
    if (!d)
        d = cmp_i64(x->max_price_cents, y->max_price_cents);
    if (!d)
        d = cmp_i64(x->adjacent != 0, y->adjacent != 0);
    return d;
}

static int ordered_cmp(const void *a, const void *b)
{
    const ordered *x = a, *y = b;
    int d = class_cmp(x->row, y->row);
    if (!d)
        d = strcmp(x->key, y->key);
    return d ? d : cmp_i64((int64_t)x->index, (int64_t)y->index);
}

/* Keys row r (see ordered); 1 when it is pre-queued but cannot be keyed. */
static int key_row(const adm_fifo_row *r, const char *ids_secret, ordered *o)
{
    if (r->prequeued) {
        uint8_t seed[Q_DRAW_SEED_LEN];
        char id[Q_ID_LEN + 1];
        if (ids_secret && q_draw_seed_parse(r->seed_hex, seed) == 0 &&
            q_id_encode(ids_secret, Q_ID_INTENT, r->seq, r->user_id, id) == 0 &&
            q_draw_key(seed, id, o->key + 1) == 0) {
            o->key[0] = '0';
            return 0;
        }
    }
    snprintf(o->key, sizeof o->key, "1%016llx", (unsigned long long)r->seq);
    return r->prequeued;
}

/* ---- the walk --------------------------------------------------------------------- */

typedef struct grant {
    int have;
    int64_t t, min_seat, max_seat, min_pos;
} grant;

/* The state of the class being walked (reset at each class). */
typedef struct walk {
    adm_fifo_result *res;
    const adm_release *rel;
    size_t nrel;
    grant prev_live;
    int waiting_before;
    int64_t max_reject_t, max_grant_t;
} walk;

static void new_class(walk *w)
{
    memset(&w->prev_live, 0, sizeof w->prev_live);
    w->waiting_before = 0;
    w->max_reject_t = w->max_grant_t = INT64_MIN;
}

long long adm_fifo_violations(const adm_fifo_result *r)
{
    return r->bad_order + r->bad_wait + r->bad_reject + r->bad_seat;
}

/* A grant: (a) in order of the grants before it, (b) past no waiting
 * earlier intent, (c) after no earlier rejection, (d) with seats no better
 * than the earlier live grant's unless seats were released in between. */
static void visit_grant(walk *w, const adm_fifo_row *r)
{
    adm_fifo_result *res = w->res;
    res->grants++;
    if (r->t < w->max_grant_t)
        res->bad_order++; /* (a) */
    if (w->waiting_before)
        res->bad_wait++; /* (b) */
    if (r->t <= w->max_reject_t)
        res->bad_reject++; /* (c) */
    if (r->t > w->max_grant_t)
        w->max_grant_t = r->t;
    if (!r->live || !r->has_seats)
        return;
    grant g = {1, r->t, r->min_seat, r->max_seat, r->min_section_pos};
    if (w->prev_live.have &&
        !adm_released_between(w->rel, w->nrel, r->event_id, w->prev_live.t, r->t)) {
        if (r->adjacent ? g.min_pos < w->prev_live.min_pos : g.min_seat <= w->prev_live.max_seat)
            res->bad_seat++; /* (d) */
    }
    w->prev_live = g;
}

/* Visits one row (in serving order) of its class. */
static void visit(walk *w, const adm_fifo_row *r)
{
    long long before = adm_fifo_violations(w->res);
    if (r->kind == 'w') {
        w->waiting_before = 1;
    } else if (r->kind == 'r') {
        if (r->t > w->max_reject_t)
            w->max_reject_t = r->t;
    } else if (r->kind == 'g') {
        visit_grant(w, r);
    }
    if (adm_fifo_violations(w->res) > before && !w->res->sample[0])
        snprintf(w->res->sample, sizeof w->res->sample,
                 "; first at intent %" PRId64 " (event %" PRId64 ", qty %" PRId64 ")", r->seq,
                 r->event_id, r->quantity);
}

int adm_fifo_walk(const adm_fifo_row *rows, size_t n, const adm_release *rel, size_t nrel,
                  const char *ids_secret, adm_fifo_result *out)
{
    memset(out, 0, sizeof *out);
    ordered *o = malloc((n + 1) * sizeof *o);
    if (!o)
        return ONS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        o[i].row = &rows[i];
        o[i].index = i;
        out->undrawn += key_row(&rows[i], ids_secret, &o[i]);
    }
    qsort(o, n, sizeof *o, ordered_cmp);
    walk w = {.res = out, .rel = rel, .nrel = nrel};
    for (size_t k = 0; k < n; k++) {
        if (k == 0 || class_cmp(o[k].row, o[k - 1].row) != 0)
            new_class(&w);
        visit(&w, o[k].row);
    }
    free(o);
    return 0;
}
