/*
 * signals.c - the process's stop flag (common/signals.h).
 */
#include "common/signals.h"

volatile sig_atomic_t ons_stop_requested;

static void request_stop(int sig)
{
    (void)sig;
    ons_stop_requested = 1;
}

void ons_signals_stop_flag_on(void)
{
    ons_signals_stop_on(request_stop);
}
