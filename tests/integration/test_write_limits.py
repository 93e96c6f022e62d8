"""test_write_limits.py - the per-user rate-limit classes of the write
routes that had none (docs/fairness.md "Rate limits"): seller (sellers'
and admins' venue, event, scanner and role writes), scan (a scanner's
scans) and change (a fan leaving the line, releasing a hold, transferring
or cancelling a ticket). Each bucket lives in Redis, shared by the nodes.

For each class: a burst over the limit gets 429 rate_limited with
Retry-After and the RateLimit headers, and the refused request wrote
nothing (PostgreSQL checked); under the limit the requests pass; the
control: the same burst through a node whose limit is raised goes through.
"""
import http.client
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, checked_stack, exchange  # noqa: E402
from test_checkout import Env  # noqa: E402

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-ingress"), os.X_OK),
                                reason="onsale-ingress is not built")

SCANNER, SCANNER2 = 900, 901


@pytest.fixture(scope="module")
def env():
    with checked_stack(partitions=1) as st:
        e = Env(st)
        e.main = st.ingress_port  # purchases go through this node (default limits)
        e.ev = st.create_event(sections=(("A", 2, 10, 5000),), seller_id=1000)
        yield e


def node(env, **limits):
    """Another ingress node with these limits; st.http stays on env.main.
    Returns its port."""
    st = env.st
    st.start_ingress(**limits)
    port = st.ingress_port
    st.ingress_port = env.main
    return port


def at(st, port, method, path, body=None, token=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    return exchange(conn, method, path, body, token)


def assert_limited(resp, name):
    s, h, b = resp
    assert s == 429, (s, b)
    assert b["error"]["code"] == "rate_limited", b
    assert int(h["retry-after"]) >= 1, h
    assert f'"{name}";q=' in h["ratelimit-policy"], h
    assert h["ratelimit"].startswith(f'"{name}";r=0;t='), h


def venue_body(name):
    return {"name": name, "city": "Utrecht", "country": "NL",
            "sections": [{"name": "A", "rows": 1, "seats_per_row": 4}]}


def venues_of(st, owner):
    return st.sql("SELECT count(*) FROM venues WHERE owner_id = %s", (owner,))[0][0]


def test_seller_writes_limited_per_user_across_nodes(env):
    st = env.st
    low = dict(ratelimit_seller_user_per_min=1, ratelimit_seller_user_burst=3)
    a, b = node(env, **low), node(env, **low)
    ev = st.create_event(seller_id=1100)  # 1000's bucket stays for the scanners' assignments
    seller = st.token(1100, "seller")
    before = venues_of(st, 1100)
    for i, port in enumerate((a, b, a)):
        s, h, v = at(st, port, "POST", "/v1/venues", venue_body(f"Hall {i}"), seller)
        assert s == 201, v
        assert h["ratelimit-policy"] == '"seller-user";q=3;w=180', h
    # Over the burst, on either node (the bucket is shared in Redis).
    assert_limited(at(st, b, "POST", "/v1/venues", venue_body("Hall 3"), seller), "seller-user")
    assert venues_of(st, 1100) == before + 3, "a refused venue was written"
    # The class covers every seller write: a pause is refused and changes nothing.
    assert_limited(at(st, a, "POST", f"/v1/events/{ev}/pause", None, seller), "seller-user")
    assert st.sql("SELECT status FROM events WHERE event_id = %s", (ev,))[0][0] == "on_sale"
    assert_limited(at(st, a, "PUT", f"/v1/venues/1/scanners/{SCANNER}", None, seller),
                   "seller-user")
    assert st.redis.keys(st.key("rl:seller:u:1100")), "the seller bucket lives in Redis"
    assert 'onsale_ingress_rate_limited_total{class="seller"} 2' in at(st, a, "GET", "/metrics")[2]
    # Another seller has its own bucket.
    s, _, v = at(st, a, "POST", "/v1/venues", venue_body("Other hall"), st.token(2000, "seller"))
    assert s == 201, v


def test_control_seller_burst_passes_with_the_limit_raised(env):
    st = env.st
    port = node(env, ratelimit_seller_user_per_min=1, ratelimit_seller_user_burst=5)
    seller = st.token(3000, "seller")
    for i in range(5):
        s, _, v = at(st, port, "POST", "/v1/venues", venue_body(f"Hall {i}"), seller)
        assert s == 201, v
    assert venues_of(st, 3000) == 5


def admitted(st, tid):
    return st.sql("SELECT admitted_at, admitted_by, code_version FROM tickets "
                  "WHERE ticket_id = %s", (tid,))[0]


def code_of(st, user, tid):
    s, _, c = st.http("GET", f"/v1/tickets/{tid}/code", token=st.token(user, "fan"))
    assert s == 200, c
    return c["scan"]


def test_scans_limited_per_scanner(env):
    st = env.st
    st.assign_scanner(SCANNER, env.ev, port=env.main)
    st.assign_scanner(SCANNER2, env.ev, port=env.main)
    tickets = env.buy(20, qty=3)
    port = node(env, ratelimit_scan_user_per_min=1, ratelimit_scan_user_burst=2)
    scanner = st.token(SCANNER, "scanner")
    for tid in tickets[:2]:
        s, h, b = at(st, port, "POST", "/v1/scans", {"scan": code_of(st, 20, tid)}, scanner)
        assert s == 200 and b["state"] == "admitted", b
        assert h["ratelimit-policy"] == '"scan-user";q=2;w=120', h
    last = tickets[2]
    before = admitted(st, last)
    assert_limited(at(st, port, "POST", "/v1/scans", {"scan": code_of(st, 20, last)}, scanner),
                   "scan-user")
    assert admitted(st, last) == before and before[0] is None, "a refused scan admitted"
    # Control: the same burst of three by another scanner through a node
    # whose burst is 3 is admitted, the third included.
    tickets2 = env.buy(21, qty=3)
    port3 = node(env, ratelimit_scan_user_per_min=1, ratelimit_scan_user_burst=3)
    for tid in tickets2:
        s, _, b = at(st, port3, "POST", "/v1/scans", {"scan": code_of(st, 21, tid)},
                     st.token(SCANNER2, "scanner"))
        assert s == 200 and b["state"] == "admitted", b


def claim_state(st, tid):
    return st.sql("SELECT owner_id, status, code_version FROM tickets WHERE ticket_id = %s",
                  (tid,))[0]


def test_a_fans_changes_limited_per_user(env):
    st = env.st
    t1, t2 = env.buy(30, qty=2)
    port = node(env, ratelimit_change_user_per_min=1, ratelimit_change_user_burst=1)
    fan = st.token(30, "fan")
    st.account(31)
    s, h, b = at(st, port, "POST", f"/v1/tickets/{t1}/transfer", {"to_user_id": 31}, fan)
    assert s == 202, b
    assert h["ratelimit-policy"] == '"change-user";q=1;w=60', h
    before = claim_state(st, t2)
    assert_limited(at(st, port, "POST", f"/v1/tickets/{t2}/cancel", None, fan), "change-user")
    time.sleep(0.5)  # a record sent anyway would be applied by now
    assert claim_state(st, t2) == before and before[1] == "valid", "a refused cancel changed it"
    st.wait_for(lambda: claim_state(st, t1)[0] == 31, 30, "the transfer applied")
    # Control: the same two changes by another fan through a node whose burst is 2.
    u1, u2 = env.buy(32, qty=2)
    port2 = node(env, ratelimit_change_user_per_min=1, ratelimit_change_user_burst=2)
    fan2 = st.token(32, "fan")
    s, _, b = at(st, port2, "POST", f"/v1/tickets/{u1}/transfer", {"to_user_id": 31}, fan2)
    assert s == 202, b
    s, _, b = at(st, port2, "POST", f"/v1/tickets/{u2}/cancel", None, fan2)
    assert s == 202, b
    st.wait_for(lambda: claim_state(st, u2)[1] == "cancelled", 30, "the cancel applied")
