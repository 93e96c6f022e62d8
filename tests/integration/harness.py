"""harness.py - isolated environments for integration tests against the real
stack (scripts/stack up): each Stack gets its own PostgreSQL database (cloned
from a migrated template), its own Kafka topic, its own Redis key prefix and
free HTTP ports, and starts the real Onsale binaries (from $ONSALE_BUILD_BIN)
against them. Everything it starts is stopped when the `with` block ends.

    from harness import Stack
    with Stack(partitions=2) as st:
        w = st.start_worker()
        base = st.start_ingress()
        ev = st.create_event(sections=[("A", 2, 10, 5000)])
        status, headers, body = st.http("POST", f"/v1/events/{ev}/intents",
                                        {"quantity": 2}, token=st.token(1, "fan"))
"""
import base64, contextlib, glob, hashlib, hmac, http.client, itertools, json, os, signal, socket
import subprocess, threading, time

import psycopg2
import redis as redis_lib
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("ONSALE_BUILD_BIN", os.path.join(ROOT, "build", "bin"))
PG_HOST = "127.0.0.1"
PG_PORT = int(os.environ.get("ONSALE_PG_PORT", "15432"))
REDIS_HOST = os.environ.get("ONSALE_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("ONSALE_REDIS_PORT", "16379"))
BROKERS = os.environ.get("ONSALE_KAFKA_BROKERS", "127.0.0.1:19092")
# One key per purpose, none of them a development default: the binaries run
# as in production (dev_mode off), which refuses defaults and shared keys.
SECRET = "integration-test-secret-0123456789"  # auth.secret: JWTs
IDS_SECRET = "integration-test-ids-secret-987654"  # ids.secret: public ids
TICKETS_SECRET = "integration-test-tickets-secret-13579"  # tickets.secret: gate codes
GATEWAY_API_KEY = "sk_test_integration_harness"  # gateway.api_key = payments.api_key
_counter = itertools.count()
# The broker's minimum Kafka session (group.min.session.timeout.ms): a test
# that kills a worker starts it with this, so that its partitions move 6 s
# after the kill, not after the worker's default 10 s.
MIN_SESSION_MS = 6000


def pg_dsn(db):
    return f"host={PG_HOST} port={PG_PORT} dbname={db} user=postgres connect_timeout=5"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def template_db():
    """Returns the name of a database with every migration applied, creating
    it once per migration set (its name carries a hash of the files)."""
    files = sorted(glob.glob(os.path.join(ROOT, "schemas", "migrations", "[0-9]*.sql")))
    h = hashlib.sha256(b"".join(open(f, "rb").read() for f in files)).hexdigest()[:12]
    name = f"onsale_tpl_{h}"
    conn = psycopg2.connect(pg_dsn("postgres"))
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT pg_advisory_lock(4242)")
    try:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if not cur.fetchone():
            cur.execute(f'CREATE DATABASE "{name}"')
            t = psycopg2.connect(pg_dsn(name))
            with t, t.cursor() as tc:
                for f in files:
                    tc.execute(open(f).read())
            t.close()
    finally:
        cur.execute("SELECT pg_advisory_unlock(4242)")
        conn.close()
    return name


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def make_token(user_id, role, secret=SECRET, ttl=3600, exp=None):
    """An HS256 JWT as onsalectl mints it (tests also craft bad ones)."""
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": str(user_id), "role": role, "exp": exp if exp is not None else int(time.time()) + ttl}
    payload = b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(sig)}"


def iso(t):
    """Unix time t as an API timestamp (UTC, milliseconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


def create_event_via_api(st, seller, seats, name, **extra):
    """A venue of one section A (one row of seats) and an event in it at
    1000 cents a seat, 30 days ahead, both made through the API by seller
    (a token); extra: more event fields. Returns the event id."""
    s, _, v = st.http("POST", "/v1/venues",
                      {"name": "Hall", "city": "Utrecht", "country": "NL",
                       "sections": [{"name": "A", "rows": 1, "seats_per_row": seats}]}, seller)
    assert s == 201, v
    body = {"venue_id": v["venue_id"], "name": name, "category": "concert",
            "starts_at": iso(time.time() + 30 * 86400),
            "tiers": [{"section": "A", "price_cents": 1000}], **extra}
    s, _, e = st.http("POST", "/v1/events", body, seller)
    assert s == 201, e
    return e["event_id"]


def exchange(conn, method, path, body=None, token=None, headers=None, raw=None):
    """One request on conn (closed after): body (dict) is sent as JSON
    unless raw (bytes) is given, token as a bearer token. Returns (status,
    lower-cased headers, parsed JSON or text)."""
    h = {}
    data = raw
    if body is not None and raw is None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    if token:
        h["Authorization"] = f"Bearer {token}"
    h.update(headers or {})
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    text = r.read().decode(errors="replace")
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    conn.close()
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = text
    return r.status, hdrs, parsed


def metric(port, name):
    """The value of metric `name` (any labels) on 127.0.0.1:port/metrics, 0.0
    when it is not there."""
    import re
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    m = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


class KeepAliveClient:
    """One keep-alive connection per thread and client, to 127.0.0.1:port:
    many threads' requests without a connection each."""

    def __init__(self, port):
        self.port = port
        self.local = threading.local()

    def request(self, method, path, body=None, token=None, headers=None):
        """Returns (status, parsed JSON or None); a broken connection is
        dropped (the next request opens another) and the error raised."""
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        h = {"Authorization": f"Bearer {token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            text = r.read()
        except (http.client.HTTPException, OSError):
            conn.close()
            self.local.conn = None
            raise
        return r.status, json.loads(text) if text else None


class Proc:
    """A started Onsale binary. Its combined output goes to log_path."""

    def __init__(self, name, argv, env, log_path):
        self.name, self.log_path = name, log_path
        self.log = open(log_path, "ab")
        self.popen = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = self.popen.pid
        self.terminated = False

    def alive(self):
        return self.popen.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout=30):
        return self.popen.wait(timeout=timeout)

    def job_stopped(self):
        """True while a thread of the process is in a job-control stop
        (SIGSTOP: state T in /proc; a ptrace stop is t)."""
        try:
            tasks = os.listdir(f"/proc/{self.pid}/task")
        except OSError:
            return False
        for tid in tasks:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "T":
                        return True
            except (OSError, IndexError):
                pass
        return False

    def terminate(self):
        """SIGTERM, once; a process a test left stopped (SIGSTOP) gets a
        SIGCONT first, and no process gets one afterwards. A SIGCONT that
        lands while the process exits can discard the SIGSTOP with which
        LeakSanitizer's exit scan stops each thread (PTRACE_ATTACH), and the
        scan then waits for that stop forever: the process hangs after its
        last log line until stop() kills it (exit -9, no report). A second
        SIGCONT with the second SIGTERM of a stop() after __exit__ did that
        (test_authz_matrix, CI)."""
        if self.alive() and not self.terminated:
            if self.job_stopped():
                self.popen.send_signal(signal.SIGCONT)
            self.popen.terminate()
            self.terminated = True

    def stop(self, timeout=20):
        """SIGTERM (terminate()), then SIGKILL after timeout. Returns the
        exit code."""
        if self.alive():
            self.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()
        return self.popen.returncode

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


def assert_clean_exit(procs):
    """Each process exited 0 (or still runs) and wrote no sanitizer report."""
    for p in procs:
        out = p.output()
        assert "Sanitizer" not in out and p.popen.returncode in (0, None), out[-3000:]


@contextlib.contextmanager
def checked_stack(**kw):
    """A Stack (same arguments) whose processes, once it has stopped them,
    must have exited 0 without a sanitizer report: a module fixture's
    check."""
    with Stack(**kw) as s:
        yield s
        procs = list(s.procs)
    assert_clean_exit(procs)


class Stack:
    def __init__(self, partitions=2, keep_db=False, brokers=None, tablespace=None):
        """brokers: another Kafka than the shared stack's (a test's private
        broker); tablespace: create the database in this PostgreSQL
        tablespace (a test's small volume)."""
        n = next(_counter)
        tag = f"{os.getpid()}_{n}_{int(time.time()) % 100000}"
        self.partitions = partitions
        self.db = f"t_{tag}"
        self.topic = f"t-{tag}"
        # The control lane (docs/pipeline.md "Two lanes"): the binaries'
        # default name for it, co-partitioned with the intents topic.
        self.control_topic = f"{self.topic}.control"
        self.group = f"g-{tag}"
        self.prefix = f"t{tag}:"
        self.secret = SECRET
        self.ids_secret = IDS_SECRET
        self.tickets_secret = TICKETS_SECRET
        self.gateway_api_key = GATEWAY_API_KEY
        self.keep_db = keep_db
        self.brokers = brokers or BROKERS
        self.tablespace = tablespace
        self.procs = []
        self.ingress_port = None
        self.logdir = os.path.join(ROOT, ".state", "test-logs", tag)

    # ---- lifecycle ---------------------------------------------------------
    def __enter__(self):
        os.makedirs(self.logdir, exist_ok=True)
        tpl = template_db()
        conn = psycopg2.connect(pg_dsn("postgres"))
        conn.autocommit = True
        with conn.cursor() as c:
            c.execute(f'CREATE DATABASE "{self.db}" TEMPLATE "{tpl}"'
                      + (f' TABLESPACE "{self.tablespace}"' if self.tablespace else ""))
        conn.close()
        self.pg = psycopg2.connect(pg_dsn(self.db))
        self.pg.autocommit = True
        self.sql("INSERT INTO partition_owner (partition) SELECT generate_series(0, %s - 1)",
                 (self.partitions,))
        admin = AdminClient({"bootstrap.servers": self.brokers})
        fut = admin.create_topics([NewTopic(t, self.partitions, 1)
                                   for t in (self.topic, self.control_topic)])
        for t in (self.topic, self.control_topic):
            fut[t].result(30)
        self.redis = redis_lib.Redis(host=REDIS_HOST, port=REDIS_PORT, decode_responses=True)
        self._producer = None
        return self

    def __exit__(self, *exc):
        # All at once: one by one, each process's shutdown (a consumer
        # leaving its group, an ingress draining) added up to 10-20 s a test.
        for p in self.procs:
            p.terminate()
        for p in reversed(self.procs):
            p.stop()
        if self._producer:
            self._producer.flush(10)
        # One UNLINK per thousand keys: a key a round trip took seconds for
        # a test that left thousands (a simulated sale's fans).
        keys = list(self.redis.scan_iter(match=self.prefix + "*", count=10000))
        for i in range(0, len(keys), 1000):
            self.redis.unlink(*keys[i:i + 1000])
        # The client held while its futures are awaited: a temporary one
        # was destroyed as the call returned, which failed every delete at
        # once (_DESTROY: no topic was ever deleted) and about one in 25
        # times lost the failure with the purged queue, so the future never
        # completed and the exit waited the full 30 s. Bounded at ~5 s for a
        # broker a test left dead.
        try:
            admin = AdminClient({"bootstrap.servers": self.brokers})
            fut = admin.delete_topics([self.topic, self.control_topic], operation_timeout=5,
                                      request_timeout=5)
            for f in fut.values():
                f.result(10)
        except Exception:
            pass
        self.pg.close()
        if not self.keep_db and exc[0] is None:
            conn = psycopg2.connect(pg_dsn("postgres"))
            conn.autocommit = True
            with conn.cursor() as c:
                c.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
            conn.close()
        return False

    # ---- processes -----------------------------------------------------------
    def env(self, **overrides):
        """The ONSALE_* environment pointing a binary at this Stack."""
        e = dict(os.environ)
        e.update({
            "ONSALE_KAFKA_BROKERS": self.brokers,
            "ONSALE_KAFKA_TOPIC": self.topic,
            # Always this Stack's own lane: scripts/lib.sh exports the shared
            # stack's control topic into the test run's environment.
            "ONSALE_KAFKA_CONTROL_TOPIC": self.control_topic,
            "ONSALE_KAFKA_GROUP": self.group,
            "ONSALE_KAFKA_PARTITIONS": str(self.partitions),
            "ONSALE_PG_DSN": pg_dsn(self.db),
            "ONSALE_REDIS_HOST": REDIS_HOST,
            "ONSALE_REDIS_PORT": str(REDIS_PORT),
            "ONSALE_REDIS_PREFIX": self.prefix,
            "ONSALE_AUTH_SECRET": self.secret,
            "ONSALE_IDS_SECRET": self.ids_secret,
            "ONSALE_TICKETS_SECRET": self.tickets_secret,
            "ONSALE_GATEWAY_API_KEY": self.gateway_api_key,
            "ONSALE_PAYMENTS_API_KEY": self.gateway_api_key,
            "ONSALE_DEV_MODE": "false",
        })
        for k, v in overrides.items():
            e["ONSALE_" + k.upper()] = str(v)
        return e

    def discard(self, proc):
        """Kills proc and forgets it. For a node under libfaketime: its
        shutdown's absolute waits, taken on the faked wall clock and slept on
        the real one, last the offset, so a stop waits out its timeout
        (20 s) before it kills."""
        proc.kill()
        proc.wait()
        self.procs.remove(proc)

    def stop_clean(self):
        """Stops every process, one by one; each must exit 0 without a
        sanitizer report."""
        for p in self.procs:
            p.stop()
        assert_clean_exit(self.procs)

    def start(self, name, binary, args=(), **overrides):
        path = os.path.join(BIN, binary)
        if not os.access(path, os.X_OK):
            raise RuntimeError(f"{path} is not built")
        p = Proc(name, [path, *args], self.env(**overrides),
                 os.path.join(self.logdir, f"{name}-{len(self.procs)}.log"))
        self.procs.append(p)
        return p

    def start_worker(self, name="worker", **overrides):
        overrides.setdefault("metrics_port", free_port())
        overrides.setdefault("worker_id", f"{name}-{len(self.procs)}")
        return self.start(name, "onsale-worker", **overrides)

    def start_ingress(self, **overrides):
        """Starts ingress on a free port and waits for /healthz. Returns the
        base URL; st.http() talks to the latest one."""
        port = free_port()
        overrides.setdefault("http_port", port)
        p = self.start("ingress", "onsale-ingress", **overrides)
        self.ingress_port = int(overrides["http_port"])
        self.wait_for(lambda: self._healthy(), 20, f"ingress /healthz (log {p.log_path})",
                      proc=p)
        return f"http://127.0.0.1:{self.ingress_port}"

    def start_gateway(self, **overrides):
        """Starts the gateway simulator (overrides: its options) and waits
        for its /healthz. Returns its port."""
        gw_port = free_port()
        gw = self.start("gateway", "onsale-gateway", gateway_port=gw_port, **overrides)

        def gw_up():
            try:
                c = http.client.HTTPConnection("127.0.0.1", gw_port, timeout=2)
                c.request("GET", "/healthz")
                return c.getresponse().status == 200
            except OSError:
                return False

        self.wait_for(gw_up, 20, "gateway /healthz", proc=gw)
        return gw_port

    def start_payments_path(self, **pay_overrides):
        """Starts the gateway simulator and onsale-payments pointed at it, so
        checkouts complete. Returns the gateway's port."""
        gw_port = self.start_gateway()
        o = {"payments_gateway_url": f"http://127.0.0.1:{gw_port}",
             "payments_key_prefix": f"{self.topic}-", "metrics_port": free_port()}
        o.update(pay_overrides)
        self.start("payments", "onsale-payments", **o)
        return gw_port

    def _healthy(self):
        try:
            return self.http("GET", "/healthz")[0] == 200
        except OSError:
            return False

    # ---- clients ---------------------------------------------------------------
    def start_pipeline(self, sections):
        """Starts a worker and ingress and creates an event of sections (see
        create_event). Returns the event id."""
        self.start_worker()
        self.start_ingress()
        return self.create_event(sections=sections)

    def token(self, user_id, role="fan", **kw):
        return make_token(user_id, role, self.secret, **kw)

    def account(self, user_id):
        """Makes user_id a signed-up account (a users row with an email, no
        password) if it is not one, as a transfer's recipient must be
        (tickets.transfer_needs_account); keeps the sign-up sequence past it."""
        self.sql("INSERT INTO users (user_id, email) VALUES (%s, %s) ON CONFLICT (user_id) "
                 "DO UPDATE SET email = coalesce(users.email, excluded.email)",
                 (user_id, f"user{user_id}@accounts.test"))
        self.sql("SELECT setval('users_user_id_seq', greatest((SELECT last_value FROM "
                 "users_user_id_seq), (SELECT max(user_id) FROM users)))")
        return user_id

    def http(self, method, path, body=None, token=None, headers=None, raw=None, timeout=30):
        """One request to the current ingress. body (dict) is sent as JSON
        unless raw (bytes) is given. Returns (status, headers, parsed JSON or
        text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.ingress_port, timeout=timeout)
        return exchange(conn, method, path, body, token, headers, raw)

    def join(self, ev, token, quantity=1):
        """The fan (token) joins event ev's queue. Returns (status, headers,
        body) like http()."""
        return self.http("POST", f"/v1/events/{ev}/intents", {"quantity": quantity}, token)

    def join_ok(self, ev, token, quantity=1):
        """join() that must be accepted (202); returns (headers, body)."""
        s, h, b = self.join(ev, token, quantity)
        assert s == 202, b
        return h, b

    def wait_intent(self, status_url, token, state, timeout=30):
        """Polls the intent at status_url until its state is `state`; returns
        the intent."""
        return self.wait_for(lambda: (lambda p: p if p.get("state") == state else None)(
            self.http("GET", status_url, token=token)[2]), timeout, f"{status_url} {state}")

    def scanner_account(self, user_id):
        """Gives user_id an account holding the scanner role (minted tokens
        may name ids without one; only such accounts can be assigned)."""
        self.sql("INSERT INTO users (user_id, roles) VALUES (%s, '{fan,scanner}') "
                 "ON CONFLICT (user_id) DO UPDATE SET roles = users.roles || '{scanner}' "
                 "WHERE NOT 'scanner' = ANY (users.roles)", (user_id,))

    def assign_scanner(self, user_id, event_id, port=None):
        """Assigns scanner user_id, as the venue's owner does, to the venue of
        event_id (docs/tickets.md "Who may scan where"), through the ingress
        on port (default: the current one). Returns the venue id."""
        self.scanner_account(user_id)
        (venue, owner), = self.sql("SELECT v.venue_id, v.owner_id FROM events e "
                                   "JOIN venues v USING (venue_id) WHERE e.event_id = %s",
                                   (event_id,))
        conn = http.client.HTTPConnection("127.0.0.1", port or self.ingress_port, timeout=30)
        s, _, b = exchange(conn, "PUT", f"/v1/venues/{venue}/scanners/{user_id}", None,
                           self.token(owner, "seller"))
        assert s == 200 and b["user_id"] == user_id, b
        return venue

    def sql(self, query, params=None):
        """Runs one statement on this Stack's database; returns rows (or [])."""
        with self.pg.cursor() as c:
            c.execute(query, params)
            return c.fetchall() if c.description else []

    def key(self, k):
        return self.prefix + k

    def _kafka_producer(self):
        """The idempotent, murmur2-keyed producer ingress uses, made once."""
        if self._producer is None:
            self._producer = Producer({"bootstrap.servers": self.brokers, "enable.idempotence": True,
                                       "acks": "all", "partitioner": "murmur2_random",
                                       "linger.ms": 2})
        return self._producer

    def produce(self, event_id, record, control=False):
        """Produces one queue/msg.h record keyed by event_id, as ingress does,
        to the intents topic (any type: the worker applies every type on
        either lane) or with control=True to the control topic, where ingress
        sends everything but joins. Returns (partition, offset)."""
        producer = self._kafka_producer()
        out = {}

        def dr(err, msg):
            out["err"], out["p"], out["o"] = err, msg.partition(), msg.offset()

        rec = dict(record)
        rec.setdefault("v", 1)
        rec.setdefault("event_id", event_id)
        rec.setdefault("sent_ms", int(time.time() * 1000))
        producer.produce(self.control_topic if control else self.topic, key=str(event_id),
                         value=json.dumps(rec), on_delivery=dr)
        producer.flush(30)
        if out.get("err"):
            raise RuntimeError(out["err"])
        return out["p"], out["o"]

    def produce_many(self, event_id, records, control=False):
        """Produces records in order (one flush at the end), to the control
        topic with control=True. Returns [(partition, offset)] in the same
        order."""
        producer = self._kafka_producer()
        results = [None] * len(records)

        def cb(i):
            def dr(err, msg):
                if err:
                    raise RuntimeError(err)
                results[i] = (msg.partition(), msg.offset())
            return dr

        now = int(time.time() * 1000)
        for i, r in enumerate(records):
            rec = dict(r)
            rec.setdefault("v", 1)
            rec.setdefault("event_id", event_id)
            rec.setdefault("sent_ms", now)
            while True:
                try:
                    producer.produce(self.control_topic if control else self.topic,
                                     key=str(event_id), value=json.dumps(rec), on_delivery=cb(i))
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        producer.flush(60)
        return results

    def create_event(self, sections=(("A", 2, 10, 5000),), name="Test event", hold_seconds=900,
                     max_per_user=8, status="on_sale", currency="USD", seller_id=1000,
                     onsale_in_s=None):
        """Creates venue, sections, event, tiers and seats directly in SQL
        (set-based, in allocation order), as POST /v1/events does. sections:
        (name, rows, seats_per_row, price_cents). Returns event_id."""
        cap = sum(r * s for _, r, s, _ in sections)
        (venue,), = self.sql("INSERT INTO venues (owner_id, name, city, country, capacity) "
                             "VALUES (%s, 'Test Hall', 'Testville', 'NL', %s) RETURNING venue_id",
                             (seller_id, cap))
        onsale = "now()" if onsale_in_s is None else f"now() + interval '{int(onsale_in_s)} seconds'"
        (ev,), = self.sql("INSERT INTO events (venue_id, seller_id, name, category, starts_at, "
                          f"onsale_at, max_per_user, hold_seconds, currency, status, seats_total) "
                          f"VALUES (%s, %s, %s, 'concert', now() + interval '30 days', {onsale}, "
                          "%s, %s, %s, %s, %s) RETURNING event_id",
                          (venue, seller_id, name, max_per_user, hold_seconds, currency, status, cap))
        base = 0
        for pos, (sname, rows, per_row, price) in enumerate(sections):
            (sid,), = self.sql("INSERT INTO sections (venue_id, name, position, rows, seats_per_row) "
                               "VALUES (%s, %s, %s, %s, %s) RETURNING section_id",
                               (venue, sname, pos, rows, per_row))
            self.sql("INSERT INTO price_tiers VALUES (%s, %s, %s)", (ev, sid, price))
            self.sql("INSERT INTO seats (event_id, seat_no, section_id, row_no, seat_in_row, price_cents) "
                     "SELECT %s, %s + g, %s, g / %s + 1, g %% %s + 1, %s "
                     "FROM generate_series(0, %s - 1) g",
                     (ev, base, sid, per_row, per_row, price, rows * per_row))
            base += rows * per_row
        return ev

    def wait_for(self, pred, timeout=30, what="condition", proc=None, interval=0.05):
        """Polls pred() until truthy (returned) or raises after timeout."""
        end = time.time() + timeout
        while time.time() < end:
            v = pred()
            if v:
                return v
            if proc is not None and not proc.alive():
                raise RuntimeError(f"{proc.name} exited: {proc.output()[-3000:]}")
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}")

    def wait_rejected_and_published(self, ev, answers, timeout=60):
        """Waits until every join of answers ((status, body) pairs of 202s to
        joins of event ev, the only joins of ev) is rejected in PostgreSQL and
        its result is in Redis (the worker publishes it, and deletes the
        active key, right after its commit)."""
        self.wait_for(lambda: self.sql("SELECT count(*) FROM intents WHERE event_id = %s AND "
                                       "state = 'rejected'", (ev,))[0][0] == len(answers),
                      timeout, "every join rejected")
        self.wait_for(lambda: all(self.redis.exists(self.key(f"r:{int(b['intent_id'][:16], 16)}"))
                                  for _, b in answers), 30, "results published")
