/*
 * sim.h - shared state of onsale-sim, the flash-sale simulator: options,
 * per-fan state, counters, latency samples and the per-second timeline.
 *
 * main.c fills the options, creates the event, runs the fans (fans.c) on one
 * thread over the HTTP client (http.c), then report.c prints the table and
 * writes the JSON and SVG files. Everything here is owned by that one thread.
 */
#ifndef ONSALE_ADMIN_SIM_SIM_H
#define ONSALE_ADMIN_SIM_SIM_H

#include "admin/audit.h"
#include "admin/sim/lanes.h"
#include "common/heap.h"
#include "common/httpc.h"
#include "common/opts.h"
#include "queue/kconf.h"

#include <stdint.h>
#include <stdio.h>

#define SIM_MAX_CODES   24 /* distinct refusal codes counted */
#define SIM_MAX_SAMPLES (4 * 1000 * 1000)

/* Options: a field per line of options.def (common/opts.h; fractions are
 * ONS_OPT_FRAC, read and range-checked by the table), then what main.c
 * parses from them. */
typedef struct sim_opts {
#define X(...) ONS_OPT_FIELD(__VA_ARGS__)
#include "admin/sim/options.def"
#undef X
    /* parsed */
    char host[256];
    int port;
} sim_opts;

/* Where a fan is in its script. */
/* P_LOADING: the page's first event view is in flight; the join waits for
 * it, as web/fan.js shows the join button only once the view says the sale
 * is on (and ends the visit when it says sold out). */
enum sim_phase { P_ARRIVING, P_LOADING, P_JOINING, P_POLLING, P_ACTING, P_DONE };

/* How a fan's visit ended (or stood when the run stopped). */
enum sim_outcome {
    O_NONE,
    O_REFUSED,   /* join answered 4xx/5xx for good */
    O_SOLD_OUT,  /* join 409 sold_out or rejected sold_out */
    O_REJECTED,  /* rejected for another reason */
    O_KEPT,      /* reserved and kept the hold (no checkout) */
    O_PURCHASED, /* checkout went through */
    O_RELEASED,  /* abandoned: deleted the reservation */
    O_EXPIRED,   /* abandoned: let the hold expire */
    O_WAITING,   /* still waiting when the run stopped */
    O_QUEUED,    /* still queued when the run stopped */
    O_ERROR,     /* transport errors or unexpected answers */
    O_COUNT
};

enum sim_plan { PLAN_NONE, PLAN_KEEP, PLAN_CHECKOUT, PLAN_DELETE, PLAN_EXPIRE };

/* The order of a fan's last accepted checkout, as its order polls saw it:
 * none named, pending (polled), or failed/refunded (paying may start again). */
enum sim_order_state { ORDER_NONE, ORDER_PENDING, ORDER_FAILED };

typedef struct sim_fan {
    int64_t user_id;
    char *token;
    char intent_id[33];
    char reservation_id[33];
    int64_t arrive_ms; /* offset from the run's start */
    int64_t join_ms, answer_ms, served_ms;
    int64_t last_pos;
    uint32_t polls;
    uint16_t retries;
    uint8_t tries; /* failed answers in a row: the next retry's backoff (web/api.js) */
    uint8_t qty, adjacent;
    uint8_t phase, plan, outcome, state; /* state: enum q_intent_state, 0xff none */
    uint8_t seats_held, acted;
    uint8_t pay_attempts, saw_paying; /* checkout attempts made; PAYING seen since the last */
    uint8_t view_inflight;            /* an event view request is out */
    uint8_t order_inflight;           /* an order poll is out */
    uint8_t order_tries;              /* order polls failed in a row */
    char order_id[48];                /* the accepted checkout's order, polled while pending */
    uint8_t order_state;              /* enum sim_order_state */
    uint8_t pow_needed, pow_tries;    /* the event asks for work; challenges fetched */
    char *pow;                        /* the join's Onsale-PoW value while it is sent */
    int64_t acted_ms;                 /* when the last checkout was accepted */
    /* The first ETA the fan was shown while queued (eta_seconds, in ms; -1
     * none) and when it was shown: report.c compares it with when the fan
     * left the queue, which happened after queued_seen_ms (the last answer
     * that still said queued) and by served_ms (the first that did not);
     * left_ms is that moment exactly when the answer said (left_queue_at,
     * the owner's clock; -1 unknown); eta_due_ms is the promised moment the
     * answer said (eta_at, the server's clock; -1 unknown). */
    int64_t eta_ms, eta_at_ms, queued_seen_ms, left_ms, eta_due_ms;
    int64_t eta_pos;  /* the position that first ETA was given for */
    int32_t heap_idx; /* -1 when no timer */
} sim_fan;

typedef struct sim_samples {
    float *v;
    size_t n, cap, seen;
} sim_samples;

/* One second of the run: the simulator's own view and, when the admin
 * endpoint answers, the server's. -1 = unknown. */
typedef struct sim_point {
    double t_s;
    long long fans_queued, fans_waiting, fans_reserved, fans_done;
    long long queued, waiting, held, sold, available, lag;
    double drain_rate;
} sim_point;

typedef struct sim_code {
    char code[48];
    long long n;
} sim_code;

typedef struct sim sim;
struct sim {
    sim_opts o;
    ons_httpc *http; /* connections + fan_connections keep-alive connections */
    sim_lanes lanes; /* the fans' requests over http (lanes.h) */
    FILE *log;
    char log_path[4096];
    int log_is_temp;
    char *seller_token, *admin_token;
    int64_t event_id, seats_total;
    sim_fan *fans;
    size_t nfans;
    uint64_t rng;
    /* timers: a min-heap of sim_timer by due time; a fan's place in it is
     * its heap_idx */
    ons_heap timers;
    /* event view refreshes: a min-heap of sim_timer (fan, due), at most
     * one per fan; each is due after the page's wait, which follows the
     * view's refresh_after_ms, so due times come in no fixed order */
    ons_heap views_heap;
    ons_heap orders_heap;    /* the order polls due (fan.js pollOrder) */
    int64_t view_refresh_ms; /* the last refresh_after_ms a view gave */
    int64_t start_ns;
    int64_t start_wall_ms; /* CLOCK_REALTIME at start_ns: maps the server's times */
    int64_t last_change_ms, first_join_ms, last_arrival_ms;
    int64_t sold_out_ms, all_taken_ms;
    int checkout; /* 0 unknown, 1 available, -1 not available */
    long long checkout_skipped, checkout_errors;
    long long checkout_retries; /* checkouts sent again after a 429/503/409 to retry later */
    long long order_polls, order_poll_errors; /* GET /v1/orders/{id} while paying */
    int admin_ok;                             /* 0 unknown, 1 answers, -1 not available */
    int admin_inflight;                       /* a /v1/admin/queues request is out */
    int64_t admin_next_ms;                    /* none is sent before (run clock) */
    int gateway_knobs;                        /* 0 not sent, 1 set on the gateway, -1 failed */
    /* counters */
    long long joins_sent, joins_accepted, join_retries, polls, poll_errors, deletes;
    long long views, view_errors;
    long long pow_solves; /* challenges solved (docs/fairness.md "Bot friction") */
    long long reserved_ever, seats_reserved_ever, sold_out_answers;
    long long sold_out_views; /* fans whose page's first view said sold out: no join */
    long long outcome[O_COUNT];
    sim_code codes[SIM_MAX_CODES];
    int ncodes;
    sim_samples join_lat, poll_lat, answer_lat, view_lat, pow_ms;
    sim_point *points;
    size_t npoints, cap_points;
    double max_drain_rate;
    int64_t end_ms;
    int stopped_by; /* 0 all done, 1 settled, 2 max_seconds, 3 signal */
    int draining;   /* the run ended: callbacks send nothing more */
    adm_audit_result audit;
    int audit_ran, audit_rc;
};

extern const char *const sim_outcome_names[];

/* main.c: sends the gateway fault knobs once checkout is seen working
 * (blocking, once per run). */
void sim_gateway_knobs(sim *s);

/* fans.c */
int64_t sim_now_ms(const sim *s);
int sim_fans_init(sim *s);
/* Runs the sale until every fan is done, the rest settled, or max_seconds.
 * Returns 0 or a negative ONS_ error. */
int sim_fans_run(sim *s);
void sim_fans_fini(sim *s);
void sim_count_code(sim *s, int status, const char *code);
void sim_samples_add(sim_samples *sm, double v, uint64_t *rng);
double sim_samples_pct(sim_samples *sm, double p);

/* report.c */
void sim_report_print(sim *s, FILE *out);
int sim_report_json(sim *s, const char *path);
int sim_report_svg(const sim *s, const char *path);
/* Writes each measured fan's first ETA and its error (tab-separated). */
int sim_report_eta_log(sim *s, const char *path);

#endif
