#!/usr/bin/python3
"""bench/back_to_back.py - fresh connections opened back to back against
onsale-ingress, counting those closed with no byte of an answer (bench/NOTES.md,
"h12-drops"). The reproduction of that drop, and the control of
tests/integration/test_ingress_back_to_back.py, kept here because it needs
the release build: under ASan the freed nng_http_conn's address is rarely
reused by the next connection (its allocator's per-thread caches and
quarantine): 2-3 drops in ~50,000 connections with the old behaviour.

Starts an isolated stack (tests/integration/harness.py, 1 partition, no
worker) and one ingress from BIN_DIR with the given overrides, makes one
queued intent to poll, then per kind (pow_js, healthz, poll, join_401)
runs --runs loops of -n connections, each: connect, one request, read the
status line, close; prints the unanswered ones per loop.

Usage: bench/back_to_back.py BIN_DIR [-n 1000] [--runs 3] [--kinds pow_js,poll]
                             [ingress_key=value ...]
  e.g. bench/back_to_back.py build/bin debug_gate_conn_kept=true   (the old behaviour)
       bench/back_to_back.py base-bin http_gate_answers=false http_gate_threads=0
"""
import argparse
import os
import sys

ap = argparse.ArgumentParser()
ap.add_argument("bin")
ap.add_argument("-n", type=int, default=1000)
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--kinds", default="pow_js,healthz,poll,join_401")
ap.add_argument("extra", nargs="*", help="ingress overrides key=value")
A = ap.parse_intermixed_args()
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
os.environ["ONSALE_BUILD_BIN"] = os.path.abspath(A.bin)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402
from test_ingress_back_to_back import back_to_back, request  # noqa: E402

with harness.Stack(partitions=1) as st:
    opts = dict(ratelimit_poll_user_per_min=1000000, ratelimit_poll_user_burst=1000000,
                ratelimit_poll_addr_per_min=1000000, ratelimit_poll_addr_burst=1000000)
    opts.update(kv.split("=", 1) for kv in A.extra)
    port = int(st.start_ingress(**opts).rsplit(":", 1)[1])
    st.ev = st.create_event(sections=[("A", 20, 50, 5000)], max_per_user=1)
    st.fan = st.token(70000)
    _, b = st.join_ok(st.ev, st.fan)
    st.poll = b["status_url"]
    print(f"{A.bin} {' '.join(A.extra) or '(defaults)'}")
    for kind in A.kinds.split(","):
        req, want = request(st, kind)
        for r in range(A.runs):
            drops, statuses = back_to_back(port, req, A.n)
            print(f"{kind:9} run {r}: {len(drops):3} unanswered of {A.n}; answers {statuses}",
                  flush=True)
