"""test_draw_cache.py - GET /v1/events/{id}/draw's per-node cache
(ingress/routes_draw.c; docs/fairness.md "The pre-queue and its draw").

  * Two events sharing the cache (draw.cache_events=1 here; with 64 slots
    by id, any two ids 64 apart did): the render mark was set only when
    the slot already held the event, so while one event's answer sat in the
    slot, every request for the other rendered: 8 at once made 4 renders
    (pool.threads) block at once, as with no cache. Now the mark is per
    event: one render, the others 503 unavailable with Retry-After until
    the answer exists, and a request for another event (a missing one
    too) does not evict a fresh answer (the large draw's crowd is still
    served from memory). Control: with no cache (draw.cache_ttl_ms=0) the
    same crowd makes 4 renders at once.
  * A draw served from memory was not charged to any limit (only renders
    were, to the catalog class), while each is a copy of the answer (3.5 MB
    for 100,000 entrants) held until the client reads it: one address could
    pin a copy per connection. Hits are now charged to the draw class, per
    client address in the node's memory: a burst past
    ratelimit.draw.addr_burst gets 429 with Retry-After; another address
    is served; control: the default limit serves the same burst.
"""
import http.client
import json
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, checked_stack  # noqa: E402
from test_hostile_costs import (Env, crowd_while_intents_locked, draw_event,  # noqa: E402
                                entries, renders_waiting)
from test_write_limits import node  # noqa: E402

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-ingress"), os.X_OK),
                                reason="onsale-ingress is not built")


@pytest.fixture(scope="module")
def env():
    with checked_stack(partitions=1) as st:
        yield Env(st)


def get_draw(port, ev, addr=None, full=False):
    """(status, Retry-After or None, entry count or None); full: (status,
    headers lowercased, body). addr: sent as X-Forwarded-For."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", f"/v1/events/{ev}/draw",
                 headers={"X-Forwarded-For": addr} if addr else {})
    resp = conn.getresponse()
    body = json.loads(resp.read() or b"null")
    headers = {k.lower(): v for k, v in resp.getheaders()}
    conn.close()
    if full:
        return resp.status, headers, body
    n = len(body["entries"]) if resp.status == 200 else None
    return resp.status, resp.getheader("Retry-After"), n


def crowd(st, port, ev, n=8):
    """n requests for ev's draw at once while intents is locked: (renders
    seen blocked on the lock, the answers that came while it was held,
    every answer)."""
    return crowd_while_intents_locked(st, lambda: get_draw(port, ev), n)


def test_two_events_sharing_the_cache_render_once_each_at_a_time(env):
    st = env.st
    port = node(env, draw_cache_ttl_ms=60000, draw_cache_events=1)
    bare = node(env, draw_cache_ttl_ms=0)
    big, opens = draw_event(st, 2000)
    small, opens2 = draw_event(st, 500)
    time.sleep(max(0.0, max(opens, opens2) + 0.2 - time.time()))
    assert entries(st, port, big) == 2000  # in the cache, fresh for 60 s
    for _ in range(2):
        # small has no entry and may not evict big's fresh answer: its mark
        # is kept aside, one render at a time, the others 503.
        blocked, early, out = crowd(st, port, small)
        assert blocked == 1, f"{blocked} renders at once for the event not in the cache"
        assert sorted(early) == [(503, "1", None)] * 7, early
        assert sorted(out) == [(200, None, 500)] + [(503, "1", None)] * 7, out
        assert get_draw(port, small) == (200, None, 500), "rendered again, mark cleared"
        assert get_draw(port, 999999999)[0] == 404, "a missing event"
    # big's answer stayed: its crowd is served from memory, nothing renders.
    blocked, early, out = crowd(st, port, big)
    assert blocked == 0 and sorted(early) == [(200, None, 2000)] * 8, (blocked, early)
    # Control: without the cache the same crowd renders pool.threads at once.
    blocked, early, out = crowd(st, bare, small)
    assert blocked == 4 and early == [], (blocked, early)
    assert out == [(200, None, 500)] * 8, out


def test_draw_hits_are_limited_per_address(env):
    st = env.st
    proxied = dict(client_trusted_proxies="127.0.0.1", draw_cache_ttl_ms=60000)
    port = node(env, ratelimit_draw_addr_per_min=1, ratelimit_draw_addr_burst=3, **proxied)
    roomy = node(env, **proxied)  # the default: 600 a minute, 60 at once
    ev, opens = draw_event(st, 300)
    time.sleep(max(0.0, opens + 0.2 - time.time()))
    a, b = "203.0.113.50", "203.0.113.51"
    for p in (port, roomy):
        s, h, d = get_draw(p, ev, a, full=True)  # the render: the catalog class's
        assert s == 200 and len(d["entries"]) == 300, d
        assert "draw-addr" not in h.get("ratelimit-policy", ""), h
    for _ in range(3):  # from memory, within the burst
        s, h, d = get_draw(port, ev, a, full=True)
        assert s == 200 and len(d["entries"]) == 300, d
        assert h["ratelimit-policy"] == '"draw-addr";q=3;w=180', h
    s, h, d = get_draw(port, ev, a, full=True)
    assert s == 429 and d["error"]["code"] == "rate_limited", d
    assert int(h["retry-after"]) >= 1 and h["ratelimit"].startswith('"draw-addr";r=0;t='), h
    assert get_draw(port, ev, b) == (200, None, 300), "another address"
    assert not st.redis.keys(st.key("rl:draw:*")), "draw hits cost no Redis"
    # Control: the default limit serves the same burst and more.
    for _ in range(10):
        assert get_draw(roomy, ev, a) == (200, None, 300)
