"""test_worker_fencing.py - a worker paused past a rebalance cannot commit.

Worker A applies a batch (a cancel, on the control lane, that frees seats
1-2: one fence covers both topics' cursors) and, inside the
race window debug.commit_delay_ms opens, is frozen with SIGSTOP until its
Kafka session expires. Worker B takes the partition over, claims it (epoch+1),
re-applies the cancel and then gives seats 1-2 to a new fan Y. A is thawed
and tries to write its stale batch.

  * with the epoch fence A's transaction is refused ("fenced"): Y keeps its
    seats and next_offset never moves backwards;
  * the control run (debug.skip_epoch_check=true) must show the damage the
    fence prevents: A's stale batch frees Y's seats under a live
    reservation and rewinds next_offset.
"""
import json
import signal
import time

from harness import Stack
from worker_util import (audit, cancel, intent, log_lines, seats_of, seq, wait_log, wait_result,
                         wait_state)

DELAY_MS = 5000
SESSION_MS = 6000


def race(skip_epoch_check):
    with Stack(partitions=1) as st:
        ev = st.create_event(sections=[("A", 1, 4, 5000)], max_per_user=4)
        a = st.start_worker(name="a", kafka_session_timeout_ms=SESSION_MS,
                            debug_commit_delay_ms=DELAY_MS,
                            debug_skip_epoch_check=str(skip_epoch_check).lower())
        part, ox = st.produce(ev, intent(1, 2))                 # X takes seats 1-2
        wait_state(st, part, ox, "reserved", timeout=30, proc=a)
        assert seats_of(st, ev, part, ox) == [("A", 1, 1), ("A", 1, 2)]

        st.produce(ev, cancel(1, part, ox, "intent"), control=True)  # A applies it, then waits
        wait_log(st, a, "delaying commit", count=2, timeout=20)
        a.kill(signal.SIGSTOP)
        try:
            b = st.start_worker(name="b", kafka_session_timeout_ms=SESSION_MS)
            wait_log(st, b, "claimed partition 0", timeout=60)
            wait_state(st, part, ox, "released", timeout=30, proc=b)
            _, oy = st.produce(ev, intent(2, 2))               # Y gets seats 1-2 from B
            wait_state(st, part, oy, "reserved", timeout=30, proc=b)
            assert seats_of(st, ev, part, oy) == [("A", 1, 1), ("A", 1, 2)]
            (b_next,), = st.sql("SELECT next_offset FROM partition_owner WHERE partition = 0")
            assert b_next == oy + 1
        finally:
            a.kill(signal.SIGCONT)
        # A finishes its delay and tries to write the stale batch.
        st.wait_for(lambda: log_lines(a, "fenced:") or log_lines(a, " control 0..1 "),
                    DELAY_MS / 1000 + 20, "A's stale commit attempt")
        time.sleep(0.5)
        result = {
            "fenced_logged": bool(log_lines(a, "fenced:")),
            "y_seats": seats_of(st, ev, part, oy),
            "y_state": st.sql("SELECT state FROM reservations WHERE reservation_id = %s",
                              (seq(part, oy),))[0][0],
            "next_offset": st.sql("SELECT next_offset FROM partition_owner")[0][0],
            "control_next_offset": st.sql("SELECT control_next_offset FROM partition_owner")[0][0],
            "b_next": b_next,
            "audit": audit(st),
        }
        # Killed, not stopped: a stop waits out the batch A is delaying
        # (debug.commit_delay_ms, 5 s); A's exit is not what this checks.
        st.discard(a)
        return result


def test_paused_worker_is_fenced():
    r = race(skip_epoch_check=False)
    assert r["fenced_logged"], r
    assert r["y_state"] == "held"
    assert r["y_seats"] == [("A", 1, 1), ("A", 1, 2)], r
    assert r["next_offset"] >= r["b_next"], r
    assert r["control_next_offset"] == 1, r  # B applied the cancel, once
    assert r["audit"] == [], r


def test_control_without_fence_double_applies():
    """The same race with the fence switched off must go wrong, or the test
    above proves nothing."""
    r = race(skip_epoch_check=True)
    assert not r["fenced_logged"], r
    violations = []
    if r["y_state"] == "held" and r["y_seats"] != [("A", 1, 1), ("A", 1, 2)]:
        violations.append("Y's live reservation lost its seats")
    if r["next_offset"] < r["b_next"]:
        violations.append("next_offset moved backwards")
    if r["audit"]:
        violations.append("audit: " + "; ".join(r["audit"]))
    assert violations, f"control run showed no double-apply: {r}"


PROJECT_DELAY_MS = 4000


def late_projection(unversioned):
    """A deposed owner's result write sent late. A commits X's join
    ("reserved") and is frozen between that COMMIT and its Redis write
    (debug.project_delay_ms opens the window); B takes the partition over
    and applies X's cancel, writing "released"; A is thawed and sends its
    "reserved". Returns what Redis then holds for X (what the fan's poll
    reads) and what PostgreSQL holds."""
    with Stack(partitions=1) as st:
        ev = st.create_event(sections=[("A", 1, 4, 5000)], max_per_user=4)
        a = st.start_worker(name="a", kafka_session_timeout_ms=SESSION_MS,
                            debug_project_delay_ms=PROJECT_DELAY_MS,
                            debug_unversioned_results=str(unversioned).lower())
        part, ox = st.produce(ev, intent(1, 2))
        wait_log(st, a, "committed partition 0 offsets 0..1", timeout=30)
        a.kill(signal.SIGSTOP)  # X's "reserved" committed, not yet written to Redis
        try:
            b = st.start_worker(name="b", kafka_session_timeout_ms=SESSION_MS)
            wait_log(st, b, "claimed partition 0", timeout=60)
            st.produce(ev, cancel(1, part, ox, "intent"), control=True)
            wait_state(st, part, ox, "released", timeout=30, proc=b)
            wait_result(st, seq(part, ox), "released", timeout=10)  # B's newer state
        finally:
            a.kill(signal.SIGCONT)
        # A's delay is over (it ran while A was frozen): it writes its batch
        # at once, then finds it lost the partition. The group may give the
        # partition back to A a second later, and that claim drops X's result
        # (read from PostgreSQL): so what fans read is sampled meanwhile.
        seen, key, until = [], st.key(f"r:{seq(part, ox)}"), time.time() + 3
        while time.time() < until:
            doc = json.loads(st.redis.get(key) or "{}")
            if not seen or seen[-1] != doc.get("state"):
                seen.append(doc.get("state"))
            time.sleep(0.002)
        wait_log(st, a, "partition 0 revoked", timeout=30)
        out = {"seen": seen,
               "pg": st.sql("SELECT state FROM intents WHERE intent_seq = %s",
                            (seq(part, ox),))[0][0],
               "refused_logged": bool(log_lines(a, "left alone by Redis")),
               "audit": audit(st)}
        st.discard(a)
        return out


def test_a_deposed_owners_late_result_never_replaces_a_newer_one():
    r = late_projection(unversioned=False)
    assert r["pg"] == "released", r
    # released, or missing (read from PostgreSQL) after a claim's drop
    assert "reserved" not in r["seen"], r
    assert r["seen"][0] == "released", r
    assert r["refused_logged"], r
    assert r["audit"] == [], r


def test_control_an_unversioned_late_result_replaces_the_newer_one():
    """The same race with the batch's results written by plain SETs (the
    builds before): A's late "reserved" lands over B's "released", which
    the fan then reads for the result's TTL. Shows the race is real."""
    r = late_projection(unversioned=True)
    assert r["pg"] == "released", r
    assert r["seen"][:2] == ["released", "reserved"], r


def test_a_claim_after_postgresql_went_back_takes_an_epoch_past_redis():
    """PostgreSQL restored from an older backup under a kept Redis: Redis's
    results of the partition carry epochs (up to 7 here, repair_epoch too)
    past every epoch PostgreSQL hands out again. The next claim takes an
    epoch past them (8), so its results are not refused: X's stale
    "reserved" of the lost timeline (PostgreSQL says released) is dropped
    by the claim's repair and Y's join is written. Before, the claim took
    epoch 2: the drop and every write of the partition were refused, and
    X read "reserved" for the result's TTL."""
    with Stack(partitions=1) as st:
        ev = st.create_event(sections=[("A", 1, 4, 5000)], max_per_user=4)
        a = st.start_worker(name="a", kafka_session_timeout_ms=SESSION_MS)
        part, ox = st.produce(ev, intent(1, 2))
        wait_state(st, part, ox, "reserved", timeout=30, proc=a)
        st.produce(ev, cancel(1, part, ox, "intent"), control=True)
        wait_result(st, seq(part, ox), "released", timeout=30)
        a.stop()
        # the lost timeline's Redis: X reserved at epoch 7
        x = st.key(f"r:{seq(part, ox)}")
        st.redis.set(x, json.dumps({"state": "reserved", "event_id": ev, "reason": None,
                                    "reservation": None}, separators=(",", ":"))[:-1]
                     + ',"v":[7,3]}')
        st.redis.hset(st.key("repair_epoch"), "0", 7)
        b = st.start_worker(name="b", kafka_session_timeout_ms=SESSION_MS,
                            redis_resync_window_ms=60000)
        wait_log(st, b, "claimed partition 0", timeout=60)
        _, oy = st.produce(ev, intent(2, 1))
        wait_result(st, seq(part, oy), "reserved", timeout=30)
        epoch = st.sql("SELECT epoch FROM partition_owner WHERE partition = 0")[0][0]
        assert epoch == 8, epoch
        # read from PostgreSQL (released) once the claim's repair has run:
        # the repair is a step of the worker's loop, which may project Y's
        # batch first (seen under load)
        st.wait_for(lambda: st.redis.get(x) is None, 15, "X's stale result dropped")
        assert log_lines(b, "restored from an older backup"), b.output()[-2000:]
        assert audit(st) == []
