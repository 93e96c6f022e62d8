"""test_faults_mid_sale.py - a flash sale (onsale-sim through a real ingress,
worker, payments and gateway simulator) with faults injected while it runs:
the worker, the payments relay and the ingress killed with SIGKILL and
started again, Redis restarted, PostgreSQL paused for a few seconds.
Afterwards the invariant audit must report 0 violations, every intent a fan
was told was accepted (202) must reach an answer the fan can read by
polling, and no fan may hold two places (the simulator joins each fan once,
retrying with the same Idempotency-Key).

Redis is a private redis-server (AOF everysec, as the stack runs it) so it
can be restarted without disturbing other tests; PostgreSQL is the shared
one reached through a TCP relay that can be paused (every byte held both
ways, new connections left waiting: what a stopped server looks like to
its clients)."""
import json
import os
import subprocess
import time

import pytest

from fault_util import PausableRelay, PrivateRedis
from harness import BIN, MIN_SESSION_MS, PG_HOST, PG_PORT, Stack, free_port

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-worker"), os.X_OK),
                                reason="onsale-worker is not built")

TERMINAL = {"purchased", "rejected", "sold_out", "expired", "released", "cancelled"}


def run_sim_bg(st, base, tmp, fans, seats, gw_port, **env):
    out = {k: os.path.join(tmp, f"sim.{k}") for k in ("json", "log", "out")}
    argv = [os.path.join(BIN, "onsale-sim"), "--ingress", base, "--fans", str(fans),
            "--seats", str(seats), "--burst-ms", "12000", "--burst-fraction", "0.8",
            "--tail-seconds", "6", "--seed", "7", "--abandon-prob", "0.3",
            "--checkout-prob", "0.5", "--max-quantity", "3",
            "--gateway-url", f"http://127.0.0.1:{gw_port}", "--gateway-decline-rate", "0.1",
            "--request-timeout-ms", "8000", "--max-retries", "200",
            "--json", out["json"], "--log", out["log"], "--audit-wait-s", "120",
            "--max-seconds", "300", "--progress", "false"]
    f = open(out["out"], "w")
    p = subprocess.Popen(argv, env=st.env(**env), stdout=f, stderr=subprocess.STDOUT, text=True)
    return p, out


def sim_log_intents(path):
    """fan -> (intent_id, last state seen) from the sim log."""
    last = {}
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                continue
            fan, iid, _, state, _ = line.rstrip("\n").split("\t")
            last[int(fan)] = (iid, state)
    return last


def test_flash_sale_with_faults_mid_sale_passes_the_audit(tmp_path):
    with PrivateRedis() as rd, Stack(partitions=2) as st:
        relay = PausableRelay(PG_HOST, PG_PORT)
        try:
            via = dict(redis_port=rd.port,
                       pg_dsn=f"host=127.0.0.1 port={relay.port} dbname={st.db} user=postgres "
                              "connect_timeout=5")
            gw_port = st.start_payments_path(**via)
            pay = st.procs[-1]
            worker = st.start_worker(kafka_session_timeout_ms=MIN_SESSION_MS, **via)
            ing_port = free_port()
            base = st.start_ingress(http_port=ing_port, **via)
            ingress = st.procs[-1]
            sim, out = run_sim_bg(st, base, str(tmp_path), 1500, 400, gw_port,
                                  redis_port=rd.port)

            def restart(proc, start):
                proc.kill()
                proc.wait()
                start()
                return st.procs[-1]

            time.sleep(3)
            worker = restart(worker, lambda: st.start_worker(kafka_session_timeout_ms=MIN_SESSION_MS,
                                                             **via))
            time.sleep(2)
            pay = restart(pay, lambda: st.start("payments", "onsale-payments",
                                                **{**via, **pay_opts(st, gw_port)}))
            time.sleep(2)
            ingress = restart(ingress, lambda: st.start_ingress(http_port=ing_port, **via))
            time.sleep(2)
            rd.restart()
            time.sleep(2)
            relay.pause()
            time.sleep(4)
            relay.resume()
            time.sleep(2)
            rd.restart(kill=True)
            sim.wait(400)
            text = open(out["out"]).read()
            assert sim.returncode == 0, text[-6000:]
            with open(out["json"]) as f:
                r = json.load(f)
            assert r["audit"]["passed"] and r["audit"]["violations"] == 0, r["audit"]
            assert r["outcomes"]["queued"] == 0, r["outcomes"]
            ev = r["event_id"]

            # The simulator joins each fan once (retries carry the same
            # Idempotency-Key): one intent per fan, never a second place.
            twice = st.sql("SELECT user_id, count(*) FROM intents WHERE event_id = %s "
                           "GROUP BY user_id HAVING count(*) > 1", (ev,))
            assert twice == [], twice

            # Every accepted intent answers its fan's poll, and its answer is
            # the one PostgreSQL holds.
            seen = sim_log_intents(out["log"])
            assert len(seen) >= r["joins"]["accepted"] > 0
            rows = dict(st.sql("SELECT user_id, state FROM intents WHERE event_id = %s", (ev,)))
            for fan, (iid, _) in seen.items():
                s, _, b = st.http("GET", f"/v1/intents/{iid}", token=st.token(fan, "fan"))
                assert s == 200, (fan, s, b)
                assert b["state"] == rows[fan], (fan, b, rows[fan])
            for p in list(st.procs):
                code = p.stop()
                assert "Sanitizer" not in p.output(), p.output()[-3000:]
        finally:
            relay.close()


def pay_opts(st, gw_port):
    return {"payments_gateway_url": f"http://127.0.0.1:{gw_port}",
            "payments_key_prefix": f"{st.topic}-", "metrics_port": free_port()}
