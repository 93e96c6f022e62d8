/*
 * timer.h - one thread that runs callbacks after a delay.
 *
 * The gateway simulator delays replies (latency) and withholds them (hangs)
 * without tying up nng's few task threads: a handler hands its request to
 * this thread with a due time and returns at once. Entries sit in a binary
 * min-heap bounded by a capacity (ONS_EFULL beyond it), so a flood of slow
 * requests costs memory we chose, not memory we discover.
 *
 * Callbacks run on the timer thread, one at a time, in due order (ties in
 * insertion order). They must not block and must not call gw_timer_free.
 */
#ifndef ONSALE_ADMIN_GATEWAY_TIMER_H
#define ONSALE_ADMIN_GATEWAY_TIMER_H

#include <stddef.h>
#include <stdint.h>

typedef struct gw_timer gw_timer;

/* fn(arg, early): early is 1 when the timer is shutting down and runs the
 * entry before its due time; the callback must still release arg. */
typedef void (*gw_timer_fn)(void *arg, int early);

/* Starts the thread. cap bounds the pending entries. Returns 0, ONS_ENOMEM
 * or ONS_EIO (thread not started). */
int gw_timer_new(size_t cap, gw_timer **out);

/* Runs fn(arg, 0) on the timer thread after delay_ms (>= 0). Returns 0,
 * ONS_EFULL (cap pending entries) or ONS_ECLOSED (stopping); on error fn is
 * not called and arg stays the caller's. Any thread. */
int gw_timer_add(gw_timer *t, int64_t delay_ms, gw_timer_fn fn, void *arg);

/* Number of entries waiting. Any thread. */
size_t gw_timer_pending(gw_timer *t);

/* Stops the thread, first running every remaining entry with early = 1
 * (entries those callbacks add are refused with ONS_ECLOSED), then frees t.
 * NULL is a no-op. Not from a callback. */
void gw_timer_free(gw_timer *t);

#endif
