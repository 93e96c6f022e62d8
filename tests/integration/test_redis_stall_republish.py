"""test_redis_stall_republish.py - after a Redis STALL (SIGSTOP past
redis.timeout_ms) the worker's failed projections owe a repair; once Redis
answers again the worker writes its recent results back from the documents
it kept (redis.republish_max), so the fans' polls are answered from Redis
again instead of from PostgreSQL, one PostgreSQL read per poll for the
results' TTL.

The scenario: 24 fans hold seats (joined through ingress, their results in
Redis); Redis is stopped; meanwhile the worker applies and commits 12 more
joins and a cancel of one holder's intent (the result it wrote "reserved"
is now "released" in PostgreSQL), and its projections of them fail; Redis
is resumed. Checked:

  - within a bound every intent of the event has its result in Redis, and
    it is PostgreSQL's state (the cancelled one "released": a repair never
    puts back a state that is over), the partition's cursor and drain are
    the committed cursor, and the worker's /metrics count the results it
    wrote again;
  - the holders' polls then miss nothing in Redis (Redis's own
    keyspace_misses: a missing result is read by the result reader and
    again by the job thread that answers from PostgreSQL).

The control runs the same with redis.republish_max = 0 (the repair of the
previous builds: the recent results are deleted): the results stay missing
and every poll of them misses Redis and is answered from PostgreSQL."""
import json
import os
import signal
import threading
import time
import urllib.request

import pytest

from fault_util import PrivateRedis
from harness import BIN, Stack, free_port, metric
from worker_util import cancel, intent

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-worker"), os.X_OK),
                                reason="onsale-worker is not built")

TIMEOUT_MS = 300
STALL_S = 4
HOLDERS = 24
LATE = 12
# From SIGCONT to every result back: the worker's Redis connection waits
# out redis.down_ms (1 s) after its last timeout, then its loop repairs
# 512 results a round trip; room for a loaded box.
BOUND_S = 8


def poll(st, iid, user):
    return st.http("GET", f"/v1/intents/{iid}", token=st.token(user), timeout=30)


def hold(st, ev, user):
    s, _, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1},
                      token=st.token(user), headers={"Idempotency-Key": f"k{user}"})
    assert s == 202, b
    iid = b["intent_id"]
    st.wait_for(lambda: (lambda x: x[0] == 200 and x[2].get("state") == "reserved")(
        poll(st, iid, user)), 30, f"fan {user} reserved")
    return iid


def in_pg(st, ev):
    """{intent_seq: state} of the event's intents, from PostgreSQL."""
    return dict(st.sql("SELECT intent_seq, state FROM intents WHERE event_id = %s", (ev,)))


def in_redis(r, st, seqs):
    """{intent_seq: state or None (missing)} from Redis."""
    vals = r.mget([st.key(f"r:{s}") for s in seqs])
    return {s: (json.loads(v)["state"] if v else None) for s, v in zip(seqs, vals)}


def misses(r):
    return r.info("stats")["keyspace_misses"]


# A script that keeps Redis's one thread busy for ARGV[1] ms: past
# busy-reply-threshold every other client's command is answered BUSY, on
# its live connection.
BUSY_LUA = """
local function now() local t = redis.call('TIME') return t[1] * 1000 + math.floor(t[2] / 1000) end
local t0 = now()
while now() - t0 < tonumber(ARGV[1]) do end
return 1
"""


def stall(republish_max, entries_max=None, bad=False, busy=False):
    """Redis is stopped for STALL_S while the worker commits. Returns what
    the test checks (see the module's docstring). bad: the second holder's
    result key is made a hash before the stall (the repair's GET of it
    fails every time); it is left out of the comparisons and polls. busy:
    instead of stopped, Redis runs a script for STALL_S and answers every
    other command BUSY on its live connection (the repair's script calls
    are refused whole)."""
    with PrivateRedis() as rd, Stack(partitions=1) as st:
        r = rd.client()
        via = dict(redis_port=rd.port, redis_timeout_ms=TIMEOUT_MS, redis_down_ms=1000)
        wport = free_port()
        if entries_max is not None:
            via_worker = dict(redis_repair_entries_max=entries_max)
        else:
            via_worker = {}
        st.start_worker(metrics_port=wport, redis_resync_window_ms=60000,
                        redis_republish_max=republish_max, **via_worker, **via)
        st.start_ingress(**via)
        ev = st.create_event(sections=[("A", 10, 50, 5000)])
        holders = [(u, hold(st, ev, u)) for u in range(1, HOLDERS + 1)]
        before = in_pg(st, ev)
        assert all(v == "reserved" for v in in_redis(r, st, list(before)).values())
        bad_seq = None
        if bad:
            bad_seq = int(holders[1][1][:16], 16)
            r.delete(st.key(f"r:{bad_seq}"))
            r.hset(st.key(f"r:{bad_seq}"), "not", "a result")
            holders = [holders[0]] + holders[2:]
        if busy:
            r.config_set("busy-reply-threshold", 100)
            busy_run = threading.Thread(
                target=lambda: rd.client().eval(BUSY_LUA, 0, STALL_S * 1000))
            busy_run.start()
            time.sleep(0.2)
        else:
            rd.proc.send_signal(signal.SIGSTOP)
        t_stop = time.time()
        gone_user, gone_iid = holders[0]
        gone = int(gone_iid[:16], 16)
        st.produce(ev, cancel(gone_user, 0, gone & ((1 << 40) - 1)), control=True)
        st.produce_many(ev, [intent(500 + i, 1) for i in range(LATE)])
        st.wait_for(lambda: len(in_pg(st, ev)) == HOLDERS + LATE
                    and in_pg(st, ev)[gone] == "released", 20, "the stall's records committed")
        time.sleep(max(0.0, STALL_S - (time.time() - t_stop)))
        if busy:
            busy_run.join()
        else:
            rd.proc.send_signal(signal.SIGCONT)
        t_cont = time.time()
        truth = in_pg(st, ev)
        truth.pop(bad_seq, None)
        back = None
        while time.time() < t_cont + BOUND_S:
            if in_redis(r, st, list(truth)) == truth:
                back = time.time() - t_cont
                break
            time.sleep(0.1)
        # Let the control's repair finish too (it deletes), then look.
        st.wait_for(lambda: metric(wport, "onsale_worker_results_repair_pending") == 0
                    and metric_labeled(wport, 'outcome="written"')
                    + metric_labeled(wport, 'outcome="dropped"') > 0, 30, "the repair done")
        held = in_redis(r, st, list(truth))
        cursor = st.sql("SELECT next_offset FROM partition_owner WHERE partition = 0")[0][0]
        st.wait_for(lambda: r.hget(st.key("served"), "0") == str(cursor), 5, "cursor")
        drain = r.hget(st.key("drain"), "0")
        m0 = misses(r)
        answers = {}
        for _ in range(3):
            for u, iid in holders:
                s, _, b = poll(st, iid, u)
                assert s == 200, b
                answers[iid] = b["state"]
        polled_misses = misses(r) - m0
        with open(os.path.join(st.logdir, "worker-0.log")) as f:
            repaired = [ln.strip() for ln in f if "redis projection repaired" in ln]
        out = {
            "back_s": back, "truth": truth, "held": held, "answers": answers,
            "gone": (gone, gone_iid), "drain_served": int(drain.split()[0]), "cursor": cursor,
            "misses": polled_misses, "polls": 3 * len(holders), "repaired_log": repaired,
            "written": metric_labeled(wport, 'outcome="written"'),
            "dropped": metric_labeled(wport, 'outcome="dropped"'),
            "failed": metric_labeled(wport, 'outcome="failed"'),
            "forgotten": metric_labeled(wport, 'outcome="forgotten"'),
            "refused_calls": len([ln for ln in open(os.path.join(st.logdir, "worker-0.log"))
                                  if "Redis refused a call of" in ln]),
        }
        print({k: v for k, v in out.items() if k not in ("truth", "held", "answers")})
        return out


def metric_labeled(port, labels):
    """onsale_worker_results_repaired_total{labels} on the worker's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("onsale_worker_results_repaired_total{") and labels in line:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_results_dropped_by_a_stall_are_written_back():
    o = stall(republish_max=100000)
    assert o["back_s"] is not None, (o["held"], o["truth"])
    assert o["back_s"] < BOUND_S
    gone, gone_iid = o["gone"]
    assert o["held"][gone] == "released" and o["answers"][gone_iid] == "released"
    assert sum(1 for v in o["answers"].values() if v == "reserved") == HOLDERS - 1
    # every result of the window was in memory: written, none dropped
    assert o["written"] >= HOLDERS + LATE and o["dropped"] == 0, o
    assert o["drain_served"] == o["cursor"]
    assert o["misses"] == 0, o  # no poll went to PostgreSQL


def test_control_without_the_documents_the_results_stay_missing():
    """redis.republish_max = 0: the repair deletes the recent results (the
    previous builds' repair), and each poll of them misses Redis and reads
    PostgreSQL."""
    o = stall(republish_max=0)
    assert o["back_s"] is None
    missing = [s for s, v in o["held"].items() if v is None]
    assert len(missing) >= HOLDERS + LATE - 1, o["held"]
    # the holders' results deleted; the stall's were never written
    assert o["dropped"] >= HOLDERS - 1 and o["written"] == 0, o
    assert o["misses"] >= o["polls"], o
    # PostgreSQL still tells the truth
    gone, gone_iid = o["gone"]
    assert o["answers"][gone_iid] == "released"


def test_a_result_redis_refuses_fails_alone_and_the_repair_ends():
    """One result key holds a hash: the repair's GET of it fails every time.
    That item counts as failed and the repair still ends with every other
    result written back (before: the whole script call failed, and the
    repair started over from the window's start for good, pending never
    0)."""
    o = stall(republish_max=100000, bad=True)
    assert o["back_s"] is not None, (o["held"], o["truth"])
    assert o["failed"] >= 1, o
    gone, gone_iid = o["gone"]
    assert o["held"][gone] == "released" and o["answers"][gone_iid] == "released"
    assert o["misses"] == 0, o


def test_the_results_owed_are_bounded():
    """redis.repair_entries_max = 20: of the 37-odd results the stall's
    repair owes, the oldest (holders' reservations from before the stall)
    are forgotten and counted; the 13 the stall's projections failed to
    write (the cancel, the late joins) are the newest and are written
    back. The holders' results Redis kept through the stall are still
    there (a stall loses nothing: forgetting them costs nothing here, but
    would after a restart that lost writes)."""
    o = stall(republish_max=100000, entries_max=20)
    assert o["forgotten"] >= 1, o
    assert o["written"] <= 20 * 2, o  # at most the bound per repair (a stall may owe two)
    gone, gone_iid = o["gone"]
    assert o["held"][gone] == "released" and o["answers"][gone_iid] == "released"
    assert o["back_s"] is not None, (o["held"], o["truth"])


def test_a_claim_then_a_batch_past_the_bound_forgets_the_repair_in_bounds():
    """redis.repair_entries_max = 20. A claim owes a repair of the results
    the previous owner wrote in the window (30 here), and the first batch
    after it applies 100 more: past the bound, the oldest entries, every
    one the repair owed among them, are forgotten. The repair's cursor must
    follow them (it read past its live entries, freed documents included,
    when it did not: an ASan worker stopped on it). The worker lives on,
    and every result is in Redis and true."""
    with Stack(partitions=1) as st:
        first = st.start_worker(name="first", kafka_session_timeout_ms=6000,
                                redis_resync_window_ms=60000)
        ev = st.create_event(sections=[("A", 10, 50, 5000)])
        st.produce_many(ev, [intent(100 + i, 1) for i in range(30)])
        st.wait_for(lambda: len(in_pg(st, ev)) == 30, 30, "the first owner's joins", proc=first)
        first.stop()
        st.produce_many(ev, [intent(200 + i, 1) for i in range(100)])
        wport = free_port()
        w = st.start_worker(name="second", metrics_port=wport, redis_resync_window_ms=60000,
                            redis_repair_entries_max=20, kafka_session_timeout_ms=6000)
        st.wait_for(lambda: len(in_pg(st, ev)) == 130, 30, "the backlog applied", proc=w)
        st.wait_for(lambda: metric(wport, "onsale_worker_results_repair_pending") == 0, 10,
                    "no repair owed", proc=w)
        time.sleep(0.5)  # a turn or two more of the loop, the repair's included
        assert w.alive(), w.output()[-3000:]
        truth = in_pg(st, ev)
        assert in_redis(st.redis, st, list(truth)) == truth
        assert metric_labeled(wport, 'outcome="forgotten"') >= 1


def test_a_repair_call_refused_whole_is_owed_again():
    """Redis answers BUSY for STALL_S (a long script of another client) on
    the worker's live connection: its projections fail, and each of its
    repair's script calls is refused whole. Those results stay owed and
    are tried again (redis.repair_retries, with a doubling wait) once Redis
    answers, none counted failed; every result is back and true. Before,
    a call refused whole counted its results failed, done."""
    o = stall(republish_max=100000, busy=True)
    assert o["failed"] == 0, o
    assert o["refused_calls"] >= 1, o
    assert o["back_s"] is not None, (o["held"], o["truth"])
    gone, gone_iid = o["gone"]
    assert o["held"][gone] == "released" and o["answers"][gone_iid] == "released"
    assert o["misses"] == 0, o
