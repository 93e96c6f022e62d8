/* kconf.h - what every librdkafka client of Onsale shares in setting up
 * librdkafka: one option set with its failure logged, the link's security
 * (TLS to the brokers), and librdkafka's own log lines routed to the JSON
 * log. */
#ifndef ONSALE_QUEUE_KCONF_H
#define ONSALE_QUEUE_KCONF_H

#include <librdkafka/rdkafka.h>

/* Sets option k to v on conf; 0, or ONS_EINVAL after logging why (who
 * names the client in the log line: "producer", "consumer"). */
int q_kconf_set(rd_kafka_conf_t *conf, const char *who, const char *k, const char *v);

/* q_kconf_set with an integer value. */
int q_kconf_set_int(rd_kafka_conf_t *conf, const char *who, const char *k, long v);

/* How a client reaches the brokers beyond their addresses: every binary's
 * kafka.security_protocol and kafka.ssl_ca_location options (docs/security.md
 * "Links between the processes"). */
typedef struct q_ksec {
    const char *protocol;    /* security.protocol: "plaintext" or "ssl"; NULL or "": plaintext */
    const char *ca_location; /* ssl.ca.location: PEM file of the CA that signed the brokers'
                                certificates; NULL or "": OpenSSL's default store */
} q_ksec;

/* kafka.security_protocol's values, as its ONS_OPT_ENUM row lists them (the
 * first is the default). librdkafka also knows sasl_plaintext and sasl_ssl:
 * Onsale has no SASL credentials to give it, so they are not offered. */
#define Q_KSEC_PROTOCOLS "plaintext|ssl"
#define Q_KSEC_PROTOCOL_HELP                                                                       \
    "how the Kafka clients reach the brokers: plaintext, or ssl (TLS, the broker's "               \
    "certificate checked against kafka.ssl_ca_location and its name against the broker "           \
    "address)"
#define Q_KSEC_CA_HELP                                                                             \
    "PEM file of the CA that signed the brokers' certificates (kafka.security_protocol=ssl; "      \
    "\"\": the system's CA store)"

/* The kafka.security_protocol and kafka.ssl_ca_location lines of an
 * options.def (common/opts.h: X is the .def's X) whose struct holds them in
 * protocol and ca: what a q_ksec is made of. */
#define Q_KSEC_OPT_ROWS(X, protocol, ca)                                                           \
    X(protocol, ONS_OPT_ENUM, "kafka.security_protocol", 0, 0, Q_KSEC_PROTOCOLS,                   \
      Q_KSEC_PROTOCOL_HELP)                                                                        \
    X(ca, ONS_OPT_STR, "kafka.ssl_ca_location", 0, 4096, "", Q_KSEC_CA_HELP)

/* Sets s's security.protocol (and with ssl: ssl.ca.location, and broker
 * host name verification, ssl.endpoint.identification.algorithm=https) on
 * conf. 0, or ONS_EINVAL after logging why: an unknown protocol, or a CA
 * file given for a plaintext link (a setting that would silently not
 * apply). */
int q_kconf_security(rd_kafka_conf_t *conf, const char *who, const q_ksec *s);

/* librdkafka's log callback: its lines as JSON lines like every other (its
 * default logger writes plain text to stderr). */
void q_kconf_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf);

#endif
