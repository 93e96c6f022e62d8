/* msg.c - JSON codec for topic records; see msg.h and schemas/messages/. */
#include "queue/msg.h"
#include "common/err.h"
#include "queue/states.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Per-type rules the schema states: each returns NULL when m obeys them,
 * else the reason. */
static const char *intent_invalid(const q_msg *m)
{
    if (m->user_id <= 0 || m->quantity < 1 || m->quantity > Q_MAX_SEATS || m->max_price_cents < 0 ||
        strlen(m->section) > Q_MSG_MAX_SECTION)
        return "intent: user_id, quantity, section or price out of range";
    return NULL;
}

static const char *cancel_invalid(const q_msg *m)
{
    if (m->user_id <= 0 || m->target_partition < 0 || m->target_offset < 0 || m->reservation_id < 0)
        return "cancel: user_id, target or reservation_id out of range";
    return NULL;
}

static const char *status_invalid(const q_msg *m)
{
    return status_valid(m->status) ? NULL : "event_status: unknown status";
}

static const char *admission_invalid(const q_msg *m)
{
    if (m->max_active_holds < 0 || m->max_active_holds > Q_MSG_MAX_ADMISSION ||
        m->admissions_per_minute < 0 || m->admissions_per_minute > Q_MSG_MAX_ADMISSION)
        return "admission: caps out of range";
    return NULL;
}

static const char *checkout_invalid(const q_msg *m)
{
    if (m->user_id <= 0 || m->reservation_id < 0 || !token_valid(m->payment_method, Q_MSG_MAX_PM))
        return "checkout: user_id, reservation_id or payment_method invalid";
    return NULL;
}

static const char *payres_invalid(const q_msg *m)
{
    if (m->user_id != 0 || m->order_id < 0 || m->reservation_id < 0 || m->amount_cents < 0 ||
        (unsigned)m->outcome > Q_PAY_FAILED ||
        (m->charge_id[0] && !token_valid(m->charge_id, Q_MSG_MAX_CHARGE)) ||
        (m->outcome == Q_PAY_SUCCEEDED && !m->charge_id[0]))
        return "payment_result: ids, outcome, charge or amount invalid";
    return NULL;
}

static const char *ticket_invalid(const q_msg *m)
{
    if (m->user_id <= 0 || m->ticket_id <= 0 || (unsigned)m->ticket_kind > Q_TICKET_CANCEL ||
        (m->ticket_kind == Q_TICKET_TRANSFER) != (m->to_user_id > 0) || m->to_user_id < 0 ||
        m->to_user_id == m->user_id)
        return "ticket: user_id, ticket_id, kind or to_user_id invalid";
    return NULL;
}

/* ---- encoding: JSON text written directly ------------------------------------------
 *
 * A record is a flat object of integers, booleans and short strings, so it
 * is written as text without building a jansson tree (the tree and its dump
 * were about a tenth of a join's instructions in ingress). The output is
 * what json_dumps(JSON_COMPACT) wrote for the same record: the same key
 * order and escapes, so the decoder, the schemas and records already in the
 * log are unaffected (test_msg checks it against jansson). */

/* Every record fits: at most 10 integer fields (20 digits each), three
 * strings of at most Q_MSG_MAX_PM / Q_MSG_MAX_CHARGE / Q_MSG_MAX_SECTION
 * bytes, each byte at most 6 escaped, and their keys. */
#define MSG_TEXT_MAX 2048

typedef struct jbuf {
    char *p, *end;
    int bad; /* 1: a string was not valid UTF-8, or the text did not fit */
} jbuf;

static void put_raw(jbuf *b, const char *s, size_t n)
{
    if ((size_t)(b->end - b->p) < n) {
        b->bad = 1;
        return;
    }
    memcpy(b->p, s, n);
    b->p += n;
}

/* ,"key": (no comma before the first key: the envelope writes it). */
static void put_key(jbuf *b, const char *key)
{
    put_raw(b, ",\"", 2);
    put_raw(b, key, strlen(key));
    put_raw(b, "\":", 2);
}

static void put_int(jbuf *b, const char *key, int64_t v)
{
    char tmp[24];
    size_t n = sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--n] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--n] = '-';
    put_key(b, key);
    put_raw(b, tmp + n, sizeof tmp - n);
}

static void put_bool(jbuf *b, const char *key, int v)
{
    put_key(b, key);
    if (v)
        put_raw(b, "true", 4);
    else
        put_raw(b, "false", 5);
}

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0: the
 * checks jansson makes (no overlong forms, no surrogates, <= U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A JSON string: '"' and '\' escaped, control characters as \b \f \n \r
 * \t or \u00XX (jansson's spelling), everything else as is. */
/* Writes the escape of the ASCII control character, quote or backslash c
 * as jansson writes it. */
static void put_escape(jbuf *b, unsigned c)
{
    static const char hex[] = "0123456789ABCDEF";
    /* The characters with a two-character escape, and its letter. */
    static const char letter[128] = {['"'] = '"',  ['\\'] = '\\', ['\b'] = 'b', ['\f'] = 'f',
                                     ['\n'] = 'n', ['\r'] = 'r',  ['\t'] = 't'};
    if (c < sizeof letter && letter[c]) {
        put_raw(b, (const char[]){'\\', letter[c]}, 2);
        return;
    }
    put_raw(b, (const char[]){'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]}, 6);
}

static void put_str(jbuf *b, const char *key, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    put_key(b, key);
    put_raw(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        size_t run = i;
        while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
            run++;
        put_raw(b, (const char *)s + i, run - i);
        i = run;
        if (i == n)
            break;
        if (s[i] >= 0x80) {
            size_t len = utf8_len(s + i, n - i);
            if (!len) {
                b->bad = 1;
                return;
            }
            put_raw(b, (const char *)s + i, len);
            i += len;
            continue;
        }
        put_escape(b, s[i]);
        i++;
    }
    put_raw(b, "\"", 1);
}

/* Per-type body writers: each writes its fields after the envelope, in the
 * order the jansson encoder used. */
static void intent_encode(jbuf *b, const q_msg *m)
{
    put_int(b, "user_id", m->user_id);
    put_int(b, "quantity", m->quantity);
    put_bool(b, "adjacent", m->adjacent);
    if (m->section[0])
        put_str(b, "section", m->section);
    if (m->max_price_cents > 0)
        put_int(b, "max_price_cents", m->max_price_cents);
}

static void cancel_encode(jbuf *b, const q_msg *m)
{
    put_int(b, "user_id", m->user_id);
    put_str(b, "kind", m->cancel_kind == Q_CANCEL_INTENT ? "intent" : "reservation");
    put_int(b, "target_partition", m->target_partition);
    put_int(b, "target_offset", m->target_offset);
    if (m->cancel_kind == Q_CANCEL_RESERVATION)
        put_int(b, "reservation_id", m->reservation_id);
}

static void status_encode(jbuf *b, const q_msg *m)
{
    put_str(b, "status", m->status);
}

static void admission_encode(jbuf *b, const q_msg *m)
{
    put_int(b, "max_active_holds", m->max_active_holds);
    put_int(b, "admissions_per_minute", m->admissions_per_minute);
}

static void checkout_encode(jbuf *b, const q_msg *m)
{
    put_int(b, "user_id", m->user_id);
    put_int(b, "reservation_id", m->reservation_id);
    put_str(b, "payment_method", m->payment_method);
}

static void payres_encode(jbuf *b, const q_msg *m)
{
    put_int(b, "order_id", m->order_id);
    put_int(b, "reservation_id", m->reservation_id);
    put_str(b, "outcome", outcome_names[m->outcome]);
    put_int(b, "amount_cents", m->amount_cents);
    if (m->charge_id[0])
        put_str(b, "gateway_charge_id", m->charge_id);
}

static void ticket_encode(jbuf *b, const q_msg *m)
{
    put_int(b, "user_id", m->user_id);
    put_int(b, "ticket_id", m->ticket_id);
    put_str(b, "kind", ticket_kind_names[m->ticket_kind]);
    if (m->ticket_kind == Q_TICKET_TRANSFER)
        put_int(b, "to_user_id", m->to_user_id);
}

/* Field readers: each returns 0 or ONS_EPARSE with why filled. A missing
 * optional field leaves *out untouched. */

/* Sets *v to o's field key: 0 (*v NULL when an optional field is missing),
 * or ONS_EPARSE when a required one is. */
static int get_field(json_t *o, const char *key, int required, json_t **v, char *why, size_t wl)
{
    *v = json_object_get(o, key);
    if (!*v && required) {
        snprintf(why, wl, "missing field %s", key);
        return ONS_EPARSE;
    }
    return 0;
}

static int get_int(json_t *o, const char *key, int required, int64_t *out, char *why, size_t wl)
{
    json_t *v;
    if (get_field(o, key, required, &v, why, wl))
        return ONS_EPARSE;
    if (!v)
        return 0;
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
    json_t *v;
    if (get_field(o, key, required, &v, why, wl))
        return ONS_EPARSE;
    if (!v)
        return 0;
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

/* Fills why and returns ONS_EPARSE: the one way a body reader fails. */
static int reject(char *why, size_t wl, const char *reason)
{
    snprintf(why, wl, "%s", reason);
    return ONS_EPARSE;
}

/* Per-type body readers: the envelope (v, type, event_id, sent_ms) is read
 * and the field set checked before these run. */
static int intent_decode(json_t *o, q_msg *m, char *why, size_t wl)
{
    json_t *adj = json_object_get(o, "adjacent");
    int64_t quantity = 0;
    if (get_int(o, "user_id", 1, &m->user_id, why, wl) ||
        get_int(o, "quantity", 1, &quantity, why, wl) ||
        get_str(o, "section", 0, m->section, sizeof m->section, why, wl) ||
        get_int(o, "max_price_cents", 0, &m->max_price_cents, why, wl))
        return ONS_EPARSE;
    if (!json_is_boolean(adj))
        return reject(why, wl, "field adjacent must be a boolean");
    if (quantity < 1 || quantity > Q_MAX_SEATS)
        return reject(why, wl, "quantity out of range");
    m->quantity = (int)quantity;
    m->adjacent = json_is_true(adj);
    return 0;
}

static int cancel_decode(json_t *o, q_msg *m, char *why, size_t wl)
{
    char kind[16] = "";
    int64_t partition = -1;
    if (get_int(o, "user_id", 1, &m->user_id, why, wl) ||
        get_str(o, "kind", 1, kind, sizeof kind, why, wl) ||
        get_int(o, "target_partition", 1, &partition, why, wl) ||
        get_int(o, "target_offset", 1, &m->target_offset, why, wl) ||
        get_int(o, "reservation_id", 0, &m->reservation_id, why, wl))
        return ONS_EPARSE;
    /* reservation_id = the intent's seq, and seq 0 (partition 0, offset
     * 0) is a real one: presence, not value, says it was given. */
    if (strcmp(kind, "reservation") == 0 && !json_object_get(o, "reservation_id"))
        return reject(why, wl, "missing field reservation_id");
    if (strcmp(kind, "intent") == 0)
        m->cancel_kind = Q_CANCEL_INTENT;
    else if (strcmp(kind, "reservation") == 0)
        m->cancel_kind = Q_CANCEL_RESERVATION;
    else
        return reject(why, wl, "unknown cancel kind");
    if (partition < 0 || partition > INT32_MAX)
        return reject(why, wl, "target_partition out of range");
    m->target_partition = (int32_t)partition;
    return 0;
}

static int status_decode(json_t *o, q_msg *m, char *why, size_t wl)
{
    return get_str(o, "status", 1, m->status, sizeof m->status, why, wl);
}

static int admission_decode(json_t *o, q_msg *m, char *why, size_t wl)
{
    if (get_int(o, "max_active_holds", 1, &m->max_active_holds, why, wl) ||
        get_int(o, "admissions_per_minute", 1, &m->admissions_per_minute, why, wl))
        return ONS_EPARSE;
    return 0;
}

static int checkout_decode(json_t *o, q_msg *m, char *why, size_t wl)
{
    m->reservation_id = -1;
    if (get_int(o, "user_id", 1, &m->user_id, why, wl) ||
        get_int(o, "reservation_id", 1, &m->reservation_id, why, wl) ||
        get_str(o, "payment_method", 1, m->payment_method, sizeof m->payment_method, why, wl))
        return ONS_EPARSE;
    return 0;
}

static int payres_decode(json_t *o, q_msg *m, char *why, size_t wl)
{
    char outcome[16] = "";
    m->order_id = m->reservation_id = -1;
    if (get_int(o, "order_id", 1, &m->order_id, why, wl) ||
        get_int(o, "reservation_id", 1, &m->reservation_id, why, wl) ||
        get_str(o, "outcome", 1, outcome, sizeof outcome, why, wl) ||
        get_int(o, "amount_cents", 1, &m->amount_cents, why, wl) ||
        get_str(o, "gateway_charge_id", 0, m->charge_id, sizeof m->charge_id, why, wl))
        return ONS_EPARSE;
    int k = name_index(outcome_names, 3, outcome);
    if (k < 0)
        return reject(why, wl, "unknown outcome");
    m->outcome = (enum q_pay_outcome)k;
    if (json_object_get(o, "gateway_charge_id") && !m->charge_id[0])
        return reject(why, wl, "gateway_charge_id must not be empty");
    return 0;
}

static int ticket_decode(json_t *o, q_msg *m, char *why, size_t wl)
{
    char kind[16] = "";
    if (get_int(o, "user_id", 1, &m->user_id, why, wl) ||
        get_int(o, "ticket_id", 1, &m->ticket_id, why, wl) ||
        get_str(o, "kind", 1, kind, sizeof kind, why, wl) ||
        get_int(o, "to_user_id", 0, &m->to_user_id, why, wl))
        return ONS_EPARSE;
    int k = name_index(ticket_kind_names, 2, kind);
    if (k < 0)
        return reject(why, wl, "unknown ticket kind");
    m->ticket_kind = (enum q_ticket_kind)k;
    return 0;
}

static const char *const intent_fields[] = {
    "v",        "type",     "event_id", "sent_ms",         "user_id",
    "quantity", "adjacent", "section",  "max_price_cents", NULL};
static const char *const cancel_fields[] = {"v",
                                            "type",
                                            "event_id",
                                            "sent_ms",
                                            "user_id",
                                            "kind",
                                            "target_partition",
                                            "target_offset",
                                            "reservation_id",
                                            NULL};
static const char *const status_fields[] = {"v", "type", "event_id", "sent_ms", "status", NULL};
static const char *const admission_fields[] = {
    "v", "type", "event_id", "sent_ms", "max_active_holds", "admissions_per_minute", NULL};
static const char *const checkout_fields[] = {
    "v", "type", "event_id", "sent_ms", "user_id", "reservation_id", "payment_method", NULL};
static const char *const payres_fields[] = {
    "v",       "type",         "event_id",          "sent_ms", "order_id", "reservation_id",
    "outcome", "amount_cents", "gateway_charge_id", NULL};
static const char *const ticket_fields[] = {"v",         "type", "event_id",   "sent_ms", "user_id",
                                            "ticket_id", "kind", "to_user_id", NULL};

/* One row per record type: the fields it may carry, its rules, its body
 * writer and reader. */
typedef struct {
    const char *const *fields;
    const char *(*invalid)(const q_msg *m);
    void (*encode)(jbuf *b, const q_msg *m);
    int (*decode)(json_t *o, q_msg *m, char *why, size_t wl);
} msg_codec;

static const msg_codec codecs[Q_MSG_TYPE_COUNT] = {
    [Q_MSG_INTENT] = {intent_fields, intent_invalid, intent_encode, intent_decode},
    [Q_MSG_CANCEL] = {cancel_fields, cancel_invalid, cancel_encode, cancel_decode},
    [Q_MSG_EVENT_STATUS] = {status_fields, status_invalid, status_encode, status_decode},
    [Q_MSG_CHECKOUT] = {checkout_fields, checkout_invalid, checkout_encode, checkout_decode},
    [Q_MSG_PAYMENT_RESULT] = {payres_fields, payres_invalid, payres_encode, payres_decode},
    [Q_MSG_TICKET] = {ticket_fields, ticket_invalid, ticket_encode, ticket_decode},
    [Q_MSG_ADMISSION] = {admission_fields, admission_invalid, admission_encode, admission_decode},
};

/* Checks the fields of m that the schema constrains. */
static int validate(const q_msg *m, char *why, size_t why_len)
{
    if ((unsigned)m->type >= Q_MSG_TYPE_COUNT)
        return reject(why, why_len, "unknown type");
    if (m->event_id <= 0)
        return reject(why, why_len, "event_id must be positive");
    if (m->sent_ms < 0)
        return reject(why, why_len, "sent_ms must not be negative");
    const char *reason = codecs[m->type].invalid(m);
    return reason ? reject(why, why_len, reason) : 0;
}

int q_msg_encode(const q_msg *m, char **out, size_t *out_len)
{
    char why[128], text[MSG_TEXT_MAX];
    if (validate(m, why, sizeof why))
        return ONS_EINVAL;
    jbuf b = {text, text + sizeof text, 0};
    /* the envelope: {"v":1 then type, event_id, sent_ms */
    put_raw(&b, "{\"v\":", 5);
    put_raw(&b, "1", 1);
    _Static_assert(Q_MSG_VERSION == 1, "the envelope writes the version as text");
    put_str(&b, "type", type_names[m->type]);
    put_int(&b, "event_id", m->event_id);
    put_int(&b, "sent_ms", m->sent_ms);
    codecs[m->type].encode(&b, m);
    put_raw(&b, "}", 1);
    if (b.bad)
        return ONS_EINVAL; /* a string that is not UTF-8 (the schema wants text) */
    size_t n = (size_t)(b.p - text);
    char *s = malloc(n + 1);
    if (!s)
        return ONS_ENOMEM;
    memcpy(s, text, n);
    s[n] = '\0';
    *out = s;
    *out_len = n;
    return 0;
}

/* Reads the envelope every record carries: version, type, event_id and
 * sent_ms. m->type is Q_MSG_TYPE_COUNT for an unknown type name (type
 * holds the name for the message). */
static int decode_envelope(json_t *o, q_msg *m, char *type, size_t type_cap, char *why, size_t wl)
{
    int64_t v = 0;
    if (!json_is_object(o))
        return reject(why, wl, "record is not a JSON object");
    if (get_int(o, "v", 1, &v, why, wl) || get_str(o, "type", 1, type, type_cap, why, wl))
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
    return 0;
}

static int decode_obj(json_t *o, q_msg *m, char *why, size_t wl)
{
    char type[24] = "";
    if (decode_envelope(o, m, type, sizeof type, why, wl))
        return ONS_EPARSE;
    if ((unsigned)m->type >= Q_MSG_TYPE_COUNT) {
        snprintf(why, wl, "unknown type %s", type);
        return ONS_EPARSE;
    }
    const msg_codec *c = &codecs[m->type];
    if (only_fields(o, c->fields, why, wl) || c->decode(o, m, why, wl))
        return ONS_EPARSE;
    return validate(m, why, wl);
}

int q_msg_decode_json(const void *buf, size_t len, q_msg *m, char *why, size_t why_len)
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

/* ---- the fast path: flat join records ----------------------------------------------- *
 *
 * Nine in ten records are joins, and parsing them with jansson (a tree of
 * allocated nodes per record) was over a quarter of the worker's CPU per
 * intent drained (bench/NOTES.md). A join is one flat object of integers,
 * plain strings and a boolean, so it is read here in one pass without
 * allocating. The fast path only ever accepts: anything it is not sure of
 * (another record type, escapes or non-ASCII in a string, a number that is
 * not a plain non-negative integer, nesting, null, a duplicate or unknown
 * key, a rule broken) goes to q_msg_decode_json (above), which decides and
 * words the error. So the two accept the same records with the same
 * result, and reject the same ones with the same message
 * (test_msg: fast_path_agrees_with_jansson). */

#define FAST_MAX_FIELDS 12
/* At most 18 digits: every such number fits an int64 without a check. */
#define FAST_MAX_DIGITS 18

enum fast_kind { FAST_INT, FAST_STR, FAST_BOOL };

typedef struct fast_field {
    const char *key, *str; /* str: a string value, not NUL-terminated */
    size_t klen, slen;
    int64_t num; /* FAST_INT value; FAST_BOOL 0/1 */
    enum fast_kind kind;
} fast_field;

static const char *fast_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* A string of printable ASCII without escapes at p (the opening quote):
 * its body in *s, *n; returns the position after the closing quote, or NULL. */
static const char *fast_str(const char *p, const char *end, const char **s, size_t *n)
{
    const char *q = ++p;
    while (q < end && *q != '"') {
        if (*q < 0x20 || *q > 0x7e || *q == '\\')
            return NULL;
        q++;
    }
    if (q == end)
        return NULL;
    *s = p;
    *n = (size_t)(q - p);
    return q + 1;
}

/* One value at p into f; returns the position after it, or NULL. */
static const char *fast_value(const char *p, const char *end, fast_field *f)
{
    if (*p == '"') {
        f->kind = FAST_STR;
        return fast_str(p, end, &f->str, &f->slen);
    }
    if ((size_t)(end - p) >= 4 && memcmp(p, "true", 4) == 0) {
        f->kind = FAST_BOOL;
        f->num = 1;
        return p + 4;
    }
    if ((size_t)(end - p) >= 5 && memcmp(p, "false", 5) == 0) {
        f->kind = FAST_BOOL;
        f->num = 0;
        return p + 5;
    }
    /* 0 or [1-9][0-9]*, then no fraction or exponent */
    const char *d = p;
    uint64_t v = 0; /* 19 digits at most here: no overflow */
    while (p < end && *p >= '0' && *p <= '9' && p - d <= FAST_MAX_DIGITS)
        v = v * 10 + (uint64_t)(*p++ - '0');
    if (p == d || p - d > FAST_MAX_DIGITS || (*d == '0' && p - d > 1) ||
        (p < end && (*p == '.' || *p == 'e' || *p == 'E')))
        return NULL;
    f->kind = FAST_INT;
    f->num = (int64_t)v;
    return p;
}

/* Splits a flat object into f[]; the number of fields, or -1 (not for the
 * fast path). Keys are unique. */
static int fast_fields(const char *p, const char *end, fast_field *f)
{
    int n = 0;
    p = fast_ws(p, end);
    if (p == end || *p++ != '{')
        return -1;
    p = fast_ws(p, end);
    if (p < end && *p == '}')
        return -1; /* {} is no record: jansson words the error */
    for (;;) {
        if (n == FAST_MAX_FIELDS || p == end || *p != '"' ||
            !(p = fast_str(p, end, &f[n].key, &f[n].klen)))
            return -1;
        for (int i = 0; i < n; i++)
            if (f[i].klen == f[n].klen && memcmp(f[i].key, f[n].key, f[n].klen) == 0)
                return -1;
        p = fast_ws(p, end);
        if (p == end || *p++ != ':')
            return -1;
        p = fast_ws(p, end);
        if (p == end || !(p = fast_value(p, end, &f[n])))
            return -1;
        n++;
        p = fast_ws(p, end);
        if (p == end)
            return -1;
        if (*p == '}')
            break;
        if (*p++ != ',')
            return -1;
        p = fast_ws(p, end);
    }
    return fast_ws(p + 1, end) == end ? n : -1;
}

static int fast_is(const fast_field *f, const char *key)
{
    size_t n = strlen(key);
    return f->klen == n && memcmp(f->key, key, n) == 0;
}

/* A join record from its fields, or -1 when any rule would reject it (or
 * it is another type). Every intent_fields key is read by its own rule;
 * any other key sends the record to jansson. */
static int fast_intent(const fast_field *f, int n, q_msg *m)
{
    int have_v = 0, have_type = 0, have_ev = 0, have_sent = 0, have_user = 0, have_qty = 0,
        have_adj = 0;
    memset(m, 0, sizeof *m);
    m->type = Q_MSG_INTENT;
    for (int i = 0; i < n; i++) {
        const fast_field *x = &f[i];
        int is_int = x->kind == FAST_INT;
        if (fast_is(x, "v") && is_int && x->num == Q_MSG_VERSION)
            have_v = 1;
        else if (fast_is(x, "type") && x->kind == FAST_STR && x->slen == 6 &&
                 memcmp(x->str, "intent", 6) == 0)
            have_type = 1;
        else if (fast_is(x, "event_id") && is_int && x->num > 0)
            have_ev = 1, m->event_id = x->num;
        else if (fast_is(x, "sent_ms") && is_int)
            have_sent = 1, m->sent_ms = x->num;
        else if (fast_is(x, "user_id") && is_int && x->num > 0)
            have_user = 1, m->user_id = x->num;
        else if (fast_is(x, "quantity") && is_int && x->num >= 1 && x->num <= Q_MAX_SEATS)
            have_qty = 1, m->quantity = (int)x->num;
        else if (fast_is(x, "adjacent") && x->kind == FAST_BOOL)
            have_adj = 1, m->adjacent = (int)x->num;
        else if (fast_is(x, "section") && x->kind == FAST_STR && x->slen <= Q_MSG_MAX_SECTION)
            memcpy(m->section, x->str, x->slen), m->section[x->slen] = '\0';
        else if (fast_is(x, "max_price_cents") && is_int)
            m->max_price_cents = x->num;
        else
            return -1;
    }
    return have_v && have_type && have_ev && have_sent && have_user && have_qty && have_adj ? 0
                                                                                            : -1;
}

/* 0 with *m when buf is a join record the fast path is sure of, else -1
 * (m is then to be overwritten). */
static int fast_decode(const void *buf, size_t len, q_msg *m)
{
    fast_field f[FAST_MAX_FIELDS];
    int n = fast_fields(buf, (const char *)buf + len, f);
    return n < 0 ? -1 : fast_intent(f, n, m);
}

int q_msg_decode(const void *buf, size_t len, q_msg *m, char *why, size_t why_len)
{
    if (fast_decode(buf, len, m) == 0)
        return 0;
    return q_msg_decode_json(buf, len, m, why, why_len);
}
