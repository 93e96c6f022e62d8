"""test_control_lane.py - money and control do not wait behind joins
(docs/pipeline.md "Two lanes").

* A cancel on the control lane that overtakes its intent (produced before
  the intent exists) leaves a tombstone that survives kill -9: the intent,
  applied later by another worker, is released and never holds a seat. The
  control run (debug.no_tombstones) shows the intent would take seats.
* A checkout on the control lane is applied while a 50,000-join backlog in
  the intents lane is still mostly unread; the control run puts the same
  checkout on the intents topic behind the backlog, where it waits for all
  of it.
"""
import signal
import time

from harness import MIN_SESSION_MS, Stack
from worker_util import audit, cancel, intent, seq, wait_state

CONTROL_BIT = 1 << 39
BACKLOG = 50_000


def overtaking_cancel(no_tombstones):
    with Stack(partitions=1) as st:
        ev = st.create_event(sections=[("A", 1, 4, 5000)], max_per_user=4)
        flag = str(no_tombstones).lower()
        # The intents topic is empty, so the intent will be at offset 0: the
        # fan's cancel of 0:0 goes first, on the control lane.
        assert st.produce(ev, cancel(1, 0, 0, "intent"), control=True) == (0, 0)
        w1 = st.start_worker(name="w1", debug_no_tombstones=flag,
                             kafka_session_timeout_ms=MIN_SESSION_MS)
        st.wait_for(lambda: st.sql("SELECT control_next_offset FROM partition_owner "
                                   "WHERE partition = 0") == [(1,)], 30,
                    "the cancel committed", proc=w1)
        tombs_after_cancel = st.sql("SELECT kafka_offset, user_id FROM intent_tombstones")
        w1.kill(signal.SIGKILL)  # memory is gone: only PostgreSQL remembers the cancel
        w1.wait()
        assert st.produce(ev, intent(1, 2)) == (0, 0)
        w2 = st.start_worker(name="w2", debug_no_tombstones=flag,
                             kafka_session_timeout_ms=MIN_SESSION_MS)
        st.wait_for(lambda: st.sql("SELECT count(*) FROM intents")[0][0] == 1, 30,
                    "the intent applied", proc=w2)
        st.wait_for(lambda: st.redis.get(st.key(f"r:{seq(0, 0)}")), 10, "result in Redis")
        r = {
            "tombs_after_cancel": tombs_after_cancel,
            "state": st.sql("SELECT state, reservation_id FROM intents")[0],
            "held": st.sql("SELECT count(*) FROM seats WHERE event_id = %s AND status <> "
                           "'available'", (ev,))[0][0],
            "reservations": st.sql("SELECT count(*) FROM reservations")[0][0],
            "tombs_left": st.sql("SELECT count(*) FROM intent_tombstones")[0][0],
            "redis": st.redis.get(st.key(f"r:{seq(0, 0)}")),
            "audit": audit(st),
        }
        # the fan may join again: the cancelled intent holds nothing
        _, o2 = st.produce(ev, intent(1, 1))
        wait_state(st, 0, o2, "reserved" if not no_tombstones else "rejected", proc=w2)
        assert w2.stop() == 0
        return r


def test_cancel_that_overtakes_its_intent_keeps_it_from_seats():
    r = overtaking_cancel(no_tombstones=False)
    assert r["tombs_after_cancel"] == [(0, 1)], r
    assert r["state"] == ("released", None), r
    assert r["held"] == 0 and r["reservations"] == 0, r
    assert r["tombs_left"] == 0, r
    assert '"state":"released"' in r["redis"], r
    assert r["audit"] == [], r


def test_control_without_tombstones_lets_the_intent_take_seats():
    """The same run with the tombstone switched off must go wrong, or the
    test above proves nothing."""
    r = overtaking_cancel(no_tombstones=True)
    assert r["tombs_after_cancel"] == [], r
    assert r["state"][0] == "reserved" and r["held"] == 2, r


def checkout_behind_backlog(control):
    with Stack(partitions=1) as st:
        ev = st.create_event(sections=[("A", 10, 100, 5000)], max_per_user=4)
        w1 = st.start_worker(name="w1")
        part, off = st.produce(ev, intent(1, 2))
        wait_state(st, part, off, "reserved", proc=w1)
        # The test producer's first record to a topic waits for its metadata:
        # send one (a cancel naming nothing: ignored) before the clock runs.
        st.produce(ev, cancel(2, part, off, "reservation"), control=True)
        st.wait_for(lambda: st.sql("SELECT control_next_offset FROM partition_owner") == [(1,)],
                    30, "the warm-up record", proc=w1)
        assert w1.stop() == 0
        # The stampede: the joins are queued before the fan's checkout. The
        # worker is draining them when the fan checks out. Batches of 2,000
        # (batch.max_messages) show the lane, not the batch size: a control
        # record waits for at most the batch in progress.
        st.produce_many(ev, [intent(1000 + i, 1) for i in range(BACKLOG)])
        # A new owner's control lane starts fetching up to a second after its
        # intents lane (its own connection and leader lookup): a second
        # warm-up record, read by w2, shows the lane is live before the
        # checkout's clock runs.
        st.produce(ev, cancel(3, part, off, "reservation"), control=True)
        w2 = st.start_worker(name="w2", batch_max_messages=2000)
        st.wait_for(lambda: st.sql("SELECT control_next_offset FROM partition_owner") == [(2,)],
                    60, "w2's control lane", proc=w2, interval=0.005)
        _, coff = st.produce(ev, {"type": "checkout", "user_id": 1,
                                  "reservation_id": seq(part, off),
                                  "payment_method": "pm_card_visa"}, control=control)
        t0 = time.time()  # the checkout is in the log
        (at_checkout,), = st.sql("SELECT count(*) FROM intents")
        oid = seq(part, (coff | CONTROL_BIT) if control else coff)
        seen = st.wait_for(lambda: st.sql(
            "SELECT (SELECT state FROM orders WHERE order_id = %s), "
            "(SELECT count(*) FROM intents)", (oid,))[0] if st.sql(
            "SELECT 1 FROM orders WHERE order_id = %s", (oid,)) else None,
            180, "the order", proc=w2, interval=0.01)
        elapsed = time.time() - t0
        st.wait_for(lambda: st.sql("SELECT count(*) FROM intents")[0][0] == BACKLOG + 1, 300,
                    "the backlog drained", proc=w2)
        drained = time.time() - t0
        r = {"order": seen[0], "intents_at_checkout": at_checkout,
             "intents_at_order": seen[1], "elapsed": elapsed,
             "drained": drained,
             "reservation": st.sql("SELECT state FROM reservations WHERE reservation_id = %s",
                                   (seq(part, off),))[0][0],
             "audit": audit(st)}
        assert w2.stop() == 0
        print(f"checkout on the {'control' if control else 'intents'} lane: {r}")
        return r


def test_checkout_is_applied_long_before_the_join_backlog_drains():
    r = checkout_behind_backlog(control=True)
    assert r["order"] == "pending" and r["reservation"] == "paying", r
    # Most joins were still unread when the checkout arrived, and the order
    # exists a few batches of 2,000 later, long before the backlog drained
    # (the control run, on the intents topic, waits for all of it).
    assert r["intents_at_checkout"] < BACKLOG // 2, r
    assert r["intents_at_order"] - r["intents_at_checkout"] <= 5 * 2000, r
    assert r["elapsed"] < 5, r
    assert r["audit"] == [], r


def test_control_checkout_on_the_intents_topic_waits_for_the_backlog():
    r = checkout_behind_backlog(control=False)
    assert r["order"] == "pending", r
    assert r["intents_at_order"] == BACKLOG + 1, r


def kafka_applied_line(st):
    import os
    import subprocess
    from harness import BIN
    p = subprocess.run([os.path.join(BIN, "onsalectl"), "audit"], env=st.env(audit_wait_s=1),
                       capture_output=True, text=True, timeout=120)
    for line in (p.stdout + p.stderr).splitlines():
        parts = line.split()
        if len(parts) > 1 and parts[1] == "kafka_applied":
            return p.returncode, line
    raise AssertionError(p.stdout + p.stderr)


def test_audit_counts_the_control_lane_unapplied_until_its_owner_applies_it():
    with Stack(partitions=1) as st:
        ev = st.create_event(sections=[("A", 1, 4, 5000)], max_per_user=4)
        st.produce(ev, cancel(1, 0, 7, "reservation"), control=True)  # names nothing
        rc, line = kafka_applied_line(st)
        assert rc != 0 and "FAIL" in line and "1 unapplied" in line, line
        assert st.control_topic in line, line
        w = st.start_worker()
        st.wait_for(lambda: st.sql("SELECT control_next_offset FROM partition_owner") == [(1,)],
                    30, "the control record applied", proc=w)
        rc, line = kafka_applied_line(st)
        assert "0 unapplied" in line and "FAIL" not in line, line
        assert w.stop() == 0
