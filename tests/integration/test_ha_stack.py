"""The production topology on one box (scripts/stack --ha up): TLS and HSTS
at haproxy, the fan page over https, both ingress nodes serving, Kafka
replicated (RF 3, min ISR 2), every process scraped by Prometheus with the
rules loaded, reads from the replica while it is fresh and from the primary
when it lags or is down."""
import os, subprocess, time

import pytest

from ha_util import (ENV, KCAT, ROOT, INGRESS_PORTS, create_event, http, metric, prom_query, sql,
                     stack, token, wait_for)


def test_https_fan_page_hsts_and_redirect():
    status, h, body = http("GET", "/", tls=True)
    assert status == 200 and "text/html" in h["content-type"]
    assert h["strict-transport-security"].startswith("max-age=")
    status, h, _ = http("GET", "/q/1?x=1", port=int(ENV["ONSALE_HA_PLAIN_PORT"]))
    assert status == 301
    assert h["location"] == f"https://127.0.0.1:{ENV['ONSALE_HA_PUBLIC_PORT']}/q/1?x=1"


def test_both_ingress_nodes_serve_behind_haproxy():
    before = [metric(p, "onsale_ingress_requests_total", {"route": "readyz"}) or 0 for p in INGRESS_PORTS]
    for _ in range(10):
        assert http("GET", "/readyz")[0] == 200
    # haproxy's own health checks hit /readyz too: only "both grew" is asserted
    after = [metric(p, "onsale_ingress_requests_total", {"route": "readyz"}) or 0 for p in INGRESS_PORTS]
    assert all(a > b for a, b in zip(after, before))


def test_topic_replicated_three_ways_min_isr_two():
    out = subprocess.run([*KCAT, "-b", ENV["ONSALE_KAFKA_BROKERS"], "-L", "-t", ENV["ONSALE_KAFKA_TOPIC"]],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    assert f'with {ENV["ONSALE_HA_PARTITIONS"]} partitions' in out
    assert out.count("replicas: ") == int(ENV["ONSALE_HA_PARTITIONS"])
    for line in out.splitlines():
        if "replicas: " in line:
            replicas, isrs = line.split("replicas: ")[1].split(", isrs: ")
            assert len(replicas.split(",")) == 3 and len(isrs.split(",")) >= 2, line
    # min.insync.replicas=2 on the topic, as Kafka's own tool reports it
    libs = os.path.join(ROOT, ".deps", "kafka-3.9.1", "libs", "*")
    desc = subprocess.run(["java", "-Xmx128m", "-cp", libs, "org.apache.kafka.tools.TopicCommand",
                           "--bootstrap-server", ENV["ONSALE_KAFKA_BROKERS"],
                           "--command-config", ENV["ONSALE_HA_KAFKA_CLIENT_CONFIG"], "--describe",
                           "--topic", ENV["ONSALE_KAFKA_TOPIC"]],
                          check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    assert "min.insync.replicas=2" in desc, desc


def test_prometheus_scrapes_everything_with_rules():
    import json, urllib.request
    prom = f"http://127.0.0.1:{ENV['ONSALE_HA_PROMETHEUS_PORT']}"

    def targets():
        t = json.load(urllib.request.urlopen(f"{prom}/api/v1/targets"))["data"]["activeTargets"]
        return [x for x in t if x["labels"]["job"] != "worker-spare"]

    def all_up():
        t = targets()  # 2 ingress, 2 workers, 2 payments, gateway, haproxy, prometheus
        return len(t) >= 9 and all(x["health"] == "up" for x in t)
    wait_for(all_up, 60, "every target up")
    jobs = {x["labels"]["job"] for x in targets()}
    assert {"ingress", "worker", "payments", "gateway", "haproxy", "prometheus"} <= jobs
    def owned():
        r = prom_query("onsale:partitions_owned:count")
        return r and r[0]["value"][1] == ENV["ONSALE_HA_PARTITIONS"]
    wait_for(owned, 60, "the recording rule counting every partition owned")
    rules = json.load(urllib.request.urlopen(f"{prom}/api/v1/rules"))
    alerts = {r["name"] for g in rules["data"]["groups"] for r in g["rules"] if r["type"] == "alerting"}
    assert {"OnsaleConsumerLagGrowing", "OnsaleDrainStalled", "OnsalePaymentBreakerOpen",
            "OnsaleIngress5xxRate", "OnsaleJoinP99OverBudget", "OnsaleReplicaLag",
            "OnsalePartitionWithoutOwner"} <= alerts


def test_ops_history_comes_from_prometheus():
    """GET /v1/admin/history (the ops dashboard's history panel) answers
    what Prometheus holds for the same rule and window."""
    import json, urllib.parse, urllib.request
    adm = token(1, "admin")
    assert http("GET", "/v1/admin/history", tok=token(1, "fan"))[0] == 403
    for bad in ("minutes=0", "minutes=abc", "minutes=5&minutes=6", "minutes=99999", "span=5"):
        s, _, b = http("GET", f"/v1/admin/history?{bad}", tok=adm)
        assert s == 400 and b["error"]["code"] in ("invalid_field", "unknown_field"), (bad, b)

    def history():
        s, _, b = http("GET", "/v1/admin/history?minutes=5", tok=adm)
        assert s == 200, b
        return b if len(b["series"]["lag"]) >= 3 else None
    b = wait_for(history, 60, "three samples of the lag rule")
    assert b["minutes"] == 5 and b["step_s"] == 2 and b["end"] - b["start"] == 300
    assert set(b["series"]) == {"lag", "drain_rate", "requests_rate", "error_ratio",
                                "join_p99_seconds", "replica_lag_seconds"}
    prom = f"http://127.0.0.1:{ENV['ONSALE_HA_PROMETHEUS_PORT']}"
    q = urllib.parse.urlencode({"query": "onsale:worker_lag:sum", "start": b["start"],
                                "end": b["end"], "step": b["step_s"]})
    direct = json.load(urllib.request.urlopen(f"{prom}/api/v1/query_range?{q}"))
    values = direct["data"]["result"][0]["values"]
    assert [t for t, _ in b["series"]["lag"]] == [t for t, _ in values]
    assert [v for _, v in b["series"]["lag"]] == [float(v) for _, v in values]
    # the dashboard draws it (headless Chromium through haproxy)
    from ha_util import INTERNAL_PORT
    from test_web import Browser
    br = Browser()
    try:
        br("open", name="ops", width=1280, height=900)
        br("goto", page="ops", url=f"http://127.0.0.1:{INTERNAL_PORT}/ops/#token={adm}")
        # (30 minutes at a 15 s step: a young stack has a sample or two)
        n = br("wait", page="ops", timeout=45000, js="""
            const c = document.getElementById('history'), g = document.getElementById('h-lag');
            return c.dataset.state === 'live' && !c.classList.contains('hidden') && g &&
                   Number(g.dataset.samples) >= 1 && g.querySelector('text') &&
                   document.querySelectorAll('#history-charts svg').length""")
        assert n == 6, n
    finally:
        br.close()


def reads(port, target):
    return metric(port, "onsale_ingress_reads_total", {"target": target}) or 0


def view_read(port, ev):
    """GET /v1/events/{ev}: a view built (replica-eligible reads) on first use."""
    status, _, body = http("GET", f"/v1/events/{ev}", port=port)
    assert status == 200, body


def test_reads_follow_replica_freshness():
    port = INGRESS_PORTS[0]
    replica = ENV["ONSALE_PG_READ_DSN"]
    evs = [create_event(seats=50, name=f"replica read {i}") for i in range(4)]
    wait_for(lambda: sql("SELECT count(*) FROM events WHERE event_id = ANY(%s)", (evs,), dsn=replica)[0][0] == 4,
             20, "the events on the replica")
    # fresh replica: the view is built from it
    r0 = reads(port, "replica")
    view_read(port, evs[0])
    assert reads(port, "replica") > r0

    # lagging replica (replay paused while the primary writes): the primary answers
    sql("SELECT pg_wal_replay_pause()", dsn=replica)
    try:
        create_event(seats=50, name="written while the replica lags")
        time.sleep(float(ENV["ONSALE_HA_REPLICA_MAX_LAG_MS"]) / 1000 + 0.5)
        sql("SELECT 1")
        create_event(seats=50, name="received, not replayed")
        wait_for(lambda: (metric(port, "onsale_ingress_replica_lag_seconds") or 0) >
                 float(ENV["ONSALE_HA_REPLICA_MAX_LAG_MS"]) / 1000 or (view_read(port, evs[3]), False)[1],
                 20, "the lag seen by the read path")
        p0, r1 = reads(port, "primary"), reads(port, "replica")
        view_read(port, evs[1])
        assert reads(port, "primary") > p0 and reads(port, "replica") == r1
    finally:
        sql("SELECT pg_wal_replay_resume()", dsn=replica)

    # replica down: reads still answer, from the primary
    stack("stop", "pg-replica")
    try:
        p1 = reads(port, "primary")
        view_read(port, evs[2])
        assert reads(port, "primary") > p1
    finally:
        stack("start", "pg-replica")
    # back and fresh: the replica again
    ev = create_event(seats=50, name="after the replica's restart")
    r2 = reads(port, "replica")
    wait_for(lambda: (http("GET", f"/v1/events/{ev}?x={time.time()}", port=port),
                      reads(port, "replica") > r2)[1], 30, "the restarted replica serving reads")
