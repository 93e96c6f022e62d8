"""test_eta.py - the queued fan's ETA (issue 10, docs/fairness.md "The ETA")
against the real binaries: how far the moment an answer promises (eta_at)
is from the moment the owner applied the join (left_queue_at), both on this
host's clock.

  * left_queue_at is the moment the owner applied the join: never before
    the join was sent, however long the idle owner had been waiting for it
    (the control: before the fix it was stamped when the owner began
    waiting, up to hold.check_ms before).
  * the ETA at the start of a drain: a warm owner drains a first backlog,
    is stalled (SIGSTOP) while a second one is produced, resumes and
    drains it in small batches; each sampled fan's first ETA
    given once the drain has begun is within a bound of when it was
    reached, with the owner's published drain (status.eta_owner_drain);
    the control, the ETA from the owner's smoothed rate counted from when
    the node saw the cursor move, misses the same bound.
  * the pace the ETA is forecast from, behind a slow Redis: an owner of
    four partitions drains a backlog of one while its Redis answers late
    (every reply held REDIS_DELAY_S); its batches keep one period, not
    lengthened once a second by the idle partitions' cursors republished
    one round trip each (the control, debug.idle_publish_wait, as the owner
    did before: the e2e's fans behind such a batch were reached up to
    seconds after their ETA).
"""
import hashlib
import hmac
import json
import os
import re
import signal
import statistics
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from fault_util import DelayedRelay  # noqa: E402
from harness import BIN, IDS_SECRET, REDIS_HOST, REDIS_PORT, Stack  # noqa: E402
from test_fairness import create_event_api, parse_ms  # noqa: E402
from worker_util import intent  # noqa: E402

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-worker"), os.X_OK),
                                reason="onsale-worker is not built")


def intent_id(partition, offset, user):
    """The public id of the intent at (partition, offset) of user
    (queue/intent_id.h)."""
    seq = partition << 40 | offset
    tag = hmac.new(IDS_SECRET.encode(), f"intent:{seq}:{user}".encode(), hashlib.sha256)
    return f"{seq:016x}" + tag.hexdigest()[:16]


def test_left_queue_at_is_when_the_owner_applied_the_join():
    """An idle owner waits hold.check_ms (here 2 s) for its next record;
    a join arriving meanwhile leaves the queue when it is applied, after it
    was sent, not when the wait began."""
    with Stack() as st:
        st.start_worker(hold_check_ms=2000)
        st.start_ingress()
        ev, _ = create_event_api(st, 10)
        for u in range(1, 6):
            tok = st.token(u)
            time.sleep(0.3)  # the owner is idle, somewhere in its wait
            sent = int(time.time() * 1000)
            _, b = st.join_ok(ev, tok)
            p = st.wait_for(lambda: (lambda p: p if p["state"] != "queued" else None)(
                st.http("GET", b["status_url"], token=tok)[2]), 30, f"fan {u} past the queue")
            seen = int(time.time() * 1000)
            left = parse_ms(p["left_queue_at"])
            assert sent <= left <= seen, (u, sent, left, seen, p)


WARM = 10000      # the first backlog, drained before
BACKLOG = 60000   # the second, produced while the owner is stalled
BATCH = 500       # the owner's batch.max_messages: the drain takes many batches
SAMPLES = 40      # fans whose first ETA is judged
BOUND = 0.5       # median |promised - reached| / the wait (floored at 1 s, as onsale-sim);
#                   loose for a shared box whose pace moves mid-drain: the
#                   control misses it several times over


def drain_errors(**ingress):
    """An owner drains a first backlog of WARM joins for one event, made
    while it was stopped (SIGSTOP, as a stalled owner), and is stopped
    again while BACKLOG more joins are produced; it resumes
    (SIGCONT) and drains them in batches of BATCH. Once the drain has
    begun, SAMPLES fans spread over the back of the backlog are polled once
    each and their first queued answer kept; after the drain, each fan's
    left_queue_at. Returns the relative errors (as onsale-sim's eta_error:
    |reached - promised| / the wait, floored at 1 s) and the answers."""
    with Stack(partitions=1) as st:
        ev = st.create_event(sections=(("A", 20, 50, 5000),), max_per_user=2)
        st.start_ingress(**ingress)
        worker = st.start_worker(batch_max_messages=BATCH)
        # The first drain, of the same shape (a backlog in full batches):
        # what the owner learns its pace from.
        st.wait_for(lambda: st.redis.hget(st.key("served"), "0") is not None, 60, "an owner")
        worker.kill(signal.SIGSTOP)
        try:
            warm = st.produce_many(ev, [intent(10 + i, 1) for i in range(WARM)])
        finally:
            worker.kill(signal.SIGCONT)
        st.wait_for(lambda: st.redis.hget(st.key("served"), "0") == str(warm[-1][1] + 1), 60,
                    "the first backlog drained")
        time.sleep(2)  # idle: the next drain starts from nothing
        worker.kill(signal.SIGSTOP)
        base_user = 100000
        try:
            pos = st.produce_many(ev, [intent(base_user + i, 1) for i in range(BACKLOG)])
        finally:
            worker.kill(signal.SIGCONT)
        fans = []
        for k in range(SAMPLES):
            i = BACKLOG // 5 + k * (BACKLOG * 4 // 5) // SAMPLES
            p, o = pos[i]
            u = base_user + i
            fans.append((u, o, f"/v1/intents/{intent_id(p, o, u)}", st.token(u)))
        first, last = pos[0][1], fans[-1]
        st.wait_for(lambda: st.http("GET", last[2], token=last[3])[2].get("position", 0)
                    < last[1] - first, 60, "the drain to begin", interval=0.005)
        shown = {}
        for u, o, url, tok in fans:
            s, _, b = st.http("GET", url, token=tok)
            assert s == 200, b
            if b["state"] == "queued":
                shown[u] = b
        assert len(shown) >= SAMPLES // 2, f"the drain passed most fans before they asked: {shown}"
        errors = []
        for u, o, url, tok in fans:
            if u not in shown:
                continue
            p = st.wait_for(lambda: (lambda p: p if p["state"] != "queued" else None)(
                st.http("GET", url, token=tok)[2]), 120, f"fan {u} past the queue")
            left = parse_ms(p["left_queue_at"])
            promised = parse_ms(shown[u]["eta_at"])
            asked = promised - shown[u]["eta_ms"]
            errors.append(abs(left - promised) / max(left - asked, 1000))
            shown[u]["wait"] = left - asked
        return errors, shown


def test_eta_at_the_start_of_a_drain_is_within_the_bound():
    errors, shown = drain_errors()
    assert statistics.median(errors) <= BOUND, (sorted(errors), shown)


def test_eta_control_from_the_smoothed_rate_misses_the_bound():
    """The control: the same drain judged with the ETA from the owner's
    smoothed rate (status.eta_owner_drain false) misses the bound, so the
    test above can fail."""
    errors, shown = drain_errors(status_eta_owner_drain="false")
    assert statistics.median(errors) > BOUND, (sorted(errors), shown)


REDIS_DELAY_S = 0.1   # every Redis reply to the owner held this long
SLOW_BACKLOG = 12000  # joins drained in batches of BATCH: about 24 batches


def slow_redis_periods(**worker):
    """An owner of four partitions, its Redis behind a relay that holds
    every reply REDIS_DELAY_S, drains a backlog of SLOW_BACKLOG joins for an
    event of one partition (the other three are quiet), in batches of
    BATCH. Returns the periods between its batches of that partition, in
    seconds (its "committed partition" log lines), the first left out (it
    loads the event)."""
    with Stack(partitions=4) as st, DelayedRelay(REDIS_HOST, REDIS_PORT, REDIS_DELAY_S) as relay:
        ev = st.create_event(sections=(("A", 20, 50, 5000),), max_per_user=2)
        w = st.start_worker(batch_max_messages=BATCH, redis_port=relay.port, **worker)
        st.wait_for(lambda: len(st.redis.hgetall(st.key("served"))) == 4, 60, "an owner")
        w.kill(signal.SIGSTOP)
        try:
            pos = st.produce_many(ev, [intent(100 + i, 1) for i in range(SLOW_BACKLOG)])
        finally:
            w.kill(signal.SIGCONT)
        part, last = pos[-1][0], pos[-1][1] + 1
        st.wait_for(lambda: st.redis.hget(st.key("served"), str(part)) == str(last), 120,
                    "the backlog drained")
        stamps = []
        with open(w.log_path) as f:
            for line in f:
                m = re.search(r"committed partition (\d+) offsets (\d+)\.\.(\d+)", line)
                if m and int(m.group(1)) == part and m.group(2) != m.group(3):
                    ts = json.loads(line)["ts"]
                    stamps.append(time.mktime(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))
                                  + float(ts[19:-1] or 0))
        assert len(stamps) >= SLOW_BACKLOG // BATCH, stamps
        return [b - a for a, b in zip(stamps[1:], stamps[2:])]


def long_share(periods):
    """The share of periods longer than the median by more than
    2 * REDIS_DELAY_S: a republish of three quiet partitions one round trip
    each adds about 3 * REDIS_DELAY_S once a second."""
    bound = statistics.median(periods) + 2 * REDIS_DELAY_S
    return sum(p > bound for p in periods) / len(periods)


def test_a_slow_redis_does_not_lengthen_every_other_batch():
    periods = slow_redis_periods()
    assert long_share(periods) <= 0.15, sorted(periods)


def test_slow_redis_control_idle_cursors_one_round_trip_each():
    """The control: the idle partitions' cursors republished with a round
    trip each, waited for (debug.idle_publish_wait), lengthen a batch about
    once a second, so the test above can fail."""
    periods = slow_redis_periods(debug_idle_publish_wait="true")
    assert long_share(periods) > 0.15, sorted(periods)
