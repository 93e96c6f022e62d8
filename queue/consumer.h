/*
 * consumer.h - a thin librdkafka consumer-group member for the "intents"
 * topic and its co-partitioned control topic, as a partition owner needs it
 * (docs/pipeline.md "Two lanes").
 *
 * The group assignment is made on the intents topic alone; the owner of
 * intents partition p is handed control partition p too, by a second,
 * assign-only librdkafka instance (group "<group>.control", never joined:
 * it only takes advisory commits) that follows every assignment and
 * revocation of the group member. Two instances, because one consumer queue
 * would hand control records out behind every intent already prefetched
 * (queued.max.messages.kbytes of them); with two, q_consumer_poll takes a
 * control record whenever one is waiting, before the next intent.
 *
 * Settings fixed by the contract: the eager `range` assignor, auto commit
 * off (the committed offset is advisory; the truth is
 * partition_owner.next_offset in PostgreSQL), auto.offset.reset=earliest.
 * Rebalances are handed to the caller: on_assign receives the partitions and
 * fills in where each should start (after claiming it), or -1 to keep it
 * paused until the caller seeks it; on_revoke receives the partitions being
 * taken away. Both run on the polling thread, inside q_consumer_poll or
 * q_consumer_close, so the caller needs no locks. Messages come one at a time
 * from rd_kafka_consumer_poll (never the batch APIs).
 *
 * Not thread-safe: one thread polls, seeks, commits and closes.
 */
#ifndef ONSALE_QUEUE_CONSUMER_H
#define ONSALE_QUEUE_CONSUMER_H

#include "queue/kconf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct q_consumer q_consumer;

/* The lane a record came from: enum q_topic of queue/msg.h. */
typedef struct q_consumer_opts {
    const char *brokers;
    q_ksec sec; /* TLS to the brokers */
    const char *topic;
    const char *control_topic; /* NULL: no control lane */
    const char *group;
    const char *client_id;    /* shows in the group's member list; may be NULL */
    int session_timeout_ms;   /* session.timeout.ms (>= the broker's minimum, 6000) */
    int metadata_refresh_ms;  /* topic.metadata.refresh.interval.ms; 0: librdkafka's (5 min) */
    int max_poll_interval_ms; /* max.poll.interval.ms */
    int fetch_wait_ms;        /* fetch.wait.max.ms: how long an empty fetch is held */
    int queued_max_kbytes;    /* queued.max.messages.kbytes: prefetch memory bound */
    /* start[i] / cstart[i] := first offset to consume from parts[i] of the
     * intents / control topic, or -1 (that lane of the partition paused). */
    void (*on_assign)(void *arg, const int32_t *parts, int64_t *start, int64_t *cstart, size_t n);
    void (*on_revoke)(void *arg, const int32_t *parts, size_t n);
    void *arg;
} q_consumer_opts;

/* One consumed record. value/key point into the record and stay valid until
 * q_record_release. */
typedef struct q_record {
    int lane; /* Q_TOPIC_INTENTS or Q_TOPIC_CONTROL */
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /* -1 when the broker gave none */
    const void *key, *value;
    size_t key_len, len;
    void *impl;
} q_record;

/* Copies the value of rec's last header called name into out (NUL-ended,
 * truncated to cap - 1) and returns out, or returns NULL when rec has no
 * such header. */
const char *q_record_header(const q_record *rec, const char *name, char *out, size_t cap);

/* Creates the consumer and subscribes to the topic. *out is owned by the
 * caller (q_consumer_free). Returns 0, ONS_EINVAL (bad option), ONS_ENOMEM
 * or ONS_EKAFKA. */
int q_consumer_new(const q_consumer_opts *o, q_consumer **out);

/* Waits up to timeout_ms for one record, serving rebalance callbacks. A
 * waiting control record is always returned before the next intent; while
 * waiting, the control lane is looked at every 5 ms at the latest.
 * Returns 0 (*rec filled: release it), ONS_ETIMEDOUT (nothing) or ONS_EKAFKA
 * (a consumer error, already logged; keep polling). */
int q_consumer_poll(q_consumer *c, int timeout_ms, q_record *rec);
void q_record_release(q_record *rec);

/* Repositions one lane of an assigned partition to offset and resumes it if
 * paused. Returns 0 or ONS_EKAFKA. */
int q_consumer_seek(q_consumer *c, int lane, int32_t partition, int64_t offset);

/* Stops fetching both lanes of an assigned partition until the next seek of
 * each. 0 or ONS_EKAFKA. */
int q_consumer_pause(q_consumer *c, int32_t partition);

/* Commits next_offset of one lane of the partition asynchronously
 * (advisory, for lag views). Returns 0 or ONS_EKAFKA. */
int q_consumer_commit_async(q_consumer *c, int lane, int32_t partition, int64_t next_offset);

/* One lane's high watermark as last seen by fetches (cached, never blocks).
 * Returns 0 or ONS_ENOTFOUND (not known yet). */
int q_consumer_high_watermark(q_consumer *c, int lane, int32_t partition, int64_t *high);

/* Leaves the group cleanly (on_revoke runs). Idempotent. 0 or ONS_EKAFKA. */
int q_consumer_close(q_consumer *c);

/* Closes if needed and frees. NULL is fine. */
void q_consumer_free(q_consumer *c);

#endif
