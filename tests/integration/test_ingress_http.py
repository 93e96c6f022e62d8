"""test_ingress_http.py - the HTTP contract of onsale-ingress (docs/api.md) against
the real stack, without a worker: every bad-input class gets its 4xx and
changes nothing (no Kafka record, no row, no Redis key); Idempotency-Key
replay and mismatch; already_in_queue; sale_not_open; event creation (a
100,000-seat event in <= 5 s, seats in allocation order); event details;
pause/resume; dependencies down give 503 with Retry-After and queue nothing.
"""
import json
import os
import sys
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

sys.path.insert(0, os.path.dirname(__file__))
from harness import BROKERS, REDIS_HOST, REDIS_PORT, Stack, free_port, pg_dsn  # noqa: E402
import redis as redis_lib  # noqa: E402


@pytest.fixture(scope="module")
def st():
    with Stack(partitions=2) as s:
        # Creating the 100,000-seat event is one statement; on a loaded CI box
        # it may take longer than the production default timeout (10 s).
        s.start_ingress(pg_statement_timeout_ms=30000)
        yield s


def watermarks(st):
    """Total records on the Stack's topics, both lanes (sum of high
    watermarks of the intents topic and its control lane)."""
    c = Consumer({"bootstrap.servers": BROKERS, "group.id": "wm-" + st.topic})
    try:
        return sum(c.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
                   for t in (st.topic, st.topic + ".control") for p in range(st.partitions))
    finally:
        c.close()


def snapshot(st):
    """Everything a request could have changed."""
    rows = st.sql("SELECT (SELECT count(*) FROM venues), (SELECT count(*) FROM sections), "
                  "(SELECT count(*) FROM events), (SELECT count(*) FROM seats), "
                  "(SELECT count(*) FROM price_tiers), "
                  "(SELECT string_agg(event_id || status, ',' ORDER BY event_id) FROM events)")[0]
    keys = sorted(k for k in st.redis.scan_iter(match=st.prefix + "*", count=1000)
                  # the event-state cache may be filled by a read; a request that
                  # reached its job charged its rate-limit bucket (docs/fairness.md)
                  if ":ev:" not in k and ":rl:" not in k)
    return watermarks(st), rows, keys


def assert_error(resp, status, code=None, field=None):
    s, h, b = resp
    assert s == status, resp
    assert isinstance(b, dict) and set(b) >= {"error"}, resp
    assert set(b["error"]) >= {"code", "message"}, resp
    assert h.get("content-type", "").startswith("application/json")
    assert h.get("x-request-id")
    if code:
        assert b["error"]["code"] == code, resp
    if field:
        assert b["error"].get("field") == field, resp
    return b


def test_health_and_ready(st):
    assert st.http("GET", "/healthz")[0] == 200
    st.wait_for(lambda: st.http("GET", "/readyz")[0] == 200, 10, "readyz")
    s, h, b = st.http("GET", "/readyz")
    assert b["redis"] and b["postgres"] and b["kafka"]


def test_bad_input_changes_nothing(st):
    ev = st.create_event(sections=[("A", 2, 10, 5000)], max_per_user=4)
    fan, seller = st.token(11, "fan"), st.token(1000, "seller")
    before = snapshot(st)
    join = f"/v1/events/{ev}/intents"

    # Authentication and roles.
    assert_error(st.http("POST", join, {"quantity": 1}), 401, "unauthorized")
    assert_error(st.http("POST", join, {"quantity": 1}, token="not.a.jwt"), 401)
    assert_error(st.http("POST", join, {"quantity": 1}, token=st.token(11, "fan", exp=1)), 401)
    from harness import make_token
    forged = make_token(11, "fan", secret="another-secret-0123456789abcdef")
    assert_error(st.http("POST", join, {"quantity": 1}, token=forged), 401)
    assert_error(st.http("POST", join, {"quantity": 1}, token=seller), 403, "forbidden")
    venue = {"name": "V", "city": "C", "country": "NL",
             "sections": [{"name": "A", "rows": 1, "seats_per_row": 1}]}
    assert_error(st.http("POST", "/v1/venues", venue, token=fan), 403)
    assert_error(st.http("GET", "/v1/admin/queues", token=fan), 403)
    assert_error(st.http("POST", f"/v1/events/{ev}/pause", token=fan), 403)
    assert_error(st.http("POST", f"/v1/events/{ev}/pause", token=st.token(999, "seller")), 403)

    # Media type, size, JSON shape.
    assert_error(st.http("POST", join, raw=b'{"quantity":1}', token=fan,
                         headers={"Content-Type": "text/plain"}), 415)
    assert_error(st.http("POST", join, raw=b'{"quantity":1}', token=fan), 415)
    big = json.dumps({"quantity": 1, "section": "x" * 20000}).encode()
    assert_error(st.http("POST", join, raw=big, token=fan,
                         headers={"Content-Type": "application/json"}), 413)
    assert_error(st.http("POST", join, raw=b'{"quantity":', token=fan,
                         headers={"Content-Type": "application/json"}), 400, "invalid_json")
    assert_error(st.http("POST", join, raw=b'[1]', token=fan,
                         headers={"Content-Type": "application/json"}), 400, "invalid_json")
    assert_error(st.http("POST", join, raw=b'{"quantity":1,"quantity":2}', token=fan,
                         headers={"Content-Type": "application/json"}), 400, "invalid_json")

    # Fields.
    assert_error(st.http("POST", join, {"quantity": 1, "seat": "A1"}, token=fan), 400,
                 "unknown_field", "seat")
    for q in (0, 11, -1, "2", 1.5, None):
        assert_error(st.http("POST", join, {"quantity": q}, token=fan), 400, field="quantity")
    assert_error(st.http("POST", join, {}, token=fan), 400, "missing_field", "quantity")
    assert_error(st.http("POST", join, {"quantity": 5}, token=fan), 400, field="quantity")
    assert_error(st.http("POST", join, {"quantity": 1, "section": "x" * 65}, token=fan), 400,
                 field="section")
    assert_error(st.http("POST", join, {"quantity": 1, "max_price_cents": 0}, token=fan), 400,
                 field="max_price_cents")
    assert_error(st.http("POST", join, {"quantity": 1, "adjacent": "yes"}, token=fan), 400,
                 field="adjacent")

    # Ids, routes, methods.
    for bad in ("abc", "0", "-1", "01", "99999999999999999999"):
        assert_error(st.http("POST", f"/v1/events/{bad}/intents", {"quantity": 1}, token=fan),
                     400, "invalid_id")
    assert_error(st.http("GET", "/v1/events/x1"), 400, "invalid_id")
    assert_error(st.http("GET", "/v1/intents/nothex", token=fan), 400, "invalid_id")
    assert_error(st.http("GET", "/v1/intents/" + "0" * 32, token=fan), 404)
    assert_error(st.http("DELETE", "/v1/reservations/" + "f" * 32, token=fan), 404)
    assert_error(st.http("GET", "/v1/events/%41"), 400, "invalid_path")
    assert_error(st.http("POST", "/v1/events/123456/intents", {"quantity": 1}, token=fan), 404,
                 "event_not_found")
    assert_error(st.http("GET", "/v1/events/123456"), 404)
    put = st.http("PUT", join, {"quantity": 1}, token=fan)
    assert_error(put, 405)
    assert put[1].get("allow") == "POST", put[1]  # RFC 9110: a 405 names what is allowed
    assert_error(st.http("GET", "/v1/nothing"), 404, "not_found")

    # Idempotency-Key syntax.
    assert_error(st.http("POST", join, {"quantity": 1}, token=fan,
                         headers={"Idempotency-Key": "x" * 129}), 400)

    # Sellers' bodies.
    assert_error(st.http("POST", "/v1/venues", dict(venue, sections=[]), token=seller), 400,
                 field="sections")
    assert_error(st.http("POST", "/v1/venues", dict(venue, lat=91), token=seller), 400,
                 field="lat")
    dup = dict(venue, sections=[venue["sections"][0], venue["sections"][0]])
    assert_error(st.http("POST", "/v1/venues", dup, token=seller), 400, field="sections")
    assert_error(st.http("POST", "/v1/events", {"venue_id": 1, "name": "E", "category": "c",
                                                "starts_at": "tomorrow",
                                                "tiers": [{"section": "A", "price_cents": 1}]},
                         token=seller), 400, field="starts_at")
    assert_error(st.http("POST", "/v1/events", {"venue_id": 424242, "name": "E", "category": "c",
                                                "starts_at": "2030-01-01T00:00:00Z",
                                                "tiers": [{"section": "A", "price_cents": 1}]},
                         token=seller), 404, "venue_not_found")

    assert snapshot(st) == before


def test_join_poll_and_already_in_queue(st):
    ev = st.create_event(sections=[("A", 2, 10, 5000)])
    fan = st.token(21, "fan")
    w0 = watermarks(st)
    s, h, b = st.http("POST", f"/v1/events/{ev}/intents",
                      {"quantity": 2, "section": "A", "max_price_cents": 6000, "adjacent": False},
                      token=fan)
    assert s == 202, b
    assert set(b) >= {"intent_id", "state", "position", "eta_seconds", "poll_after_ms",
                      "status_url"}
    assert b["state"] == "queued" and len(b["intent_id"]) == 32
    assert b["status_url"] == f"/v1/intents/{b['intent_id']}"
    assert watermarks(st) == w0 + 1
    assert st.redis.get(st.key(f"active:{ev}:21")) == b["intent_id"]

    s2, _, p = st.http("GET", b["status_url"], token=fan)
    assert s2 == 200 and p["state"] == "queued" and p["intent_id"] == b["intent_id"]
    assert p["position"] <= b["position"] and p["poll_after_ms"] >= 500
    # Another user cannot see it (no existence leak).
    assert_error(st.http("GET", b["status_url"], token=st.token(22, "fan")), 404)

    s3, _, e = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, token=fan)
    assert s3 == 409 and e["error"]["code"] == "already_in_queue"
    assert e["intent_id"] == b["intent_id"]
    assert watermarks(st) == w0 + 1


def test_join_naming_a_section_the_event_does_not_sell(st):
    """A join whose section the event does not price was queued (202) and
    rejected later by the worker (insufficient_seats): the fan learned it
    only by polling. It is now refused at once, 422 section_not_sold,
    nothing queued, from the section names that ride with the event's sale
    state (Redis ev:<id> field section_names: written at creation, or
    written back from PostgreSQL by the first join's fill). Control:
    main's binaries answer these joins 202."""
    seller = st.token(1000, "seller")
    s, _, v = st.http("POST", "/v1/venues",
                      {"name": "Hall", "city": "Utrecht", "country": "NL",
                       "sections": [{"name": n, "rows": 1, "seats_per_row": 4}
                                    for n in ("A", "Balcony 2:1", "C")]}, seller)
    assert s == 201, v
    body = {"venue_id": v["venue_id"], "name": "two of three", "category": "concert",
            "starts_at": "2099-01-01T00:00:00Z",
            "tiers": [{"section": "A", "price_cents": 1000},
                      {"section": "Balcony 2:1", "price_cents": 500}]}
    s, _, e = st.http("POST", "/v1/events", body, seller)
    assert s == 201, e
    made = st.create_event(sections=[("A", 1, 4, 5000)])  # in SQL: Redis has nothing of it
    w0 = watermarks(st)
    refused = [(e["event_id"], "C"), (e["event_id"], "a"), (e["event_id"], "ZZ"),
               (e["event_id"], "Balcony 2"), (e["event_id"], "1:A"), (made, "B")]
    for user, (ev, section) in enumerate(refused, start=700):
        b = assert_error(st.http("POST", f"/v1/events/{ev}/intents",
                                 {"quantity": 1, "section": section},
                                 token=st.token(user, "fan")), 422, "section_not_sold",
                         field="section")
        assert section in b["error"]["message"], b
        assert st.redis.get(st.key(f"active:{ev}:{user}")) is None
    assert watermarks(st) == w0
    # The first fill wrote what PostgreSQL holds back to Redis.
    assert st.redis.hget(st.key(f"ev:{made}"), "section_names") == "1:A"
    for user, (ev, section) in enumerate([(e["event_id"], "Balcony 2:1"), (made, "A")],
                                         start=720):
        s, _, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1, "section": section},
                          token=st.token(user, "fan"))
        assert s == 202, b
    assert watermarks(st) == w0 + 2


def test_a_fill_missing_only_the_section_names_writes_back_only_them(st):
    """A join's fill that finds Redis's ev:<id> complete but for
    section_names reads them from PostgreSQL and writes back only them: it
    rewrote the fair-access fields, pow_difficulty and partitions from its
    PostgreSQL read too, over a newer value an admission or POW change had
    put in Redis meanwhile. Control: h17-api's binaries put PostgreSQL's
    max_active_holds (none: 0) over Redis's 50."""
    seller = st.token(1000, "seller")
    s, _, v = st.http("POST", "/v1/venues",
                      {"name": "Hall", "city": "Utrecht", "country": "NL",
                       "sections": [{"name": "A", "rows": 1, "seats_per_row": 4}]}, seller)
    assert s == 201, v
    s, _, e = st.http("POST", "/v1/events",
                      {"venue_id": v["venue_id"], "name": "names only", "category": "concert",
                       "starts_at": "2099-01-01T00:00:00Z",
                       "tiers": [{"section": "A", "price_cents": 1000}]}, seller)
    assert s == 201, e
    k = st.key(f"ev:{e['event_id']}")
    assert st.redis.hdel(k, "section_names") == 1
    st.redis.hset(k, "max_active_holds", 50)  # newer than the row the fill reads
    s, _, b = st.http("POST", f"/v1/events/{e['event_id']}/intents",
                      {"quantity": 1, "section": "A"}, token=st.token(740, "fan"))
    assert s == 202, b
    assert st.redis.hget(k, "section_names") == "1:A"
    assert st.redis.hget(k, "max_active_holds") == "50"


def test_section_names_read_from_postgresql_are_utf8_whatever_the_dsn_says(st):
    """The section names a fill reads from PostgreSQL are encoded by ingress
    (q_section_names_encode, as at creation) from text in UTF-8, whatever
    client encoding the DSN names: their lengths were once computed in SQL
    (octet_length, in the server's encoding) and the text then converted
    to the client's, so under LATIN1 'Über' was written '5:' over 4 bytes
    and the field did not parse; after that was mended, the names still
    arrived in the DSN's encoding (b'4:\\xdcber'), so a join naming
    'Über' in UTF-8 (JSON's encoding) was refused as not sold. common/pg.c
    now sends client_encoding=UTF8 after the DSN. Control: main before it
    writes b'4:\\xdcber1:A' and answers the 'Über' join 422."""
    ev = st.create_event(sections=[("Über", 1, 2, 5000), ("A", 1, 2, 5000)])  # Redis: nothing
    port = st.ingress_port
    st.start_ingress(pg_dsn=pg_dsn(st.db) + " client_encoding=LATIN1")
    try:
        b = assert_error(st.http("POST", f"/v1/events/{ev}/intents",
                                 {"quantity": 1, "section": "Zzz"}, token=st.token(750, "fan")),
                         422, "section_not_sold", field="section")
        raw = redis_lib.Redis(host=REDIS_HOST, port=REDIS_PORT)
        assert raw.hget(st.key(f"ev:{ev}"), "section_names") == "5:Über1:A".encode(), b
        for fan, section in ((751, "A"), (752, "Über")):
            s, _, b = st.http("POST", f"/v1/events/{ev}/intents",
                              {"quantity": 1, "section": section}, token=st.token(fan, "fan"))
            assert s == 202, (section, b)
    finally:
        st.discard(st.procs[-1])
        st.ingress_port = port


def test_idempotency_replay_and_mismatch(st):
    ev = st.create_event(sections=[("A", 2, 10, 5000)])
    fan = st.token(31, "fan")
    key = {"Idempotency-Key": "join-31-attempt"}
    w0 = watermarks(st)
    s1, _, b1 = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, token=fan, headers=key)
    assert s1 == 202
    s2, _, b2 = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, token=fan, headers=key)
    assert s2 == 202 and b2 == b1
    assert_error(st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 2}, token=fan,
                         headers=key), 422, "idempotency_mismatch")
    # The key is per user: another fan with the same key gets their own place.
    s4, _, b4 = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1},
                        token=st.token(32, "fan"), headers=key)
    assert s4 == 202 and b4["intent_id"] != b1["intent_id"]
    assert watermarks(st) == w0 + 2


def test_sale_not_open_and_pause_resume(st):
    fan = st.token(41, "fan")
    later = st.create_event(sections=[("A", 1, 5, 100)], onsale_in_s=3600)
    w0 = watermarks(st)
    assert_error(st.http("POST", f"/v1/events/{later}/intents", {"quantity": 1}, token=fan),
                 409, "sale_not_open")

    ev = st.create_event(sections=[("A", 1, 5, 100)], seller_id=1000)
    seller = st.token(1000, "seller")
    s, _, b = st.http("POST", f"/v1/events/{ev}/pause", token=seller)
    assert s == 202 and b == {"event_id": ev, "status": "paused", "status_url": f"/v1/events/{ev}"}
    # Only the partition owner writes sale state, and no worker runs here:
    # the record is queued, nothing says paused yet.
    assert st.sql("SELECT status FROM events WHERE event_id = %s", (ev,)) == [("on_sale",)]
    assert watermarks(st) == w0 + 1  # the event_status record
    assert st.http("GET", f"/v1/events/{ev}")[2]["status"] == "on_sale"
    s, _, b = st.http("POST", f"/v1/events/{ev}/resume", token=st.token(1, "admin"))
    assert s == 202 and b["status"] == "on_sale"
    assert watermarks(st) == w0 + 2
    # As the owner would write a pause and then a cancel (its projection too):
    st.sql("UPDATE events SET status = 'paused' WHERE event_id = %s", (ev,))
    st.redis.hset(st.key(f"ev:{ev}"), "status", "paused")
    st.wait_for(lambda: st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1},
                                token=fan)[0] == 409, 5, "paused sale refuses joins")
    assert_error(st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, token=fan),
                 409, "sale_not_open")
    st.sql("UPDATE events SET status = 'cancelled' WHERE event_id = %s", (ev,))
    st.redis.hset(st.key(f"ev:{ev}"), "status", "cancelled")
    assert_error(st.http("POST", f"/v1/events/{ev}/resume", token=seller), 409,
                 "invalid_transition")
    st.wait_for(lambda: st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1},
                                token=st.token(42, "fan"))[2]["error"]["code"] == "sale_closed",
                5, "closed")
    assert_error(st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1},
                         token=st.token(42, "fan")), 409, "sale_closed")
    assert watermarks(st) == w0 + 2


def test_create_100k_seat_event(st):
    seller = st.token(2000, "seller")
    sections = [{"name": n, "rows": 100, "seats_per_row": 250} for n in ("A", "B", "C", "D", "E")]
    s, _, v = st.http("POST", "/v1/venues", {"name": "Arena", "city": "Amsterdam",
                                             "country": "NL", "lat": 52.3, "lon": 4.9,
                                             "sections": sections}, token=seller)
    assert s == 201 and v["capacity"] == 125000
    body = {"venue_id": v["venue_id"], "name": "Big show", "category": "concert",
            "starts_at": "2030-06-01T19:30:00Z", "max_per_user": 6, "hold_seconds": 600,
            "currency": "EUR",
            "tiers": [{"section": "C", "price_cents": 3000}, {"section": "A", "price_cents": 9000},
                      {"section": "B", "price_cents": 6000}, {"section": "D", "price_cents": 2000}]}
    t0 = time.time()
    s, _, e = st.http("POST", "/v1/events", body, token=seller,
                      headers={"Idempotency-Key": "big-show"})
    elapsed = time.time() - t0
    assert s == 201, e
    assert e["seats_total"] == 100000 and e["status"] == "on_sale"
    # The <= 5 s target is measured by scripts/bench (event_create_100k), not
    # asserted here: timings on a shared machine belong in benchmarks.
    print(f"\n100,000-seat event created in {elapsed:.2f}s")
    ev = e["event_id"]
    # Replay: the same event, no second copy.
    s, _, again = st.http("POST", "/v1/events", body, token=seller,
                          headers={"Idempotency-Key": "big-show"})
    assert s == 201 and again == e
    assert st.sql("SELECT count(*) FROM events WHERE name = 'Big show'") == [(1,)]
    # Allocation order: section position, row, seat; numbering is dense.
    rows = st.sql("SELECT count(*), count(DISTINCT seat_no), min(seat_no), max(seat_no) "
                  "FROM seats WHERE event_id = %s", (ev,))
    assert rows == [(100000, 100000, 0, 99999)]
    first = st.sql("SELECT s.name, st.row_no, st.seat_in_row, st.price_cents FROM seats st "
                   "JOIN sections s USING (section_id) WHERE st.event_id = %s AND st.seat_no "
                   "IN (0, 1, 250, 25000, 99999) ORDER BY st.seat_no", (ev,))
    assert first == [("A", 1, 1, 9000), ("A", 1, 2, 9000), ("A", 2, 1, 9000),
                     ("B", 1, 1, 6000), ("D", 100, 250, 2000)]
    # Statistics first: planned on the empty table's, this self-join once
    # ran as a nested loop over 100,000 x 100,000 rows (820 s under ASan).
    st.sql("ANALYZE seats")
    bad = st.sql("SELECT count(*) FROM seats a JOIN seats b ON a.event_id = b.event_id "
                 "AND b.seat_no = a.seat_no + 1 JOIN sections sa ON sa.section_id = a.section_id "
                 "JOIN sections sb ON sb.section_id = b.section_id WHERE a.event_id = %s AND "
                 "(sa.position, a.row_no, a.seat_in_row) >= (sb.position, b.row_no, b.seat_in_row)",
                 (ev,))
    assert bad == [(0,)]

    s, _, d = st.http("GET", f"/v1/events/{ev}")
    assert s == 200
    assert d["event_id"] == ev and d["status"] == "on_sale" and d["currency"] == "EUR"
    assert d["max_per_user"] == 6 and d["hold_seconds"] == 600
    assert d["starts_at"] == "2030-06-01T19:30:00Z"
    assert d["venue"]["name"] == "Arena" and d["venue"]["city"] == "Amsterdam"
    assert [(t["section"], t["price_cents"], t["available"]) for t in d["tiers"]] == [
        ("A", 9000, 25000), ("B", 6000, 25000), ("C", 3000, 25000), ("D", 2000, 25000)]
    assert d["available"] == 100000


def test_sold_out_refused(st):
    ev = st.create_event(sections=[("A", 1, 2, 100)])
    fan = st.token(95, "fan")
    # The worker marks the event sold out in its Redis projection.
    st.redis.hset(st.key(f"ev:{ev}"), mapping={"status": "on_sale", "max_per_user": 8,
                                                "onsale_at_ms": 0, "sold_out": 1})
    time.sleep(0.3)  # past the event cache's TTL
    w0 = watermarks(st)
    assert_error(st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, token=fan), 409,
                 "sold_out")
    assert watermarks(st) == w0
    assert st.redis.get(st.key(f"active:{ev}:95")) is None
    assert st.http("GET", f"/v1/events/{ev}")[2]["status"] == "sold_out"


def test_seller_event_scheduled(st):
    seller = st.token(3000, "seller")
    s, _, v = st.http("POST", "/v1/venues", {"name": "Club", "city": "Utrecht", "country": "NL",
                                             "sections": [{"name": "Floor", "rows": 1,
                                                           "seats_per_row": 10}]}, token=seller)
    assert s == 201
    s, _, e = st.http("POST", "/v1/events", {"venue_id": v["venue_id"], "name": "Later",
                                             "category": "club",
                                             "starts_at": "2030-01-01T22:00:00+01:00",
                                             "onsale_at": "2029-12-01T10:00:00Z",
                                             "tiers": [{"section": "Floor", "price_cents": 1500}]},
                      token=seller)
    assert s == 201 and e["status"] == "scheduled" and e["seats_total"] == 10
    assert_error(st.http("POST", f"/v1/events/{e['event_id']}/intents", {"quantity": 1},
                         token=st.token(51, "fan")), 409, "sale_not_open")
    # Tiers must name the venue's sections; another seller's venue is refused.
    assert_error(st.http("POST", "/v1/events", {"venue_id": v["venue_id"], "name": "X",
                                                "category": "c", "starts_at": "2030-01-01T00:00:00Z",
                                                "tiers": [{"section": "Balcony", "price_cents": 1}]},
                         token=seller), 400, field="tiers")
    assert_error(st.http("POST", "/v1/events", {"venue_id": v["venue_id"], "name": "X",
                                                "category": "c", "starts_at": "2030-01-01T00:00:00Z",
                                                "tiers": [{"section": "Floor", "price_cents": 1}]},
                         token=st.token(3001, "seller")), 403)


def test_leave_the_line(st):
    ev = st.create_event(sections=[("A", 1, 5, 100)])
    fan = st.token(61, "fan")
    s, _, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, token=fan)
    assert s == 202
    w0 = watermarks(st)
    assert_error(st.http("DELETE", f"/v1/intents/{b['intent_id']}", token=st.token(62, "fan")), 404)
    s, _, c = st.http("DELETE", f"/v1/intents/{b['intent_id']}", token=fan)
    assert s == 202 and c["intent_id"] == b["intent_id"]
    assert watermarks(st) == w0 + 1


def test_metrics_exposition(st):
    s, h, text = st.http("GET", "/metrics")
    assert s == 200 and h["content-type"].startswith("text/plain")
    assert 'onsale_ingress_requests_total{route="join",status="202"}' in text
    assert "onsale_ingress_request_seconds_bucket" in text
    assert "onsale_ingress_produce_errors_total" in text
    assert "onsale_ingress_cursor_cache_age_seconds" in text


def test_admin_queues(st):
    ev = st.create_event(sections=[("A", 1, 10, 100)])
    for u in (91, 92, 93):
        assert st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1},
                       token=st.token(u, "fan"))[0] == 202
    s, _, b = st.http("GET", "/v1/admin/queues", token=st.token(1, "admin"))
    assert s == 200
    mine = [e for e in b["events"] if e["event_id"] == ev]
    assert mine and mine[0]["queued"] == 3 and mine[0]["available"] == 10, mine
    assert [p["partition"] for p in b["partitions"]] == list(range(st.partitions))
    for p in b["partitions"]:
        assert set(p) >= {"owner", "served_offset", "high_watermark", "lag", "drain_rate"}
    for e in b["events"]:
        assert set(e) >= {"event_id", "queued", "waiting", "held", "sold", "available"}
    # No worker runs here: the counts above came from PostgreSQL's rows. Once
    # an owner has published an event's counters they are what the view says
    # (nothing counted over its seats); an event without them is still
    # counted.
    other = st.create_event(sections=[("A", 1, 4, 100)])
    st.redis.hset(st.key(f"ev:{ev}"), mapping={"available": 6, "held": 3, "sold": 1,
                                               "waiting": 5, "holds_active": 2})
    s, _, b = st.http("GET", "/v1/admin/queues", token=st.token(1, "admin"))
    assert s == 200
    rows = {e["event_id"]: e for e in b["events"]}
    assert {k: rows[ev][k] for k in ("available", "held", "sold", "waiting", "active_holds")} == \
        {"available": 6, "held": 3, "sold": 1, "waiting": 5, "active_holds": 2}, rows[ev]
    assert rows[other]["available"] == 4 and rows[other]["held"] == 0, rows[other]


def test_kafka_down_gives_503_and_queues_nothing():
    with Stack(partitions=2) as st:
        dead = f"127.0.0.1:{free_port()}"
        st.start_ingress(kafka_brokers=dead, kafka_partitions=2, kafka_produce_timeout_ms=1000)
        ev = st.create_event(sections=[("A", 1, 5, 100)])
        fan = st.token(71, "fan")
        key = {"Idempotency-Key": "k71"}
        s, h, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, token=fan,
                          headers=key)
        assert s == 503 and int(h["retry-after"]) >= 1, b
        # Nothing kept: no active place, no idempotency record, nothing on the topic.
        assert st.redis.get(st.key(f"active:{ev}:71")) is None
        assert st.redis.get(st.key("idem:71:k71")) is None
        assert watermarks(st) == 0
        assert st.http("GET", "/readyz")[0] == 503


def test_redis_down_gives_503():
    with Stack(partitions=2) as st:
        st.start_ingress(redis_port=free_port(), redis_timeout_ms=200)
        ev = st.create_event(sections=[("A", 1, 5, 100)])
        s, h, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1},
                          token=st.token(81, "fan"))
        assert s == 503 and int(h["retry-after"]) >= 1, b
        assert watermarks(st) == 0
        # Event details need only PostgreSQL.
        assert st.http("GET", f"/v1/events/{ev}")[0] == 200

