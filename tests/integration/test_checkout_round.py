"""test_checkout_round.py - checkouts in the checkout claimer's rounds
(checkout.round_max, issue 12) answer exactly as one at a time
(checkout.round_max 0, the control), against the real binaries.

One burst of checkouts lands in one round (debug.checkout_round_delay_ms
holds the round before it, so the burst gathers; the claimer's counters
show it), mixing every situation a round must keep apart:
  * fans each paying their own hold: 202 pending, one order each;
  * the same Idempotency-Key twice at once: one order; the twin replays the
    202 or answers 409 idempotency_in_progress;
  * two keys for one reservation: one paid order at most, the other order
    fails (not_held) at the owner, one charge;
  * the same key with another body: 422 idempotency_mismatch;
  * another fan's reservation (its seq signed for the caller): 404, and the
    owner's own checkout in the same round still succeeds;
  * an expired hold: 409 invalid_state; no such reservation: 404;
  * a fan over the checkout rate limit: 429 rate_limited for the excess.
Then, in later rounds: replays of stored 202s (the same body), a new key for
a paying hold (409 checkout_in_progress) and for a purchased one (409
invalid_state). Both runs must give the same answers, and the gateway's
ledger reconciles (one charge per paid order).
"""
import hashlib
import hmac
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, IDS_SECRET, Stack, metric  # noqa: E402
from test_checkout import Env, reconcile  # noqa: E402

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-payments"), os.X_OK),
                                reason="onsale-payments is not built")

PLAIN = [1, 2, 3, 4, 5, 6]
DUP, TWO_KEYS, MISMATCH, FOREIGN, OWNER, EXPIRED, MISSING, RATED = 7, 8, 9, 10, 11, 12, 13, 14
PRIMER = 90
NOWHERE = 999_999  # an intents-topic offset no test reaches: no such reservation


def reservation_id(seq, user):
    """The public id of reservation seq signed for user (queue/intent_id.h)."""
    tag = hmac.new(IDS_SECRET.encode(), f"reservation:{seq}:{user}".encode(),
                   hashlib.sha256).hexdigest()[:16]
    return f"{seq:016x}{tag}"


def normal(answer, rid):
    """An answer with the ids of this run replaced: a 202 must name its
    order and reservation consistently."""
    s, b = answer
    if s != 202:
        return s, b
    assert set(b) == {"order_id", "state", "reservation_id", "status_url"}, b
    assert b["reservation_id"] == rid and b["status_url"] == f"/v1/orders/{b['order_id']}", b
    return s, {**b, "order_id": "<order>", "reservation_id": "<rid>", "status_url": "<url>"}


def run(round_max):
    """The whole scenario on a fresh stack; returns the normalized answers
    by case, and the claimer's (rounds, checkouts) during the burst."""
    with Stack(partitions=2) as st:
        env = Env(st, payments=False,
                  ingress=dict(checkout_round_max=round_max, debug_checkout_round_delay_ms=1500,
                               ratelimit_checkout_user_per_min=1,
                               ratelimit_checkout_user_burst=3))
        port = int(env.ingress_url.rsplit(":", 1)[1])
        ev = st.create_event(sections=[("A", 2, 10, 4000)], max_per_user=1)
        holders = PLAIN + [DUP, TWO_KEYS, MISMATCH, OWNER, EXPIRED]
        with ThreadPoolExecutor(16) as ex:
            rid = dict(zip(holders, ex.map(lambda u: env.hold(u, ev), holders)))
        seq = {u: int(r[:16], 16) for u, r in rid.items()}
        st.sql("UPDATE reservations SET expires_at = now() - interval '1 minute' "
               "WHERE reservation_id = %s", (seq[EXPIRED],))
        rid[FOREIGN] = reservation_id(seq[OWNER], FOREIGN)
        rid[MISSING] = rid[RATED] = rid[PRIMER] = None
        for u in (MISSING, RATED, PRIMER):
            rid[u] = reservation_id(NOWHERE, u)

        def checkout(req):
            label, u, key, pm = req
            s, _, b = env.checkout(u, rid[u], key, pm)
            return label, u, (s, b)

        wave1 = [("plain", u, f"k-{u}", "pm_card_visa") for u in PLAIN]
        wave1 += [("dup", DUP, "k-dup", "pm_card_visa")] * 2
        wave1 += [("two_keys", TWO_KEYS, f"k-two-{i}", "pm_card_visa") for i in range(2)]
        wave1 += [("mismatch", MISMATCH, "k-mm", pm) for pm in ("pm_card_visa", "pm_card_mastercard")]
        wave1 += [("foreign", FOREIGN, "k-foreign", "pm_card_visa"),
                  ("owner", OWNER, "k-owner", "pm_card_visa"),
                  ("expired", EXPIRED, "k-expired", "pm_card_visa"),
                  ("missing", MISSING, "k-missing", "pm_card_visa")]
        wave1 += [("rated", RATED, f"k-rated-{i}", "pm_card_visa") for i in range(5)]
        rounds0 = metric(port, "onsale_ingress_checkout_rounds_total")
        items0 = metric(port, "onsale_ingress_checkout_round_items_total")
        with ThreadPoolExecutor(1) as primer, ThreadPoolExecutor(len(wave1)) as ex:
            # The primer's round waits 1.5 s: the burst gathers behind it.
            first = primer.submit(checkout, ("primer", PRIMER, "k-primer", "pm_card_visa"))
            time.sleep(0.3)
            out1 = list(ex.map(checkout, wave1))
            assert first.result()[2][0] == 404, first.result()
        rounds = metric(port, "onsale_ingress_checkout_rounds_total") - rounds0
        items = metric(port, "onsale_ingress_checkout_round_items_total") - items0

        by = {}
        for label, u, a in out1:
            by.setdefault(label, []).append(normal(a, rid[u]))
        orders = {a[1]["order_id"] for _, _, a in out1 if a[0] == 202}
        # The owner applied every checkout record: one order row each.
        st.wait_for(lambda: st.sql("SELECT count(*) FROM orders")[0][0] == len(orders), 60,
                    "an order per accepted checkout")

        # Later rounds: replays, another body, a paying hold.
        first202 = {label: a for label, u, a in out1 if a[0] == 202}
        wave2 = [("replay", PLAIN[0], f"k-{PLAIN[0]}", "pm_card_visa"),
                 ("replay_mismatch", PLAIN[1], f"k-{PLAIN[1]}", "pm_card_mastercard"),
                 ("paying", PLAIN[2], "k-again", "pm_card_visa"),
                 ("dup_replay", DUP, "k-dup", "pm_card_visa")]
        with ThreadPoolExecutor(len(wave2)) as ex:
            out2 = list(ex.map(checkout, wave2))
        for label, u, a in out2:
            by.setdefault(label, []).append(normal(a, rid[u]))
        plain1 = next(a for label, u, a in out1 if u == PLAIN[0])
        assert dict(out2[0][2][1]) == plain1[1], (out2[0], plain1)
        assert out2[3][2] == first202["dup"], (out2[3], first202["dup"])

        # Payments run: every accepted order is decided.
        env.payments = env.start_payments()
        st.wait_for(lambda: st.sql("SELECT count(*) FROM orders WHERE state IN "
                                   "('pending')")[0][0] == 0, 90, "every order decided")
        by["purchased"] = [normal(checkout(("purchased", PLAIN[3], "k-later", "pm_card_visa"))[2],
                                  rid[PLAIN[3]])]
        # One live order per reservation, and a ledger that reconciles.
        for u in holders:
            states = sorted(r[0] for r in st.sql(
                "SELECT state FROM orders WHERE reservation_id = %s", (seq[u],)))
            want = {EXPIRED: [], TWO_KEYS: ["failed", "paid"]}.get(u, ["paid"])
            assert states == want or (u == TWO_KEYS and states == ["paid"]), (u, states)
        paid = st.sql("SELECT count(*) FROM orders WHERE state = 'paid'")[0][0]
        assert reconcile(env) == paid  # one charge per paid order, none for a failed one
        return {k: sorted(v, key=repr) for k, v in by.items()}, rounds, items


def check_answers(by):
    ok = (202, {"order_id": "<order>", "state": "pending", "reservation_id": "<rid>",
                "status_url": "<url>"})

    def err(status, code, message):
        return status, {"error": {"code": code, "message": message}}
    not_found = err(404, "not_found", "No such reservation.")
    assert by["plain"] == [ok] * len(PLAIN), by["plain"]
    assert by["owner"] == [ok] and by["foreign"] == [not_found], by
    dup = by["dup"]
    assert dup == [ok, ok] or (dup[0] == ok and dup[1][0] == 409 and
                               dup[1][1]["error"]["code"] == "idempotency_in_progress"), dup
    assert by["two_keys"] in ([ok, ok], sorted([ok, err(
        409, "checkout_in_progress",
        "The reservation is paying; only a held reservation can be paid.")], key=repr)), by
    assert [a[0] for a in by["mismatch"]] == [202, 422], by["mismatch"]
    assert by["mismatch"][1][1]["error"]["code"] == "idempotency_mismatch", by["mismatch"]
    assert by["expired"] == [err(409, "invalid_state", "The reservation is expired; only a held "
                                 "reservation can be paid.")], by["expired"]
    assert by["missing"] == [not_found], by["missing"]
    limited = err(429, "rate_limited", "Too many requests; retry after the time in Retry-After.")
    assert by["rated"] == sorted([not_found] * 3 + [limited] * 2, key=repr), by["rated"]
    assert by["replay"] == [ok] and by["dup_replay"] == [ok], by
    assert by["replay_mismatch"][0][1]["error"]["code"] == "idempotency_mismatch", by
    assert by["paying"] == [err(409, "checkout_in_progress", "The reservation is paying; only a "
                                "held reservation can be paid.")], by["paying"]
    assert by["purchased"] == [err(409, "invalid_state", "The reservation is purchased; only a "
                                   "held reservation can be paid.")], by["purchased"]


def test_a_round_answers_as_one_at_a_time():
    rounded, rounds, items = run(256)
    check_answers(rounded)
    # The burst (21 checkouts) and the primer went through at most 3 rounds:
    # one of them carried at least 11 checkouts and one reservation read.
    assert items == 22 and 2 <= rounds <= 3, (rounds, items)
    alone, rounds0, items0 = run(0)  # the control: no claimer
    check_answers(alone)
    assert rounds0 == 0 and items0 == 0
    # The same answers; only the in-flight twin may differ in timing.
    for k in rounded:
        if k not in ("dup", "two_keys"):
            assert rounded[k] == alone[k], (k, rounded[k], alone[k])
