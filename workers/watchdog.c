/* watchdog.c - see watchdog.h. */
#include "workers/watchdog.h"
#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"
#include "common/signals.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* The variable a restarted image finds its restart count in. */
#define RESTARTS_ENV "ONSALE_WORKER_RESTARTS"

/* Statics, not the worker's struct: the thread is never joined (it ends
 * with the process) and must not read memory main() gives back. */
static _Atomic int64_t turn_at_ms; /* ons_mono_ms() when the turn began; 0: none yet */
static int64_t limit_ms;
static char *const *start_argv;

void wk_watchdog_turn(void)
{
    atomic_store_explicit(&turn_at_ms, ons_mono_ms(), memory_order_relaxed);
}

/* Marks every descriptor past stderr close-on-exec, so the new image
 * finds its ports and files free (the metrics listener, libpq's and
 * librdkafka's sockets) and keeps only its log on 0-2. */
static void cloexec_all(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return;
    int self = dirfd(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        int fd = atoi(e->d_name);
        if (fd > 2 && fd != self)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    closedir(d);
}

/* Replaces the process with a new run of its own program and arguments,
 * the restart count one more in the environment. Returns only when the
 * exec failed. Runs on the watchdog thread while the consumer's is
 * blocked: it touches no shared state but the environment it copies. */
static void restart_self(void)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 2, sizeof *env);
    static char count[64];
    if (!env)
        return;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], RESTARTS_ENV "=", sizeof RESTARTS_ENV) != 0)
            env[k++] = environ[i];
    snprintf(count, sizeof count, RESTARTS_ENV "=%d", wk_watchdog_restarted() + 1);
    env[k] = count;
    cloexec_all();
    execve("/proc/self/exe", start_argv, env);
    free(env);
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
        ons_log_error("a turn of the loop has lasted %lld ms (worker.stuck_restart_ms %lld): a "
                      "dependency hangs (PostgreSQL?); starting again so that the group moves "
                      "this worker's partitions",
                      (long long)(now - at), (long long)limit_ms);
        restart_self();
        ons_log_error("could not start again: exiting");
        _exit(WK_WATCHDOG_EXIT);
    }
    return NULL;
}

int wk_watchdog_restarted(void)
{
    const char *v = getenv(RESTARTS_ENV);
    return v ? atoi(v) : 0;
}

int wk_watchdog_start(int64_t stuck_ms, char *const *argv)
{
    if (stuck_ms <= 0)
        return 0;
    limit_ms = stuck_ms;
    start_argv = argv;
    pthread_t t;
    if (pthread_create(&t, NULL, watch, NULL) != 0)
        return ONS_ENOMEM;
    pthread_detach(t);
    return 0;
}
