"""test_worker_fifo.py - the worker's allocation rules against real Kafka,
PostgreSQL and Redis: FIFO best seats, waiting while everything is held,
releases and expiries going to waiting fans in order, duplicates, limits,
sold out, sale status, poison records, metrics."""
import json
import time

from confluent_kafka import Producer

from harness import BROKERS, Stack, free_port
from worker_util import (audit, cancel, intent, metric_value, metrics, outcomes, seats_of, seq,
                         wait_count, wait_state)


def test_fifo_best_seats_waiting_and_releases_in_order():
    with Stack(partitions=1) as st:
        w = st.start_worker()
        ev = st.create_event(sections=[("A", 3, 4, 5000), ("B", 1, 4, 3000)], max_per_user=4)
        pos = st.produce_many(ev, [
            intent(1, 4, "A"),  # row 1
            intent(2, 4, "A"),  # row 2
            intent(3, 4, "A"),  # row 3: A is now all held
            intent(4, 2, "A"),  # waits
            intent(5, 4, "A"),  # waits, behind 4
            intent(6, 2),       # any section: B
        ])
        part = pos[0][0]
        o = [p[1] for p in pos]
        # Fan 2's live place as ingress writes it: the public id, whose first
        # 16 hex digits are the intent's sequence (the worker deletes the key
        # only when it names the intent that ended).
        st.redis.set(st.key(f"active:{ev}:2"), f"{seq(part, o[1]):016x}" + "0" * 16)
        wait_count(st, ev, 6, proc=w)
        out = outcomes(st, ev)
        assert [out[x][1] for x in o] == ["reserved"] * 3 + ["waiting"] * 2 + ["reserved"]
        assert seats_of(st, ev, part, o[0]) == [("A", 1, s) for s in range(1, 5)]
        assert seats_of(st, ev, part, o[1]) == [("A", 2, s) for s in range(1, 5)]
        assert seats_of(st, ev, part, o[2]) == [("A", 3, s) for s in range(1, 5)]
        assert seats_of(st, ev, part, o[5]) == [("B", 1, 1), ("B", 1, 2)]

        # Redis shows the same, with the public reservation id and counters.
        st.wait_for(lambda: st.redis.get(st.key(f"r:{seq(part, o[3])}")), 10, "result in Redis")
        r0 = json.loads(st.redis.get(st.key(f"r:{seq(part, o[0])}")))
        assert r0["state"] == "reserved" and len(r0["reservation"]["reservation_id"]) == 32
        assert r0["reservation"]["total_cents"] == 20000
        assert json.loads(st.redis.get(st.key(f"r:{seq(part, o[3])}")))["state"] == "waiting"
        evh = st.redis.hgetall(st.key(f"ev:{ev}"))
        assert evh["available"] == "2" and evh["held"] == "14" and evh["waiting"] == "2"

        # Fan 2 gives row 2 back: the first waiting fan (4) gets its best seats;
        # 5 (needs 4 together) keeps waiting.
        st.produce(ev, cancel(2, part, o[1], "reservation"))
        wait_state(st, part, o[3], "reserved", proc=w)
        assert seats_of(st, ev, part, o[3]) == [("A", 2, 1), ("A", 2, 2)]
        assert outcomes(st, ev)[o[1]][1] == "released"
        assert outcomes(st, ev)[o[4]][1] == "waiting"
        st.wait_for(lambda: not st.redis.exists(st.key(f"active:{ev}:2")), 10, "active key gone")

        # Fan 1 leaves: row 1 goes to fan 5.
        st.produce(ev, cancel(1, part, o[0], "intent"))
        wait_state(st, part, o[4], "reserved", proc=w)
        assert seats_of(st, ev, part, o[4]) == [("A", 1, s) for s in range(1, 5)]
        # Fan 4 leaves the line while waiting? It is reserved now: releases seats.
        assert audit(st) == []


def test_duplicates_limits_and_sold_out():
    with Stack(partitions=1) as st:
        w = st.start_worker()
        ev = st.create_event(sections=[("A", 2, 5, 5000)], max_per_user=4)
        st.redis.set(st.key(f"active:{ev}:7"), "first")
        pos = st.produce_many(ev, [
            intent(7, 2),             # reserved
            intent(7, 1),             # duplicate while 7 is active
            intent(8, 5),             # more than max_per_user
            intent(9, 1, "Nope"),     # no such section
            intent(10, 1, max_price=100),  # no seat that cheap
            intent(11, 1, "A", max_price=5000),
        ])
        part = pos[0][0]
        o = [p[1] for p in pos]
        # Fan 2's live place as ingress writes it: the public id, whose first
        # 16 hex digits are the intent's sequence (the worker deletes the key
        # only when it names the intent that ended).
        st.redis.set(st.key(f"active:{ev}:2"), f"{seq(part, o[1]):016x}" + "0" * 16)
        wait_count(st, ev, 6, proc=w)
        out = outcomes(st, ev)
        assert out[o[0]][1] == "reserved"
        assert out[o[1]][1:] == ("rejected", "duplicate")
        assert out[o[2]][1:] == ("rejected", "insufficient_seats")
        assert out[o[3]][1:] == ("rejected", "insufficient_seats")
        assert out[o[4]][1:] == ("rejected", "insufficient_seats")
        assert out[o[5]][1] == "reserved"
        st.wait_for(lambda: st.redis.get(st.key(f"r:{seq(part, o[1])}")), 10, "dup result")
        dup = json.loads(st.redis.get(st.key(f"r:{seq(part, o[1])}")))
        assert dup["state"] == "rejected" and dup["reason"] == "duplicate"
        # the duplicate must not clear the active key of 7's real intent
        assert st.redis.get(st.key(f"active:{ev}:7")) == "first"

        # An event whose every seat is sold answers sold_out at once.
        ev2 = st.create_event(sections=[("A", 1, 2, 5000)])
        st.sql("UPDATE seats SET status = 'sold', reservation_id = 1 WHERE event_id = %s", (ev2,))
        p2 = st.produce(ev2, intent(12, 1))
        wait_count(st, ev2, 1, proc=w)
        assert outcomes(st, ev2)[p2[1]][1:] == ("rejected", "sold_out")
        st.wait_for(lambda: st.redis.hget(st.key(f"ev:{ev2}"), "sold_out") == "1", 10,
                    "sold_out in Redis")
        assert audit(st) == []


def test_hold_expiry_hands_seats_to_waiting_fans_in_order():
    with Stack(partitions=1) as st:
        w = st.start_worker(debug_hold_seconds_override=2, hold_check_ms=50)
        ev = st.create_event(sections=[("A", 1, 4, 5000)], hold_seconds=60, max_per_user=4)
        pos = st.produce_many(ev, [intent(1, 4), intent(2, 2), intent(3, 2), intent(4, 4)])
        part = pos[0][0]
        o = [p[1] for p in pos]
        wait_count(st, ev, 4, proc=w)
        assert [outcomes(st, ev)[x][1] for x in o] == ["reserved", "waiting", "waiting", "waiting"]
        t0 = time.time()
        wait_state(st, part, o[0], "expired", timeout=10, proc=w)
        assert time.time() - t0 < 5
        wait_state(st, part, o[1], "reserved", proc=w)
        wait_state(st, part, o[2], "reserved", proc=w)
        assert seats_of(st, ev, part, o[1]) == [("A", 1, 1), ("A", 1, 2)]
        assert seats_of(st, ev, part, o[2]) == [("A", 1, 3), ("A", 1, 4)]
        assert outcomes(st, ev)[o[3]][1] == "waiting"
        assert st.sql("SELECT state FROM reservations WHERE reservation_id = %s",
                      (seq(part, o[0]),)) == [("expired",)]
        # and those holds expire in turn: fan 4 gets the whole row
        wait_state(st, part, o[3], "reserved", timeout=10, proc=w)
        assert seats_of(st, ev, part, o[3]) == [("A", 1, s) for s in range(1, 5)]
        assert json.loads(st.redis.get(st.key(f"r:{seq(part, o[0])}")))["state"] == "expired"
        assert audit(st) == []


def test_sale_status_pause_resume_cancel():
    with Stack(partitions=1) as st:
        w = st.start_worker()
        ev = st.create_event(sections=[("A", 1, 4, 5000)], max_per_user=4)
        pos = st.produce_many(ev, [intent(1, 4), intent(2, 2), {"type": "event_status", "status": "paused"},
                                   intent(3, 1)])
        part = pos[0][0]
        o = [p[1] for p in pos]
        wait_count(st, ev, 3, proc=w)
        out = outcomes(st, ev)
        assert out[o[1]][1] == "waiting"
        assert out[o[3]][1:] == ("rejected", "sale_closed")
        st.wait_for(lambda: st.sql("SELECT status FROM events WHERE event_id = %s", (ev,))
                    == [("paused",)], 10, "paused in PostgreSQL")
        # a release while paused does not allocate; resuming does
        st.produce(ev, cancel(1, part, o[0]))
        wait_state(st, part, o[0], "released", proc=w)
        assert outcomes(st, ev)[o[1]][1] == "waiting"
        st.produce(ev, {"type": "event_status", "status": "on_sale"})
        wait_state(st, part, o[1], "reserved", proc=w)
        p5 = st.produce(ev, intent(5, 4))
        wait_state(st, part, p5[1], "waiting", proc=w)
        st.produce(ev, {"type": "event_status", "status": "cancelled"})
        wait_state(st, part, o[1], "released", proc=w)
        wait_state(st, part, p5[1], "rejected", proc=w)
        assert st.sql("SELECT count(*) FROM seats WHERE event_id = %s AND status = 'available'",
                      (ev,)) == [(4,)]
        assert audit(st) == []


def test_poison_records_are_skipped_and_counted():
    with Stack(partitions=1) as st:
        port = free_port()
        w = st.start_worker(metrics_port=port)
        ev = st.create_event(sections=[("A", 1, 4, 5000)])
        p = Producer({"bootstrap.servers": BROKERS})
        p.produce(st.topic, key=str(ev), value=b"{not json")
        p.produce(st.topic, key=str(ev), value=json.dumps({"v": 9, "type": "intent"}))
        p.produce(st.topic, key="999999", value=json.dumps(
            {"v": 1, "type": "intent", "event_id": 999999, "sent_ms": 1, "user_id": 1,
             "quantity": 1, "adjacent": True}))  # no such event
        p.flush(10)
        good = st.produce(ev, intent(1, 1))
        wait_state(st, good[0], good[1], "reserved", proc=w)
        assert good[1] == 3
        assert st.sql("SELECT next_offset FROM partition_owner WHERE partition = 0") == [(4,)]
        text = metrics(port)
        assert metric_value(text, 'onsale_worker_poison_records_total{reason="decode"}') == 2
        assert metric_value(text, 'onsale_worker_poison_records_total{reason="unknown_event"}') == 1
        assert metric_value(text, 'onsale_worker_messages_applied_total{type="intent"}') == 1
        # the gauges follow the Redis projection, a moment after the result
        st.wait_for(lambda: metric_value(metrics(port),
                                         'onsale_worker_served_offset{partition="0"}') == 4,
                    10, "served_offset gauge")
        assert "onsale_worker_commit_seconds_bucket" in text
        assert "onsale_worker_batch_records_count" in text
        assert metric_value(text, 'onsale_worker_lag{partition="0"}') is not None
        # Redis shows the served cursor
        st.wait_for(lambda: st.redis.hget(st.key("served"), "0") == "4", 5, "served cursor")
        # SIGTERM: clean exit 0
        assert w.stop() == 0
