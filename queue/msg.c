/* msg.c - JSON codec for topic records; see msg.h and schemas/messages/. */
#include "queue/msg.h"
#include "common/err.h"
#include "queue/states.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const char *type_names[] = {
#define Q_MSG_NAME(e, s) s,
    Q_MSG_TYPES(Q_MSG_NAME)
#undef Q_MSG_NAME
};

static const char *outcome_names[] = {"succeeded", "declined", "failed"};
static const char *ticket_kind_names[] = {"transfer", "cancel"};

/* Index of s in names[n], or -1. */
static int name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* Payment methods and charge ids: 1..max printable ASCII, no spaces. */
static int token_valid(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n < 1 || n > max)
        return 0;
    for (; *s; s++)
        if (*s <= 0x20 || *s >= 0x7f)
            return 0;
    return 1;
}

int q_topic_control_name(const char *intents, const char *configured, char *out, size_t out_len)
{
    int n = configured && configured[0] ? snprintf(out, out_len, "%s", configured)
                                        : snprintf(out, out_len, "%s.control", intents);
    return n < 0 || (size_t)n >= out_len ? ONS_EINVAL : 0;
}

const char *q_msg_type_name(enum q_msg_type type)
{
    return (unsigned)type < Q_MSG_TYPE_COUNT ? type_names[type] : "unknown";
}

/* The statuses an event_status record may carry (queue/states.h). */
static int status_valid(const char *s)
{
    return q_event_status_settable(q_event_status_parse(s));
}

/* Checks the fields of m that the schema constrains. */
static int validate(const q_msg *m, char *why, size_t why_len)
{
    if ((unsigned)m->type >= Q_MSG_TYPE_COUNT) {
        snprintf(why, why_len, "unknown type");
        return ONS_EPARSE;
    }
    if (m->event_id <= 0) {
        snprintf(why, why_len, "event_id must be positive");
        return ONS_EPARSE;
    }
    if (m->sent_ms < 0) {
        snprintf(why, why_len, "sent_ms must not be negative");
        return ONS_EPARSE;
    }
    switch (m->type) {
    case Q_MSG_INTENT:
        if (m->user_id <= 0 || m->quantity < 1 || m->quantity > Q_MAX_SEATS ||
            m->max_price_cents < 0 || strlen(m->section) > Q_MSG_MAX_SECTION) {
            snprintf(why, why_len, "intent: user_id, quantity, section or price out of range");
            return ONS_EPARSE;
        }
        break;
    case Q_MSG_CANCEL:
        if (m->user_id <= 0 || m->target_partition < 0 || m->target_offset < 0 ||
            m->reservation_id < 0) {
            snprintf(why, why_len, "cancel: user_id, target or reservation_id out of range");
            return ONS_EPARSE;
        }
        break;
    case Q_MSG_EVENT_STATUS:
        if (!status_valid(m->status)) {
            snprintf(why, why_len, "event_status: unknown status");
            return ONS_EPARSE;
        }
        break;
    case Q_MSG_ADMISSION:
        if (m->max_active_holds < 0 || m->max_active_holds > Q_MSG_MAX_ADMISSION ||
            m->admissions_per_minute < 0 || m->admissions_per_minute > Q_MSG_MAX_ADMISSION) {
            snprintf(why, why_len, "admission: caps out of range");
            return ONS_EPARSE;
        }
        break;
    case Q_MSG_CHECKOUT:
        if (m->user_id <= 0 || m->reservation_id < 0 ||
            !token_valid(m->payment_method, Q_MSG_MAX_PM)) {
            snprintf(why, why_len, "checkout: user_id, reservation_id or payment_method invalid");
            return ONS_EPARSE;
        }
        break;
    case Q_MSG_PAYMENT_RESULT:
        if (m->user_id != 0 || m->order_id < 0 || m->reservation_id < 0 ||
            m->amount_cents < 0 || (unsigned)m->outcome > Q_PAY_FAILED ||
            (m->charge_id[0] && !token_valid(m->charge_id, Q_MSG_MAX_CHARGE)) ||
            (m->outcome == Q_PAY_SUCCEEDED && !m->charge_id[0])) {
            snprintf(why, why_len, "payment_result: ids, outcome, charge or amount invalid");
            return ONS_EPARSE;
        }
        break;
    case Q_MSG_TICKET:
        if (m->user_id <= 0 || m->ticket_id <= 0 || (unsigned)m->ticket_kind > Q_TICKET_CANCEL ||
            (m->ticket_kind == Q_TICKET_TRANSFER) != (m->to_user_id > 0) || m->to_user_id < 0 ||
            m->to_user_id == m->user_id) {
            snprintf(why, why_len, "ticket: user_id, ticket_id, kind or to_user_id invalid");
            return ONS_EPARSE;
        }
        break;
    default:
        break;
    }
    return 0;
}

int q_msg_encode(const q_msg *m, char **out, size_t *out_len)
{
    char why[128];
    if (validate(m, why, sizeof why))
        return ONS_EINVAL;
    json_t *o = json_pack("{s:i, s:s, s:I, s:I}", "v", Q_MSG_VERSION, "type",
                          type_names[m->type], "event_id", (json_int_t)m->event_id, "sent_ms",
                          (json_int_t)m->sent_ms);
    if (!o)
        return ONS_ENOMEM;
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
        rc |= json_object_set_new(o, "admissions_per_minute",
                                  json_integer(m->admissions_per_minute));
        break;
    case Q_MSG_CHECKOUT:
        rc |= json_object_set_new(o, "user_id", json_integer(m->user_id));
        rc |= json_object_set_new(o, "reservation_id", json_integer(m->reservation_id));
        rc |= json_object_set_new(o, "payment_method", json_string(m->payment_method));
        break;
    case Q_MSG_PAYMENT_RESULT:
        rc |= json_object_set_new(o, "order_id", json_integer(m->order_id));
        rc |= json_object_set_new(o, "reservation_id", json_integer(m->reservation_id));
        rc |= json_object_set_new(o, "outcome", json_string(outcome_names[m->outcome]));
        rc |= json_object_set_new(o, "amount_cents", json_integer(m->amount_cents));
        if (m->charge_id[0])
            rc |= json_object_set_new(o, "gateway_charge_id", json_string(m->charge_id));
        break;
    case Q_MSG_TICKET:
        rc |= json_object_set_new(o, "user_id", json_integer(m->user_id));
        rc |= json_object_set_new(o, "ticket_id", json_integer(m->ticket_id));
        rc |= json_object_set_new(o, "kind", json_string(ticket_kind_names[m->ticket_kind]));
        if (m->ticket_kind == Q_TICKET_TRANSFER)
            rc |= json_object_set_new(o, "to_user_id", json_integer(m->to_user_id));
        break;
    default:
        break;
    }
    char *s = rc ? NULL : json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return ONS_ENOMEM;
    *out = s;
    *out_len = strlen(s);
    return 0;
}

/* Field readers: each returns 0 or ONS_EPARSE with why filled. A missing
 * optional field leaves *out untouched. */
static int get_int(json_t *o, const char *key, int required, int64_t *out, char *why, size_t wl)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        if (!required)
            return 0;
        snprintf(why, wl, "missing field %s", key);
        return ONS_EPARSE;
    }
    if (!json_is_integer(v)) {
        snprintf(why, wl, "field %s must be an integer", key);
        return ONS_EPARSE;
    }
    *out = json_integer_value(v);
    return 0;
}

static int get_str(json_t *o, const char *key, int required, char *out, size_t cap, char *why,
                   size_t wl)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        if (!required)
            return 0;
        snprintf(why, wl, "missing field %s", key);
        return ONS_EPARSE;
    }
    if (!json_is_string(v) || json_string_length(v) >= cap) {
        snprintf(why, wl, "field %s must be a string shorter than %zu", key, cap);
        return ONS_EPARSE;
    }
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

/* Rejects any key of o not in allowed (NULL-terminated). */
static int only_fields(json_t *o, const char *const *allowed, char *why, size_t wl)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            ok |= strcmp(key, *a) == 0;
        if (!ok) {
            snprintf(why, wl, "unknown field %s", key);
            return ONS_EPARSE;
        }
    }
    return 0;
}

static const char *const intent_fields[] = {"v",        "type",    "event_id",        "sent_ms",
                                            "user_id",  "quantity", "adjacent",       "section",
                                            "max_price_cents", NULL};
static const char *const cancel_fields[] = {"v",    "type",           "event_id",
                                            "sent_ms", "user_id",     "kind",
                                            "target_partition", "target_offset", "reservation_id",
                                            NULL};
static const char *const status_fields[] = {"v", "type", "event_id", "sent_ms", "status", NULL};
static const char *const admission_fields[] = {"v", "type", "event_id", "sent_ms",
                                               "max_active_holds", "admissions_per_minute", NULL};
static const char *const checkout_fields[] = {"v",       "type",           "event_id",
                                              "sent_ms", "user_id",        "reservation_id",
                                              "payment_method", NULL};
static const char *const payres_fields[] = {"v",        "type",           "event_id",
                                            "sent_ms",  "order_id",       "reservation_id",
                                            "outcome",  "amount_cents",   "gateway_charge_id",
                                            NULL};
static const char *const ticket_fields[] = {"v",         "type", "event_id",   "sent_ms",
                                            "user_id",   "ticket_id", "kind", "to_user_id",
                                            NULL};

static int decode_obj(json_t *o, q_msg *m, char *why, size_t wl)
{
    int64_t v = 0, tmp;
    char type[24] = "";
    if (!json_is_object(o)) {
        snprintf(why, wl, "record is not a JSON object");
        return ONS_EPARSE;
    }
    if (get_int(o, "v", 1, &v, why, wl) || get_str(o, "type", 1, type, sizeof type, why, wl))
        return ONS_EPARSE;
    if (v != Q_MSG_VERSION) {
        snprintf(why, wl, "unsupported version %lld", (long long)v);
        return ONS_EPARSE;
    }
    memset(m, 0, sizeof *m);
    m->type = Q_MSG_TYPE_COUNT;
    for (int i = 0; i < Q_MSG_TYPE_COUNT; i++)
        if (strcmp(type, type_names[i]) == 0)
            m->type = (enum q_msg_type)i;
    if (get_int(o, "event_id", 1, &m->event_id, why, wl) ||
        get_int(o, "sent_ms", 1, &m->sent_ms, why, wl))
        return ONS_EPARSE;
    switch (m->type) {
    case Q_MSG_INTENT: {
        json_t *adj = json_object_get(o, "adjacent");
        tmp = 0;
        if (only_fields(o, intent_fields, why, wl) ||
            get_int(o, "user_id", 1, &m->user_id, why, wl) ||
            get_int(o, "quantity", 1, &tmp, why, wl) ||
            get_str(o, "section", 0, m->section, sizeof m->section, why, wl) ||
            get_int(o, "max_price_cents", 0, &m->max_price_cents, why, wl))
            return ONS_EPARSE;
        if (!json_is_boolean(adj)) {
            snprintf(why, wl, "field adjacent must be a boolean");
            return ONS_EPARSE;
        }
        if (tmp < 1 || tmp > Q_MAX_SEATS) {
            snprintf(why, wl, "quantity out of range");
            return ONS_EPARSE;
        }
        m->quantity = (int)tmp;
        m->adjacent = json_is_true(adj);
        break;
    }
    case Q_MSG_CANCEL: {
        char kind[16] = "";
        tmp = -1;
        if (only_fields(o, cancel_fields, why, wl) ||
            get_int(o, "user_id", 1, &m->user_id, why, wl) ||
            get_str(o, "kind", 1, kind, sizeof kind, why, wl) ||
            get_int(o, "target_partition", 1, &tmp, why, wl) ||
            get_int(o, "target_offset", 1, &m->target_offset, why, wl) ||
            get_int(o, "reservation_id", 0, &m->reservation_id, why, wl))
            return ONS_EPARSE;
        /* reservation_id = the intent's seq, and seq 0 (partition 0, offset
         * 0) is a real one: presence, not value, says it was given. */
        if (strcmp(kind, "reservation") == 0 && !json_object_get(o, "reservation_id")) {
            snprintf(why, wl, "missing field reservation_id");
            return ONS_EPARSE;
        }
        if (strcmp(kind, "intent") == 0) {
            m->cancel_kind = Q_CANCEL_INTENT;
        } else if (strcmp(kind, "reservation") == 0) {
            m->cancel_kind = Q_CANCEL_RESERVATION;
        } else {
            snprintf(why, wl, "unknown cancel kind");
            return ONS_EPARSE;
        }
        if (tmp < 0 || tmp > INT32_MAX) {
            snprintf(why, wl, "target_partition out of range");
            return ONS_EPARSE;
        }
        m->target_partition = (int32_t)tmp;
        break;
    }
    case Q_MSG_EVENT_STATUS:
        if (only_fields(o, status_fields, why, wl) ||
            get_str(o, "status", 1, m->status, sizeof m->status, why, wl))
            return ONS_EPARSE;
        break;
    case Q_MSG_ADMISSION:
        if (only_fields(o, admission_fields, why, wl) ||
            get_int(o, "max_active_holds", 1, &m->max_active_holds, why, wl) ||
            get_int(o, "admissions_per_minute", 1, &m->admissions_per_minute, why, wl))
            return ONS_EPARSE;
        break;
    case Q_MSG_CHECKOUT:
        m->reservation_id = -1;
        if (only_fields(o, checkout_fields, why, wl) ||
            get_int(o, "user_id", 1, &m->user_id, why, wl) ||
            get_int(o, "reservation_id", 1, &m->reservation_id, why, wl) ||
            get_str(o, "payment_method", 1, m->payment_method, sizeof m->payment_method, why, wl))
            return ONS_EPARSE;
        break;
    case Q_MSG_PAYMENT_RESULT: {
        char outcome[16] = "";
        m->order_id = m->reservation_id = -1;
        if (only_fields(o, payres_fields, why, wl) ||
            get_int(o, "order_id", 1, &m->order_id, why, wl) ||
            get_int(o, "reservation_id", 1, &m->reservation_id, why, wl) ||
            get_str(o, "outcome", 1, outcome, sizeof outcome, why, wl) ||
            get_int(o, "amount_cents", 1, &m->amount_cents, why, wl) ||
            get_str(o, "gateway_charge_id", 0, m->charge_id, sizeof m->charge_id, why, wl))
            return ONS_EPARSE;
        int k = name_index(outcome_names, 3, outcome);
        if (k < 0) {
            snprintf(why, wl, "unknown outcome");
            return ONS_EPARSE;
        }
        m->outcome = (enum q_pay_outcome)k;
        if (json_object_get(o, "gateway_charge_id") && !m->charge_id[0]) {
            snprintf(why, wl, "gateway_charge_id must not be empty");
            return ONS_EPARSE;
        }
        break;
    }
    case Q_MSG_TICKET: {
        char kind[16] = "";
        if (only_fields(o, ticket_fields, why, wl) ||
            get_int(o, "user_id", 1, &m->user_id, why, wl) ||
            get_int(o, "ticket_id", 1, &m->ticket_id, why, wl) ||
            get_str(o, "kind", 1, kind, sizeof kind, why, wl) ||
            get_int(o, "to_user_id", 0, &m->to_user_id, why, wl))
            return ONS_EPARSE;
        int k = name_index(ticket_kind_names, 2, kind);
        if (k < 0) {
            snprintf(why, wl, "unknown ticket kind");
            return ONS_EPARSE;
        }
        m->ticket_kind = (enum q_ticket_kind)k;
        break;
    }
    default:
        snprintf(why, wl, "unknown type %s", type);
        return ONS_EPARSE;
    }
    return validate(m, why, wl);
}

int q_msg_decode(const void *buf, size_t len, q_msg *m, char *why, size_t why_len)
{
    char scratch[160];
    if (!why) {
        why = scratch;
        why_len = sizeof scratch;
    }
    json_error_t jerr;
    json_t *o = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) {
        snprintf(why, why_len, "invalid JSON: %s", jerr.text);
        return ONS_EPARSE;
    }
    int rc = decode_obj(o, m, why, why_len);
    json_decref(o);
    return rc;
}
