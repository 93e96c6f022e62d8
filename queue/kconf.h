/* kconf.h - what the producer and the consumer share in setting up
 * librdkafka: one option set with its failure logged, and librdkafka's own
 * log lines routed to the JSON log. */
#ifndef ONSALE_QUEUE_KCONF_H
#define ONSALE_QUEUE_KCONF_H

#include <librdkafka/rdkafka.h>

/* Sets option k to v on conf; 0, or ONS_EINVAL after logging why (who
 * names the client in the log line: "producer", "consumer"). */
int q_kconf_set(rd_kafka_conf_t *conf, const char *who, const char *k, const char *v);

/* q_kconf_set with an integer value. */
int q_kconf_set_int(rd_kafka_conf_t *conf, const char *who, const char *k, long v);

/* librdkafka's log callback: its lines as JSON lines like every other (its
 * default logger writes plain text to stderr). */
void q_kconf_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

#endif
