"""test_payment_replay_more.py - variations of test_payment_replay.py (issue
14 item 4): a paid order is never downgraded and a charge is never both
ticketed and refunded, whatever the relay re-sends and however the owner
batches it:
  * three copies of a success in one batch;
  * a success applied, the worker killed, the copy applied by the next
    owner in a later batch;
  * a success, then a failure for the same order, in one batch;
  * a failure, then a success, in one batch: the charge that did go through
    is refunded (the hold went back to the fan), never ticketed."""
import pytest

from harness import Stack
from test_payment_replay import apply_in_one_batch, pending_order


def result(oid, rid, outcome, charge):
    r = {"type": "payment_result", "order_id": oid, "reservation_id": rid, "outcome": outcome,
         "amount_cents": 10000}
    if outcome == "succeeded":
        r["gateway_charge_id"] = charge
    return r


def replay(outcomes, restart_between=False):
    """Reserves 2 seats, checks out, kills the owner, produces the results
    (outcomes) and lets a new owner apply them in one batch (or, with
    restart_between, the first in one owner's batch and the rest in the
    next owner's). Returns (order state, valid tickets, outbox kinds,
    intent state)."""
    with Stack(partitions=1) as st:
        w = st.start_worker(name="w1", kafka_session_timeout_ms=6000)
        ev, rid, oid = pending_order(st, w)
        recs = [result(oid, rid, o, "ch_1") for o in outcomes]
        groups = [recs[:1], recs[1:]] if restart_between else [recs]
        for i, g in enumerate(groups):
            w = apply_in_one_batch(st, w, ev, g, f"w{i + 2}")
        out = (st.sql("SELECT state FROM orders WHERE order_id = %s", (oid,))[0][0],
               st.sql("SELECT count(*) FROM tickets WHERE order_id = %s AND status = 'valid'",
                      (oid,))[0][0],
               [k for k, in st.sql("SELECT kind FROM outbox WHERE order_id = %s ORDER BY "
                                   "outbox_id", (oid,))],
               st.sql("SELECT state FROM intents WHERE intent_seq = %s", (rid,))[0][0])
        assert w.stop() == 0
        return out


@pytest.mark.parametrize("outcomes,restart", [
    (["succeeded"] * 3, False),
    (["succeeded", "succeeded"], True),
    (["succeeded", "declined"], False),
    (["succeeded", "failed"], True),
], ids=["three-in-one-batch", "copy-after-restart", "success-then-decline",
        "success-then-failure-after-restart"])
def test_a_paid_order_stays_paid(outcomes, restart):
    assert replay(outcomes, restart) == ("paid", 2, ["charge"], "purchased")


def test_failure_then_success_refunds_the_charge_never_tickets():
    state, tickets, kinds, intent_state = replay(["failed", "succeeded"])
    assert tickets == 0 and state == "refunded" and kinds == ["charge", "refund"]
    assert intent_state == "reserved"  # the failure gave the hold back
