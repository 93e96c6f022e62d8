/* kconf.c - librdkafka set-up shared by the producer and the consumer; see
 * kconf.h. */
#include "queue/kconf.h"
#include "common/err.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

int q_kconf_set(rd_kafka_conf_t *conf, const char *who, const char *k, const char *v)
{
    char err[256];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        ons_log_error("kafka %s option %s=%s: %s", who, k, v, err);
        return ONS_EINVAL;
    }
    return 0;
}

int q_kconf_set_int(rd_kafka_conf_t *conf, const char *who, const char *k, long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", v);
    return q_kconf_set(conf, who, k, buf);
}

int q_kconf_security(rd_kafka_conf_t *conf, const char *who, const q_ksec *s)
{
    const char *proto = s && s->protocol && *s->protocol ? s->protocol : "plaintext";
    const char *ca = s && s->ca_location && *s->ca_location ? s->ca_location : NULL;
    if (strcmp(proto, "plaintext") == 0) {
        if (ca) {
            ons_log_error("kafka %s: kafka.ssl_ca_location is set but kafka.security_protocol is "
                          "plaintext (set it to ssl, or drop the CA)",
                          who);
            return ONS_EINVAL;
        }
        return q_kconf_set(conf, who, "security.protocol", "plaintext");
    }
    if (strcmp(proto, "ssl") != 0) {
        ons_log_error("kafka %s: kafka.security_protocol '%s' is not one of plaintext, ssl", who,
                      proto);
        return ONS_EINVAL;
    }
    /* https: librdkafka 2.x's default, set anyway: a broker whose
     * certificate does not name the address dialled is refused. */
    if (q_kconf_set(conf, who, "security.protocol", "ssl") ||
        q_kconf_set(conf, who, "ssl.endpoint.identification.algorithm", "https") ||
        (ca && q_kconf_set(conf, who, "ssl.ca.location", ca)))
        return ONS_EINVAL;
    return 0;
}

void q_kconf_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    ons_logk(level <= 3   ? ONS_LOG_ERROR
             : level <= 4 ? ONS_LOG_WARN
                          : ONS_LOG_INFO,
             NULL, NULL, "librdkafka %s: %s", fac, buf);
}
