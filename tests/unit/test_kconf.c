/* test_kconf.c - the Kafka link's security (q_kconf_security): what every
 * librdkafka client of Onsale is given for kafka.security_protocol and
 * kafka.ssl_ca_location. */
#include "common/err.h"
#include "queue/kconf.h"

#include "tests/check_run.h"

#include <check.h>
#include <librdkafka/rdkafka.h>
#include <string.h>

/* conf's value of k (librdkafka's own view of what was set). */
static const char *get(rd_kafka_conf_t *c, const char *k)
{
    static char v[512];
    size_t n = sizeof v;
    return rd_kafka_conf_get(c, k, v, &n) == RD_KAFKA_CONF_OK ? v : "(unset)";
}

START_TEST(unset_and_plaintext_stay_plaintext)
{
    const q_ksec cases[] = {{NULL, NULL}, {"", ""}, {"plaintext", ""}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        ck_assert_int_eq(q_kconf_security(c, "test", &cases[i]), 0);
        ck_assert_str_eq(get(c, "security.protocol"), "plaintext");
        rd_kafka_conf_destroy(c);
    }
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    ck_assert_int_eq(q_kconf_security(c, "test", NULL), 0);
    ck_assert_str_eq(get(c, "security.protocol"), "plaintext");
    rd_kafka_conf_destroy(c);
}
END_TEST

START_TEST(ssl_sets_ca_and_host_name_check)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    ck_assert_int_eq(q_kconf_security(c, "test", &(q_ksec){"ssl", "/etc/onsale/ca.crt"}), 0);
    ck_assert_str_eq(get(c, "security.protocol"), "ssl");
    ck_assert_str_eq(get(c, "ssl.ca.location"), "/etc/onsale/ca.crt");
    ck_assert_str_eq(get(c, "ssl.endpoint.identification.algorithm"), "https");
    rd_kafka_conf_destroy(c);
    /* no CA: OpenSSL's default store (a broker certificate from a public CA) */
    c = rd_kafka_conf_new();
    ck_assert_int_eq(q_kconf_security(c, "test", &(q_ksec){"ssl", ""}), 0);
    ck_assert_str_eq(get(c, "security.protocol"), "ssl");
    rd_kafka_conf_destroy(c);
}
END_TEST

/* A CA given for a plaintext link would silently not apply; an unknown
 * protocol (the options table refuses it first) is refused here too. */
START_TEST(refuses_a_ca_on_plaintext_and_unknown_protocols)
{
    const q_ksec bad[] = {{"plaintext", "/etc/onsale/ca.crt"},
                          {NULL, "/etc/onsale/ca.crt"},
                          {"SSL", NULL},
                          {"sasl_ssl", NULL},
                          {"tls", NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        rd_kafka_conf_t *c = rd_kafka_conf_new();
        ck_assert_int_eq(q_kconf_security(c, "test", &bad[i]), ONS_EINVAL);
        rd_kafka_conf_destroy(c);
    }
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"unset_and_plaintext_stay_plaintext", unset_and_plaintext_stay_plaintext},
        {"ssl_sets_ca_and_host_name_check", ssl_sets_ca_and_host_name_check},
        {"refuses_a_ca_on_plaintext_and_unknown_protocols",
         refuses_a_ca_on_plaintext_and_unknown_protocols},
    };
    return ons_check_run("kconf", cases, sizeof cases / sizeof *cases, 60);
}
