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
from harness import BIN, Stack, exchange, iso  # noqa: E402
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
    with Stack(partitions=1) as st:
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
