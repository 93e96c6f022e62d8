/* timer.c - the delay thread of the gateway simulator; see timer.h. */
#include "common/clock.h"
#include "admin/gateway/timer.h"
#include "common/err.h"
#include "common/heap.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

typedef struct entry {
    int64_t due_ns;
    uint64_t seq; /* insertion order: ties run first-in first-out */
    gw_timer_fn fn;
    void *arg;
} entry;

struct gw_timer {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* signalled on a new earliest entry and on stop */
    pthread_t thread;
    int started;
    int stopping;
    ons_heap heap; /* of entry, at most cap; the earliest first */
    uint64_t next_seq;
};

static int before(const void *pa, const void *pb)
{
    const entry *a = pa, *b = pb;
    return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

/* The thread: waits for the earliest entry to fall due, runs it unlocked.
 * On stop it drains the heap, running each entry early. */
static void *run(void *arg)
{
    gw_timer *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        const entry *first = ons_heap_at(&t->heap, 0);
        if (t->stopping && !first)
            break;
        if (!first) {
            pthread_cond_wait(&t->cv, &t->mu);
            continue;
        }
        int64_t now = ons_mono_ns();
        if (!t->stopping && first->due_ns > now) {
            int64_t due = first->due_ns;
            struct timespec ts = {(time_t)(due / 1000000000), (long)(due % 1000000000)};
            pthread_cond_timedwait(&t->cv, &t->mu, &ts);
            continue;
        }
        int early = t->stopping && first->due_ns > now;
        entry e;
        ons_heap_remove(&t->heap, 0, &e);
        pthread_mutex_unlock(&t->mu);
        e.fn(e.arg, early);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int gw_timer_new(size_t cap, gw_timer **out)
{
    int rc = ONS_ENOMEM;
    pthread_condattr_t ca;
    gw_timer *t = calloc(1, sizeof *t);
    if (!t)
        return ONS_ENOMEM;
    pthread_mutex_init(&t->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cv, &ca);
    pthread_condattr_destroy(&ca);
    cap = cap ? cap : 1;
    if (ons_heap_init(&t->heap, sizeof(entry), cap, cap, before, NULL, NULL))
        goto fail;
    if (pthread_create(&t->thread, NULL, run, t) != 0) {
        rc = ONS_EIO;
        goto fail;
    }
    t->started = 1;
    *out = t;
    return 0;
fail:
    gw_timer_free(t);
    return rc;
}

int gw_timer_add(gw_timer *t, int64_t delay_ms, gw_timer_fn fn, void *arg)
{
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    if (t->stopping) {
        rc = ONS_ECLOSED;
    } else {
        entry e = {ons_mono_ns() + (delay_ms > 0 ? delay_ms : 0) * 1000000, t->next_seq++, fn, arg};
        rc = ons_heap_push(&t->heap, &e);
        const entry *first = ons_heap_at(&t->heap, 0);
        if (rc == 0 && first->seq == e.seq)
            pthread_cond_signal(&t->cv); /* a new earliest entry */
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

size_t gw_timer_pending(gw_timer *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = ons_heap_count(&t->heap);
    pthread_mutex_unlock(&t->mu);
    return n;
}

void gw_timer_free(gw_timer *t)
{
    if (!t)
        return;
    if (t->started) {
        pthread_mutex_lock(&t->mu);
        t->stopping = 1;
        pthread_cond_signal(&t->cv);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->thread, NULL);
    }
    assert(ons_heap_count(&t->heap) == 0);
    ons_heap_fini(&t->heap);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
