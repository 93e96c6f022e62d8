/* kconf.c - librdkafka set-up shared by the producer and the consumer; see
 * kconf.h. */
#include "queue/kconf.h"
#include "common/err.h"
#include "common/log.h"

#include <stdio.h>

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

void q_kconf_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    ons_logk(level <= 3   ? ONS_LOG_ERROR
             : level <= 4 ? ONS_LOG_WARN
                          : ONS_LOG_INFO,
             NULL, NULL, "librdkafka %s: %s", fac, buf);
}
