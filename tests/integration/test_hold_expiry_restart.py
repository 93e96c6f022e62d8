"""test_hold_expiry_restart.py - holds expire on time after a worker restart
even when no record ever names their event again (issue 14, item 8).

A new owner's memory starts empty and events load when a record names them;
a hold on a quiet event used to stay held past expires_at until some other
record of that event arrived. The owner now loads every event with live holds
when it claims the partition, and expires holds on its timer."""
import time

from harness import Stack
from worker_util import (audit, cancel, intent, kill_9, log_lines, seq, start_short_hold_worker,
                         wait_result, wait_state)

HOLD_S = 3


def test_quiet_hold_expires_after_kill_9_without_any_record():
    with Stack(partitions=2) as st:
        w1 = start_short_hold_worker(st, "w1", HOLD_S)
        ev = st.create_event(sections=[("A", 1, 4, 5000)], max_per_user=4)
        other = st.create_event(sections=[("B", 1, 4, 2000)], max_per_user=4)
        part, off = st.produce(ev, intent(1, 2))
        opart, ooff = st.produce(other, intent(2, 1))
        wait_state(st, part, off, "reserved", proc=w1)
        wait_state(st, opart, ooff, "reserved", proc=w1)
        st.produce(other, cancel(2, opart, ooff))  # `other` ends with no live hold
        wait_state(st, opart, ooff, "released", proc=w1)
        rid = seq(part, off)
        (expires_at,), = st.sql("SELECT extract(epoch FROM expires_at) FROM reservations "
                                "WHERE reservation_id = %s", (rid,))
        kill_9(w1)
        assert time.time() < float(expires_at), "the hold ran out before the kill"

        # A new owner, and no record at all for either event from here on.
        w2 = start_short_hold_worker(st, "w2", HOLD_S)
        st.wait_for(lambda: len(log_lines(w2, "claimed partition")) >= 2, 30,
                    "both partitions claimed", proc=w2)
        wait_state(st, part, off, "expired", timeout=30, proc=w2)
        # Bound: the claim (after w1's session timed out) plus one expiry pass.
        assert time.time() < float(expires_at) + 25
        assert st.sql("SELECT state FROM reservations WHERE reservation_id = %s",
                      (rid,)) == [("expired",)]
        assert st.sql("SELECT count(*) FROM seats WHERE event_id = %s AND status = 'available'",
                      (ev,)) == [(4,)]
        wait_result(st, rid, "expired")
        assert st.redis.hget(st.key(f"ev:{ev}"), "available") == "4"
        # Only events with live holds were loaded ahead of their records.
        assert log_lines(w2, f"loaded event {ev}:")
        assert not log_lines(w2, f"loaded event {other}:")
        assert audit(st) == []
        assert w2.stop() == 0
