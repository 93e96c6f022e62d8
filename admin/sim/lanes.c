/* lanes.c - the simulator's request lanes; see lanes.h. */
#include "admin/sim/lanes.h"
#include "common/clock.h"
#include "common/err.h"

#include <stdlib.h>
#include <string.h>

/* One request, queued or in flight, with its strings in the same
 * allocation, its token too: a fan may end (and free its token) while
 * another of its requests waits in a lane, e.g. an order poll queued
 * behind the intent poll that said purchased (method points to a static
 * string). In flight it is the pool's callback argument: the answer finds
 * its lane through it. */
struct sim_req {
    sim_req *next, *prev; /* its lane's queue; in flight, ls->sent */
    sim_lanes *ls;
    ons_httpc_cb cb;
    void *arg;
    uint8_t lane, urgent;
    double queued_ms; /* when it was queued (CLOCK_MONOTONIC) */
    const char *method;
    char *token, *path, *idem, *header, *body;
};

/* Milliseconds on ons_mono_ns's clock, fractional (wait statistics). */
static double mono_ms(void)
{
    return (double)ons_mono_ns() / 1e6;
}

void sim_lanes_init(sim_lanes *ls, const size_t caps[SIM_LANES], sim_lanes_send_fn send,
                    void *send_ctx)
{
    memset(ls, 0, sizeof *ls);
    for (int l = 0; l < SIM_LANES; l++)
        ls->lane[l].cap = caps[l] ? caps[l] : 1;
    ls->send = send;
    ls->send_ctx = send_ctx;
}

static void pump(sim_lanes *ls);

static void unlink_sent(sim_lanes *ls, sim_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        ls->sent = r->next;
    if (r->next)
        r->next->prev = r->prev;
}

/* The pool answered r (or refused it): its connection is free again. */
static void answered(void *arg, const ons_httpc_resp *resp)
{
    sim_req *r = arg;
    sim_lanes *ls = r->ls;
    ls->lane[r->lane].inflight--;
    unlink_sent(ls, r);
    r->cb(r->arg, resp);
    free(r);
    pump(ls);
}

/* Hands r to the pool (r in flight); a refusal is answered as a transport
 * error (status 0: the fan retries as after a lost connection). */
static void send_one(sim_lanes *ls, sim_req *r)
{
    const char *headers[] = {r->header, NULL};
    ons_httpc_req req = {.method = r->method,
                         .path = r->path,
                         .token = r->token,
                         .idem_key = r->idem,
                         .headers = r->header ? headers : NULL,
                         .body = r->body};
    sim_lane *ln = &ls->lane[r->lane];
    double waited = mono_ms() - r->queued_ms;
    ln->inflight++;
    ln->sent++;
    ln->wait_sum_ms += waited;
    if (waited > ln->wait_max_ms)
        ln->wait_max_ms = waited;
    r->prev = NULL;
    if ((r->next = ls->sent) != NULL)
        ls->sent->prev = r;
    ls->sent = r;
    if (ls->send(ls->send_ctx, &req, answered, r) != 0) {
        ons_httpc_resp fail = {.status = 0, .retry_after_s = -1, .body = ""};
        answered(r, &fail);
    }
}

/* Sends what each lane's free connections can take, urgent requests
 * first. */
static void pump(sim_lanes *ls)
{
    for (int l = 0; l < SIM_LANES; l++) {
        sim_lane *ln = &ls->lane[l];
        while (ln->inflight < ln->cap) {
            int q = ln->head[1] ? 1 : 0;
            sim_req *r = ln->head[q];
            if (!r)
                break;
            if (!(ln->head[q] = r->next))
                ln->tail[q] = NULL;
            ln->queued--;
            send_one(ls, r);
        }
    }
}

static char *put_str(char **at, const char *v)
{
    if (!v)
        return NULL;
    size_t n = strlen(v) + 1;
    char *out = memcpy(*at, v, n);
    *at += n;
    return out;
}

int sim_lanes_request(sim_lanes *ls, int lane, int urgent, const ons_httpc_req *q, ons_httpc_cb cb,
                      void *arg)
{
    const char *header = q->headers ? q->headers[0] : NULL;
    const char *strs[] = {q->token, q->path, q->idem_key, header, q->body};
    size_t need = sizeof(sim_req);
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        need += strs[i] ? strlen(strs[i]) + 1 : 0;
    sim_req *r = malloc(need);
    if (!r)
        return ONS_ENOMEM;
    char *at = (char *)(r + 1);
    *r = (sim_req){.ls = ls,
                   .cb = cb,
                   .arg = arg,
                   .lane = (uint8_t)lane,
                   .urgent = (uint8_t)(urgent != 0),
                   .queued_ms = mono_ms(),
                   .method = q->method};
    r->token = put_str(&at, q->token);
    r->path = put_str(&at, q->path);
    r->idem = put_str(&at, q->idem_key);
    r->header = put_str(&at, header);
    r->body = put_str(&at, q->body);
    sim_lane *ln = &ls->lane[lane];
    int k = r->urgent;
    if (ln->tail[k])
        ln->tail[k]->next = r;
    else
        ln->head[k] = r;
    ln->tail[k] = r;
    if (++ln->queued > (size_t)ln->max_queued)
        ln->max_queued = (long long)ln->queued;
    pump(ls);
    return 0;
}

size_t sim_lanes_pending(const sim_lanes *ls)
{
    size_t n = 0;
    for (int l = 0; l < SIM_LANES; l++)
        n += ls->lane[l].queued + ls->lane[l].inflight;
    return n;
}

void sim_lanes_clear(sim_lanes *ls)
{
    while (ls->sent) {
        sim_req *r = ls->sent;
        ls->sent = r->next;
        free(r);
    }
    for (int l = 0; l < SIM_LANES; l++) {
        for (int k = 0; k < 2; k++)
            while (ls->lane[l].head[k]) {
                sim_req *r = ls->lane[l].head[k];
                ls->lane[l].head[k] = r->next;
                free(r);
            }
        ls->lane[l].head[0] = ls->lane[l].head[1] = ls->lane[l].tail[0] = ls->lane[l].tail[1] =
            NULL;
        ls->lane[l].queued = ls->lane[l].inflight = 0;
    }
}
