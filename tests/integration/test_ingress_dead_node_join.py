"""test_ingress_dead_node_join.py - a join cut by its ingress node's death
(kill -9) is answered within seconds when the fan retries with its
Idempotency-Key, not after idem.inflight_ttl_s (left at its 60 s default
here), and never with a second place (docs/pipeline.md "A node's death
mid-join").

The dead join's key record is "in flight" and names its node and claim
time; the node's liveness key (idem.node_ttl_ms) lapses once it is dead.
A retry on another node then looks for the intent that join wrote (202
with it), says 503 outcome_unknown while its lane may still take it, and
sends the join again once the lane is settled past it with nothing
written. The states reached: claim taken and record never sent
(debug.join_delay_ms), record acknowledged and not recorded in Redis
(debug.finisher_delay_ms), the same with the worker stopped (the record
in the log, not yet applied). Controls: a live node's join is not taken
over; debug.orphan_unsettled (sent again without the settle) makes the
second intent the settle prevents."""
import os
import signal
import threading
import time

import pytest

from harness import BIN, Stack
from worker_util import audit, kill_9

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-worker"), os.X_OK),
                                reason="onsale-worker is not built")

# A node's key lapses 1.5 s after its death; a join never written is sent
# again once its lane settles: claim + idem.send_by_ms + produce timeout
# (2 s), + 2 x produce timeout + request timeout (3 s), + a monitor round.
OPTS = dict(kafka_produce_timeout_ms=1000, kafka_request_timeout_ms=1000, idem_node_ttl_ms=1500,
            idem_send_by_ms=1000)
BOUND_S = 12  # from the kill to the retry's 202, ingress's restart included
WAITING = {(409, "idempotency_in_progress"), (503, "outcome_unknown")}


def code(b):
    e = b.get("error") if isinstance(b, dict) else None
    return e.get("code") if isinstance(e, dict) else None


def seq_of(intent_id):
    return int(intent_id[:16], 16)


def join_in_background(st, path, fan, key, held=None):
    """Starts the join on a thread; its answer lands in held["answer"]
    (when held is given). Returns the thread."""
    def post():
        try:
            answer = st.http("POST", path, {"quantity": 1}, token=fan, headers=key, timeout=60)
        except OSError:
            return
        if held is not None:
            held["answer"] = answer
    t = threading.Thread(target=post, daemon=True)
    t.start()
    return t


def retry(st, path, fan, key, since, bound_s=BOUND_S):
    """Retries the join with its key every 0.5 s until a 202: its body and
    the seconds since `since`. Every answer before it says "wait"."""
    answers = []
    while time.time() - since < bound_s:
        s, _, b = st.http("POST", path, {"quantity": 1}, token=fan, headers=key, timeout=10)
        answers.append((round(time.time() - since, 1), s, code(b)))
        if s == 202:
            return b, time.time() - since, answers
        assert (s, code(b)) in WAITING, answers
        time.sleep(0.5)
    pytest.fail(f"no 202 within {bound_s} s of the kill: {answers}")


def intents_of(st, user):
    return st.sql("SELECT intent_seq, state, reason FROM intents WHERE user_id = %s "
                  "ORDER BY intent_seq", (user,))


def start_dying(st, **dying_opts):
    st.start_worker()
    st.start_ingress(**OPTS, **dying_opts)
    dying = st.procs[-1]
    ev = st.create_event(sections=[("A", 1, 10, 5000)])
    return dying, f"/v1/events/{ev}/intents"


def test_a_join_acknowledged_then_cut_is_answered_with_its_intent_in_seconds():
    user = 181
    with Stack(partitions=1) as st:
        dying, path = start_dying(st, debug_finisher_delay_ms=30000)
        fan, key = st.token(user, "fan"), {"Idempotency-Key": "cut-acked"}
        join_in_background(st, path, fan, key)
        st.wait_for(lambda: len(intents_of(st, user)) == 1, 30, "the join applied")
        kill_9(dying)
        killed = time.time()
        (seq, state, _), = intents_of(st, user)
        assert state == "reserved"
        st.start_ingress(**OPTS)
        b, took, answers = retry(st, path, fan, key, killed)
        assert seq_of(b["intent_id"]) == seq, (b, answers)
        # The answer is stored for the key: a replay names the same intent.
        s, _, again = st.http("POST", path, {"quantity": 1}, token=fan, headers=key)
        assert s == 202 and again["intent_id"] == b["intent_id"], again
        time.sleep(1)
        assert [r[0] for r in intents_of(st, user)] == [seq], intents_of(st, user)
        assert audit(st) == []
        print(f"acked-then-cut: 202 {took:.1f} s after the kill; answers {answers}")


def test_a_join_cut_before_it_was_sent_is_sent_again_once_its_lane_settles():
    user = 182
    with Stack(partitions=1) as st:
        dying, path = start_dying(st, debug_join_delay_ms=30000)
        fan, key = st.token(user, "fan"), {"Idempotency-Key": "cut-unsent"}
        join_in_background(st, path, fan, key)
        st.wait_for(lambda: st.redis.keys(st.key("idem:*")), 20, "the key claimed")
        st.wait_for(lambda: st.redis.keys(st.key("active:*")), 20, "the place claimed")
        # Control: while its node lives the join is not taken over.
        st.start_ingress(**OPTS)
        s, _, b = st.http("POST", path, {"quantity": 1}, token=fan, headers=key)
        assert (s, code(b)) == (409, "idempotency_in_progress"), b
        kill_9(dying)
        killed = time.time()
        b, took, answers = retry(st, path, fan, key, killed)
        assert b["state"] == "queued", b
        st.wait_for(lambda: len(intents_of(st, user)) == 1 and
                    intents_of(st, user)[0][1] == "reserved", 30, "the join applied")
        time.sleep(1)
        (seq, _, _), = intents_of(st, user)
        assert seq_of(b["intent_id"]) == seq
        assert audit(st) == []
        print(f"cut-unsent: 202 {took:.1f} s after the kill; answers {answers}")


def test_a_live_nodes_join_past_its_answer_bound_is_answered_too():
    """Its node lives but never wrote the answer (here: its finisher held;
    in life, Redis lost when it wrote, or a claim Redis ran after ingress
    gave up on it): past idem.send_by_ms + produce timeout +
    idem.node_ttl_ms (3.5 s here) a retry answers from what was written."""
    user = 184
    with Stack(partitions=1) as st:
        _, path = start_dying(st, debug_finisher_delay_ms=8000)
        fan, key = st.token(user, "fan"), {"Idempotency-Key": "held-answer"}
        claimed = time.time()
        join_in_background(st, path, fan, key)
        st.wait_for(lambda: len(intents_of(st, user)) == 1, 30, "the join applied")
        if time.time() - claimed < 2.5:  # well inside the bound: still running
            s, _, b = st.http("POST", path, {"quantity": 1}, token=fan, headers=key)
            assert (s, code(b)) == (409, "idempotency_in_progress"), b
        b, took, answers = retry(st, path, fan, key, claimed)
        (seq, _, _), = intents_of(st, user)
        assert seq_of(b["intent_id"]) == seq and took >= 3.5, (b, answers)
        assert len(intents_of(st, user)) == 1
        print(f"live node, answer held: 202 {took:.1f} s after the claim; answers {answers}")


@pytest.mark.parametrize("unsettled", [False, True], ids=["settled", "control_unsettled"])
def test_a_join_in_the_log_not_yet_applied_is_never_sent_twice(unsettled):
    """The record is in the log and the worker is stopped, so PostgreSQL
    does not have it: the retry must wait for the lane (503) rather than
    send it again. The control sends it again at once: two intents."""
    user = 183
    with Stack(partitions=1) as st:
        dying, path = start_dying(st, debug_finisher_delay_ms=30000)
        worker = st.procs[0]
        fan, key = st.token(user, "fan"), {"Idempotency-Key": "cut-unapplied"}
        worker.kill(signal.SIGSTOP)
        try:
            join_in_background(st, path, fan, key)
            st.wait_for(lambda: st.redis.keys(st.key("idem:*")), 20, "the key claimed")
            time.sleep(2)  # past the produce timeout: the record is in the log
            kill_9(dying)
            killed = time.time()
            st.start_ingress(**OPTS, debug_orphan_unsettled=unsettled)
            answers = []
            while time.time() - killed < 9:  # past BOUND_S's settle for a join never sent
                s, _, b = st.http("POST", path, {"quantity": 1}, token=fan, headers=key)
                answers.append((round(time.time() - killed, 1), s, code(b)))
                if s == 202:
                    break
                assert (s, code(b)) in WAITING, answers
                time.sleep(0.5)
            sent_again = answers[-1][1] == 202
        finally:
            worker.kill(signal.SIGCONT)
        if unsettled:
            assert sent_again, answers
            st.wait_for(lambda: len(intents_of(st, user)) == 2, 30, "both records applied")
            states = sorted(r[1] for r in intents_of(st, user))
            assert states == ["rejected", "reserved"], intents_of(st, user)
            return
        assert not sent_again, answers
        b, took, more = retry(st, path, fan, key, time.time(), bound_s=30)
        (seq, state, _), = intents_of(st, user)
        assert seq_of(b["intent_id"]) == seq and state == "reserved", (b, more)
        time.sleep(1)
        assert len(intents_of(st, user)) == 1, intents_of(st, user)
        assert audit(st) == []


def test_a_live_nodes_join_refused_late_leaves_the_takeovers_answer():
    """A live node's join held before its send past the answer bound (a
    pause: SIGSTOP, a frozen VM; here debug.join_delay_ms) is taken over by
    a retry on another node, which sends it again and stores its 202. When
    the held join wakes, its send bound refuses it (503 overloaded, nothing
    sent); giving its key back it must remove only its own in-flight
    record, not the retry's stored answer: a replay names the one intent
    (before the mend it deleted the record, and a replay was a new join
    answered 409 already_in_queue)."""
    user = 185
    with Stack(partitions=1) as st:
        _, path = start_dying(st, debug_join_delay_ms=14000)
        fan, key = st.token(user, "fan"), {"Idempotency-Key": "held-then-refused"}
        held = {}
        claimed = time.time()
        t = join_in_background(st, path, fan, key, held)
        st.wait_for(lambda: st.redis.keys(st.key("idem:*")), 20, "the key claimed")
        st.start_ingress(**OPTS)
        b, took, answers = retry(st, path, fan, key, claimed)
        assert took < 13, (took, answers)  # taken over while the held join sleeps
        t.join(30)
        s, _, hb = held["answer"]
        assert (s, code(hb)) == (503, "overloaded"), hb
        s, _, again = st.http("POST", path, {"quantity": 1}, token=fan, headers=key)
        assert s == 202 and again["intent_id"] == b["intent_id"], (s, again)
        st.wait_for(lambda: [r[1] for r in intents_of(st, user)] == ["reserved"], 30,
                    "the one intent applied")
        assert seq_of(b["intent_id"]) == intents_of(st, user)[0][0]
        assert audit(st) == []
        print(f"held then refused: 202 {took:.1f} s after the claim; answers {answers}")


def test_a_paused_node_taken_over_then_resumed_answers_the_same_intent():
    """The node is not dead but paused (SIGSTOP) past idem.node_ttl_ms
    with its join acknowledged and its answer not yet written: its
    liveness key lapses, a retry on another node resumes the join and
    answers the intent the join wrote. Resumed, the paused node answers
    its own request too: the same intent, and the key's replay still
    names it; one intent in all."""
    user = 186
    with Stack(partitions=1) as st:
        paused, path = start_dying(st, debug_finisher_delay_ms=4000)
        fan, key = st.token(user, "fan"), {"Idempotency-Key": "paused-node"}
        held = {}
        t = join_in_background(st, path, fan, key, held)
        st.wait_for(lambda: len(intents_of(st, user)) == 1, 30, "the join applied")
        paused.kill(signal.SIGSTOP)
        stopped = time.time()
        try:
            st.start_ingress(**OPTS)
            # answered by the other node while the paused one is stopped
            b, took, answers = retry(st, path, fan, key, stopped)
        finally:
            paused.kill(signal.SIGCONT)
        t.join(30)
        s, _, hb = held["answer"]
        (seq, _, _), = intents_of(st, user)
        assert s == 202 and hb["intent_id"] == b["intent_id"], (s, hb, b)
        assert seq_of(b["intent_id"]) == seq
        s, _, again = st.http("POST", path, {"quantity": 1}, token=fan, headers=key)
        assert s == 202 and again["intent_id"] == b["intent_id"], again
        time.sleep(1)
        assert len(intents_of(st, user)) == 1 and audit(st) == []
        print(f"paused node: 202 {took:.1f} s after the pause; answers {answers}")
