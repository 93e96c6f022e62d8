"""test_worker_crash.py - kill -9 of a worker mid-stream loses nothing and
applies nothing twice, on both lanes.

Intents stream into two partitions while the worker commits small batches;
cancels of every 7th intent follow on the control lane (docs/pipeline.md
"Two lanes": some are applied before their intent, as tombstones). The
worker is SIGKILLed part-way, a new one takes over from
partition_owner.next_offset and control_next_offset. Afterwards every
produced intent exists exactly once, every cancelled one is released, the
committed offset ranges of both workers tile both logs without overlap, and
the seat bookkeeping is consistent."""
import json
import random
import re
import signal
import threading
import time

from harness import MIN_SESSION_MS, Stack
from worker_util import audit, cancel, intent, seq

N = 3000


def committed_ranges(proc, lane="intents"):
    out = []
    pat = (r"committed partition (\d+) offsets (\d+)\.\.(\d+) epoch" if lane == "intents" else
           r"committed partition (\d+) offsets \d+\.\.\d+ epoch \d+ control (\d+)\.\.(\d+)")
    for m in re.finditer(pat, proc.output()):
        p, a, b = map(int, m.groups())
        if b > a:
            out.append((p, a, b))
    return out


def assert_tiles(r1, r2, column, st):
    """Committed ranges of w1 then w2 tile each partition's log up to its
    cursor. The kill may land between w1's COMMIT and its log line, so one
    gap is allowed, only where w1's ranges end and w2's begin (the database
    sums prove nothing there was applied twice)."""
    for p in (0, 1):
        a1 = sorted((a, b) for q, a, b in r1 if q == p)
        a2 = sorted((a, b) for q, a, b in r2 if q == p)
        pos = 0
        for a, b in a1:
            assert a == pos, f"{column} {p}: w1 gap or overlap at {pos}: {a1}"
            pos = b
        if a2:
            assert a2[0][0] >= pos, f"{column} {p}: w2 re-applied from {a2[0][0]} < {pos}"
            pos = a2[0][0]
        for a, b in a2:
            assert a == pos, f"{column} {p}: w2 gap or overlap at {pos}: {a2}"
            pos = b
        assert pos == st.sql(f"SELECT {column} FROM partition_owner WHERE partition = %s",
                             (p,))[0][0]


def test_kill_9_mid_stream_applies_each_intent_once():
    with Stack(partitions=2) as st:
        ev1 = st.create_event(sections=[("A", 20, 50, 5000), ("B", 20, 50, 3000)], max_per_user=4)
        ev2 = st.create_event(sections=[("A", 10, 100, 7000)], max_per_user=4)
        rnd = random.Random(7)
        recs = [(ev1 if i % 3 else ev2, intent(1000 + i, rnd.randint(1, 3), adjacent=rnd.random() < 0.8))
                for i in range(N)]
        w1 = st.start_worker(name="w1", batch_max_messages=50, batch_max_ms=5,
                             kafka_session_timeout_ms=MIN_SESSION_MS)
        cancelled = set()

        def produce():
            for i in range(0, N, 100):
                for ev in (ev1, ev2):
                    chunk = [r for e, r in recs[i:i + 100] if e == ev]
                    if chunk:
                        pos = st.produce_many(ev, chunk)
                        # every 7th fan cancels at once, on the control lane
                        cs = [cancel(r["user_id"], p, o, "intent")
                              for r, (p, o) in zip(chunk, pos) if r["user_id"] % 7 == 0]
                        if cs:
                            st.produce_many(ev, cs, control=True)
                            cancelled.update(c["user_id"] for c in cs)
                time.sleep(0.05)

        t = threading.Thread(target=produce)
        t.start()
        st.wait_for(lambda: st.sql("SELECT count(*) FROM intents")[0][0] >= N // 3, 60,
                    "a third applied", proc=w1)
        w1.kill(signal.SIGKILL)
        w1.wait()
        applied_at_kill = st.sql("SELECT count(*) FROM intents")[0][0]
        assert applied_at_kill < N, "the kill came too late to test anything"
        w2 = st.start_worker(name="w2", batch_max_messages=50, batch_max_ms=5,
                             kafka_session_timeout_ms=MIN_SESSION_MS)
        t.join()
        st.wait_for(lambda: st.sql("SELECT count(*) FROM intents")[0][0] >= N, 120,
                    "every intent applied", proc=w2)
        time.sleep(1.0)  # anything applied twice would show up now

        assert st.sql("SELECT count(*), count(DISTINCT (partition, kafka_offset)) FROM intents") \
            == [(N, N)]
        st.wait_for(lambda: st.sql("SELECT sum(control_next_offset) FROM partition_owner")[0][0]
                    >= len(cancelled), 60, "every cancel applied", proc=w2)
        time.sleep(1.0)
        assert st.sql("SELECT sum(next_offset) FROM partition_owner")[0][0] == N
        assert st.sql("SELECT sum(control_next_offset) FROM partition_owner")[0][0] \
            == len(cancelled)
        # each user's intent is there once, with its quantity
        got = dict(st.sql("SELECT user_id, quantity FROM intents"))
        assert got == {r["user_id"]: r["quantity"] for _, r in recs}
        # no rejections: users are distinct and quantities within limits;
        # every cancelled intent is released (before or after its seats)
        states = dict(st.sql("SELECT state, count(*) FROM intents GROUP BY 1"))
        assert set(states) <= {"reserved", "waiting", "released"}, states
        released = {u for u, in st.sql("SELECT user_id FROM intents WHERE state = 'released'")}
        assert released == cancelled
        assert st.sql("SELECT count(*) FROM intent_tombstones") == [(0,)]
        # held seats are exactly the reserved quantities
        for ev in (ev1, ev2):
            (held,), = st.sql("SELECT count(*) FROM seats WHERE event_id = %s AND status = 'held'", (ev,))
            (want,), = st.sql("SELECT coalesce(sum(quantity), 0) FROM intents WHERE event_id = %s "
                              "AND state = 'reserved'", (ev,))
            assert held == want
        assert audit(st) == []

        # Committed ranges of both workers tile each partition's log, on
        # both lanes: no overlap anywhere.
        assert_tiles(committed_ranges(w1), committed_ranges(w2), "next_offset", st)
        assert_tiles(committed_ranges(w1, "control"), committed_ranges(w2, "control"),
                     "control_next_offset", st)
        assert w2.stop() == 0


def test_a_result_committed_but_not_projected_is_not_told_after_a_takeover():
    """The owner dies between a batch's COMMIT and its Redis projection
    (debug.project_delay_ms holds it there): the release is in PostgreSQL,
    Redis still holds the fan's earlier "reserved" (checked: the stale
    result is real), and no later batch rewrites it. The next owner drops
    the results of the partition's last commits before it publishes, so a
    poll reads PostgreSQL's "released" (docs/pipeline.md, Redis keys)."""
    with Stack(partitions=1) as st:
        ev = st.create_event(sections=[("A", 1, 4, 5000)], max_per_user=4)
        rkey = st.key(f"r:{seq(0, 0)}")
        w1 = st.start_worker(name="w1", debug_project_delay_ms=4000,
                             kafka_session_timeout_ms=6000)
        assert st.produce(ev, intent(1, 2)) == (0, 0)
        st.wait_for(lambda: json.loads(st.redis.get(rkey) or "{}").get("state") == "reserved",
                    30, "reserved in Redis", proc=w1)
        st.produce(ev, cancel(1, 0, 0, "reservation"), control=True)
        st.wait_for(lambda: st.sql("SELECT state FROM intents") != [("reserved",)], 30,
                    "the release committed", proc=w1)
        w1.kill(signal.SIGKILL)  # within the 4 s before its projection
        w1.wait()
        (pg_state,) = st.sql("SELECT state FROM intents")[0]
        assert pg_state == "released"
        assert json.loads(st.redis.get(rkey))["state"] == "reserved"  # stale, and nothing rewrites it
        w2 = st.start_worker(name="w2")
        st.wait_for(lambda: json.loads(st.redis.get(rkey) or "{}").get("state") != "reserved",
                    60, "the stale result dropped", proc=w2)
        assert st.redis.get(rkey) is None, st.redis.get(rkey)
        assert "redis projection repaired" in w2.output()
        assert w2.stop() == 0
