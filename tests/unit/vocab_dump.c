/* vocab_dump.c - prints queue/states.h's vocabularies and limits as one JSON
 * document, as the compiled code sees them, for check_vocab.py to hold
 * against the migrations' CHECKs, schemas/openapi.yaml and
 * schemas/messages/. */
#include "queue/states.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

typedef const char *(*name_fn)(int);

/* The names of values 0..n-1 (NONE entries, named NULL, left out) for
 * which keep (NULL: every value) holds. */
static json_t *names(name_fn name, int n, int (*keep)(int))
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        if (name(i) && (!keep || keep(i)))
            json_array_append_new(a, json_string(name(i)));
    return a;
}

/* Every vocabulary: its key in the output and its names, then up to two
 * subsets of it, each a key and which names it keeps. */
typedef struct subset {
    const char *key;
    int (*keep)(int);
} subset;

typedef struct vocab {
    const char *key;
    name_fn name;
    int n;
    subset sub[2];
} vocab;

static const vocab vocabs[] = {
    {"intent_states",
     q_intent_state_name,
     Q_INTENT_STATE_COUNT,
     {{"intent_active", q_intent_state_active}, {"intent_final", q_intent_state_final}}},
    {"reasons", q_reason_name, Q_REASON_COUNT, {{0}}},
    {"res_states", q_res_state_name, Q_RES_STATE_COUNT, {{0}}},
    {"event_statuses",
     q_event_status_name,
     Q_EVENT_STATUS_COUNT,
     {{"event_settable", q_event_status_settable}, {"event_closed", q_event_status_closed}}},
    {"seat_states", q_seat_state_name, Q_SEAT_STATE_COUNT, {{0}}},
    {"order_states", q_order_state_name, Q_ORDER_STATE_COUNT, {{0}}},
    {"order_reasons", q_order_reason_name, Q_ORDER_REASON_COUNT, {{0}}},
    {"ticket_statuses", q_ticket_status_name, Q_TICKET_STATUS_COUNT, {{0}}},
};

int main(void)
{
    json_t *doc = json_object();
    for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++) {
        const vocab *v = &vocabs[i];
        json_object_set_new(doc, v->key, names(v->name, v->n, NULL));
        for (int k = 0; k < 2 && v->sub[k].key; k++)
            json_object_set_new(doc, v->sub[k].key, names(v->name, v->n, v->sub[k].keep));
    }
    json_object_set_new(doc, "intent_prequeued", json_string(Q_INTENT_PREQUEUED));
    json_object_set_new(doc, "limits",
                        json_pack("{s:i, s:i, s:I}", "max_seats", Q_MAX_SEATS, "seq_offset_bits",
                                  Q_SEQ_OFFSET_BITS, "seq_control_bit",
                                  (json_int_t)Q_SEQ_CONTROL_BIT));
    char *s = json_dumps(doc, JSON_INDENT(1));
    json_decref(doc);
    if (!s)
        return 1;
    puts(s);
    free(s);
    return 0;
}
