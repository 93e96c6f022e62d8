#!/usr/bin/python3
"""bench/catalog_cost.py - CPU per catalog search (ingress + its PostgreSQL
backends) of two ingress builds, alternating shape by shape on one database
that already holds the generated catalog: a before/after that holds on a
shared box where latencies do not (bench/NOTES.md, "Catalog plans at a
million events").

The database is filled once (tests/integration/catalog_data.py fill(), as
scripts/bench does, into a database you keep, e.g. on a private PostgreSQL)
and both builds must run on its schema. Starts an isolated stack
(tests/integration/harness.py: Kafka topic, Redis prefix) and one ingress
per build with pg_dsn on that database, 4 job threads, the node's answer
cache off; for each shape of scripts/bench's catalog run wrk -t1 -c1 for
DUR seconds per build, and prints p50/p99 and the CPU ingress and the
backends serving it (matched by client port) spent per answered request.

Usage: bench/catalog_cost.py DSN OLD_BIN_DIR NEW_BIN_DIR [DUR] [shape,...]
Output: one line per shape and build; JSON in bench/tmp/catalog_cost.json.
"""
import json, os, re, subprocess, sys
from importlib.machinery import SourceFileLoader

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("ONSALE_BUILD_BIN", os.path.join(ROOT, "build", "bin"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
bench = SourceFileLoader("bench", os.path.join(ROOT, "scripts", "bench")).load_module()
import harness  # noqa: E402
import psycopg2  # noqa: E402

dsn, old_bin, new_bin = sys.argv[1:4]
dur = int(sys.argv[4]) if len(sys.argv) > 4 else 10
only = sys.argv[5].split(",") if len(sys.argv) > 5 else None
pg = psycopg2.connect(dsn)
pg.autocommit = True
cur = pg.cursor()
shapes = bench.catalog_shapes(cur)
pg_port = re.search(r"port=(\d+)", dsn).group(1)


def pids(ingress):
    """ingress and the backends of its connections to the database."""
    ss = subprocess.run(["ss", "-tnpH", "dport", "=", f":{pg_port}"], capture_output=True,
                        text=True).stdout
    ports = [int(m.group(1)) for line in ss.splitlines() if f"pid={ingress}," in line
             for m in [re.search(r":(\d+)\s+\S+:" + pg_port, line)] if m]
    cur.execute("SELECT pid FROM pg_stat_activity WHERE client_port = ANY(%s)", (ports,))
    return [ingress] + [r[0] for r in cur.fetchall()]


out = {}
os.makedirs(bench.TMP, exist_ok=True)
with harness.Stack(partitions=1) as st:
    base, pid = {}, {}
    for tag, b in (("old", old_bin), ("new", new_bin)):
        harness.BIN = os.path.abspath(b)
        base[tag] = st.start_ingress(catalog_cache_ttl_ms=0, pool_threads=4, pg_dsn=dsn)
        pid[tag] = st.procs[-1].pid
    for name, paths in shapes.items():
        if only and name not in only:
            continue
        for tag in ("old", "new"):
            for p in paths[:3]:  # warm
                subprocess.run(["curl", "-s", "-o", "/dev/null", base[tag] + p], check=True)
            p0 = pids(pid[tag])
            c0 = bench.proc_cpu_s(p0)
            r, txt = bench.wrk(base[tag], dur, 1, bench.paths_lua(name, paths), threads=1)
            c1 = bench.proc_cpu_s(sorted(set(p0) | set(pids(pid[tag]))))  # new ones count whole
            n = int(re.search(r"(\d+) requests in", txt).group(1))
            r["cpu_us_per_req"] = (c1 - c0) * 1e6 / max(n, 1)
            out.setdefault(name, {})[tag] = r
            print(f"{name:18s} {tag}: p50 {r['p50_ms']:7.2f} p99 {r['p99_ms']:7.2f} ms "
                  f"{r['rps']:6.0f}/s {r['cpu_us_per_req']:7.0f} us CPU/req "
                  f"load {os.getloadavg()[0]:.1f} non-2xx {r['non_2xx']}", flush=True)
with open(os.path.join(bench.TMP, "catalog_cost.json"), "w") as f:
    json.dump(out, f, indent=1)
