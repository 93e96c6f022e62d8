#!/usr/bin/python3
"""bench/result_write_cost.py - Redis's CPU per result write: the plain
SET ... EX the batches sent before (h16-truth), against the versioned
compare-and-set script they send now (queue/status.c's RESULT_REPAIR, read
from the source: 512 results a call, the worker's argument layout).

A private redis-server (no persistence); N results written over absent
keys (a first state), then over the stored ones (a later state); Redis's
own used_cpu_user + used_cpu_sys around each, per result. Two rounds.
Run it under the bench lock: flock /work/wt/bench.lock bench/result_write_cost.py
"""
import argparse
import os
import re
import socket
import subprocess
import time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = ('{"state":"reserved","event_id":7,"reason":null,"left_queue_at":"2026-11-28T00:50:00.123Z",'
       '"reservation":{"reservation_id":"0123456789abcdef0123456789abcdef","seats":[{"section":"A",'
       '"row":1,"seat":4,"price_cents":5000}],"total_cents":5000,"currency":"USD",'
       '"expires_at":"2026-11-28T01:00:00Z"},"v":[3,%d]}')


def script_source():
    src = open(os.path.join(ROOT, "queue", "status.c")).read()
    i = src.index("[SCRIPT_RESULT_REPAIR] =")
    j = src.index("};", i)
    return "".join(eval(x) for x in re.findall(r'\n\s*("(?:[^"\\]|\\.)*")', src[i:j]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", type=int, default=200_000)
    args = ap.parse_args()
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    try:
        r = redis.Redis(port=port)
        for _ in range(100):
            try:
                r.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        lua = script_source()

        def cpu():
            c = r.info("cpu")
            return c["used_cpu_user"] + c["used_cpu_sys"]

        def run(mode, sha, ver):
            n = args.results
            c0 = cpu()
            pl = r.pipeline(transaction=False)
            for start in range(0, n, 512):
                m = min(512, n - start)
                if mode == "set":
                    for k in range(start, start + m):
                        pl.set(f"p:r:{k}", DOC % ver, ex=86400)
                else:
                    keys = ["p:repair_epoch"] + [f"p:r:{k}" for k in range(start, start + m)]
                    argv = ["86400"]
                    for _ in range(m):
                        argv += ["0", "3", str(ver), DOC % ver]
                    pl.evalsha(sha, len(keys), *keys, *argv)
                if (start // 512) % 8 == 7:
                    pl.execute()
            pl.execute()
            return (cpu() - c0) * 1e6 / n

        for _ in range(2):
            for mode in ("set", "script"):
                r.flushall()
                sha = r.script_load(lua)
                first = run(mode, sha, 1)
                later = run(mode, sha, 2)
                print(f"{mode:6}: {first:.2f} us/result over absent keys, "
                      f"{later:.2f} over a stored one")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
