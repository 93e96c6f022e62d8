#!/usr/bin/python3
"""bench/ingress_cost.py - user-space instructions per request of
onsale-ingress, counted by callgrind, for joins and queued polls: a figure
that holds on a shared box where wall-clock ratios do not (bench/NOTES.md,
"Third round").

Starts an isolated stack (tests/integration/harness.py: 4 partitions, the
worker running, ingress with 4 job threads and the bench's poll limit)
with ingress under valgrind --tool=callgrind (instrumentation off until the
measured load), runs wrk -t1 -c8 for 6 s of joins (a fresh fan each), then
stops the worker and runs 6 s of queued polls over 300 intents, and prints
total instructions / answered requests for each.

With --proc instead: ingress runs natively and the figures are its CPU
time (utime + stime, /proc/PID/stat) and context switches (voluntary +
involuntary over its threads, /proc/PID/task/*/status) per answered
request, with wrk -t2 -cCONNS for --duration seconds, and joins/s and
polls/s; --record adds `perf record -g` of the ingress during the joins
(bench/tmp/cost/LABEL/join.perf.data). The CPU per request depends far less
on the rest of a shared box than the rate does; alternate binaries in one
session to compare them. The other processes' figures are the stack's own
broker, Redis and PostgreSQL (found by their ports: other helpers' private
brokers and Redis servers on the box are not counted), and the requests
ingress and the worker sent the broker per join (TCP segments, `ss -ti`):
with Nagle off each request is one segment, so ingress's count is its
produce requests (records per request = its inverse).

Usage: bench/ingress_cost.py BIN_DIR LABEL [--proc [--conns 64] [--duration 5] [--record]] [--idem]
                             [ingress_key=value ...]   (e.g. build/bin head join_round_max=0)
Output files under bench/tmp/cost/LABEL (callgrind: join.callgrind.N, poll.callgrind.N).
"""
import argparse, os, re, subprocess, sys, time, glob
ap = argparse.ArgumentParser()
ap.add_argument("bin"); ap.add_argument("label")
ap.add_argument("--proc", action="store_true", help="native run: CPU and context switches per request")
ap.add_argument("--conns", type=int, default=64); ap.add_argument("--duration", type=int, default=5)
ap.add_argument("--record", action="store_true", help="with --proc: perf record -g during the joins")
ap.add_argument("--record-all", action="store_true",
                help="with --record: every process on the box (perf record -a), not ingress alone")
ap.add_argument("--record-drain", action="store_true",
                help="with --record: the worker and this stack's PostgreSQL backends, not ingress")
ap.add_argument("--record-redis", action="store_true",
                help="with --record: the stack's Redis server, not ingress")
ap.add_argument("--dwarf", action="store_true",
                help="with --record: DWARF call graphs (through libraries built without frame pointers)")
ap.add_argument("--joins-only", action="store_true", help="with --proc: no poll run")
ap.add_argument("--stop-worker", action="store_true",
                help="with --proc: the worker stopped during the joins too (ingress's own Redis work alone)")
ap.add_argument("--idem", action="store_true",
                help="joins carry an Idempotency-Key each (as the fan page sends them)")
ap.add_argument("extra", nargs="*", help="ingress overrides key=value")
A = ap.parse_intermixed_args()
REAL = os.path.abspath(A.bin); label = A.label
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
cg = f"{ROOT}/bench/tmp/cost/{label}-bin"; out = f"{ROOT}/bench/tmp/cost/{label}"
os.makedirs(cg, exist_ok=True); os.makedirs(out, exist_ok=True)
for f in glob.glob(out + "/*"): os.remove(f)
for b in os.listdir(REAL):
    dst = os.path.join(cg, b)
    if os.path.lexists(dst): os.remove(dst)
    if b == "onsale-ingress" and not A.proc:
        open(dst, "w").write("#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no "
                             f"--callgrind-out-file={out}/cg.%p {os.path.join(REAL, b)} \"$@\"\n")
        os.chmod(dst, 0o755)
    else:
        os.symlink(os.path.join(REAL, b), dst)
os.environ["ONSALE_BUILD_BIN"] = cg
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness

def lua(tag, lines, method, body):
    data = f"{out}/{tag}.txt"
    # --idem: a key of its own per join (thread, request number)
    idem = ', ["Idempotency-Key"] = "k" .. (tid or 0) .. "-" .. i' if A.idem and method == "POST" else ""
    open(data, "w").write("".join(f"{p} {t}\n" for p, t in lines))
    s = f"""
local reqs = {{}}
local i = 0
local counter = 0
function setup(thread) thread:set("tid", counter); counter = counter + 1 end
-- each wrk thread starts its own share of the list: no two ask for one fan at once
function init(args) for line in io.lines("{data}") do local p, t = line:match("^(%S+) (%S+)$"); reqs[#reqs+1] = {{p, t}} end
  i = (tid or 0) * math.floor(#reqs / 2) end
function request() i = i + 1; local r = reqs[(i % #reqs) + 1]
  return wrk.format("{method}", r[1], {{["Authorization"] = "Bearer " .. r[2], ["Content-Type"] = "application/json"{idem}}}, {body}) end
"""
    path = f"{out}/{tag}.lua"; open(path, "w").write(s); return path

def measure(st, pid, script, secs, tag):
    subprocess.run(["callgrind_control", "-z", str(pid)], capture_output=True)
    subprocess.run(["callgrind_control", "-i", "on", str(pid)], capture_output=True)
    o = subprocess.run(["wrk", "-t1", "-c8", f"-d{secs}s", "-s", script, f"http://127.0.0.1:{st.ingress_port}"],
                       capture_output=True, text=True).stdout
    subprocess.run(["callgrind_control", "-i", "off", str(pid)], capture_output=True)
    for f in glob.glob(out + "/cg.*"): os.remove(f)
    subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True)
    time.sleep(1)
    tot = 0
    for k, f in enumerate(glob.glob(out + "/cg.*")):
        for line in open(f):
            if line.startswith("totals:"):
                tot += int(line.split()[1])
        # kept for callgrind_annotate (the next measure's dump replaces cg.*)
        os.replace(f, f"{out}/{tag}.callgrind.{k}")
    n = int(re.search(r"(\d+) requests in", o).group(1))
    non = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", o)
    return tot, n, non.group(1) if non else "0"

def proc_counts(pid):
    """(CPU seconds, context switches, {thread name: CPU seconds}) of
    process pid so far."""
    tick = os.sysconf("SC_CLK_TCK")
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    cpu = (int(f[11]) + int(f[12])) / tick
    cs, by = 0, {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            raw = open(f"/proc/{pid}/task/{t}/stat").read()
            name = raw[raw.index("(") + 1:raw.rindex(")")]
            g = raw[raw.rindex(")") + 2:].split()
            by[name] = by.get(name, 0) + (int(g[11]) + int(g[12])) / tick
            for line in open(f"/proc/{pid}/task/{t}/status"):
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    cs += int(line.split()[1])
        except OSError:
            pass
    return cpu, cs, by


def listener(port):
    """pid of the process listening on 127.0.0.1:port (ss -p), or None."""
    o = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
    m = re.search(r"pid=(\d+)", o)
    return int(m.group(1)) if m else None


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if int(open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d))
            except OSError:
                pass
    return out


def others(st):
    """{name: pid list} of the processes that share a join's work: the
    stack's broker and Redis (found by the ports this stack uses: other
    helpers' private brokers and Redis servers are not counted), this
    stack's worker, every backend of the stack's PostgreSQL (other users'
    too: the stack is shared)."""
    port = lambda hp: int(hp.rsplit(":", 1)[1])
    kafka = listener(port(harness.BROKERS.split(",")[0]))
    redis = listener(harness.REDIS_PORT)
    pg = listener(harness.PG_PORT)
    return {"worker": [p.pid for p in st.procs if p.name == "worker"],
            "kafka": [kafka] if kafka else [], "redis": [redis] if redis else [],
            "postgres": ([pg] + children(pg)) if pg else [],
            "pg(own db)": own_backends(st)}


def own_backends(st):
    """The PostgreSQL backends connected to this stack's own database (the
    worker's, ingress's): the figure other users of the shared server
    (other helpers' test databases) do not move."""
    return [r[0] for r in st.sql("SELECT pid FROM pg_stat_activity WHERE datname = %s "
                                 "AND pid <> pg_backend_pid()", (st.db,))]


def broker_traffic(pids):
    """{pid: (TCP segments with data, bytes) sent to the broker so far}
    over the live connections of pids (ss -ti): with Nagle off each
    request librdkafka writes is one segment on loopback, so the segments
    count the requests (produce from ingress, fetch and commits from the
    worker)."""
    bport = harness.BROKERS.split(",")[0].rsplit(":", 1)[1]
    o = subprocess.run(["ss", "-tinpH", f"dport = :{bport}"], capture_output=True, text=True).stdout
    out, who = {}, None
    for line in o.splitlines():
        m = re.search(r"pid=(\d+)", line)
        if m:
            who = int(m.group(1)) if int(m.group(1)) in pids else None
            continue
        if who is not None:
            seg = re.search(r"data_segs_out:(\d+)", line); by = re.search(r"bytes_sent:(\d+)", line)
            a, b = out.get(who, (0, 0))
            out[who] = (a + (int(seg.group(1)) if seg else 0), b + (int(by.group(1)) if by else 0))
    return out


def cpu_of(pids):
    tick = os.sysconf("SC_CLK_TCK")
    tot = 0.0
    for p in pids:
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            tot += (int(f[11]) + int(f[12])) / tick
        except OSError:
            pass
    return tot


def box_cpu():
    """(busy, total) CPU seconds of the whole box so far (/proc/stat)."""
    f = [int(x) for x in open("/proc/stat").readline().split()[1:9]]  # guest time is in user already
    tick = os.sysconf("SC_CLK_TCK")
    idle = f[3] + f[4]
    return (sum(f) - idle) / tick, sum(f) / tick


def commandstats(st):
    """{command: (calls, usec)} of the stack's Redis so far (INFO
    commandstats: shared with other users of the stack; commands a script
    runs are counted under their own names too, and in the script's usec)."""
    out = {}
    for k, v in st.redis.info("commandstats").items():
        out[k.replace("cmdstat_", "")] = (int(v["calls"]), int(v["usec"]))
    return out


def print_commandstats(r0, r1, ok, tag):
    rows = []
    for k, (c, u) in r1.items():
        c0, u0 = r0.get(k, (0, 0))
        if c - c0 > 0:
            rows.append((u - u0, c - c0, k))
    rows.sort(reverse=True)
    print(f"{label} {tag} Redis per request (calls, us; INFO commandstats): " +
          ", ".join(f"{k} {c / max(ok, 1):.3f} x {(u / max(c, 1)):.1f} us = {u / max(ok, 1):.2f} us"
                    for u, c, k in rows), flush=True)


def measure_proc(st, pid, script, secs, tag):
    rec = None
    pids = others(st)
    if A.record and tag == "join":
        who = ["-a"] if A.record_all else ["-p", str(pid)]
        if A.record_drain:
            who = ["-p", ",".join(str(p) for p in pids["worker"] + pids["pg(own db)"])]
        if A.record_redis:
            who = ["-p", ",".join(str(p) for p in pids["redis"])]
        graph = ["--call-graph", "dwarf,16384", "-F", "299"] if A.dwarf else ["-g", "-F", "999"]
        rec = subprocess.Popen(["perf", "record", *graph, *who, "-o",
                                f"{out}/join.perf.data"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        time.sleep(0.3)
    # the shared processes' own pace (other users of the stack) just before,
    # over 2 s: taken off their figures below ("net")
    q0, t0 = {k: cpu_of(v) for k, v in pids.items()}, time.time()
    time.sleep(2)
    bg = {k: (cpu_of(v) - q0[k]) / (time.time() - t0) for k, v in pids.items()}
    c0, s0, b0 = proc_counts(pid)
    o0 = {k: cpu_of(v) for k, v in pids.items()}
    x0 = box_cpu()
    r0 = commandstats(st)
    who = {pid: "ingress", **{p: "worker" for p in pids["worker"]}}
    k0 = broker_traffic(who)
    w0 = time.time()
    o = subprocess.run(["wrk", "-t2", f"-c{A.conns}", f"-d{secs}s", "-s", script,
                        f"http://127.0.0.1:{st.ingress_port}"], capture_output=True, text=True).stdout
    c1, s1, b1 = proc_counts(pid)
    o1 = {k: cpu_of(v) for k, v in pids.items()}
    x1 = box_cpu()
    r1 = commandstats(st)
    k1 = broker_traffic(who)
    wall = time.time() - w0
    if rec:
        rec.send_signal(2); rec.wait()
    n = int(re.search(r"(\d+) requests in", o).group(1))
    non = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", o)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", o).group(1))
    ok = n - (int(non.group(1)) if non else 0)
    load = open("/proc/loadavg").read().split()[0]
    print(f"{label} {tag}: {ok} answered 2xx of {n} ({rps:.0f} req/s), "
          f"{(c1 - c0) / max(ok, 1) * 1e6:.1f} us CPU and {(s1 - s0) / max(ok, 1):.2f} "
          f"context switches per request, load {load}", flush=True)
    # what the non-2xx answers were (the route's counters by status)
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{st.ingress_port}/metrics", timeout=10).read().decode()
    odd = [l for l in text.splitlines() if l.startswith("onsale_ingress_requests_total{")
           and not re.search(r'status="2\d\d"', l) and not l.endswith(" 0")]
    if odd:
        print(f"{label} {tag} non-2xx so far: " + "; ".join(odd), flush=True)
    print(f"{label} {tag} CPU us per request elsewhere: " +
          ", ".join(f"{k} {(o1[k] - o0[k]) / max(ok, 1) * 1e6:.1f}" for k in o1) +
          f"; whole box {(x1[0] - x0[0]) / max(ok, 1) * 1e6:.1f} busy of "
          f"{(x1[1] - x0[1]) / max(ok, 1) * 1e6:.1f}", flush=True)
    print(f"{label} {tag} CPU us per request elsewhere, net of the 2 s before: " +
          ", ".join(f"{k} {(o1[k] - o0[k] - bg[k] * wall) / max(ok, 1) * 1e6:.1f}" for k in o1),
          flush=True)
    print_commandstats(r0, r1, ok, tag)
    print(f"{label} {tag} to the broker (ss: data segments, i.e. requests; bytes): " +
          ", ".join(f"{who[p]} {(k1[p][0] - k0.get(p, (0, 0))[0]) / max(ok, 1):.4f} requests "
                    f"({ok / max(k1[p][0] - k0.get(p, (0, 0))[0], 1):.1f} answers each), "
                    f"{(k1[p][1] - k0.get(p, (0, 0))[1]) / max(ok, 1):.0f} bytes per join" for p in k1),
          flush=True)
    split = sorted(((b1.get(k, 0) - b0.get(k, 0), k) for k in b1), reverse=True)
    print(f"{label} {tag} CPU us per request by thread: " +
          ", ".join(f"{k} {v / max(ok, 1) * 1e6:.1f}" for v, k in split if v > 0), flush=True)


def poll_targets(st, ev, now):
    """Stops the workers, then joins 300 fans of their own: their intents stay queued, so
    each poll of one is the queued answer. Returns (status path, token) pairs for lua()."""
    for p in st.procs:
        if p.name == "worker": p.stop()
    polls = []
    for u in range(300):
        tok = harness.make_token(9_000_000 + u, "fan", st.secret, exp=now + 7200)
        s, _, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, token=tok)
        if s == 202: polls.append((f"/v1/intents/{b['intent_id']}", tok))
    return polls


def ingress_overrides():
    o = dict(pool_threads=4, ratelimit_poll_user_per_min=6000000, ratelimit_poll_user_burst=1000000)
    o.update(kv.split("=", 1) for kv in A.extra)
    return o


with harness.Stack(partitions=4) as st:
    ev = st.create_event(sections=[("A", 1000, 1000, 5000)], max_per_user=1)
    st.start_worker()
    st.start_ingress(**ingress_overrides())
    pid = [p for p in st.procs if p.name == "ingress"][-1].pid
    if A.proc:
        now = int(time.time())
        toks = [(f"/v1/events/{ev}/intents", harness.make_token(100000 + u, "fan", st.secret, exp=now + 7200))
                for u in range(120000)]
        # warm-up (connections, caches, the producer's metadata) on fans of their own
        subprocess.run(["wrk", "-t2", "-c8", "-d1s", "-s", lua("warm", toks[:20000], "POST", '\'{"quantity":1}\''),
                        f"http://127.0.0.1:{st.ingress_port}"], capture_output=True)
        # the worker loads the event (a million seats) on its first record:
        # wait until the warm-up is drained, so the measured joins pay for
        # their own drain and not for that one-off load
        if not A.stop_worker:
            last, t_end = -1, time.time() + 120
            while time.time() < t_end:
                (n_in,), = st.sql("SELECT count(*) FROM intents")
                if n_in > 0 and n_in == last:
                    break
                last = n_in
                time.sleep(1)
        if A.stop_worker:
            for p in st.procs:
                if p.name == "worker": p.stop()
        measure_proc(st, pid, lua("join", toks[20000:], "POST", '\'{"quantity":1}\''), A.duration, "join")
        if not A.joins_only:
            measure_proc(st, pid, lua("poll", poll_targets(st, ev, now), "GET", "nil"), A.duration, "poll")
        sys.exit(0)
    # the wrapper execs valgrind, so this pid is the instrumented ingress
    now = int(time.time())
    toks = [(f"/v1/events/{ev}/intents", harness.make_token(100000 + u, "fan", st.secret, exp=now + 7200)) for u in range(20000)]
    tot, n, non = measure(st, pid, lua("join", toks, "POST", '\'{"quantity":1}\''), 6, "join")
    print(f"{label} join: {n} requests (non-2xx {non}), {tot/n:,.0f} instructions per join", flush=True)
    tot, n, non = measure(st, pid, lua("poll", poll_targets(st, ev, now), "GET", "nil"), 6, "poll")
    print(f"{label} poll: {n} requests (non-2xx {non}), {tot/n:,.0f} instructions per poll", flush=True)
