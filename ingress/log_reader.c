/* log_reader.c - one record of the intents topic at a known place; see log_reader.h. */
#include "ingress/log_reader.h"

#include "common/clock.h"
#include "common/err.h"
#include "common/log.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ing_log_reader {
    pthread_mutex_t mu;
    char *brokers, *topic;
    char *sec_protocol, *sec_ca; /* q_ksec, copied */
    rd_kafka_t *rk;              /* NULL until the first read */
};

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    ons_logk(level <= 3   ? ONS_LOG_ERROR
             : level <= 4 ? ONS_LOG_WARN
                          : ONS_LOG_INFO,
             NULL, NULL, "librdkafka (log reader) %s: %s", fac, buf);
}

int ing_log_reader_new(const char *brokers, const q_ksec *sec, const char *topic,
                       ing_log_reader **out)
{
    ing_log_reader *r = calloc(1, sizeof *r);
    if (!r)
        return ONS_ENOMEM;
    r->brokers = strdup(brokers);
    r->topic = strdup(topic);
    r->sec_protocol = strdup(sec && sec->protocol ? sec->protocol : "");
    r->sec_ca = strdup(sec && sec->ca_location ? sec->ca_location : "");
    if (!r->brokers || !r->topic || !r->sec_protocol || !r->sec_ca) {
        ing_log_reader_free(r);
        return ONS_ENOMEM;
    }
    pthread_mutex_init(&r->mu, NULL);
    *out = r;
    return 0;
}

void ing_log_reader_free(ing_log_reader *r)
{
    if (!r)
        return;
    if (r->rk) {
        rd_kafka_consumer_close(r->rk);
        rd_kafka_destroy(r->rk);
    }
    if (r->brokers && r->topic)
        pthread_mutex_destroy(&r->mu);
    free(r->brokers);
    free(r->topic);
    free(r->sec_protocol);
    free(r->sec_ca);
    free(r);
}

static rd_kafka_t *connect_reader(ing_log_reader *r)
{
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    static const char *const kv[][2] = {
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "true"},
        {"fetch.wait.max.ms", "10"},
        {"queued.max.messages.kbytes", "1024"},
        {"isolation.level", "read_uncommitted"},
        {"auto.offset.reset", "error"}, /* a place before the log start: not found */
        /* required by assign(); never joined (no subscribe) nor committed */
        {"group.id", "onsale-ingress-log-reader"},
    };
    if (!c || rd_kafka_conf_set(c, "bootstrap.servers", r->brokers, err, sizeof err))
        goto fail;
    if (q_kconf_security(c, "log reader", &(q_ksec){r->sec_protocol, r->sec_ca})) {
        snprintf(err, sizeof err, "bad kafka.security_protocol / kafka.ssl_ca_location");
        goto fail;
    }
    for (size_t i = 0; i < sizeof kv / sizeof *kv; i++)
        if (rd_kafka_conf_set(c, kv[i][0], kv[i][1], err, sizeof err))
            goto fail;
    rd_kafka_conf_set_log_cb(c, log_cb);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
    if (!rk)
        goto fail;
    return rk;
fail:
    ons_log_warn("kafka log reader: %s", c ? err : "out of memory");
    if (c)
        rd_kafka_conf_destroy(c);
    return NULL;
}

/* Under r->mu: assign, fetch the record at offset, unassign. */
static int read_locked(ing_log_reader *r, int32_t partition, int64_t offset, int timeout_ms,
                       q_msg *m)
{
    if (!r->rk && !(r->rk = connect_reader(r)))
        return ONS_EKAFKA;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    if (!l)
        return ONS_ENOMEM;
    rd_kafka_topic_partition_list_add(l, r->topic, partition)->offset = offset;
    rd_kafka_resp_err_t e = rd_kafka_assign(r->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        ons_log_warn("kafka log reader: assign: %s", rd_kafka_err2str(e));
        return ONS_EKAFKA;
    }
    int rc = ONS_ETIMEDOUT;
    int64_t deadline = ons_mono_ms() + timeout_ms;
    for (int64_t left = timeout_ms; left > 0; left = deadline - ons_mono_ms()) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(r->rk, (int)left);
        if (!msg)
            continue;
        if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rc = msg->offset <= offset ? ONS_ENOTFOUND : rc;
        } else if (msg->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE ||
                   msg->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) {
            rc = ONS_ENOTFOUND;
        } else if (msg->err) {
            ons_log_warn("kafka log reader: %s", rd_kafka_message_errstr(msg));
            rc = ONS_EKAFKA;
        } else if (msg->partition == partition && msg->offset == offset) {
            char why[128];
            rc = q_msg_decode(msg->payload, msg->len, m, why, sizeof why) ? ONS_EPARSE : 0;
        } else if (msg->offset > offset) {
            rc = ONS_ENOTFOUND; /* compacted or aborted away */
        } else {
            rd_kafka_message_destroy(msg);
            continue;
        }
        rd_kafka_message_destroy(msg);
        if (rc != ONS_ETIMEDOUT)
            break;
    }
    rd_kafka_assign(r->rk, NULL);
    return rc;
}

int ing_log_read(ing_log_reader *r, int32_t partition, int64_t offset, int timeout_ms, q_msg *m)
{
    pthread_mutex_lock(&r->mu);
    int rc = read_locked(r, partition, offset, timeout_ms, m);
    pthread_mutex_unlock(&r->mu);
    return rc;
}
