/* test_msg_encode.c - the record encoder writes JSON text directly (no
 * jansson tree); its output must be byte for byte what the jansson encoder
 * it replaced wrote (json_dumps, JSON_COMPACT, same key order), for every
 * record type and for strings that need escapes, and a string that is not
 * UTF-8 must be refused, as jansson refused it. The reference below is that
 * encoder, kept here. */
#include "common/err.h"
#include "queue/msg.h"
#include "queue/states.h"

#include "tests/check_run.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *type_name(enum q_msg_type t)
{
    return q_msg_type_name(t);
}

/* The jansson encoder as it was (queue/msg.c before issue 12's change).
 * NULL when jansson refused the record (a string that is not UTF-8). */
static char *reference(const q_msg *m)
{
    static const char *outcome[] = {"succeeded", "declined", "failed"};
    static const char *tkind[] = {"transfer", "cancel"};
    json_t *o = json_pack("{s:i, s:s, s:I, s:I}", "v", Q_MSG_VERSION, "type", type_name(m->type),
                          "event_id", (json_int_t)m->event_id, "sent_ms", (json_int_t)m->sent_ms);
    int rc = 0;
    switch (m->type) {
    case Q_MSG_INTENT:
        rc |= json_object_set_new(o, "user_id", json_integer(m->user_id));
        rc |= json_object_set_new(o, "quantity", json_integer(m->quantity));
        rc |= json_object_set_new(o, "adjacent", json_boolean(m->adjacent));
        if (m->section[0])
            rc |= json_object_set_new(o, "section", json_string(m->section));
        if (m->max_price_cents > 0)
            rc |= json_object_set_new(o, "max_price_cents", json_integer(m->max_price_cents));
        break;
    case Q_MSG_CANCEL:
        rc |= json_object_set_new(o, "user_id", json_integer(m->user_id));
        rc |= json_object_set_new(
            o, "kind", json_string(m->cancel_kind == Q_CANCEL_INTENT ? "intent" : "reservation"));
        rc |= json_object_set_new(o, "target_partition", json_integer(m->target_partition));
        rc |= json_object_set_new(o, "target_offset", json_integer(m->target_offset));
        if (m->cancel_kind == Q_CANCEL_RESERVATION)
            rc |= json_object_set_new(o, "reservation_id", json_integer(m->reservation_id));
        break;
    case Q_MSG_EVENT_STATUS:
        rc |= json_object_set_new(o, "status", json_string(m->status));
        break;
    case Q_MSG_ADMISSION:
        rc |= json_object_set_new(o, "max_active_holds", json_integer(m->max_active_holds));
        rc |=
            json_object_set_new(o, "admissions_per_minute", json_integer(m->admissions_per_minute));
        break;
    case Q_MSG_CHECKOUT:
        rc |= json_object_set_new(o, "user_id", json_integer(m->user_id));
        rc |= json_object_set_new(o, "reservation_id", json_integer(m->reservation_id));
        rc |= json_object_set_new(o, "payment_method", json_string(m->payment_method));
        break;
    case Q_MSG_PAYMENT_RESULT:
        rc |= json_object_set_new(o, "order_id", json_integer(m->order_id));
        rc |= json_object_set_new(o, "reservation_id", json_integer(m->reservation_id));
        rc |= json_object_set_new(o, "outcome", json_string(outcome[m->outcome]));
        rc |= json_object_set_new(o, "amount_cents", json_integer(m->amount_cents));
        if (m->charge_id[0])
            rc |= json_object_set_new(o, "gateway_charge_id", json_string(m->charge_id));
        break;
    case Q_MSG_TICKET:
        rc |= json_object_set_new(o, "user_id", json_integer(m->user_id));
        rc |= json_object_set_new(o, "ticket_id", json_integer(m->ticket_id));
        rc |= json_object_set_new(o, "kind", json_string(tkind[m->ticket_kind]));
        if (m->ticket_kind == Q_TICKET_TRANSFER)
            rc |= json_object_set_new(o, "to_user_id", json_integer(m->to_user_id));
        break;
    default:
        rc = 1;
    }
    char *s = rc ? NULL : json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* Encodes m both ways: the same text, or both refuse. */
static void same_as_reference(const q_msg *m)
{
    char *want = reference(m), *got = NULL;
    size_t len = 0;
    int rc = q_msg_encode(m, &got, &len);
    if (!want) {
        ck_assert_int_eq(rc, ONS_EINVAL);
        return;
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(got, want);
    ck_assert_uint_eq(len, strlen(want));
    q_msg back;
    char why[160];
    ck_assert_msg(q_msg_decode(got, len, &back, why, sizeof why) == 0, "%s: %s", got, why);
    free(got);
    free(want);
}

static q_msg base(enum q_msg_type t)
{
    q_msg m;
    memset(&m, 0, sizeof m);
    m.type = t;
    m.event_id = 42;
    m.sent_ms = 1795826032073LL;
    m.user_id = t == Q_MSG_PAYMENT_RESULT || t == Q_MSG_EVENT_STATUS || t == Q_MSG_ADMISSION
                    ? 0
                    : 9000000000LL;
    return m;
}

START_TEST(every_type_as_jansson_wrote_it)
{
    q_msg m = base(Q_MSG_INTENT);
    m.quantity = 4;
    same_as_reference(&m); /* no section, no price, adjacent false */
    m.adjacent = 1;
    strcpy(m.section, "Floor A");
    m.max_price_cents = 15000;
    same_as_reference(&m);
    m.event_id = INT64_MAX;
    m.user_id = INT64_MAX;
    m.sent_ms = 0;
    m.max_price_cents = INT64_MAX;
    m.quantity = Q_MAX_SEATS;
    same_as_reference(&m);

    m = base(Q_MSG_CANCEL);
    m.cancel_kind = Q_CANCEL_INTENT;
    m.target_partition = 3;
    m.target_offset = 123456789;
    same_as_reference(&m);
    m.cancel_kind = Q_CANCEL_RESERVATION;
    m.reservation_id = 0;
    same_as_reference(&m);
    m.reservation_id = (int64_t)3 << 40 | 77;
    same_as_reference(&m);

    m = base(Q_MSG_EVENT_STATUS);
    strcpy(m.status, "paused");
    same_as_reference(&m);

    m = base(Q_MSG_ADMISSION);
    same_as_reference(&m);
    m.max_active_holds = 500;
    m.admissions_per_minute = Q_MSG_MAX_ADMISSION;
    same_as_reference(&m);

    m = base(Q_MSG_CHECKOUT);
    m.reservation_id = 99;
    strcpy(m.payment_method, "pm_card_visa");
    same_as_reference(&m);
    strcpy(m.payment_method, "a\"b\\c/d~{}");
    same_as_reference(&m);

    m = base(Q_MSG_PAYMENT_RESULT);
    m.order_id = 5;
    m.reservation_id = 6;
    m.amount_cents = 12345;
    for (int o = Q_PAY_SUCCEEDED; o <= Q_PAY_FAILED; o++) {
        m.outcome = (enum q_pay_outcome)o;
        strcpy(m.charge_id, o == Q_PAY_SUCCEEDED ? "ch_1\"x" : "");
        same_as_reference(&m);
    }

    m = base(Q_MSG_TICKET);
    m.ticket_id = 7;
    m.ticket_kind = Q_TICKET_CANCEL;
    same_as_reference(&m);
    m.ticket_kind = Q_TICKET_TRANSFER;
    m.to_user_id = 8;
    same_as_reference(&m);
}
END_TEST

/* Sections are the fan's text: every escape jansson writes, UTF-8 of each
 * length, and byte strings that are not UTF-8 (refused, nothing sent). */
START_TEST(section_escapes_and_utf8)
{
    static const char *const sections[] = {
        "\"", "\\", "/", "\b\f\n\r\t", "\x01\x1f\x7f", "tab\there", "Café", "€ 10", "😀 VIP",
        "\xed\x9f\xbf",     /* U+D7FF: the last before the surrogates */
        "\xef\xbf\xbf",     /* U+FFFF */
        "\xf4\x8f\xbf\xbf", /* U+10FFFF */
        /* not UTF-8: */
        "\x80", "\xc0\xaf", "\xc3", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
        "\xf8\x88\x80\x80\x80", "ok\xff"};
    for (size_t i = 0; i < sizeof sections / sizeof *sections; i++) {
        q_msg m = base(Q_MSG_INTENT);
        m.quantity = 1;
        snprintf(m.section, sizeof m.section, "%s", sections[i]);
        same_as_reference(&m);
    }
    /* every single byte, and a pseudo-random mix of them, at full length */
    for (int c = 1; c < 256; c++) {
        q_msg m = base(Q_MSG_INTENT);
        m.quantity = 1;
        m.section[0] = (char)c;
        same_as_reference(&m);
    }
    unsigned x = 12345;
    for (int round = 0; round < 2000; round++) {
        q_msg m = base(Q_MSG_INTENT);
        m.quantity = 1;
        size_t n = 1 + round % Q_MSG_MAX_SECTION;
        for (size_t k = 0; k < n; k++) {
            x = x * 1103515245u + 12345u;
            unsigned c = (x >> 16) & 0xff;
            /* mostly printable, some controls, some UTF-8 lead/continuation bytes */
            m.section[k] = (char)(c % 4 == 0 ? 0x80 | (c & 0x3f) : c % 7 == 0 ? 1 + c % 31 : c);
            if (!m.section[k])
                m.section[k] = 'x';
        }
        m.section[n] = '\0';
        same_as_reference(&m);
    }
}
END_TEST

START_TEST(longest_record_fits)
{
    q_msg m = base(Q_MSG_INTENT);
    m.quantity = 1;
    m.max_price_cents = INT64_MAX;
    memset(m.section, 0x01, Q_MSG_MAX_SECTION); /* six bytes each escaped */
    m.section[Q_MSG_MAX_SECTION] = '\0';
    same_as_reference(&m);
    q_msg c = base(Q_MSG_PAYMENT_RESULT);
    c.order_id = c.reservation_id = c.amount_cents = INT64_MAX;
    memset(c.charge_id, '"', Q_MSG_MAX_CHARGE);
    c.charge_id[Q_MSG_MAX_CHARGE] = '\0';
    same_as_reference(&c);
}
END_TEST

int main(void)
{
    const ons_check_case cases[] = {
        {"every_type_as_jansson_wrote_it", every_type_as_jansson_wrote_it},
        {"section_escapes_and_utf8", section_escapes_and_utf8},
        {"longest_record_fits", longest_record_fits},
    };
    return ons_check_run("msg_encode", cases, sizeof cases / sizeof *cases, 60);
}
