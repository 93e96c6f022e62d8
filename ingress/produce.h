/*
 * produce.h - sending a request's record to Kafka and continuing the request
 * on a job thread once the delivery report is in.
 *
 * ing_produce() encodes m and queues it on the app's producer, to the home
 * partition of m's event (ing_event_home: w reads it from PostgreSQL when
 * this node has not yet; w may be NULL when it is known). When the
 * broker acknowledged it (or it failed), the request's produce_err,
 * produced_partition and produced_offset are set and done(worker, r) runs on
 * a job thread: every reply that says "accepted" is built there, from a
 * successful delivery report only.
 */
#ifndef ONSALE_INGRESS_PRODUCE_H
#define ONSALE_INGRESS_PRODUCE_H

#include "ingress/monitor.h"
#include "ingress/server.h"
#include "queue/msg.h"

/* Returns 0 (done will run exactly once) or an error (ONS_EFULL, ONS_EKAFKA,
 * ONS_EINVAL, ...): then done never runs and the caller still owns r. */
int ing_produce(ing_req *r, ing_worker *w, const q_msg *m, ing_job_fn done);

/* A continuation that finishes many requests at once (on the finisher
 * thread, its own Redis connection): every request whose delivery report
 * arrived while the previous batch ran, up to ING_FINISH_BATCH, so their
 * Redis writes share one pipelined round trip. It must finish each one. */
typedef void (*ing_batch_fn)(ing_worker *w, ing_req **rs, size_t n);
#define ING_FINISH_BATCH 256

/* Runs on the producer's thread the moment r's delivery report arrives,
 * after produce_err, produced_partition and produced_offset are set and
 * before r is queued for its continuation: a note taken when the record
 * became durable (the join's ETA). Must be quick and never block. */
typedef void (*ing_delivered_fn)(ing_req *r);

/* ing_produce with a batch continuation; at_delivery (may be NULL) as
 * above. partitions: the event's count as the caller read it with its sale
 * state (q_event_state.partitions), which names its home partition, so no
 * PostgreSQL is read (the join claimer's case: a join always has it); 0:
 * looked up as ing_produce does (ing_event_home, maybe PostgreSQL on w). */
int ing_produce_batched(ing_req *r, ing_worker *w, const q_msg *m, int partitions,
                        ing_batch_fn done, ing_delivered_fn at_delivery);

/* Should a record be refused at once (nothing queued, 503 queue_unavailable)
 * rather than handed to librdkafka? 1 when the monitor's last round is fresh
 * (younger than 5 intervals + 2 s, as /readyz wants) and has found Kafka
 * unreachable for at least fail_fast_ms (> 0; 0 never refuses). Without it
 * a join waits for librdkafka's timeout, which with no broker up runs
 * several seconds past kafka.produce_timeout_ms (docs/scaling.md). */
int ing_produce_refuse(const ing_health *h, int64_t fail_fast_ms, int64_t monitor_interval_ms);

/* A lane's served cursor of a partition (every offset below it applied),
 * or -1 when it can't be told. */
typedef int64_t (*ing_served_fn)(void *arg, int32_t partition);

/* event_id's home partition: murmur2 of its id over events.partitions, the
 * topics' partition count when the event was created (docs/scaling.md
 * "Growing the topics"). Every record of the event goes there, whatever the
 * topics' count is now. events.partitions never changes, so it is kept in
 * app->homes once read; a miss reads it on w's connection (w NULL: none,
 * ONS_EUNAVAIL). Returns 0, ONS_ENOTFOUND (no such event), ONS_EUNAVAIL or
 * ONS_EDB. */
int ing_event_home(ing_app *app, ing_worker *w, int64_t event_id, int32_t *partition);

/* 1 when the brokers have said both topics have at least this node's
 * count of partitions (the monitor's last read, or the start check's until
 * the monitor has one): new events may be homed over app->partitions. 0
 * while that is not known (kafka.partitions_check_ms 0, brokers silent) or
 * the topics have fewer (kafka.partitions set by hand above the count): an
 * event homed on a partition that does not exist could never be joined. */
int ing_partitions_verified(ing_app *app);

/* The partitions an id may name: this node's count, or the topics' as the
 * monitor last read it when they have grown since the start (an intent or
 * reservation of an event homed on a new partition, accepted by a node that
 * knows it, is found here too). */
int ing_partitions_known(ing_app *app);

/* Is every record that was sent to partition of lane (enum q_topic) before
 * at_ms (an unknown outcome's time) certainly applied by the partition
 * owner? 1 when served(arg, partition) has reached a high watermark of that
 * lane the monitor read after at_ms + 2 * kafka.produce_timeout_ms +
 * kafka.request_timeout_ms (a request sent before an unknown outcome is
 * answered or abandoned by then: no late write can land after that); then a record not
 * found in PostgreSQL was certainly never written. partition -1 (not
 * known): every partition. served NULL: the intents lane's cursor cache.
 * 0: cannot tell yet. Any thread; I/O only what served does. */
int ing_produce_settled(ing_app *app, int lane, int32_t partition, int64_t at_ms,
                        ing_served_fn served, void *arg);

/* The finisher thread (app->finisher). Start before the server; free after
 * the producer was freed (its last reports still need it). 0 or ONS_ENOMEM. */
int ing_finisher_new(ing_app *app, const q_status_opts *redis);
void ing_finisher_free(ing_app *app);

#endif
