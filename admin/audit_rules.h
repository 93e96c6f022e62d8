/*
 * audit_rules.h - the audit's rules over rows already read: which intent
 * state a fan may find after the one it saw, when seats were given back, and
 * the FIFO walk (audit.c's header states the exact rules). No I/O: the rows
 * come from audit_store.h in the audit, and from the test itself in
 * tests/unit/test_audit_rules.c.
 */
#ifndef ONSALE_ADMIN_AUDIT_RULES_H
#define ONSALE_ADMIN_AUDIT_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "queue/draw.h"

/* Whether a fan that last saw intent state `seen` (queue/states.h) may find
 * its intent in state `now`. */
int adm_state_reachable(int seen, int now);

/* The times seats were given back (a reservation released or expired, an
 * order refunded), sorted by (event, t); t in microseconds. */
typedef struct adm_release {
    int64_t event_id, t;
} adm_release;

/* Whether some release of event happened at a time in [from, to]; rel is
 * sorted as above. */
int adm_released_between(const adm_release *rel, size_t n, int64_t event, int64_t from, int64_t to);

/* The longest section name a FIFO row keeps (longer ones are cut; they
 * still group apart unless they share this prefix). */
#define ADM_SECTION_MAX 127

/* One intent as the FIFO walk sees it. */
typedef struct adm_fifo_row {
    /* the request class */
    int64_t event_id, quantity, max_price_cents; /* max_price 0: none */
    char section[ADM_SECTION_MAX + 1];           /* "" none */
    int adjacent;
    /* the outcome */
    int64_t seq;   /* intent_seq (= offset order) */
    char kind;     /* 'g' granted, 'w' queued or waiting, 'r' rejected for want
                      of seats, 'o' anything else */
    int64_t t;     /* grant (reservation created) or last update, microseconds */
    int live;      /* the reservation is held, paying or purchased */
    int has_seats; /* the seats below are known */
    int64_t min_seat, max_seat, min_section_pos;
    /* the draw */
    int prequeued;                         /* joined in the pre-queue window */
    char seed_hex[2 * Q_DRAW_HEX_LEN + 1]; /* the event's draw seed, "" none (a longer
                                              text is cut and then parses as none) */
    int64_t user_id;
} adm_fifo_row;

/* What the FIFO walk found. */
typedef struct adm_fifo_result {
    long long grants;
    long long bad_order, bad_wait, bad_reject, bad_seat; /* (a) .. (d) */
    long long undrawn; /* pre-queued rows not keyed (no ids_secret or seed) */
    char sample[160];  /* "; first at intent N (event E, qty Q)" or "" */
} adm_fifo_result;

/* Walks rows (any order) class by class in serving order: pre-queued intents
 * first by their draw key (needs ids_secret and the event's seed, else they
 * count as undrawn and keep their seq order), then by seq. rel as
 * adm_released_between. Returns 0 or ONS_ENOMEM. */
int adm_fifo_walk(const adm_fifo_row *rows, size_t n, const adm_release *rel, size_t nrel,
                  const char *ids_secret, adm_fifo_result *out);

/* All the violations of r. */
long long adm_fifo_violations(const adm_fifo_result *r);

#endif
