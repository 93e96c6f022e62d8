/* test_producer_outcome.c - how a delivery report becomes an outcome
 * (q_producer_outcome): persisted, definitely not persisted, or unknown.
 * An unknown outcome must never be reported as "nothing was queued". */
#include "common/err.h"
#include "queue/producer.h"

#include "tests/check_run.h"

#include <check.h>
#include <librdkafka/rdkafka.h>

START_TEST(success_is_persisted)
{
    ck_assert_int_eq(
        q_producer_outcome(RD_KAFKA_RESP_ERR_NO_ERROR, RD_KAFKA_MSG_STATUS_PERSISTED, 0), 0);
}
END_TEST

/* Sent but unanswered: a timeout after transmission, a purge of in-flight
 * records (producer rebuilt or closed), a broker error after the write. */
START_TEST(possibly_persisted_is_unknown)
{
    const int errs[] = {RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, RD_KAFKA_RESP_ERR__PURGE_INFLIGHT,
                        RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                        RD_KAFKA_RESP_ERR__TRANSPORT};
    for (size_t i = 0; i < sizeof errs / sizeof *errs; i++) {
        for (int closing = 0; closing < 2; closing++) {
            ck_assert_int_eq(
                q_producer_outcome(errs[i], RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED, closing),
                ONS_EUNKNOWN);
            /* An error that claims PERSISTED is not trusted either way. */
            ck_assert_int_eq(q_producer_outcome(errs[i], RD_KAFKA_MSG_STATUS_PERSISTED, closing),
                             ONS_EUNKNOWN);
        }
    }
}
END_TEST

START_TEST(not_persisted_is_definite)
{
    ck_assert_int_eq(
        q_producer_outcome(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, RD_KAFKA_MSG_STATUS_NOT_PERSISTED, 0),
        ONS_ETIMEDOUT);
    ck_assert_int_eq(
        q_producer_outcome(RD_KAFKA_RESP_ERR__PURGE_QUEUE, RD_KAFKA_MSG_STATUS_NOT_PERSISTED, 1),
        ONS_ECLOSED);
    ck_assert_int_eq(q_producer_outcome(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
                                        RD_KAFKA_MSG_STATUS_NOT_PERSISTED, 0),
                     ONS_EKAFKA);
    ck_assert_int_eq(q_producer_outcome(RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION,
                                        RD_KAFKA_MSG_STATUS_NOT_PERSISTED, 0),
                     ONS_EKAFKA);
}
END_TEST

/* The instance a producer builds: the log's contract (acks=all, an
 * idempotent producer) and a produce request sent at once, not held by
 * Nagle for the broker's delayed ACK (bench/NOTES.md, "Join, seventh
 * round"). No broker is needed: librdkafka connects in the background. */
START_TEST(instance_keeps_contract_and_sends_at_once)
{
    q_producer_opts o = {.brokers = "127.0.0.1:1",
                         .topic = "intents",
                         .linger_ms = 2,
                         .delivery_timeout_ms = 1000,
                         .max_inflight = 16};
    q_producer *p = NULL;
    ck_assert_int_eq(q_producer_new(&o, &p), 0);
    char v[64];
    ck_assert_int_eq(q_producer_conf_get(p, "acks", v, sizeof v), 0);
    ck_assert_str_eq(v, "-1"); /* all */
    ck_assert_int_eq(q_producer_conf_get(p, "enable.idempotence", v, sizeof v), 0);
    ck_assert_str_eq(v, "true");
    ck_assert_int_eq(q_producer_conf_get(p, "socket.nagle.disable", v, sizeof v), 0);
    ck_assert_str_eq(v, "true");
    ck_assert_int_eq(q_producer_conf_get(p, "no.such.key", v, sizeof v), ONS_ENOTFOUND);
    q_producer_free(p, 0);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"success_is_persisted", success_is_persisted},
        {"possibly_persisted_is_unknown", possibly_persisted_is_unknown},
        {"not_persisted_is_definite", not_persisted_is_definite},
        {"instance_keeps_contract_and_sends_at_once", instance_keeps_contract_and_sends_at_once},
    };
    return ons_check_run("producer_outcome", cases, sizeof cases / sizeof *cases, 60);
}
