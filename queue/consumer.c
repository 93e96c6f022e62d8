/* consumer.c - librdkafka consumer-group member; see consumer.h. */
#include "queue/consumer.h"
#include "queue/kconf.h"
#include "common/err.h"
#include "common/clock.h"
#include "common/log.h"
#include "queue/msg.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct q_consumer {
    rd_kafka_t *rk;  /* the group member: the intents topic */
    rd_kafka_t *ctl; /* assign-only: the control topic; NULL without one */
    char *topic, *ctl_topic;
    q_consumer_opts o;
    int closed;
};

/* How long q_consumer_poll waits on the intents lane before it looks at the
 * control lane again (the control lane's added latency when idle). */
#define CTL_SLICE_MS 5

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    return q_kconf_set(conf, "consumer", k, v);
}

static int conf_set_int(rd_kafka_conf_t *conf, const char *k, long v)
{
    return q_kconf_set_int(conf, "consumer", k, v);
}

static int pause_lane(q_consumer *c, int lane, int32_t partition);

/* Drops both lanes' assignments. */
static void unassign(q_consumer *c, rd_kafka_t *rk)
{
    rd_kafka_assign(rk, NULL);
    if (c->ctl)
        rd_kafka_assign(c->ctl, NULL);
}

/* The control lane follows the group member: the same partitions, from the
 * owner's control cursor (eager assignor: a full list each time). */
static void assign_control(q_consumer *c, const int32_t *ids, const int64_t *cstart, size_t n)
{
    rd_kafka_topic_partition_list_t *cl = rd_kafka_topic_partition_list_new((int)n + 1);
    for (size_t i = 0; cl && i < n; i++)
        rd_kafka_topic_partition_list_add(cl, c->ctl_topic, ids[i])->offset =
            cstart[i] >= 0 ? cstart[i] : RD_KAFKA_OFFSET_END;
    rd_kafka_resp_err_t e = cl ? rd_kafka_assign(c->ctl, cl) : RD_KAFKA_RESP_ERR__FAIL;
    if (e)
        ons_log_error("kafka assign (control lane): %s", rd_kafka_err2str(e));
    if (cl)
        rd_kafka_topic_partition_list_destroy(cl);
}

/* Partitions ids[n] were assigned: the owner names each lane's start
 * (start, cstart; -1 keeps that lane paused until it is ready). */
static void assigned(q_consumer *c, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts,
                     const int32_t *ids, int64_t *start, int64_t *cstart, size_t n)
{
    if (c->o.on_assign)
        c->o.on_assign(c->o.arg, ids, start, cstart, n);
    for (size_t i = 0; i < n; i++)
        parts->elems[i].offset = start[i] >= 0 ? start[i] : RD_KAFKA_OFFSET_END;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
    if (e)
        ons_log_error("kafka assign: %s", rd_kafka_err2str(e));
    if (c->ctl)
        assign_control(c, ids, cstart, n);
    for (size_t i = 0; i < n; i++) {
        if (start[i] < 0)
            pause_lane(c, Q_TOPIC_INTENTS, ids[i]);
        if (cstart[i] < 0)
            pause_lane(c, Q_TOPIC_CONTROL, ids[i]);
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    q_consumer *c = opaque;
    size_t n = (size_t)parts->cnt;
    int32_t *ids = calloc(n + 1, sizeof *ids);
    int64_t *start = calloc(n + 1, sizeof *start);
    int64_t *cstart = calloc(n + 1, sizeof *cstart);
    if (!ids || !start || !cstart) {
        /* Cannot tell the owner: give up this assignment; the group retries. */
        ons_log_error("rebalance: out of memory");
        unassign(c, rk);
    } else {
        for (size_t i = 0; i < n; i++) {
            ids[i] = parts->elems[i].partition;
            start[i] = cstart[i] = -1;
        }
        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
            assigned(c, rk, parts, ids, start, cstart, n);
        } else {
            if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
                ons_log_warn("kafka rebalance error: %s", rd_kafka_err2str(err));
            if (c->o.on_revoke)
                c->o.on_revoke(c->o.arg, ids, n);
            unassign(c, rk);
        }
    }
    free(ids);
    free(start);
    free(cstart);
}

/* Asks for the topic's leaders now, so that a later assign starts fetching
 * at once (an assign-only instance otherwise learns them only then, and its
 * lane starts up to a second behind the group member's). Best effort: a
 * failure only costs that second. */
static void warm_metadata(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    if (!rkt)
        return;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 2000);
    if (e)
        ons_log_warn("kafka metadata (control lane %s): %s", topic, rd_kafka_err2str(e));
    else
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
}

/* The options both lanes share: brokers, group, manual commits from the
 * owner's cursors, and the fetch limits. */
static int lane_conf(rd_kafka_conf_t *conf, const q_consumer_opts *o, const char *group)
{
    if (conf_set(conf, "bootstrap.servers", o->brokers) ||
        q_kconf_security(conf, "consumer", &o->sec) || conf_set(conf, "group.id", group) ||
        conf_set(conf, "enable.auto.commit", "false") ||
        conf_set(conf, "enable.auto.offset.store", "false") ||
        conf_set(conf, "auto.offset.reset", "earliest") ||
        conf_set(conf, "enable.partition.eof", "false") ||
        /* a held fetch is answered as soon as one record arrives, so
         * fetch_wait_ms bounds empty fetches, not a record's latency */
        conf_set(conf, "fetch.min.bytes", "1") ||
        (o->fetch_wait_ms > 0 && conf_set_int(conf, "fetch.wait.max.ms", o->fetch_wait_ms)) ||
        (o->queued_max_kbytes > 0 &&
         conf_set_int(conf, "queued.max.messages.kbytes", o->queued_max_kbytes)))
        return ONS_EINVAL;
    return 0;
}

/* The group member's options: lane_conf plus the group's assignor,
 * liveness timeouts and client id. */
static int member_conf(rd_kafka_conf_t *conf, const q_consumer_opts *o)
{
    if (lane_conf(conf, o, o->group) || conf_set(conf, "partition.assignment.strategy", "range") ||
        (o->client_id && conf_set(conf, "client.id", o->client_id)) ||
        (o->session_timeout_ms > 0 &&
         (conf_set_int(conf, "session.timeout.ms", o->session_timeout_ms) ||
          conf_set_int(conf, "heartbeat.interval.ms",
                       o->session_timeout_ms / 3 > 0 ? o->session_timeout_ms / 3 : 1))) ||
        (o->max_poll_interval_ms > 0 &&
         conf_set_int(conf, "max.poll.interval.ms", o->max_poll_interval_ms)) ||
        /* grown topics are noticed (a rebalance hands the new partitions
         * out) at the next refresh, when no member joins to trigger one */
        (o->metadata_refresh_ms > 0 &&
         conf_set_int(conf, "topic.metadata.refresh.interval.ms", o->metadata_refresh_ms)))
        return ONS_EINVAL;
    rd_kafka_conf_set_log_cb(conf, q_kconf_log);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    return 0;
}

/* Subscribes the group member to its topic. */
static int subscribe(q_consumer *c, const char *topic)
{
    rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
    if (!sub)
        return ONS_ENOMEM;
    rd_kafka_topic_partition_list_add(sub, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (e) {
        ons_log_error("kafka subscribe %s: %s", topic, rd_kafka_err2str(e));
        return ONS_EKAFKA;
    }
    return 0;
}

/* The control lane's assign-only instance: partitions are assigned by
 * rebalance_cb as the group member's change. Its group id is only where
 * its advisory commits go (nobody joins it). */
static int new_control(q_consumer *c, const q_consumer_opts *o)
{
    char err[512], group[300], cid[300];
    snprintf(group, sizeof group, "%s.control", o->group);
    snprintf(cid, sizeof cid, "%s.control", o->client_id ? o->client_id : "onsale");
    c->ctl_topic = strdup(o->control_topic);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (!c->ctl_topic || !conf) {
        if (conf)
            rd_kafka_conf_destroy(conf);
        return ONS_ENOMEM;
    }
    if (lane_conf(conf, o, group) || conf_set(conf, "client.id", cid)) {
        rd_kafka_conf_destroy(conf);
        return ONS_EINVAL;
    }
    rd_kafka_conf_set_log_cb(conf, q_kconf_log);
    c->ctl = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!c->ctl) {
        rd_kafka_conf_destroy(conf);
        ons_log_error("kafka consumer (control lane): %s", err);
        return ONS_EKAFKA;
    }
    rd_kafka_poll_set_consumer(c->ctl);
    warm_metadata(c->ctl, c->ctl_topic);
    return 0;
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
    int rc = ONS_ENOMEM;
    if (!c->topic || !conf || (rc = member_conf(conf, o)) != 0)
        goto fail;
    rd_kafka_conf_set_opaque(conf, c);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!c->rk) {
        ons_log_error("kafka consumer: %s", err);
        rc = ONS_EKAFKA;
        goto fail;
    }
    conf = NULL; /* owned by rk now */
    rd_kafka_poll_set_consumer(c->rk);
    if ((rc = subscribe(c, o->topic)) != 0)
        goto fail;
    if (o->control_topic && (rc = new_control(c, o)) != 0)
        goto fail;
    *out = c;
    return 0;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (c->rk)
        rd_kafka_destroy(c->rk);
    free(c->topic);
    free(c->ctl_topic);
    free(c);
    return rc;
}

static void fill(q_record *rec, rd_kafka_message_t *m, int lane)
{
    rd_kafka_timestamp_type_t tt;
    rec->lane = lane;
    rec->partition = m->partition;
    rec->offset = m->offset;
    rec->timestamp_ms = rd_kafka_message_timestamp(m, &tt);
    rec->key = m->key;
    rec->key_len = m->key_len;
    rec->value = m->payload;
    rec->len = m->len;
    rec->impl = m;
}

/* One message of rk within timeout_ms: 0, ONS_ETIMEDOUT or ONS_EKAFKA. */
static int poll_one(rd_kafka_t *rk, int timeout_ms, int lane, q_record *rec)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, timeout_ms);
    if (!m)
        return ONS_ETIMEDOUT;
    if (m->err) {
        ons_log_warn("kafka consume%s: %s", lane == Q_TOPIC_CONTROL ? " (control lane)" : "",
                     rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return ONS_EKAFKA;
    }
    fill(rec, m, lane);
    return 0;
}

int q_consumer_poll(q_consumer *c, int timeout_ms, q_record *rec)
{
    if (!c->ctl)
        return poll_one(c->rk, timeout_ms, Q_TOPIC_INTENTS, rec);
    int64_t deadline = ons_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int rc = poll_one(c->ctl, 0, Q_TOPIC_CONTROL, rec);
        if (rc != ONS_ETIMEDOUT)
            return rc;
        int64_t left = deadline - ons_mono_ms();
        int slice = left <= 0 ? 0 : left < CTL_SLICE_MS ? (int)left : CTL_SLICE_MS;
        rc = poll_one(c->rk, slice, Q_TOPIC_INTENTS, rec);
        if (rc != ONS_ETIMEDOUT || left <= 0)
            return rc;
    }
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

static rd_kafka_t *lane_rk(q_consumer *c, int lane)
{
    return lane == Q_TOPIC_CONTROL ? c->ctl : c->rk;
}

static rd_kafka_topic_partition_list_t *one(q_consumer *c, int lane, int32_t partition,
                                            int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    if (l)
        rd_kafka_topic_partition_list_add(l, lane == Q_TOPIC_CONTROL ? c->ctl_topic : c->topic,
                                          partition)
            ->offset = offset;
    return l;
}

int q_consumer_seek(q_consumer *c, int lane, int32_t partition, int64_t offset)
{
    rd_kafka_t *rk = lane_rk(c, lane);
    if (!rk)
        return 0; /* no control lane: nothing to position */
    rd_kafka_topic_partition_list_t *l = one(c, lane, partition, offset);
    if (!l)
        return ONS_ENOMEM;
    int rc = 0;
    const char *name = lane == Q_TOPIC_CONTROL ? "control " : "";
    rd_kafka_error_t *e = rd_kafka_seek_partitions(rk, l, 5000);
    if (e) {
        ons_log_warn("kafka seek %s%d to %lld: %s", name, (int)partition, (long long)offset,
                     rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        rc = ONS_EKAFKA;
    } else if (l->elems[0].err) {
        ons_log_warn("kafka seek %s%d to %lld: %s", name, (int)partition, (long long)offset,
                     rd_kafka_err2str(l->elems[0].err));
        rc = ONS_EKAFKA;
    }
    if (rc == 0 && rd_kafka_resume_partitions(rk, l) != 0)
        rc = ONS_EKAFKA;
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

static int pause_lane(q_consumer *c, int lane, int32_t partition)
{
    rd_kafka_t *rk = lane_rk(c, lane);
    if (!rk)
        return 0;
    rd_kafka_topic_partition_list_t *l = one(c, lane, partition, RD_KAFKA_OFFSET_INVALID);
    if (!l)
        return ONS_ENOMEM;
    rd_kafka_resp_err_t e = rd_kafka_pause_partitions(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return e ? ONS_EKAFKA : 0;
}

int q_consumer_pause(q_consumer *c, int32_t partition)
{
    int a = pause_lane(c, Q_TOPIC_INTENTS, partition);
    int b = pause_lane(c, Q_TOPIC_CONTROL, partition);
    return a ? a : b;
}

int q_consumer_commit_async(q_consumer *c, int lane, int32_t partition, int64_t next_offset)
{
    rd_kafka_t *rk = lane_rk(c, lane);
    if (!rk)
        return 0;
    rd_kafka_topic_partition_list_t *l = one(c, lane, partition, next_offset);
    if (!l)
        return ONS_ENOMEM;
    rd_kafka_resp_err_t e = rd_kafka_commit(rk, l, 1);
    rd_kafka_topic_partition_list_destroy(l);
    return e ? ONS_EKAFKA : 0;
}

int q_consumer_high_watermark(q_consumer *c, int lane, int32_t partition, int64_t *high)
{
    int64_t low = -1;
    *high = -1;
    rd_kafka_t *rk = lane_rk(c, lane);
    if (!rk)
        return ONS_ENOTFOUND;
    rd_kafka_resp_err_t e = rd_kafka_get_watermark_offsets(
        rk, lane == Q_TOPIC_CONTROL ? c->ctl_topic : c->topic, partition, &low, high);
    return e || *high < 0 ? ONS_ENOTFOUND : 0;
}

int q_consumer_close(q_consumer *c)
{
    if (c->closed)
        return 0;
    c->closed = 1;
    int rc = 0;
    rd_kafka_resp_err_t e = rd_kafka_consumer_close(c->rk);
    if (e) {
        ons_log_warn("kafka consumer close: %s", rd_kafka_err2str(e));
        rc = ONS_EKAFKA;
    }
    if (c->ctl && (e = rd_kafka_consumer_close(c->ctl)) != 0) {
        ons_log_warn("kafka consumer close (control lane): %s", rd_kafka_err2str(e));
        rc = ONS_EKAFKA;
    }
    return rc;
}

void q_consumer_free(q_consumer *c)
{
    if (!c)
        return;
    q_consumer_close(c);
    rd_kafka_destroy(c->rk);
    if (c->ctl)
        rd_kafka_destroy(c->ctl);
    free(c->topic);
    free(c->ctl_topic);
    free(c);
}
