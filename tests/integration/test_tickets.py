"""test_tickets.py - tickets that get you in (docs/tickets.md) against the
real stack: ingress, worker, onsale-payments and the gateway simulator.

Codes are checked against the documented algorithm, computed here from the
harness's tickets.secret (code_version read from PostgreSQL):
  * GET /v1/tickets/{id}/code: shape (8 digits, step, seconds left,
    scannable string, QR SVG), the code rotates each step, owner only (404
    for anyone else), 409 ticket_not_valid for a cancelled ticket;
  * POST /v1/scans (scanner only: 403 for fans, sellers, admins): admits
    once (200 admitted), a replay 409 already_admitted, a stale step 400
    code_expired, the previous step accepted (grace), a wrong code 400
    code_invalid, a cancelled ticket 409 ticket_not_valid, a ticket
    transferred after its code was shown 409 ticket_transferred while the
    new holder's code admits;
  * two scanners racing on one code: exactly one admits; the control
    (debug.scan_unchecked) shows the race is real without the guard;
  * who may scan where: a scanner admits only tickets of a venue its owner
    assigned it to (403 scanner_not_assigned otherwise, the same answer as
    for no ticket at all, nothing changed); another seller cannot assign to
    the venue, only scanner accounts can be assigned, and an unassign stops
    even a scan that read the ticket before it.
"""
import hashlib
import hmac
import http.client
import json
import os
import re
import socket
import sys
import threading
import time
import xml.etree.ElementTree as ET

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import TICKETS_SECRET, Stack, exchange  # noqa: E402
from test_checkout import Env  # noqa: E402

STEP_S = 5  # tickets.code_step_s of the ingress under test: rotation is seen quickly
SCANNER = 900


def expected_code(tid, version, step, secret=TICKETS_SECRET):
    """docs/tickets.md: HMAC-SHA256 of a per-ticket secret and the step,
    dynamically truncated (RFC 4226) to 8 digits."""
    per_ticket = hmac.new(secret.encode(), f"onsale-ticket-v1:{tid}:{version}".encode(),
                          hashlib.sha256).digest()
    mac = hmac.new(per_ticket, step.to_bytes(8, "big"), hashlib.sha256).digest()
    off = mac[31] & 0x0F
    return f"{(int.from_bytes(mac[off:off + 4], 'big') & 0x7FFFFFFF) % 10**8:08d}"


@pytest.fixture(scope="module")
def env():
    with Stack(partitions=1) as st:
        e = Env(st)
        # The ingress under test (st.http talks to the latest one).
        e.base = st.start_ingress(tickets_code_step_s=STEP_S)
        e.ev = st.create_event(sections=(("A", 2, 10, 5000),))
        e.venue = st.assign_scanner(SCANNER, e.ev)
        yield e


def version_of(st, tid):
    return st.sql("SELECT code_version FROM tickets WHERE ticket_id = %s", (tid,))[0][0]


def get_code(st, user, tid):
    return st.http("GET", f"/v1/tickets/{tid}/code", token=st.token(user, "fan"))


def scan(st, body, user=SCANNER, role="scanner"):
    return st.http("POST", "/v1/scans", body, token=st.token(user, role))


def err(resp):
    s, _, b = resp
    return s, (b.get("error") or {}).get("code") if isinstance(b, dict) else b


def mid_step():
    """Waits until at least 1.5 s of the current step are left, so a code
    computed now is not judged a step later than meant."""
    while STEP_S - time.time() % STEP_S < 1.5:
        time.sleep(0.1)
    return int(time.time()) // STEP_S


def test_code_shape_rotation_and_owner_only(env):
    st = env.st
    tid, = env.buy(10)
    s, _, b = get_code(st, 10, tid)
    assert s == 200, b
    now_step = int(time.time()) // STEP_S
    assert b["step"] in (now_step - 1, now_step), b
    assert b["step_seconds"] == STEP_S and 1 <= b["seconds_left"] <= STEP_S, b
    assert len(b["code"]) == 8 and b["code"].isdigit(), b
    assert b["code"] == expected_code(tid, 0, b["step"]), b
    assert b["scan"] == f"ONS1:{tid}:{b['step']}:{b['code']}", b
    assert b["ticket_id"] == tid and b["event_id"] == env.ev, b
    svg = ET.fromstring(b["qr_svg"])
    assert svg.tag.endswith("svg")
    size = int(svg.get("viewBox").split()[2])
    assert (size - 8 - 21) % 4 == 0 and size >= 29, size  # a QR symbol plus the quiet zone
    assert svg.find("{http://www.w3.org/2000/svg}path").get("d").startswith("M")
    # The code turns with the step.
    first = b
    st.wait_for(lambda: get_code(st, 10, tid)[2]["step"] > first["step"], STEP_S + 3,
                "the next step")
    s, _, b2 = get_code(st, 10, tid)
    assert b2["step"] > first["step"] and b2["code"] == expected_code(tid, 0, b2["step"]), b2
    assert b2["code"] != first["code"] or b2["step"] != first["step"]
    # Nobody else sees it; the secret never appears.
    assert err(get_code(st, 11, tid)) == (404, "not_found")
    assert err(get_code(st, 10, tid + 999999)) == (404, "not_found")
    assert TICKETS_SECRET not in str(b)


def test_only_scanners_scan(env):
    st = env.st
    body = {"ticket_id": 1, "code": "12345678"}
    for role in ("fan", "seller", "admin"):
        assert err(scan(st, body, user=5, role=role)) == (403, "forbidden"), role
    assert st.http("POST", "/v1/scans", body)[0] == 401


def test_admit_once_then_replay_refused(env):
    st = env.st
    tid, = env.buy(20)
    s, _, c = get_code(st, 20, tid)
    assert s == 200, c
    s, _, b = scan(st, {"scan": c["scan"]})
    assert s == 200 and b["state"] == "admitted" and b["ticket_id"] == tid, b
    assert b["admitted_at"] and b["seat"].startswith("A row "), b
    assert st.sql("SELECT admitted_by FROM tickets WHERE ticket_id = %s", (tid,))[0][0] == SCANNER
    assert err(scan(st, {"scan": c["scan"]})) == (409, "already_admitted")
    assert err(scan(st, {"ticket_id": tid, "code": c["code"]})) == (409, "already_admitted")
    # The holder still sees the code, marked admitted.
    assert get_code(st, 20, tid)[2]["admitted_at"] == b["admitted_at"]
    metrics = st.http("GET", "/metrics")[2]
    assert 'onsale_ingress_scans_total{result="admitted"} 1' in metrics, metrics
    assert 'onsale_ingress_scans_total{result="already_admitted"} 2' in metrics, metrics


def test_stale_step_refused_previous_step_in_grace(env):
    st = env.st
    t1, t2 = env.buy(30, qty=2)
    now = mid_step()
    stale = {"ticket_id": t1, "step": now - 3, "code": expected_code(t1, 0, now - 3)}
    assert err(scan(st, stale)) == (400, "code_expired")
    ahead = {"scan": f"ONS1:{t1}:{now + 3}:{expected_code(t1, 0, now + 3)}"}
    assert err(scan(st, ahead)) == (400, "code_expired")
    # A wrong code is not a stale one; a malformed one is a bad field.
    wrong = f"{(int(expected_code(t1, 0, now)) + 1) % 10**8:08d}"
    assert err(scan(st, {"ticket_id": t1, "step": now, "code": wrong})) == (400, "code_invalid")
    assert err(scan(st, {"ticket_id": t1, "code": wrong})) == (400, "code_invalid")
    assert err(scan(st, {"ticket_id": t1, "code": "12ab5678"})) == (400, "invalid_field")
    assert err(scan(st, {"scan": f"ONS1:{t1}:x:1"})) == (400, "invalid_field")
    assert err(scan(st, {"scan": "x", "ticket_id": t1})) == (400, "invalid_field")
    assert err(scan(st, {"ticket_id": t1})) == (400, "missing_field")
    assert err(scan(st, {"ticket_id": t1, "code": "12345678", "x": 1})) == (400, "unknown_field")
    assert st.sql("SELECT count(*) FROM tickets WHERE admitted_at IS NOT NULL AND ticket_id IN "
                  "(%s, %s)", (t1, t2))[0][0] == 0
    # One step back is within the grace: admitted (with or without the step).
    now = mid_step()
    s, _, b = scan(st, {"ticket_id": t1, "step": now - 1, "code": expected_code(t1, 0, now - 1)})
    assert s == 200 and b["state"] == "admitted", b
    s, _, b = scan(st, {"ticket_id": t2, "code": expected_code(t2, 0, now - 1)})
    assert s == 200 and b["state"] == "admitted", b
    # No such ticket: the answer a ticket of another venue gets (below).
    assert err(scan(st, {"ticket_id": 987654321, "code": "12345678"})) == \
        (403, "scanner_not_assigned")


def test_cancelled_ticket_refused(env):
    st = env.st
    tid, = env.buy(40)
    s, _, c = get_code(st, 40, tid)
    assert s == 200, c
    s, _, b = st.http("POST", f"/v1/tickets/{tid}/cancel", token=st.token(40, "fan"))
    assert s == 202, b
    st.wait_for(lambda: st.sql("SELECT status FROM tickets WHERE ticket_id = %s",
                               (tid,))[0][0] == "cancelled", 30, "ticket cancelled")
    assert err(scan(st, {"scan": c["scan"]})) == (409, "ticket_not_valid")
    assert err(get_code(st, 40, tid)) == (409, "ticket_not_valid")
    assert st.sql("SELECT admitted_at FROM tickets WHERE ticket_id = %s", (tid,))[0][0] is None


def test_transfer_rotates_the_code(env):
    st = env.st
    tid, = env.buy(50)
    s, _, old = get_code(st, 50, tid)
    assert s == 200 and version_of(st, tid) == 0, old
    st.account(51)
    s, _, b = st.http("POST", f"/v1/tickets/{tid}/transfer", {"to_user_id": 51},
                      token=st.token(50, "fan"))
    assert s == 202, b
    st.wait_for(lambda: st.sql("SELECT owner_id FROM tickets WHERE ticket_id = %s",
                               (tid,))[0][0] == 51, 30, "ticket transferred")
    # One for ingress's claim of the change, one for the owner's transfer
    # (docs/tickets.md "A change of a ticket against the door scan").
    assert version_of(st, tid) == 2
    # The code the first holder showed no longer admits, and says why.
    assert err(scan(st, {"scan": old["scan"]})) == (409, "ticket_transferred")
    assert err(scan(st, {"ticket_id": tid, "code": old["code"]})) == (409, "ticket_transferred")
    assert err(get_code(st, 50, tid)) == (404, "not_found")
    s, _, new = get_code(st, 51, tid)
    assert s == 200 and new["code"] == expected_code(tid, 2, new["step"]), new
    s, _, b = scan(st, {"scan": new["scan"]})
    assert s == 200 and b["state"] == "admitted", b


def test_a_transfer_to_an_id_without_an_account_is_refused(env):
    """A mistyped to_user_id used to give the ticket away (202) to an id
    nobody can log in as. Now 404 no_account and nothing changes: no claim,
    no rotation, no record (the owner is the same after the others' records
    are applied). Control: a node with tickets.transfer_needs_account=false
    sends it as before."""
    st = env.st
    tid, = env.buy(56)
    before = st.sql("SELECT owner_id, code_version, change_claimed_at FROM tickets "
                    "WHERE ticket_id = %s", (tid,))
    assert st.sql("SELECT count(*) FROM users WHERE user_id = 57") == [(0,)]
    s, _, b = st.http("POST", f"/v1/tickets/{tid}/transfer", {"to_user_id": 57},
                      token=st.token(56, "fan"))
    assert (s, b["error"]["code"], b["error"].get("field")) == (404, "no_account", "to_user_id"), b
    # A minted id with a users row but no sign-up (no email) is no account either.
    st.sql("INSERT INTO users (user_id) VALUES (58)")
    s, _, b = st.http("POST", f"/v1/tickets/{tid}/transfer", {"to_user_id": 58},
                      token=st.token(56, "fan"))
    assert (s, b["error"]["code"]) == (404, "no_account"), b
    assert st.sql("SELECT owner_id, code_version, change_claimed_at FROM tickets "
                  "WHERE ticket_id = %s", (tid,)) == before
    port = other_ingress(env, tickets_transfer_needs_account="false")
    s, _, b = http_at(st, port, "POST", f"/v1/tickets/{tid}/transfer", {"to_user_id": 57}, user=56)
    assert s == 202, b
    st.wait_for(lambda: st.sql("SELECT owner_id FROM tickets WHERE ticket_id = %s",
                               (tid,))[0][0] == 57, 30, "ticket transferred")


def test_a_transfer_names_its_recipient_by_email(env):
    """A fan knows their friend's email, not their user id: a transfer
    took to_user_id only. It now takes to_email instead (exactly one of
    the two), resolved to the signed-up account whose email matches
    case-insensitively, as sign-up keeps emails unique; an email nobody
    signed up with is 404 no_account (field to_email), both or neither
    400, and none of those changes the ticket. Control: main's binaries
    answer {"to_email": ...} 400 unknown_field."""
    st = env.st
    tid, = env.buy(140)
    st.account(140)  # the owner's email: user140@accounts.test
    # The friend's account, its email as sign-up stores it (as typed; kept
    # unique by lower(email)). In SQL, not POST /v1/users: a sign-up takes
    # the next id of the sequence, which a later test here expects free.
    st.account(141)
    st.sql("UPDATE users SET email = 'Friend.141@Example.ORG' WHERE user_id = 141")
    u = {"user_id": 141}
    before = st.sql("SELECT owner_id, code_version, change_claimed_at FROM tickets "
                    "WHERE ticket_id = %s", (tid,))

    def transfer(body):
        s, _, b = st.http("POST", f"/v1/tickets/{tid}/transfer", body,
                          token=st.token(140, "fan"))
        return (s, b["error"]["code"], b["error"].get("field")) if s >= 400 else (s, b)

    assert transfer({"to_user_id": u["user_id"], "to_email": "friend.141@example.org"}) == (
        400, "invalid_field", "to_email")
    assert transfer({}) == (400, "missing_field", "to_user_id")
    assert transfer({"to_email": "friend.141"}) == (400, "invalid_field", "to_email")
    assert transfer({"to_email": 141}) == (400, "invalid_field", "to_email")
    assert transfer({"to_email": "nobody.141@example.org"}) == (404, "no_account", "to_email")
    # The message names the sign-up route there is (it named POST /v1/accounts).
    b = st.http("POST", f"/v1/tickets/{tid}/transfer", {"to_email": "nobody.141@example.org"},
                token=st.token(140, "fan"))[2]
    assert "POST /v1/users" in b["error"]["message"], b
    assert transfer({"to_email": "USER140@accounts.test"}) == (400, "invalid_field", "to_email")
    assert st.sql("SELECT owner_id, code_version, change_claimed_at FROM tickets "
                  "WHERE ticket_id = %s", (tid,)) == before
    assert transfer({"to_email": "friend.141@EXAMPLE.org"}) == (
        202, {"ticket_id": tid, "state": "transferring"})
    st.wait_for(lambda: st.sql("SELECT owner_id FROM tickets WHERE ticket_id = %s",
                               (tid,))[0][0] == u["user_id"], 30, "ticket transferred")


def test_the_history_takes_limit_and_cursor_once_and_nothing_else(env):
    """GET /v1/me/tickets reads its query as the catalog does (docs/api.md
    "Errors"): a parameter it does not take is 400 unknown_field, one given
    twice 400 invalid_field, a cursor it did not issue (trailing bytes, a
    sign, upper-case hex, a third part) 400 invalid_cursor; the pages it
    issues still chain. Before, the unknown and the repeated parameters
    were ignored (200) and a cursor with bytes after it was read."""
    st = env.st
    t1, t2 = env.buy(71, qty=2)
    fan = st.token(71, "fan")

    def get(q):
        return st.http("GET", "/v1/me/tickets" + q, token=fan)

    s, _, p1 = get("?limit=1")
    assert s == 200 and len(p1["tickets"]) == 1 and p1["next_cursor"], p1
    cur = p1["next_cursor"]
    s, _, p2 = get(f"?cursor={cur}&limit=1")
    assert s == 200 and {p1["tickets"][0]["ticket_id"], p2["tickets"][0]["ticket_id"]} == \
        {t1, t2}, p2
    assert get("?")[0] == 200 and get("?limit=1&")[0] == 200
    for q, code, field in (("?foo=1", "unknown_field", None),
                           ("?limit=1&offset=5", "unknown_field", None),
                           ("?limit", "invalid_field", "limit"),
                           ("?limit=1&limit=2", "invalid_field", "limit"),
                           ("?limit=+5", "invalid_field", "limit"),
                           (f"?cursor={cur}&cursor={cur}", "invalid_field", "cursor"),
                           (f"?cursor={cur}junk", "invalid_cursor", "cursor"),
                           (f"?cursor={cur}.1", "invalid_cursor", "cursor"),
                           ("?cursor=6A.1", "invalid_cursor", "cursor"),
                           (f"?cursor=0x{cur}", "invalid_cursor", "cursor"),
                           ("?cursor=-1.5", "invalid_cursor", "cursor"),
                           ("?cursor=1.0", "invalid_cursor", "cursor"),
                           ("?cursor=", "invalid_cursor", "cursor")):
        s, _, b = get(q)
        assert (s, b["error"]["code"], b["error"].get("field")) == (400, code, field), (q, b)
    # The page sizes are options (tickets.history_default_limit and
    # tickets.history_max_limit; they were constants, 20 and 100).
    port = other_ingress(env, tickets_history_default_limit=1, tickets_history_max_limit=2)
    s, _, b = http_at(st, port, "GET", "/v1/me/tickets", user=71)
    assert s == 200 and len(b["tickets"]) == 1 and b["next_cursor"], b
    assert http_at(st, port, "GET", "/v1/me/tickets?limit=2", user=71)[0] == 200
    s, _, b = http_at(st, port, "GET", "/v1/me/tickets?limit=3", user=71)
    assert (s, b["error"]["field"]) == (400, "limit") and "1 to 2" in b["error"]["message"], b


def race(st, port, body, n=2):
    """n scanners send the same scan at once to the ingress on port."""
    out, barrier = [None] * n, threading.Barrier(n)

    def one(i):
        barrier.wait()
        out[i] = err(scan_at(st, port, body))
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sorted(out)


def scan_at(st, port, body):
    import http.client
    import json
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", "/v1/scans", body=json.dumps(body),
              headers={"Content-Type": "application/json",
                       "Authorization": f"Bearer {st.token(SCANNER, 'scanner')}"})
    r = c.getresponse()
    return r.status, r.getheaders(), json.loads(r.read() or b"null")


def test_two_scanners_one_code_admit_once_with_control(env):
    st = env.st
    t1, t2 = env.buy(60, qty=2)
    # Both scans read the ticket unadmitted, wait 1 s, then admit.
    guarded = int(st.start_ingress(debug_scan_delay_ms=1000,
                                   tickets_code_step_s=STEP_S).rsplit(":", 1)[1])
    unguarded = int(st.start_ingress(debug_scan_delay_ms=1000, debug_scan_unchecked="true",
                                     tickets_code_step_s=STEP_S).rsplit(":", 1)[1])
    st.ingress_port = int(env.base.rsplit(":", 1)[1])
    now = mid_step()
    res = race(st, guarded, {"ticket_id": t1, "code": expected_code(t1, 0, now)})
    assert res[0][0] == 200 and res[1] == (409, "already_admitted"), res
    # Control: without the guard both scanners admit the same ticket.
    now = mid_step()
    res = race(st, unguarded, {"ticket_id": t2, "code": expected_code(t2, 0, now)})
    assert [r[0] for r in res] == [200, 200], res


# ---- a change in flight (docs/tickets.md "A change of a ticket against the door scan") ----

def other_ingress(env, **opts):
    """Starts another ingress with opts; st.http keeps talking to env's.
    Returns the new one's port (for scan_at / http_at)."""
    st = env.st
    port = int(st.start_ingress(tickets_code_step_s=STEP_S, **opts).rsplit(":", 1)[1])
    st.ingress_port = int(env.base.rsplit(":", 1)[1])
    return port


def http_at(st, port, method, path, body=None, user=None):
    keep, st.ingress_port = st.ingress_port, port
    try:
        return st.http(method, path, body, token=st.token(user, "fan") if user else None)
    finally:
        st.ingress_port = keep


def claimed(st, tid):
    return st.sql("SELECT change_claimed_at FROM tickets WHERE ticket_id = %s", (tid,))[0][0]


def current_code(st, tid):
    step = mid_step()
    return {"ticket_id": tid, "step": step, "code": expected_code(tid, version_of(st, tid), step)}


def test_a_change_the_owner_ignores_leaves_the_ticket_scannable(env):
    """A cancel that passes ingress (its tickets.refund_cutoff_s is one hour)
    reaches the partition owner, whose cut-off (the default, a day) has
    passed for a show in two hours: the owner ignores it. Its batch must
    clear ingress's claim, else the ticket would show no code and admit
    nobody until tickets.change_claim_timeout_s (300 s) ran out."""
    st = env.st
    ev = st.create_event(sections=(("A", 1, 4, 2500),))
    st.assign_scanner(SCANNER, ev)
    st.sql("UPDATE events SET starts_at = now() + interval '2 hours' WHERE event_id = %s", (ev,))
    _, p = env.reserve(65, ev, 1)
    assert p["state"] == "reserved", p
    s, _, b = env.checkout(65, p["reservation"]["reservation_id"], f"tix-65-{time.time()}")
    assert s == 202, b
    o = env.wait_order(65, b["order_id"])
    assert o["state"] == "paid", o
    tid = o["tickets"][0]["ticket_id"]
    port = other_ingress(env, tickets_refund_cutoff_s=3600)
    s, _, b = http_at(st, port, "POST", f"/v1/tickets/{tid}/cancel", user=65)
    assert s == 202, b
    st.wait_for(lambda: f"ticket cancel of {tid} by user 65 ignored: the refund window has closed"
                in env.worker.output(), 20, "the owner ignored the cancel")
    st.wait_for(lambda: claimed(st, tid) is None, 20, "the claim cleared")
    assert st.sql("SELECT owner_id, status FROM tickets WHERE ticket_id = %s", (tid,)) == \
        [(65, "valid")]
    s, _, code = get_code(st, 65, tid)
    assert s == 200, code
    s, _, b = scan(st, {"scan": code["scan"]})
    assert s == 200 and b["state"] == "admitted", b
    assert st.sql("SELECT count(*) FROM outbox WHERE kind = 'refund' AND ticket_id = %s",
                  (tid,)) == [(0,)]


def test_a_claim_older_than_the_bound_no_longer_blocks(env):
    """A claim whose record was never sent (ingress died between the claim
    and the send: the state is made here in SQL) blocks the code, the scan
    and another change for tickets.change_claim_timeout_s, then until the
    control lane is settled past it (its owner is running); then the ticket
    works again. Control: while it is younger it blocks."""
    st = env.st
    tid, = env.buy(66)
    # small Kafka timeouts: a claim past the bound is freed once the control
    # lane is settled past it, 2 x produce + request timeout after it
    port = other_ingress(env, tickets_change_claim_timeout_s=3, kafka_produce_timeout_ms=1000,
                         kafka_request_timeout_ms=1000, monitor_interval_ms=200)
    st.sql("UPDATE tickets SET code_version = code_version + 1, change_claimed_at = now() "
           "WHERE ticket_id = %s", (tid,))
    assert err(http_at(st, port, "GET", f"/v1/tickets/{tid}/code", user=66)) == \
        (409, "ticket_change_pending")
    assert err(scan_at(st, port, current_code(st, tid))) == (409, "ticket_change_pending")
    assert err(http_at(st, port, "POST", f"/v1/tickets/{tid}/transfer", {"to_user_id": 67},
                       user=66)) == (409, "ticket_change_pending")
    # env's ingress has the default bound (300 s): still blocked there.
    st.wait_for(lambda: http_at(st, port, "GET", f"/v1/tickets/{tid}/code", user=66)[0] == 200,
                15, "the claim timed out")
    assert err(get_code(st, 66, tid)) == (409, "ticket_change_pending")
    assert scan_at(st, port, current_code(st, tid))[2]["state"] == "admitted"


def test_a_claim_past_the_bound_blocks_while_its_owner_lags(env):
    """A cancel is claimed and sent; its partition owner is stopped past
    tickets.change_claim_timeout_s. Freed by age alone (the first version of
    the marker), the ticket's code showed and a scan admitted it, then the
    owner woke, applied the cancel and refunded the admitted ticket. The
    claim now blocks until the control lane is settled past it, which a
    stopped owner is not: code and scan stay refused, and once the owner
    runs the cancel applies once, never admitted."""
    import signal
    st = env.st
    tid, = env.buy(69)
    port = other_ingress(env, tickets_change_claim_timeout_s=1, kafka_produce_timeout_ms=1000,
                         kafka_request_timeout_ms=1000, monitor_interval_ms=200)
    env.worker.popen.send_signal(signal.SIGSTOP)
    try:
        assert http_at(st, port, "POST", f"/v1/tickets/{tid}/cancel", user=69)[0] == 202
        time.sleep(6)  # past the bound and the settle point (1 + 3 s)
        assert err(http_at(st, port, "GET", f"/v1/tickets/{tid}/code", user=69)) == \
            (409, "ticket_change_pending")
        assert err(scan_at(st, port, current_code(st, tid))) == (409, "ticket_change_pending")
    finally:
        env.worker.popen.send_signal(signal.SIGCONT)
    st.wait_for(lambda: st.sql("SELECT status FROM tickets WHERE ticket_id = %s", (tid,)) ==
                [("cancelled",)], 30, "the cancel applied")
    assert st.sql("SELECT admitted_at, change_claimed_at FROM tickets WHERE ticket_id = %s",
                  (tid,)) == [(None, None)]
    assert st.sql("SELECT count(*) FROM outbox WHERE ticket_id = %s", (tid,)) == [(1,)]


def test_a_change_that_could_not_be_sent_leaves_no_claim(env):
    """An ingress whose broker is gone claims the ticket, cannot send the
    cancel (503 queue_unavailable: the record is not in the log) and clears
    its claim, so the ticket shows its code and admits at once rather than
    after tickets.change_claim_timeout_s. The claim did happen: the code
    rotated."""
    st = env.st
    tid, = env.buy(68)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    port = other_ingress(env, kafka_brokers=dead, kafka_produce_timeout_ms=1000)
    before = version_of(st, tid)
    assert err(http_at(st, port, "POST", f"/v1/tickets/{tid}/cancel", user=68)) == \
        (503, "queue_unavailable")
    assert version_of(st, tid) == before + 1 and claimed(st, tid) is None
    s, _, code = get_code(st, 68, tid)
    assert s == 200, code
    assert scan(st, {"scan": code["scan"]})[2]["state"] == "admitted"
    assert st.sql("SELECT status FROM tickets WHERE ticket_id = %s", (tid,)) == [("valid",)]


# ---- who may scan where (docs/tickets.md "Who may scan where") -----------------------------

OTHER_SELLER = 2000  # owns the venue of the event below; env.ev's is seller 1000's


def venue_call(st, method, venue, user, seller=OTHER_SELLER, role="seller"):
    path = f"/v1/venues/{venue}/scanners" + (f"/{user}" if user is not None else "")
    return st.http(method, path, token=st.token(seller, role))


def admitted(st, tid):
    return st.sql("SELECT admitted_at, admitted_by FROM tickets WHERE ticket_id = %s", (tid,))[0]


def test_a_scanner_admits_only_at_its_venues(env):
    """Failed before venue binding: any scanner admitted any ticket of any
    seller's event (the first scan here answered 200). A scanner assigned
    to another venue, or to none, is refused with one answer whatever the
    ticket (valid, admitted, wrong code, no such ticket), and nothing
    changes; control: the same scanner, once the venue's owner assigns it,
    admits the same code."""
    st = env.st
    ev = st.create_event(sections=(("A", 1, 6, 2500),), seller_id=OTHER_SELLER)
    venue = st.sql("SELECT venue_id FROM events WHERE event_id = %s", (ev,))[0][0]
    t1, t2, t3 = env.buy(80, qty=3, ev=ev)
    loner = 902  # a scanner account assigned nowhere
    st.scanner_account(loner)
    # t3 admitted by the venue's own scanner, for the "already admitted" probe.
    own = 903
    st.assign_scanner(own, ev)
    now = mid_step()
    assert scan(st, {"ticket_id": t3, "code": expected_code(t3, 0, now)}, user=own)[0] == 200
    before = st.sql("SELECT ticket_id, admitted_at, code_version, status FROM tickets "
                    "ORDER BY ticket_id")
    answers, counted = set(), scans_counted(st, "scanner_not_assigned")
    for who in (SCANNER, loner):
        now = mid_step()
        for body in ({"ticket_id": t1, "code": expected_code(t1, 0, now)},
                     {"scan": f"ONS1:{t1}:{now}:{expected_code(t1, 0, now)}"},
                     {"ticket_id": t1, "code": "00000000"},
                     {"ticket_id": t3, "code": expected_code(t3, 0, now)},
                     {"ticket_id": t1 + 10**9, "code": "12345678"}):
            s, h, b = scan(st, body, user=who)
            assert (s, b["error"]["code"]) == (403, "scanner_not_assigned"), (who, body, b)
            assert "retry-after" not in h
            answers.add(json.dumps(b, sort_keys=True))
    assert len(answers) == 1, answers  # one body: nothing told about the ticket
    # Read at the door for a forged QR too: worded for a missing ticket as well.
    # (and for an event-bound scanner: the message names events too)
    assert b["error"]["message"] == ("This ticket cannot be admitted by you: it does not exist "
                                     "or is for a venue or event you are not assigned to."), b
    assert st.sql("SELECT ticket_id, admitted_at, code_version, status FROM tickets "
                  "ORDER BY ticket_id") == before
    assert scans_counted(st, "scanner_not_assigned") == counted + 10
    # Control: assigned by the venue's owner, the same scanner admits.
    s, _, b = venue_call(st, "PUT", venue, SCANNER)
    assert s == 200 and b == {"venue_id": venue, "user_id": SCANNER,
                              "assigned_at": b["assigned_at"]}, b  # nothing of the account
    now = mid_step()
    s, _, b = scan(st, {"ticket_id": t1, "code": expected_code(t1, 0, now)})
    assert s == 200 and b["state"] == "admitted", b
    assert admitted(st, t1)[1] == SCANNER
    # ... and still only there: the loner is still refused on t2.
    assert err(scan(st, {"ticket_id": t2, "code": expected_code(t2, 0, now)}, user=loner)) == \
        (403, "scanner_not_assigned")
    assert admitted(st, t2) == (None, None)


def test_only_the_venues_owner_assigns_and_only_scanners(env):
    """Seller 1000 (env.ev's venue) cannot assign, remove or list scanners
    of seller 2000's venue (403, nothing changed); nobody can assign an
    account without the scanner role (409 not_a_scanner) or to no venue
    (404); the owner and an admin can; assigning twice changes nothing."""
    st = env.st
    ev = st.create_event(sections=(("A", 1, 2, 2500),), seller_id=OTHER_SELLER)
    venue = st.sql("SELECT venue_id FROM events WHERE event_id = %s", (ev,))[0][0]
    fan_account = st.sql("INSERT INTO users (display_name) VALUES ('A fan') RETURNING user_id")[0][0]
    scanner_b = 904
    st.scanner_account(scanner_b)

    def rows():
        return st.sql("SELECT venue_id, scanner_id, assigned_by FROM venue_scanners "
                      "ORDER BY 1, 2")
    before = rows()
    for method in ("PUT", "DELETE"):
        assert err(venue_call(st, method, venue, scanner_b, seller=1000)) == (403, "forbidden")
    assert err(venue_call(st, "GET", venue, None, seller=1000)) == (403, "forbidden")
    # The other seller's own venue does not help: still 403 on this one.
    assert err(venue_call(st, "PUT", env.venue, scanner_b, seller=OTHER_SELLER)) == \
        (403, "forbidden")
    for role in ("fan", "scanner"):
        assert err(venue_call(st, "PUT", venue, scanner_b, role=role)) == (403, "forbidden")
    assert err(venue_call(st, "PUT", venue, fan_account)) == (409, "not_a_scanner")
    assert err(venue_call(st, "PUT", venue, 777777)) == (409, "not_a_scanner")  # no account
    assert err(venue_call(st, "PUT", 10**12, scanner_b)) == (404, "venue_not_found")
    assert err(venue_call(st, "PUT", "0x1", scanner_b)) == (400, "invalid_id")
    assert rows() == before
    # Control: the owner assigns (twice: one row), an admin too; the owner lists.
    for _ in range(2):
        s, _, b = venue_call(st, "PUT", venue, scanner_b)
        assert s == 200 and b["user_id"] == scanner_b, b
    s, _, b = venue_call(st, "PUT", venue, SCANNER, seller=1, role="admin")
    assert s == 200 and b["user_id"] == SCANNER, b
    assert {(venue, SCANNER, 1), (venue, scanner_b, OTHER_SELLER)} <= set(rows())
    s, _, b = venue_call(st, "GET", venue, None)
    assert s == 200 and b["venue_id"] == venue, b
    assert [x["user_id"] for x in b["scanners"]] == [scanner_b, SCANNER], b
    # Nothing of the accounts: a seller walking ids learns only the role.
    assert all(set(x) == {"venue_id", "user_id", "assigned_at"} for x in b["scanners"]), b
    assert len(rows()) == len(before) + 2


def test_a_venues_scanners_are_capped(env):
    """tickets.scanners_per_venue bounds a venue's list: one more is 409
    invalid_state and nothing is added; one already there is still fine; a
    cap lowered later hides no assignment from the list."""
    st = env.st
    ev = st.create_event(sections=(("A", 1, 2, 2500),), seller_id=OTHER_SELLER)
    venue = st.sql("SELECT venue_id FROM events WHERE event_id = %s", (ev,))[0][0]
    port = other_ingress(env, tickets_scanners_per_venue=1)
    for u in (905, 906):
        st.scanner_account(u)
    keep, st.ingress_port = st.ingress_port, port
    try:
        assert venue_call(st, "PUT", venue, 905)[0] == 200
        assert err(venue_call(st, "PUT", venue, 906)) == (409, "invalid_state")
        assert venue_call(st, "PUT", venue, 905)[0] == 200
    finally:
        st.ingress_port = keep
    assert st.sql("SELECT scanner_id FROM venue_scanners WHERE venue_id = %s", (venue,)) == \
        [(905,)]
    # The cap lowered after assignments were made (906 assigned through the
    # ingress with the default cap): the list still shows every one, so the
    # owner can see and remove them. Failed on 425f390: GET listed only the
    # first tickets.scanners_per_venue.
    assert venue_call(st, "PUT", venue, 906)[0] == 200
    keep, st.ingress_port = st.ingress_port, port
    try:
        s, _, b = venue_call(st, "GET", venue, None)
        assert s == 200 and [x["user_id"] for x in b["scanners"]] == [905, 906], b
        assert venue_call(st, "DELETE", venue, 906)[0] == 204
    finally:
        st.ingress_port = keep
    assert st.sql("SELECT scanner_id FROM venue_scanners WHERE venue_id = %s", (venue,)) == \
        [(905,)]


def put_while_venue_locked(st, venue, user, lock, wait_s):
    """PUTs user on venue from a thread while another transaction holds
    venue's row with lock. Returns the answer if it came within wait_s,
    else None; either way the lock is released and the PUT finished."""
    import psycopg2
    from harness import pg_dsn
    conn = psycopg2.connect(pg_dsn(st.db))
    got = {}
    try:
        conn.cursor().execute(f"SELECT 1 FROM venues WHERE venue_id = %s {lock}", (venue,))
        t = threading.Thread(target=lambda: got.update(r=venue_call(st, "PUT", venue, user)))
        t.start()
        t.join(wait_s)
        early = got.get("r")
    finally:
        conn.rollback()
        conn.close()
    t.join(30)
    assert got["r"][0] == 200, got
    return early


def test_an_assignment_does_not_wait_for_an_events_foreign_key_check(env):
    """Failed on 425f390: PUT locked the venue FOR UPDATE, which waits for
    the FOR KEY SHARE that an INSERT INTO events naming the venue holds
    until it commits (and blocks the next one). Now the PUT checks the owner
    without a lock and then locks FOR NO KEY UPDATE: it answers while such a
    share lock is held. Control: a lock of the same strength (another PUT's)
    still makes it wait, so the first half would see a wait."""
    st = env.st
    ev = st.create_event(sections=(("A", 1, 2, 2500),), seller_id=OTHER_SELLER)
    venue = st.sql("SELECT venue_id FROM events WHERE event_id = %s", (ev,))[0][0]
    for u in (914, 915):
        st.scanner_account(u)
    s = put_while_venue_locked(st, venue, 914, "FOR KEY SHARE", 5)
    assert s is not None and s[0] == 200, s
    assert put_while_venue_locked(st, venue, 915, "FOR NO KEY UPDATE", 1.5) is None
    assert st.sql("SELECT scanner_id FROM venue_scanners WHERE venue_id = %s ORDER BY 1",
                  (venue,)) == [(914,), (915,)]


def test_the_upgrade_assigns_the_scanners_that_admitted_at_a_venue(env):
    """Migration 0017 on a database that already has admitted tickets (this
    one, its venue_scanners dropped and 0017 applied again: the schema
    before 0017 plus the history). Failed before the backfill: the table
    came up empty, so every scanner was refused at its next scan. Now each
    (venue, admitted_by) of an admitted ticket is assigned, as by the
    venue's owner, when admitted_by is still an account holding the scanner
    role; an admitter whose role was revoked, or with no account, is not;
    a scanner that never admitted is not (the operator assigns it)."""
    st = env.st
    ev = st.create_event(sections=(("A", 1, 4, 2500),), seller_id=OTHER_SELLER)
    venue = st.sql("SELECT venue_id FROM events WHERE event_id = %s", (ev,))[0][0]
    t1, t2, t3, t4 = env.buy(92, qty=4, ev=ev)
    for u in (911, 912, 913):
        st.scanner_account(u)
    # History: 911 admitted t1 (through the door), 912 admitted t2 and lost
    # the role since, an id without an account admitted t3 (a minted token,
    # before accounts); 913 is assigned but never admitted anything.
    st.assign_scanner(911, ev)
    now = mid_step()
    assert scan(st, {"ticket_id": t1, "code": expected_code(t1, 0, now)}, user=911)[0] == 200
    st.sql("UPDATE tickets SET admitted_at = now(), admitted_by = %s WHERE ticket_id = %s",
           (912, t2))
    st.sql("UPDATE tickets SET admitted_at = now(), admitted_by = %s WHERE ticket_id = %s",
           (777913, t3))
    st.sql("UPDATE users SET roles = '{fan}' WHERE user_id = 912")
    st.assign_scanner(913, ev)
    # Every other assignment in this database, as the backfill would make it
    # from the history (env's scanners admitted tickets at env's venue).
    expected = set(st.sql(
        "SELECT DISTINCT e.venue_id, t.admitted_by, v.owner_id FROM tickets t "
        "JOIN events e USING (event_id) JOIN venues v USING (venue_id) "
        "JOIN users u ON u.user_id = t.admitted_by AND 'scanner' = ANY (u.roles)"))
    assert (venue, 911, OTHER_SELLER) in expected, expected
    saved = st.sql("SELECT venue_id, scanner_id, assigned_by, assigned_at FROM venue_scanners")
    path = os.path.join(os.path.dirname(__file__), "..", "..", "schemas", "migrations",
                        "0017_venue_scanners.sql")
    try:
        st.sql("DROP TABLE venue_scanners")
        st.sql(open(path).read())
        got = st.sql("SELECT venue_id, scanner_id, assigned_by FROM venue_scanners")
        assert set(got) == expected and len(got) == len(expected), (got, expected)
        assert [r[:2] for r in got if r[0] == venue] == [(venue, 911)]
        # ... and the row lets 911 admit at its venue at once.
        now = mid_step()
        s, _, b = scan(st, {"ticket_id": t4, "code": expected_code(t4, 0, now)}, user=911)
        assert s == 200 and b["state"] == "admitted", b
    finally:
        st.sql("DELETE FROM venue_scanners")
        for row in saved:
            st.sql("INSERT INTO venue_scanners (venue_id, scanner_id, assigned_by, assigned_at) "
                   "VALUES (%s, %s, %s, %s)", row)


def test_an_unassign_stops_the_next_scan_and_one_in_flight(env):
    """DELETE takes effect at once: the next scan is refused, and a scan
    that read the ticket (assigned then) before the unassign committed is
    refused by its UPDATE (debug.scan_delay_ms holds it between the two).
    Control: the same delayed scan admits when nobody unassigns."""
    st = env.st
    ev = st.create_event(sections=(("A", 1, 4, 2500),), seller_id=OTHER_SELLER)
    t1, t2, t3 = env.buy(81, qty=3, ev=ev)
    sc = 907
    venue = st.assign_scanner(sc, ev)
    slow = other_ingress(env, debug_scan_delay_ms=1500)
    # Control: the delayed scan admits.
    now = mid_step()
    s, _, b = scan_at_as(st, slow, {"ticket_id": t1, "code": expected_code(t1, 0, now)}, sc)
    assert s == 200 and b["state"] == "admitted", b
    # Unassigned while the scan sleeps between its read and its UPDATE.
    now = mid_step()
    out = []

    def held_scan():
        t0 = time.monotonic()
        out.append(scan_at_as(st, slow, {"ticket_id": t2, "code": expected_code(t2, 0, now)}, sc))
        out.append(time.monotonic() - t0)
    th = threading.Thread(target=held_scan)
    th.start()
    time.sleep(0.5)
    assert venue_call(st, "DELETE", venue, sc)[0] == 204
    th.join()
    assert err(out[0]) == (403, "scanner_not_assigned"), out
    # It slept debug.scan_delay_ms, which only a scan whose read passed does:
    # the refusal came from the UPDATE's re-check, not from a read that ran
    # after the DELETE (that one answers at once and proves nothing).
    assert out[1] >= 1.5, out
    assert admitted(st, t2) == (None, None)
    # The next scan is refused too; removing again is still 204; listed no more.
    assert err(scan(st, {"ticket_id": t3, "code": expected_code(t3, 0, mid_step())}, user=sc)) \
        == (403, "scanner_not_assigned")
    assert venue_call(st, "DELETE", venue, sc)[0] == 204
    assert venue_call(st, "GET", venue, None)[2]["scanners"] == []
    assert admitted(st, t3) == (None, None)


def scan_at_as(st, port, body, user):
    """A scan by user to the ingress on port, on its own connection (safe
    from a thread while st.http is used)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    return exchange(conn, "POST", "/v1/scans", body, st.token(user, "scanner"))


def scans_counted(st, result):
    m = re.search(r'onsale_ingress_scans_total\{result="%s"\} (\d+)' % result,
                  st.http("GET", "/metrics")[2])
    return int(m.group(1)) if m else 0


# ---- the refund cut-off at one instant (docs/tickets.md "The refund cut-off") ---------------

CUTOFF_S = 86400  # tickets.refund_cutoff_s of both env's worker and ingress (the default)
BUY_S = 12  # a purchase and another ingress's start take 2-6 s under ASan on a loaded box


def cancel_near_cutoff(env, user, lead_s, delay_ms=3000):
    """A ticket of an event whose refund cut-off falls ~lead_s after the
    cancel is judged, cancelled through an ingress that takes delay_ms
    between judging the rules and sending (debug.ticket_change_delay_ms).
    Returns (the cancel's answer, ticket id)."""
    st = env.st
    ev = st.create_event(sections=(("A", 1, 2, 2500),))
    # The owner loads starts_at when the sale's first record comes: set it first.
    # BUY_S covers the purchase below (the cut-off must still be ahead);
    # the test then sleeps the rest of it.
    (starts,), = st.sql("UPDATE events SET starts_at = now() + make_interval(secs => %s) "
                        "WHERE event_id = %s RETURNING extract(epoch FROM starts_at)::float8",
                        (CUTOFF_S + BUY_S, ev))
    tid, = env.buy(user, ev=ev)
    port = other_ingress(env, debug_ticket_change_delay_ms=delay_ms)
    cutoff_at = starts - CUTOFF_S
    wait = cutoff_at - lead_s - time.time()
    assert wait > 0, f"buying took too long ({-wait:.1f} s late)"
    time.sleep(wait)
    return http_at(st, port, "POST", f"/v1/tickets/{tid}/cancel", user=user), tid


def test_a_cancel_accepted_before_the_cutoff_is_applied(env):
    """The cancel is judged 1.5 s before the refund cut-off, and its claim
    and send take 3 s, so the record leaves after the cut-off. Failed
    before: ingress judged at its read (202) and the partition owner at the
    record's send time, after the cut-off, and ignored it ("the refund
    window has closed"): the fan was told it was accepted and nothing
    happened. Now the record carries the instant ingress judged at and the
    owner judges at that one: cancelled and refunded once."""
    st = env.st
    (s, _, b), tid = cancel_near_cutoff(env, 90, lead_s=1.5)
    assert s == 202 and b["state"] == "cancelling", b
    st.wait_for(lambda: st.sql("SELECT status, change_claimed_at FROM tickets "
                               "WHERE ticket_id = %s", (tid,)) == [("cancelled", None)], 30,
                "the accepted cancel applied")
    assert f"ticket cancel of {tid} by user 90 ignored" not in env.worker.output()
    st.wait_for(lambda: st.sql("SELECT count(*) FROM outbox WHERE kind = 'refund' AND "
                               "ticket_id = %s", (tid,)) == [(1,)], 30, "one refund")


LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def fast_ingress(env, offset):
    """Starts another ingress whose wall clock runs offset ahead
    (libfaketime preloaded, as test_ha_clock_skew does). Returns its port."""
    from harness import BIN, Proc, free_port
    st = env.st
    port = free_port()
    e = st.env(http_port=port, tickets_code_step_s=STEP_S)
    assert os.path.exists(LIBFAKETIME), "libfaketime missing: run scripts/setup (package faketime)"
    e.update(LD_PRELOAD=LIBFAKETIME, FAKETIME=offset, FAKETIME_DONT_FAKE_MONOTONIC="1")
    e["ASAN_OPTIONS"] = (e.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")
    p = Proc("ingress-fast", [os.path.join(BIN, "onsale-ingress")], e,
             os.path.join(st.logdir, "ingress-fast.log"))
    st.procs.append(p)
    keep, st.ingress_port = st.ingress_port, port
    try:
        st.wait_for(st._healthy, 30, "fast ingress /healthz", proc=p)
    finally:
        st.ingress_port = keep
    return port, p


def test_a_fast_ingress_clock_does_not_close_the_refund_window(env):
    """An ingress whose clock is 10 minutes fast, a cancel 5 minutes before
    the cut-off by PostgreSQL's clock. Failed before: the change was judged
    at max(ingress clock, PostgreSQL's now), unbounded, so the window closed
    10 minutes early (409 refund_window_closed). Now the judged instant is at
    most clock.max_ahead_ms (2 s) past PostgreSQL's: 202, cancelled and
    refunded, and the clamp logged at warn. Control: the same fast ingress
    still refuses a cancel past the cut-off by PostgreSQL's clock."""
    st = env.st
    port, proc = fast_ingress(env, "+10m")
    evs = []
    for lead_s in (300, -5):
        ev = st.create_event(sections=(("A", 1, 2, 2500),))
        st.sql("UPDATE events SET starts_at = now() + make_interval(secs => %s) "
               "WHERE event_id = %s", (CUTOFF_S + lead_s, ev))
        evs.append(ev)
    tid, = env.buy(93, ev=evs[0])
    late, = env.buy(94, ev=evs[1])
    s, _, b = http_at(st, port, "POST", f"/v1/tickets/{tid}/cancel", user=93)
    assert s == 202 and b["state"] == "cancelling", b
    st.wait_for(lambda: st.sql("SELECT status FROM tickets WHERE ticket_id = %s", (tid,)) ==
                [("cancelled",)], 30, "the cancel applied")
    st.wait_for(lambda: st.sql("SELECT count(*) FROM outbox WHERE kind = 'refund' AND "
                               "ticket_id = %s", (tid,)) == [(1,)], 30, "one refund")
    assert "ms ahead of PostgreSQL's" in proc.output()
    # Control: past the cut-off by PostgreSQL's clock, the fast node refuses.
    assert err(http_at(st, port, "POST", f"/v1/tickets/{late}/cancel", user=94)) == \
        (409, "refund_window_closed")
    assert st.sql("SELECT status, change_claimed_at FROM tickets WHERE ticket_id = %s",
                  (late,)) == [("valid", None)]
    st.discard(proc)  # libfaketime's node cannot stop in time (harness)


def test_a_cancel_judged_after_the_cutoff_is_refused_at_once(env):
    """Control of the one above: the same slow ingress judging 1.5 s after
    the cut-off refuses (409 refund_window_closed) before anything is
    claimed or sent, so the boundary is the judged instant on both sides."""
    st = env.st
    (s, _, b), tid = cancel_near_cutoff(env, 91, lead_s=-1.5)
    assert (s, b["error"]["code"]) == (409, "refund_window_closed"), b
    assert st.sql("SELECT status, code_version, change_claimed_at FROM tickets "
                  "WHERE ticket_id = %s", (tid,)) == [("valid", 0, None)]
