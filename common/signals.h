/*
 * signals.h - how a long-running process hears it should stop: SIGTERM and
 * SIGINT call the process's own handler (which sets its stop flag; the
 * main loop notices), and SIGPIPE is ignored, so a peer that went away
 * shows as EPIPE on the write instead of killing the process.
 * A process whose loops (and threads) only need to see the stop takes the
 * handler that sets ons_stop_requested (ons_signals_stop_flag_on).
 * A server whose main thread only waits to be stopped blocks the two
 * signals instead and takes them synchronously (ons_signals_block_stop,
 * ons_signals_wait_stop).
 */
#ifndef ONSALE_COMMON_SIGNALS_H
#define ONSALE_COMMON_SIGNALS_H

#include <pthread.h>
#include <signal.h>
#include <string.h>

/* Installs on_stop for SIGTERM and SIGINT and ignores SIGPIPE. on_stop
 * runs in signal context: it may only set a volatile sig_atomic_t. */
static inline void ons_signals_stop_on(void (*on_stop)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Nonzero once SIGTERM or SIGINT arrived after ons_signals_stop_flag_on():
 * the stop its loops and threads poll for. */
extern volatile sig_atomic_t ons_stop_requested;

/* ons_signals_stop_on() with the handler that sets ons_stop_requested. */
void ons_signals_stop_flag_on(void);

/* Blocks SIGTERM and SIGINT in the calling thread (set: the two), so that
 * every thread it starts afterwards inherits the mask and only
 * ons_signals_wait_stop() takes them; ignores SIGPIPE. Call before any
 * thread is started. */
static inline void ons_signals_block_stop(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Waits until one of set's signals (ons_signals_block_stop) arrives and
 * returns it. */
static inline int ons_signals_wait_stop(const sigset_t *set)
{
    int sig = 0;
    sigwait(set, &sig);
    return sig;
}

#endif
