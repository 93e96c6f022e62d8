"""test_ingress_join_batch.py - joins share the join claimer's pipelined
Redis round trips (issue 12): their Idempotency-Key records, then their
active-key claims, against the real binaries.

  * A burst of concurrent joins, each fan twice at once: one Redis round
    trip carries the claims of many joins (the claimer's counters), and the
    claim rules hold inside one pipeline: every fan gets exactly one 202,
    its twin 409 already_in_queue, and the fan's active key names the
    accepted intent. The control (join.round_max=0: no claimer) gives the
    same answers with no claimer round at all.
  * Keyed joins, each fan's join sent twice at once with the same key (a
    retry racing its original): the keys are claimed in the claimer's
    rounds; per fan one intent, the twin answered with that intent (a replay)
    or 409 idempotency_in_progress; a later replay gives the same 202 body,
    the key with another body 422. The control (no claimer) answers alike.
  * A key left naming an intent that has ended (written by a node with the
    old unconditional write, debug.active_unchecked) locks fans out there;
    on a node with the claimer, their joins without a key are handed on to
    a job thread that takes the key over: every fan gets a 202.
"""
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, KeepAliveClient, Stack, metric  # noqa: E402

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-worker"), os.X_OK),
                                reason="onsale-worker is not built")

FANS = 400



def open_sale(st, fans, max_per_user=1, **ingress):
    """Starts a worker and an ingress (options ingress), creates an event of
    1,000 seats and the tokens of fans 1..fans; returns (ingress port, event
    id, join(u, body=None, key=None) -> (u, status, body))."""
    st.start_worker()
    base = st.start_ingress(**ingress)
    port = int(base.rsplit(":", 1)[1])
    ev = st.create_event(sections=[("A", 10, 100, 5000)], max_per_user=max_per_user)
    path = f"/v1/events/{ev}/intents"
    c = KeepAliveClient(port)
    tokens = {u: st.token(u, "fan") for u in range(1, fans + 1)}

    def join(u, body=None, key=None):
        s, b = c.request("POST", path, body or {"quantity": 1}, tokens[u],
                         {"Idempotency-Key": key} if key else None)
        return u, s, b
    return port, ev, join


def twin_burst(join, fans, keyed):
    """Each fan's join sent twice at once (twins next to each other in the
    burst), with the key fan-<u> when keyed: [(u, status, body)]."""
    key = (lambda u: f"fan-{u}") if keyed else (lambda u: None)
    with ThreadPoolExecutor(64) as ex:
        return list(ex.map(lambda u: join(u, key=key(u)),
                           [u for u in range(1, fans + 1) for _ in range(2)]))


def active_intent(st, ev, u):
    """The intent_id the fan's active key names (None: no key)."""
    v = st.redis.get(st.key(f"active:{ev}:{u}"))
    return v.decode() if isinstance(v, bytes) else v


def burst_of_twins(round_max):
    """Each fan joins twice at once; returns the claimer's (rounds, claims)
    counters."""
    with Stack(partitions=2) as st:
        port, ev, join = open_sale(st, FANS, join_round_max=round_max)
        by_fan = {}
        for u, s, b in twin_burst(join, FANS, keyed=False):
            by_fan.setdefault(u, []).append((s, b))
        for u, rs in by_fan.items():
            codes = sorted(s for s, _ in rs)
            assert codes == [202, 409], (u, rs)
            acc = next(b for s, b in rs if s == 202)
            ref = next(b for s, b in rs if s == 409)
            assert ref["error"]["code"] == "already_in_queue", ref
            # the twin saw the claim ("already joining") or the id
            assert ref.get("intent_id") in (None, acc["intent_id"]), (acc, ref)
            v = active_intent(st, ev, u)
            assert v in (acc["intent_id"], None), (u, v, acc)  # None: the worker ended it
        rounds = metric(port, "onsale_ingress_join_claim_rounds_total")
        claims = metric(port, "onsale_ingress_join_claims_total")
        st.stop_clean()
        return rounds, claims


def test_claims_of_concurrent_joins_share_round_trips():
    rounds, claims = burst_of_twins(256)
    assert claims == 2 * FANS, (rounds, claims)
    # 800 joins from 64 connections: the claims ride in far fewer trips
    assert rounds < claims / 2, (rounds, claims)


def test_control_without_the_claimer_same_answers_no_rounds():
    rounds, claims = burst_of_twins(0)
    assert not rounds and not claims, (rounds, claims)


def keyed_twins(round_max, fans=200):
    """Each fan's keyed join sent twice at once; returns the claimer's
    claims counter after checking every answer."""
    with Stack(partitions=2) as st:
        port, ev, join = open_sale(st, fans, max_per_user=2, join_round_max=round_max)
        out = twin_burst(join, fans, keyed=True)
        accepted = {}
        for u, s, b in out:
            if s == 202:
                assert accepted.setdefault(u, b["intent_id"]) == b["intent_id"], (u, out)
            else:
                assert s == 409 and b["error"]["code"] == "idempotency_in_progress", (u, s, b)
        assert sorted(accepted) == list(range(1, fans + 1)), len(accepted)
        st.wait_for(lambda: st.sql("SELECT count(*) FROM intents WHERE event_id = %s",
                                   (ev,))[0][0] >= fans, 60, "intents applied")
        n = st.sql("SELECT count(DISTINCT user_id), count(*) FROM intents WHERE event_id = %s",
                   (ev,))[0]
        assert n == (fans, fans), n  # one intent per fan, never two
        # the key replays its answer, and refuses another body
        for u in range(1, 21):
            _, s, b = join(u, key=f"fan-{u}")
            assert s == 202 and b["intent_id"] == accepted[u], (u, s, b)
            _, s, b = join(u, {"quantity": 2}, key=f"fan-{u}")
            assert s == 422 and b["error"]["code"] == "idempotency_mismatch", (u, s, b)
        claims = metric(port, "onsale_ingress_join_claims_total")
        st.stop_clean()
        return claims


def test_keyed_joins_share_the_claimer_rounds():
    claims = keyed_twins(256)
    assert claims and claims >= 200, claims  # each fan's owned key went on to a claim


def test_control_keyed_joins_without_the_claimer_same_answers():
    assert not keyed_twins(0)


def test_claimer_hands_a_key_naming_an_ended_intent_to_a_take_over():
    n = 100
    with Stack(partitions=2) as st:
        st.start_worker()
        # The old node: slow finisher, unconditional write: every rejected
        # fan's key ends up naming its ended intent.
        old = st.start_ingress(debug_finisher_delay_ms=1500, debug_active_unchecked="true",
                               join_round_max=0)
        ev = st.create_event(sections=[("A", 1, 10, 5000)])
        tokens = {u: st.token(u, "fan") for u in range(1, n + 1)}
        path = f"/v1/events/{ev}/intents"
        c_old = KeepAliveClient(int(old.rsplit(":", 1)[1]))
        with ThreadPoolExecutor(32) as ex:
            first = list(ex.map(lambda u: c_old.request("POST", path, {"quantity": 1, "max_price_cents": 1},
                                                        tokens[u]), tokens))
        assert all(s == 202 for s, _ in first), [x for x in first if x[0] != 202][:3]
        st.wait_rejected_and_published(ev, first)
        time.sleep(2)  # past debug.finisher_delay_ms: the old finisher wrote the keys
        held = [u for u in tokens if st.redis.get(st.key(f"active:{ev}:{u}")) is not None]
        assert len(held) > n // 2, len(held)
        # The lock-out is real on the old node ...
        s, b = c_old.request("POST", path, {"quantity": 1}, tokens[held[0]])
        assert s == 409 and b["error"]["code"] == "already_in_queue", (s, b)
        # ... and a claimer node takes the ended intents' keys over.
        new = st.start_ingress(join_round_max=256)
        port = int(new.rsplit(":", 1)[1])
        c_new = KeepAliveClient(port)
        with ThreadPoolExecutor(32) as ex:
            again = list(ex.map(lambda u: c_new.request("POST", path, {"quantity": 1}, tokens[u]),
                                tokens))
        assert all(s == 202 for s, _ in again), [x for x in again if x[0] != 202][:3]
        for u, (_, b) in zip(tokens, again):
            v = active_intent(st, ev, u)
            assert v in (b["intent_id"], None), (u, v, b)
        assert metric(port, "onsale_ingress_join_claims_total") >= n
        st.stop_clean()


def test_burst_of_keyed_joins_replays_each_answer():
    """Joins with an Idempotency-Key finish in the finisher's batches too
    (their records stored in one pipelined round trip): every fan's retry
    with its key gets its first 202 back (the same body) and nothing new is
    queued."""
    with Stack(partitions=2) as st:
        _, ev, join_fan = open_sale(st, FANS)

        def join(u):
            return join_fan(u, key=f"burst-{u}")
        with ThreadPoolExecutor(32) as ex:
            first = dict((u, (s, b)) for u, s, b in ex.map(join, range(1, FANS + 1)))
            again = dict((u, (s, b)) for u, s, b in ex.map(join, range(1, FANS + 1)))
        for u in first:
            assert first[u][0] == 202, (u, first[u])
            assert again[u] == first[u], (u, first[u], again[u])
        st.wait_for(lambda: st.sql("SELECT count(*) FROM intents WHERE event_id = %s",
                                   (ev,))[0][0] == FANS, 30, "every join applied")
        time.sleep(1)
        assert st.sql("SELECT count(*) FROM intents WHERE event_id = %s", (ev,))[0][0] == FANS
        st.stop_clean()
