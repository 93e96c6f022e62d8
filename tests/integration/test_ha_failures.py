"""Failures on the --ha topology while onsale-sim sells an event through
haproxy, its audit at the end (no 202'd intent lost, none applied twice,
FIFO, capacity, charges = tickets + refunds):
  - one ingress node killed: haproxy routes around it, and a client retrying
    with its Idempotency-Key through the other node gets its original answer;
  - the broker leading the most partitions killed mid-sale, restarted later
    (RF 3, min ISR 2, acks=all: the log goes on with two);
  - one worker killed: its partitions move to the other (rebalance time
    reported), then a third worker joins and takes some;
  - that third worker stalled (SIGSTOP) past its session with a batch in
    flight: its partitions move on, and when it wakes the fence refuses its
    stale commit."""
import os, signal, subprocess, threading, time

from ha_util import (ENV, INGRESS_PORTS, INTERNAL_PORT, create_event, http, join, kafka_fully_replicated,
                     kafka_leaders, kill, log_lines, metric, owners, pid, sim, stack, token, wait_for)


_W = [int(p) for p in ENV["ONSALE_HA_WORKER_METRICS_PORTS"].split()]
SPARE_WORKER_PORT = _W[-1] * 2 - _W[-2]  # where `start worker-3` listens (scripts/ha/stack-ha.sh)


def worker3_lines(pattern):
    return [line for name, line in log_lines(pattern) if name == "worker-3.log"]


def report(what, seconds):
    """Prints a rebalance time and keeps it in .state/ha/logs/rebalance.txt."""
    line = f"REBALANCE {what}: {seconds:.1f} s"
    print("\n" + line)
    with open(os.path.join(ENV["ONSALE_STATE"], "logs", "rebalance.txt"), "a") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}\n")


def test_failures_during_a_sale():
    parts = int(ENV["ONSALE_HA_PARTITIONS"])
    # An Idempotency-Key'd join answered by ingress-1, before anything fails.
    ev = create_event(seats=50, name="idempotent retry")
    user, key = 7000 + int(time.time()) % 1000, f"ha-retry-{time.time()}"
    s, _, first = join(user, ev, port=INGRESS_PORTS[0], key=key)
    assert s == 202, first

    sale = sim(fans=800, seats=300, background=True,
               extra=("--burst_ms", "15000", "--burst_fraction", "0.8", "--tail_seconds", "8",
                      "--max_seconds", "150", "--audit_wait_s", "120"))
    try:
        time.sleep(3)
        # 1. one ingress node dies: haproxy routes around it
        kill("ingress-1")
        for _ in range(20):
            assert http("GET", "/readyz")[0] == 200
        s, _, again = join(user, ev, key=key)  # the retry, through haproxy: ingress-2
        assert s == 202 and again["intent_id"] == first["intent_id"], (first, again)

        # 2. the broker leading the most partitions dies mid-sale
        leaders = kafka_leaders()
        victim = max(set(leaders.values()), key=list(leaders.values()).count)
        kill(f"kafka-{victim}")

        # 3. a worker dies: its partitions move to the other
        t0 = time.time()
        kill("worker-1")
        wait_for(lambda: set(owners().values()) == {"worker-2"}, 60, "worker-2 owning every partition")
        report("worker-1 killed -> worker-2 owns all", time.time() - t0)
        stack("start", f"kafka-{victim}")  # the broker comes back while the sale goes on

        # 4. a third worker joins (slow commits: a batch is usually in flight)
        t1 = time.time()
        env_delay = dict(os.environ, ONSALE_DEBUG_COMMIT_DELAY_MS="1500")
        subprocess.run([os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "stack"), "--ha",
                        "start", "worker-3"], env=dict(env_delay, ONSALE_BUILD=os.path.dirname(
                            os.environ.get("ONSALE_BUILD_BIN", "build/bin"))), check=True)
        wait_for(lambda: "worker-3" in owners().values(), 60, "worker-3 claiming partitions")
        report("worker-3 started -> claims partitions", time.time() - t1)

        # 5. worker-3 stalls past its session with a batch in flight (joins
        # flow to an event of one of its partitions, it sleeps 1.5 s before
        # each commit): its partitions move on, and when it wakes the fence
        # refuses its stale commit
        mine = {p for p, o in owners().items() if o == "worker-3"}
        busy = None
        for i in range(40):
            e = create_event(seats=200, name=f"fence {i}")
            s, _, b = join(user + 1, e)
            assert s == 202, b
            busy_part = int(b["intent_id"][:16], 16) >> 40
            if busy_part in mine:
                busy = e
                break
        assert busy, f"no event landed in worker-3's partitions {mine}"
        stop_joins = threading.Event()

        def keep_joining():
            u = 900000 + int(time.time()) % 10000 * 10
            while not stop_joins.is_set():
                u += 1
                join(u, busy)
                time.sleep(0.1)
        joiner = threading.Thread(target=keep_joining, daemon=True)
        joiner.start()
        # Stop it inside a delayed commit of the busy partition, so a stale
        # commit is certainly in flight when it wakes (a stop between batches
        # would only see the partitions revoked, and the fence would have
        # nothing to refuse: CI saw that once).
        delaying = f"delaying commit of partition {busy_part} "
        seen = len(worker3_lines(delaying))
        wait_for(lambda: len(worker3_lines(delaying)) > seen, 30,
                 f"worker-3 delaying a commit of partition {busy_part}", interval=0.05)
        w3 = pid("worker-3")
        os.kill(w3, signal.SIGSTOP)
        t2 = time.time()
        try:
            wait_for(lambda: not ({p for p, o in owners().items() if o == "worker-3"} & mine), 60,
                     "worker-3's partitions moving while it is stopped")
            report("worker-3 stalled -> partitions moved", time.time() - t2)
        finally:
            os.kill(w3, signal.SIGCONT)
        wait_for(lambda: (metric(SPARE_WORKER_PORT, "onsale_worker_fenced_total") or 0) >= 1, 30,
                 "the fence refusing worker-3's stale commit")
        stop_joins.set()
        joiner.join(5)
        # the stale owner leaves (its slow commits would only slow the drain)
        stack("stop", "worker-3")
        stack("start", "ingress-1")
        # The sale has been through every failure: end it (on SIGINT the
        # simulator reports and audits) instead of running to max_seconds,
        # which it would, behind the holds fans keep for 900 s.
        time.sleep(3)
        sale.send_signal(signal.SIGINT)
        out, _ = sale.communicate(timeout=540)
    finally:
        if sale.poll() is None:
            sale.kill()
            print(sale.communicate()[0][-3000:])
    with open(os.path.join(ENV["ONSALE_STATE"], "logs", "sim-failures.log"), "w") as f:
        f.write(out)
    print(out[-3500:])
    assert sale.returncode == 0 and "audit passed" in out, out[-3000:]
    wait_for(kafka_fully_replicated, 120, "the restarted broker back in every ISR")
    assert len(owners()) == parts and all(owners().values())
