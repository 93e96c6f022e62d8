"""Disk full (issue 13, docs/scaling.md "Failures"): a Kafka broker's or
PostgreSQL's volume fills up mid-sale. Each test mounts a small tmpfs of its
own (as root, as CI runs, or through `sudo -n` as a user with sudo; a test
that cannot mount FAILS, it never skips), puts one store on it, fills it with
a filler file and shows:

  - the broker's volume full: the broker stops (see the test for what Kafka
    does); new joins are refused with 503 `queue_unavailable` (Retry-After,
    nothing queued), ingress's /readyz says kafka is down, the worker waits;
    every 202'd intent is applied exactly once; when space returns and the
    broker is restarted, joins are accepted and applied again;
  - PostgreSQL's volume full (the test database in a tablespace on the
    mount): the worker's batches fail and are retried (backing off), joins are
    still accepted (Kafka is fine) and fans stay queued; when space returns the
    worker drains, each intent applied once.

Both end with `onsalectl audit` over the 202s the test saw (sim-log format:
accepted_reached, kafka_applied, fifo, seats ...) and an exactly-once check.
The mounts, the private broker and the tablespace are removed in `finally`
blocks, also when a test fails."""
import contextlib, errno, os, signal, subprocess, tempfile, time

import psycopg2

from harness import BIN, ROOT, Stack, free_port, metric, pg_dsn

STACK = os.path.join(ROOT, "scripts", "stack")


# ---- a small volume ------------------------------------------------------------
def as_root(argv):
    """argv run as root: directly when the test is root (CI), else through
    `sudo -n` (a user with sudo running scripts/test). Returns the
    CompletedProcess (stdout and stderr together)."""
    if os.geteuid() != 0:
        argv = ["sudo", "-n", *argv]
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@contextlib.contextmanager
def tmpfs(size_mb):
    """A tmpfs of size_mb MiB mounted on a fresh folder, owned by the user
    running the test (who fills it and runs the private broker on it), mode
    0755 so the PostgreSQL server's user can reach its folder in it;
    unmounted and removed afterwards. Mounting needs root (as_root): failing
    to mount fails the test."""
    where = tempfile.mkdtemp(prefix="onsale-full-")
    os.chmod(where, 0o755)
    opts = f"size={size_mb}m,mode=0755,uid={os.geteuid()},gid={os.getegid()}"
    p = as_root(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", where])
    if p.returncode != 0:
        os.rmdir(where)
        raise AssertionError(f"cannot mount a tmpfs on {where} (the disk-full tests need root or "
                             f"sudo): {p.stdout.strip()}")
    try:
        yield where
    finally:
        if as_root(["umount", where]).returncode != 0:
            p = as_root(["umount", "-l", where])
            assert p.returncode == 0, p.stdout
        os.rmdir(where)


def fill(folder):
    """Writes folder/filler until the volume has no free block left; returns
    its path. Removing it gives the space back."""
    path = os.path.join(folder, "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        chunk = 1 << 20
        while chunk >= 512:
            try:
                os.write(fd, b"\0" * chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                chunk //= 2
    finally:
        os.close(fd)
    st = os.statvfs(folder)
    assert st.f_bavail == 0, f"{folder} still has {st.f_bavail} free blocks"
    return path


# ---- a private Kafka broker -------------------------------------------------------
class PrivateKafka:
    """A single KRaft broker (broker + controller, as `scripts/stack up` runs
    it) started by `scripts/stack kafka up` on free ports with its own state
    folder and log.dirs = data (the metadata log included)."""

    def __init__(self, data, state):
        self.port = free_port()
        self.brokers = f"127.0.0.1:{self.port}"
        self.state = state
        # Nothing of the shared stack's settings: only this broker's.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ONSALE_")}
        self.env.update(ONSALE_STATE=state, ONSALE_KAFKA_DATA=data, ONSALE_KAFKA_PORT=str(self.port),
                        ONSALE_KAFKA_CONTROLLER_PORT=str(free_port()), ONSALE_KAFKA_BROKERS=self.brokers,
                        ONSALE_PARTITIONS="2", ONSALE_KAFKA_HEAP="256m",
                        # C1 only: half the start-up CPU (this broker carries little)
                        ONSALE_KAFKA_JVM_OPTS="-XX:TieredStopAtLevel=1",
                        ONSALE_KAFKA_START_S="150")  # a loaded box's JVM start

    def start(self):
        p = subprocess.run([STACK, "kafka", "up"], env=self.env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=200)
        assert p.returncode == 0, p.stdout + self.log_tail()

    def pid(self):
        try:
            with open(os.path.join(self.state, "run", "kafka.pid")) as f:
                pid = int(f.read())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def kill(self):
        pid = self.pid()
        if pid:
            os.kill(pid, signal.SIGKILL)
            for _ in range(200):
                if not self.pid():
                    break
                time.sleep(0.05)

    def log_tail(self, n=4000):
        out = ""
        for name in ("kafka.log", "kafka.out"):
            path = os.path.join(self.state, "logs", name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    out += f"\n--- {name}\n" + f.read()[-n:]
        return out

    def log_text(self):
        path = os.path.join(self.state, "logs", "kafka.log")
        with open(path, errors="replace") as f:
            return f.read()


@contextlib.contextmanager
def private_kafka(data, state):
    k = PrivateKafka(data, state)
    try:
        k.start()
        yield k
    finally:
        k.kill()  # the volume goes away next: no graceful shutdown needed


# ---- a PostgreSQL tablespace ---------------------------------------------------------
@contextlib.contextmanager
def pg_tablespace(folder):
    """A tablespace of the shared PostgreSQL in folder/pg, owned by the
    server's user: the one that owns its data folder ('postgres' when
    scripts/stack ran as root, else the user who ran it). Afterwards every
    database in it is dropped (kept-on-failure ones too: the folder is about
    to vanish), then the tablespace."""
    loc = os.path.join(folder, "pg")
    os.mkdir(loc, 0o700)
    name = f"onsale_full_{os.getpid()}_{int(time.time() * 1000) % 10**8}"
    conn = psycopg2.connect(pg_dsn("postgres"))
    conn.autocommit = True
    try:
        with conn.cursor() as c:
            c.execute("SELECT current_setting('data_directory')")
            data = c.fetchone()[0]
            owner = as_root(["stat", "-c", "%u:%g", data])
            assert owner.returncode == 0, owner.stdout
            owner = owner.stdout.strip()
            if owner != f"{os.geteuid()}:{os.getegid()}":
                p = as_root(["chown", owner, loc])
                assert p.returncode == 0, p.stdout
            c.execute(f"CREATE TABLESPACE \"{name}\" LOCATION '{loc}'")
        try:
            yield name
        finally:
            with conn.cursor() as c:
                c.execute("SELECT datname FROM pg_database WHERE dattablespace = "
                          "(SELECT oid FROM pg_tablespace WHERE spcname = %s)", (name,))
                for (db,) in c.fetchall():
                    c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
                c.execute(f'DROP TABLESPACE IF EXISTS "{name}"')
    finally:
        conn.close()


# ---- joins and checks ---------------------------------------------------------------
def join(st, user, ev, key):
    """A join with an Idempotency-Key. Returns (status, headers, body, seconds)."""
    t0 = time.time()
    s, h, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, token=st.token(user),
                      headers={"Idempotency-Key": key})
    return s, h, b, time.time() - t0


def error_code(body):
    return body.get("error", {}).get("code") if isinstance(body, dict) else None


def applied(st, ev):
    return st.sql("SELECT count(*) FROM intents WHERE event_id = %s", (ev,))[0][0]


def audit(st, ev, accepted):
    """onsalectl audit over the event, with the 202s seen (user -> (id, t_ms,
    position)) as a simulator log. Returns (exit code, output)."""
    log = os.path.join(st.logdir, "accepted.tsv")
    with open(log, "w") as f:
        for user, (iid, t_ms, pos) in sorted(accepted.items()):
            f.write(f"{user}\t{iid}\t{t_ms}\tqueued\t{pos}\n")
    p = subprocess.run([os.path.join(BIN, "onsalectl"), "audit", "--event", str(ev), "--sim-log", log],
                       env=st.env(audit_wait_s=20), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=120)
    return p.returncode, p.stdout


def assert_exactly_once(st, ev, accepted):
    """Every 202'd intent is applied, once: one intents row per fan (each fan
    joined once), the 202's intent among them, nothing else."""
    rows = st.sql("SELECT user_id, count(*), min(intent_seq) FROM intents WHERE event_id = %s "
                  "GROUP BY user_id", (ev,))
    twice = [(u, n) for u, n, _ in rows if n != 1]
    assert not twice, f"applied more than once: {twice}"
    seqs = {u: s for u, _, s in rows}
    missing = [u for u, (iid, _, _) in accepted.items() if seqs.get(u) != int(iid[:16], 16)]
    assert not missing, f"202'd but not applied (or applied as another intent): {missing}"



# ---- the tests ------------------------------------------------------------------------
def test_kafka_volume_full_refuses_joins_and_loses_nothing():
    # the broker's config and logs, kept like the harness's process logs
    state = os.path.join(ROOT, ".state", "test-logs", f"kafka-full-{os.getpid()}-{int(time.time())}")
    os.makedirs(state)
    t0 = time.time()
    marks = []

    def mark(what):
        marks.append(f"{what} {time.time() - t0:.1f}s")
    try:
        with tmpfs(64) as vol, private_kafka(vol, state) as kafka, \
                Stack(partitions=2, brokers=kafka.brokers) as st:
            mark("broker up")
            st.start_worker()
            # produce timeout 2 s (default 5 s): the joins in flight when the
            # broker stops are answered sooner; request timeout 5 s (default
            # 30 s): it bounds how long the monitor's watermark query to the
            # dying broker can hang (seen: over 30 s)
            st.start_ingress(kafka_produce_timeout_ms=2000, kafka_request_timeout_ms=5000,
                             kafka_fail_fast_ms=2000)
            ev = st.create_event(sections=[("A", 10, 20, 5000)])
            accepted, refused, answers, user = {}, {}, [], 0

            def one(u, key=None):
                s, h, b, dt = join(st, u, ev, key or f"full-{u}")
                answers.append((u, s, error_code(b), round(dt, 2)))
                if s == 202:
                    accepted[u] = (b["intent_id"], int(time.time() * 1000), b["position"])
                    refused.pop(u, None)
                else:
                    assert s == 503 and int(h.get("retry-after", 0)) >= 1, (s, h, b)
                    refused[u] = error_code(b)
                return s, b

            # 1. space: joins accepted and applied
            for user in range(1, 21):
                assert one(user)[0] == 202, answers[-1]
            st.wait_for(lambda: applied(st, ev) == 20, 30, "the first 20 intents applied")

            # 2. the volume full. The broker's next write that needs a new
            # block fails (ENOSPC): the KRaft metadata log's (a no-op record
            # every 500 ms) is a fatal fault that terminates the process; a
            # partition append marks the only log dir offline, and a broker
            # with no log dir left halts. Joins go on meanwhile.
            mark("20 applied")
            filler = fill(vol)
            t_full = time.time()
            while kafka.pid() and time.time() - t_full < 40:
                user += 1
                one(user)
                time.sleep(0.1)
            assert not kafka.pid(), "the broker still runs 40 s after its volume filled" + kafka.log_tail()
            down_after = time.time() - t_full
            logtext = kafka.log_text()
            assert "No space left on device" in logtext or "KafkaStorageException" in logtext, \
                kafka.log_tail()
            why = [l for l in logtext.splitlines() if " ERROR " in l or " FATAL " in l][:3]
            codes_while_full = sorted(set(refused.values()))
            # Joins while the log is full: 202 only when the log took the
            # record; a record in flight when the broker died is 503
            # outcome_unknown; anything else 503 queue_unavailable.
            assert {c for c in refused.values()} <= {"queue_unavailable", "outcome_unknown"}, answers

            # With the broker gone: /readyz says so, and once the monitor has
            # found Kafka unreachable for kafka.fail_fast_ms (2 s) joins are
            # refused at once, nothing queued (without it each waits for
            # librdkafka's timeout: 2 s, up to 10 s seen, with a 2 s produce
            # timeout).
            # (the monitor's round may first go stale, blocked in a watermark
            # query to the dying broker: /readyz is 503 before it says why)
            st.wait_for(lambda: st.http("GET", "/readyz")[2].get("kafka") is False, 45,
                        "/readyz reporting kafka down")
            assert st.http("GET", "/readyz")[0] == 503
            mark(f"readyz kafka down {time.time() - t_full - down_after:.1f}s after the broker")
            time.sleep(2.5)
            for _ in range(5):
                user += 1
                s, b = one(user)
                assert s == 503 and error_code(b) == "queue_unavailable", answers[-1]
                assert answers[-1][3] < 1.5, f"refused after {answers[-1][3]} s, not at once: {answers[-1]}"

            # 3. space returns; a broker that stopped is restarted (its data
            # on the volume is intact: it recovers the log and goes on)
            mark("refused")
            os.remove(filler)
            kafka.start()
            mark("broker restarted")
            st.wait_for(lambda: st.http("GET", "/readyz")[0] == 200, 30, "/readyz after the restart")
            # the refused joins, retried with their keys: queue_unavailable
            # queued nothing, so the retry is accepted; an unknown outcome is
            # found (202 with its id) or, until it is settled, 503 again
            for u, code in sorted(refused.items()):
                s, _ = one(u, f"full-{u}")
                assert s == 202 or (code == "outcome_unknown" and answers[-1][2] == code), answers[-1]
            for _ in range(10):  # and new fans
                user += 1
                assert one(user)[0] == 202, answers[-1]
            st.wait_for(lambda: applied(st, ev) >= len(accepted), 60, "every 202'd intent applied")
            assert all(p.alive() for p in st.procs), "a process died"

            mark("all applied")
            assert_exactly_once(st, ev, accepted)
            rc, out = audit(st, ev, accepted)
            assert rc == 0 and "audit passed" in out, out
            mark("audited")
            print("\nthe broker stopped with:\n  " + "\n  ".join(why))
            print(f"{marks}\nbroker down {down_after:.1f} s after the fill; "
                  f"{len(accepted)} accepted, refused while full: {codes_while_full}; "
                  f"answers: {answers[20:]}")
    finally:
        print(f"{marks}, cleaned up {time.time() - t0:.1f}s (broker logs: {state}/logs)")


def test_postgres_volume_full_worker_retries_and_drains():
    with tmpfs(32) as vol, pg_tablespace(vol) as ts, Stack(partitions=2, tablespace=ts) as st:
        mport = free_port()
        w = st.start_worker(metrics_port=mport)
        st.start_ingress()
        ev = st.create_event(sections=[("A", 10, 20, 5000)])
        assert st.sql("SELECT spcname FROM pg_tablespace t JOIN pg_database d "
                      "ON d.dattablespace = t.oid WHERE datname = current_database()") == [(ts,)]
        # the worker owns its partitions before the volume fills
        st.wait_for(lambda: st.sql("SELECT count(*) FROM partition_owner WHERE owner IS NOT NULL")[0][0]
                    == 2, 30, "partitions claimed", proc=w)
        accepted = {}

        def one(u):
            s, _, b, _ = join(st, u, ev, f"pgfull-{u}")
            assert s == 202, (u, s, b)  # Kafka is fine: joins are accepted
            accepted[u] = (b["intent_id"], int(time.time() * 1000), b["position"])
            return b["intent_id"]

        # 1. the tablespace's volume full: the batches need new blocks (the
        # first intents rows, seats' new versions) and fail with "could not
        # extend file ... No space left on device"; the worker rolls back,
        # reloads and retries with a backoff (up to 5 s), alive throughout
        filler = fill(os.path.join(vol))
        fails0 = metric(mport, "onsale_worker_batch_failures_total")
        ids = [one(u) for u in range(1, 31)]
        st.wait_for(lambda: metric(mport, "onsale_worker_batch_failures_total") >= fails0 + 3, 30,
                    "batches failing and retried", proc=w)
        assert applied(st, ev) == 0, "a batch committed on a full volume"
        for u, iid in list(zip(range(1, 31), ids))[::7]:  # fans stay queued
            s, _, b = st.http("GET", f"/v1/intents/{iid}", token=st.token(u))
            assert s == 200 and b["state"] == "queued", b
        ids += [one(u) for u in range(31, 41)]  # still accepting
        assert w.alive()
        assert "No space left on device" in w.output(), w.output()[-3000:]

        # 2. space returns: the next retry commits and the worker drains
        os.remove(filler)
        st.wait_for(lambda: applied(st, ev) == 40, 30, "the backlog drained", proc=w)
        for u, iid in list(zip(range(1, 41), ids))[::9]:  # the projection follows the commit
            st.wait_for(lambda: st.http("GET", f"/v1/intents/{iid}", token=st.token(u))[2].get("state")
                        == "reserved", 10, f"fan {u} reserved", proc=w)
        assert_exactly_once(st, ev, accepted)
        rc, out = audit(st, ev, accepted)
        assert rc == 0 and "audit passed" in out, out
        print(f"\nbatch failures while full: {metric(mport, 'onsale_worker_batch_failures_total') - fails0:.0f}")
