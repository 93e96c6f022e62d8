"""test_ingress_small_fixes.py - three small ingress defects of issue 14
item 10, each against the real binaries:

  * cancelling a `paying` intent or reservation answers 409
    payment_in_progress (it used to answer 202 while the worker ignored it)
    and produces nothing;
  * a catalog cursor whose instant is outside years 0001..9999 answers 400
    invalid_cursor (it used to reach PostgreSQL and answer 503);
  * SIGTERM under join load: the job threads stop before the Kafka producer
    is freed, so the (ASan) ingress exits cleanly instead of using freed
    memory.
"""
import base64
import http.client
import json
import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, Stack  # noqa: E402

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-worker"), os.X_OK),
                                reason="onsale-worker is not built")


def clean_exit(proc):
    code = proc.stop()
    out = proc.output()
    assert "Sanitizer" not in out, out[-4000:]
    assert code == 0, (code, out[-4000:])


def produced(st):
    """onsale_ingress_produced_total of the current ingress."""
    s, _, text = st.http("GET", "/metrics")
    for line in text.splitlines():
        if line.startswith("onsale_ingress_produced_total"):
            return float(line.split()[-1])
    return 0.0


def test_cancel_while_paying_is_refused():
    with Stack(partitions=1) as st:
        ev = st.start_pipeline([("A", 1, 4, 5000)])
        fan = st.token(5, "fan")
        _, b = st.join_ok(ev, fan)
        p = st.wait_intent(b["status_url"], fan, "reserved")
        rid = p["reservation"]["reservation_id"]
        # No onsale-payments runs: the checkout leaves the hold paying.
        s, _, o = st.http("POST", f"/v1/reservations/{rid}/checkout",
                          {"payment_method": "pm_card_visa"}, token=fan,
                          headers={"Idempotency-Key": "pay-1"})
        assert s == 202, o
        st.wait_for(lambda: st.http("GET", b["status_url"], token=fan)[2]["state"] == "paying",
                    30, "paying")
        before = produced(st)
        for path in (b["status_url"], f"/v1/reservations/{rid}"):
            s, _, e = st.http("DELETE", path, token=fan)
            assert s == 409, (path, s, e)
            assert e["error"]["code"] == "payment_in_progress", e
            assert e["error"]["message"]
        assert produced(st) == before  # nothing was queued
        time.sleep(0.5)
        assert st.http("GET", b["status_url"], token=fan)[2]["state"] == "paying"
        assert st.sql("SELECT state FROM reservations")[0][0] == "paying"
        for p in list(st.procs):
            clean_exit(p)


def cursor(text):
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_cursor_out_of_range_is_400():
    with Stack(partitions=1) as st:
        ing = st.start_ingress()
        del ing
        for plain in ("9223372036854775807:1", "-9223372036854775807:1",
                      "253402300800000000:1", "-62135596800000001:1"):
            s, _, b = st.http("GET", "/v1/events?cursor=" + cursor(plain))
            assert s == 400, (plain, s, b)
            assert b["error"]["code"] == "invalid_cursor" and b["error"]["field"] == "cursor", b
        # The extremes of the range are still cursors.
        for plain in ("253402300799999999:1", "-62135596800000000:1"):
            s, _, b = st.http("GET", "/v1/events?cursor=" + cursor(plain))
            assert s == 200, (plain, s, b)
        proc = st.procs[-1]
        clean_exit(proc)
        assert "catalog:" not in proc.output()  # no PostgreSQL error was logged


def hammer(port, ev, secret_token, stop, counts, base_user):
    """Joins as fast as one keep-alive connection allows, as distinct users."""
    conn = None
    user = base_user
    while not stop.is_set():
        user += 1
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", f"/v1/events/{ev}/intents", body=json.dumps({"quantity": 1}),
                         headers={"Authorization": f"Bearer {secret_token(user)}",
                                  "Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            counts[r.status] = counts.get(r.status, 0) + 1
        except (http.client.HTTPException, OSError):
            counts["io"] = counts.get("io", 0) + 1
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.01)


@pytest.mark.parametrize("round_", range(3))
def test_sigterm_under_join_load_exits_cleanly(round_):
    with Stack(partitions=2) as st:
        # Joins held on their job threads (debug.join_delay_ms) and queued
        # behind them when the signal arrives: they send after the producer
        # was shut down, the case that used freed memory.
        base = st.start_ingress(pool_threads=2, debug_join_delay_ms=300)
        port = int(base.rsplit(":", 1)[1])
        ev = st.create_event(sections=[("A", 10, 10, 5000)])
        tokens = {}

        def tok(u):
            if u not in tokens:
                tokens[u] = st.token(u, "fan")
            return tokens[u]
        stop = threading.Event()
        counts = {}
        threads = [threading.Thread(target=hammer, args=(port, ev, tok, stop, counts, i * 1000))
                   for i in range(32)]
        for t in threads:
            t.start()
        st.wait_for(lambda: counts.get(202, 0) >= 10, 30, "joins accepted")
        proc = st.procs[-1]
        proc.popen.terminate()
        try:
            code = proc.popen.wait(timeout=30)
        finally:
            stop.set()
            for t in threads:
                t.join()
        out = proc.output()
        assert "Sanitizer" not in out, out[-4000:]
        assert code == 0, (code, out[-4000:])
