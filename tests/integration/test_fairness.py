"""test_fairness.py - fair waiting (issue 10, docs/fairness.md) against the
real binaries.

Rate limits:
  * join: per user, shared in Redis, charged inside the claim script: the
    request over the burst gets 429 rate_limited with Retry-After,
    RateLimit-Policy and RateLimit; another fan is not affected; the bucket
    lives in Redis.
  * poll: per node in memory: over the burst 429, and no Redis key written.
  * catalog: per client address, shared by two ingress nodes; the address
    comes from X-Forwarded-For only with a trusted proxy configured (the
    control: the same requests without one are never limited).
  * login: per client address on POST /v1/sessions.
"""
import http.client
import json
import os
import sys
import time

import pytest


sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, Stack  # noqa: E402

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-ingress"), os.X_OK),
                                reason="onsale-ingress is not built")


def call(port, method, path, body=None, token=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    h = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    if token:
        h["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    text = r.read().decode()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    conn.close()
    return r.status, hdrs, (json.loads(text) if text else None)


def assert_limited(status, hdrs, body, name):
    assert status == 429, (status, body)
    assert body["error"]["code"] == "rate_limited"
    assert int(hdrs["retry-after"]) >= 1
    assert f'"{name}";q=' in hdrs["ratelimit-policy"], hdrs
    assert hdrs["ratelimit"].startswith(f'"{name}";r=0;t='), hdrs


def rkeys(st, pattern):
    return st.redis.keys(st.key(pattern))


def test_join_rate_limit_per_user_in_redis():
    with Stack() as st:
        ev = st.create_event()
        st.start_ingress(ratelimit_join_user_per_min=6, ratelimit_join_user_burst=2)
        tok = st.token(501)
        s, h, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, tok)
        assert s == 202, b
        assert h["ratelimit-policy"] == '"join-user";q=2;w=20', h
        assert h["ratelimit"] == '"join-user";r=1;t=10', h
        s, h, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, tok)
        assert s == 409 and b["error"]["code"] == "already_in_queue", b
        s, h, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, tok)
        assert_limited(s, h, b, "join-user")
        assert 1 <= int(h["retry-after"]) <= 10
        # Another fan has its own bucket.
        s, _, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, st.token(502))
        assert s == 202, b
        assert rkeys(st, "rl:join:u:501"), "the join bucket lives in Redis"


def test_poll_rate_limit_in_memory():
    with Stack() as st:
        ev = st.create_event()
        st.start_ingress(ratelimit_poll_user_per_min=60, ratelimit_poll_user_burst=3)
        tok = st.token(601)
        s, _, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, tok)
        assert s == 202, b
        url = f"/v1/intents/{b['intent_id']}"
        for _ in range(3):
            s, h, b = st.http("GET", url, token=tok)
            assert s == 200, b
            assert h["ratelimit-policy"] == '"poll-user";q=3;w=3', h
        s, h, b = st.http("GET", url, token=tok)
        assert_limited(s, h, b, "poll-user")
        assert not rkeys(st, "rl:poll:*"), "poll limits cost no Redis"
        time.sleep(1.1)  # one period: one more poll
        s, _, b = st.http("GET", url, token=tok)
        assert s == 200, b


def test_catalog_limit_per_address_shared_by_nodes():
    with Stack() as st:
        opts = dict(ratelimit_catalog_addr_per_min=6, ratelimit_catalog_addr_burst=3,
                    client_trusted_proxies="127.0.0.1, 10.0.0.0/8")
        st.start_ingress(**opts)
        a = st.ingress_port
        st.start_ingress(**opts)
        b_ = st.ingress_port
        xff = {"X-Forwarded-For": "198.51.100.9, 203.0.113.7, 10.1.2.3"}
        for port in (a, b_, a):
            s, h, b = call(port, "GET", "/v1/events", headers=xff)
            assert s == 200, b
            assert h["ratelimit-policy"] == '"catalog-addr";q=3;w=30', h
        s, h, b = call(b_, "GET", "/v1/events", headers=xff)
        assert_limited(s, h, b, "catalog-addr")
        assert rkeys(st, "rl:catalog:a:203.0.113.7")
        # Another client behind the same proxy is not limited.
        s, _, b = call(a, "GET", "/v1/events", headers={"X-Forwarded-For": "203.0.113.8"})
        assert s == 200, b


def test_forwarded_for_ignored_without_trusted_proxy():
    """Control: the same requests with no trusted proxy configured are never
    limited per address (the header is not believed)."""
    with Stack() as st:
        st.start_ingress(ratelimit_catalog_addr_per_min=6, ratelimit_catalog_addr_burst=3)
        for _ in range(6):
            s, h, b = st.http("GET", "/v1/events", headers={"X-Forwarded-For": "203.0.113.7"})
            assert s == 200, b
            assert "ratelimit" not in h


def test_login_limit_per_address():
    with Stack() as st:
        st.start_ingress(ratelimit_login_addr_per_min=6, ratelimit_login_addr_burst=2,
                         client_trusted_proxies="127.0.0.1")
        xff = {"X-Forwarded-For": "192.0.2.44"}
        for i in range(2):
            s, _, b = st.http("POST", "/v1/sessions",
                              {"email": f"nobody{i}@example.com", "password": "wrong password"},
                              headers=xff)
            assert s == 401, b
        s, h, b = st.http("POST", "/v1/sessions",
                          {"email": "nobody9@example.com", "password": "wrong password"},
                          headers=xff)
        assert_limited(s, h, b, "login-addr")


def test_bad_trusted_proxies_refused_at_start():
    with Stack() as st:
        p = st.start("ingress", "onsale-ingress", http_port=0,
                     client_trusted_proxies="10.0.0.0/99")
        assert p.wait(10) == 2
        assert "client.trusted_proxies" in p.output()
