/*
 * producer.h - the idempotent Kafka producer every record to the "intents"
 * topic goes through (docs/pipeline.md).
 *
 * Settings are fixed by the pipeline contract: enable.idempotence=true,
 * acks=all, key = decimal event_id, and every record of one event sent to
 * the event's home partition (q_producer_send_at; docs/scaling.md "Growing
 * the topics"), so all records of one event land in one partition in send
 * order however the topics grow. The partitioner (murmur2_random) places
 * only records sent without a partition. Sends are asynchronous:
 * q_producer_send_at() queues the record and returns at once; its completion
 * callback runs exactly once, later, on the producer's own poll thread, with
 * the partition and offset from the delivery report or an error. A 202 to a
 * fan may only be built from a successful completion.
 *
 * The number of records in flight (queued but not yet reported) is bounded:
 * past the bound q_producer_send_at() refuses with ONS_EFULL instead of queueing.
 * On a fatal error (the idempotent producer's sequence state is lost) the
 * producer instance is rebuilt on the poll thread; records queued at that
 * moment complete as not persisted, records in flight (sent, unanswered) as
 * ONS_EUNKNOWN, and later sends go to the new instance.
 *
 * Thread-safe: send/watermarks/partitions may be called from any thread.
 */
#ifndef ONSALE_QUEUE_PRODUCER_H
#define ONSALE_QUEUE_PRODUCER_H

#include "queue/kconf.h"

#include <stddef.h>
#include <stdint.h>

typedef struct q_producer q_producer;

typedef struct q_producer_opts {
    const char *brokers;       /* bootstrap.servers */
    const char *topic;         /* "intents" */
    int linger_ms;             /* batching delay (linger.ms) */
    int delivery_timeout_ms;   /* message.timeout.ms: a record not acked by then fails */
    int max_inflight;          /* records queued and not yet reported */
    const char *control_topic; /* the control lane; NULL or "": "<topic>.control" (msg.h) */
    int request_timeout_ms;    /* request.timeout.ms and socket.timeout.ms; 0: librdkafka's */
    /* 1: a send to a partition the cached metadata lacks reads the topic's
     * metadata on the sending thread and retries (q_producer_send_at). For
     * a process with nothing else that refreshes it (the payments relay);
     * ingress's monitor reads the metadata every round, and a join's
     * claimer must not wait on the brokers. */
    int refresh_unknown;
    q_ksec sec; /* TLS to the brokers (copied) */
} q_producer_opts;

/* Completion of one send, on the producer's poll thread. err is
 *   0: the record is in the log at partition/offset;
 *   ONS_EUNKNOWN: it may or may not be in the log (sent, but no answer:
 *     a timeout after transmission, or purged in flight when the producer
 *     was rebuilt or closed); partition is where it was sent, or -1, and
 *     offset is -1. A retry must look for it before sending it again;
 *   ONS_ETIMEDOUT / ONS_EKAFKA / ONS_ECLOSED: it is definitely not in the
 *     log (librdkafka's NOT_PERSISTED); partition and offset are -1.
 * Must not block for long: it delays every other completion. */
typedef void (*q_produce_cb)(void *arg, int err, int32_t partition, int64_t offset);

/* Creates the producer and starts its poll thread. *out is owned by the
 * caller (q_producer_free). Brokers need not be reachable yet. Returns 0,
 * ONS_EINVAL (bad option) or ONS_ENOMEM / ONS_EKAFKA. */
int q_producer_new(const q_producer_opts *o, q_producer **out);

/* Stops taking sends (they return ONS_ECLOSED from now on), flushes for at
 * most flush_ms, fails whatever is still queued (ONS_ECLOSED) or in flight
 * (ONS_EUNKNOWN), and stops the poll thread: when it returns, every
 * completion has run. p stays valid, so threads that may still call
 * q_producer_send_at get ONS_ECLOSED instead of using freed memory; free it
 * with q_producer_free once they stopped. Idempotent. */
void q_producer_close(q_producer *p, int flush_ms);

/* q_producer_close (if not done yet), then frees. No other thread may use
 * p any more. */
void q_producer_free(q_producer *p, int flush_ms);

/* The outcome of a delivery report, from librdkafka's rd_kafka_resp_err_t
 * kafka_err and rd_kafka_msg_status_t msg_status (rd_kafka_message_status):
 * 0 (persisted), ONS_EUNKNOWN (possibly persisted), or for a record that is
 * definitely not persisted ONS_ECLOSED (closing), ONS_ETIMEDOUT (timed out
 * before it was sent) or ONS_EKAFKA. Pure; exposed for unit tests. */
int q_producer_outcome(int kafka_err, int msg_status, int closing);

/* Queues value (copied) to topic (an enum q_topic: queue/msg.h
 * q_msg_topic(type) names the one a record type belongs to) with key =
 * decimal event_id and the request id (NULL or "": none) in the record's
 * Q_HEADER_REQUEST_ID header, to partition (>= 0) of topic, bypassing the
 * partitioner: the record lands there or fails (ONS_EKAFKA, cb never runs).
 * A partition librdkafka's cached metadata lacks (the topics may have grown
 * since it last read them: it refreshes only every 5 minutes) fails the
 * send (ONS_EKAFKA) or, with opts.refresh_unknown, makes the send read the
 * topic's metadata, waiting at most 2 s (or the request timeout if
 * shorter), at most once a second per producer, and try once more. partition < 0: the partitioner
 * places it (murmur2 of the key over the topic's current count). Returns 0 (cb will run exactly
 * once), ONS_EFULL (in-flight bound or librdkafka's queue is full), ONS_ECLOSED (shutting down),
 * ONS_EINVAL (unknown topic) or ONS_EKAFKA; on an error cb never runs. */
int q_producer_send_at(q_producer *p, int topic, int32_t partition, int64_t event_id,
                       const void *value, size_t len, const char *request_id, q_produce_cb cb,
                       void *arg);

/* Records queued and not yet reported. */
int q_producer_inflight(q_producer *p);

/* The value librdkafka's current instance holds for key (e.g. "acks"),
 * written to out (cap bytes). 0, ONS_ENOTFOUND (no such key, or out too
 * small) or ONS_EKAFKA (no instance: a rebuild failed). */
int q_producer_conf_get(q_producer *p, const char *key, char *out, size_t cap);

/* Number of fatal-error rebuilds so far. */
long q_producer_rebuilds(q_producer *p);

/* Queries the broker for the partition's low and high watermark in topic
 * (enum q_topic: the intents topic or its control lane). May block for up
 * to timeout_ms (librdkafka can exceed it): call it only from a background
 * thread. Returns 0, ONS_EINVAL (no such lane), ONS_EKAFKA or
 * ONS_ETIMEDOUT. */
int q_producer_watermarks(q_producer *p, int topic, int32_t partition, int timeout_ms, int64_t *low,
                          int64_t *high);

/* The partition murmur2 of the decimal key gives event_id over n
 * partitions (librdkafka's murmur2_random, the Java client's default): an
 * event's home partition with n = events.partitions, the topics' count
 * when the event was created (docs/scaling.md "Growing the topics"). */
int32_t q_partition_of_event(int64_t event_id, int n);

/* Fetches topic metadata and writes the topic's partition count into *n.
 * Blocking like q_producer_watermarks. Returns 0, ONS_ENOTFOUND (no such
 * topic), ONS_EKAFKA or ONS_ETIMEDOUT. */
int q_producer_partitions(q_producer *p, int timeout_ms, int *n);
/* The same for topic (enum q_topic: the intents topic or its control
 * lane); ONS_EINVAL for another. */
int q_producer_partitions_of(q_producer *p, int topic, int timeout_ms, int *n);

#endif
