/* msg_samples.c - prints one encoded record per line, of every type and
 * optional-field combination, for validate_messages.py to check against
 * schemas/messages/. */
#include "queue/msg.h"
#include "queue/states.h"

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
    c.reservation_id = q_seq_make(2, 99);
    rc |= emit(&c);
    const char *st[] = {"on_sale", "paused", "cancelled", "ended"};
    for (int i = 0; i < 4; i++) {
        q_msg s = {.type = Q_MSG_EVENT_STATUS, .event_id = 3, .sent_ms = 5};
        strcpy(s.status, st[i]);
        rc |= emit(&s);
    }
    q_msg co = {.type = Q_MSG_CHECKOUT, .event_id = 3, .user_id = 5, .sent_ms = 5,
                .reservation_id = 0};
    strcpy(co.payment_method, "pm_card_visa");
    rc |= emit(&co);
    q_msg pr = {.type = Q_MSG_PAYMENT_RESULT, .event_id = 3, .sent_ms = 5, .order_id = 12,
                .reservation_id = 0, .outcome = Q_PAY_SUCCEEDED, .amount_cents = 5000};
    strcpy(pr.charge_id, "ch_0001");
    rc |= emit(&pr);
    pr.charge_id[0] = '\0';
    pr.outcome = Q_PAY_DECLINED;
    rc |= emit(&pr);
    pr.outcome = Q_PAY_FAILED;
    rc |= emit(&pr);
    q_msg tk = {.type = Q_MSG_TICKET, .event_id = 3, .user_id = 5, .sent_ms = 5, .ticket_id = 9,
                .ticket_kind = Q_TICKET_TRANSFER, .to_user_id = 6};
    rc |= emit(&tk);
    tk.ticket_kind = Q_TICKET_CANCEL;
    tk.to_user_id = 0;
    rc |= emit(&tk);
    q_msg ad = {.type = Q_MSG_ADMISSION, .event_id = 3, .sent_ms = 5, .max_active_holds = 100,
                .admissions_per_minute = 600};
    rc |= emit(&ad);
    ad.max_active_holds = ad.admissions_per_minute = 0;
    rc |= emit(&ad);
    return rc;
}
