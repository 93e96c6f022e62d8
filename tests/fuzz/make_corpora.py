#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/ from the unit- and
integration-test samples (tests/unit/msg_samples.c output, the bodies and
query strings of tests/integration/*.py). Run by hand after a contract
change: python3 tests/fuzz/make_corpora.py [path/to/msg_samples]. The seeds
are committed; libFuzzer adds what it finds to a run's own output folder.
"""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = b"fuzz-secret-0123456789abcdef"  # the fuzz targets' secret
NOW = 1800000000


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


# ---- fuzz_msg_decode: every record the encoder writes, plus poison ----------------------
def msg_seeds(samples_bin):
    lines = subprocess.run([samples_bin], check=True, capture_output=True,
                           text=True).stdout.splitlines()
    for i, line in enumerate(lines):
        kind, rec = line.split(" ", 1)
        write("fuzz_msg_decode", f"{i:02d}-{kind}", rec)
    poison = [
        '{"v":2,"type":"intent"}', '[]', '{"v":1}', '',
        '{"v":1,"type":"intent","event_id":1,"sent_ms":1,"user_id":5,"quantity":2,'
        '"adjacent":true,"section":"a\\u0000b"}',
        '{"v":1,"type":"cancel","event_id":1,"sent_ms":1,"user_id":5,"kind":"reservation",'
        '"target_partition":2147483648,"target_offset":1}',
        '{"v":1,"type":"ticket","event_id":1,"sent_ms":1,"user_id":5,"ticket_id":9,'
        '"kind":"transfer","to_user_id":5}',
        '{"v":1,"v":1}',
    ]
    for i, p in enumerate(poison):
        write("fuzz_msg_decode", f"poison-{i:02d}", p)


# ---- fuzz_jwt: raw headers (mode byte even) and signed header/claims (odd) ---------------
def token(header, claims, key=SECRET):
    h = b64(json.dumps(header, separators=(",", ":")).encode())
    c = b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = b64(hmac.new(key, f"{h}.{c}".encode(), hashlib.sha256).digest())
    return f"{h}.{c}.{sig}"


def jwt_seeds():
    hs = {"alg": "HS256", "typ": "JWT"}
    good = {"sub": "42", "role": "fan", "iat": NOW, "exp": NOW + 3600}
    raw = [
        "Bearer " + token(hs, good),
        "bearer  " + token(hs, dict(good, role="admin", sub=7)),
        "Bearer " + token(hs, dict(good, exp=NOW - 1)),
        "Bearer " + token(hs, good, key=b"wrong-secret-0123456789"),
        "Bearer " + token({"alg": "none"}, good).rsplit(".", 1)[0] + ".",
        "Bearer " + token({"alg": "HS512"}, good),
        "Bearer a.b.c", "Bearer", "Basic Zm9vOmJhcg==", "",
    ]
    for i, r in enumerate(raw):
        write("fuzz_jwt", f"raw-{i:02d}", b"\x00" + r.encode())
    signed = [
        (hs, good), (hs, dict(good, nbf=NOW + 10)), (hs, dict(good, sub="042")),
        (hs, dict(good, sub=-1)), (hs, dict(good, role="root")),
        (dict(hs, crit=["exp"]), good), ({"alg": "HS384"}, good),
        (hs, dict(good, exp="1900000000")), (hs, {"sub": "1", "role": "seller", "exp": 2**62}),
    ]
    for i, (h, c) in enumerate(signed):
        data = json.dumps(h).encode() + b"\n" + json.dumps(c).encode()
        write("fuzz_jwt", f"signed-{i:02d}", b"\x01" + data)


# ---- fuzz_config: file \0 env \0 args ----------------------------------------------------------
def config_seeds():
    seeds = [
        ("http.port = 8081\n# comment\n\nkafka.brokers = a:1,b:2\n", "", ""),
        ("", "HTTP_PORT=9000\nLOG_REQUESTS=yes", "--http-port=9001\n--kafka.partitions\n12"),
        ("", "", "--burst_ms=5\n--dev-mode=on\n--x.signed_any=-9223372036854775808"),
        ("http.port = 70000\n", "", ""),
        ("nonsense line\n", "", ""),
        ("pg.read_dsn =\n", "AUTH_SECRET=short", ""),
        ("", "", "stray\n--http.port"),
        ("http.bind = " + "x" * 300 + "\n", "", "--unknown=1"),
        ("x.signed_any = 9223372036854775808\n", "", ""),
        ("auth.secret = " + "s" * 1100 + "\n", "", ""),
    ]
    for i, (f, e, a) in enumerate(seeds):
        write("fuzz_config", f"seed-{i:02d}", f"{f}\0{e}\0{a}")


# ---- fuzz_request: the integration tests' requests -----------------------------------------------
def request_seeds():
    venue = {"name": "V", "city": "C", "country": "NL", "lat": 52.1, "lon": 4.3,
             "sections": [{"name": "A", "rows": 1, "seats_per_row": 1},
                          {"name": "B", "rows": 10, "seats_per_row": 20}]}
    event = {"venue_id": 1, "name": "Show", "category": "music",
             "starts_at": "2030-06-01T19:30:00Z", "onsale_at": "2030-05-01T10:00:00.250+02:00",
             "description": "d", "max_per_user": 6, "hold_seconds": 600, "currency": "EUR",
             "tiers": [{"section": "A", "price_cents": 5000}, {"section": "B", "price_cents": 0}]}
    reqs = [
        ("POST /v1/events/12/intents", {"quantity": 2}, None),
        ("POST /v1/events/12/intents", {"quantity": 4, "section": "Balcony",
                                        "max_price_cents": 9900, "adjacent": False}, "k-1"),
        ("POST /v1/events/012/intents", {"quantity": 1}, None),
        ("POST /v1/events/9223372036854775808/intents", {"quantity": 1}, None),
        ("POST /v1/events/1/intents", '{"quantity":1,"quantity":2}', None),
        ("POST /v1/events/1/intents", '{"quantity":1,"s\u00e9ction":"x"}', "\x7f"),
        ("GET /v1/intents/{intent:1500}", None, None),
        ("GET /v1/intents/{intent:5}", None, None),
        ("GET /v1/intents/{intent:2199023255552}", None, None),
        ("GET /v1/intents/00000000000005dc0000000000000000", None, None),
        ("DELETE /v1/intents/{intent:1099511627777}", None, None),
        ("DELETE /v1/reservations/{reservation:77}", None, None),
        ("POST /v1/reservations/{reservation:77}/checkout", {"payment_method": "pm_card_visa"},
         "checkout-1"),
        ("POST /v1/reservations/{reservation:77}/checkout", {"payment_method": "pm card"}, "k"),
        ("POST /v1/reservations/{reservation:77}/checkout", {"payment_method": "pm_x"}, None),
        ("GET /v1/orders/{order:3}", None, None),
        ("GET /v1/me/tickets?limit=5&cursor=5f5e100.2a", None, None),
        ("GET /v1/me/tickets?cursor=-1.1", None, None),
        ("POST /v1/tickets/9/transfer", {"to_user_id": 67}, None),
        ("POST /v1/tickets/9/transfer", {"to_user_id": 42}, None),
        ("POST /v1/tickets/9/cancel", None, None),
        ("POST /v1/tickets/0/cancel", None, None),
        ("POST /v1/venues", venue, "venue-1"),
        ("POST /v1/venues", dict(venue, sections=[venue["sections"][0]] * 2), None),
        ("POST /v1/events", event, "ev-1"),
        ("POST /v1/events", dict(event, starts_at="tomorrow"), None),
        ("POST /v1/events", dict(event, currency="eur"), None),
        ("GET /v1/events/5", None, None),
        ("POST /v1/events/5/pause", None, None),
        ("POST /v1/events/5/resume", None, None),
        ("POST /v1/events/5/cancel", None, None),
        ("GET /v1/admin/queues", None, None),
        ("GET /healthz", None, None),
        ("GET /", None, None),
        ("GET /q/abc", None, None),
        ("GET /ops/", None, None),
        ("GET /web/app.js", None, None),
        ("GET /web/..%2fetc", None, None),
        ("PUT /v1/events", None, None),
        ("GET /v1/nothing/here", None, None),
        ("GET /v1/events?q=rock+%26+roll&city=Paris&category=music&from=2030-01-01T00:00:00Z"
         "&to=2031-01-01T00:00:00.5-05:00&min_price=0&max_price=10000&limit=100", None, None),
        ("GET /v1/events?cursor=MDox&city=Paris", None, None),
        ("GET /v1/events?cursor=" + b64(b"1924992000000000:17"), None, None),
        ("GET /v1/events?cursor=" + b64(b"-9223372036854775807:1"), None, None),
        ("GET /v1/events?q=%C3%A9%C3%A9&&limit=1&", None, None),
    ]
    for qs, _code, _field in [
            ("foo=1", 0, 0), ("limit=99999999999999999999999", 0, 0), ("q=%ZZ", 0, 0),
            ("q=%00", 0, 0), ("q=%FF", 0, 0), ("cursor=MTIzOjQ1Ng==", 0, 0),
            ("cursor=MTIzOjA", 0, 0), ("from=2031-13-01T00:00:00Z", 0, 0),
            ("to=2031-02-29T00:00:00Z", 0, 0), ("limit=5&limit=6", 0, 0)]:
        reqs.append(("GET /v1/events?" + qs, None, None))
    for i, (line, body, key) in enumerate(reqs):
        text = line + "\n"
        if key is not None:
            text += f"Idempotency-Key: {key}\n"
        if body is not None:
            text += "\n" + (body if isinstance(body, str) else json.dumps(body))
        write("fuzz_request", f"seed-{i:02d}", text)


# ---- fuzz_http_head: the raw streams of test_ingress_hostile*.py and test_httpd_head.c --------
def http_head_seeds():
    ok = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    body = b'{"quantity": 1}'
    post = (b"POST /v1/events/1/intents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer a.b.c\r\nIdempotency-Key: k1\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)
    seeds = {
        "get": ok,
        "post-then-get": post + ok,
        "bare-lf": b"GET /healthz HTTP/1.1\nHost: x\n\n",
        "http10": b"GET /healthz HTTP/1.0\r\n\r\n",
        "query": b"GET /v1/events?q=%41%zz&x=%#? HTTP/1.1\r\nHost: x\r\n\r\n",
        "cl-space": b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length : 30\r\n\r\n" + ok,
        "te": b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + ok,
        "two-cl": b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        "hash-pct": b"GET /healthz#%41 HTTP/1.1\r\nHost: x\r\n\r\n",
        "pct": b"GET /v1/events/1%4 HTTP/1.1\r\nHost: x\r\n\r\n",
        "absolute": b"GET http://x/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        "star": b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        "nul": b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
        "tab": b"GET /a HTTP/1.1\r\nHost: x\r\nX-A:\tb\r\n\r\n",
        "utf8": "GET /a HTTP/1.1\r\nHost: x\r\nX-A: \u00e9\r\n\r\n".encode(),
        "lone-cr": b"GET /a HTTP/1.1\rHost: x\r\n\r\n",
        "folded": b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  b\r\n\r\n",
        "no-colon": b"GET /a HTTP/1.1\r\nHost: x\r\nX-A\r\n\r\n",
        "http09": b"GET /a\r\n\r\n",
        "http2": b"GET /a HTTP/2.0\r\nHost: x\r\n\r\n",
        "no-host": b"GET /a HTTP/1.1\r\n\r\n",
        "two-hosts": b"GET /a HTTP/1.1\r\nHost: x\r\nhost: y\r\n\r\n",
        "leading-crlf": b"\r\n" + ok,
        "long-line": b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        "big-head": b"GET / HTTP/1.1\r\nHost: x\r\nX-F: " + b"b" * 1100 + b"\r\n\r\n",
    }
    for name, data in seeds.items():
        write("fuzz_http_head", name, data)


# ---- fuzz_http_gate: pipelines of test_ingress_hostile_gate.py (byte 0: write size, byte 1: hook) ----
def http_gate_seeds():
    def h(m, t, hs=(), body=b""):
        return (f"{m} {t} HTTP/1.1\r\nHost: x\r\n" + "".join(x + "\r\n" for x in hs) +
                "\r\n").encode() + body
    poll = h("GET", "/g/poll", ["Authorization: Bearer " + "t" * 250])
    seeds = {
        "pipeline_whole": bytes([0, 1]) + (h("GET", "/g1") + h("GET", "/n1") + poll +
                                           h("POST", "/p", ["Content-Length: 5"], b"hello")) * 20,
        "pipeline_pieces": bytes([7, 1]) + (h("GET", "/g1") + poll + h("GET", "/n1")) * 30,
        "pipeline_bytes": bytes([1, 1]) + h("GET", "/g1") +
        h("POST", "/p", ["Content-Length: 3"], b"abc") + h("GET", "/g2"),
        "no_hook": bytes([13, 0]) + (h("GET", "/g1") + poll) * 40,
        "refused_behind": bytes([0, 1]) + h("GET", "/g1") + h("GET", "/n") +
        b"GET /x HTTP/1.1\r\nHost: x\r\nbad line\r\n\r\n" + h("GET", "/g3"),
        "refused_pieces": bytes([5, 1]) + h("GET", "/g1") +
        b"GET /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        "big_head": bytes([0, 1]) + h("GET", "/g1") * 3 + h("GET", "/n", ["X-F: " + "b" * 3900]),
        "body_apart": bytes([9, 1]) + h("POST", "/p", ["Content-Length: 300"], b"G" * 300) +
        h("GET", "/g9"),
        "bare_lf": bytes([0, 1]) + b"GET /g1 HTTP/1.1\nHost: x\n\nGET /n2 HTTP/1.1\nHost: x\n\n",
        "cut_tail": bytes([0, 1]) + h("GET", "/g1") + h("GET", "/n2") + b"GET /g3 HTTP/1.1\r\nHo",
    }
    for name, data in seeds.items():
        write("fuzz_http_gate", name, data)


def main():
    samples = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        HERE, "..", "..", "build", "bin", "msg_samples")
    msg_seeds(samples)
    jwt_seeds()
    config_seeds()
    request_seeds()
    http_head_seeds()
    http_gate_seeds()


if __name__ == "__main__":
    main()
