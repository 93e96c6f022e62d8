/* producer.c - idempotent librdkafka producer with a poll thread; see producer.h. */
#include "queue/producer.h"
#include "queue/kconf.h"
#include "common/err.h"
#include "queue/msg.h"
#include "common/log.h"
#include "queue/msg.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct q_producer {
    char *brokers;
    char *sec_protocol, *sec_ca; /* q_ksec, copied: a rebuild sets it again */
    char *topic;                 /* topics[Q_TOPIC_INTENTS] */
    char *topics[Q_TOPIC_COUNT]; /* by enum q_topic */
    int linger_ms;
    int delivery_timeout_ms;
    int request_timeout_ms;
    int refresh_unknown; /* q_producer_opts.refresh_unknown */
    int max_inflight;

    /* Senders hold the read lock while they use rk; the poll thread takes
     * the write lock only to swap in a rebuilt instance. rk may be NULL
     * after a failed rebuild: sends then fail until the next attempt. */
    pthread_rwlock_t lock;
    rd_kafka_t *rk;

    atomic_int inflight;
    atomic_int fatal; /* set by error_cb, cleared by the rebuild */
    atomic_int closing;
    atomic_int closed; /* q_producer_close ran */
    atomic_long rebuilds;
    atomic_llong refreshed_ms; /* last metadata fetch for an unknown partition */
    pthread_t thread;
    int thread_started;
};

/* One queued record's completion, carried as the message opaque. */
typedef struct send_token {
    q_produce_cb cb;
    void *arg;
} send_token;

int q_producer_outcome(int kafka_err, int msg_status, int closing)
{
    if (kafka_err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    /* An error with PERSISTED cannot be trusted either way: unknown. */
    if (msg_status != RD_KAFKA_MSG_STATUS_NOT_PERSISTED)
        return ONS_EUNKNOWN;
    if (closing)
        return ONS_ECLOSED;
    if (kafka_err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT)
        return ONS_ETIMEDOUT;
    return ONS_EKAFKA;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    q_producer *p = opaque;
    send_token *t = m->_private;
    int err = q_producer_outcome(m->err, (int)rd_kafka_message_status(m), atomic_load(&p->closing));
    if (err)
        ons_log_warn("produce failed (%s): %s", ons_errname(err), rd_kafka_err2str(m->err));
    atomic_fetch_sub(&p->inflight, 1);
    if (t) {
        int32_t partition = err == 0 || err == ONS_EUNKNOWN ? m->partition : -1;
        t->cb(t->arg, err, partition < 0 ? -1 : partition, err ? -1 : m->offset);
        free(t);
    }
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    q_producer *p = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[256];
        rd_kafka_fatal_error(rk, why, sizeof why);
        ons_log_error("kafka producer fatal error, rebuilding: %s", why);
        atomic_store(&p->fatal, 1);
        return;
    }
    ons_log_warn("kafka producer: %s: %s", rd_kafka_err2name(err), reason);
}

static int conf_set(rd_kafka_conf_t *c, const char *k, const char *v)
{
    return q_kconf_set(c, "producer", k, v);
}

static int conf_set_int(rd_kafka_conf_t *c, const char *k, long v)
{
    return q_kconf_set_int(c, "producer", k, v);
}

/* Builds one librdkafka instance with the contract's settings. */
static rd_kafka_t *build(q_producer *p)
{
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    if (!c)
        return NULL;
    int rc = conf_set(c, "bootstrap.servers", p->brokers);
    rc |= q_kconf_security(c, "producer", &(q_ksec){p->sec_protocol, p->sec_ca});
    rc |= conf_set(c, "enable.idempotence", "true");
    rc |= conf_set(c, "acks", "all");
    rc |= conf_set(c, "partitioner", "murmur2_random");
    rc |= conf_set_int(c, "linger.ms", p->linger_ms);
    /* A produce request goes out when written: with Nagle on, one written
     * while an earlier one is unacknowledged waits for that ACK (the
     * broker's response, or its delayed ACK), so a round's records wait
     * for the previous round's. librdkafka's own low-latency advice; the
     * gain on this shared box is within its noise (bench/NOTES.md, "Join,
     * seventh round"). */
    rc |= conf_set(c, "socket.nagle.disable", "true");
    rc |= conf_set_int(c, "message.timeout.ms", p->delivery_timeout_ms);
    if (p->request_timeout_ms > 0) {
        rc |= conf_set_int(c, "request.timeout.ms", p->request_timeout_ms);
        /* Every other request too (metadata, the monitor's watermark queries:
         * librdkafka's 60 s default kept a query retried to a dying broker
         * waiting, and ingress's monitor blind, for over 30 s). */
        rc |= conf_set_int(c, "socket.timeout.ms", p->request_timeout_ms);
    }
    rc |= conf_set_int(c, "queue.buffering.max.messages", (long)p->max_inflight + 1024);
    if (rc) {
        rd_kafka_conf_destroy(c);
        return NULL;
    }
    rd_kafka_conf_set_opaque(c, p);
    rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    rd_kafka_conf_set_error_cb(c, on_error);
    rd_kafka_conf_set_log_cb(c, q_kconf_log);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    if (!rk) {
        ons_log_error("kafka producer: %s", err);
        rd_kafka_conf_destroy(c);
    }
    return rk;
}

/* Fails everything still queued in rk (the completions run with an error)
 * and destroys it. Runs on the poll thread, or in q_producer_free after it. */
static void retire(rd_kafka_t *rk)
{
    rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    for (int i = 0; i < 100 && rd_kafka_outq_len(rk) > 0; i++)
        rd_kafka_poll(rk, 50);
    rd_kafka_destroy(rk);
}

static void rebuild(q_producer *p)
{
    rd_kafka_t *fresh = build(p);
    pthread_rwlock_wrlock(&p->lock);
    rd_kafka_t *old = p->rk;
    p->rk = fresh;
    pthread_rwlock_unlock(&p->lock);
    atomic_store(&p->fatal, 0);
    atomic_fetch_add(&p->rebuilds, 1);
    if (old)
        retire(old);
}

/* The poll thread: serves delivery reports and errors, rebuilds on fatal. */
static void *poll_main(void *arg)
{
    q_producer *p = arg;
    while (!atomic_load(&p->closing)) {
        if (atomic_load(&p->fatal) || !p->rk) {
            rebuild(p);
            if (!p->rk) {
                struct timespec ts = {0, 200 * 1000 * 1000};
                nanosleep(&ts, NULL);
                continue;
            }
        }
        rd_kafka_poll(p->rk, 50);
    }
    return NULL;
}

int q_producer_new(const q_producer_opts *o, q_producer **out)
{
    if (!o->brokers || !o->topic || o->max_inflight < 1 || o->delivery_timeout_ms < 1 ||
        o->linger_ms < 0)
        return ONS_EINVAL;
    q_producer *p = calloc(1, sizeof *p);
    if (!p)
        return ONS_ENOMEM;
    int rc = ONS_ENOMEM;
    pthread_rwlock_init(&p->lock, NULL);
    p->brokers = strdup(o->brokers);
    p->topic = strdup(o->topic);
    p->sec_protocol = strdup(o->sec.protocol ? o->sec.protocol : "");
    p->sec_ca = strdup(o->sec.ca_location ? o->sec.ca_location : "");
    char control[256];
    if (q_topic_control_name(o->topic, o->control_topic, control, sizeof control) != 0) {
        rc = ONS_EINVAL;
        goto fail;
    }
    p->topics[Q_TOPIC_INTENTS] = p->topic;
    p->topics[Q_TOPIC_CONTROL] = strdup(control);
    if (!p->brokers || !p->topic || !p->topics[Q_TOPIC_CONTROL] || !p->sec_protocol || !p->sec_ca)
        goto fail;
    p->linger_ms = o->linger_ms;
    p->delivery_timeout_ms = o->delivery_timeout_ms;
    p->request_timeout_ms = o->request_timeout_ms;
    p->refresh_unknown = o->refresh_unknown;
    p->max_inflight = o->max_inflight;
    p->rk = build(p);
    if (!p->rk) {
        rc = ONS_EKAFKA;
        goto fail;
    }
    if (pthread_create(&p->thread, NULL, poll_main, p)) {
        rc = ONS_ENOMEM;
        goto fail;
    }
    p->thread_started = 1;
    *out = p;
    return 0;
fail:
    q_producer_free(p, 0);
    return rc;
}

void q_producer_close(q_producer *p, int flush_ms)
{
    if (!p || atomic_exchange(&p->closed, 1))
        return;
    /* Refuse new sends first: a sender past this check holds the read lock
     * until its record is queued, so the flush below sees it. */
    atomic_store(&p->closing, 1);
    pthread_rwlock_rdlock(&p->lock);
    if (p->rk && flush_ms > 0)
        rd_kafka_flush(p->rk, flush_ms);
    pthread_rwlock_unlock(&p->lock);
    if (p->thread_started)
        pthread_join(p->thread, NULL);
    pthread_rwlock_wrlock(&p->lock);
    rd_kafka_t *rk = p->rk;
    p->rk = NULL;
    pthread_rwlock_unlock(&p->lock);
    if (rk)
        retire(rk);
}

void q_producer_free(q_producer *p, int flush_ms)
{
    if (!p)
        return;
    q_producer_close(p, flush_ms);
    pthread_rwlock_destroy(&p->lock);
    free(p->brokers);
    free(p->sec_protocol);
    free(p->sec_ca);
    free(p->topic);
    free(p->topics[Q_TOPIC_CONTROL]);
    free(p);
}

/* Q_PRODUCER_REFRESH_* bound the metadata fetch a send to an unknown
 * partition makes: at most one a second for the producer, each waiting at
 * most the request timeout (capped), so a burst of sends to a partition the
 * topic really lacks costs one bounded wait, not one each. */
#define Q_PRODUCER_REFRESH_EVERY_MS 1000
#define Q_PRODUCER_REFRESH_WAIT_MS  2000

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Fetches topic's metadata so librdkafka learns partitions added since it
 * last read it (its own refresh is every topic.metadata.refresh.interval.ms,
 * 5 minutes by default, and a send to a partition it does not know fails at
 * once without one). Returns 1 if it fetched, 0 if one ran within the last
 * Q_PRODUCER_REFRESH_EVERY_MS or it failed. Caller holds the read lock. */
static int refresh_topic(q_producer *p, rd_kafka_t *rk, const char *topic)
{
    long long now = mono_ms(), last = atomic_load(&p->refreshed_ms);
    if (last && now - last < Q_PRODUCER_REFRESH_EVERY_MS)
        return 0;
    if (!atomic_compare_exchange_strong(&p->refreshed_ms, &last, now))
        return 0;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (!rkt)
        return 0;
    int wait = p->request_timeout_ms > 0 && p->request_timeout_ms < Q_PRODUCER_REFRESH_WAIT_MS
                   ? p->request_timeout_ms
                   : Q_PRODUCER_REFRESH_WAIT_MS;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, wait);
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return e == RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* One rd_kafka_producev of the record; caller holds the read lock. */
static rd_kafka_resp_err_t produce_one(rd_kafka_t *rk, const char *topic, int32_t part,
                                       const char *key, int klen, const void *value, size_t len,
                                       const char *request_id, send_token *t)
{
    if (request_id && request_id[0])
        return rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
            RD_KAFKA_V_KEY(key, (size_t)klen), RD_KAFKA_V_VALUE((void *)value, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADER(Q_HEADER_REQUEST_ID, request_id, (ssize_t)strlen(request_id)),
            RD_KAFKA_V_OPAQUE(t), RD_KAFKA_V_END);
    return rd_kafka_producev(
        rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part), RD_KAFKA_V_KEY(key, (size_t)klen),
        RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE(t), RD_KAFKA_V_END);
}

int q_producer_send_at(q_producer *p, int topic, int32_t partition, int64_t event_id,
                       const void *value, size_t len, const char *request_id, q_produce_cb cb,
                       void *arg)
{
    if (topic < 0 || topic >= Q_TOPIC_COUNT)
        return ONS_EINVAL;
    if (atomic_load(&p->closing))
        return ONS_ECLOSED;
    if (atomic_fetch_add(&p->inflight, 1) >= p->max_inflight) {
        atomic_fetch_sub(&p->inflight, 1);
        return ONS_EFULL;
    }
    int rc = 0;
    send_token *t = malloc(sizeof *t);
    if (!t) {
        rc = ONS_ENOMEM;
        goto fail;
    }
    t->cb = cb;
    t->arg = arg;
    char key[24];
    int klen = snprintf(key, sizeof key, "%" PRId64, event_id);
    /* An explicit partition bypasses the partitioner (the key still names
     * the event); a partition the topic lacks fails the send, it is never
     * placed elsewhere. */
    int32_t part = partition < 0 ? RD_KAFKA_PARTITION_UA : partition;

    pthread_rwlock_rdlock(&p->lock);
    rd_kafka_resp_err_t kerr = RD_KAFKA_RESP_ERR__STATE;
    if (p->rk)
        kerr = produce_one(p->rk, p->topics[topic], part, key, klen, value, len, request_id, t);
    /* A partition the cached metadata lacks may be one the topics grew
     * since: read the topic's metadata once and try again. */
    if (kerr == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION && partition >= 0 && p->refresh_unknown &&
        refresh_topic(p, p->rk, p->topics[topic]))
        kerr = produce_one(p->rk, p->topics[topic], part, key, klen, value, len, request_id, t);
    pthread_rwlock_unlock(&p->lock);
    if (kerr == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    rc = kerr == RD_KAFKA_RESP_ERR__QUEUE_FULL ? ONS_EFULL : ONS_EKAFKA;
    if (kerr == RD_KAFKA_RESP_ERR__FATAL)
        atomic_store(&p->fatal, 1);
fail:
    free(t);
    atomic_fetch_sub(&p->inflight, 1);
    return rc;
}

int q_producer_conf_get(q_producer *p, const char *key, char *out, size_t cap)
{
    int rc = ONS_EKAFKA;
    pthread_rwlock_rdlock(&p->lock);
    if (p->rk) {
        size_t n = cap;
        rc = rd_kafka_conf_get(rd_kafka_conf(p->rk), key, out, &n) == RD_KAFKA_CONF_OK
                 ? 0
                 : ONS_ENOTFOUND;
    }
    pthread_rwlock_unlock(&p->lock);
    return rc;
}

int q_producer_inflight(q_producer *p)
{
    return atomic_load(&p->inflight);
}

long q_producer_rebuilds(q_producer *p)
{
    return atomic_load(&p->rebuilds);
}

static int map_err(rd_kafka_resp_err_t e)
{
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    if (e == RD_KAFKA_RESP_ERR__TIMED_OUT)
        return ONS_ETIMEDOUT;
    return ONS_EKAFKA;
}

int q_producer_watermarks(q_producer *p, int topic, int32_t partition, int timeout_ms, int64_t *low,
                          int64_t *high)
{
    if (topic != Q_TOPIC_INTENTS && topic != Q_TOPIC_CONTROL)
        return ONS_EINVAL;
    int rc = ONS_EKAFKA;
    pthread_rwlock_rdlock(&p->lock);
    if (p->rk)
        rc = map_err(rd_kafka_query_watermark_offsets(p->rk, p->topics[topic], partition, low, high,
                                                      timeout_ms));
    pthread_rwlock_unlock(&p->lock);
    return rc;
}

int q_producer_partitions(q_producer *p, int timeout_ms, int *n)
{
    return q_producer_partitions_of(p, Q_TOPIC_INTENTS, timeout_ms, n);
}

int q_producer_partitions_of(q_producer *p, int topic, int timeout_ms, int *n)
{
    if (topic != Q_TOPIC_INTENTS && topic != Q_TOPIC_CONTROL)
        return ONS_EINVAL;
    int rc = ONS_EKAFKA;
    pthread_rwlock_rdlock(&p->lock);
    if (!p->rk)
        goto out;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, p->topics[topic], NULL);
    if (!rkt)
        goto out;
    const struct rd_kafka_metadata *md = NULL;
    rc = map_err(rd_kafka_metadata(p->rk, 0, rkt, &md, timeout_ms));
    if (rc == 0) {
        if (md->topic_cnt != 1 || md->topics[0].err || md->topics[0].partition_cnt < 1)
            rc = ONS_ENOTFOUND;
        else
            *n = md->topics[0].partition_cnt;
        rd_kafka_metadata_destroy(md);
    }
    rd_kafka_topic_destroy(rkt);
out:
    pthread_rwlock_unlock(&p->lock);
    return rc;
}

int32_t q_partition_of_event(int64_t event_id, int n)
{
    char key[24];
    int len = snprintf(key, sizeof key, "%" PRId64, event_id);
    /* librdkafka's own partitioner (it reads no topic): the one "murmur2_random"
     * uses for a keyed record. */
    return n > 0 ? rd_kafka_msg_partitioner_murmur2(NULL, key, (size_t)len, n, NULL, NULL) : 0;
}
