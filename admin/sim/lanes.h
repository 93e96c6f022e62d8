/*
 * lanes.h - the simulator's request lanes over one HTTP client pool.
 *
 * A real crowd has no queue in front of the server: each fan's browser
 * has its own connection. The simulator shares a bounded pool among all
 * its fans, so a request waits in the simulator until a connection is
 * free. With one FIFO for everything, a reserved fan's checkout (or its
 * next poll) waited there behind every other fan's join queued before it,
 * tens of seconds in a 200,000-fan stampede (bench/NOTES.md, "The e2e's
 * tail"). Lanes keep those apart: each lane has its own connections (the
 * pool holds the sum) and its own queue, and a lane's urgent requests go
 * before its others. Nothing is sent less often: only what waits behind
 * what in the simulator changes.
 *
 * Single-threaded, like the pool: everything runs on the thread that
 * polls it, callbacks included.
 */
#ifndef ONSALE_ADMIN_SIM_LANES_H
#define ONSALE_ADMIN_SIM_LANES_H

#include "common/httpc.h"

#include <stddef.h>
#include <stdint.h>

/* Requests before a fan's join is answered (the page load, the challenge,
 * the join) arrive on SIM_LANE_ARRIVE; later ones are the fan's own
 * (polls, event refreshes, a checkout or delete) on SIM_LANE_FAN. */
enum { SIM_LANE_ARRIVE, SIM_LANE_FAN, SIM_LANES };

/* Hands one request to the pool: ons_httpc_request's contract (0, or an
 * error and cb is never called). */
typedef int (*sim_lanes_send_fn)(void *ctx, const ons_httpc_req *req, ons_httpc_cb cb, void *arg);

typedef struct sim_req sim_req;

typedef struct sim_lane {
    sim_req *head[2], *tail[2];   /* [1]: urgent */
    size_t queued, inflight, cap; /* cap: the lane's connections */
    /* what the lane's requests waited in the simulator (queued to sent) */
    long long sent, max_queued;
    double wait_sum_ms, wait_max_ms;
} sim_lane;

typedef struct sim_lanes {
    sim_lane lane[SIM_LANES];
    sim_req *sent; /* in flight, every lane */
    sim_lanes_send_fn send;
    void *send_ctx;
} sim_lanes;

/* Sets up empty lanes of caps[i] connections each (at least 1) over send. */
void sim_lanes_init(sim_lanes *ls, const size_t caps[SIM_LANES], sim_lanes_send_fn send,
                    void *send_ctx);
/* Queues a copy of req on lane, behind that lane's other requests (urgent:
 * behind its other urgent ones, before the rest), and sends what the
 * lanes' free connections can take. cb runs exactly once: from the pool's
 * poll, or (status 0) when the pool refuses a send, which may be within
 * this call or a later one (a caller's cb must not assume it runs after
 * this returns). 0 or ONS_ENOMEM. */
int sim_lanes_request(sim_lanes *ls, int lane, int urgent, const ons_httpc_req *req,
                      ons_httpc_cb cb, void *arg);
/* Requests queued or in flight, every lane. */
size_t sim_lanes_pending(const sim_lanes *ls);
/* Frees every request queued or in flight, running no callback (the pool
 * is freed next and runs none either). */
void sim_lanes_clear(sim_lanes *ls);

#endif
