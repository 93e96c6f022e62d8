"""test_pipeline.py - one intent's whole path through the real binaries:
HTTP join at ingress -> Kafka -> the partition's worker -> PostgreSQL COMMIT
-> Redis projection -> status poll. Also: positions of a queue never increase
and are exact, and a seller creates venue and event over HTTP."""
import time

from harness import Stack


def create_over_http(st, seller, sections, **event_fields):
    s, _, b = st.http("POST", "/v1/venues", {
        "name": "Pipeline Arena", "city": "Utrecht", "country": "NL",
        "sections": [{"name": n, "rows": r, "seats_per_row": k} for n, r, k, _ in sections]},
        token=seller)
    assert s == 201, b
    venue = b["venue_id"]
    assert b["capacity"] == sum(r * k for _, r, k, _ in sections)
    body = {"venue_id": venue, "name": "Pipeline Night", "category": "concert",
            "starts_at": "2027-06-01T20:00:00Z",
            "tiers": [{"section": n, "price_cents": p} for n, _, _, p in sections]}
    body.update(event_fields)
    s, _, b = st.http("POST", "/v1/events", body, token=seller)
    assert s == 201, b
    return b["event_id"], b


def test_join_poll_reserved_end_to_end():
    with Stack(partitions=2) as st:
        st.start_worker()
        st.start_ingress()
        seller = st.token(500, "seller")
        ev, created = create_over_http(st, seller, [("Floor", 2, 5, 8000), ("Balcony", 2, 5, 3000)])
        assert created["seats_total"] == 20

        fan = st.token(1, "fan")
        s, h, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 2}, token=fan)
        assert s == 202, b
        assert b["state"] == "queued" and len(b["intent_id"]) == 32
        assert b["position"] >= 0 and b["poll_after_ms"] > 0
        iid = b["intent_id"]

        def reserved():
            s, _, r = st.http("GET", f"/v1/intents/{iid}", token=fan)
            assert s == 200, r
            return r if r["state"] == "reserved" else None

        r = st.wait_for(reserved, 30, "reservation")
        seats = r["reservation"]["seats"]
        assert len(seats) == 2
        # best seats: the first section, row 1, adjacent
        assert {x["section"] for x in seats} == {"Floor"}
        assert {x["row"] for x in seats} == {1}
        assert sorted(x["seat"] for x in seats)[1] - sorted(x["seat"] for x in seats)[0] == 1
        assert r["reservation"]["total_cents"] == 16000

        # PostgreSQL holds the truth: two seats held by exactly this reservation
        rows = st.sql("SELECT count(*) FROM seats WHERE event_id = %s AND status = 'held'", (ev,))
        assert rows[0][0] == 2

        # Answered from PostgreSQL (the result gone from Redis, as after a
        # Redis restart): the same reservation, the same seats, read by the
        # seat numbers the reservation names (migration 0018).
        rid = r["reservation"]["reservation_id"]
        seq, nos = st.sql("SELECT reservation_id, seat_nos FROM reservations", ())[0]
        assert len(nos) == 2
        assert st.redis.delete(st.key(f"r:{seq}")) == 1
        s, _, again = st.http("GET", f"/v1/intents/{iid}", token=fan)
        assert s == 200 and again["state"] == "reserved", again
        assert again["reservation"]["reservation_id"] == rid
        assert sorted(again["reservation"]["seats"], key=str) == sorted(seats, key=str), again

        # someone else cannot see it
        s, _, _ = st.http("GET", f"/v1/intents/{iid}", token=st.token(2, "fan"))
        assert s == 404

        # event details show live availability
        s, _, d = st.http("GET", f"/v1/events/{ev}")
        assert s == 200, d
        avail = {t["section"]: t["available"] for t in d["tiers"]}
        st.wait_for(lambda: {t["section"]: t["available"]
                             for t in st.http("GET", f"/v1/events/{ev}")[2]["tiers"]}
                    == {"Floor": 8, "Balcony": 10}, 10, f"availability (saw {avail})")


def test_positions_are_exact_and_never_increase():
    with Stack(partitions=1) as st:
        st.start_ingress()
        ev = st.create_event(sections=[("A", 10, 10, 1000)])
        ids = []
        for u in range(1, 21):
            s, _, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1},
                              token=st.token(u, "fan"))
            assert s == 202, b
            ids.append((u, b["intent_id"]))
        # no worker yet: positions are exactly the number of intents ahead
        time.sleep(0.3)
        last = {}
        for i, (u, iid) in enumerate(ids):
            s, _, b = st.http("GET", f"/v1/intents/{iid}", token=st.token(u, "fan"))
            assert s == 200 and b["state"] == "queued", b
            assert b["position"] == i, (i, b)
            last[iid] = b["position"]
        st.start_worker()
        deadline = time.time() + 30
        done = set()
        while len(done) < len(ids) and time.time() < deadline:
            for u, iid in ids:
                if iid in done:
                    continue
                s, _, b = st.http("GET", f"/v1/intents/{iid}", token=st.token(u, "fan"))
                assert s == 200, b
                if b["state"] == "queued":
                    assert b["position"] <= last[iid], "position increased"
                    last[iid] = b["position"]
                else:
                    assert b["state"] == "reserved", b
                    done.add(iid)
        assert len(done) == len(ids)
