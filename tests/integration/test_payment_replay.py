"""test_payment_replay.py - a payment result sent twice, both copies applied
in one worker batch (issue 14, item 4).

onsale-payments produces the gateway's answer and only then marks its outbox
row done; a relay that restarts in between sends the result again. When the
partition owner lags, both copies reach it in the same batch: the first sells
the seats and pays the order, the second finds no paying hold. The fan must
keep valid tickets for a paid order and no refund may be asked for.

The worker is killed after the checkout is applied, both results are
produced, and a new worker applies them in one batch (a long batch window;
the test checks from the worker's log that one committed batch held both)."""
import json
import re
import signal

from harness import Stack
from worker_util import intent, kill_9, seq, wait_state


def batches(proc):
    """[(partition, first offset, end offset)] of the worker's committed batches."""
    return [tuple(map(int, m.groups())) for m in re.finditer(
        r"committed partition (\d+) offsets (\d+)\.\.(\d+) epoch", proc.output())]


def pending_order(st, w):
    """Creates an event whose owner w reserves 2 seats for fan 5 and applies
    their checkout (the order pending, its charge asked for). Returns (event
    id, reservation id, order id)."""
    ev = st.create_event(sections=[("A", 1, 10, 5000)])
    part, off = st.produce(ev, intent(5, 2))
    wait_state(st, part, off, "reserved", proc=w)
    rid = seq(part, off)
    _, coff = st.produce(ev, {"type": "checkout", "user_id": 5, "reservation_id": rid,
                              "payment_method": "pm_card_visa"})
    oid = seq(part, coff)
    st.wait_for(lambda: st.sql("SELECT state FROM orders WHERE order_id = %s", (oid,))
                == [("pending",)], 20, "order pending", proc=w)
    return ev, rid, oid


def apply_in_one_batch(st, w, ev, records, name):
    """Kills the owner w, produces records (to ev's partition) and starts a
    new owner (name) with a long batch window; returns it once it applied
    them, after checking from its log that one committed batch held them
    all."""
    kill_9(w)
    at = st.produce_many(ev, records)
    part, first, last = at[0][0], at[0][1], at[-1][1]
    w = st.start_worker(name=name, batch_max_ms=3000, kafka_session_timeout_ms=6000)
    st.wait_for(lambda: st.sql("SELECT next_offset FROM partition_owner WHERE partition = %s",
                               (part,))[0][0] > last, 60, "records applied", proc=w)
    assert any(p == part and a <= first and last < b for p, a, b in batches(w)), \
        f"the records were not applied in one batch: {batches(w)}"
    return w


def test_duplicate_success_in_one_batch_keeps_tickets_and_no_refund():
    with Stack(partitions=1) as st:
        w1 = st.start_worker(name="w1", kafka_session_timeout_ms=6000)
        ev, rid, oid = pending_order(st, w1)
        result = {"type": "payment_result", "order_id": oid, "reservation_id": rid,
                  "outcome": "succeeded", "amount_cents": 10000,
                  "gateway_charge_id": "ch_replayed_1"}
        w2 = apply_in_one_batch(st, w1, ev, [result, result], "w2")

        assert st.sql("SELECT state, gateway_charge_id FROM orders WHERE order_id = %s",
                      (oid,)) == [("paid", "ch_replayed_1")]
        assert st.sql("SELECT count(*) FROM tickets WHERE order_id = %s AND status = 'valid'",
                      (oid,)) == [(2,)]
        assert st.sql("SELECT kind FROM outbox WHERE order_id = %s ORDER BY outbox_id",
                      (oid,)) == [("charge",)], "a refund was asked for a paid order"
        assert st.sql("SELECT state FROM intents WHERE intent_seq = %s", (rid,)) == [("purchased",)]
        assert st.sql("SELECT state FROM reservations WHERE reservation_id = %s",
                      (rid,)) == [("purchased",)]
        assert st.sql("SELECT count(*) FROM seats WHERE event_id = %s AND status = 'sold'",
                      (ev,)) == [(2,)]
        st.wait_for(lambda: st.redis.get(st.key(f"r:{rid}")), 10, "result in Redis")
        assert json.loads(st.redis.get(st.key(f"r:{rid}")))["state"] == "purchased"
        assert w2.stop() == 0


def test_payments_stops_cleanly_on_sigterm_and_sigint():
    """The relay's stop signals (common/signals.h): SIGTERM and SIGINT each
    end onsale-payments with exit 0 after it stopped its threads."""
    with Stack(partitions=1) as st:
        for sig in (signal.SIGTERM, signal.SIGINT):
            p = st.start("payments", "onsale-payments", payments_gateway_url="http://127.0.0.1:9",
                         payments_key_prefix=f"{st.topic}-", metrics_port=0)
            st.wait_for(lambda: " threads, gateway " in p.output(), 30, "payments started", proc=p)
            p.popen.send_signal(sig)
            assert p.wait(30) == 0, p.output()[-2000:]
            assert "payments: stopped" in p.output()
