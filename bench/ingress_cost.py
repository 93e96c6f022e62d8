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

Usage: bench/ingress_cost.py BIN_DIR LABEL   (e.g. build/bin head)
Output files under bench/tmp/cost/LABEL.
"""
import os, re, subprocess, sys, time, glob
REAL = os.path.abspath(sys.argv[1]); label = sys.argv[2]
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
cg = f"{ROOT}/bench/tmp/cost/{label}-bin"; out = f"{ROOT}/bench/tmp/cost/{label}"
os.makedirs(cg, exist_ok=True); os.makedirs(out, exist_ok=True)
for f in glob.glob(out + "/*"): os.remove(f)
for b in os.listdir(REAL):
    dst = os.path.join(cg, b)
    if os.path.lexists(dst): os.remove(dst)
    if b == "onsale-ingress":
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
    open(data, "w").write("".join(f"{p} {t}\n" for p, t in lines))
    s = f"""
local reqs = {{}}
local i = 0
function init(args) for line in io.lines("{data}") do local p, t = line:match("^(%S+) (%S+)$"); reqs[#reqs+1] = {{p, t}} end end
function request() i = i + 1; local r = reqs[(i % #reqs) + 1]
  return wrk.format("{method}", r[1], {{["Authorization"] = "Bearer " .. r[2], ["Content-Type"] = "application/json"}}, {body}) end
"""
    path = f"{out}/{tag}.lua"; open(path, "w").write(s); return path

def measure(st, pid, script, secs):
    subprocess.run(["callgrind_control", "-z", str(pid)], capture_output=True)
    subprocess.run(["callgrind_control", "-i", "on", str(pid)], capture_output=True)
    o = subprocess.run(["wrk", "-t1", "-c8", f"-d{secs}s", "-s", script, f"http://127.0.0.1:{st.ingress_port}"],
                       capture_output=True, text=True).stdout
    subprocess.run(["callgrind_control", "-i", "off", str(pid)], capture_output=True)
    for f in glob.glob(out + "/cg.*"): os.remove(f)
    subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True)
    time.sleep(1)
    tot = 0
    for f in glob.glob(out + "/cg.*"):
        for line in open(f):
            if line.startswith("totals:"):
                tot += int(line.split()[1])
    n = int(re.search(r"(\d+) requests in", o).group(1))
    non = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", o)
    return tot, n, non.group(1) if non else "0"

with harness.Stack(partitions=4) as st:
    ev = st.create_event(sections=[("A", 1000, 1000, 5000)], max_per_user=1)
    st.start_worker()
    st.start_ingress(pool_threads=4, ratelimit_poll_user_per_min=6000000, ratelimit_poll_user_burst=1000000)
    pid = [p for p in st.procs if p.name == "ingress"][-1].pid
    # the wrapper execs valgrind, so this pid is the instrumented ingress
    now = int(time.time())
    toks = [(f"/v1/events/{ev}/intents", harness.make_token(100000 + u, "fan", st.secret, exp=now + 7200)) for u in range(20000)]
    tot, n, non = measure(st, pid, lua("join", toks, "POST", '\'{"quantity":1}\''), 6)
    print(f"{label} join: {n} requests (non-2xx {non}), {tot/n:,.0f} instructions per join", flush=True)
    for p in st.procs:
        if p.name == "worker": p.stop()
    polls = []
    for u in range(300):
        tok = harness.make_token(9_000_000 + u, "fan", st.secret, exp=now + 7200)
        s, _, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, token=tok)
        if s == 202: polls.append((f"/v1/intents/{b['intent_id']}", tok))
    tot, n, non = measure(st, pid, lua("poll", polls, "GET", "nil"), 6)
    print(f"{label} poll: {n} requests (non-2xx {non}), {tot/n:,.0f} instructions per poll", flush=True)
