"""test_worker_pg_hang.py - the worker's PostgreSQL HANGS mid-batch while it
owns the partition (a PausableRelay holds every byte both ways: a stopped
or stalled server, not a dead one; test_pg_connection_loss.py covers a
terminated session).

Fans join through an ingress that reaches PostgreSQL directly; the worker
reaches it through the relay. With joins being applied, the relay pauses
for PAUSE_S seconds (the worker's batch waits on it, its Kafka session
stays alive, so nobody else takes the partition), more fans join meanwhile,
and every fan polls throughout. Then the relay resumes and:

  - every 202'd join is applied exactly once (one intent per fan, each
    intent's seats counted once: the audit), with no restart;
  - no fan's position ever went up, and no fan went back from a result to
    "queued" (positions never go backward, before, during or after);
  - the worker kept its epoch: it was never fenced and never re-claimed the
    partition (no second owner, nothing to double apply).

It could fail: a worker that gave up on the hung connection mid-batch and
re-applied the batch on a new session while the old one's COMMIT was
still in flight would apply it twice (the audit and the one-intent-per-fan
check), or a cursor republished from a rolled-back batch would move
positions backward."""
import concurrent.futures as cf
import os
import threading
import time

import psycopg2
import pytest

from fault_util import PausableRelay
from harness import BIN, PG_HOST, PG_PORT, Stack, free_port, metric, pg_dsn
from worker_util import audit, log_lines

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-worker"), os.X_OK),
                                reason="onsale-worker is not built")

PAUSE_S = 5
FANS = 120


def join(st, ev, user):
    return st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, token=st.token(user),
                   headers={"Idempotency-Key": f"k{user}"})


def watch(st, fans, stop, seen):
    """Polls every accepted fan until stop; seen[user] gets (state,
    position) in the order the answers came."""
    def one(user):
        url = fans[user]
        while not stop.is_set():
            s, _, b = st.http("GET", url, token=st.token(user))
            if s == 200:
                seen[user].append((b["state"], b.get("position")))
            time.sleep(0.1)
    with cf.ThreadPoolExecutor(16) as ex:
        list(ex.map(one, list(fans)[:16]))


def went_backward(history):
    """The first step of a fan's (state, position) history that goes back:
    a position that rose, or "queued" after a result."""
    last_pos, done = None, False
    for state, pos in history:
        if state == "queued":
            if done or (last_pos is not None and pos is not None and pos > last_pos):
                return (state, pos, last_pos, done)
            last_pos = pos if pos is not None else last_pos
        else:
            done = True
    return None


def test_a_worker_whose_postgresql_hangs_mid_batch_applies_each_join_once():
    with Stack(partitions=1) as st:
        relay = PausableRelay(PG_HOST, PG_PORT)
        try:
            dsn = f"host=127.0.0.1 port={relay.port} dbname={st.db} user=postgres connect_timeout=5"
            worker = st.start_worker(pg_dsn=dsn, kafka_session_timeout_ms=6000)
            st.start_ingress()
            ev = st.create_event(sections=[("A", 4, 25, 5000)])  # 100 seats, 120 fans: 20 wait
            fans = {}
            for u in range(1, FANS // 2 + 1):
                s, _, b = join(st, ev, u)
                assert s == 202, b
                fans[u] = b["status_url"]
            seen, stop = {u: [] for u in fans}, threading.Event()
            w = threading.Thread(target=watch, args=(st, fans, stop, seen))
            w.start()
            epoch0 = st.sql("SELECT epoch FROM partition_owner WHERE partition = 0")[0][0]
            relay.pause()
            time.sleep(0.5)  # a COMMIT already through the relay lands
            hung_at = st.sql("SELECT count(*) FROM intents WHERE event_id = %s", (ev,))[0][0]
            for u in range(FANS // 2 + 1, FANS + 1):  # joins go on: Kafka is fine
                s, _, b = join(st, ev, u)
                assert s == 202, b
                fans[u] = b["status_url"]
            time.sleep(PAUSE_S)
            during = st.sql("SELECT count(*) FROM intents WHERE event_id = %s", (ev,))[0][0]
            relay.resume()
            st.wait_for(lambda: st.sql("SELECT count(*) FROM intents WHERE event_id = %s",
                                       (ev,))[0][0] >= FANS, 60, "every join applied", proc=worker)
            time.sleep(1)  # the last polls see the last batch
            stop.set()
            w.join()
            # the hang was real: nothing applied while the relay held the bytes
            print("applied when the relay paused", hung_at, "after the pause", during)
            assert during == hung_at < FANS, (hung_at, during)
            twice = st.sql("SELECT user_id, count(*) FROM intents WHERE event_id = %s "
                           "GROUP BY 1 HAVING count(*) > 1", (ev,))
            assert twice == [], twice
            assert st.sql("SELECT count(*) FROM intents WHERE event_id = %s", (ev,))[0][0] == FANS
            assert st.sql("SELECT state, count(*) FROM intents WHERE event_id = %s GROUP BY 1 "
                          "ORDER BY 1", (ev,)) == [("reserved", 100), ("waiting", 20)]
            assert audit(st) == []
            back = {u: went_backward(h) for u, h in seen.items()}
            assert not any(back.values()), {u: b for u, b in back.items() if b}
            assert sum(len(h) for h in seen.values()) > 16 * PAUSE_S  # they did poll
            epoch1, = st.sql("SELECT epoch FROM partition_owner WHERE partition = 0")[0]
            assert epoch1 == epoch0, (epoch0, epoch1)
            assert "fenced" not in worker.output() and worker.alive()
            for u, url in fans.items():  # every fan is told its answer
                s, _, b = st.http("GET", url, token=st.token(u))
                assert s == 200 and b["state"] in ("reserved", "waiting"), (u, b)
            st.stop_clean()
        finally:
            relay.close()


def test_a_second_worker_started_while_the_owner_hangs_takes_over_without_double_applying():
    """The owner (A) owns both partitions and hangs on PostgreSQL; B starts
    meanwhile (what an operator or an autoscaler does when the drain stops).
    The group cannot move a partition until A answers its rebalance (A's
    thread is the one waiting on PostgreSQL), so the takeover happens after
    the resume: A's held batch commits under its own epoch first, then each
    partition is claimed again (a new epoch; B owns one). Every join is
    applied once, no position goes backward, both workers live. (Seen: A is
    never fenced here, the order does it; test_worker_fencing shows the
    fence when A is frozen whole past its session instead.)"""
    with Stack(partitions=2) as st:
        relay = PausableRelay(PG_HOST, PG_PORT)
        try:
            dsn = f"host=127.0.0.1 port={relay.port} dbname={st.db} user=postgres connect_timeout=5"
            a = st.start_worker(name="a", worker_id="a-0", pg_dsn=dsn,
                                kafka_session_timeout_ms=6000)
            st.start_ingress()
            evs = [st.create_event(sections=[("A", 2, 25, 5000)]) for _ in range(4)]
            fans = {}

            def join_all(users):
                for u in users:
                    s, _, b = join(st, evs[u % len(evs)], u)
                    assert s == 202, b
                    fans[u] = b["status_url"]
            join_all(range(1, FANS // 2 + 1))
            seen, stop = {u: [] for u in fans}, threading.Event()
            w = threading.Thread(target=watch, args=(st, fans, stop, seen))
            w.start()
            epochs0 = dict(st.sql("SELECT partition, epoch FROM partition_owner"))
            relay.pause()
            b = st.start_worker(name="b", worker_id="b-2", kafka_session_timeout_ms=6000)
            join_all(range(FANS // 2 + 1, FANS + 1))
            time.sleep(PAUSE_S)
            relay.resume()
            st.wait_for(lambda: st.sql("SELECT count(*) FROM intents")[0][0] >= FANS, 60,
                        "every join applied")
            # B owns a partition (it claimed it: a new epoch)
            st.wait_for(lambda: st.sql("SELECT count(*) FROM partition_owner WHERE owner = 'b-2'")
                        [0][0] == 1, 60, "B owning a partition")
            time.sleep(1)
            stop.set()
            w.join()
            twice = st.sql("SELECT event_id, user_id, count(*) FROM intents GROUP BY 1, 2 "
                           "HAVING count(*) > 1")
            assert twice == [], twice
            assert st.sql("SELECT count(*) FROM intents")[0][0] == FANS
            assert audit(st) == []
            back = {u: went_backward(h) for u, h in seen.items()}
            assert not any(back.values()), {u: x for u, x in back.items() if x}
            epochs1 = dict(st.sql("SELECT partition, epoch FROM partition_owner"))
            assert any(epochs1[p] > epochs0[p] for p in epochs0), (epochs0, epochs1)
            print("epochs", epochs0, "->", epochs1, "A fenced:", "fenced" in a.output())
            assert a.alive() and b.alive()
            for u, url in fans.items():
                s, _, x = st.http("GET", url, token=st.token(u))
                assert s == 200 and x["state"] in ("reserved", "waiting"), (u, x)
        finally:
            relay.close()


STUCK_MS = 3000
SESSION_MS = 6000


def hung_for_good(stuck_restart_ms):
    """The owner A reaches PostgreSQL through a relay that pauses for good
    (while A is idle: no transaction of A holds a lock), B (direct) is in
    the group with nothing to do (one partition, A's member id sorts
    first). 60 more fans join. Returns when B has applied them or after
    HOLD_S, with what the test checks."""
    with Stack(partitions=1) as st:
        relay = PausableRelay(PG_HOST, PG_PORT)
        try:
            dsn = f"host=127.0.0.1 port={relay.port} dbname={st.db} user=postgres connect_timeout=5"
            a = st.start_worker(name="a", worker_id="a-0", pg_dsn=dsn,
                                worker_stuck_restart_ms=stuck_restart_ms,
                                kafka_session_timeout_ms=SESSION_MS)
            st.start_ingress()
            ev = st.create_event(sections=[("A", 4, 25, 5000)])
            fans = {}
            for u in range(1, FANS // 2 + 1):
                s, _, b = join(st, ev, u)
                assert s == 202, b
                fans[u] = b["status_url"]
            st.wait_for(lambda: st.sql("SELECT count(*) FROM intents")[0][0] == FANS // 2, 30,
                        "the first joins applied", proc=a)
            b = st.start_worker(name="b", worker_id="b-1", kafka_session_timeout_ms=SESSION_MS,
                                worker_stuck_restart_ms=stuck_restart_ms)
            # B joins the group: a rebalance, after which A owns the partition again
            st.wait_for(lambda: a.output().count("claimed partition 0") >= 2, 30,
                        "the rebalance B's join makes")
            owner0, epoch0 = st.sql("SELECT owner, epoch FROM partition_owner")[0]
            assert owner0 == "a-0", owner0
            seen, stop = {u: [] for u in fans}, threading.Event()
            w = threading.Thread(target=watch, args=(st, fans, stop, seen))
            w.start()
            relay.pause()
            t0 = time.time()
            for u in range(FANS // 2 + 1, FANS + 1):
                s, _, x = join(st, ev, u)
                assert s == 202, x
                fans[u] = x["status_url"]
            moved = None
            while time.time() < t0 + HOLD_S:
                owner, = st.sql("SELECT owner FROM partition_owner")[0]
                n = st.sql("SELECT count(*) FROM intents")[0][0]
                if owner == "b-1" and n == FANS:
                    moved = time.time() - t0
                    break
                time.sleep(0.2)
            stop.set()
            w.join()
            out = {"moved_s": moved, "a_alive": a.alive(), "a_code": a.popen.poll(),
                   "a_log": a.output(), "owner": st.sql("SELECT owner, epoch FROM partition_owner")[0],
                   "epoch0": epoch0, "n": st.sql("SELECT count(*) FROM intents")[0][0],
                   "back": {u: went_backward(h) for u, h in seen.items()}}
            relay.resume()
            st.wait_for(lambda: st.sql("SELECT count(*) FROM intents")[0][0] == FANS, 60,
                        "every join applied after the resume")
            out["twice"] = st.sql("SELECT user_id, count(*) FROM intents GROUP BY 1 "
                                  "HAVING count(*) > 1")
            out["audit"] = audit(st)
            out["states"] = st.sql("SELECT state, count(*) FROM intents GROUP BY 1 ORDER BY 1")
            if stuck_restart_ms:
                # the new A joins the group again once its PostgreSQL answers
                try:
                    st.wait_for(lambda: "PostgreSQL answers: joining the group" in a.output(), 30,
                                "A back in the group")
                    out["a_rejoined"] = a.alive()
                except TimeoutError:
                    out["a_rejoined"] = False
                out["a_log_after"] = a.output()
            print({k: v for k, v in out.items() if k not in ("a_log", "a_log_after", "back")})
            return out
        finally:
            relay.close()


HOLD_S = STUCK_MS / 1000 + SESSION_MS / 1000 + 14


def test_a_worker_whose_postgresql_hangs_for_good_gives_its_partitions_up():
    """worker.stuck_restart_ms: A starts itself again in place (the same
    pid) once its batch has waited on PostgreSQL that long; the group then
    moves the partition to B (a new epoch) within the session timeout; B
    applies the joins A could not, each once, and no fan's position goes
    backward. The new A stays out of the group while its PostgreSQL is
    still hung, and joins it again once it answers."""
    o = hung_for_good(STUCK_MS)
    assert o["moved_s"] is not None and o["moved_s"] < HOLD_S, o["moved_s"]
    print("partition moved and every join applied after", round(o["moved_s"], 1), "s")
    assert o["a_alive"] and o["a_code"] is None, o["a_log"][-2000:]
    assert "worker.stuck_restart_ms" in o["a_log"]
    assert o["owner"][0] == "b-1" and o["owner"][1] > o["epoch0"], o["owner"]
    assert o["n"] == FANS and o["twice"] == [] and o["audit"] == [], o
    assert o["states"] == [("reserved", 100), ("waiting", 20)], o["states"]
    assert not any(o["back"].values()), {u: b for u, b in o["back"].items() if b}
    assert o["a_rejoined"], o["a_log_after"][-2000:]
    # read once A rejoined: the new image logs it after its first connect
    # to the hung PostgreSQL gives up (connect_timeout), which can be after
    # B has taken over (a_log is read then)
    assert "started again by the watchdog (1 time(s))" in o["a_log_after"], \
        o["a_log_after"][-2000:]


def test_control_a_hung_owner_keeps_its_partition():
    """worker.stuck_restart_ms = 0: A waits on PostgreSQL, its Kafka session
    alive, and nobody applies the new joins for as long as the hang lasts
    (the group would move the partition only after max.poll.interval.ms,
    300 s)."""
    o = hung_for_good(0)
    assert o["moved_s"] is None and o["a_alive"], o["moved_s"]
    assert o["owner"] == ("a-0", o["epoch0"]) and o["n"] == FANS // 2, o
    assert o["twice"] == [] and o["audit"] == [], o


def test_a_claim_behind_a_held_owner_row_is_retried_not_restarted():
    """A previous owner's session that died mid-COMMIT (a hung server, a
    cut path) holds partition_owner's row until the server drops it. The
    claim gives up after half of worker.stuck_restart_ms and is retried
    each second, so the worker does not start itself again while it waits
    (each new image would leave one more session queued on the row); once
    the row is free it claims the partition and applies every join once.
    Control, the claim unbounded (the build before the bound): the claim
    waits on the row past the stuck bound and the watchdog starts the
    worker again."""
    with Stack(partitions=1) as st:
        first = st.start_worker(name="first", kafka_session_timeout_ms=6000)
        st.wait_for(lambda: st.sql("SELECT count(*) FROM partition_owner")[0][0] == 1, 30,
                    "the partition's row", proc=first)
        first.stop()
        st.start_ingress()
        ev = st.create_event(sections=[("A", 1, 20, 5000)])
        holder = psycopg2.connect(pg_dsn(st.db))
        try:
            cur = holder.cursor()
            cur.execute("SELECT epoch FROM partition_owner WHERE partition = 0 FOR UPDATE")
            wport = free_port()
            w = st.start_worker(name="w", worker_stuck_restart_ms=STUCK_MS,
                                kafka_session_timeout_ms=6000, metrics_port=wport)
            for u in range(1, 11):
                s, _, b = join(st, ev, u)
                assert s == 202, b
            time.sleep(STUCK_MS / 1000 * 2.5)  # past the stuck bound, the row still held
            held_log = w.output()
            assert w.alive(), held_log[-2000:]
            assert "started again by the watchdog" not in held_log, held_log[-2000:]
            # the claim was tried, bounded, several times: logged once, at
            # warn (it was an ERROR line a second), each timeout counted
            waits = [ln for ln in held_log.splitlines() if "is held by another session" in ln]
            assert len(waits) == 1 and '"level":"warn"' in waits[0], held_log[-2000:]
            assert not [ln for ln in held_log.splitlines()
                        if '"level":"error"' in ln and "lock timeout" in ln], held_log[-2000:]
            assert metric(wport, "onsale_worker_claim_lock_timeouts_total") >= 2
            assert st.sql("SELECT count(*) FROM intents")[0][0] == 0
            holder.rollback()
            st.wait_for(lambda: st.sql("SELECT count(*) FROM intents")[0][0] == 10, 30,
                        "the joins applied once the row is free", proc=w)
            assert st.sql("SELECT user_id FROM intents GROUP BY 1 HAVING count(*) > 1") == []
            assert "started again by the watchdog" not in w.output()
            assert log_lines(w, "went through after"), w.output()[-2000:]
            assert audit(st) == []
        finally:
            holder.close()
