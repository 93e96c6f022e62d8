"""test_event_scanners.py - a scanner bound to one event (migration 0019,
docs/tickets.md "Who may scan where") against the real stack.

  * the event's seller assigns a scanner account to one event: it admits
    that event's tickets and not those of another event at the same venue
    (403 scanner_not_assigned, nothing changed); control: a scanner
    assigned to the venue admits both;
  * an unassign stops its next scan; PUT is idempotent, DELETE 204 either
    way, GET lists the event's own assignments;
  * another seller: 403 forbidden; an account without the scanner role:
    409 not_a_scanner; no such event: 404 event_not_found; the cap
    tickets.scanners_per_event: 409 invalid_state.
"""
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, checked_stack, iso  # noqa: E402
from test_checkout import Env  # noqa: E402
from test_write_limits import at, node  # noqa: E402

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-ingress"), os.X_OK),
                                reason="onsale-ingress is not built")

OWNER, OTHER = 1000, 2000
NIGHT_ONE, VENUE_CREW = 960, 961


@pytest.fixture(scope="module")
def env():
    with checked_stack(partitions=1) as st:
        e = Env(st)
        e.main = st.ingress_port
        e.ev = st.create_event(sections=(("A", 2, 10, 5000),), seller_id=OWNER)
        (e.venue,), = st.sql("SELECT venue_id FROM events WHERE event_id = %s", (e.ev,))
        s, _, b = st.http("POST", "/v1/events", {
            "venue_id": e.venue, "name": "Night two", "category": "concert",
            "starts_at": iso(time.time() + 31 * 86400),
            "tiers": [{"section": "A", "price_cents": 5000}]}, st.token(OWNER, "seller"))
        assert s == 201, b
        e.ev2 = b["event_id"]
        yield e


def scanners(st, method, ev, user=None, who=OWNER, role="seller", port=None):
    path = f"/v1/events/{ev}/scanners" + (f"/{user}" if user else "")
    return st.http(method, path, token=st.token(who, role)) if port is None else \
        at(st, port, method, path, None, st.token(who, role))


def scan_as(st, scanner, holder, tid):
    s, _, c = st.http("GET", f"/v1/tickets/{tid}/code", token=st.token(holder, "fan"))
    assert s == 200, c
    return st.http("POST", "/v1/scans", {"scan": c["scan"]}, token=st.token(scanner, "scanner"))


def admitted(st, tid):
    return st.sql("SELECT admitted_at, admitted_by, code_version FROM tickets "
                  "WHERE ticket_id = %s", (tid,))[0]


def code(resp):
    s, _, b = resp
    return s, (b.get("error") or {}).get("code") if isinstance(b, dict) else None


def test_a_scanner_bound_to_one_event_admits_only_there(env):
    st = env.st
    st.scanner_account(NIGHT_ONE)
    s, _, b = scanners(st, "PUT", env.ev, NIGHT_ONE)
    assert s == 200 and b["event_id"] == env.ev and b["user_id"] == NIGHT_ONE, b
    assert set(b) == {"event_id", "user_id", "assigned_at"}, b
    assert scanners(st, "PUT", env.ev, NIGHT_ONE)[2] == b, "PUT again changes nothing"
    s, _, lst = scanners(st, "GET", env.ev)
    assert s == 200 and lst == {"event_id": env.ev, "scanners": [b]}, lst
    t1, t1b = env.buy(40, qty=2, ev=env.ev)
    t2, = env.buy(41, ev=env.ev2)
    s, _, r = scan_as(st, NIGHT_ONE, 40, t1)
    assert s == 200 and r["state"] == "admitted", r
    before = admitted(st, t2)
    assert code(scan_as(st, NIGHT_ONE, 41, t2)) == (403, "scanner_not_assigned")
    assert admitted(st, t2) == before and before[0] is None
    # Control: a scanner of the venue admits the other night's ticket.
    st.assign_scanner(VENUE_CREW, env.ev2, port=env.main)
    s, _, r = scan_as(st, VENUE_CREW, 41, t2)
    assert s == 200 and r["state"] == "admitted", r
    # Unassigned: the next scan at its own event is refused.
    s, _, _ = scanners(st, "DELETE", env.ev, NIGHT_ONE)
    assert s == 204
    assert scanners(st, "DELETE", env.ev, NIGHT_ONE)[0] == 204, "DELETE again"
    assert code(scan_as(st, NIGHT_ONE, 40, t1b)) == (403, "scanner_not_assigned")
    assert admitted(st, t1b)[0] is None
    assert scanners(st, "GET", env.ev)[2]["scanners"] == []


def rows(st):
    return st.sql("SELECT event_id, scanner_id FROM event_scanners ORDER BY 1, 2")


def test_only_the_events_seller_assigns_and_only_scanners(env):
    st = env.st
    st.scanner_account(962)
    before = rows(st)
    assert code(scanners(st, "PUT", env.ev, 962, who=OTHER)) == (403, "forbidden")
    assert code(scanners(st, "GET", env.ev, who=OTHER)) == (403, "forbidden")
    assert code(scanners(st, "DELETE", env.ev, NIGHT_ONE, who=OTHER)) == (403, "forbidden")
    assert code(scanners(st, "PUT", env.ev, 962, who=962, role="scanner")) == (403, "forbidden")
    st.sql("INSERT INTO users (user_id, roles) VALUES (963, '{fan}') ON CONFLICT DO NOTHING")
    assert code(scanners(st, "PUT", env.ev, 963)) == (409, "not_a_scanner")
    assert code(scanners(st, "PUT", env.ev, 964)) == (409, "not_a_scanner")  # no account
    assert code(scanners(st, "PUT", 987654, 962)) == (404, "event_not_found")
    assert rows(st) == before
    # An admin may.
    s, _, b = scanners(st, "PUT", env.ev2, 962, who=1, role="admin")
    assert s == 200 and b["event_id"] == env.ev2, b


def test_an_events_scanners_are_capped(env):
    st = env.st
    port = node(env, tickets_scanners_per_event=1)
    for u in (970, 971):
        st.scanner_account(u)
    s, _, b = scanners(st, "PUT", env.ev, 970, port=port)
    assert s == 200, b
    assert code(scanners(st, "PUT", env.ev, 971, port=port)) == (409, "invalid_state")
    assert (env.ev, 971) not in rows(st)
    # Control: the default cap takes it.
    s, _, b = scanners(st, "PUT", env.ev, 971, port=env.main)
    assert s == 200, b
