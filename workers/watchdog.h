/*
 * watchdog.h - gives a hung worker's partitions up: a turn of the owner's
 * loop (a batch: its poll, its PostgreSQL transaction, its projection; a
 * claim in a rebalance) that lasts past a bound means a dependency hangs,
 * and the worker then exits, so that the group moves its partitions to a
 * healthy worker (docs/pipeline.md "A worker whose PostgreSQL hangs").
 *
 * Why exit: the consumer thread is the one blocked (in libpq, which waits
 * for a stalled server's answer with no timeout of its own: the server's
 * kernel still answers TCP keepalives, and statement_timeout is the
 * server's), and the consumer must not be closed from another thread while
 * its own may wake up in it. Exiting is a kill -9: nothing committed is
 * lost, a transaction in flight commits or rolls back whole in
 * PostgreSQL, and the next owner's claim (a new epoch) fences anything the
 * dead one sent (docs/pipeline.md "Two lanes", test_worker_crash.py).
 */
#ifndef ONSALE_WORKERS_WATCHDOG_H
#define ONSALE_WORKERS_WATCHDOG_H

#include <stdint.h>

/* The exit status of a worker the watchdog stopped. */
#define WK_WATCHDOG_EXIT 3

/* Starts the watchdog thread: once a turn has lasted longer than
 * stuck_ms, it logs why and ends the process (WK_WATCHDOG_EXIT), unless a
 * stop was requested (the shutdown is not its business). stuck_ms 0: no
 * watchdog. Returns 0 or an error (no thread). */
int wk_watchdog_start(int64_t stuck_ms);

/* A turn of the loop begins now (called by the consumer thread). */
void wk_watchdog_turn(void);

#endif
