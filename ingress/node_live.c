/* node_live.c - this process's liveness key; see node_live.h. */
#include "ingress/node_live.h"
#include "common/err.h"
#include "common/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

struct ing_node_live {
    q_status *st; /* the thread's own connection */
    int ttl_ms;
    char token[17];
    atomic_int stop;
    pthread_t thread;
    int started;
};

/* Sets the key; says once when it starts failing and when it recovers. */
static void beat(ing_node_live *n, int *failing)
{
    int rc = q_status_node_beat(n->st, n->token, n->ttl_ms);
    if (rc && !*failing)
        ons_log_warn("node liveness key not set (redis down): retries may take over this "
                     "node's joins in flight");
    else if (!rc && *failing)
        ons_log_info("node liveness key set again");
    *failing = rc != 0;
}

/* Beats every third of the TTL (one missed beat leaves the key alive),
 * sleeping in slices of at most 100 ms so a stop is prompt. */
static void *live_main(void *arg)
{
    ing_node_live *n = arg;
    int failing = 0, slice_ms = 100, period_ms = n->ttl_ms / 3;
    int slept = period_ms;
    while (!atomic_load(&n->stop)) {
        if (slept >= period_ms) {
            beat(n, &failing);
            slept = 0;
        }
        struct timespec ts = {0, (long)slice_ms * 1000000L};
        nanosleep(&ts, NULL);
        slept += slice_ms;
    }
    return NULL;
}

int ing_node_live_new(const q_status_opts *redis, int ttl_ms, ing_node_live **out)
{
    ing_node_live *n = calloc(1, sizeof *n);
    if (!n)
        return ONS_ENOMEM;
    n->ttl_ms = ttl_ms;
    unsigned char raw[8];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        free(n);
        return ONS_EIO;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(n->token + 2 * i, 3, "%02x", raw[i]);
    if (q_status_new(redis, &n->st)) {
        free(n);
        return ONS_ENOMEM;
    }
    if (pthread_create(&n->thread, NULL, live_main, n)) {
        q_status_free(n->st);
        free(n);
        return ONS_ENOMEM;
    }
    n->started = 1;
    ons_log_info("node liveness token %s (idem.node_ttl_ms %d)", n->token, ttl_ms);
    *out = n;
    return 0;
}

const char *ing_node_live_token(const ing_node_live *n)
{
    return n ? n->token : "";
}

void ing_node_live_free(ing_node_live *n)
{
    if (!n)
        return;
    atomic_store(&n->stop, 1);
    if (n->started)
        pthread_join(n->thread, NULL);
    q_status_free(n->st);
    free(n);
}
