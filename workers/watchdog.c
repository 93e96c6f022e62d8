/* watchdog.c - see watchdog.h. */
#include "workers/watchdog.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/signals.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

/* Statics, not the worker's struct: the thread is never joined (it ends
 * with the process) and must not read memory main() gives back. */
static _Atomic int64_t turn_at_ms; /* ons_mono_ms() when the turn began; 0: none yet */
static int64_t limit_ms;

void wk_watchdog_turn(void)
{
    atomic_store_explicit(&turn_at_ms, ons_mono_ms(), memory_order_relaxed);
}

static void *watch(void *arg)
{
    (void)arg;
    int64_t step = limit_ms / 4 < 200 ? (limit_ms / 4 > 0 ? limit_ms / 4 : 1) : 200;
    struct timespec ts = {step / 1000, (long)(step % 1000) * 1000000};
    for (;;) {
        nanosleep(&ts, NULL);
        int64_t at = atomic_load_explicit(&turn_at_ms, memory_order_relaxed);
        int64_t now = ons_mono_ms();
        if (at == 0 || ons_stop_requested || now - at <= limit_ms)
            continue;
        ons_log_error("a turn of the loop has lasted %lld ms (worker.stuck_exit_ms %lld): a "
                      "dependency hangs (PostgreSQL?); exiting so that the group moves this "
                      "worker's partitions",
                      (long long)(now - at), (long long)limit_ms);
        _exit(WK_WATCHDOG_EXIT);
    }
    return NULL;
}

int wk_watchdog_start(int64_t stuck_ms)
{
    if (stuck_ms <= 0)
        return 0;
    limit_ms = stuck_ms;
    pthread_t t;
    if (pthread_create(&t, NULL, watch, NULL) != 0)
        return ONS_ENOMEM;
    pthread_detach(t);
    return 0;
}
