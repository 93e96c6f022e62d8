"""test_event_view.py - GET /v1/events/{id}, the view every waiting fan's page
fetches every few seconds: served from memory (built at most once per
event_view.ttl_ms from the owner's projection), never a count over seats per
request; availability follows sales within the ttl; ETag, 304 and
Cache-Control let a CDN or the browser hold it briefly."""
import time

from harness import Stack


def seat_reads(st):
    """Index and sequential scans of the seats table in this test's
    database so far (PostgreSQL's statistics flush within ~1 s)."""
    time.sleep(1.2)
    (n,), = st.sql("SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
                   "WHERE relname = 'seats'")
    return n


def tier(view, name):
    return next(t for t in view["tiers"] if t["section"] == name)


def test_view_follows_sales_without_counting_seats_per_request():
    with Stack(partitions=2) as st:
        st.start_worker()
        st.start_ingress()
        ev = st.create_event(sections=[("A", 10, 50, 5000), ("B", 10, 50, 3000)])

        s, h, v = st.http("GET", f"/v1/events/{ev}")
        assert s == 200, v
        assert v["seats_total"] == 1000 and v["available"] == 1000
        assert tier(v, "A")["available"] == 500 and tier(v, "B")["available"] == 500
        assert h["cache-control"] == "public, max-age=1"
        etag = h["etag"]
        assert etag.startswith('"') and etag.endswith('"')
        s, h2, _ = st.http("GET", f"/v1/events/{ev}", headers={"If-None-Match": etag})
        assert s == 304 and h2["etag"] == etag

        # A sale moves the view (the owner's projection) within the ttl.
        fan = st.token(1, "fan")
        s, _, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 3, "section": "B"},
                          token=fan)
        assert s == 202, b
        st.wait_for(lambda: st.http("GET", f"/v1/events/{ev}")[2]["available"] == 997, 10,
                    "the view shows the hold")
        v = st.http("GET", f"/v1/events/{ev}")[2]
        assert tier(v, "B")["available"] == 497 and tier(v, "A")["available"] == 500
        assert v["held"] == 3 and v["sold"] == 0
        s, _, _ = st.http("GET", f"/v1/events/{ev}", headers={"If-None-Match": etag})
        assert s == 200  # the old ETag no longer matches

        # A crowd on the page: 300 views cost no per-request seat counting.
        before = seat_reads(st)
        for _ in range(300):
            assert st.http("GET", f"/v1/events/{ev}")[0] == 200
        after = seat_reads(st)
        assert after - before < 20, f"{after - before} seat scans for 300 views"


def test_unknown_and_bad_ids():
    with Stack(partitions=1) as st:
        st.start_ingress()
        s, _, b = st.http("GET", "/v1/events/987654321")
        assert s == 404 and b["error"]["code"] == "event_not_found"
        s, _, b = st.http("GET", "/v1/events/01")
        assert s == 400 and b["error"]["code"] == "invalid_id"


def test_refresh_hint_spreads_the_crowd():
    """refresh_after_ms: the floor while the event is quiet, and growing
    with the fans waiting and holding so their views stay within
    event_view.views_per_s (here 1 a second, so ten fans make 10 s)."""
    with Stack(partitions=1) as st:
        st.start_worker()
        st.start_ingress(event_view_views_per_s=1, event_view_ttl_ms=0,
                         event_view_refresh_min_ms=2000, event_view_refresh_max_ms=8000)
        ev = st.create_event(sections=[("A", 1, 1, 5000)])
        v = st.http("GET", f"/v1/events/{ev}")[2]
        assert v["refresh_after_ms"] == 2000, v
        # One fan holds the only seat; the next ones wait for it.
        for fan in range(1, 5):
            st.join_ok(ev, st.token(fan, "fan"))
        st.wait_for(lambda: st.http("GET", f"/v1/events/{ev}")[2]["refresh_after_ms"] == 4000,
                    10, "1 holding + 3 waiting fans at 1 view/s: 4 s")
        for fan in range(5, 15):
            st.join_ok(ev, st.token(fan, "fan"))
        st.wait_for(lambda: st.http("GET", f"/v1/events/{ev}")[2]["refresh_after_ms"] == 8000,
                    10, "14 fans: capped at refresh_max_ms")
