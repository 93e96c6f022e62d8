"""test_payment_concurrency.py - the relay keeps a batch's gateway calls in
flight together (issue 12, the e2e's payment tail).

Eight orders wait for their charges before onsale-payments starts (one
thread, one claim of all eight); the gateway simulator takes 400 ms per
charge. Called one after another the batch takes at least 3.2 s; with
payments.concurrency 8 the calls overlap and the relay's start to the
batch's done takes about one call (asserted: under half the sequential). The control (payments.concurrency 1) shows the sequential
relay. Either way every order is paid exactly once: one charge per order at
the gateway, one payment per order.

test_new_rows_are_claimed_when_notified: an idle relay claims new rows when
the worker's batch notifies it (migration 0015), not at its next poll."""
import json
import time
import urllib.request

import pytest

from harness import Stack, free_port
from worker_util import intent, seq, wait_state

ORDERS = 8
LATENCY_MS = 400


def ledger_charges(st, port):
    """The gateway simulator's charges (its ledger)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/ledger",
                                 headers={"Authorization": f"Bearer {st.gateway_api_key}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["charges"]


def start_slow_gateway(st):
    """The gateway simulator answering each call after LATENCY_MS."""
    return st.start_gateway(gateway_latency_ms=LATENCY_MS)


def pending_orders(st, w):
    """ORDERS fans each reserve a seat and check out; returns the order ids
    once all of them wait for their charge."""
    ev = st.create_event(sections=[("A", 1, 20, 5000)])
    held = [st.produce(ev, intent(100 + i, 1)) for i in range(ORDERS)]
    for part, off in held:
        wait_state(st, part, off, "reserved", proc=w)
    orders = []
    for i, (part, off) in enumerate(held):
        _, coff = st.produce(ev, {"type": "checkout", "user_id": 100 + i,
                                  "reservation_id": seq(part, off),
                                  "payment_method": "pm_card_visa"})
        orders.append(seq(part, coff))
    st.wait_for(lambda: st.sql("SELECT count(*) FROM outbox WHERE order_id = ANY(%s) "
                               "AND state = 'pending'", (orders,)) == [(ORDERS,)],
                20, "charges pending", proc=w)
    return orders


@pytest.mark.parametrize("concurrency", [ORDERS, 1])
def test_a_batch_calls_the_gateway_at_once(concurrency):
    with Stack(partitions=1) as st:
        w = st.start_worker()
        orders = pending_orders(st, w)
        port = start_slow_gateway(st)
        (t0,), = st.sql("SELECT now()")  # the server's clock, like done_at's
        st.start("payments", "onsale-payments", payments_gateway_url=f"http://127.0.0.1:{port}",
                 payments_key_prefix=f"{st.topic}-", metrics_port=free_port(),
                 payments_threads=1, payments_batch=ORDERS, payments_concurrency=concurrency,
                 payments_lease_ms=60000)
        st.wait_for(lambda: st.sql("SELECT count(*) FROM orders WHERE order_id = ANY(%s) "
                                   "AND state = 'paid'", (orders,)) == [(ORDERS,)],
                    30, "orders paid", proc=w)
        # the relay marks its rows done after the results are in the log
        st.wait_for(lambda: st.sql("SELECT count(*) FROM outbox WHERE order_id = ANY(%s) "
                                   "AND state = 'done'", (orders,)) == [(ORDERS,)],
                    30, "outbox rows done")
        # the relay's start to the batch done (one claim of all the rows)
        (span,), = st.sql("SELECT extract(epoch FROM max(done_at) - %s) FROM outbox "
                          "WHERE order_id = ANY(%s)", (t0, orders))
        sequential = ORDERS * LATENCY_MS / 1000.0
        if concurrency == 1:
            assert float(span) >= sequential, span  # the control: one call after another
        else:
            assert float(span) < sequential / 2, span
        # paid once each: one charge per order at the gateway, one payment row
        charged = [c["order_id"] for c in ledger_charges(st, port)]
        assert sorted(map(int, charged)) == sorted(orders)
        assert st.sql("SELECT count(*), count(DISTINCT order_id) FROM payments "
                      "WHERE order_id = ANY(%s)", (orders,)) == [(ORDERS, ORDERS)]


def relay_idle(st):
    """Every onsale-payments session is idle after its claim: the relay
    looked at the outbox, found nothing and waits."""
    rows = st.sql("SELECT state, query FROM pg_stat_activity WHERE datname = current_database() "
                  "AND application_name = 'onsale-payments'")
    return len(rows) == 2 and all(s == "idle" and q.startswith("UPDATE outbox") for s, q in rows)


@pytest.mark.parametrize("notify", [True, False])
def test_new_rows_are_claimed_when_notified(notify):
    """Migration 0015: the worker's INSERT of outbox rows notifies
    onsale_outbox and the relay's idle threads, LISTENing, claim at once.
    payments.poll_ms is 60 s here, so only the notification can wake them
    within the test; the control (the trigger dropped) shows the rows wait
    for the poll."""
    with Stack(partitions=1) as st:
        if not notify:
            st.sql("DROP TRIGGER outbox_notify_ins ON outbox")
        w = st.start_worker()
        port = st.start_gateway()
        st.start("payments", "onsale-payments", payments_gateway_url=f"http://127.0.0.1:{port}",
                 payments_key_prefix=f"{st.topic}-", metrics_port=free_port(),
                 payments_threads=2, payments_poll_ms=60000)
        st.wait_for(lambda: relay_idle(st), 20, "relay idle")
        time.sleep(1)  # past its first claims: each thread waits now
        orders = pending_orders(st, w)
        paid = ("SELECT count(*) FROM orders WHERE order_id = ANY(%s) AND state = 'paid'")
        if notify:
            st.wait_for(lambda: st.sql(paid, (orders,)) == [(ORDERS,)], 20, "orders paid",
                        proc=w)
            assert st.sql("SELECT count(*), count(DISTINCT order_id) FROM payments "
                          "WHERE order_id = ANY(%s)", (orders,)) == [(ORDERS, ORDERS)]
        else:
            time.sleep(4)
            assert st.sql("SELECT count(*) FROM outbox WHERE order_id = ANY(%s) "
                          "AND state = 'pending' AND attempts = 0", (orders,)) == [(ORDERS,)]
            assert st.sql(paid, (orders,)) == [(0,)]
