/*
 * signals.h - how a long-running process hears it should stop: SIGTERM and
 * SIGINT call the process's own handler (which sets its stop flag; the
 * main loop notices), and SIGPIPE is ignored, so a peer that went away
 * shows as EPIPE on the write instead of killing the process.
 * Header-only.
 */
#ifndef ONSALE_COMMON_SIGNALS_H
#define ONSALE_COMMON_SIGNALS_H

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

#endif
