"""ha_util.py - helpers of the HA tests (tests/ha.cmake, label `ha`): they run
against the topology of `scripts/stack --ha up` (three Kafka brokers, primary +
replica, two ingress nodes behind haproxy, two workers, two payments relays,
Prometheus), which the ctest fixture `ha_stack` brings up once for all of
them. Everything here talks to that stack through its own ports, never to the
single-node stack's."""
import http.client as httpc, json, os, re, signal, ssl, subprocess, time, urllib.parse, urllib.request

import psycopg2

from harness import exchange, make_token

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STACK = os.path.join(ROOT, "scripts", "stack")
BIN = os.environ.get("ONSALE_BUILD_BIN", os.path.join(ROOT, "build", "bin"))


def stack(*args, check=True, timeout=300):
    """Runs scripts/stack --ha ARGS with the build under test."""
    env = dict(os.environ, ONSALE_BUILD=os.path.dirname(BIN))
    return subprocess.run([STACK, "--ha", *args], env=env, check=check, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def load_env():
    """The stack's settings (scripts/stack --ha env) as a dict."""
    out = subprocess.run(["bash", "-c", f'eval "$({STACK} --ha env)" && env -0'], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    return dict(kv.split("=", 1) for kv in out.split("\0") if kv.startswith("ONSALE_"))


ENV = load_env()
STATE = ENV["ONSALE_STATE"]
RUN = os.path.join(STATE, "run")
LOGS = os.path.join(STATE, "logs")
INGRESS_PORTS = [int(p) for p in ENV["ONSALE_HA_INGRESS_PORTS"].split()]
INTERNAL_PORT = int(ENV["ONSALE_HA_INTERNAL_PORT"])
PUBLIC_PORT = int(ENV["ONSALE_HA_PUBLIC_PORT"])
PROM = f"http://127.0.0.1:{ENV['ONSALE_HA_PROMETHEUS_PORT']}"
CA = ENV["ONSALE_HA_CA"]  # the stack's CA: haproxy's, the brokers', PostgreSQL's, Redis' certificates
# kcat as the Onsale processes reach the brokers (kafka.security_protocol)
KCAT = ["kcat"] + (["-X", "security.protocol=ssl", "-X", f"ssl.ca.location={ENV['ONSALE_KAFKA_SSL_CA_LOCATION']}"]
                   if ENV.get("ONSALE_KAFKA_SECURITY_PROTOCOL") == "ssl" else [])


def pid(name):
    try:
        with open(os.path.join(RUN, f"{name}.pid")) as f:
            p = int(f.read().strip())
        os.kill(p, 0)
        return p
    except (OSError, ValueError):
        return None


def kill(name, sig=signal.SIGKILL):
    """Kills one process of the stack (kafka-2, ingress-1, worker-1, ...)."""
    p = pid(name)
    assert p, f"{name} is not running"
    os.kill(p, sig)
    for _ in range(200):
        try:
            os.kill(p, 0)
        except OSError:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{name} (pid {p}) did not die")


def pg(dsn=None):
    c = psycopg2.connect(dsn or ENV["ONSALE_PG_DSN"])
    c.autocommit = True
    return c


def sql(query, params=None, dsn=None):
    with pg(dsn) as c, c.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall() if cur.description else []


def token(user_id, role="fan"):
    return make_token(user_id, role, ENV["ONSALE_AUTH_SECRET"])


def http(method, path, body=None, tok=None, headers=None, port=INTERNAL_PORT, tls=False, timeout=30):
    """One request to haproxy's plain internal port (default), an ingress
    node's own port, or (tls=True) the public https port. Returns (status,
    headers, parsed body)."""
    if tls:
        ctx = ssl.create_default_context(cafile=CA)
        conn = httpc.HTTPSConnection("localhost", PUBLIC_PORT, timeout=timeout, context=ctx)
    else:
        conn = httpc.HTTPConnection("127.0.0.1", port, timeout=timeout)
    return exchange(conn, method, path, body, tok, headers)


def metric(port, name, labels=None):
    """Sum of a metric's samples on one process's /metrics (matching labels)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"^([a-z_:]+)(\{[^}]*\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        if labels and not all(f'{k}="{v}"' in (m.group(2) or "") for k, v in labels.items()):
            continue
        total += float(m.group(3))
        seen = True
    return total if seen else None


def prom_query(q):
    url = f"{PROM}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    return json.load(urllib.request.urlopen(url, timeout=5))["data"]["result"]


def wait_for(pred, timeout=60, what="condition", interval=0.2):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def create_event(seats=200, hold_seconds=900, onsale_in_s=None, price=5000, name="HA test"):
    """An event of `seats` seats in one section, on sale now (or in onsale_in_s)."""
    per_row = 50
    rows = max(1, seats // per_row)
    (venue,), = sql("INSERT INTO venues (owner_id, name, city, country, capacity) "
                    "VALUES (1000, 'HA Hall', 'Testville', 'NL', %s) RETURNING venue_id", (rows * per_row,))
    onsale = "now()" if onsale_in_s is None else f"now() + interval '{int(onsale_in_s)} seconds'"
    (ev,), = sql("INSERT INTO events (venue_id, seller_id, name, category, starts_at, onsale_at, "
                 f"max_per_user, hold_seconds, currency, status, seats_total) VALUES (%s, 1000, %s, "
                 f"'concert', now() + interval '30 days', {onsale}, 8, %s, 'USD', 'on_sale', %s) "
                 "RETURNING event_id", (venue, name, hold_seconds, rows * per_row))
    (sid,), = sql("INSERT INTO sections (venue_id, name, position, rows, seats_per_row) "
                  "VALUES (%s, 'A', 0, %s, %s) RETURNING section_id", (venue, rows, per_row))
    sql("INSERT INTO price_tiers VALUES (%s, %s, %s)", (ev, sid, price))
    sql("INSERT INTO seats (event_id, seat_no, section_id, row_no, seat_in_row, price_cents) "
        "SELECT %s, g, %s, g / %s + 1, g %% %s + 1, %s FROM generate_series(0, %s - 1) g",
        (ev, sid, per_row, per_row, price, rows * per_row))
    return ev


def sim(fans=300, seats=150, extra=(), timeout=240, background=False):
    """Runs onsale-sim against haproxy's internal port with the audit on;
    returns (exit code, output) or, with background=True, the Popen."""
    env = dict(os.environ, **ENV)
    argv = [os.path.join(BIN, "onsale-sim"), "--ingress", f"http://127.0.0.1:{INTERNAL_PORT}",
            "--fans", str(fans), "--seats", str(seats), "--connections", "16",
            "--tail_seconds", "3", "--gateway_url", f"http://127.0.0.1:{ENV['ONSALE_HA_GATEWAY_PORT']}",
            *extra]
    if background:
        return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
    p = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout


def join(user, ev, qty=1, port=INTERNAL_PORT, key=None, retry_s=30):
    """A join; retried like a client does on 503 (Retry-After) and on a
    connection that failed, for at most retry_s."""
    h = {"Idempotency-Key": key} if key else None
    end = time.time() + retry_s
    while True:
        try:
            r = http("POST", f"/v1/events/{ev}/intents", {"quantity": qty}, tok=token(user), headers=h,
                     port=port)
            if r[0] != 503 or time.time() > end:
                return r
        except OSError:
            if time.time() > end:
                raise
        time.sleep(0.5)


def wait_intent(user, intent_id, states=("reserved", "rejected", "sold_out"), timeout=60, port=INTERNAL_PORT):
    """Polls an intent until its state is one of states; returns the body."""
    def done():
        s, _, b = http("GET", f"/v1/intents/{intent_id}", tok=token(user), port=port)
        return b if s == 200 and b.get("state") in states else None
    return wait_for(done, timeout, f"intent {intent_id} in {states}")


def checkout(user, rid, key, pm="pm_card_visa", port=INTERNAL_PORT):
    return http("POST", f"/v1/reservations/{rid}/checkout", {"payment_method": pm}, tok=token(user),
                headers={"Idempotency-Key": key}, port=port)


def wait_order(user, order_id, timeout=60):
    def done():
        s, _, b = http("GET", f"/v1/orders/{order_id}", tok=token(user))
        return b if s == 200 and b.get("state") in ("paid", "failed", "refunded") else None
    return wait_for(done, timeout, f"order {order_id} settled")


def log_lines(pattern):
    """Every line of the stack's logs (.state/ha/logs/*.log) containing pattern,
    as (file name, line)."""
    out = []
    for name in sorted(os.listdir(LOGS)):
        if not name.endswith(".log"):
            continue
        with open(os.path.join(LOGS, name), errors="replace") as f:
            out += [(name, line.rstrip("\n")) for line in f if pattern in line]
    return out


def kafka_leaders():
    """{partition: leader node id} of the intents topic."""
    out = subprocess.run([*KCAT, "-b", ENV["ONSALE_KAFKA_BROKERS"], "-L", "-t", ENV["ONSALE_KAFKA_TOPIC"]],
                         stdout=subprocess.PIPE, text=True, timeout=30).stdout
    return {int(m.group(1)): int(m.group(2))
            for m in re.finditer(r"partition (\d+), leader (-?\d+)", out)}


def kafka_fully_replicated():
    out = subprocess.run([*KCAT, "-b", ENV["ONSALE_KAFKA_BROKERS"], "-L", "-t", ENV["ONSALE_KAFKA_TOPIC"]],
                         stdout=subprocess.PIPE, text=True, timeout=30).stdout
    isrs = re.findall(r"isrs: ([0-9,]+)", out)
    return len(isrs) == int(ENV["ONSALE_HA_PARTITIONS"]) and all(len(i.split(",")) == 3 for i in isrs)


def owners():
    """{partition: owner} from partition_owner (the fencing table)."""
    return dict(sql("SELECT partition, owner FROM partition_owner"))
