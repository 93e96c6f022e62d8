/*
 * watchdog.h - gives a hung worker's partitions up: a turn of the owner's
 * loop (a batch: its poll, its PostgreSQL transaction, its projection; a
 * claim in a rebalance) that lasts past a bound means a dependency hangs,
 * and the worker then starts itself again in place (the same pid, the same
 * arguments, its log on the same descriptors), so that the group moves its
 * partitions to a healthy worker (docs/pipeline.md "A worker whose
 * PostgreSQL hangs").
 *
 * Why a new image, not a recovery in place: the consumer thread is the one
 * blocked (in libpq, which waits for a stalled server's answer with no
 * timeout of its own: the server's kernel still answers TCP keepalives,
 * and statement_timeout is the server's), and the consumer must not be
 * closed from another thread while its own may wake up in it. Replacing
 * the image is a kill -9 as far as the data go: nothing committed is lost,
 * a transaction in flight commits or rolls back whole in PostgreSQL, and
 * the next owner's claim (a new epoch) fences anything the old image sent
 * (docs/pipeline.md "Two lanes", test_worker_crash.py). Why not exit: with
 * no supervisor to start it again (the local stack has none), a PostgreSQL
 * that hangs past the bound and then comes back would find no worker left.
 * The new image waits for PostgreSQL to answer before it joins the group
 * (wk_watchdog_restarted), so it takes no partition it cannot serve.
 */
#ifndef ONSALE_WORKERS_WATCHDOG_H
#define ONSALE_WORKERS_WATCHDOG_H

#include <stdint.h>

/* The exit status of a worker the watchdog stopped because it could not
 * start itself again (the exec failed). */
#define WK_WATCHDOG_EXIT 3

/* Starts the watchdog thread: once a turn has lasted longer than
 * stuck_ms, it logs why and replaces the process with a new run of argv
 * (argv[0] is only its name: the program is /proc/self/exe), unless a stop
 * was requested (the shutdown is not its business). argv must live as long
 * as the process (main's). stuck_ms 0: no watchdog. Returns 0 or an error
 * (no thread). */
int wk_watchdog_start(int64_t stuck_ms, char *const *argv);

/* A turn of the loop begins now (called by the consumer thread). */
void wk_watchdog_turn(void);

/* How many times this process was started again by the watchdog (0: a
 * first start); read from the environment the restart passes on. */
int wk_watchdog_restarted(void);

#endif
