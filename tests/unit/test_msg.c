/* test_msg.c - the topic record codec: round trips and strict rejection. */
#include "common/err.h"
#include "queue/msg.h"
#include "queue/states.h"

#include "tests/check_run.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static q_msg sample_intent(void)
{
    q_msg m = {0};
    m.type = Q_MSG_INTENT;
    m.event_id = 42;
    m.user_id = 9000000000LL;
    m.sent_ms = 1795826032073LL;
    m.quantity = 4;
    strcpy(m.section, "Floor A");
    m.max_price_cents = 15000;
    m.adjacent = 1;
    return m;
}

/* A record of type from user about event_id; every other field zero. */
static q_msg msg_of(enum q_msg_type type, int64_t event_id, int64_t user)
{
    q_msg m = {0};
    m.type = type;
    m.event_id = event_id;
    m.user_id = user;
    return m;
}

static void roundtrip(const q_msg *in)
{
    char *buf;
    size_t len;
    ck_assert_int_eq(q_msg_encode(in, &buf, &len), 0);
    q_msg out;
    char why[160];
    ck_assert_msg(q_msg_decode(buf, len, &out, why, sizeof why) == 0, "%s: %s", buf, why);
    ck_assert_int_eq(out.type, in->type);
    ck_assert_int_eq(out.event_id, in->event_id);
    ck_assert_int_eq(out.user_id, in->user_id);
    ck_assert_int_eq(out.sent_ms, in->sent_ms);
    ck_assert_int_eq(out.quantity, in->quantity);
    ck_assert_str_eq(out.section, in->section);
    ck_assert_int_eq(out.max_price_cents, in->max_price_cents);
    ck_assert_int_eq(out.adjacent, in->adjacent);
    ck_assert_int_eq(out.cancel_kind, in->cancel_kind);
    ck_assert_int_eq(out.target_partition, in->target_partition);
    ck_assert_int_eq(out.target_offset, in->target_offset);
    ck_assert_int_eq(out.reservation_id, in->reservation_id);
    ck_assert_str_eq(out.status, in->status);
    ck_assert_str_eq(out.payment_method, in->payment_method);
    ck_assert_int_eq(out.order_id, in->order_id);
    ck_assert_int_eq(out.outcome, in->outcome);
    ck_assert_str_eq(out.charge_id, in->charge_id);
    ck_assert_int_eq(out.amount_cents, in->amount_cents);
    ck_assert_int_eq(out.ticket_kind, in->ticket_kind);
    ck_assert_int_eq(out.ticket_id, in->ticket_id);
    ck_assert_int_eq(out.to_user_id, in->to_user_id);
    free(buf);
}

START_TEST(intent_roundtrip)
{
    q_msg m = sample_intent();
    roundtrip(&m);
    m.section[0] = '\0';
    m.max_price_cents = 0;
    m.adjacent = 0;
    roundtrip(&m);
}
END_TEST

START_TEST(cancel_and_status_roundtrip)
{
    q_msg c = msg_of(Q_MSG_CANCEL, 1, 2);
    c.cancel_kind = Q_CANCEL_RESERVATION;
    c.target_partition = 3;
    c.target_offset = 12345;
    c.reservation_id = q_seq_make(3, 12345);
    roundtrip(&c);
    c.cancel_kind = Q_CANCEL_INTENT;
    c.reservation_id = 0;
    roundtrip(&c);

    q_msg s = {0};
    s.type = Q_MSG_EVENT_STATUS;
    s.event_id = 7;
    strcpy(s.status, "paused");
    roundtrip(&s);
}
END_TEST

static int decode_str(const char *json)
{
    q_msg m;
    return q_msg_decode(json, strlen(json), &m, NULL, 0);
}

START_TEST(strict_rejections)
{
    const char *ok = "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,"
                     "\"quantity\":1,\"adjacent\":true}";
    ck_assert_int_eq(decode_str(ok), 0);
    const char *bad[] = {
        "",
        "[]",
        "{\"v\":1",
        "{\"v\":2,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
        "\"adjacent\":true}",
        "{\"v\":1,\"type\":\"teleport\",\"event_id\":1,\"sent_ms\":0}",
        "{\"v\":1,\"type\":\"intent\",\"event_id\":0,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
        "\"adjacent\":true}",
        "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":11,"
        "\"adjacent\":true}",
        "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
        "\"adjacent\":1}",
        "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
        "\"adjacent\":true,\"extra\":1}",
        "{\"v\":1,\"type\":\"intent\",\"event_id\":\"1\",\"sent_ms\":0,\"user_id\":1,\"quantity\":"
        "1,"
        "\"adjacent\":true}",
        "{\"v\":1,\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,"
        "\"quantity\":1,\"adjacent\":true}",
        "{\"v\":1,\"type\":\"cancel\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"kind\":"
        "\"reservation\",\"target_partition\":0,\"target_offset\":0}",
        "{\"v\":1,\"type\":\"event_status\",\"event_id\":1,\"sent_ms\":0,\"status\":\"sold\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(decode_str(bad[i]) == ONS_EPARSE, "accepted: %s", bad[i]);
}
END_TEST

START_TEST(checkout_payment_ticket_roundtrip)
{
    q_msg c = msg_of(Q_MSG_CHECKOUT, 4, 77);
    c.sent_ms = 5;
    c.reservation_id = 0; /* partition 0, offset 0 is a real reservation */
    strcpy(c.payment_method, "pm_card_visa");
    roundtrip(&c);

    q_msg p = {.type = Q_MSG_PAYMENT_RESULT,
               .event_id = 4,
               .order_id = q_seq_make(1, 9),
               .reservation_id = 3,
               .amount_cents = 10000};
    for (int o = Q_PAY_SUCCEEDED; o <= Q_PAY_FAILED; o++) { /* only a success names a charge */
        p.outcome = (enum q_pay_outcome)o;
        strcpy(p.charge_id, o == Q_PAY_SUCCEEDED ? "ch_00000001" : "");
        roundtrip(&p);
    }

    /* A transfer names the new owner; a cancel names none. */
    static const int64_t to_user_of[] = {[Q_TICKET_TRANSFER] = 78, [Q_TICKET_CANCEL] = 0};
    q_msg t = msg_of(Q_MSG_TICKET, 4, 77);
    t.ticket_id = 1234;
    for (int k = Q_TICKET_TRANSFER; k <= Q_TICKET_CANCEL; k++) {
        t.ticket_kind = (enum q_ticket_kind)k;
        t.to_user_id = to_user_of[k];
        roundtrip(&t);
    }
}
END_TEST

START_TEST(checkout_payment_ticket_rejections)
{
    const char *ok[] = {
        "{\"v\":1,\"type\":\"checkout\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,"
        "\"reservation_id\":0,\"payment_method\":\"pm_card_visa\"}",
        "{\"v\":1,\"type\":\"payment_result\",\"event_id\":1,\"sent_ms\":0,\"order_id\":5,"
        "\"reservation_id\":0,\"outcome\":\"succeeded\",\"amount_cents\":1,"
        "\"gateway_charge_id\":\"ch_1\"}",
        "{\"v\":1,\"type\":\"ticket\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,"
        "\"ticket_id\":3,\"kind\":\"cancel\"}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        ck_assert_msg(decode_str(ok[i]) == 0, "rejected: %s", ok[i]);
    const char *bad[] = {
        /* no reservation_id */
        "{\"v\":1,\"type\":\"checkout\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,"
        "\"payment_method\":\"pm_card_visa\"}",
        /* payment method with a space */
        "{\"v\":1,\"type\":\"checkout\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,"
        "\"reservation_id\":0,\"payment_method\":\"pm card\"}",
        /* unknown field */
        "{\"v\":1,\"type\":\"checkout\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,"
        "\"reservation_id\":0,\"payment_method\":\"pm_card_visa\",\"order_id\":1}",
        /* success without a charge id */
        "{\"v\":1,\"type\":\"payment_result\",\"event_id\":1,\"sent_ms\":0,\"order_id\":5,"
        "\"reservation_id\":0,\"outcome\":\"succeeded\",\"amount_cents\":1}",
        /* unknown outcome */
        "{\"v\":1,\"type\":\"payment_result\",\"event_id\":1,\"sent_ms\":0,\"order_id\":5,"
        "\"reservation_id\":0,\"outcome\":\"maybe\",\"amount_cents\":1}",
        /* negative amount */
        "{\"v\":1,\"type\":\"payment_result\",\"event_id\":1,\"sent_ms\":0,\"order_id\":5,"
        "\"reservation_id\":0,\"outcome\":\"declined\",\"amount_cents\":-1}",
        /* payment results carry no user */
        "{\"v\":1,\"type\":\"payment_result\",\"event_id\":1,\"sent_ms\":0,\"order_id\":5,"
        "\"reservation_id\":0,\"outcome\":\"declined\",\"amount_cents\":1,\"user_id\":1}",
        /* transfer without a recipient, cancel with one, transfer to oneself */
        "{\"v\":1,\"type\":\"ticket\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,"
        "\"ticket_id\":3,\"kind\":\"transfer\"}",
        "{\"v\":1,\"type\":\"ticket\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,"
        "\"ticket_id\":3,\"kind\":\"cancel\",\"to_user_id\":2}",
        "{\"v\":1,\"type\":\"ticket\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,"
        "\"ticket_id\":3,\"kind\":\"transfer\",\"to_user_id\":1}",
        "{\"v\":1,\"type\":\"ticket\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,"
        "\"ticket_id\":0,\"kind\":\"cancel\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(decode_str(bad[i]) == ONS_EPARSE, "accepted: %s", bad[i]);
}
END_TEST

START_TEST(encode_refuses_invalid)
{
    q_msg m = sample_intent();
    m.quantity = 0;
    char *buf = NULL;
    size_t len;
    ck_assert_int_eq(q_msg_encode(&m, &buf, &len), ONS_EINVAL);
    ck_assert_ptr_null(buf);
}
END_TEST

START_TEST(topic_of_each_type)
{
    /* docs/pipeline.md "Two lanes": joins and sale status with the joins,
     * money and cancels on the control lane */
    ck_assert_int_eq(q_msg_topic(Q_MSG_INTENT), Q_TOPIC_INTENTS);
    ck_assert_int_eq(q_msg_topic(Q_MSG_EVENT_STATUS), Q_TOPIC_INTENTS);
    ck_assert_int_eq(q_msg_topic(Q_MSG_CANCEL), Q_TOPIC_CONTROL);
    ck_assert_int_eq(q_msg_topic(Q_MSG_CHECKOUT), Q_TOPIC_CONTROL);
    ck_assert_int_eq(q_msg_topic(Q_MSG_PAYMENT_RESULT), Q_TOPIC_CONTROL);
    ck_assert_int_eq(q_msg_topic(Q_MSG_TICKET), Q_TOPIC_CONTROL);
    char name[16];
    ck_assert_int_eq(q_topic_control_name("intents", "", name, sizeof name), 0);
    ck_assert_str_eq(name, "intents.control");
    ck_assert_int_eq(q_topic_control_name("intents", NULL, name, sizeof name), 0);
    ck_assert_str_eq(name, "intents.control");
    ck_assert_int_eq(q_topic_control_name("intents", "ctl", name, sizeof name), 0);
    ck_assert_str_eq(name, "ctl");
    ck_assert_int_eq(q_topic_control_name("a-very-long-topic", "", name, sizeof name), ONS_EINVAL);
}
END_TEST

/* ---- the fast path for joins (msg.c) and jansson agree -------------------------------- */

/* Decodes buf both ways and asserts the same outcome: the same code, the
 * same message when rejected, the same fields when accepted. */
static void agree(const char *buf, size_t len)
{
    q_msg a, b;
    char wa[160] = "", wb[160] = "";
    memset(&a, 0x5a, sizeof a);
    memset(&b, 0xa5, sizeof b);
    int ra = q_msg_decode(buf, len, &a, wa, sizeof wa);
    int rb = q_msg_decode_json(buf, len, &b, wb, sizeof wb);
    ck_assert_msg(ra == rb, "%.*s: %d vs jansson %d (%s)", (int)len, buf, ra, rb, wb);
    if (ra) {
        ck_assert_msg(strcmp(wa, wb) == 0, "%.*s: '%s' vs '%s'", (int)len, buf, wa, wb);
        return;
    }
    ck_assert_int_eq(a.type, b.type);
    ck_assert_int_eq(a.event_id, b.event_id);
    ck_assert_int_eq(a.user_id, b.user_id);
    ck_assert_int_eq(a.sent_ms, b.sent_ms);
    ck_assert_int_eq(a.quantity, b.quantity);
    ck_assert_str_eq(a.section, b.section);
    ck_assert_int_eq(a.max_price_cents, b.max_price_cents);
    ck_assert_int_eq(a.adjacent, b.adjacent);
    ck_assert_int_eq(a.cancel_kind, b.cancel_kind);
    ck_assert_int_eq(a.target_partition, b.target_partition);
    ck_assert_int_eq(a.target_offset, b.target_offset);
    ck_assert_int_eq(a.reservation_id, b.reservation_id);
    ck_assert_str_eq(a.status, b.status);
    ck_assert_int_eq(a.order_id, b.order_id);
    ck_assert_int_eq(a.ticket_id, b.ticket_id);
}

static void agree_str(const char *s)
{
    agree(s, strlen(s));
}

/* Hand-picked edges: each is accepted or refused the same way by both. */
static const char *const edges[] = {
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":true}",
    /* Python's json.dumps spacing, keys in another order */
    "{\"type\": \"intent\", \"user_id\": 7, \"quantity\": 4, \"adjacent\": false, \"v\": 1, "
    "\"event_id\": 3, \"sent_ms\": 1795826032073}",
    " \t\r\n{ \"v\" : 1 , \"type\" : \"intent\" , \"event_id\" : 1 , \"sent_ms\" : 0 , "
    "\"user_id\" : 1 , \"quantity\" : 1 , \"adjacent\" : true } \n",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":true,\"section\":\"\",\"max_price_cents\":0}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":true,\"section\":\"Floor A\",\"max_price_cents\":15000}",
    /* escapes, non-ASCII and control characters in strings */
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":true,\"section\":\"Balc\xc3\xb3n\"}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":true,\"section\":\"A\\\"B\"}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":true,\"section\":\"A\\u0000B\"}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":true,\"section\":\"A\tB\"}",
    "{\"v\":1,\"type\":\"in\\u0074ent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":true}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"us\\u0065r_id\":1,\"quantity\":1,"
    "\"adjacent\":true}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":true,\"section\":\"\xff\"}",
    /* numbers: signs, zeros, fractions, exponents, size */
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":-0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":true}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":-5,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":true}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":01,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":true}",
    "{\"v\":1.0,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":true}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1e3,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":true}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":999999999999999999,"
    "\"quantity\":1,\"adjacent\":true}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":9223372036854775807,"
    "\"quantity\":1,\"adjacent\":true}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":9223372036854775808,"
    "\"quantity\":1,\"adjacent\":true}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":99999999999999999999999,"
    "\"quantity\":1,\"adjacent\":true}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":0,"
    "\"adjacent\":true}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":11,"
    "\"adjacent\":true}",
    /* shapes: missing, duplicate, unknown, null, nested, trailing */
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":true,\"adjacent\":false}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":true,\"x\":1}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":null}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":true,\"section\":{}}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":true} x",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":true,}",
    "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":truex}",
    "{\"v\":2,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,\"quantity\":1,"
    "\"adjacent\":true}",
    "{\"v\":1,\"type\":\"event_status\",\"event_id\":1,\"sent_ms\":0,\"status\":\"paused\"}",
    "{}",
    "[]",
    "",
    "{",
    "{\"v\"",
};

START_TEST(fast_path_agrees_with_jansson)
{
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++)
        agree_str(edges[i]);
    /* Sections of 64 and 65 characters (the limit). */
    char sec[70], rec[256];
    memset(sec, 'S', sizeof sec);
    for (int n = 63; n <= 66; n++) {
        snprintf(rec, sizeof rec,
                 "{\"v\":1,\"type\":\"intent\",\"event_id\":1,\"sent_ms\":0,\"user_id\":1,"
                 "\"quantity\":1,\"adjacent\":true,\"section\":\"%.*s\"}",
                 n, sec);
        agree_str(rec);
    }
    /* Every encoded join, then every truncation of it and every byte of it
     * replaced by characters that matter to a JSON reader. */
    q_msg m = sample_intent();
    char *buf;
    size_t len;
    ck_assert_int_eq(q_msg_encode(&m, &buf, &len), 0);
    agree(buf, len);
    static const char subst[] = "\"\\{}[],:0 -.e9tnx\x80";
    char *mut = malloc(len + 1);
    ck_assert_ptr_nonnull(mut);
    for (size_t cut = 0; cut < len; cut++)
        agree(buf, cut);
    for (size_t at = 0; at < len; at++) {
        for (size_t k = 0; k < sizeof subst - 1; k++) {
            memcpy(mut, buf, len);
            mut[at] = subst[k];
            agree(mut, len);
        }
    }
    free(mut);
    free(buf);
}
END_TEST

/* jansson's allocator refuses everything: only a decode that never calls
 * jansson still works. */
static void *no_alloc(size_t n)
{
    (void)n;
    return NULL;
}

static void no_free(void *p)
{
    free(p);
}

START_TEST(join_decode_allocates_nothing)
{
    char *buf;
    size_t len;
    q_msg in = sample_intent(), out;
    ck_assert_int_eq(q_msg_encode(&in, &buf, &len), 0);
    json_malloc_t old_malloc;
    json_free_t old_free;
    json_get_alloc_funcs(&old_malloc, &old_free);
    json_set_alloc_funcs(no_alloc, no_free);
    char why[160] = "";
    int rc = q_msg_decode(buf, len, &out, why, sizeof why);
    /* Any other record still goes through jansson (and fails here). */
    const char *st = "{\"v\":1,\"type\":\"event_status\",\"event_id\":1,\"sent_ms\":0,"
                     "\"status\":\"paused\"}";
    int rc_status = q_msg_decode(st, strlen(st), &out, NULL, 0);
    json_set_alloc_funcs(old_malloc, old_free);
    ck_assert_msg(rc == 0, "a join needed jansson: %s", why);
    ck_assert_int_eq(rc_status, ONS_EPARSE);
    ck_assert_int_eq(q_msg_decode(buf, len, &out, NULL, 0), 0);
    ck_assert_int_eq(out.user_id, in.user_id);
    ck_assert_str_eq(out.section, in.section);
    free(buf);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"intent_roundtrip", intent_roundtrip},
        {"cancel_and_status_roundtrip", cancel_and_status_roundtrip},
        {"strict_rejections", strict_rejections},
        {"encode_refuses_invalid", encode_refuses_invalid},
        {"checkout_payment_ticket_roundtrip", checkout_payment_ticket_roundtrip},
        {"checkout_payment_ticket_rejections", checkout_payment_ticket_rejections},
        {"topic_of_each_type", topic_of_each_type},
        {"fast_path_agrees_with_jansson", fast_path_agrees_with_jansson},
        {"join_decode_allocates_nothing", join_decode_allocates_nothing},
    };
    return ons_check_run("msg", cases, sizeof cases / sizeof *cases, 60);
}
