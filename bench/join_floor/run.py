#!/usr/bin/python3
"""bench/join_floor/run.py - the join's floor on this box (bench/NOTES.md,
"Join floor, seventeenth round"): nginx, the floor server's steps
(floor.c: a static 202; + token check and one claim script call per
batch; + the record produced acks=all, 202 on its delivery report; the
same with the worker draining) and Onsale's own ingress, each answering
the join's wrk script of scripts/bench in one session, with the CPU each
process spent per 2xx answer (/proc utime+stime) and the whole box's.

Order of the runs: --order (comma list of nginx, nginx_script, a, b, c,
d, ingress, ingress_nw); `c` and `ingress_nw` run with the worker stopped (its records wait in the
topic), `d` and `ingress` with it running and the backlog drained before
each. Every run is wrk -t2 -c64 for --duration seconds after a 1 s
warm-up of its own fans (except nginx and a).

Usage: bench/join_floor/run.py [--bin build/bin] [--floor build/bench/floor]
         [--duration 5] [--order ...] [--lock /work/wt/bench.lock] [--label L]
The lock (flock) is held from the first measured run to the last only.
"""
import argparse, fcntl, glob, importlib.machinery, importlib.util, os, re, resource, signal
import socket, subprocess, sys, tempfile, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ap = argparse.ArgumentParser()
ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bin"))
ap.add_argument("--floor", default=os.path.join(ROOT, "build", "bench", "floor"))
ap.add_argument("--duration", type=int, default=5)
ap.add_argument("--order", default="nginx,nginx_script,a,b,c,d,ingress")
ap.add_argument("--lock", default=None)
ap.add_argument("--label", default="floor")
ap.add_argument("--fans", type=int, default=400000, help="fresh fans per measured run")
ap.add_argument("--linger", type=int, default=1, help="the floor's linger.ms (ingress's default: 1)")
ap.add_argument("--private", action="store_true",
                help="a Redis and a Kafka broker of this run's own (the stack's settings), so their "
                     "CPU is this run's alone; PostgreSQL stays the stack's (own database)")
ap.add_argument("--ingress-linger", type=int, default=None, help="ingress's kafka.linger_ms")
A = ap.parse_args()
os.environ["ONSALE_BUILD_BIN"] = os.path.abspath(A.bin)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402

# scripts/bench's nginx, wrk and token script, reused as they are
_ldr = importlib.machinery.SourceFileLoader("onsale_bench", os.path.join(ROOT, "scripts", "bench"))
_spec = importlib.util.spec_from_loader("onsale_bench", _ldr)
B = importlib.util.module_from_spec(_spec)
_ldr.exec_module(B)
os.makedirs(B.TMP, exist_ok=True)
FLOOR_PORT = 18091


def log(msg):
    print(f"[floor {A.label}] {msg}", flush=True)


def listener(port):
    o = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
    m = re.search(r"pid=(\d+)", o)
    return int(m.group(1)) if m else None


def cpu_of(pids):
    return B.proc_cpu_s(pids)


def box_cpu():
    f = [int(x) for x in open("/proc/stat").readline().split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(f) - f[3] - f[4]) / tick


def threads_of(pid):
    tick, by = os.sysconf("SC_CLK_TCK"), {}
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            raw = open(f"/proc/{pid}/task/{t}/stat").read()
            name = raw[raw.index("(") + 1:raw.rindex(")")]
            g = raw[raw.rindex(")") + 2:].split()
            by[name] = by.get(name, 0) + (int(g[11]) + int(g[12])) / tick
    except OSError:
        pass
    return by


def wrk_children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def shared(st):
    """The stack's processes a join's work lands in (by the stack's ports:
    other helpers' private servers are not counted), this run's worker and
    the backends of this run's own database."""
    port = lambda hp: int(hp.rsplit(":", 1)[1])
    k, r = listener(port(harness.BROKERS.split(",")[0])), listener(harness.REDIS_PORT)
    pg = [x[0] for x in st.sql("SELECT pid FROM pg_stat_activity WHERE datname = %s "
                                "AND pid <> pg_backend_pid()", (st.db,))]
    return {"redis": [r] if r else [], "kafka": [k] if k else [],
            "worker": [p.pid for p in st.procs if p.name == "worker" and p.alive()],
            "pg(own db)": pg}


def wait_port(port, t=20):
    end = time.time() + t
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def wait_drained(st, t=180):
    """Until the worker's intents count holds still for 1.5 s."""
    last, end = -1, time.time() + t
    while time.time() < end:
        (n,), = st.sql("SELECT count(*) FROM intents")
        if n == last:
            return n
        last = n
        time.sleep(1.5)
    return last


def measure(st, name, url, script, server_pids, main_pid=None):
    pids = shared(st)
    # the shared servers' pace just before (other users of the stack: the
    # box is shared), over 2 s, taken off their figures ("net")
    q0, tq = {k: cpu_of(v) for k, v in pids.items()}, time.time()
    x00 = box_cpu()
    time.sleep(2)
    bgw = time.time() - tq
    bg = {k: (cpu_of(v) - q0[k]) / bgw for k, v in pids.items()}
    bgbox = (box_cpu() - x00) / bgw
    o0 = {k: cpu_of(v) for k, v in pids.items()}
    tw0 = time.time()
    s0, x0, w0 = cpu_of(server_pids), box_cpu(), wrk_children_cpu()
    t0 = threads_of(main_pid) if main_pid else {}
    res, out = B.wrk(url, A.duration, 64, script)
    o1 = {k: cpu_of(v) for k, v in pids.items()}
    s1, x1, w1 = cpu_of(server_pids), box_cpu(), wrk_children_cpu()
    wall = time.time() - tw0
    if not A.private:
        o1 = {k: o1[k] - (bg[k] * wall if k in ("redis", "kafka") else 0) for k in o1}
    t1 = threads_of(main_pid) if main_pid else {}
    n = int(re.search(r"(\d+) requests in", out).group(1))
    ok = max(n - res["non_2xx"], 1)
    per = lambda d: d / ok * 1e6
    load = open("/proc/loadavg").read().split()[0]
    line = (f"{name}: {res['rps']:.0f} req/s, {ok} 2xx of {n}, p50 {res['p50_ms']} ms, "
            f"load {load}; us CPU per 2xx: server {per(s1 - s0):.1f}, "
            + ", ".join(f"{k}{' net' if k in ('redis', 'kafka') and not A.private else ''} {per(o1[k] - o0[k]):.1f}"
                        for k in o1)
            + f", wrk {per(w1 - w0):.1f}; their sum {per(s1 - s0 + w1 - w0 + sum(o1[k] - o0[k] for k in o1)):.1f}"
            + f" (2 cores: {2e6 / max(per(s1 - s0 + w1 - w0 + sum(o1[k] - o0[k] for k in o1)), 1):.0f}/s)"
            + f"; whole box busy {per(x1 - x0):.1f} (the 2 s before: {bgbox:.2f} cores busy,"
            + f" redis {bg['redis']:.2f}, kafka {bg['kafka']:.2f})")
    log(line)
    if t1:
        split = sorted(((t1[k] - t0.get(k, 0), k) for k in t1), reverse=True)
        log(f"{name} by thread: " + ", ".join(f"{k} {per(v):.1f}" for v, k in split if v > 0))
    return res


def script_of(tag, lines):
    """scripts/bench's token script, under a name of its own (token_lua
    names every POST script alike)."""
    s = B.token_lua(tag, lines, "POST", '{"quantity":1}')
    own = os.path.join(B.TMP, f"floor-{tag}-{os.getpid()}.lua")
    os.replace(s, own)
    return own


def fans(st, ev, base, n):
    now = int(time.time())
    return [(f"/v1/events/{ev}/intents", harness.make_token(base + u, "fan", st.secret, exp=now + 7200))
            for u in range(n)]


def warm(url, st, ev, base):
    s = script_of(f"warm{base}", fans(st, ev, base, 20000))
    subprocess.run(["wrk", "-t2", "-c8", "-d1s", "-s", s, url], capture_output=True)


def start_floor(st, mode):
    env = st.env(floor_port=FLOOR_PORT)
    env["FLOOR_PORT"] = str(FLOOR_PORT)
    env["FLOOR_LINGER_MS"] = str(A.linger)
    p = subprocess.Popen([A.floor, mode], env=env, stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(B.TMP, f"floor-{mode}.log"), "w"))
    wait_port(FLOOR_PORT)
    return p


def stop_floor(p):
    p.send_signal(signal.SIGTERM)
    p.wait(30)


class Private:
    """A redis-server and a KRaft broker of this run's own, set up as
    scripts/stack runs the shared ones (AOF everysec with the stack's
    rewrite size; the broker's heap and G1), in a temporary folder removed after."""

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="onsale-join-floor-")
        os.makedirs(self.dir + "/redis")
        self.rport, kport = harness.free_port(), harness.free_port()
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.rport), "--bind", "127.0.0.1", "--dir",
             self.dir + "/redis", "--appendonly", "yes", "--appendfsync", "everysec",
             "--auto-aof-rewrite-min-size", "512mb", "--save", "", "--maxclients", "10000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.brokers = f"127.0.0.1:{kport}"
        self.kenv = {k: v for k, v in os.environ.items() if not k.startswith("ONSALE_")}
        self.kenv.update(ONSALE_STATE=self.dir + "/k", ONSALE_KAFKA_DATA=self.dir + "/kdata",
                         ONSALE_KAFKA_PORT=str(kport), ONSALE_KAFKA_CONTROLLER_PORT=str(harness.free_port()),
                         ONSALE_KAFKA_BROKERS=self.brokers, ONSALE_PARTITIONS="4",
                         ONSALE_KAFKA_START_S="200")
        p = subprocess.run([os.path.join(ROOT, "scripts", "stack"), "kafka", "up"], env=self.kenv,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=260)
        if p.returncode:
            raise RuntimeError(p.stdout)
        wait_port(self.rport)
        harness.REDIS_PORT, harness.BROKERS = self.rport, self.brokers
        log(f"private redis :{self.rport}, broker {self.brokers}")
        return self

    def __exit__(self, *exc):
        self.redis.terminate(); self.redis.wait(20)
        try:
            os.kill(int(open(self.dir + "/k/run/kafka.pid").read()), signal.SIGKILL)
            time.sleep(1)
        except (OSError, ValueError):
            pass
        subprocess.run(["rm", "-rf", self.dir])
        return False


def main():
    if A.private:
        with Private():
            return run()
    return run()


def run():
    order = A.order.split(",")
    B.start_nginx()
    lock = None
    try:
        with harness.Stack(partitions=4, brokers=harness.BROKERS) as st:
            ev = st.create_event(sections=[("A", 1000, 1000, 5000)], max_per_user=1)
            st.start_worker()
            extra = {} if A.ingress_linger is None else {"kafka_linger_ms": A.ingress_linger}
            st.start_ingress(pool_threads=4, ratelimit_poll_user_per_min=6000000,
                             ratelimit_poll_user_burst=1000000, **extra)
            ing = [p for p in st.procs if p.name == "ingress"][-1].pid
            iurl = f"http://127.0.0.1:{st.ingress_port}"
            # the worker loads the event's million seats on its first record
            warm(iurl, st, ev, 50_000_000)
            wait_drained(st)
            log("minting tokens")
            scripts, base = {}, 1_000_000
            for i, m in enumerate(order):
                if m in ("b", "c", "d", "ingress", "ingress_nw"):
                    scripts[i] = script_of(f"floor-{m}{i}", fans(st, ev, base, A.fans))
                    base += 1_000_000
            plain = script_of("floor-plain", fans(st, ev, 60_000_000, 20000))
            if A.lock:
                lock = open(A.lock, "a")
                log(f"waiting for {A.lock}")
                fcntl.flock(lock, fcntl.LOCK_EX)
                log("lock held")
            ngurl, furl = f"http://127.0.0.1:{B.NGINX_PORT}", f"http://127.0.0.1:{FLOOR_PORT}"
            worker_on = True
            for i, m in enumerate(order):
                if m == "nginx":
                    measure(st, m, ngurl + "/status.json", None, B.nginx_pids())
                elif m == "nginx_script":
                    measure(st, m, ngurl, plain, B.nginx_pids())
                elif m in ("ingress", "ingress_nw"):
                    if m == "ingress" and not worker_on:
                        st.start_worker(); worker_on = True
                    if m == "ingress_nw" and worker_on:
                        for p in st.procs:
                            if p.name == "worker":
                                p.stop()
                        worker_on = False
                    warm(iurl, st, ev, 40_000_000 + base); base += 100_000
                    if worker_on:
                        wait_drained(st)
                    measure(st, m, iurl, scripts[i], [ing], ing)
                else:
                    want = m in ("d",)
                    if m in ("b", "c") and worker_on:
                        for p in st.procs:
                            if p.name == "worker":
                                p.stop()
                        worker_on = False
                    if want and not worker_on:
                        st.start_worker(); worker_on = True
                    p = start_floor(st, "c" if m == "d" else m)
                    if m != "a":
                        warm(furl, st, ev, 40_000_000 + base); base += 100_000
                    if worker_on:
                        wait_drained(st)
                    measure(st, m, furl, scripts.get(i, plain), [p.pid], p.pid)
                    stop_floor(p)
            if worker_on:
                log(f"intents applied by the worker: {wait_drained(st)}")
    finally:
        if lock:
            fcntl.flock(lock, fcntl.LOCK_UN)
        B.stop_nginx()
        # the token files are ~75 MB a run step
        for f in glob.glob(os.path.join(B.TMP, f"reqs-{os.getpid()}-*.txt")) + \
                glob.glob(os.path.join(B.TMP, f"floor-*-{os.getpid()}.lua")):
            os.remove(f)


main()
