"""test_hold_expiry_quiet_events.py - a variation of test_hold_expiry_restart.py
(issue 14 item 8): several quiet events on both partitions, each with holds
of several sizes, the owner killed while records are still arriving (a batch
in flight); after the restart no record names any of these events again, and
every hold still expires on time, its seats back, its result published."""
import time

from harness import Stack
from worker_util import (audit, intent, kill_9, seq, start_short_hold_worker, wait_result,
                         wait_state)

HOLD_S = 4
EVENTS = 5


def test_holds_on_many_quiet_events_expire_after_a_kill_mid_batch():
    with Stack(partitions=2) as st:
        w1 = start_short_hold_worker(st, "w1", HOLD_S)
        evs = [st.create_event(sections=[("A", 1, 12, 1000 + i)], max_per_user=4,
                               name=f"quiet {i}") for i in range(EVENTS)]
        holds = []
        for i, ev in enumerate(evs):
            for u, q in ((100 * i + 1, 1), (100 * i + 2, 3), (100 * i + 3, 2)):
                holds.append((ev, st.produce(ev, intent(u, q))))
        for _, (part, off) in holds[:-3]:
            wait_state(st, part, off, "reserved", proc=w1)
        # The last event's records are still being applied when the owner dies.
        kill_9(w1)
        assert st.sql("SELECT count(*) FROM reservations WHERE state = 'expired'") == [(0,)], \
            "a hold ran out before the kill"
        w2 = start_short_hold_worker(st, "w2", HOLD_S)
        deadline = time.time() + HOLD_S + 30
        for ev, (part, off) in holds:
            wait_state(st, part, off, "expired", timeout=max(1, deadline - time.time()), proc=w2)
            wait_result(st, seq(part, off), "expired")
        for ev in evs:
            assert st.sql("SELECT count(*) FROM seats WHERE event_id = %s AND status = "
                          "'available'", (ev,)) == [(12,)], ev
            assert st.sql("SELECT count(*) FROM reservations WHERE event_id = %s AND state "
                          "<> 'expired'", (ev,)) == [(0,)], ev
        assert audit(st) == []
        assert w2.stop() == 0
