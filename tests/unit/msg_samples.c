/* msg_samples.c - prints one encoded record per line, of every type and
 * optional-field combination, for validate_messages.py to check against
 * schemas/messages/. */
#include "queue/msg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int emit(const q_msg *m)
{
    char *buf;
    size_t len;
    if (q_msg_encode(m, &buf, &len))
        return 1;
    printf("%s %s\n", q_msg_type_name(m->type), buf);
    free(buf);
    return 0;
}

int main(void)
{
    int rc = 0;
    q_msg m = {.type = Q_MSG_INTENT, .event_id = 1, .user_id = 5, .sent_ms = 1, .quantity = 2};
    rc |= emit(&m);
    strcpy(m.section, "Balcony");
    m.max_price_cents = 9900;
    m.adjacent = 1;
    rc |= emit(&m);
    q_msg c = {.type = Q_MSG_CANCEL, .event_id = 1, .user_id = 5, .target_partition = 2,
               .target_offset = 99};
    rc |= emit(&c);
    c.cancel_kind = Q_CANCEL_RESERVATION;
    c.reservation_id = (2LL << 40) | 99;
    rc |= emit(&c);
    const char *st[] = {"on_sale", "paused", "cancelled", "ended"};
    for (int i = 0; i < 4; i++) {
        q_msg s = {.type = Q_MSG_EVENT_STATUS, .event_id = 3, .sent_ms = 5};
        strcpy(s.status, st[i]);
        rc |= emit(&s);
    }
    return rc;
}
