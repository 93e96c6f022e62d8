/*
 * log_reader.h - reads one record of the intents topic at a known place.
 *
 * An intent's public id names its place in the log (partition, offset), not
 * its event; a node that did not accept the join learns the event only when
 * the owner has applied the intent (its result in Redis/PostgreSQL). To
 * cancel an intent that is still queued from any node, the record itself is
 * read back: one Kafka consumer (no group; assign, fetch one record,
 * unassign) shared by the job threads under a lock. Used only on that rare
 * path, never per join.
 */
#ifndef ONSALE_INGRESS_LOG_READER_H
#define ONSALE_INGRESS_LOG_READER_H

#include <stdint.h>

#include "queue/kconf.h"
#include "queue/msg.h"

typedef struct ing_log_reader ing_log_reader;

/* Creates the reader (connects lazily, on the first read; sec: TLS to the
 * brokers, copied). Returns 0, ONS_ENOMEM. */
int ing_log_reader_new(const char *brokers, const q_ksec *sec, const char *topic,
                       ing_log_reader **out);
void ing_log_reader_free(ing_log_reader *r);

/* Reads and decodes the record at partition/offset into *m, waiting at most
 * timeout_ms. Returns 0, ONS_ENOTFOUND (no such record: past the end or
 * deleted), ONS_EPARSE (not a record Onsale can read), ONS_ETIMEDOUT or
 * ONS_EKAFKA. Thread-safe (one read at a time). */
int ing_log_read(ing_log_reader *r, int32_t partition, int64_t offset, int timeout_ms, q_msg *m);

#endif
