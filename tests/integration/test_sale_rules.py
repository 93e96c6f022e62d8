"""test_sale_rules.py - who writes sale state, and the money and sale rules
(issue 14 items 6 and 7; docs/checkout.md "Cancelled and ended events")
against the real stack: ingress, worker, onsale-payments and the gateway
simulator (the Env of test_checkout.py).

  * pause/resume/cancel: ingress checks and produces, the partition owner
    alone writes events.status, in order with the intents around it;
  * cancelling an event voids every sold ticket and refunds each order
    exactly once at the gateway (under lost responses), releases holds and
    answers waiting fans; a payment in flight is refunded, never ticketed;
  * a fan's ticket cancel is refunded before tickets.refund_cutoff_s and
    refused (409 refund_window_closed) after it, by ingress and by the owner;
  * events are created with starts_at ahead and onsale_at before it;
  * an event ends events.end_grace_s after its show: joins, checkouts and
    ticket changes are refused (409).
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Stack  # noqa: E402
from test_checkout import Env, reconcile, settled  # noqa: E402

SELLER = 1000


def status_of(st, ev):
    return st.sql("SELECT status FROM events WHERE event_id = %s", (ev,))[0][0]


def join(st, user, ev, qty=1):
    return st.http("POST", f"/v1/events/{ev}/intents", {"quantity": qty}, token=st.token(user, "fan"))


def poll(st, user, url, states=("reserved", "waiting", "rejected", "released", "expired")):
    fan = st.token(user, "fan")
    return st.wait_for(lambda: (lambda p: p if p.get("state") in states else None)(
        st.http("GET", url, token=fan)[2]), 30, f"{url} in {states}")


def buy(env, user, ev, qty=1, key=None):
    """Join, pay; returns (order_id, [ticket ids])."""
    _, p = env.reserve(user, ev, qty)
    assert p["state"] == "reserved", p
    s, _, b = env.checkout(user, p["reservation"]["reservation_id"], key or f"buy-{user}-{ev}")
    assert s == 202, b
    o = env.wait_order(user, b["order_id"])
    assert o["state"] == "paid", o
    return b["order_id"], [t["ticket_id"] for t in o["tickets"]]


def ticket_for_show_in(env, starts_in, sections):
    """An event whose show starts `starts_in` (an SQL interval) from now, and
    the ticket user 1 bought for it. Returns (event_id, ticket_id)."""
    st = env.st
    ev = st.create_event(sections=sections)
    st.sql("UPDATE events SET starts_at = now() + %s::interval WHERE event_id = %s", (starts_in, ev))
    _, (t,) = buy(env, 1, ev)
    return ev, t


def error_code(resp):
    s, _, b = resp
    return s, (b.get("error") or {}).get("code") if isinstance(b, dict) else None


# ---- item 6: one writer of sale state ------------------------------------------------


def test_pause_is_written_by_the_owner_in_order_with_joins():
    with Stack(partitions=1) as st:
        st.start_ingress()
        ev = st.create_event(sections=[("A", 1, 4, 1000)])
        seller = st.token(SELLER, "seller")
        # Ingress keeps its checks: another seller is refused, nothing is sent.
        assert error_code(st.http("POST", f"/v1/events/{ev}/pause",
                                  token=st.token(SELLER + 1, "seller"))) == (403, "forbidden")
        s, _, before = join(st, 1, ev)
        assert s == 202, before
        s, _, b = st.http("POST", f"/v1/events/{ev}/pause", token=seller)
        # No worker runs: nothing has applied the pause, so nothing says paused.
        time.sleep(0.5)
        assert status_of(st, ev) == "on_sale"
        assert s == 202, b
        assert b == {"event_id": ev, "status": "paused", "status_url": f"/v1/events/{ev}"}
        assert st.http("GET", f"/v1/events/{ev}")[2]["status"] == "on_sale"
        assert st.redis.hget(st.key(f"ev:{ev}"), "status") in (None, "on_sale")
        # A join after the pause record is still accepted by ingress (the sale
        # state is the owner's) and lands behind the pause in the log.
        s, _, after = join(st, 2, ev)
        assert s == 202, after

        w = st.start_worker()
        st.wait_for(lambda: status_of(st, ev) == "paused", 30, "the owner applied the pause", proc=w)
        assert poll(st, 1, before["status_url"])["state"] == "reserved"
        p = poll(st, 2, after["status_url"])
        assert (p["state"], p["reason"]) == ("rejected", "sale_closed"), p
        # the event view follows within its ttl (event_view.ttl_ms, 1 s)
        st.wait_for(lambda: st.http("GET", f"/v1/events/{ev}")[2]["status"] == "paused", 5,
                    "the event view says paused")
        st.wait_for(lambda: st.redis.hget(st.key(f"ev:{ev}"), "status") == "paused", 10,
                    "the owner's projection")
        st.wait_for(lambda: error_code(join(st, 3, ev)) == (409, "sale_not_open"), 10,
                    "joins refused while paused")

        s, _, b = st.http("POST", f"/v1/events/{ev}/resume", token=st.token(1, "admin"))
        assert s == 202 and b["status"] == "on_sale", b
        st.wait_for(lambda: status_of(st, ev) == "on_sale", 30, "resumed", proc=w)
        s, _, b = st.http("POST", f"/v1/events/{ev}/cancel", token=seller)
        assert s == 202 and b["status"] == "cancelled", b
        st.wait_for(lambda: status_of(st, ev) == "cancelled", 30, "cancelled", proc=w)
        p = poll(st, 1, before["status_url"], states=("released",))
        assert p["reason"] == "cancelled", p
        assert error_code(st.http("POST", f"/v1/events/{ev}/resume", token=seller)) == \
            (409, "invalid_transition")
        st.wait_for(lambda: error_code(join(st, 4, ev)) == (409, "sale_closed"), 10, "closed")


# ---- item 7: cancelling an event ------------------------------------------------------


def test_event_cancel_voids_tickets_and_refunds_each_order_once():
    with Stack(partitions=2) as st:
        env = Env(st)
        ev = st.create_event(sections=[("A", 1, 5, 2500)], max_per_user=4)
        o1, (t1a, t1b) = buy(env, 1, ev, 2)
        o2, (t2,) = buy(env, 2, ev, 1)
        # Before the cut-off (the show is 30 days away) a fan's cancel is refunded.
        s, _, b = st.http("POST", f"/v1/tickets/{t1a}/cancel", token=st.token(1, "fan"))
        assert s == 202, b
        st.wait_for(lambda: st.sql("SELECT status FROM tickets WHERE ticket_id = %s", (t1a,))[0][0]
                    == "cancelled", 20, "ticket cancelled")
        _, held = env.reserve(3, ev, 2)
        assert held["state"] == "reserved", held
        w_iid, waiting = env.reserve(4, ev, 2)
        assert waiting["state"] == "waiting", waiting
        st.wait_for(lambda: settled(env), 30, "first refund sent")

        # Refunds race lost responses and retries: still one per order.
        env.faults(lost_response_rate=0.5)
        s, _, b = st.http("POST", f"/v1/events/{ev}/cancel", token=st.token(SELLER, "seller"))
        assert s == 202 and b["status"] == "cancelled", b
        st.wait_for(lambda: status_of(st, ev) == "cancelled", 30, "cancel applied")
        assert st.sql("SELECT ticket_id, status FROM tickets WHERE event_id = %s ORDER BY ticket_id",
                      (ev,)) == sorted([(t1a, "cancelled"), (t1b, "voided"), (t2, "voided")])
        st.wait_for(lambda: settled(env), 60, "refunds sent")
        env.faults(lost_response_rate=0.0)
        assert st.sql("SELECT state FROM orders ORDER BY order_id") == [("refunded",), ("refunded",)]
        assert st.sql("SELECT count(*) FROM seats WHERE event_id = %s AND status <> 'available'",
                      (ev,)) == [(0,)]
        assert env.order(1, o1)["state"] == "refunded"
        # Holds released, waiting fans answered.
        assert st.sql("SELECT state, reason FROM intents WHERE user_id IN (3, 4) ORDER BY user_id") == \
            [("released", "cancelled"), ("rejected", "sale_closed")]
        # The gateway: order 1 refunded its cancelled ticket then the rest,
        # order 2 once; every charge refunded in full, nothing twice.
        led = env.ledger()
        charge_of = {c["order_id"]: c for c in led["charges"]}
        per_charge = {}
        for r in led["refunds"]:
            per_charge.setdefault(r["charge"], []).append(r["amount_cents"])
        assert sorted(per_charge[charge_of[str(int(st.sql(
            "SELECT order_id FROM orders WHERE user_id = 1")[0][0]))]["id"]]) == [2500, 2500]
        assert per_charge[charge_of[str(int(st.sql(
            "SELECT order_id FROM orders WHERE user_id = 2")[0][0]))]["id"]] == [2500]
        assert st.sql("SELECT count(*) FROM outbox WHERE kind = 'refund'")[0][0] == 3
        assert reconcile(env) == 2
        # The void tickets cannot be moved; the sale is closed.
        assert error_code(st.http("POST", f"/v1/tickets/{t2}/cancel", token=st.token(2, "fan"))) == \
            (409, "event_cancelled")
        assert error_code(st.http("POST", f"/v1/tickets/{t1b}/transfer", {"to_user_id": 9},
                                  token=st.token(1, "fan"))) == (409, "event_cancelled")
        assert error_code(join(st, 5, ev)) == (409, "sale_closed")


def test_payment_in_flight_at_cancel_is_refunded_never_ticketed():
    with Stack(partitions=1) as st:
        env = Env(st)
        ev = st.create_event(sections=[("A", 1, 4, 3000)])
        env.faults(latency_ms=3000)
        _, p = env.reserve(7, ev, 1)
        s, _, b = env.checkout(7, p["reservation"]["reservation_id"], "inflight")
        assert s == 202, b
        st.wait_for(lambda: st.sql("SELECT count(*) FROM outbox WHERE kind = 'charge' "
                                   "AND attempts > 0")[0][0] == 1, 20, "charge sent to the gateway")
        s, _, c = st.http("POST", f"/v1/events/{ev}/cancel", token=st.token(SELLER, "seller"))
        assert s == 202, c
        st.wait_for(lambda: status_of(st, ev) == "cancelled", 30, "cancel applied")
        assert st.sql("SELECT state, failure_reason FROM orders") == [("failed", "cancelled")]
        env.faults(latency_ms=0)
        o = env.wait_order(7, b["order_id"], states=("refunded",), timeout=60)
        assert o["tickets"] == [], o
        st.wait_for(lambda: settled(env), 30, "refund sent")
        assert st.sql("SELECT count(*) FROM tickets")[0][0] == 0
        led = env.ledger()
        assert len(led["charges"]) == 1 and len(led["refunds"]) == 1
        assert led["refunds"][0]["amount_cents"] == led["charges"][0]["amount_cents"] == 3000
        assert reconcile(env) == 1


# ---- item 7: refund cut-off -----------------------------------------------------------


def test_ticket_cancel_refused_after_the_refund_cutoff(monkeypatch):
    monkeypatch.setenv("ONSALE_TICKETS_REFUND_CUTOFF_S", "7200")
    with Stack(partitions=1) as st:
        env = Env(st)
        # The show is in one hour: inside the two-hour cut-off.
        ev, t = ticket_for_show_in(env, "1 hour", [("A", 1, 4, 4000)])
        s, _, e = st.http("POST", f"/v1/tickets/{t}/cancel", token=st.token(1, "fan"))
        assert s == 409 and e["error"]["code"] == "refund_window_closed", e
        assert "before the show" in e["error"]["message"]
        # The owner applies the same rule to a record that bypassed ingress.
        st.produce(ev, {"type": "ticket", "kind": "cancel", "user_id": 1, "ticket_id": t})
        p2 = st.produce(ev, {"type": "event_status", "status": "paused"})
        st.wait_for(lambda: st.sql("SELECT next_offset FROM partition_owner")[0][0] > p2[1], 30,
                    "records applied")
        assert st.sql("SELECT status FROM tickets WHERE ticket_id = %s", (t,)) == [("valid",)]
        assert st.sql("SELECT count(*) FROM outbox WHERE kind = 'refund'") == [(0,)]
        # A transfer is still allowed until the event ends.
        st.account(2)
        s, _, b = st.http("POST", f"/v1/tickets/{t}/transfer", {"to_user_id": 2}, token=st.token(1, "fan"))
        assert s == 202, b


# ---- item 7: creating events -----------------------------------------------------------


def test_event_needs_a_future_start_and_onsale_before_it():
    with Stack(partitions=1) as st:
        st.start_ingress()
        seller = st.token(SELLER, "seller")
        s, _, v = st.http("POST", "/v1/venues", {"name": "Hall", "city": "Utrecht", "country": "NL",
                                                 "sections": [{"name": "A", "rows": 1, "seats_per_row": 2}]},
                          token=seller)
        assert s == 201, v

        def body(**kw):
            b = {"venue_id": v["venue_id"], "name": "Show", "category": "concert",
                 "starts_at": "2030-06-01T20:00:00Z", "tiers": [{"section": "A", "price_cents": 100}]}
            b.update(kw)
            return b
        for bad, field in ((body(starts_at="2020-01-01T20:00:00Z"), "starts_at"),
                           (body(onsale_at="2030-06-01T20:00:00Z"), "onsale_at"),
                           (body(onsale_at="2030-07-01T20:00:00Z"), "onsale_at")):
            s, _, e = st.http("POST", "/v1/events", bad, token=seller)
            assert s == 400 and e["error"]["code"] == "invalid_field" and e["error"]["field"] == field, e
        assert st.sql("SELECT count(*) FROM events") == [(0,)]
        s, _, e = st.http("POST", "/v1/events", body(onsale_at="2030-05-01T10:00:00Z"), token=seller)
        assert s == 201 and e["status"] == "scheduled", e


# ---- item 7: ended events ---------------------------------------------------------------


def test_ended_event_refuses_joins_checkouts_and_ticket_changes(monkeypatch):
    monkeypatch.setenv("ONSALE_EVENTS_END_GRACE_S", "2")
    with Stack(partitions=1) as st:
        env = Env(st)
        ev, t = ticket_for_show_in(env, "12 seconds", [("A", 1, 6, 1500)])
        _, held = env.reserve(2, ev, 1)
        rid = held["reservation"]["reservation_id"]
        # starts_at + 2 s: the owner ends the sale without any new record.
        st.wait_for(lambda: status_of(st, ev) == "ended", 30, "ended by the owner")
        assert st.sql("SELECT state, reason FROM intents WHERE user_id = 2") == [("released", "cancelled")]
        st.wait_for(lambda: st.redis.hget(st.key(f"ev:{ev}"), "status") == "ended", 10, "projected")
        assert error_code(join(st, 3, ev)) == (409, "sale_closed")
        assert env.checkout(2, rid, "too-late")[0] == 409
        for path, body in ((f"/v1/tickets/{t}/cancel", None),
                           (f"/v1/tickets/{t}/transfer", {"to_user_id": 4})):
            assert error_code(st.http("POST", path, body, token=st.token(1, "fan"))) == (409, "event_ended")
        assert st.sql("SELECT status, owner_id FROM tickets") == [("valid", 1)]
        assert error_code(st.http("POST", f"/v1/events/{ev}/cancel", token=st.token(SELLER, "seller"))) == \
            (409, "invalid_transition")
        assert st.http("GET", f"/v1/events/{ev}")[2]["status"] == "ended"

        # An event nobody touched since its show: shown ended at once; the
        # owner refuses a join and marks it ended on its first record.
        quiet = st.create_event(sections=[("A", 1, 2, 100)])
        st.sql("UPDATE events SET starts_at = now() - interval '1 minute' WHERE event_id = %s", (quiet,))
        assert st.http("GET", f"/v1/events/{quiet}")[2]["status"] == "ended"
        s, _, j = join(st, 5, quiet)
        if s == 202:
            p = poll(st, 5, j["status_url"])
            assert (p["state"], p["reason"]) == ("rejected", "sale_closed"), p
        else:
            assert error_code((s, None, j)) == (409, "sale_closed")
        st.wait_for(lambda: status_of(st, quiet) == "ended", 30, "quiet event ended")
        st.wait_for(lambda: error_code(join(st, 6, quiet)) == (409, "sale_closed"), 10, "refused")
