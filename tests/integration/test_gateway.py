"""test_gateway.py - the payment gateway simulator (admin/gateway) as a client
sees it: the real onsale-gateway binary on a free port, spoken to over
HTTP/1.1 with http.client, so closed connections and timeouts are visible
exactly as a payment worker would see them. No other service is needed.

Each test uses fresh Idempotency-Keys and order ids, and resets the fault
knobs, so tests can share one gateway; tests that need other options start
their own.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("ONSALE_BUILD_BIN", os.path.join(ROOT, "build", "bin"))
GATEWAY = os.path.join(BIN, "onsale-gateway")
API_KEY = "sk_test_integration"
NO_FAULTS = {"latency_ms": 0, "latency_jitter_ms": 0, "decline_rate": 0, "error_rate": 0,
             "hang_rate": 0, "hang_after_charge": True, "lost_response_rate": 0}
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def uid(prefix):
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


class Gateway:
    """One onsale-gateway process; stop() asserts a clean exit."""

    def __init__(self, tmp_path, **options):
        self.port = free_port()
        self.log_path = os.path.join(str(tmp_path), f"gateway-{self.port}.log")
        env = dict(os.environ)
        env["ONSALE_GATEWAY_PORT"] = str(self.port)
        env["ONSALE_GATEWAY_API_KEY"] = API_KEY
        for k, v in options.items():
            env["ONSALE_GATEWAY_" + k.upper()] = str(v)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([GATEWAY], env=env, stdout=self.log, stderr=self.log)
        deadline = time.time() + 10
        while True:
            try:
                if self.call("GET", "/healthz", auth=None)[0] == 200:
                    break
            except OSError:
                pass
            assert self.proc.poll() is None, self.logs()
            assert time.time() < deadline, "gateway did not come up"
            time.sleep(0.05)

    def logs(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=20)
        self.log.close()
        text = self.logs()
        assert rc == 0, text
        for mark in SANITIZER_MARKS:
            assert mark not in text, text

    def call(self, method, path, body=None, key=None, auth=API_KEY, ctype="application/json",
             timeout=5.0, raw=None, headers=None):
        """Returns (status, headers with lower-case names, parsed JSON or text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            h = dict(headers or {})
            if auth is not None:
                h["Authorization"] = f"Bearer {auth}"
            if key is not None:
                h["Idempotency-Key"] = key
            data = raw
            if data is None and body is not None:
                data = json.dumps(body).encode()
            if data is not None and ctype is not None:
                h["Content-Type"] = ctype
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            payload = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            if hdrs.get("content-type", "").startswith("application/json"):
                return resp.status, hdrs, json.loads(payload)
            return resp.status, hdrs, payload.decode(errors="replace")
        finally:
            conn.close()

    def charge(self, key, amount=1000, pm="pm_card_visa", order_id=None, **kw):
        body = {"amount_cents": amount, "currency": "USD", "payment_method": pm}
        if order_id is not None:
            body["order_id"] = order_id
        return self.call("POST", "/v1/charges", body, key=key, **kw)

    def refund(self, key, charge, amount=None, **kw):
        body = {"charge": charge}
        if amount is not None:
            body["amount_cents"] = amount
        return self.call("POST", "/v1/refunds", body, key=key, **kw)

    def faults(self, **knobs):
        status, _, body = self.call("POST", "/v1/_faults", dict(NO_FAULTS, **knobs))
        assert status == 200, body
        return body

    def ledger(self):
        status, _, body = self.call("GET", "/v1/ledger")
        assert status == 200
        return body

    def charges_for(self, order_id):
        return [c for c in self.ledger()["charges"] if c["order_id"] == order_id]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    gw = Gateway(tmp_path_factory.mktemp("gw"))
    yield gw
    gw.stop()


@pytest.fixture
def gw(shared):
    shared.faults()
    yield shared
    shared.faults()


def test_success(gw):
    order = uid("ord")
    status, hdrs, body = gw.charge(uid("k"), amount=2500, order_id=order)
    assert status == 200, body
    assert body["id"].startswith("ch_") and body["status"] == "succeeded"
    assert (body["amount_cents"], body["currency"], body["payment_method"], body["order_id"]) == \
        (2500, "USD", "pm_card_visa", order)
    assert abs(body["created"] - time.time()) < 120
    assert "idempotent-replayed" not in hdrs
    status, _, got = gw.call("GET", f"/v1/charges/{body['id']}")
    assert status == 200 and got["id"] == body["id"] and got["refunded_cents"] == 0
    assert gw.call("GET", "/v1/charges/ch_doesnotexist")[0] == 404
    assert [c["id"] for c in gw.charges_for(order)] == [body["id"]]


def test_decline_is_stored_and_replayed(gw):
    key, order = uid("k"), uid("ord")
    status, hdrs, body = gw.charge(key, pm="pm_card_chargeDeclined", order_id=order)
    assert status == 402
    assert body["error"]["code"] == "card_declined"
    assert body["error"]["decline_code"] == "generic_decline"
    status2, hdrs2, body2 = gw.charge(key, pm="pm_card_chargeDeclined", order_id=order)
    assert (status2, body2) == (402, body)
    assert hdrs2.get("idempotent-replayed") == "true"
    status, _, body = gw.charge(uid("k"), pm="pm_card_insufficientFunds", order_id=order)
    assert status == 402 and body["error"]["decline_code"] == "insufficient_funds"
    assert gw.charges_for(order) == []


def test_replay_returns_same_charge_without_second_entry(gw):
    key, order = uid("k"), uid("ord")
    s1, h1, first = gw.charge(key, order_id=order)
    # The same request with keys in another order and other spacing is the same request.
    raw = ('{ "order_id": "%s", "payment_method": "pm_card_visa", "currency": "USD",'
           ' "amount_cents": 1000 }' % order).encode()
    s2, h2, second = gw.call("POST", "/v1/charges", key=key, raw=raw)
    assert (s1, s2) == (200, 200)
    assert second == first
    assert h2.get("idempotent-replayed") == "true" and "idempotent-replayed" not in h1
    assert len(gw.charges_for(order)) == 1


def test_same_key_different_body_is_422(gw):
    key, order = uid("k"), uid("ord")
    assert gw.charge(key, amount=1000, order_id=order)[0] == 200
    status, _, body = gw.charge(key, amount=1001, order_id=order)
    assert status == 422 and body["error"]["code"] == "idempotency_mismatch"
    # A refund under a charge's key is a different request too.
    status, _, body = gw.refund(key, "ch_x")
    assert status == 422
    assert len(gw.charges_for(order)) == 1


def test_lost_response_then_retry_gets_the_charge(gw):
    key, order = uid("k"), uid("ord")
    gw.faults(lost_response_rate=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        gw.charge(key, order_id=order)
    # The charge happened although the client never heard of it.
    assert len(gw.charges_for(order)) == 1
    status, hdrs, body = gw.charge(key, order_id=order)  # replays are never faulted
    assert status == 200 and hdrs.get("idempotent-replayed") == "true"
    gw.faults()
    status, _, again = gw.charge(key, order_id=order)
    assert status == 200 and again["id"] == body["id"]
    assert [c["id"] for c in gw.charges_for(order)] == [body["id"]]


def test_5xx_burst_charges_nothing(gw):
    order = uid("ord")
    keys = [uid("k") for _ in range(20)]
    gw.faults(error_rate=1)
    statuses = {gw.charge(k, order_id=order)[0] for k in keys}
    assert statuses <= {500, 503} and statuses
    assert gw.charges_for(order) == []
    gw.faults()
    # The keys were not consumed: a retry is processed afresh, once.
    status, hdrs, body = gw.charge(keys[0], order_id=order)
    assert status == 200 and "idempotent-replayed" not in hdrs
    assert len(gw.charges_for(order)) == 1


def test_refunds(gw):
    order = uid("ord")
    _, _, ch = gw.charge(uid("k"), amount=1000, order_id=order)
    rkey = uid("rk")
    status, _, r1 = gw.refund(rkey, ch["id"], 300)
    assert status == 200, r1
    assert r1["id"].startswith("re_") and r1["charge"] == ch["id"]
    assert r1["amount_cents"] == 300 and r1["status"] == "succeeded"
    status, hdrs, again = gw.refund(rkey, ch["id"], 300)
    assert (status, again) == (200, r1) and hdrs.get("idempotent-replayed") == "true"
    status, _, r2 = gw.refund(uid("rk"), ch["id"])  # the rest
    assert status == 200 and r2["amount_cents"] == 700
    status, _, body = gw.refund(uid("rk"), ch["id"], 1)
    assert status == 400 and body["error"]["code"] == "amount_too_large"
    status, _, body = gw.refund(uid("rk"), "ch_unknown")
    assert status == 404 and body["error"]["code"] == "charge_not_found"
    _, _, small = gw.charge(uid("k"), amount=500, order_id=order)
    status, _, body = gw.refund(uid("rk"), small["id"], 600)
    assert status == 400 and body["error"]["field"] == "amount_cents"
    led = gw.ledger()
    by_id = {c["id"]: c for c in led["charges"]}
    assert by_id[ch["id"]]["refunded_cents"] == 1000
    assert by_id[small["id"]]["refunded_cents"] == 0
    assert sorted(r["id"] for r in led["refunds"] if r["charge"] == ch["id"]) == \
        sorted([r1["id"], r2["id"]])


def test_auth(gw):
    assert gw.charge(uid("k"), auth=None)[0] == 401
    status, _, body = gw.charge(uid("k"), auth="sk_wrong_key_xx")
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert gw.call("GET", "/v1/ledger", auth="nope")[0] == 401
    assert gw.call("GET", "/v1/_faults", auth=None)[0] == 401
    assert gw.call("GET", "/healthz", auth=None)[0] == 200


@pytest.mark.parametrize("body,code,field", [
    ({"amount_cents": 1000, "currency": "USD", "payment_method": "pm_card_visa", "tip": 1},
     "unknown_field", "tip"),
    ({"amount_cents": "1000", "currency": "USD", "payment_method": "pm_card_visa"},
     "invalid_type", "amount_cents"),
    ({"amount_cents": 10.0, "currency": "USD", "payment_method": "pm_card_visa"},
     "invalid_type", "amount_cents"),
    ({"amount_cents": 0, "currency": "USD", "payment_method": "pm_card_visa"},
     "invalid_value", "amount_cents"),
    ({"amount_cents": 100, "currency": "usd", "payment_method": "pm_card_visa"},
     "invalid_value", "currency"),
    ({"amount_cents": 100, "currency": "USD", "payment_method": "pm_card_nope"},
     "unknown_payment_method", "payment_method"),
    ({"amount_cents": 100, "currency": "USD"}, "missing_field", "payment_method"),
    ({"amount_cents": 100, "currency": "USD", "payment_method": "pm_card_visa", "order_id": 7},
     "invalid_type", "order_id"),
])
def test_bad_charge_fields(gw, body, code, field):
    key = uid("k")
    status, _, resp = gw.call("POST", "/v1/charges", body, key=key)
    assert status == 400, resp
    assert resp["error"]["code"] == code and resp["error"]["field"] == field
    assert resp["error"]["message"]
    # A refused request stores nothing: the key is still free.
    assert gw.charge(key)[0] == 200


def test_bad_requests(gw):
    ok = {"amount_cents": 100, "currency": "USD", "payment_method": "pm_card_visa"}
    status, _, body = gw.call("POST", "/v1/charges", raw=b"{not json", key=uid("k"))
    assert status == 400 and body["error"]["code"] == "invalid_json"
    assert gw.call("POST", "/v1/charges", raw=b"[1]", key=uid("k"))[0] == 400
    dup = b'{"amount_cents":1,"amount_cents":2,"currency":"USD","payment_method":"pm_card_visa"}'
    assert gw.call("POST", "/v1/charges", raw=dup, key=uid("k"))[0] == 400
    status, _, body = gw.call("POST", "/v1/charges", ok)
    assert status == 400 and body["error"]["code"] == "missing_idempotency_key"
    status, _, body = gw.call("POST", "/v1/charges", ok, key="k" * 256)
    assert status == 400 and body["error"]["code"] == "invalid_idempotency_key"
    assert gw.call("POST", "/v1/charges", ok, key="k" * 255)[0] == 200
    big = dict(ok, description="x" * 9000)
    status, _, body = gw.call("POST", "/v1/charges", big, key=uid("k"))
    assert status == 413 and body["error"]["code"] == "payload_too_large"
    status, _, body = gw.call("POST", "/v1/charges", ok, key=uid("k"), ctype="text/plain")
    assert status == 415 and body["error"]["code"] == "unsupported_media_type"
    assert gw.call("POST", "/v1/charges", ok, key=uid("k"), ctype=None)[0] == 415
    assert gw.call("POST", "/v1/charges", ok, key=uid("k"),
                   ctype="application/json; charset=utf-8")[0] == 200
    assert gw.call("GET", "/v1/nothing")[0] == 404
    status, headers, _ = gw.call("DELETE", "/v1/charges")
    assert status == 405 and headers.get("allow") == "POST", headers
    assert "allow" not in gw.call("GET", "/v1/nothing")[1]
    status, _, body = gw.refund(uid("rk"), 17)
    assert status == 400 and body["error"]["field"] == "charge"


def test_in_flight_key_is_409(gw):
    key, order = uid("k"), uid("ord")
    gw.faults(latency_ms=800)
    first = {}
    t = threading.Thread(target=lambda: first.update(r=gw.charge(key, order_id=order)))
    t.start()
    time.sleep(0.3)
    status, _, body = gw.charge(key, order_id=order)
    assert status == 409 and body["error"]["code"] == "idempotency_in_progress"
    t.join()
    assert first["r"][0] == 200
    status, hdrs, body = gw.charge(key, order_id=order)
    assert status == 200 and body["id"] == first["r"][2]["id"]
    assert len(gw.charges_for(order)) == 1


@pytest.mark.parametrize("latency_ms", [0, 100])
def test_concurrent_same_key_charges_once(gw, latency_ms):
    key, order = uid("k"), uid("ord")
    gw.faults(latency_ms=latency_ms)
    barrier = threading.Barrier(50)
    results = []
    lock = threading.Lock()

    def post():
        barrier.wait()
        r = gw.charge(key, order_id=order, timeout=10)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=post) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 50
    assert {s for s, _, _ in results} <= {200, 409}
    ids = {b["id"] for s, _, b in results if s == 200}
    assert len(ids) == 1
    assert [c["id"] for c in gw.charges_for(order)] == list(ids)


def test_faults_endpoint(gw):
    body = gw.faults(latency_ms=5, decline_rate=0.25)
    assert body["latency_ms"] == 5 and body["decline_rate"] == 0.25
    status, _, got = gw.call("GET", "/v1/_faults")
    assert status == 200 and got == body
    status, _, err = gw.call("POST", "/v1/_faults", {"error_rate": 2})
    assert status == 400 and err["error"]["field"] == "error_rate"
    status, _, err = gw.call("POST", "/v1/_faults", {"nope": 1})
    assert status == 400 and err["error"]["code"] == "unknown_field"
    status, _, err = gw.call("POST", "/v1/_faults", {"hang_after_charge": 1})
    assert status == 400
    assert gw.call("GET", "/v1/_faults")[2] == body  # nothing changed
    gw.faults(decline_rate=1)
    status, _, body = gw.charge(uid("k"))
    assert status == 402 and body["error"]["decline_code"] == "generic_decline"


def test_metrics(gw):
    gw.charge(uid("k"))
    status, hdrs, text = gw.call("GET", "/metrics", auth=None)
    assert status == 200 and hdrs["content-type"].startswith("text/plain")
    for name in ("onsale_gateway_charges_total", "onsale_gateway_refunds_total",
                 "onsale_gateway_faults_injected_total", "onsale_gateway_idempotent_replays_total",
                 "onsale_gateway_request_seconds_bucket", "onsale_gateway_requests_total",
                 "onsale_gateway_ledger_charges"):
        assert name in text


def test_hang_then_retry_gets_the_stored_result(tmp_path):
    gw = Gateway(tmp_path, hang_ms=1500)
    try:
        key, order = uid("k"), uid("ord")
        gw.faults(hang_rate=1)
        with pytest.raises(socket.timeout):
            gw.charge(key, order_id=order, timeout=0.5)
        status, hdrs, body = gw.charge(key, order_id=order, timeout=0.5)
        assert status == 200 and hdrs.get("idempotent-replayed") == "true"
        assert [c["id"] for c in gw.charges_for(order)] == [body["id"]]

        # The hang is capped: the connection closes after hang_ms, unanswered.
        t0 = time.time()
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            gw.charge(uid("k"), order_id=uid("ord"), timeout=10)
        assert 1.3 < time.time() - t0 < 5

        # hang_after_charge=false: nothing charged, the key stays free.
        key, order = uid("k"), uid("ord")
        gw.faults(hang_rate=1, hang_after_charge=False)
        with pytest.raises(socket.timeout):
            gw.charge(key, order_id=order, timeout=0.5)
        assert gw.charges_for(order) == []
        gw.faults()
        status, hdrs, body = gw.charge(key, order_id=order)
        assert status == 200 and "idempotent-replayed" not in hdrs
        assert len(gw.charges_for(order)) == 1
    finally:
        gw.stop()


def test_stop_with_pending_hangs_is_clean(tmp_path):
    gw = Gateway(tmp_path, hang_rate=1, latency_ms=300)
    for _ in range(3):
        with pytest.raises(socket.timeout):
            gw.charge(uid("k"), timeout=0.2)
    gw.stop()  # asserts exit 0 and no sanitizer report


def test_seeded_faults_are_reproducible(tmp_path):
    def outcomes():
        gw = Gateway(tmp_path, seed=42, decline_rate=0.5)
        try:
            return [gw.charge(f"k{i}")[0] for i in range(30)]
        finally:
            gw.stop()

    first, second = outcomes(), outcomes()
    assert first == second
    assert set(first) == {200, 402}


def test_bounded_store(tmp_path):
    gw = Gateway(tmp_path, max_records=2)
    try:
        assert gw.charge("a")[0] == 200
        assert gw.charge("b")[0] == 200
        status, _, body = gw.charge("c")
        assert status == 503 and body["error"]["code"] == "store_full"
        assert gw.charge("a")[0] == 200  # replays still work
    finally:
        gw.stop()


def test_help_and_bad_options():
    out = subprocess.run([GATEWAY, "--help"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    for opt in ("gateway.port", "gateway.api_key", "gateway.hang_ms", "gateway.lost_response_rate",
                "gateway.seed", "gateway.max_records", "gateway.max_body"):
        assert opt in out.stdout
    env = dict(os.environ, ONSALE_GATEWAY_DECLINE_RATE="1.5")
    out = subprocess.run([GATEWAY], capture_output=True, text=True, timeout=10, env=env)
    assert out.returncode == 2 and "gateway.decline_rate" in out.stderr
