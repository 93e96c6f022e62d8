/*
 * monitor.h - the background checks behind /readyz and /v1/admin/queues.
 *
 * One thread, every monitor.interval_ms: Redis PING, PostgreSQL SELECT 1,
 * Kafka topic metadata, and each partition's high watermark (librdkafka's
 * watermark query may ignore its timeout, so it never runs on an nng or job
 * thread). Handlers read the last results from atomics and never wait.
 */
#ifndef ONSALE_INGRESS_MONITOR_H
#define ONSALE_INGRESS_MONITOR_H

#include <stdint.h>

#include "queue/producer.h"
#include "queue/status.h"

typedef struct ing_monitor ing_monitor;

int ing_monitor_new(q_producer *producer, int partitions, const q_status_opts *redis,
                    const char *pg_dsn, int interval_ms, ing_monitor **out);
/* Stops the checking thread (it reads the producer, so this comes before
 * the producer is closed); the last health and watermarks stay readable by
 * job threads until ing_monitor_free, which comes after they stopped.
 * Idempotent. */
void ing_monitor_stop(ing_monitor *m);
/* Stops if needed and frees. NULL is fine. */
void ing_monitor_free(ing_monitor *m);

typedef struct ing_health {
    int redis_ok, pg_ok, kafka_ok;
    int64_t age_ms;        /* since the last completed check round; -1 before the first */
    int64_t kafka_down_ms; /* since the first failed Kafka check of a running streak; 0: up */
} ing_health;

void ing_monitor_health(ing_monitor *m, ing_health *out);
/* High watermark of the partition in lane (enum q_topic: next offset to be
 * written), -1 unknown. */
int64_t ing_monitor_high(ing_monitor *m, int lane, int32_t partition);

/* The topic's partition count as the brokers last told it, when it differs
 * from the count this node works with (kafka.partitions set by hand to
 * another, or the topics grown since); else 0. */
int ing_monitor_partitions_differ(ing_monitor *m);
/* 1 when the brokers last said the intents topic or its control lane has
 * fewer partitions than this node works with, or the two differ (not
 * co-partitioned): records homed on a missing partition cannot be sent and
 * the watermarks are not all known. Grown topics are not short. */
int ing_monitor_partitions_short(ing_monitor *m);
/* The intents topic's partition count as the brokers last told it; 0 before
 * the first answer. */
int ing_monitor_topic_partitions(ing_monitor *m);
/* The smaller of the intents topic's and its control lane's counts as the
 * brokers last told them (every partition below it exists in both); 0
 * while either is not known (the last round could not read it). */
int ing_monitor_home_partitions(ing_monitor *m);

/* Rounds whose watermarks are kept for ing_monitor_high_since: at the
 * default monitor.interval_ms, the last four minutes and more. */
#define ING_MONITOR_ROUNDS 256
/* The high watermark of the partition in lane as the first kept round that
 * STARTED after since_wall_ms (ons_wall_ms), and more than quiet_ms after
 * the last round that failed to read it, found it; -1 when no such round
 * has completed yet. The quiet time after a failure: a broker that hung
 * (its reads failed) appends the requests it held when it wakes, maybe
 * after the first read over a new connection. */
int64_t ing_monitor_high_since(ing_monitor *m, int lane, int32_t partition, int64_t since_wall_ms,
                               int64_t quiet_ms);

#endif
