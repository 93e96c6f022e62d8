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
import hashlib
import hmac
import http.client
import os
import re
import subprocess
import sys
import time

import pytest


sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, MIN_SESSION_MS, Stack, create_event_via_api, exchange, iso  # noqa: E402

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-ingress"), os.X_OK),
                                reason="onsale-ingress is not built")


def call(port, method, path, body=None, token=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    return exchange(conn, method, path, body, token, headers)


def assert_limited(status, hdrs, body, name):
    assert status == 429, (status, body)
    assert body["error"]["code"] == "rate_limited"
    assert int(hdrs["retry-after"]) >= 1
    assert f'"{name}";q=' in hdrs["ratelimit-policy"], hdrs
    assert hdrs["ratelimit"].startswith(f'"{name}";r=0;t='), hdrs


def rkeys(st, pattern):
    return st.redis.keys(st.key(pattern))


def first_join(st, user, **limits):
    """An event, ingress started with limits, and user's join to it (202).
    Returns (event id, the fan's token, the join's headers and body)."""
    ev = st.create_event()
    st.start_ingress(**limits)
    tok = st.token(user)
    h, b = st.join_ok(ev, tok)
    return ev, tok, h, b


def test_join_rate_limit_per_user_in_redis():
    with Stack() as st:
        ev, tok, h, b = first_join(st, 501, ratelimit_join_user_per_min=6,
                                   ratelimit_join_user_burst=2)
        assert h["ratelimit-policy"] == '"join-user";q=2;w=20', h
        assert h["ratelimit"] == '"join-user";r=1;t=10', h
        s, h, b = st.join(ev, tok)
        assert s == 409 and b["error"]["code"] == "already_in_queue", b
        s, h, b = st.join(ev, tok)
        assert_limited(s, h, b, "join-user")
        assert 1 <= int(h["retry-after"]) <= 10
        # Another fan has its own bucket.
        st.join_ok(ev, st.token(502))
        assert rkeys(st, "rl:join:u:501"), "the join bucket lives in Redis"


def test_poll_rate_limit_in_memory():
    with Stack() as st:
        ev, tok, _, b = first_join(st, 601, ratelimit_poll_user_per_min=60,
                                   ratelimit_poll_user_burst=3)
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
        # The node's catalog cache off: answers it serves from memory cost no
        # database work and are not limited (docs/fairness.md).
        opts = dict(ratelimit_catalog_addr_per_min=6, ratelimit_catalog_addr_burst=3,
                    client_trusted_proxies="127.0.0.1, 10.0.0.0/8", catalog_cache_ttl_ms=0)
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


# ---- the pre-queue and its draw ---------------------------------------------------

def draw_order(seed_hex, ids):
    seed = bytes.fromhex(seed_hex)
    return sorted(ids, key=lambda i: hmac.new(seed, i.encode(), hashlib.sha256).hexdigest())


def create_prequeue_event(st, seats, onsale_in, prequeue_ago=1.0):
    seller = st.token(9000, "seller")
    s, _, v = st.http("POST", "/v1/venues",
                      {"name": "Hall", "city": "Utrecht", "country": "NL",
                       "sections": [{"name": "A", "rows": 1, "seats_per_row": seats}]}, seller)
    assert s == 201, v
    now = time.time()
    s, _, e = st.http("POST", "/v1/events",
                      {"venue_id": v["venue_id"], "name": "Draw night", "category": "concert",
                       "starts_at": iso(now + 30 * 86400), "onsale_at": iso(now + onsale_in),
                       "prequeue_opens_at": iso(now - prequeue_ago),
                       "tiers": [{"section": "A", "price_cents": 1000}]}, seller)
    assert s == 201, e
    return e["event_id"], now + onsale_in


def test_prequeue_draw_is_verifiable_and_grants_follow_it():
    fans, seats = 12, 5
    with Stack() as st:
        st.start_worker(draw_close_ms=300)
        st.start_ingress()
        ev, onsale = create_prequeue_event(st, seats, onsale_in=6)
        s, _, view = st.http("GET", f"/v1/events/{ev}")
        assert s == 200 and view["draw"]["seed"] is None, view
        commitment = view["draw"]["commitment"]
        assert len(commitment) == 64
        s, _, d = st.http("GET", f"/v1/events/{ev}/draw")
        assert s == 200 and d["seed"] is None and d["entries"] == [], d

        ids = {}
        for u in range(1, fans + 1):
            _, b = st.join_ok(ev, st.token(u))
            assert b["state"] == "prequeued" and "position" not in b, b
            assert b["eta_seconds"] >= 1 and "draw_at" in b, b
            ids[b["intent_id"]] = u
        first = next(iter(ids))
        s, _, b = st.http("GET", f"/v1/intents/{first}", token=st.token(ids[first]))
        assert s == 200 and b["state"] == "prequeued", b

        # A join after onsale_at queues behind the whole draw.
        st.wait_for(lambda: time.time() > onsale + 0.2, 15)
        s, _, late = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1},
                             st.token(fans + 1))
        assert s == 202 and late["state"] == "queued", late

        def reserved():
            rows = st.sql("SELECT intent_seq FROM intents WHERE event_id = %s "
                          "AND state = 'reserved'", (ev,))
            return len(rows) == seats and rows
        st.wait_for(reserved, 30, "the draw's holds")

        s, _, d = st.http("GET", f"/v1/events/{ev}/draw")
        assert s == 200, d
        assert hashlib.sha256(bytes.fromhex(d["seed"])).hexdigest() == commitment
        assert sorted(d["entries"]) == sorted(ids), "every pre-queued join is in the draw"
        assert d["entries"] == draw_order(d["seed"], list(ids)), "the order recomputes"
        assert late["intent_id"] not in d["entries"]
        s, _, view = st.http("GET", f"/v1/events/{ev}")
        assert view["draw"]["seed"] in (None, d["seed"])

        # Grants followed the draw: the first `seats` entries hold the seats.
        winners = set(d["entries"][:seats])
        for iid, u in ids.items():
            s, _, b = st.http("GET", f"/v1/intents/{iid}", token=st.token(u))
            assert s == 200, b
            if iid in winners:
                assert b["state"] == "reserved", (iid, b)
            else:
                assert b["state"] == "waiting", (iid, b)
                assert b["position"] == d["entries"].index(iid) + 1, b
        s, _, b = st.http("GET", f"/v1/intents/{late['intent_id']}", token=st.token(fans + 1))
        assert b["state"] == "waiting" and "position" not in b, b

        # onsalectl recomputes it and audits that the grants followed it.
        ctl = os.path.join(BIN, "onsalectl")
        p = subprocess.run([ctl, "verify-draw", "--event", str(ev)], env=st.env(),
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and "verify-draw pass" in p.stdout, p.stdout + p.stderr
        p = subprocess.run([ctl, "audit", "--event", str(ev)], env=st.env(kafka_brokers=""),
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        # Control: with another ids.secret the draw recomputes differently and
        # the grants no longer follow it.
        p = subprocess.run([ctl, "verify-draw", "--event", str(ev)],
                           env=st.env(ids_secret="another-ids-secret-0123456789abcdef"),
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and "verify-draw fail" in p.stdout, p.stdout + p.stderr
        # A seed that does not match its commitment fails.
        st.sql("UPDATE events SET draw_commitment = repeat('0', 64) WHERE event_id = %s", (ev,))
        p = subprocess.run([ctl, "verify-draw", "--event", str(ev)], env=st.env(),
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 1 and "FAIL  commitment" in p.stdout, p.stdout


def test_prequeue_draw_same_after_worker_restart():
    """The owner rebuilt from PostgreSQL after a kill draws the same order."""
    fans, seats = 8, 3
    with Stack() as st:
        w = st.start_worker(draw_close_ms=300, kafka_session_timeout_ms=MIN_SESSION_MS)
        st.start_ingress()
        ev, onsale = create_prequeue_event(st, seats, onsale_in=5)
        ids = {}
        for u in range(1, fans + 1):
            s, _, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, st.token(u))
            assert s == 202 and b["state"] == "prequeued", b
            ids[b["intent_id"]] = u
        st.wait_for(lambda: len(st.sql("SELECT 1 FROM intents WHERE event_id = %s", (ev,)))
                    == fans, 20, "pre-queued intents written")
        w.kill()
        w.wait(10)
        st.wait_for(lambda: time.time() > onsale + 0.5, 15)
        st.start_worker(draw_close_ms=300, kafka_session_timeout_ms=MIN_SESSION_MS)
        st.wait_for(lambda: len(st.sql("SELECT 1 FROM intents WHERE event_id = %s "
                                       "AND state = 'reserved'", (ev,))) == seats, 40)
        s, _, d = st.http("GET", f"/v1/events/{ev}/draw")
        order = draw_order(d["seed"], list(ids))
        assert d["entries"] == order
        won = {r[0] for r in st.sql("SELECT intent_seq FROM intents WHERE event_id = %s "
                                    "AND state = 'reserved'", (ev,))}
        assert won == {int(i[:16], 16) for i in order[:seats]}


def test_prequeue_opens_at_validated():
    with Stack() as st:
        st.start_ingress()
        seller = st.token(9000, "seller")
        s, _, v = st.http("POST", "/v1/venues",
                          {"name": "Hall", "city": "Utrecht", "country": "NL",
                           "sections": [{"name": "A", "rows": 1, "seats_per_row": 4}]}, seller)
        now = time.time()
        base = {"venue_id": v["venue_id"], "name": "X", "category": "concert",
                "starts_at": iso(now + 86400), "tiers": [{"section": "A", "price_cents": 100}]}
        for extra in ({"prequeue_opens_at": iso(now + 60)},
                      {"onsale_at": iso(now + 60), "prequeue_opens_at": iso(now + 120)}):
            s, _, b = st.http("POST", "/v1/events", dict(base, **extra), seller)
            assert s == 400 and b["error"]["field"] == "prequeue_opens_at", b
        # Without a pre-queue a join before onsale_at is still refused.
        s, _, e = st.http("POST", "/v1/events", dict(base, onsale_at=iso(now + 60)), seller)
        assert s == 201, e
        s, _, b = st.http("POST", f"/v1/events/{e['event_id']}/intents", {"quantity": 1},
                          st.token(5))
        assert s == 409 and b["error"]["code"] == "sale_not_open", b


# ---- admission control -------------------------------------------------------------

def create_event_api(st, seats, **extra):
    seller = st.token(9000, "seller")
    return create_event_via_api(st, seller, seats, "Capped", **extra), seller


def states(st, ev):
    return dict(st.sql("SELECT state, count(*) FROM intents WHERE event_id = %s GROUP BY state",
                       (ev,)))


def test_max_active_holds_keeps_fans_in_order_and_changes_live():
    with Stack() as st:
        st.start_worker()
        st.start_ingress()
        ev, seller = create_event_api(st, 20, max_active_holds=3)
        ids = []
        for u in range(1, 11):
            _, b = st.join_ok(ev, st.token(u))
            ids.append((u, b["intent_id"]))
        st.wait_for(lambda: states(st, ev) == {"reserved": 3, "waiting": 7}, 30,
                    "3 holds, 7 waiting although 17 seats are free")
        held = {r[0] for r in st.sql("SELECT user_id FROM intents WHERE event_id = %s "
                                     "AND state = 'reserved'", (ev,))}
        assert held == {1, 2, 3}, "the first three in line"
        s, _, q = st.http("GET", "/v1/admin/queues", token=st.token(1, "admin"))
        row = next(e for e in q["events"] if e["event_id"] == ev)
        assert row["max_active_holds"] == 3 and row["active_holds"] == 3, row
        assert row["admissions_per_minute"] is None, row
        # A released hold goes to the next fan in line, never past the cap.
        r = st.http("GET", f"/v1/intents/{ids[0][1]}", token=st.token(1))[2]
        s, _, _ = st.http("DELETE", f"/v1/reservations/{r['reservation']['reservation_id']}",
                          token=st.token(1))
        assert s == 202
        st.wait_for(lambda: st.sql("SELECT state FROM intents WHERE event_id = %s AND "
                                   "user_id = 4", (ev,)) == [("reserved",)], 20, "fan 4 admitted")
        assert states(st, ev) == {"reserved": 3, "waiting": 6, "released": 1}
        # Raised live by the seller: two more come in, in order.
        s, _, b = st.http("POST", f"/v1/events/{ev}/admission", {"max_active_holds": 5}, seller)
        assert s == 202 and b["max_active_holds"] == 5 and b["admissions_per_minute"] is None, b
        st.wait_for(lambda: states(st, ev).get("reserved") == 5, 20, "5 holds")
        held = {r[0] for r in st.sql("SELECT user_id FROM intents WHERE event_id = %s "
                                     "AND state = 'reserved'", (ev,))}
        assert held == {2, 3, 4, 5, 6}
        assert st.sql("SELECT max_active_holds FROM events WHERE event_id = %s", (ev,)) == [(5,)]
        # Bad input changes nothing; another seller may not.
        s, _, b = st.http("POST", f"/v1/events/{ev}/admission", {"max_active_holds": 0}, seller)
        assert s == 400 and b["error"]["field"] == "max_active_holds", b
        s, _, b = st.http("POST", f"/v1/events/{ev}/admission", {"max_active_holds": 9},
                          st.token(9001, "seller"))
        assert s == 403, b
        # Lifted: everyone who fits is served.
        s, _, b = st.http("POST", f"/v1/events/{ev}/admission", {"max_active_holds": None}, seller)
        assert s == 202, b
        st.wait_for(lambda: states(st, ev).get("reserved") == 9, 20, "all 9 held")


def test_admissions_per_minute_paces_grants_and_the_eta():
    with Stack() as st:
        st.start_ingress()
        ev, seller = create_event_api(st, 20, admissions_per_minute=60)
        # No worker yet: the joins stay queued; the ETA follows 60 a minute.
        etas = []
        for u in range(1, 7):
            _, b = st.join_ok(ev, st.token(u))
            etas.append((b["position"], b["eta_seconds"], b["poll_after_ms"]))
        pos, eta, poll = etas[-1]
        assert pos == 5 and eta == 5, etas  # 5 ahead at 1/s (the assumed 1000/s would say 1)
        assert poll >= 500, etas
        st.start_worker()
        st.wait_for(lambda: states(st, ev).get("reserved", 0) >= 1, 30, "the first grant")
        t0 = time.time()
        st.wait_for(lambda: states(st, ev).get("reserved", 0) == 6, 30, "all six granted")
        took = time.time() - t0
        assert took >= 3.5, f"6 grants at 60/min took {took:.1f}s"
        times = [r[0] for r in st.sql(
            "SELECT extract(epoch FROM r.created_at) FROM reservations r JOIN intents i "
            "ON i.intent_seq = r.reservation_id WHERE i.event_id = %s ORDER BY 1", (ev,))]
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert min(gaps) >= 0.8, gaps


# ---- truthful waiting ------------------------------------------------------------

def test_queued_fans_told_sold_out_without_waiting_for_the_worker():
    """No worker: the fans' records stay queued. The owner's projection of
    the event (ev:<id>, as workers/project.c publishes it) says every seat is
    held, then every seat is sold: the next poll of each queued fan says so,
    long before any worker reaches their records."""
    with Stack() as st:
        st.start_ingress(event_cache_ttl_ms=100)
        ev = st.create_event(sections=(("A", 1, 2, 1000),))
        fans = []
        for u in range(1, 6):
            s, _, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, st.token(u))
            assert s == 202 and b["state"] == "queued", b
            fans.append((u, b["intent_id"]))

        def poll_all():
            return [st.http("GET", f"/v1/intents/{i}", token=st.token(u))[2] for u, i in fans]
        for b in poll_all():
            assert b["state"] == "queued" and "seats_all_held" not in b, b
        key = st.key(f"ev:{ev}")
        st.redis.hset(key, mapping={"available": 0, "held": 2, "sold": 0, "sold_out": 0,
                                    "waiting": 7})
        time.sleep(0.3)
        for b in poll_all():
            assert b["state"] == "queued" and b["seats_all_held"] is True, b
            assert b["waiting_ahead"] == 7, b  # fans already waiting for a seat
        st.redis.hset(key, mapping={"available": 0, "held": 0, "sold": 2, "sold_out": 1})
        time.sleep(0.3)
        for b in poll_all():
            assert b["state"] == "rejected" and b["reason"] == "sold_out", b


def test_queued_poll_comes_back_at_the_eta_not_later():
    """poll_after_ms of a queued fan is never later than its ETA (so it
    learns it was reached when it expected to be), and at least a tenth of
    it. No worker: the joins stay queued and the ETA uses the assumed rate
    (here 100/s, so 20 places ahead are 200 ms); 50 ms per place would
    otherwise send the 21st fan away for 1 s."""
    with Stack() as st:
        st.start_ingress(status_assumed_rate=100, status_poll_ms_per_position=50,
                         status_poll_min_ms=50)
        ev, _ = create_event_api(st, 50)
        answers = []
        for u in range(1, 22):
            _, b = st.join_ok(ev, st.token(u))
            answers.append(b)
        for b in answers:
            eta_ms = b["position"] * 1000 // 100
            assert max(50, eta_ms // 10) <= b["poll_after_ms"] <= max(50, eta_ms), (b, eta_ms)
            # the estimate unrounded, and in whole seconds rounded up
            assert b["eta_ms"] == eta_ms and b["eta_seconds"] == -(-eta_ms // 1000), (b, eta_ms)
        assert answers[-1]["position"] == 20 and answers[-1]["poll_after_ms"] == 200, answers[-1]
        # The poll answers the same way while the fan is still queued.
        s, _, p = st.http("GET", answers[-1]["status_url"], token=st.token(21))
        assert s == 200 and p["state"] == "queued" and p["poll_after_ms"] == 200, p
        assert p["eta_ms"] == 200 and p["eta_seconds"] == 1, p
        # the moment it points at, on the node's clock: now + eta_ms
        now = int(time.time() * 1000)
        assert now - 1000 <= parse_ms(p["eta_at"]) - 200 <= now + 1000, (now, p)
        assert abs(parse_ms(answers[-1]["eta_at"]) - now) < 60000, answers[-1]


def parse_ms(at):
    """An RFC 3339 UTC time with milliseconds, as epoch ms."""
    import datetime
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", at), at
    d = datetime.datetime.strptime(at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc)
    return int(d.timestamp() * 1000)


def test_poll_says_when_the_fan_left_the_queue():
    """Past the queue, a poll carries left_queue_at: when the owner applied
    the join (the moment the ETA promised). It falls between sending the join
    and the answer that shows it, and it stays the same through later states
    (waiting, then reserved after a release; rejected)."""
    with Stack() as st:
        st.start_worker()
        st.start_ingress()
        ev, _ = create_event_api(st, 2)
        fans = {}
        for u in (1, 2, 3):
            tok = st.token(u)
            sent = int(time.time() * 1000)
            _, b = st.join_ok(ev, tok)
            fans[u] = (tok, b["status_url"], sent)
        seen = {}
        for u, (tok, url, sent) in fans.items():
            p = st.wait_for(lambda: (lambda p: p if p["state"] != "queued" else None)(
                st.http("GET", url, token=tok)[2]), 30, f"fan {u} past the queue")
            shown = int(time.time() * 1000)
            left = parse_ms(p["left_queue_at"])
            assert sent - 1000 <= left <= shown + 1000, (sent, left, shown, p)
            seen[u] = (p["state"], p["left_queue_at"])
        assert [seen[u][0] for u in (1, 2, 3)] == ["reserved", "reserved", "waiting"], seen
        # fan 1 lets go: fan 3 gets the seat, its moment of leaving the queue unchanged
        tok1, url1, _ = fans[1]
        rid = st.http("GET", url1, token=tok1)[2]["reservation"]["reservation_id"]
        assert st.http("DELETE", f"/v1/reservations/{rid}", token=tok1)[0] == 202
        tok3, url3, _ = fans[3]
        p3 = st.wait_intent(url3, tok3, "reserved")
        assert p3["left_queue_at"] == seen[3][1], (p3, seen[3])
        # a refusal says it too: a fourth fan for a sold-out house is rejected
        tok4 = st.token(4)
        _, b4 = st.join_ok(ev, tok4, 3)
        p4 = st.wait_intent(b4["status_url"], tok4, "rejected")
        assert parse_ms(p4["left_queue_at"]) >= parse_ms(seen[3][1]), p4
