"""test_kafka_hang.py - the Kafka broker HANGS mid-sale (SIGSTOP of a
private broker, as test_disk_full.py starts one; the shared broker is never
touched): joins already sent to it cannot be acknowledged, and the broker
may still write them when it wakes.

A stopped broker keeps its sockets: a produce request that reached its
socket buffer is appended when the broker runs again, long after librdkafka
timed the record out (kafka.produce_timeout_ms). Ingress answers such a join
503 `outcome_unknown` (docs/pipeline.md "Unknown produce outcomes"), keeps
the fan's `pending:` claim, and the record may land late. Invariants:

  - while the broker is stopped every join is answered within the produce
    timeout plus a bound, 503 with Retry-After (queue_unavailable: nothing
    queued; or outcome_unknown), never a hang;
  - after SIGCONT each refused fan retries until answered (a 409
    already_in_queue without an id means "still joining": retried too),
    odd fans with the same Idempotency-Key, even fans with a new one: each
    gets ONE place (202 with the intent's id, or 409 naming it), never a
    second (one intents row per fan: a second join would be a row the worker
    rejects as a `duplicate`), and polls it as reserved;
  - nothing restarts.

The second test stops the broker past a pending claim's staleness (2 x
produce timeout + 5 s) and has the refused fans retry with a new key while
it is still stopped. Before the fix (ingress/routes_queue.c,
pending_settled) a stale claim with nothing in PostgreSQL was taken over by
time alone: fans got a second intent, rejected as a duplicate, and were
pointed at it while their first intent, written late, held their place
unseen (3 fans of 48 in each run)."""
import concurrent.futures as cf
import os
import shutil
import signal
import tempfile
import threading
import time

import pytest

from harness import BIN, ROOT, Stack, metric
from test_disk_full import applied, error_code, join, private_kafka

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-worker"), os.X_OK),
                                reason="onsale-worker is not built")

PRODUCE_TIMEOUT_MS = 2000
REQUEST_TIMEOUT_MS = 3000
CROWD = 24
# A join while the broker is stopped: its produce timeout, the monitor's
# round and a loaded box's scheduling.
BOUND_S = PRODUCE_TIMEOUT_MS / 1000 + 4.0


def retry_until_answered(st, ev, user, key, timeout=45):
    """A client's retries of a refused join: until the answer is not a 5xx
    nor a 409 already_in_queue that names no intent yet (the fan's earlier
    join still being queued). Returns (status, body)."""
    end = time.time() + timeout
    while True:
        s, h, b, _ = join(st, user, ev, key)
        joining = s == 409 and error_code(b) == "already_in_queue" and not b.get("intent_id")
        assert not joining or int(h.get("retry-after", 0)) >= 1, (s, h, b)
        if (s < 500 and not joining) or time.time() > end:
            return s, b
        time.sleep(0.5)


def stopped_broker_mid_sale(hang_s, retry_while_stopped_after_s=None):
    """Joins while a private broker is stopped for hang_s seconds. With
    retry_while_stopped_after_s, each refused fan also retries once with a
    new key that many seconds after the stop, the broker still stopped.
    After SIGCONT every refused fan retries until answered (odd fans with
    their key, even fans with a new one). Returns (during, retries, rows:
    user -> intents of the fan, places: user -> the intent the fan was
    pointed at, polled: user -> its state)."""
    state = os.path.join(ROOT, ".state", "test-logs", f"kafka-hang-{os.getpid()}-{int(time.time())}")
    os.makedirs(state)
    data = tempfile.mkdtemp(prefix="onsale-kafka-hang-")
    try:
        with private_kafka(data, state) as kafka, Stack(partitions=2, brokers=kafka.brokers) as st:
            st.start_worker()
            st.start_ingress(kafka_produce_timeout_ms=PRODUCE_TIMEOUT_MS,
                             kafka_request_timeout_ms=REQUEST_TIMEOUT_MS, kafka_fail_fast_ms=2000)
            ev = st.create_event(sections=[("A", 10, 20, 5000)])
            for u in range(1, 11):
                s, _, b, _ = join(st, u, ev, f"k{u}")
                assert s == 202, b
            st.wait_for(lambda: applied(st, ev) == 10, 30, "the first joins applied")

            # The crowd joins as the broker stops, and goes on while it is.
            pid = kafka.pid()
            os.kill(pid, signal.SIGSTOP)
            during, lock = [], threading.Lock()

            def fan(u):
                s, h, b, dt = join(st, u, ev, f"k{u}")
                with lock:
                    during.append((u, s, h.get("retry-after"), error_code(b), dt, b))
            t_stop = time.time()
            with cf.ThreadPoolExecutor(CROWD) as ex:
                list(ex.map(fan, range(100, 100 + CROWD)))
                time.sleep(max(0.0, 3 - (time.time() - t_stop)))
                list(ex.map(fan, range(200, 200 + CROWD)))
            refused = [u for u, s, _, _, _, _ in during if s != 202]
            if retry_while_stopped_after_s:
                time.sleep(max(0.0, retry_while_stopped_after_s - (time.time() - t_stop)))
                with cf.ThreadPoolExecutor(CROWD) as ex:
                    early = list(ex.map(lambda u: (u, *join(st, u, ev, f"early{u}")[:3:2]), refused))
                print("retried while stopped:", sorted({(s, error_code(b)) for _, s, b in early}))
            time.sleep(max(0.0, hang_s - (time.time() - t_stop)))
            os.kill(pid, signal.SIGCONT)

            def again(u):
                s, b = retry_until_answered(st, ev, u, f"k{u}" if u % 2 else f"new{u}")
                return u, s, b
            with cf.ThreadPoolExecutor(16) as ex:
                retries = list(ex.map(again, refused))
            places = {u: b["intent_id"] for u, s, b, *_ in during if s == 202}
            for u, s, b in retries:
                places[u] = b.get("intent_id") if isinstance(b, dict) else None
            total = 10 + 2 * CROWD
            st.wait_for(lambda: applied(st, ev) >= total, 60, "every fan's intent applied")
            time.sleep(2)  # a record that would land twice lands by now
            rows = {}
            for u, seq_, state_ in st.sql("SELECT user_id, intent_seq, state FROM intents "
                                          "WHERE event_id = %s", (ev,)):
                rows.setdefault(u, []).append((seq_, state_))
            polled = {}
            for u, iid in places.items():
                if iid:
                    s, _, b = st.http("GET", f"/v1/intents/{iid}", token=st.token(u))
                    polled[u] = b.get("state") if s == 200 else s
            assert all(p.alive() for p in st.procs), "a process died"
            return during, retries, rows, places, polled
    finally:
        shutil.rmtree(data, ignore_errors=True)


def check(during, retries, rows, places, polled):
    print("answers while the broker was stopped:",
          sorted({(s, c) for _, s, _, c, _, _ in during}),
          "slowest %.2f s" % max(x[4] for x in during))
    print(f"retried after: {sorted({(s, error_code(b)) for _, s, b in retries})}")
    for u, s, ra, code, dt, _ in during:
        assert dt < BOUND_S, (u, s, code, dt)
        if s != 202:
            assert s == 503 and ra and code in ("queue_unavailable", "outcome_unknown"), \
                (u, s, code)
    for u, s, b in retries:
        assert s == 202 or (s == 409 and error_code(b) == "already_in_queue"), (u, s, b)
    # One place per fan (a second join would be a second intents row, the
    # worker's "duplicate" rejection), every 202 applied, every fan pointed
    # at its own live intent.
    twice = {u: r for u, r in rows.items() if len(r) > 1}
    assert not twice, twice
    missing = [u for u, iid in places.items() if not iid or int(iid[:16], 16) != rows[u][0][0]]
    assert not missing, [(u, places[u], rows.get(u)) for u in missing]
    assert all(st == "reserved" for st in polled.values()), polled


def test_a_broker_stopped_a_few_seconds_gives_no_fan_two_places():
    """Stopped 6 s: past the produce timeout, not past a pending claim's
    staleness (2 x produce timeout + 5 s)."""
    check(*stopped_broker_mid_sale(6))


def test_a_broker_stopped_past_a_claims_staleness_gives_no_fan_two_places():
    """Stopped 14 s; the refused fans retry with a new key 11 s in, after
    their pending claims went stale (9 s) but before the broker wakes and
    writes their first records."""
    check(*stopped_broker_mid_sale(14, retry_while_stopped_after_s=11))


def test_a_stale_claim_is_taken_over_while_its_partition_keeps_taking_joins():
    """A stale pending claim with nothing written (its ingress died between
    claim and send) is taken over once the lane is settled past it: its
    cursor past the watermark a monitor round read after the settle point.
    Measured against the LATEST watermark instead, a partition that keeps
    taking joins (a sale's crowd) was never settled: the fan got 409
    already_in_queue without an id for as long as the crowd kept coming."""
    with Stack(partitions=1) as st:
        # each batch written 300 ms after it is read: the owner is always
        # behind the crowd's latest join, as in a sale
        st.start_worker(debug_commit_delay_ms=300)
        st.start_ingress(kafka_produce_timeout_ms=1000, kafka_request_timeout_ms=1000,
                         monitor_interval_ms=200)
        ev = st.create_event(sections=[("A", 50, 100, 5000)], max_per_user=1)
        stop = threading.Event()

        def crowd():
            u = 5000
            while not stop.is_set():
                st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1},
                        token=st.token(u, "fan"))
                u += 1
                time.sleep(0.01)

        t = threading.Thread(target=crowd, daemon=True)
        t.start()
        try:
            time.sleep(3)
            # settle point: sent + produce timeout + 2 x produce + request = 4 s
            st.redis.set(st.key(f"active:{ev}:77"), f"pending:{int(time.time() * 1000) - 30000}")
            answers, end = [], time.time() + 20
            while time.time() < end:
                s, _, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1},
                                  token=st.token(77, "fan"))
                answers.append((s, (b.get("error") or {}).get("code") if isinstance(b, dict) else b))
                if s == 202:
                    break
                assert s in (409, 429), answers[-3:]  # 429: the fan's own join rate
                time.sleep(0.5 if s == 409 else 1.0)
            assert t.is_alive() and not stop.is_set()  # the crowd was still joining
        finally:
            stop.set()
            t.join(10)
        assert answers[-1][0] == 202, answers[-5:]
        st.wait_for(lambda: st.sql("SELECT count(*) FROM intents WHERE user_id = 77")[0][0] == 1,
                    30, "the fan's one intent applied")


def test_a_stale_claim_waits_only_for_its_events_partition():
    """A stale pending claim is settled on the partition its event's
    records go to (q_partition_of_event), not on every partition: before,
    ingress did not know the join's partition and waited for all of them,
    so one lagging partition (its owner stopped, a crowd on another event)
    held every event's stale-claim takeover (the fan got 409
    already_in_queue without an id). Now a lagging OTHER partition does not
    hold it (202); control: the event's OWN partition lagging does (409),
    until its owner catches up (202)."""
    with Stack(partitions=2) as st:
        worker = st.start_worker()
        st.start_ingress(kafka_produce_timeout_ms=1000, kafka_request_timeout_ms=1000,
                         monitor_interval_ms=200)
        # Events until two share a partition and one is on the other (an
        # applied join's intent_seq >> 40 is its partition).
        part = {}
        for i in range(12):
            ev = st.create_event(sections=[("A", 1, 50, 5000)])
            s, _, b, _ = join(st, 10 + i, ev, f"probe{i}")
            assert s == 202, b
            st.wait_for(lambda: applied(st, ev) == 1, 30, "the probe join applied")
            part[ev] = st.sql("SELECT intent_seq >> 40 FROM intents WHERE event_id = %s",
                              (ev,))[0][0]
            on0 = [e for e, p in part.items() if p == 0]
            on1 = [e for e, p in part.items() if p == 1]
            if (len(on0) >= 2 and on1) or (len(on1) >= 2 and on0):
                break
        mine, other = (on0, on1) if len(on0) >= 2 else (on1, on0)
        ev, ev_same, ev_other = mine[0], mine[1], other[0]
        time.sleep(1.5)  # the cursors seen by ingress reach the probes

        def stale_claim_join(user, lagging_ev):
            """The owner stopped, a join to lagging_ev makes its partition
            lag; user holds a stale pending claim on ev whose settle point
            (sent + 4 x 1 s) falls after that join; user then joins ev."""
            s, _, b, _ = join(st, user + 1000, lagging_ev, f"lag{user}")
            assert s == 202, b
            t = time.time()
            st.redis.set(st.key(f"active:{ev}:{user}"), f"pending:{int(t * 1000) - 3500}")
            time.sleep(max(0.0, t + 4.0 - time.time()))  # stale: 2 x 1 s + 5 s after it
            s, _, b, _ = join(st, user, ev, f"k{user}")
            return s, error_code(b), b

        worker.popen.send_signal(signal.SIGSTOP)
        try:
            s, code, b = stale_claim_join(77, ev_other)
            assert s == 202, (s, code, b)  # failed before: 409 already_in_queue
            s, code, b = stale_claim_join(78, ev_same)
            assert (s, code) == (409, "already_in_queue") and not b.get("intent_id"), b
        finally:
            worker.popen.send_signal(signal.SIGCONT)
        # The own partition catches up: the control's claim is taken over.
        answers = []

        def taken_over():
            s, _, b, _ = join(st, 78, ev, "k78")
            answers.append((s, error_code(b)))
            return s == 202
        st.wait_for(taken_over, 30, "the control's claim taken over", interval=0.5)
        st.wait_for(lambda: st.sql("SELECT count(*) FROM intents WHERE event_id = %s AND "
                                   "user_id IN (77, 78)", (ev,))[0][0] == 2, 30,
                    "one intent each")


def test_a_partition_count_other_than_the_topics():
    """kafka.partitions set by hand to a count other than the topic's made
    q_partition_of_event name the wrong partition for an event's records
    (the settle check of a stale claim, ing_ticket_claim_blocks) and left
    partitions unwatched. Failed before: ingress started with 3 on a
    2-partition topic. Now more than the topic has refuses to start, saying
    what to set. Fewer (the topics grown since: docs/scaling.md "Growing
    the topics") is sound, since every event keeps its home partition
    (events.partitions), but this node does not watch the others: with the
    check at start off (kafka.partitions_check_ms 0), the monitor finds the
    difference and says so, and a stale claim on an event homed on a
    partition the node does not watch waits (409 already_in_queue) rather
    than being judged blind. Control: an ingress with the topic's count
    takes the same claim over (202)."""
    from harness import free_port
    from test_topic_grow import murmur2_partition
    with Stack(partitions=2) as st:
        st.start_worker()
        p = st.start("ingress", "onsale-ingress", http_port=free_port(), kafka_partitions=3)
        assert p.wait(30) == 1
        assert "kafka.partitions is 3 but topic" in p.output()
        assert "set kafka.partitions to 2" in p.output()
        st.procs.remove(p)  # exited 1 on purpose
        fast = dict(kafka_produce_timeout_ms=1000, kafka_request_timeout_ms=1000,
                    monitor_interval_ms=200)
        st.start_ingress(kafka_partitions=1, kafka_partitions_check_ms=0, **fast)
        wrong = st.procs[-1]
        ev = st.create_event(sections=[("A", 1, 50, 5000)])
        while murmur2_partition(str(ev), 2) != 1:  # homed on the partition it does not watch
            ev = st.create_event(sections=[("A", 1, 50, 5000)])
        # a claim whose settle point (sent + 3 x 1 s) is long past
        st.redis.set(st.key(f"active:{ev}:77"), f"pending:{int(time.time() * 1000) - 30000}")
        st.wait_for(lambda: "grown to 2 partitions" in wrong.output(), 15, "the monitor's warning")
        assert metric(st.ingress_port, "onsale_ingress_topic_partitions_differ") == 2
        time.sleep(1.0)  # rounds after the settle point
        s, _, b, _ = join(st, 77, ev, "k77")
        assert (s, error_code(b)) == (409, "already_in_queue") and not b.get("intent_id"), b
        # Control: the right count (the Stack's) takes the same claim over.
        st.start_ingress(**fast)
        st.wait_for(lambda: join(st, 77, ev, "k77")[0] == 202, 30,
                    "the claim taken over", interval=0.5)
        # (the takeover needed a monitor round with the right count; the
        # series is there, at 0)
        assert "\nonsale_ingress_topic_partitions_differ 0\n" in st.http("GET", "/metrics")[2]
        st.wait_for(lambda: applied(st, ev) == 1, 30, "the fan's one intent applied")
