#!/usr/bin/python3
"""bench/stall_republish.py - polls answered from PostgreSQL after a Redis
stall (h15-stall).

A private redis-server under one worker and one ingress of ONSALE_BUILD_BIN
(or --bin); FANS fans join (records produced to Kafka, one seat each) and
hold seats, their results in Redis; Redis is stopped (SIGSTOP) for --stall
seconds while LATE more joins are applied (the worker's projections fail:
it owes a repair); then SIGCONT. --settle seconds later the results missing
from Redis and the worker's repair log lines (time from SIGCONT), then every
fan polls its
intent through ingress, twice (two rounds, --gap seconds apart), from 16
threads.

Printed per round: the polls, how many Redis could not answer (ingress
then reads PostgreSQL: Redis's keyspace_misses count two per such poll,
the result reader's MGET and the job thread's GET), the results missing
from Redis, the wall time of the round and ingress's CPU (utime+stime) in
it. Run it with main's binaries and this branch's (redis.republish_max
default, and 0: the old repair) alternately.

Usage: bench/stall_republish.py [--bin DIR] [--fans 4000] [--late 200]
                                [--stall 3] [--settle 3] [--gap 5]
                                [--republish-max N]   (not passed: the binary's default)
Needs the stack (Kafka, PostgreSQL) and redis-server on PATH.
"""
import argparse
import concurrent.futures as cf
import datetime
import hashlib
import hmac
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))


def intent_id(secret, seq, user):
    tag = hmac.new(secret.encode(), f"intent:{seq}:{user}".encode(), hashlib.sha256).digest()[:8]
    return "%016x%s" % (seq, tag.hex())


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")


def poll_round(st, r, fans, ingress_pid):
    m0, c0, t0 = r.info("stats")["keyspace_misses"], cpu_s(ingress_pid), time.time()

    def one(f):
        user, iid = f
        s, _, b = st.http("GET", f"/v1/intents/{iid}", token=st.token(user), timeout=60)
        return s

    with cf.ThreadPoolExecutor(16) as ex:
        statuses = list(ex.map(one, fans))
    wall, cpu = time.time() - t0, cpu_s(ingress_pid) - c0
    miss = r.info("stats")["keyspace_misses"] - m0
    return {"polls": len(fans), "ok": statuses.count(200), "pg_answered": miss // 2,
            "wall_s": round(wall, 2), "ingress_cpu_s": round(cpu, 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin")
    ap.add_argument("--fans", type=int, default=4000)
    ap.add_argument("--late", type=int, default=200)
    ap.add_argument("--stall", type=float, default=3)
    ap.add_argument("--settle", type=float, default=3)
    ap.add_argument("--gap", type=float, default=5)
    ap.add_argument("--republish-max", type=int)
    a = ap.parse_args()
    if a.bin:
        os.environ["ONSALE_BUILD_BIN"] = os.path.abspath(a.bin)
    import harness  # noqa: E402 (reads ONSALE_BUILD_BIN)
    from fault_util import PrivateRedis  # noqa: E402
    from worker_util import intent  # noqa: E402

    with PrivateRedis() as rd, harness.Stack(partitions=1) as st:
        r = rd.client()
        via = dict(redis_port=rd.port, redis_timeout_ms=300, redis_down_ms=1000)
        extra = {} if a.republish_max is None else {"redis_republish_max": a.republish_max}
        st.start_worker(redis_resync_window_ms=60000, **via, **extra)
        st.start_ingress(**via)
        ingress = [p for p in st.procs if p.name == "ingress"][0]
        rows = (a.fans + a.late + 99) // 100
        ev = st.create_event(sections=[("A", rows, 100, 5000)])
        users = list(range(1000, 1000 + a.fans))
        offs = st.produce_many(ev, [intent(u, 1) for u in users])
        fans = [(u, intent_id(st.ids_secret, (p << 40) | o, u)) for u, (p, o) in zip(users, offs)]
        st.wait_for(lambda: r.exists(st.key(f"r:{(offs[-1][0] << 40) | offs[-1][1]}")), 60,
                    "every hold in Redis")
        rd.proc.send_signal(signal.SIGSTOP)
        t_stop = time.time()
        st.produce_many(ev, [intent(9000000 + i, 1) for i in range(a.late)])
        st.wait_for(lambda: st.sql("SELECT count(*) FROM intents WHERE event_id = %s",
                                   (ev,))[0][0] == a.fans + a.late, 60, "the late joins")
        time.sleep(max(0.0, a.stall - (time.time() - t_stop)))
        rd.proc.send_signal(signal.SIGCONT)
        t_cont = time.time()
        seqs = [int(iid[:16], 16) for _, iid in fans]
        keys = [st.key(f"r:{s}") for s in seqs]
        time.sleep(a.settle)
        missing = sum(1 for v in r.mget(keys) if v is None)
        print(f"bin={os.environ.get('ONSALE_BUILD_BIN')} republish_max={a.republish_max} "
              f"fans={a.fans} stall={a.stall}s: {missing} results missing {a.settle}s after "
              f"SIGCONT; the worker's repairs:")
        with open(os.path.join(st.logdir, "worker-0.log")) as f:
            for line in f:
                if "redis projection repaired" in line:
                    d = json.loads(line)
                    at = datetime.datetime.fromisoformat(d["ts"].replace("Z", "+00:00"))
                    print(f"  {at.timestamp() - t_cont:+.2f} s: {d['msg']}")
        for i in range(2):
            if i:
                time.sleep(a.gap)
            print(f"round {i + 1}:", poll_round(st, r, fans, ingress.popen.pid))


if __name__ == "__main__":
    main()
