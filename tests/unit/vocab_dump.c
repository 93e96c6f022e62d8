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

int main(void)
{
    json_t *doc = json_object();
    json_object_set_new(doc, "intent_states",
                        names(q_intent_state_name, Q_INTENT_STATE_COUNT, NULL));
    json_object_set_new(doc, "intent_prequeued", json_string(Q_INTENT_PREQUEUED));
    json_object_set_new(doc, "intent_active",
                        names(q_intent_state_name, Q_INTENT_STATE_COUNT, q_intent_state_active));
    json_object_set_new(doc, "intent_final",
                        names(q_intent_state_name, Q_INTENT_STATE_COUNT, q_intent_state_final));
    json_object_set_new(doc, "reasons", names(q_reason_name, Q_REASON_COUNT, NULL));
    json_object_set_new(doc, "res_states", names(q_res_state_name, Q_RES_STATE_COUNT, NULL));
    json_object_set_new(doc, "event_statuses",
                        names(q_event_status_name, Q_EVENT_STATUS_COUNT, NULL));
    json_object_set_new(doc, "event_settable",
                        names(q_event_status_name, Q_EVENT_STATUS_COUNT, q_event_status_settable));
    json_object_set_new(doc, "event_closed",
                        names(q_event_status_name, Q_EVENT_STATUS_COUNT, q_event_status_closed));
    json_object_set_new(doc, "seat_states", names(q_seat_state_name, Q_SEAT_STATE_COUNT, NULL));
    json_object_set_new(doc, "order_states", names(q_order_state_name, Q_ORDER_STATE_COUNT, NULL));
    json_object_set_new(doc, "order_reasons",
                        names(q_order_reason_name, Q_ORDER_REASON_COUNT, NULL));
    json_object_set_new(doc, "ticket_statuses",
                        names(q_ticket_status_name, Q_TICKET_STATUS_COUNT, NULL));
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
