"""test_ingress_active_key.py - one live place per fan and event, without
permanent lock-outs (issue 14 items 3 and 5), against the real binaries.

  * Lock-out: many fans join at once, with Idempotency-Keys (one at a time
    on job threads) or without (the join claimer's pipelined claims), a
    price cap below every price (max_price_cents 1; a section the event does
    not sell is refused at ingress since 422 section_not_sold); the worker
    rejects every join. The finisher is slowed down
    (debug.finisher_delay_ms) so the worker's delete of each ended intent's
    active key lands BEFORE the finisher writes the intent id. Every fan
    must be able to join again. The control runs the same race with the
    protection off (debug.active_unchecked: unconditional write, no takeover
    of a finished intent's key) and shows fans locked out with 409.
  * Unknown outcome: with debug.unknown_outcome the ingress treats a
    successful delivery as possibly persisted. A join (and a checkout) then
    answers 503 outcome_unknown; retrying with the same Idempotency-Key finds
    the intent (the order) that was written: same id on every retry, one
    intent row (one order row), never a second place or charge.
"""
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, KeepAliveClient, Stack  # noqa: E402

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-worker"), os.X_OK),
                                reason="onsale-worker is not built")

FANS = 48


def locked_out_after_rejected_joins(unchecked, keyed=True):
    """Runs the race; returns how many fans get 409 on a new join. keyed:
    with Idempotency-Keys (one join at a time on a job thread), else the
    joins share the join claimer's pipelined claims (a key naming an ended
    intent is then taken over on a job thread)."""
    with Stack(partitions=2) as st:
        st.start_worker()
        base = st.start_ingress(debug_finisher_delay_ms=1500,
                                debug_active_unchecked="true" if unchecked else "false",
                                join_round_max=0 if keyed else 256)
        c = KeepAliveClient(int(base.rsplit(":", 1)[1]))
        ev = st.create_event(sections=[("A", 1, 10, 5000)])
        tokens = {u: st.token(u, "fan") for u in range(1, FANS + 1)}
        path = f"/v1/events/{ev}/intents"

        def join(u, key):
            return c.request("POST", path, {"quantity": 1, "max_price_cents": 1}, tokens[u],
                             {"Idempotency-Key": key} if key and keyed else None)

        with ThreadPoolExecutor(32) as ex:
            first = list(ex.map(lambda u: join(u, f"first-{u}"), tokens))
        assert all(s == 202 for s, _ in first), [x for x in first if x[0] != 202][:3]
        st.wait_rejected_and_published(ev, first)
        with ThreadPoolExecutor(32) as ex:
            again = list(ex.map(lambda u: join(u, f"again-{u}"), tokens))
        locked = [b for s, b in again if s == 409]
        assert all(b["error"]["code"] == "already_in_queue" for b in locked)
        assert all(s in (202, 409) for s, _ in again), [x for x in again if x[0] not in (202, 409)]
        st.stop_clean()
        return len(locked)


@pytest.mark.parametrize("keyed", [True, False], ids=["keyed", "batched"])
def test_rejected_joins_never_lock_fans_out(keyed):
    assert locked_out_after_rejected_joins(unchecked=False, keyed=keyed) == 0


@pytest.mark.parametrize("keyed", [True, False], ids=["keyed", "batched"])
def test_control_without_the_protection_fans_are_locked_out(keyed):
    """The race is real: the same run with the old unconditional write."""
    assert locked_out_after_rejected_joins(unchecked=True, keyed=keyed) > FANS // 2


def retry_until(st, fn, what, timeout=60):
    """Calls fn() (a request with the same Idempotency-Key) until it stops
    answering 503 outcome_unknown; returns its final (status, body)."""
    end = time.time() + timeout
    while time.time() < end:
        s, h, b = fn()
        if s != 503:
            return s, b
        assert b["error"]["code"] == "outcome_unknown", b
        assert "Idempotency-Key" in b["error"]["message"], b
        assert h.get("retry-after"), h
        time.sleep(0.2)
    raise TimeoutError(what)


def test_unknown_outcome_retry_finds_the_intent_and_the_order():
    with Stack(partitions=2) as st:
        st.start_worker()
        st.start_ingress(debug_unknown_outcome="join,checkout")
        ev = st.create_event(sections=[("A", 1, 10, 5000)])
        fan = st.token(7, "fan")
        path = f"/v1/events/{ev}/intents"

        def join(key):
            return st.http("POST", path, {"quantity": 2}, token=fan,
                           headers={"Idempotency-Key": key})

        s, h, b = join("j1")
        assert s == 503, b
        assert b["error"]["code"] == "outcome_unknown", b
        assert b["error"]["message"] == ("The request may have been queued; retry with the same "
                                         "Idempotency-Key."), b
        assert h.get("retry-after")
        # Another join (no key, or another key) is refused while the first
        # one's place may exist: the claim was kept.
        s, _, e = st.http("POST", path, {"quantity": 2}, token=fan)
        assert s == 409 and e["error"]["code"] == "already_in_queue", e
        s, b = retry_until(st, lambda: join("j1"), "the join resolved")
        assert s == 202, b
        intent = b["intent_id"]
        assert b["event_id"] == ev and b["status_url"] == f"/v1/intents/{intent}"
        assert b["state"] in ("queued", "waiting", "reserved") and b["position"] == 0, b
        assert b["poll_after_ms"] > 0 and b["eta_seconds"] == 0, b
        # The same key keeps naming the same intent; one place only.
        for _ in range(3):
            s, _, again = join("j1")
            assert s == 202 and again["intent_id"] == intent, again
        assert st.sql("SELECT count(*) FROM intents WHERE user_id = 7")[0][0] == 1
        # The active key now names that intent.
        s, _, e = st.http("POST", path, {"quantity": 1}, token=fan,
                          headers={"Idempotency-Key": "j2"})
        assert s == 409 and e["intent_id"] == intent, e
        p = st.wait_for(lambda: (lambda x: x if x.get("state") == "reserved" else None)(
            st.http("GET", f"/v1/intents/{intent}", token=fan)[2]), 30, "reserved")
        rid = p["reservation"]["reservation_id"]

        def checkout():
            return st.http("POST", f"/v1/reservations/{rid}/checkout",
                           {"payment_method": "pm_card_visa"}, token=fan,
                           headers={"Idempotency-Key": "c1"})

        s, _, b = checkout()
        assert s == 503 and b["error"]["code"] == "outcome_unknown", b
        s, b = retry_until(st, checkout, "the checkout resolved")
        assert s == 202, b
        order = b["order_id"]
        for _ in range(3):
            s, _, again = checkout()
            assert s == 202 and again["order_id"] == order, again
        assert st.sql("SELECT count(*) FROM orders WHERE user_id = 7")[0][0] == 1
        assert st.sql("SELECT count(*) FROM outbox")[0][0] == 1  # one charge requested
        st.stop_clean()


def control_lane_records(st):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": st.env()["ONSALE_KAFKA_BROKERS"], "group.id": "wm"})
    try:
        return c.get_watermark_offsets(TopicPartition(st.control_topic, 0), timeout=10)[1]
    finally:
        c.close()


def test_unknown_checkout_waits_for_the_control_lane_not_the_intents_lane():
    """An unknown checkout outcome is settled by the control lane's cursor
    (the lane checkouts travel on). With the owner stopped, the intents lane
    is fully served, the checkout is in the control lane unapplied: the
    retries must keep answering outcome_unknown without sending the checkout
    again, and once the owner is back the same key finds the one order.
    Against the intents lane's cursor, each retry past the settle time sent
    another checkout (one record per retry, a failed order each)."""
    with Stack(partitions=1) as st:
        w = st.start_worker()
        # settle = 2 x 200 ms + 1 s, seen by a monitor round 200 ms later
        st.start_ingress(debug_unknown_outcome="checkout", kafka_produce_timeout_ms=200,
                         kafka_request_timeout_ms=1000, monitor_interval_ms=200)
        ev = st.create_event(sections=[("A", 1, 10, 5000)])
        fan = st.token(8, "fan")
        s, _, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, token=fan)
        assert s == 202, b
        intent = b["intent_id"]
        p = st.wait_for(lambda: (lambda x: x if x.get("state") == "reserved" else None)(
            st.http("GET", f"/v1/intents/{intent}", token=fan)[2]), 30, "reserved")
        rid = p["reservation"]["reservation_id"]
        assert w.stop() == 0
        before = control_lane_records(st)

        def checkout():
            return st.http("POST", f"/v1/reservations/{rid}/checkout",
                           {"payment_method": "pm_card_visa"}, token=fan,
                           headers={"Idempotency-Key": "c-lane"})

        end = time.time() + 5  # several settle times
        while time.time() < end:
            s, _, b = checkout()
            assert s == 503 and b["error"]["code"] == "outcome_unknown", b
            time.sleep(0.25)
        assert control_lane_records(st) == before + 1  # sent once, never again
        st.start_worker()
        s, b = retry_until(st, checkout, "the checkout resolved")
        assert s == 202, b
        assert st.sql("SELECT count(*), min(state) FROM orders WHERE user_id = 8") == [(1, "pending")]
        assert control_lane_records(st) == before + 1
