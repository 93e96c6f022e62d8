"""test_hostile_costs.py - single requests of an authenticated or anonymous
client that cost the server work out of proportion to them, each refused
or bounded (bench/NOTES.md "Hostile clients' costs"):

  * a venue of 200 sections of 1000 x 1000 seats (200 million: one 9 KB
    body) was stored, and an event on it would write a row per seat and
    make its partition owner load them all: venues.max_seats (250,000 by
    default) refuses it (400 invalid_field, nothing written), at the venue
    and again at the event (a venue made before the cap, or the cap
    lowered since); control: the same requests under a raised cap pass.
"""
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, checked_stack, exchange, iso  # noqa: E402
from test_write_limits import at, node  # noqa: E402

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-ingress"), os.X_OK),
                                reason="onsale-ingress is not built")

SELLER = 4000


class Env:
    def __init__(self, st):
        self.st = st
        st.start_worker()
        st.start_ingress()
        self.main = st.ingress_port


@pytest.fixture(scope="module")
def env():
    with checked_stack(partitions=1) as st:
        yield Env(st)


def err(resp):
    s, _, b = resp
    return s, (b.get("error") or {}).get("code") if isinstance(b, dict) else b, \
        (b.get("error") or {}).get("field") if isinstance(b, dict) else None


def venue(sections):
    return {"name": "Hall", "city": "Utrecht", "country": "NL",
            "sections": [{"name": f"S{i}", "rows": r, "seats_per_row": p}
                         for i, (r, p) in enumerate(sections)]}


def count(st, table, where, args):
    return st.sql(f"SELECT count(*) FROM {table} WHERE {where}", args)[0][0]


def test_a_venue_of_200_million_seats_is_refused(env):
    st = env.st
    seller = st.token(SELLER, "seller")
    huge = venue([(1000, 1000)] * 200)
    assert len(str(huge)) < 16384
    assert err(at(st, env.main, "POST", "/v1/venues", huge, seller)) == \
        (400, "invalid_field", "sections")
    assert count(st, "venues", "owner_id = %s", (SELLER,)) == 0
    # At the default cap exactly: accepted.
    s, _, v = at(st, env.main, "POST", "/v1/venues", venue([(250, 1000)]), seller)
    assert s == 201 and v["capacity"] == 250000, v


def event_body(venue_id, sections):
    return {"venue_id": venue_id, "name": "Show", "category": "concert",
            "starts_at": iso(time.time() + 30 * 86400),
            "tiers": [{"section": s, "price_cents": 1000} for s in sections]}


def test_an_event_over_the_cap_writes_no_seat(env):
    st = env.st
    seller = st.token(SELLER + 1, "seller")
    small = node(env, venues_max_seats=1000)
    assert err(at(st, small, "POST", "/v1/venues", venue([(2, 501)]), seller)) == \
        (400, "invalid_field", "sections")
    s, _, v = at(st, small, "POST", "/v1/venues", venue([(1, 1000)]), seller)
    assert s == 201, v
    # A venue of 1,500 seats made where the cap is the default: an event
    # pricing all of it is refused where the cap is 1,000 (nothing
    # written), one pricing 1,000 of them passes.
    s, _, big = at(st, env.main, "POST", "/v1/venues", venue([(1, 1000), (1, 500)]), seller)
    assert s == 201, big
    vid = big["venue_id"]
    assert err(at(st, small, "POST", "/v1/events", event_body(vid, ["S0", "S1"]), seller)) == \
        (400, "invalid_field", "tiers")
    assert count(st, "events", "venue_id = %s", (vid,)) == 0
    assert count(st, "seats s JOIN sections c USING (section_id)", "c.venue_id = %s", (vid,)) == 0
    s, _, e = at(st, small, "POST", "/v1/events", event_body(vid, ["S0"]), seller)
    assert s == 201 and e["seats_total"] == 1000, e
    # Control: the refused event under the default cap.
    s, _, e = at(st, env.main, "POST", "/v1/events", event_body(vid, ["S0", "S1"]), seller)
    assert s == 201 and e["seats_total"] == 1500, e


def draw_event(st, entrants, onsale_in=2.0):
    """A pre-queue event whose sale opens in onsale_in s, with entrants
    pre-queued intents written in SQL (as the owner stores them). Returns
    (event id, the moment the sale opens)."""
    seller = st.token(SELLER + 2, "seller")
    s, _, v = st.http("POST", "/v1/venues", venue([(1, 100)]), seller)
    assert s == 201, v
    now = time.time()
    s, _, e = st.http("POST", "/v1/events", {
        "venue_id": v["venue_id"], "name": "Draw", "category": "concert",
        "starts_at": iso(now + 30 * 86400), "onsale_at": iso(now + onsale_in),
        "prequeue_opens_at": iso(now - 60), "tiers": [{"section": "S0", "price_cents": 1000}]},
        seller)
    assert s == 201, e
    add_entrants(st, e["event_id"], 0, entrants)
    return e["event_id"], now + onsale_in


def add_entrants(st, ev, first, n):
    """Entrants first .. first + n - 1 of ev (log offsets ev * 10**6 + i)."""
    base = ev * 10**6
    st.sql("INSERT INTO intents (intent_seq, event_id, user_id, partition, kafka_offset, "
           "quantity, state, accepted_at) SELECT g, %s, g + 1, 0, g, 1, 'queued', "
           "now() - interval '30 seconds' FROM generate_series(%s, %s) g",
           (ev, base + first, base + first + n - 1))


def entries(st, port, ev):
    s, _, d = at(st, port, "GET", f"/v1/events/{ev}/draw")
    assert s == 200, d
    return len(d["entries"])


def renders_waiting(st):
    """Draw renders blocked on the lock of intents (pg_stat_activity)."""
    return st.sql("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                  "AND wait_event_type = 'Lock' AND query LIKE '%%i.intent_seq, i.user_id%%'")[0][0]


def crowd_while_intents_locked(st, fetch, n=8):
    """n calls of fetch() at once (a draw request each) while a transaction
    holds intents ACCESS EXCLUSIVE: returns (renders seen blocked on the
    lock, the answers that came while it was held, every answer)."""
    import threading

    import psycopg2
    from harness import pg_dsn
    lock = psycopg2.connect(pg_dsn(st.db))
    cur = lock.cursor()
    cur.execute("LOCK TABLE intents IN ACCESS EXCLUSIVE MODE")
    out = []
    threads = [threading.Thread(target=lambda: out.append(fetch())) for _ in range(n)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    blocked, early = renders_waiting(st), list(out)
    lock.rollback()
    lock.close()
    for t in threads:
        t.join(30)
    return blocked, early, out


def test_a_crowd_asking_for_a_large_draw_costs_one_render_at_a_time(env):
    """GET /v1/events/{id}/draw is public and reads and HMACs every entrant
    (100,000: about 0.25 s of a job thread, 3.5 MB; bench/NOTES.md): a
    crowd asking for it took every job thread (pool.threads, 4) and as many
    full reads. Now one request renders and the others get the previous
    answer from memory (at most draw.cache_ttl_ms old)."""
    st = env.st
    port = node(env, draw_cache_ttl_ms=300)
    ev, opens = draw_event(st, 2000)
    time.sleep(max(0.0, opens + 0.2 - time.time()))
    assert entries(st, port, ev) == 2000
    add_entrants(st, ev, 2000, 1)
    assert entries(st, port, ev) == 2000, "answered again within draw.cache_ttl_ms"
    time.sleep(0.4)  # past the ttl: the next request renders
    blocked, early, out = crowd_while_intents_locked(st, lambda: entries(st, port, ev))
    answered = len(early)
    assert blocked == 1, f"{blocked} renders at once"
    assert answered == 7, "the others waited for the render"
    assert sorted(out) == [2000] * 7 + [2001], out
    assert entries(st, port, ev) == 2001


def test_control_without_the_cache_every_request_renders(env):
    st = env.st
    port = node(env, draw_cache_ttl_ms=0)
    ev, opens = draw_event(st, 500)
    time.sleep(max(0.0, opens + 0.2 - time.time()))
    assert entries(st, port, ev) == 500
    blocked, early, out = crowd_while_intents_locked(st, lambda: entries(st, port, ev))
    answered = len(early)
    assert blocked == 4 and answered == 0, (blocked, answered)  # pool.threads renders
    assert out == [500] * 8


def test_a_users_own_reads_are_limited_per_node(env):
    """GET /v1/orders/{id}, /v1/me/tickets, /v1/tickets/{id}/code and
    /v1/me had no limit: each is a PostgreSQL read on one of the node's
    job threads (pool.threads, 4), so one account in a loop could hold
    them all. The read class (per node, like the poll) refuses the
    account's burst; control: a node with the default limit serves it."""
    st = env.st
    port = node(env, ratelimit_read_user_per_min=1, ratelimit_read_user_burst=3)
    fan = st.token(4100)
    for path in ("/v1/me/tickets", "/v1/me/tickets?limit=1", "/v1/orders/" + "0" * 32):
        s, h, b = at(st, port, "GET", path, token=fan)
        assert s in (200, 404), b
        assert h["ratelimit-policy"] == '"read-user";q=3;w=180', h
    s, h, b = at(st, port, "GET", "/v1/tickets/1/code", token=fan)
    assert s == 429 and b["error"]["code"] == "rate_limited", b
    assert int(h["retry-after"]) >= 1 and h["ratelimit"].startswith('"read-user";r=0;t='), h
    assert not st.redis.keys(st.key("rl:read:*")), "read limits cost no Redis"
    assert at(st, port, "GET", "/v1/me/tickets", token=st.token(4101))[0] == 200, "another user"
    for _ in range(4):
        assert at(st, env.main, "GET", "/v1/me/tickets", token=fan)[0] == 200
