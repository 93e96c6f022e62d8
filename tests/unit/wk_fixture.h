/*
 * wk_fixture.h - what the partition owner's unit tests share: the event a
 * load callback hands the owner, and a record to apply. Header-only.
 */
#ifndef ONSALE_TESTS_WK_FIXTURE_H
#define ONSALE_TESTS_WK_FIXTURE_H

#include "queue/msg.h"
#include "workers/partition.h"

#include <check.h>
#include <string.h>

/* A new event event_id with holds of hold_seconds and at most 4 seats a
 * user; the caller adds its seats and any other rule. */
static inline wk_event *wk_test_event(int64_t event_id, int hold_seconds)
{
    wk_event *ev = wk_event_new(event_id);
    ck_assert_ptr_nonnull(ev);
    ev->hold_seconds = hold_seconds;
    ev->max_per_user = 4;
    return ev;
}

/* A record of type from user about event_id, sent at sent_ms; every other
 * field zero. */
static inline q_msg wk_test_msg(int type, int64_t event_id, int64_t user, int64_t sent_ms)
{
    q_msg m;
    memset(&m, 0, sizeof m);
    m.type = (enum q_msg_type)type;
    m.event_id = event_id;
    m.user_id = user;
    m.sent_ms = sent_ms;
    return m;
}

#endif
