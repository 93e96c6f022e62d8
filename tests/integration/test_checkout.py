"""test_checkout.py - the checkout saga against the real stack: ingress,
worker, onsale-payments and the gateway simulator (docs/checkout.md).

  * a fan goes from join to an owned ticket through the HTTP API alone;
  * idempotent checkout: the same key twice is one order, one charge;
  * decline: the order fails, the reservation is held again and can be paid;
  * late payment (the hold runs out while the gateway is slow) is refunded;
  * transfer / cancel by someone else: 404 and nothing changes; the owner's
    transfer moves the ticket, cancel refunds and gives the seat to a waiting fan;
  * the circuit breaker opens under a 5xx burst, fails fast, closes after a
    half-open probe (/metrics);
  * reconciliation under retries, lost responses, 5xx bursts and kill -9 of
    the payment worker and of the partition worker: every successful charge
    in the gateway ledger maps to issued tickets or to a refund, and no order
    has two successful charges;
  * the references of the saga's rows (migration 0014: checked once per
    statement) refuse what a foreign key refuses, and lock what they name.
"""
import json
import os
import sys
import time
import urllib.request

import psycopg2
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, MIN_SESSION_MS, Stack, free_port, pg_dsn  # noqa: E402


from harness import GATEWAY_API_KEY as API_KEY  # noqa: E402


class Env:
    """A Stack with the gateway, payments, worker and ingress started."""

    def __init__(self, st, payments=True, ingress=None, **pay_overrides):
        self.st = st
        self.gw_port = free_port()
        st.start("gateway", "onsale-gateway", gateway_port=self.gw_port, gateway_seed=7)
        st.wait_for(lambda: self._gw_ok(), 20, "gateway /healthz")
        self.pay_metrics = free_port()
        self.prefix = f"{st.topic}-"
        self.pay_overrides = dict(pay_overrides)
        self.payments = self.start_payments() if payments else None
        self.worker = st.start_worker(kafka_session_timeout_ms=MIN_SESSION_MS)
        self.ingress_url = st.start_ingress(**(ingress or {}))

    def start_payments(self):
        o = {"payments_gateway_url": f"http://127.0.0.1:{self.gw_port}",
             "payments_key_prefix": self.prefix, "metrics_port": self.pay_metrics,
             "payments_timeout_ms": 1000, "payments_backoff_base_ms": 50,
             "payments_backoff_max_ms": 500, "payments_lease_ms": 3000}
        o.update(self.pay_overrides)
        return self.st.start("payments", "onsale-payments", **o)

    def _gw_ok(self):
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.gw_port}/healthz", timeout=2).status == 200
        except OSError:
            return False

    def gw(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.gw_port}{path}", data=data, method=method,
                                     headers={"Authorization": f"Bearer {API_KEY}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def faults(self, **knobs):
        return self.gw("POST", "/v1/_faults", knobs)

    def ledger(self):
        return self.gw("GET", "/v1/ledger")

    def metrics(self):
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.pay_metrics}/metrics",
                                          timeout=2).read().decode()
        except OSError:
            return ""

    def breaker(self):
        for line in self.metrics().splitlines():
            if line.startswith("onsale_payments_breaker_state"):
                return int(float(line.split()[-1]))
        return None

    # ---- the fan's side, HTTP only ----------------------------------------------
    def reserve(self, user, ev, qty=1):
        st, fan = self.st, self.st.token(user, "fan")
        s, _, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": qty}, token=fan)
        assert s == 202, b

        def poll():
            p = st.http("GET", b["status_url"], token=fan)[2]
            return p if p.get("state") in ("reserved", "waiting", "rejected") else None
        p = st.wait_for(poll, 30, f"user {user} served")
        return b["intent_id"], p

    def hold(self, user, ev, qty=1):
        """reserve() that must end in a hold; returns its reservation id."""
        return self.reserve(user, ev, qty)[1]["reservation"]["reservation_id"]

    def checkout(self, user, rid, key, pm="pm_card_visa"):
        return self.st.http("POST", f"/v1/reservations/{rid}/checkout", {"payment_method": pm},
                            token=self.st.token(user, "fan"), headers={"Idempotency-Key": key})

    def order(self, user, oid):
        return self.st.http("GET", f"/v1/orders/{oid}", token=self.st.token(user, "fan"))[2]

    def wait_order(self, user, oid, states=("paid", "failed", "refunded"), timeout=60):
        return self.st.wait_for(lambda: (lambda o: o if o.get("state") in states else None)(
            self.order(user, oid)), timeout, f"order {oid} in {states}")

    def buy(self, user, qty=1, ev=None):
        """Reserves qty seats of ev (the Env's event by default) for user and
        pays: the ticket ids of the paid order."""
        _, p = self.reserve(user, ev or self.ev, qty)
        assert p["state"] == "reserved", p
        s, _, b = self.checkout(user, p["reservation"]["reservation_id"],
                                f"buy-{user}-{time.time()}")
        assert s == 202, b
        o = self.wait_order(user, b["order_id"])
        assert o["state"] == "paid", o
        return [t["ticket_id"] for t in o["tickets"]]


def reconcile(env, ev_ids=None):
    """Every successful charge of this test's orders maps to valid-or-cancelled
    tickets of a paid order, or to a refund; no order is charged twice."""
    st = env.st
    led = env.ledger()
    refunded = {}
    for r in led["refunds"]:
        refunded[r["charge"]] = refunded.get(r["charge"], 0) + r["amount_cents"]
    mine = [c for c in led["charges"] if st.sql("SELECT 1 FROM orders WHERE order_id = %s",
                                                 (int(c["order_id"]),))]
    by_order = {}
    for c in mine:
        by_order.setdefault(c["order_id"], []).append(c)
    for oid, cs in by_order.items():
        assert len(cs) == 1, f"order {oid} charged {len(cs)} times"
        c = cs[0]
        (state, total), = st.sql("SELECT state, total_cents FROM orders WHERE order_id = %s", (int(oid),))
        tickets = st.sql("SELECT count(*) FROM tickets WHERE order_id = %s", (int(oid),))[0][0]
        if state == "paid":
            assert tickets > 0, f"paid order {oid} without tickets"
            assert c["amount_cents"] == total
        else:
            assert refunded.get(c["id"], 0) == c["amount_cents"], \
                f"order {oid} ({state}) charged {c['amount_cents']} but refunded {refunded.get(c['id'], 0)}"
    # Every paid order was charged exactly once at the gateway.
    for (oid,) in st.sql("SELECT order_id FROM orders WHERE state = 'paid'"):
        assert str(oid) in by_order, f"order {oid} paid without a charge"
    # Tickets: one valid ticket per sold seat, all from paid orders (an
    # order refunded because its event was cancelled keeps voided tickets).
    assert st.sql("SELECT count(*) FROM tickets t JOIN orders o USING (order_id) "
                  "WHERE o.state <> 'paid' AND (t.status = 'valid' OR o.state <> 'refunded')")[0][0] == 0
    assert st.sql("SELECT count(*) FROM seats s WHERE s.status = 'sold' AND NOT EXISTS "
                  "(SELECT 1 FROM tickets t WHERE t.event_id = s.event_id AND t.seat_no = s.seat_no "
                  "AND t.status = 'valid')")[0][0] == 0
    return len(mine)


def settled(env):
    """No outbox row pending and no order pending."""
    st = env.st
    return (st.sql("SELECT count(*) FROM outbox WHERE state = 'pending'")[0][0] == 0 and
            st.sql("SELECT count(*) FROM orders WHERE state = 'pending'")[0][0] == 0)


def test_join_to_owned_ticket_idempotent_checkout():
    with Stack(partitions=2) as st:
        env = Env(st)
        ev = st.create_event(sections=[("A", 2, 10, 5000)])
        rid = env.hold(5, ev, 2)
        # No key, bad body, someone else's reservation: refused, nothing queued.
        s, _, e = st.http("POST", f"/v1/reservations/{rid}/checkout", {"payment_method": "pm_card_visa"},
                          token=st.token(5, "fan"))
        assert s == 400 and e["error"]["code"] == "idempotency_key_required"
        assert env.checkout(5, rid, "k1", pm="")[0] == 400
        assert env.checkout(6, rid, "k1")[0] == 404
        s, _, b = env.checkout(5, rid, "k1")
        assert s == 202 and b["state"] == "pending", b
        s2, _, b2 = env.checkout(5, rid, "k1")
        assert s2 == 202 and b2["order_id"] == b["order_id"]
        o = env.wait_order(5, b["order_id"])
        assert o["state"] == "paid" and o["total_cents"] == 10000 and len(o["tickets"]) == 2, o
        assert st.http("GET", f"/v1/orders/{b['order_id']}", token=st.token(6, "fan"))[0] == 404
        # The intent is purchased, the tickets are in the fan's history.
        s, _, t = st.http("GET", "/v1/me/tickets", token=st.token(5, "fan"))
        assert s == 200 and len(t["tickets"]) == 2 and t["next_cursor"] is None
        s, _, t1 = st.http("GET", "/v1/me/tickets?limit=1", token=st.token(5, "fan"))
        assert len(t1["tickets"]) == 1 and t1["next_cursor"]
        s, _, t2 = st.http("GET", f"/v1/me/tickets?limit=1&cursor={t1['next_cursor']}",
                           token=st.token(5, "fan"))
        assert len(t2["tickets"]) == 1 and t2["tickets"][0]["ticket_id"] != t1["tickets"][0]["ticket_id"]
        assert st.sql("SELECT state FROM intents WHERE user_id = 5")[0][0] == "purchased"
        assert st.sql("SELECT count(*) FROM orders")[0][0] == 1
        st.wait_for(lambda: settled(env), 30, "outbox settled")
        assert reconcile(env) == 1
        check_saga_references(st)


def trigger_calls(cur, sql, args):
    """The trigger calls of one statement: {trigger name: calls}."""
    cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, args)
    return {t["Trigger Name"]: t["Calls"] for t in cur.fetchone()[0][0].get("Triggers", [])}


def check_saga_references(st):
    """On a paid order (two seats): the references of orders, order_items,
    tickets, outbox and payments (migration 0014) refuse a missing row, a
    changed reference or key, and the delete of a referenced row, as the
    foreign keys they replace did; they are checked once per statement,
    not once per row; the check locks the rows it names until commit."""
    oid, ev, seat, rid = st.sql(
        "SELECT o.order_id, o.event_id, i.seat_no, o.reservation_id FROM orders o "
        "JOIN order_items i USING (order_id) ORDER BY i.seat_no LIMIT 1")[0]
    nseats = st.sql("SELECT count(*) FROM seats WHERE event_id = %s", (ev,))[0][0]
    refused = [
        ("INSERT INTO order_items VALUES (%s, %s, %s, 1)", (oid + 1, ev, seat)),
        ("INSERT INTO order_items VALUES (%s, %s, %s, 1)", (oid, ev, nseats)),
        ("INSERT INTO tickets (ticket_id, event_id, seat_no, order_id, owner_id, status) "
         "VALUES (1, %s, %s, %s, 5, 'cancelled')", (ev, seat, oid + 1)),
        ("INSERT INTO tickets (ticket_id, event_id, seat_no, order_id, owner_id, status) "
         "VALUES (1, %s, %s, %s, 5, 'cancelled')", (ev, nseats, oid)),
        ("INSERT INTO outbox (kind, order_id, reservation_id, event_id, amount_cents, currency, "
         "payment_method, idempotency_key) VALUES ('charge', %s, %s, %s, 1, 'USD', 'pm', 'k')",
         (oid + 1, rid, ev)),
        ("INSERT INTO payments (order_id, kind, state, amount_cents, currency) "
         "VALUES (%s, 'charge', 'failed', 1, 'USD')", (oid + 1,)),
        ("INSERT INTO orders (order_id, reservation_id, user_id, state, total_cents, currency) "
         "VALUES (%s, %s, 5, 'failed', 0, 'USD')", (oid + 1, rid + 1)),
        ("UPDATE tickets SET order_id = order_id + 1 WHERE order_id = %s", (oid,)),
        ("UPDATE order_items SET seat_no = seat_no + %s WHERE order_id = %s", (nseats, oid)),
        ("UPDATE orders SET reservation_id = reservation_id + 1 WHERE order_id = %s", (oid,)),
        ("UPDATE orders SET order_id = order_id + 1 WHERE order_id = %s", (oid,)),
        ("UPDATE seats SET seat_no = seat_no + %s WHERE event_id = %s AND seat_no = %s",
         (nseats, ev, seat)),
        ("DELETE FROM orders WHERE order_id = %s", (oid,)),
        ("DELETE FROM seats WHERE event_id = %s AND seat_no = %s", (ev, seat)),
        ("DELETE FROM reservations WHERE reservation_id = %s", (rid,)),
    ]
    conn = psycopg2.connect(pg_dsn(st.db))
    try:
        cur = conn.cursor()
        for sql, args in refused:
            with pytest.raises(psycopg2.errors.ForeignKeyViolation):
                cur.execute(sql, args)
            conn.rollback()
        # Ten rows, one call of each check (a row-level foreign key: ten).
        cur.execute("INSERT INTO orders (order_id, reservation_id, user_id, state, total_cents, "
                    "currency) VALUES (%s, %s, 5, 'failed', 0, 'USD')", (oid + 1, rid))
        for sql in ("INSERT INTO order_items SELECT %s, %s, g, 1 FROM generate_series(0, 9) g",
                    "INSERT INTO tickets (ticket_id, event_id, seat_no, order_id, owner_id, "
                    "status) SELECT 100 + g, %s, g, %s, 5, 'cancelled' FROM generate_series(0, 9) g"):
            args = (oid + 1, ev) if "order_items" in sql else (ev, oid + 1)
            calls = trigger_calls(cur, sql, args)
            assert len(calls) == 2 and set(calls.values()) == {1}, calls
        conn.rollback()
        # A payment of an order not referenced yet, uncommitted: the order
        # cannot be deleted meanwhile (else the payment would be an orphan).
        st.sql("INSERT INTO orders (order_id, reservation_id, user_id, state, total_cents, "
               "currency) VALUES (%s, %s, 5, 'failed', 0, 'USD')", (oid + 1, rid))
        cur.execute("INSERT INTO payments (order_id, kind, state, amount_cents, currency) "
                    "VALUES (%s, 'charge', 'failed', 1, 'USD')", (oid + 1,))
        with st.pg.cursor() as d:
            d.execute("SET lock_timeout = '300ms'")
            with pytest.raises(psycopg2.errors.LockNotAvailable):
                d.execute("DELETE FROM orders WHERE order_id = %s", (oid + 1,))
            d.execute("SET lock_timeout = 0")
        conn.rollback()
        st.sql("DELETE FROM orders WHERE order_id = %s", (oid + 1,))
    finally:
        conn.close()


def test_decline_then_pay_and_late_payment_refund():
    with Stack(partitions=2) as st:
        env = Env(st)
        ev = st.create_event(sections=[("A", 1, 10, 3000)])
        rid = env.hold(7, ev, 1)
        s, _, b = env.checkout(7, rid, "d1", pm="pm_card_chargeDeclined")
        assert s == 202
        o = env.wait_order(7, b["order_id"])
        assert o["state"] == "failed" and o["reason"] == "declined"
        # The reservation is usable again until it expires.
        st.wait_for(lambda: st.sql("SELECT state FROM reservations")[0][0] == "held", 10, "held again")
        s, _, b2 = env.checkout(7, rid, "d2")
        assert s == 202 and b2["order_id"] != b["order_id"]
        assert env.wait_order(7, b2["order_id"])["state"] == "paid"

        # Late payment: the gateway is slower than hold + grace.
        ev2 = st.create_event(sections=[("B", 1, 5, 2000)], hold_seconds=60)
        st.sql("UPDATE events SET hold_seconds = 60 WHERE event_id = %s", (ev2,))
        env.faults(latency_ms=4000)
        _, p = env.reserve(8, ev2, 1)
        rid = p["reservation"]["reservation_id"]
        # Make the hold run out mid-charge: move its expiry close, restart the worker to reload.
        s, _, b3 = env.checkout(8, rid, "late1")
        assert s == 202
        st.wait_for(lambda: st.sql("SELECT count(*) FROM orders WHERE state = 'pending'")[0][0] == 1,
                    10, "order pending")
        env.worker.kill()
        env.worker.wait()
        st.sql("UPDATE reservations SET expires_at = now() - interval '200 seconds' "
               "WHERE state = 'paying'")
        env.worker = st.start_worker(kafka_session_timeout_ms=MIN_SESSION_MS)
        o = env.wait_order(8, b3["order_id"], timeout=60)
        assert o["state"] in ("failed", "refunded"), o
        env.faults(latency_ms=0)
        o = env.wait_order(8, b3["order_id"], states=("refunded",), timeout=60)
        assert o["tickets"] == []
        st.wait_for(lambda: settled(env), 30, "outbox settled")
        assert st.sql("SELECT count(*) FROM seats WHERE event_id = %s AND status = 'sold'", (ev2,))[0][0] == 0
        assert reconcile(env) == 2


def test_transfer_and_cancel_owner_only():
    with Stack(partitions=2) as st:
        env = Env(st)
        ev = st.create_event(sections=[("A", 1, 2, 4000)], max_per_user=2)
        _, p = env.reserve(10, ev, 2)
        s, _, b = env.checkout(10, p["reservation"]["reservation_id"], "t1")
        tickets = env.wait_order(10, b["order_id"])["tickets"]
        t1, t2 = tickets[0]["ticket_id"], tickets[1]["ticket_id"]
        # A fan waiting for a seat (everything is sold out... so one waits via a hold).
        before = st.sql("SELECT ticket_id, owner_id, status FROM tickets ORDER BY ticket_id")
        mallory = st.token(66, "fan")
        r = st.http("POST", f"/v1/tickets/{t1}/transfer", {"to_user_id": 67}, token=mallory)
        assert r[0] == 404, r
        assert st.http("POST", f"/v1/tickets/{t1}/cancel", None, token=mallory)[0] == 404
        assert st.http("POST", "/v1/tickets/0/cancel", None, token=mallory)[0] == 400
        time.sleep(1)
        assert st.sql("SELECT ticket_id, owner_id, status FROM tickets ORDER BY ticket_id") == before
        # The owner transfers t1 to 11: 11 sees it, 10 does not.
        st.account(11)
        s, _, x = st.http("POST", f"/v1/tickets/{t1}/transfer", {"to_user_id": 11}, token=st.token(10, "fan"))
        assert s == 202, x
        st.wait_for(lambda: [t["ticket_id"] for t in st.http("GET", "/v1/me/tickets", token=st.token(11, "fan"))[2]["tickets"]] == [t1],
                    20, "new owner sees it")
        mine = [t["ticket_id"] for t in st.http("GET", "/v1/me/tickets", token=st.token(10, "fan"))[2]["tickets"]]
        assert mine == [t2]
        # The old owner can no longer move it.
        assert st.http("POST", f"/v1/tickets/{t1}/cancel", None, token=st.token(10, "fan"))[0] == 404
        # 11 cancels: refund, seat back to the queue and to the next fan.
        s, _, x = st.http("POST", f"/v1/tickets/{t1}/cancel", None, token=st.token(11, "fan"))
        assert s == 202, x
        st.wait_for(lambda: st.sql("SELECT status FROM tickets WHERE ticket_id = %s", (t1,))[0][0] == "cancelled",
                    20, "cancelled")
        _, p = env.reserve(12, ev, 1)
        assert p["state"] == "reserved"
        st.wait_for(lambda: settled(env), 30, "refund sent")
        led = env.ledger()
        assert sum(r["amount_cents"] for r in led["refunds"]) == 4000


def test_circuit_breaker_opens_fails_fast_and_closes():
    with Stack(partitions=1) as st:
        env = Env(st, payments_breaker_failures=3, payments_breaker_open_ms=1500)
        ev = st.create_event(sections=[("A", 1, 10, 1000)])
        _, p = env.reserve(20, ev, 1)
        env.faults(error_rate=1.0)
        s, _, b = env.checkout(20, p["reservation"]["reservation_id"], "cb1")
        assert s == 202
        st.wait_for(lambda: env.breaker() == 1, 20, "breaker open")
        st.wait_for(lambda: 'outcome="breaker_open"} ' in env.metrics() and any(
            l.startswith('onsale_payments_calls_total{kind="charge",outcome="breaker_open"}') and float(l.split()[-1]) > 0
            for l in env.metrics().splitlines()), 20, "fast fails")
        assert env.order(20, b["order_id"])["state"] == "pending"
        env.faults(error_rate=0.0)
        st.wait_for(lambda: env.breaker() == 0, 30, "breaker closed after a half-open probe")
        assert env.wait_order(20, b["order_id"])["state"] == "paid"
        assert "half-open -> closed" in env.payments.output()


def test_reconciliation_under_faults_and_kill9():
    with Stack(partitions=2) as st:
        env = Env(st, payments_threads=4)
        ev = st.create_event(sections=[("A", 5, 10, 2500)], hold_seconds=600)
        env.faults(lost_response_rate=0.3, error_rate=0.2, decline_rate=0.1,
                   latency_ms=20, latency_jitter_ms=50)
        users = list(range(100, 140))
        orders = {}
        for i, u in enumerate(users):
            _, p = env.reserve(u, ev, 1)
            if p["state"] != "reserved":
                continue
            rid = p["reservation"]["reservation_id"]
            s, _, b = env.checkout(u, rid, f"r{u}")
            assert s == 202, b
            # Retried client: the same key again is the same order.
            assert env.checkout(u, rid, f"r{u}")[2]["order_id"] == b["order_id"]
            orders[u] = b["order_id"]
            if i == 12:
                env.payments.kill()
                env.payments.wait()
                env.payments = env.start_payments()
            if i == 25:
                env.worker.kill()
                env.worker.wait()
                env.worker = st.start_worker(kafka_session_timeout_ms=MIN_SESSION_MS)
        env.faults(error_rate=1.0)  # a 5xx burst
        time.sleep(2)
        env.payments.kill()
        env.payments.wait()
        env.faults(error_rate=0.0, lost_response_rate=0.0, decline_rate=0.0)
        env.payments = env.start_payments()
        for u, oid in orders.items():
            env.wait_order(u, oid, timeout=120)
        st.wait_for(lambda: settled(env), 60, "outbox settled")
        n = reconcile(env)
        paid = st.sql("SELECT count(*) FROM orders WHERE state = 'paid'")[0][0]
        assert n >= paid > 0
        assert st.sql("SELECT count(*) FROM orders GROUP BY reservation_id HAVING "
                      "count(*) FILTER (WHERE state = 'paid') > 1") == []
