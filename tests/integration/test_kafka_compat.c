/*
 * test_kafka_compat.c - proves the pinned librdkafka (Debian 12: 2.0.2) works
 * with the pinned broker (Kafka 3.9.1, KRaft): idempotent produce with
 * acks=all, keyed murmur2 partitioning, a consumer-group join, manual offset
 * commit and read-back.
 *
 * Run with no arguments it is a Check suite. Run as
 *   test_kafka_compat --partitions-for-keys N COUNT
 * it produces keys "0".."COUNT-1" to a fresh N-partition topic and prints
 * "key partition" lines from the delivery reports, which
 * kafka_partition_oracle.sh compares against the Java client's partitioner.
 *
 * Needs ONSALE_KAFKA_BROKERS (scripts/stack up sets the default).
 */
#include "tests/check_run.h"
#include "queue/producer.h"

#include <check.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Helpers run both inside Check tests and in --partitions-for-keys mode, so
 * they fail with abort() (Check reports the signal) rather than ck_assert. */
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: requirement failed: %s: ", __FILE__, __LINE__, #cond);         \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const char *brokers(void)
{
    const char *b = getenv("ONSALE_KAFKA_BROKERS");
    return b && *b ? b : "127.0.0.1:19092";
}

static void conf_set(rd_kafka_conf_t *c, const char *k, const char *v)
{
    char err[256];
    if (rd_kafka_conf_set(c, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "conf %s=%s: %s\n", k, v, err);
        abort();
    }
}

/* Creates a topic with a unique name; writes the name into out. */
static void create_topic(const char *prefix, int partitions, char *out, size_t cap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(out, cap, "%s-%d-%ld%09ld", prefix, (int)getpid(), (long)ts.tv_sec, ts.tv_nsec);

    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    conf_set(c, "bootstrap.servers", brokers());
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    REQUIRE(rk != NULL, "%s", err);
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(out, partitions, 1, err, sizeof err);
    REQUIRE(nt != NULL, "%s", err);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    REQUIRE(ev != NULL, "null");
    const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
    REQUIRE(res != NULL, "null");
    size_t n;
    const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
    REQUIRE(n == 1, "%zu results", n);
    REQUIRE(rd_kafka_topic_result_error(tr[0]) == RD_KAFKA_RESP_ERR_NO_ERROR, "%s",
            rd_kafka_topic_result_error_string(tr[0]));
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_destroy(rk);
}

/* Delivery bookkeeping: one slot per message, filled by the report. */
typedef struct delivery {
    int32_t partition;
    int64_t offset;
    rd_kafka_resp_err_t err;
    int done;
} delivery;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    delivery *d = m->_private;
    d->partition = m->partition;
    d->offset = m->offset;
    d->err = m->err;
    d->done = 1;
}

static rd_kafka_t *idempotent_producer(void)
{
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    conf_set(c, "bootstrap.servers", brokers());
    conf_set(c, "enable.idempotence", "true");
    conf_set(c, "acks", "all");
    conf_set(c, "partitioner", "murmur2_random");
    conf_set(c, "linger.ms", "5");
    rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof err);
    REQUIRE(rk != NULL, "%s", err);
    return rk;
}

/* Produces keys "0".."count-1" (value "v<key>") and waits for every report. */
static delivery *produce_keys(rd_kafka_t *rk, const char *topic, int count)
{
    delivery *d = calloc((size_t)count, sizeof *d);
    REQUIRE(d != NULL, "null");
    for (int i = 0; i < count; i++) {
        char key[16], val[24];
        int kl = snprintf(key, sizeof key, "%d", i);
        int vl = snprintf(val, sizeof val, "v%d", i);
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, (size_t)kl),
                    RD_KAFKA_V_VALUE(val, (size_t)vl), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_OPAQUE(&d[i]), RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        REQUIRE(e == RD_KAFKA_RESP_ERR_NO_ERROR, "produce: %s", rd_kafka_err2str(e));
        rd_kafka_poll(rk, 0);
    }
    REQUIRE(rd_kafka_flush(rk, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR, "flush timed out");
    return d;
}

START_TEST(idempotent_produce_acks_all)
{
    char topic[128];
    create_topic("compat-idem", 3, topic, sizeof topic);
    rd_kafka_t *rk = idempotent_producer();
    enum { N = 2000 };
    delivery *d = produce_keys(rk, topic, N);
    long per_part[3] = {0};
    for (int i = 0; i < N; i++) {
        ck_assert_msg(d[i].done && d[i].err == RD_KAFKA_RESP_ERR_NO_ERROR,
                      "message %d: done=%d err=%s", i, d[i].done, rd_kafka_err2str(d[i].err));
        ck_assert_int_ge(d[i].partition, 0);
        ck_assert_int_lt(d[i].partition, 3);
        ck_assert_int_eq(d[i].offset, per_part[d[i].partition]++); /* dense, in order */
    }
    /* The broker's high watermarks agree: nothing written twice. */
    long total = 0;
    for (int p = 0; p < 3; p++) {
        int64_t lo, hi;
        ck_assert_int_eq(rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        ck_assert_int_eq(hi, per_part[p]);
        total += hi;
    }
    ck_assert_int_eq(total, N);
    /* Idempotence was really negotiated: no fatal error and acks forced to all. */
    char err[256];
    ck_assert_int_eq(rd_kafka_fatal_error(rk, err, sizeof err), RD_KAFKA_RESP_ERR_NO_ERROR);
    free(d);
    rd_kafka_destroy(rk);
}
END_TEST

START_TEST(same_key_same_partition)
{
    char topic[128];
    create_topic("compat-key", 8, topic, sizeof topic);
    rd_kafka_t *rk = idempotent_producer();
    delivery *a = produce_keys(rk, topic, 200);
    delivery *b = produce_keys(rk, topic, 200);
    int used[8] = {0};
    for (int i = 0; i < 200; i++) {
        ck_assert_int_eq(a[i].partition, b[i].partition);
        /* ingress computes it without sending (a ticket claim's lane) */
        ck_assert_int_eq(a[i].partition, q_partition_of_event(i, 8));
        used[a[i].partition] = 1;
    }
    for (int p = 0; p < 8; p++)
        ck_assert_msg(used[p], "partition %d never chosen for 200 keys", p);
    free(a);
    free(b);
    rd_kafka_destroy(rk);
}
END_TEST

static rd_kafka_t *group_consumer(const char *group)
{
    char err[256];
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    conf_set(c, "bootstrap.servers", brokers());
    conf_set(c, "group.id", group);
    conf_set(c, "enable.auto.commit", "false");
    conf_set(c, "auto.offset.reset", "earliest");
    conf_set(c, "partition.assignment.strategy", "range");
    conf_set(c, "session.timeout.ms", "6000");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, c, err, sizeof err);
    ck_assert_msg(rk != NULL, "%s", err);
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

static void subscribe(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
    ck_assert_int_eq(rd_kafka_subscribe(rk, l), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(l);
}

/* Consumes until `want` messages arrived or 30 s passed; returns the count
 * and the highest offset seen per partition + 1 in next[]. */
static int consume(rd_kafka_t *rk, int want, int64_t *next, int parts)
{
    int got = 0;
    for (int i = 0; i < parts; i++)
        next[i] = -1;
    time_t end = time(NULL) + 30;
    while (got < want && time(NULL) < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (!m->err) {
            got++;
            if (m->partition < parts)
                next[m->partition] = m->offset + 1;
        }
        rd_kafka_message_destroy(m);
    }
    return got;
}

START_TEST(group_join_commit_and_read_back)
{
    char topic[128], group[160];
    create_topic("compat-group", 2, topic, sizeof topic);
    snprintf(group, sizeof group, "g-%s", topic);
    rd_kafka_t *p = idempotent_producer();
    free(produce_keys(p, topic, 100));

    rd_kafka_t *c = group_consumer(group);
    subscribe(c, topic);
    int64_t next[2];
    ck_assert_int_eq(consume(c, 100, next, 2), 100);

    /* The consumer joined the group and owns both partitions. */
    rd_kafka_topic_partition_list_t *asg;
    ck_assert_int_eq(rd_kafka_assignment(c, &asg), RD_KAFKA_RESP_ERR_NO_ERROR);
    ck_assert_int_eq(asg->cnt, 2);
    rd_kafka_topic_partition_list_destroy(asg);

    /* Manual commit of an explicit position (not the consumed one) ... */
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(offs, topic, 0)->offset = 7;
    rd_kafka_topic_partition_list_add(offs, topic, 1)->offset = next[1];
    ck_assert_int_eq(rd_kafka_commit(c, offs, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(offs);

    /* ... reads back exactly. */
    rd_kafka_topic_partition_list_t *q = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(q, topic, 0);
    rd_kafka_topic_partition_list_add(q, topic, 1);
    ck_assert_int_eq(rd_kafka_committed(c, q, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    ck_assert_int_eq(q->elems[0].offset, 7);
    ck_assert_int_eq(q->elems[1].offset, next[1]);
    rd_kafka_topic_partition_list_destroy(q);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);

    /* A new member of the group resumes at the committed position: it sees
     * partition 0 from offset 7 and nothing of partition 1. */
    c = group_consumer(group);
    subscribe(c, topic);
    int want = (int)(next[0] - 7);
    int64_t next2[2];
    ck_assert_int_eq(consume(c, want, next2, 2), want);
    ck_assert_int_eq(next2[0], next[0]);
    ck_assert_int_eq(next2[1], -1);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    rd_kafka_destroy(p);
}
END_TEST

static int partitions_for_keys(int parts, int count)
{
    char topic[128];
    create_topic("compat-oracle", parts, topic, sizeof topic);
    rd_kafka_t *rk = idempotent_producer();
    delivery *d = produce_keys(rk, topic, count);
    int rc = 0;
    for (int i = 0; i < count; i++) {
        if (d[i].err)
            rc = 1;
        printf("%d %d\n", i, d[i].partition);
    }
    free(d);
    rd_kafka_destroy(rk);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--partitions-for-keys") == 0)
        return partitions_for_keys(atoi(argv[2]), atoi(argv[3]));

    const ons_check_case cases[] = {
        {"idempotent_produce_acks_all", idempotent_produce_acks_all},
        {"same_key_same_partition", same_key_same_partition},
        {"group_join_commit_and_read_back", group_join_commit_and_read_back},
    };
    return ons_check_run("kafka_compat", cases, sizeof cases / sizeof *cases, 120);
}
