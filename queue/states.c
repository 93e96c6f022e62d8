/*
 * states.c - name <-> enum for the shared vocabularies (states.h).
 */
#include "queue/states.h"

#include "common/err.h"

#include <stddef.h>
#include <string.h>

#define NAME(e, s) s,
static const char *const intent_states[] = {Q_INTENT_STATES(NAME)};
static const char *const reasons[] = {Q_INTENT_REASONS(NAME)};
static const char *const res_states[] = {Q_RES_STATES(NAME)};
static const char *const event_statuses[] = {Q_EVENT_STATUSES(NAME)};
static const char *const seat_states[] = {Q_SEAT_STATES(NAME)};
static const char *const order_states[] = {Q_ORDER_STATES(NAME)};
static const char *const order_reasons[] = {Q_ORDER_REASONS(NAME)};
static const char *const ticket_statuses[] = {Q_TICKET_STATUSES(NAME)};
#undef NAME

static const char *name_of(const char *const *names, int n, int v)
{
    return v >= 0 && v < n ? names[v] : "?";
}

/* NONE entries (a NULL name) never match. */
static int parse_in(const char *const *names, int n, const char *s)
{
    if (!s)
        return ONS_EPARSE;
    for (int i = 0; i < n; i++)
        if (names[i] && strcmp(names[i], s) == 0)
            return i;
    return ONS_EPARSE;
}

#define VOCAB(fn, table, count)                                                                    \
    const char *fn##_name(int v)                                                                   \
    {                                                                                              \
        return name_of(table, count, v);                                                           \
    }                                                                                              \
    int fn##_parse(const char *name)                                                               \
    {                                                                                              \
        return parse_in(table, count, name);                                                       \
    }
VOCAB(q_intent_state, intent_states, Q_INTENT_STATE_COUNT)
VOCAB(q_reason, reasons, Q_REASON_COUNT)
VOCAB(q_res_state, res_states, Q_RES_STATE_COUNT)
VOCAB(q_event_status, event_statuses, Q_EVENT_STATUS_COUNT)
VOCAB(q_seat_state, seat_states, Q_SEAT_STATE_COUNT)
VOCAB(q_order_state, order_states, Q_ORDER_STATE_COUNT)
VOCAB(q_order_reason, order_reasons, Q_ORDER_REASON_COUNT)
VOCAB(q_ticket_status, ticket_statuses, Q_TICKET_STATUS_COUNT)
#undef VOCAB

int q_intent_state_active(int s)
{
    return s == Q_INTENT_QUEUED || s == Q_INTENT_WAITING || s == Q_INTENT_RESERVED ||
           s == Q_INTENT_PAYING;
}

int q_intent_state_final(int s)
{
    return s == Q_INTENT_PURCHASED || s == Q_INTENT_REJECTED || s == Q_INTENT_EXPIRED ||
           s == Q_INTENT_RELEASED;
}

int q_event_status_settable(int s)
{
    return s == Q_EVENT_ON_SALE || s == Q_EVENT_PAUSED || s == Q_EVENT_CANCELLED ||
           s == Q_EVENT_ENDED;
}

int q_event_status_closed(int s)
{
    return s == Q_EVENT_CANCELLED || s == Q_EVENT_ENDED;
}
