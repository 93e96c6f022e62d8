/* consumer.c - librdkafka consumer-group member; see consumer.h. */
#include "queue/consumer.h"
#include "common/err.h"
#include "common/log.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct q_consumer {
    rd_kafka_t *rk;
    char *topic;
    q_consumer_opts o;
    int closed;
};

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[256];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        ons_log_error("kafka consumer option %s=%s: %s", k, v, err);
        return ONS_EINVAL;
    }
    return 0;
}

static int conf_set_int(rd_kafka_conf_t *conf, const char *k, long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%ld", v);
    return conf_set(conf, k, buf);
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    ons_logk(level <= 3   ? ONS_LOG_ERROR
             : level <= 4 ? ONS_LOG_WARN
                          : ONS_LOG_INFO,
             NULL, NULL, "librdkafka %s: %s", fac, buf);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    q_consumer *c = opaque;
    size_t n = (size_t)parts->cnt;
    int32_t *ids = calloc(n + 1, sizeof *ids);
    int64_t *start = calloc(n + 1, sizeof *start);
    if (!ids || !start) {
        /* Cannot tell the owner: give up this assignment; the group retries. */
        ons_log_error("rebalance: out of memory");
        free(ids);
        free(start);
        rd_kafka_assign(rk, NULL);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        ids[i] = parts->elems[i].partition;
        start[i] = -1;
    }
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        if (c->o.on_assign)
            c->o.on_assign(c->o.arg, ids, start, n);
        for (size_t i = 0; i < n; i++)
            parts->elems[i].offset = start[i] >= 0 ? start[i] : RD_KAFKA_OFFSET_END;
        rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
        if (e)
            ons_log_error("kafka assign: %s", rd_kafka_err2str(e));
        for (size_t i = 0; i < n; i++)
            if (start[i] < 0)
                q_consumer_pause(c, ids[i]);
    } else {
        if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
            ons_log_warn("kafka rebalance error: %s", rd_kafka_err2str(err));
        if (c->o.on_revoke)
            c->o.on_revoke(c->o.arg, ids, n);
        rd_kafka_assign(rk, NULL);
    }
    free(ids);
    free(start);
}

int q_consumer_new(const q_consumer_opts *o, q_consumer **out)
{
    char err[512];
    *out = NULL;
    q_consumer *c = calloc(1, sizeof *c);
    if (!c)
        return ONS_ENOMEM;
    c->o = *o;
    c->topic = strdup(o->topic);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *sub = NULL;
    int rc = ONS_ENOMEM;
    if (!c->topic || !conf)
        goto fail;
    rc = ONS_EINVAL;
    if (conf_set(conf, "bootstrap.servers", o->brokers) || conf_set(conf, "group.id", o->group) ||
        conf_set(conf, "partition.assignment.strategy", "range") ||
        conf_set(conf, "enable.auto.commit", "false") ||
        conf_set(conf, "enable.auto.offset.store", "false") ||
        conf_set(conf, "auto.offset.reset", "earliest") ||
        conf_set(conf, "enable.partition.eof", "false") ||
        (o->client_id && conf_set(conf, "client.id", o->client_id)) ||
        (o->session_timeout_ms > 0 &&
         (conf_set_int(conf, "session.timeout.ms", o->session_timeout_ms) ||
          conf_set_int(conf, "heartbeat.interval.ms",
                       o->session_timeout_ms / 3 > 0 ? o->session_timeout_ms / 3 : 1))) ||
        (o->max_poll_interval_ms > 0 &&
         conf_set_int(conf, "max.poll.interval.ms", o->max_poll_interval_ms)) ||
        (o->fetch_wait_ms > 0 && conf_set_int(conf, "fetch.wait.max.ms", o->fetch_wait_ms)) ||
        (o->queued_max_kbytes > 0 &&
         conf_set_int(conf, "queued.max.messages.kbytes", o->queued_max_kbytes)))
        goto fail;
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_opaque(conf, c);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!c->rk) {
        ons_log_error("kafka consumer: %s", err);
        rc = ONS_EKAFKA;
        goto fail;
    }
    conf = NULL; /* owned by rk now */
    rd_kafka_poll_set_consumer(c->rk);
    sub = rd_kafka_topic_partition_list_new(1);
    if (!sub) {
        rc = ONS_ENOMEM;
        goto fail;
    }
    rd_kafka_topic_partition_list_add(sub, o->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (e) {
        ons_log_error("kafka subscribe %s: %s", o->topic, rd_kafka_err2str(e));
        rc = ONS_EKAFKA;
        goto fail;
    }
    *out = c;
    return 0;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (c->rk)
        rd_kafka_destroy(c->rk);
    free(c->topic);
    free(c);
    return rc;
}

int q_consumer_poll(q_consumer *c, int timeout_ms, q_record *rec)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, timeout_ms);
    if (!m)
        return ONS_ETIMEDOUT;
    if (m->err) {
        ons_log_warn("kafka consume: %s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return ONS_EKAFKA;
    }
    rd_kafka_timestamp_type_t tt;
    rec->partition = m->partition;
    rec->offset = m->offset;
    rec->timestamp_ms = rd_kafka_message_timestamp(m, &tt);
    rec->key = m->key;
    rec->key_len = m->key_len;
    rec->value = m->payload;
    rec->len = m->len;
    rec->impl = m;
    return 0;
}

const char *q_record_header(const q_record *rec, const char *name, char *out, size_t cap)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t n = 0;
    if (!rec->impl || cap == 0 ||
        rd_kafka_message_headers((rd_kafka_message_t *)rec->impl, &h) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR || !v)
        return NULL;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, v, n);
    out[n] = '\0';
    return out;
}

void q_record_release(q_record *rec)
{
    if (rec->impl)
        rd_kafka_message_destroy(rec->impl);
    rec->impl = NULL;
}

static rd_kafka_topic_partition_list_t *one(q_consumer *c, int32_t partition, int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    if (l)
        rd_kafka_topic_partition_list_add(l, c->topic, partition)->offset = offset;
    return l;
}

int q_consumer_seek(q_consumer *c, int32_t partition, int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = one(c, partition, offset);
    if (!l)
        return ONS_ENOMEM;
    int rc = 0;
    rd_kafka_error_t *e = rd_kafka_seek_partitions(c->rk, l, 5000);
    if (e) {
        ons_log_warn("kafka seek %d to %lld: %s", (int)partition, (long long)offset,
                     rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rc = ONS_EKAFKA;
    } else if (l->elems[0].err) {
        ons_log_warn("kafka seek %d to %lld: %s", (int)partition, (long long)offset,
                     rd_kafka_err2str(l->elems[0].err));
        rc = ONS_EKAFKA;
    }
    if (rc == 0 && rd_kafka_resume_partitions(c->rk, l) != 0)
        rc = ONS_EKAFKA;
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

int q_consumer_pause(q_consumer *c, int32_t partition)
{
    rd_kafka_topic_partition_list_t *l = one(c, partition, RD_KAFKA_OFFSET_INVALID);
    if (!l)
        return ONS_ENOMEM;
    rd_kafka_resp_err_t e = rd_kafka_pause_partitions(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return e ? ONS_EKAFKA : 0;
}

int q_consumer_commit_async(q_consumer *c, int32_t partition, int64_t next_offset)
{
    rd_kafka_topic_partition_list_t *l = one(c, partition, next_offset);
    if (!l)
        return ONS_ENOMEM;
    rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, l, 1);
    rd_kafka_topic_partition_list_destroy(l);
    return e ? ONS_EKAFKA : 0;
}

int q_consumer_high_watermark(q_consumer *c, int32_t partition, int64_t *high)
{
    int64_t low = -1;
    *high = -1;
    rd_kafka_resp_err_t e = rd_kafka_get_watermark_offsets(c->rk, c->topic, partition, &low, high);
    return e || *high < 0 ? ONS_ENOTFOUND : 0;
}

int q_consumer_close(q_consumer *c)
{
    if (c->closed)
        return 0;
    c->closed = 1;
    rd_kafka_resp_err_t e = rd_kafka_consumer_close(c->rk);
    if (e) {
        ons_log_warn("kafka consumer close: %s", rd_kafka_err2str(e));
        return ONS_EKAFKA;
    }
    return 0;
}

void q_consumer_free(q_consumer *c)
{
    if (!c)
        return;
    q_consumer_close(c);
    rd_kafka_destroy(c->rk);
    free(c->topic);
    free(c);
}
