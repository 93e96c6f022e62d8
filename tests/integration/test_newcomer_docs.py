"""What a newcomer meets following the docs literally (bench/NOTES.md "A
newcomer follows the docs, seventeenth round"): the operator's commands of
docs/scaling.md "Operating the local stack by hand" run as written (the
dashboard's token, the watch, one more worker and ingress node, growing
the topics), and the answers to a newcomer's mistakes that the docs and
schemas/openapi.yaml promise."""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time

import yaml
from confluent_kafka.admin import AdminClient

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, Stack, exchange, free_port  # noqa: E402

ADMIN = 1


def sh_blocks(path, heading):
    """The ```sh blocks (list items' ones too, their indent removed) between
    the line `heading` of path and the next heading of its level."""
    text = open(os.path.join(ROOT, path)).read()
    rest = text[text.index(heading + "\n") + len(heading) + 1:]
    level = heading.split(" ")[0] + " "
    end = re.search(r"^" + re.escape(level), rest, re.M)
    rest = rest[:end.start()] if end else rest
    blocks = []
    for m in re.finditer(r"^( *)```sh\n(.*?)^\1```\n", rest, re.M | re.S):
        indent = len(m.group(1))
        blocks.append("".join(line[indent:] for line in m.group(2).splitlines(True)))
    return blocks


def checkout_like(st, tmp_path):
    """A folder laid out like a checkout on `scripts/stack up`: the stack's
    keys in .state/secrets.env, its logs folder, build/bin and .deps."""
    import harness
    (tmp_path / ".state" / "logs").mkdir(parents=True)
    (tmp_path / ".state" / "secrets.env").write_text(
        f"ONSALE_AUTH_SECRET={st.secret}\nONSALE_IDS_SECRET={st.ids_secret}\n"
        f"ONSALE_TICKETS_SECRET={st.tickets_secret}\n")
    (tmp_path / "build").mkdir()
    os.symlink(harness.BIN, tmp_path / "build" / "bin")
    os.symlink(os.path.join(ROOT, ".deps"), tmp_path / ".deps")


def stack_env(st):
    """The private stack's connection settings, where the local stack's
    come from the binaries' defaults (the same broker, PostgreSQL and Redis
    ports); no keys and no ports: the blocks give those."""
    return {k: v for k, v in st.env().items()
            if not (k.endswith("_SECRET") or k.endswith("_PORT") and k != "ONSALE_REDIS_PORT")}


def stopped(pid):
    """pid has exited: gone, or a zombie (a process the block started is
    bash's orphan, reaped by init, and an init that does not reap, as in
    a container without one, leaves a zombie, which kill(pid, 0) still
    finds)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def run(block, cwd, env, timeout=60):
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=cwd, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:]
    return r.stdout


def test_the_operators_commands_of_scaling_md_run_as_written(tmp_path):
    blocks = sh_blocks("docs/scaling.md", "## Operating the local stack by hand")
    assert len(blocks) == 3, blocks
    token_block, watch_block, nodes_block = blocks
    grow = [b for b in sh_blocks("docs/scaling.md", "### Growing the topics")
            if "TopicCommand" in b]
    assert len(grow) == 1, grow
    with Stack(partitions=2) as st:
        metrics = free_port()
        st.start_worker(metrics_port=metrics, worker_id="worker-1")
        api = st.start_ingress()
        ev = st.create_event(sections=(("A", 1, 4, 1000),))
        checkout_like(st, tmp_path)
        env = stack_env(st)

        # The dashboard's token and the watch, the addresses the only change.
        block = (token_block + watch_block).replace("http://127.0.0.1:8080", api) \
            .replace("127.0.0.1:9101", f"127.0.0.1:{metrics}")
        assert block.count(api) == 2, block
        out = run(block, tmp_path, env)
        link, rest = out.split("\n", 1)
        queues, lag = rest[:rest.index("onsale_worker_")], rest[rest.index("onsale_worker_"):]
        assert link.startswith(api + "/ops/#token="), out
        token = link.split("#token=", 1)[1]
        assert st.http("GET", "/v1/admin/queues", token=token)[0] == 200
        assert len(json.loads(queues)["partitions"]) == 2, queues
        assert "onsale_worker_lag{partition=" in lag and "onsale_worker_partition_owned{" in lag, lag

        # One more worker and ingress node: the partitions split between two
        # owners, and the new node answers.
        port2 = free_port()
        block = nodes_block.replace("--metrics.port 9103", f"--metrics.port {free_port()}") \
            .replace("--http.port 8081", f"--http.port {port2}")
        assert block != nodes_block and "8081" not in block
        pids = [int(p) for p in run(block + "jobs -p\n", tmp_path, env).split()]
        assert len(pids) == 2, pids
        try:
            def owners():
                s, _, b = st.http("GET", "/v1/admin/queues", token=token)
                o = {p["owner"] for p in b["partitions"]} if s == 200 else set()
                return o if len(o) == 2 else None
            st.wait_for(owners, 40, "the partitions split between two workers")
            def ready():
                try:
                    return exchange(http.client.HTTPConnection("127.0.0.1", port2, timeout=5),
                                    "GET", "/readyz")[0] == 200
                except OSError:
                    return False
            st.wait_for(ready, 20, "the second ingress node ready")
            s, _, b = exchange(http.client.HTTPConnection("127.0.0.1", port2, timeout=5),
                               "GET", f"/v1/events/{ev}")
            assert s == 200 and b["event_id"] == ev, b
        finally:
            for p in pids:
                os.kill(p, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while not all(stopped(p) for p in pids) and time.monotonic() < deadline:
                time.sleep(0.05)
            hung = [p for p in pids if not stopped(p)]
            for p in hung:
                os.kill(p, signal.SIGKILL)  # never left running past the test
            logs = [(tmp_path / ".state" / "logs" / f).read_text()
                    for f in ("worker-2.log", "ingress-2.log")]
        assert not hung, ("still running 20 s after SIGTERM", hung, logs)
        assert "stopping: leaving the consumer group" in logs[0], logs[0][-2000:]
        for log in logs:  # not the Stack's: no one else reads their sanitizer reports
            assert "Sanitizer" not in log, log[-3000:]

        # Growing both topics, the stack's topic names and 4 the changes.
        # The broker too: the private stack's, which is the local stack's
        # only while that one keeps its default port (ONSALE_KAFKA_PORT).
        block = grow[0].replace("for t in intents intents.control;",
                                f"for t in {st.topic} {st.control_topic};") \
            .replace("--partitions 8", "--partitions 4") \
            .replace("--bootstrap-server 127.0.0.1:19092", f"--bootstrap-server {st.brokers}")
        assert st.topic in block and "--partitions 4" in block and st.brokers in block, block
        run(block, tmp_path, env, timeout=120)
        md = AdminClient({"bootstrap.servers": st.brokers}).list_topics(timeout=10)
        assert [len(md.topics[t].partitions) for t in (st.topic, st.control_topic)] == [4, 4]


def test_a_newcomers_mistakes_get_the_answers_the_docs_promise():
    """The answers a newcomer's first requests met that the docs did not
    say: a venue's lat/lon came back with 17 digits (52.090000000000003),
    a role grant named fan among the roles to pick and then refused it,
    a tier's price and count and a checkout's payment_method had limits
    other than the spec's, an empty scan asked for ticket_id, and an
    edit's answer was spaced unlike every other."""
    spec = yaml.safe_load(open(os.path.join(ROOT, "schemas/openapi.yaml")))
    schemas = spec["components"]["schemas"]
    price_max = schemas["TierCreate"]["properties"]["price_cents"]["maximum"]
    tiers_max = schemas["EventCreate"]["properties"]["tiers"]["maxItems"]
    assert schemas["EventUpdate"]["properties"]["tiers"]["maxItems"] == tiers_max
    with Stack(partitions=1) as st:
        st.start_worker()
        st.start_ingress()
        admin = st.token(ADMIN, "admin")
        s, _, v = st.http("POST", "/v1/venues", {
            "name": "Hall", "city": "Utrecht", "country": "NL", "lat": 52.09, "lon": 5.12,
            "sections": [{"name": f"S{i}", "rows": 1, "seats_per_row": 1}
                         for i in range(tiers_max)]}, admin)
        assert s == 201, v

        def event(tiers):
            return st.http("POST", "/v1/events", {
                "venue_id": v["venue_id"], "name": "Show", "category": "concert",
                "starts_at": "2099-01-01T20:00:00Z", "tiers": tiers}, admin)

        s, _, b = event([{"section": "S0", "price_cents": price_max + 1}])
        assert s == 400 and b["error"]["code"] == "invalid_field" \
            and b["error"]["field"] == "price_cents" and str(price_max) in b["error"]["message"], b
        # A venue holds as many sections as an event has tiers at most: one
        # tier more is refused for its count before its repeated section.
        s, _, b = event([{"section": f"S{i % tiers_max}", "price_cents": 1}
                         for i in range(tiers_max + 1)])
        assert s == 400 and b["error"]["field"] == "tiers" \
            and f"1 to {tiers_max} objects" in b["error"]["message"], b
        assert st.sql("SELECT count(*) FROM events") == [(0,)]
        s, _, e = event([{"section": "S0", "price_cents": price_max}])
        assert s == 201, e

        c = http.client.HTTPConnection("127.0.0.1", st.ingress_port, timeout=10)
        c.request("GET", f"/v1/events/{e['event_id']}")
        text = c.getresponse().read().decode()
        assert json.loads(text)["venue"]["lat"] == 52.09, text
        # An edit's answer is written like every other (it was PostgreSQL's
        # json_build_object text, {"event_id" : 1, ...}).
        c = http.client.HTTPConnection("127.0.0.1", st.ingress_port, timeout=10)
        c.request("PATCH", f"/v1/events/{e['event_id']}", json.dumps({"name": "Renamed"}),
                  {"Authorization": "Bearer " + admin, "Content-Type": "application/json"})
        resp = c.getresponse()
        edited = resp.read().decode()
        assert resp.status == 200 and edited.startswith('{"event_id":') \
            and '" : ' not in edited, edited
        assert json.loads(edited)["name"] == "Renamed" and json.loads(edited)["tiers"] == [
            {"section": "S0", "price_cents": price_max}], edited
        assert '"lat":52.09,' in text and '"lon":5.12' in text, text

        # A checkout's payment_method: at most 64 printable bytes, as the
        # spec now says (it said 128), refused before anything is queued.
        pm = schemas["CheckoutRequest"]["properties"]["payment_method"]
        fan = st.token(77, "fan")
        _, j = st.join_ok(e["event_id"], fan)
        res = st.wait_intent(j["status_url"], fan, "reserved")["reservation"]["reservation_id"]
        for bad in ("p" * (pm["maxLength"] + 1), "pm card"):
            assert not re.match(pm["pattern"], bad) or len(bad) > pm["maxLength"]
            s, _, b = st.http("POST", f"/v1/reservations/{res}/checkout", {"payment_method": bad},
                              fan, headers={"Idempotency-Key": "pay-" + bad[:8]})
            assert s == 400 and b["error"]["field"] == "payment_method", b
        assert st.sql("SELECT count(*) FROM orders") == [(0,)]
        s, _, b = st.http("POST", f"/v1/reservations/{res}/checkout",
                          {"payment_method": "p" * pm["maxLength"]}, fan,
                          headers={"Idempotency-Key": "pay-longest"})
        assert s == 202, b

        # A door app's empty scan is told of the form it sends (the QR's
        # text), not the other form's ticket_id.
        s, _, b = st.http("POST", "/v1/scans", {}, st.token(78, "scanner"))
        assert s == 400 and b["error"]["code"] == "missing_field" \
            and b["error"]["field"] == "scan" and "ONS1:" in b["error"]["message"], b

        s, _, u = st.http("POST", "/v1/users", {"email": "sam@example.com",
                                                "password": "a good password",
                                                "display_name": "Sam"})
        assert s == 201, u
        s, _, b = st.http("POST", f"/v1/admin/users/{u['user_id']}/roles",
                          {"role": "superuser"}, admin)
        assert s == 400 and b["error"]["field"] == "role", b
        assert b["error"]["message"] == "Field 'role' must be one of seller, scanner, admin.", b
        s, _, b = st.http("POST", "/v1/sessions", {"email": "sam@example.com",
                                                   "password": "a good password",
                                                   "role": "superuser"})
        assert s == 400 and "fan, seller, scanner, admin" in b["error"]["message"], b
        assert st.sql("SELECT roles FROM users WHERE user_id = %s", (u["user_id"],)) == [(["fan"],)]
