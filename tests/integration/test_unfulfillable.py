"""test_unfulfillable.py - a waiting fan whose request can no longer be met
is told so when seats are sold, not when the whole event sells out (issue
14, item 9).

Row A has 5 seats, each held by a different fan; one fan waits for 2 seats
together in A, another for 1. Two of the holds are paid (seats 2 and 4 of
the row sold): only single seats are left in A, held ones counting as ones
that may come back. The pair is rejected insufficient_seats in the batch of
the second sale, in PostgreSQL and in Redis, while section B still has free
seats; the single keeps waiting."""
import json

from harness import Stack
from worker_util import audit, intent, seq, wait_state


def test_waiting_pair_rejected_when_sales_leave_only_singles():
    with Stack(partitions=1) as st:
        w = st.start_worker()
        ev = st.create_event(sections=[("A", 1, 5, 5000), ("B", 1, 4, 3000)], max_per_user=4)
        pos = st.produce_many(ev, [intent(u, 1, section="A") for u in range(1, 6)] +
                              [intent(6, 2, section="A"), intent(7, 1, section="A")])
        part = pos[0][0]
        held = [o for _, o in pos[:5]]
        pair, single = pos[5][1], pos[6][1]
        wait_state(st, part, single, "waiting", proc=w)
        assert st.sql("SELECT state FROM intents WHERE intent_seq = %s",
                      (seq(part, pair),)) == [("waiting",)]

        def buy(user, off):
            _, c = st.produce(ev, {"type": "checkout", "user_id": user,
                                   "reservation_id": seq(part, off),
                                   "payment_method": "pm_card_visa"})
            st.produce(ev, {"type": "payment_result", "order_id": seq(part, c),
                            "reservation_id": seq(part, off), "outcome": "succeeded",
                            "amount_cents": 5000, "gateway_charge_id": f"ch_{user}"})
            wait_state(st, part, off, "purchased", proc=w)

        buy(2, held[1])  # A: 1 _ 3 4 5 -> 3, 4, 5 may come back together
        assert st.sql("SELECT state FROM intents WHERE intent_seq = %s",
                      (seq(part, pair),)) == [("waiting",)]
        buy(4, held[3])  # A: 1 _ 3 _ 5 -> singles only
        wait_state(st, part, pair, "rejected", timeout=10, proc=w)
        assert st.sql("SELECT reason FROM intents WHERE intent_seq = %s",
                      (seq(part, pair),)) == [("insufficient_seats",)]
        assert st.sql("SELECT state FROM intents WHERE intent_seq = %s",
                      (seq(part, single),)) == [("waiting",)]
        r = json.loads(st.redis.get(st.key(f"r:{seq(part, pair)}")))
        assert (r["state"], r["reason"]) == ("rejected", "insufficient_seats")
        assert st.sql("SELECT status FROM events WHERE event_id = %s", (ev,)) == [("on_sale",)]
        assert st.sql("SELECT count(*) FROM seats WHERE event_id = %s AND status = 'available'",
                      (ev,)) == [(4,)]
        assert audit(st) == []
        assert w.stop() == 0
