/*
 * clock.h - the clocks every Onsale process reads. Monotonic time for
 * intervals, timeouts and latencies; wall time (ms since the epoch) only
 * for what is stored or shown (sent_ms, expires_at). Thread-safe.
 */
#ifndef ONSALE_COMMON_CLOCK_H
#define ONSALE_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t ons_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t ons_mono_ms(void)
{
    return ons_mono_ns() / 1000000;
}

static inline double ons_mono_s(void)
{
    return (double)ons_mono_ns() / 1e9;
}

static inline int64_t ons_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
