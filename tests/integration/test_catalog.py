"""test_catalog.py - GET /v1/events, the public catalog search (docs/api.md
"Catalog (public)", openapi listEvents): filters (q's words over name,
description, category and venue, city case-insensitive, category exact, time
and price ranges; test_search.py covers ranking, typos, distance and sorts), every status listed and reported, keyset pagination
across pages with no duplicates or gaps, and strict validation: every bad
input gets 400 with its code and field, and changes nothing.
"""
import os
import sys
from urllib.parse import urlencode

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import checked_stack  # noqa: E402


@pytest.fixture(scope="module")
def st():
    with checked_stack(partitions=1) as s:
        # Every answer fresh: tests change rows and read them at once, so
        # the database path (the index applies a change within
        # catalog.index_refresh_ms; test_search.py runs both paths).
        s.start_ingress(catalog_cache_ttl_ms=0, catalog_index="false")
        yield s


def make(st, name, starts, prices=(5000,), category="concert", city="Testville",
         description="", status="on_sale", venue_name="Test Hall"):
    sections = tuple((f"S{i}", 1, 2, p) for i, p in enumerate(prices))
    ev = st.create_event(sections=sections, name=name, status=status)
    st.sql("UPDATE events SET starts_at = %s::timestamptz, category = %s, description = %s "
           "WHERE event_id = %s", (starts, category, description, ev))
    st.sql("UPDATE venues SET city = %s, name = %s WHERE venue_id = "
           "(SELECT venue_id FROM events WHERE event_id = %s)", (city, venue_name, ev))
    return ev


def get(st, **params):
    path = "/v1/events" + ("?" + urlencode(params) if params else "")
    return st.http("GET", path)


def ids(st, **params):
    s, _, b = get(st, **params)
    assert s == 200, b
    return [e["event_id"] for e in b["events"]]


@pytest.fixture(scope="module")
def cat(st):
    e = {}
    e["rock"] = make(st, "100% Rock Night", "2031-03-01T20:00:00Z", (2000, 9000),
                     city="Amsterdam", description="Loud guitars")
    e["jazz"] = make(st, "Jazz_Club", "2031-03-02T20:00:00Z", (15000,), category="jazz",
                     city="amsterdam", venue_name="Bimhuis")
    e["opera"] = make(st, "La Traviata", "2031-04-01T19:00:00.250Z", (30000, 50000),
                      category="opera", city="Paris", description="An opera in three acts")
    e["gone"] = make(st, "Cancelled Rock", "2031-05-01T20:00:00Z", (1000,),
                     city="Berlin", status="cancelled")
    return e


def test_shape_and_public(st, cat):
    s, h, b = get(st, city="Paris")
    assert s == 200, b
    assert h["content-type"].startswith("application/json")
    assert b == {"next_cursor": None, "events": [{
        "event_id": cat["opera"], "name": "La Traviata", "category": "opera",
        "starts_at": "2031-04-01T19:00:00Z", "venue": {"name": "Test Hall", "city": "Paris"},
        "price_range": {"min_cents": 30000, "max_cents": 50000}, "status": "on_sale"}]}
    # Public: no token needed; a bad token is not even looked at.
    s, _, _ = st.http("GET", "/v1/events?city=Paris", token="garbage")
    assert s == 200


def test_filters(st, cat):
    c = cat
    allc = ids(st, limit=100)
    assert allc == [c["rock"], c["jazz"], c["opera"], c["gone"]]
    # q: its words, case-insensitive, the last one a prefix; punctuation
    # separates words and is never a pattern.
    assert set(ids(st, q="rock")) == {c["rock"], c["gone"]}
    assert ids(st, q="GUITAR") == [c["rock"]]
    assert ids(st, q="100%") == [c["rock"]]
    assert ids(st, q="jazz_club") == [c["jazz"]]
    assert ids(st, q="bimhuis") == [c["jazz"]]
    assert ids(st, q="three acts") == [c["opera"]]
    assert ids(st, q="no such thing") == []
    assert ids(st, q="Ré'; DROP TABLE events;--") == []
    # city: exact, case-insensitive; category: exact.
    assert ids(st, city="AMSTERDAM") == [c["rock"], c["jazz"]]
    assert ids(st, city="Amster") == []
    assert ids(st, category="jazz") == [c["jazz"]]
    assert ids(st, category="Jazz") == []
    # from inclusive, to exclusive; offsets honoured.
    assert ids(st, **{"from": "2031-03-02T20:00:00Z", "to": "2031-05-01T20:00:00Z"}) == \
        [c["jazz"], c["opera"]]
    assert ids(st, **{"from": "2031-03-02T21:00:00+01:00", "to": "2031-03-03T00:00:00Z"}) == \
        [c["jazz"]]
    # price: the filter range overlaps the event's tiers [min, max].
    assert ids(st, min_price=9000) == [c["rock"], c["jazz"], c["opera"]]
    assert ids(st, min_price=9001, max_price=20000) == [c["jazz"]]
    assert ids(st, min_price=40000, max_price=40000) == [c["opera"]]
    assert ids(st, max_price=1999) == [c["gone"]]
    assert ids(st, min_price=0, max_price=0) == []
    # Combined, and every status is listed with its status.
    s, _, b = get(st, city="berlin", q="rock")
    assert [(e["event_id"], e["status"]) for e in b["events"]] == [(c["gone"], "cancelled")]


def test_pagination(st, cat):
    # 23 events in one city, several sharing a start time (ties by event_id).
    made = []
    for i in range(23):
        made.append(make(st, f"Page {i}", f"2032-01-{1 + i // 3:02d}T18:00:00Z",
                         (100 * i,), city="Pageton"))
    for limit in (1, 5, 7, 23, 100):
        seen, cursor, pages = [], None, 0
        while True:
            params = {"city": "pageton", "limit": limit}
            if cursor:
                params["cursor"] = cursor
            s, _, b = get(st, **params)
            assert s == 200, b
            assert len(b["events"]) <= limit
            seen += [e["event_id"] for e in b["events"]]
            pages += 1
            cursor = b["next_cursor"]
            if cursor is None:
                break
            assert len(b["events"]) == limit
            assert isinstance(cursor, str) and cursor
        assert seen == made, (limit, seen)  # ordered, no duplicates, no gaps
        assert pages == -(-len(made) // limit)  # a full last page says so: no empty page
    # Default limit 20.
    s, _, b = get(st, city="Pageton")
    assert len(b["events"]) == 20 and b["next_cursor"]
    # A cursor keeps working with the filters it is used with.
    s, _, b = get(st, city="Pageton", limit=4)
    s, _, b2 = get(st, city="Pageton", limit=4, cursor=b["next_cursor"], min_price=1000)
    assert [e["event_id"] for e in b2["events"]] == made[10:14]


def snapshot(st):
    return st.sql("SELECT (SELECT count(*) FROM venues), (SELECT count(*) FROM events), "
                  "(SELECT count(*) FROM price_tiers), (SELECT count(*) FROM seats), "
                  "(SELECT string_agg(event_id || status, ',' ORDER BY event_id) FROM events)")


BAD = [
    ("foo=1", "unknown_field", "foo"),
    ("city=Paris&Limit=5", "unknown_field", "Limit"),
    ("limit=0", "invalid_field", "limit"),
    ("limit=101", "invalid_field", "limit"),
    ("limit=-1", "invalid_field", "limit"),
    ("limit=abc", "invalid_field", "limit"),
    ("limit=5x", "invalid_field", "limit"),
    ("limit=", "invalid_field", "limit"),
    ("limit=99999999999999999999999", "invalid_field", "limit"),
    ("limit=5&limit=6", "invalid_field", "limit"),
    ("min_price=-5", "invalid_field", "min_price"),
    ("min_price=1.5", "invalid_field", "min_price"),
    ("max_price=x", "invalid_field", "max_price"),
    ("max_price=99999999999999999999", "invalid_field", "max_price"),
    ("from=2031-13-01T00:00:00Z", "invalid_field", "from"),
    ("from=yesterday", "invalid_field", "from"),
    ("to=2031-03-01", "invalid_field", "to"),
    ("to=", "invalid_field", "to"),
    ("q=" + "a" * 201, "invalid_field", "q"),
    ("q=%ZZ", "invalid_field", "q"),
    ("q=%00", "invalid_field", "q"),
    ("q=%0A", "invalid_field", "q"),
    ("q=%25", "invalid_field", "q"),  # no letter or digit: nothing to search for
    ("q=_", "invalid_field", "q"),
    ("q=%FF", "invalid_field", "q"),
    ("city=" + "c" * 101, "invalid_field", "city"),
    ("category=" + "k" * 65, "invalid_field", "category"),
    ("cursor=", "invalid_cursor", "cursor"),
    ("cursor=!!!", "invalid_cursor", "cursor"),
    ("cursor=abc", "invalid_cursor", "cursor"),
    ("cursor=MTIzOjA", "invalid_cursor", "cursor"),      # "123:0"
    ("cursor=MTIz", "invalid_cursor", "cursor"),         # "123"
    ("cursor=MTIzOjQ1Ng==", "invalid_cursor", "cursor"),  # padded "123:456"
    ("cursor=" + "A" * 600, "invalid_cursor", "cursor"),
]


def test_bad_inputs(st, cat):
    before = snapshot(st)
    for qs, code, field in BAD:
        s, h, b = st.http("GET", "/v1/events?" + qs)
        assert s == 400, (qs, s, b)
        assert h["content-type"].startswith("application/json")
        assert b["error"]["code"] == code, (qs, b)
        assert b["error"].get("field") == field, (qs, b)
        assert b["error"]["message"]
    # A q of exactly 200 characters (multi-byte) is fine.
    s, _, b = get(st, q="é" * 200)
    assert s == 200 and b["events"] == []
    # A well-formed cursor of ours (not from a page) is accepted: "0:1".
    s, _, b = st.http("GET", "/v1/events?cursor=MDox&city=Paris")
    assert s == 200, b
    assert snapshot(st) == before
    # Creating still needs a seller.
    s, _, _ = st.http("POST", "/v1/events", {"name": "x"})
    assert s == 401


def test_string_limits_count_utf8_bytes_and_say_so(st):
    """docs/api.md "Requests": a string field's limit counts UTF-8 bytes
    (the stores' buffers are sized so); the refusal says bytes, not
    characters, so a seller naming a venue in another script is told what
    the limit is (before, 40 CJK letters of a 100 limit were refused as
    "1 to 100 characters"). display_name alone counts characters."""
    seller = st.token(1000, "seller")
    venue = {"name": "é" * 100, "city": "Utrecht", "country": "NL",
             "sections": [{"name": "A", "rows": 1, "seats_per_row": 2}]}
    s, _, v = st.http("POST", "/v1/venues", venue, seller)
    assert s == 201, v  # 200 bytes: the limit exactly
    before = snapshot(st)
    s, _, b = st.http("POST", "/v1/venues", {**venue, "city": "東" * 34}, seller)  # 102 bytes
    assert (s, b["error"]["code"], b["error"]["field"]) == (400, "invalid_field", "city"), b
    assert "100 bytes" in b["error"]["message"], b
    s, _, b = st.http("POST", "/v1/venues", {**venue, "name": "é" * 101}, seller)
    assert (s, b["error"]["field"]) == (400, "name") and "200 bytes" in b["error"]["message"], b
    # Names people read may not be only spaces (a display name may not
    # either); they were taken and showed as nothing.
    for bad in ({"name": "   "}, {"city": " "}, {"address": "  "},
                {"sections": [{"name": " ", "rows": 1, "seats_per_row": 1}]}):
        s, _, b = st.http("POST", "/v1/venues", {**venue, **bad}, seller)
        assert (s, b["error"]["code"]) == (400, "invalid_field"), (bad, b)
        assert "only spaces" in b["error"]["message"], b
    assert snapshot(st) == before


def test_a_bare_plus_in_an_offset_is_named_in_the_refusal(st):
    """A time written with its offset as is (?from=...+02:00) reaches the
    server with a space for the '+' (form encoding): the refusal says to
    send %2B; the encoded one is taken. A from past year 9999 in UTC is
    refused as out of range."""
    s, _, b = st.http("GET", "/v1/events?from=2031-01-01T00:00:00+02:00")
    assert (s, b["error"]["field"]) == (400, "from") and "%2B" in b["error"]["message"], b
    assert st.http("GET", "/v1/events?from=2031-01-01T00:00:00%2B02:00")[0] == 200
    s, _, b = st.http("GET", "/v1/events?to=9999-12-31T23:00:00-05:00")
    assert (s, b["error"]["field"]) == (400, "to"), b


def test_an_idempotent_retry_is_the_same_bytes(st):
    """docs/api.md "Idempotency": a retry is the same route, target and body
    byte for byte; the same object with its keys in another order is another
    request (422), and nothing more is made."""
    seller = st.token(1000, "seller")
    hdr = {"Idempotency-Key": "venue-bytes", "Content-Type": "application/json"}
    first = b'{"name":"H","city":"C","country":"NL","sections":[{"name":"A","rows":1,"seats_per_row":1}]}'
    again = b'{"city":"C","name":"H","country":"NL","sections":[{"name":"A","rows":1,"seats_per_row":1}]}'
    s, _, v = st.http("POST", "/v1/venues", headers=hdr, raw=first, token=seller)
    assert s == 201, v
    before = snapshot(st)
    assert st.http("POST", "/v1/venues", headers=hdr, raw=first, token=seller)[2] == v
    s, _, b = st.http("POST", "/v1/venues", headers=hdr, raw=again, token=seller)
    assert (s, b["error"]["code"]) == (422, "idempotency_mismatch"), b
    assert snapshot(st) == before
