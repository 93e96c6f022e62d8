"""test_draw_cache.py - GET /v1/events/{id}/draw's per-node cache
(ingress/routes_draw.c; docs/fairness.md "The pre-queue and its draw").

  * Two events sharing the cache (draw.cache_events=1 here; with 64 slots
    by id, any two ids 64 apart did): the render mark was set only when
    the slot already held the event, so while one event's answer sat in the
    slot, every request for the other rendered: 8 at once made 4 renders
    (pool.threads) block at once, as with no cache. Now the mark is per
    event: one render, the others 503 unavailable with Retry-After until
    the answer exists. Control: with no cache (draw.cache_ttl_ms=0) the
    same crowd makes 4 renders at once.
"""
import http.client
import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, checked_stack, pg_dsn  # noqa: E402
from test_hostile_costs import Env, draw_event, entries, renders_waiting  # noqa: E402
from test_write_limits import node  # noqa: E402

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-ingress"), os.X_OK),
                                reason="onsale-ingress is not built")


@pytest.fixture(scope="module")
def env():
    with checked_stack(partitions=1) as st:
        yield Env(st)


def get_draw(port, ev):
    """(status, Retry-After or None, entry count or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", f"/v1/events/{ev}/draw")
    resp = conn.getresponse()
    import json
    body = json.loads(resp.read() or b"null")
    conn.close()
    n = len(body["entries"]) if resp.status == 200 else None
    return resp.status, resp.getheader("Retry-After"), n


def crowd(st, port, ev, n=8):
    """n requests for ev's draw at once while a transaction holds intents
    ACCESS EXCLUSIVE: (renders seen blocked on the lock, the answers that
    came while it was held, every answer)."""
    import psycopg2
    lock = psycopg2.connect(pg_dsn(st.db))
    lock.cursor().execute("LOCK TABLE intents IN ACCESS EXCLUSIVE MODE")
    out = []
    threads = [threading.Thread(target=lambda: out.append(get_draw(port, ev))) for _ in range(n)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    blocked, early = renders_waiting(st), list(out)
    lock.rollback()
    lock.close()
    for t in threads:
        t.join(30)
    return blocked, early, out


def test_two_events_sharing_the_cache_render_once_each_at_a_time(env):
    st = env.st
    port = node(env, draw_cache_ttl_ms=60000, draw_cache_events=1)
    bare = node(env, draw_cache_ttl_ms=0)
    big, opens = draw_event(st, 2000)
    small, opens2 = draw_event(st, 500)
    time.sleep(max(0.0, max(opens, opens2) + 0.2 - time.time()))
    assert entries(st, port, big) == 2000  # in the cache, fresh for 60 s
    for ev, size in ((small, 500), (big, 2000), (small, 500)):
        # ev is not in the one entry (the other event is, fresh): one render.
        blocked, early, out = crowd(st, port, ev)
        assert blocked == 1, f"{blocked} renders at once for event {ev}"
        assert sorted(early) == [(503, "1", None)] * 7, early
        assert sorted(out) == [(200, None, size)] + [(503, "1", None)] * 7, out
        assert get_draw(port, ev) == (200, None, size), "served from memory now"
    # Control: without the cache the same crowd renders pool.threads at once.
    blocked, early, out = crowd(st, bare, small)
    assert blocked == 4 and early == [], (blocked, early)
    assert out == [(200, None, 500)] * 8, out
