"""test_authz_matrix.py - hostile *authenticated* clients: what a signed-in
fan, seller or scanner can do to things that are not theirs, and races on
tickets (docs/api.md "Auth", docs/security.md, docs/tickets.md).

test_ingress_hostile_routes.py sends malformed input to every operation;
this file sends well-formed requests as the wrong principal:

  * cross-user access (IDOR): fan B (and an admin, and B as a seller) on
    fan A's intent, reservation, order and tickets: 404 not_found (ids are
    not confirmed to exist), nothing changed (row counts, the rows
    themselves, Redis keys); ids of one kind used as another: 404;
  * seller B on seller A's event (edit, pause, resume, cancel, admission,
    proof of work) and venue (an event on it, assigning, removing or
    listing its scanners): 403 forbidden, nothing changed;
  * every role-restricted route of ingress/routes.c under every role it
    does not admit: 403 forbidden;
  * tokens over HTTP: another secret, alg none, no signature, expired
    (also once cached valid), not yet valid, an unknown role, a bad sub:
    401 unauthorized;
  * the old owner of a transferred or cancelled ticket: 404 on every
    ticket route;
  * an admitted ticket can be neither cancelled (refunded) nor transferred:
    409 already_admitted, nothing changed (failed before the fix: 202, and
    the cancel refunded a ticket that had got its holder in);
  * races, each with the partition owner stopped while the requests run so
    that all of them pass ingress's checks against rows the owner has not
    changed yet: two transfers of one ticket, a transfer against a cancel,
    two cancels (one 202, the other 409 ticket_change_pending: the claim
    marker; before it both answered 202 and the owner dropped the second),
    two checkouts of one hold with two keys (both 202: one paid, one failed
    not_held, one charge), one key from two connections, a cancel against
    the door scan, a cancel or transfer in flight against the code route
    and the scan (409 ticket_change_pending; failed before the marker: the
    new code was shown and admitted, then refunded); and an Idempotency-Key
    reused by another user is not a replay.

Each refusal has its control: the right principal's same request succeeds
(the reads in the IDOR cases, the mutations after them), so a check that
stopped refusing, or a route that stopped working, both fail here.
"""
import base64
import hashlib
import hmac
import json
import os
import re
import signal
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import SECRET, checked_stack, create_event_via_api, make_token  # noqa: E402
from test_tickets import expected_code  # noqa: E402
from test_checkout import Env, reconcile, settled  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

A, B, C = 10, 11, 12          # fans: A owns things, B attacks, C receives
S1, S2 = 500, 501             # sellers: S1 owns the events, S2 attacks
ADMIN, SCANNER = 900, 950
SCANNER2 = 951                # a scanner account S1 assigns in the seller cases' control

# the limits are not what is under test (test_write_limits.py tests them)
LIMITED = ("join", "poll", "checkout", "catalog", "seller", "scan", "change", "read")
LIMITS = {**{f"ratelimit_{c}_{k}": 1000000 for c in LIMITED
             for k in ("user_burst", "addr_burst")},
          **{f"ratelimit_{c}_{k}": 6000000 for c in LIMITED
             for k in ("user_per_min", "addr_per_min")}}


def err(resp):
    s, _, b = resp
    return s, (b.get("error") or {}).get("code") if isinstance(b, dict) else None


def snapshot(st):
    """Row counts of every table, the rows a hostile request could touch,
    and the module's Redis keys."""
    tables = [t for (t,) in st.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    counts = {t: st.sql(f'SELECT count(*) FROM "{t}"')[0][0] for t in tables}
    rows = {
        "tickets": st.sql("SELECT ticket_id, owner_id, status, code_version, admitted_at "
                          "FROM tickets ORDER BY ticket_id"),
        "intents": st.sql("SELECT intent_seq, state FROM intents ORDER BY intent_seq"),
        "events": st.sql("SELECT event_id, name, status, description, max_active_holds, "
                         "admissions_per_minute, pow_difficulty FROM events ORDER BY event_id"),
        "tiers": st.sql("SELECT * FROM price_tiers ORDER BY 1, 2"),
        "orders": st.sql("SELECT order_id, state FROM orders ORDER BY order_id"),
        "venue_scanners": st.sql("SELECT venue_id, scanner_id FROM venue_scanners ORDER BY 1, 2"),
    }
    keys = sorted(k for k in st.redis.scan_iter(match=st.prefix + "*", count=10000)
                  if ":rl:" not in k)
    return counts, rows, keys


def quiet(st):
    """Waits until a control's effects (records the partition owner applies
    after the 202) have landed: two snapshots 0.4 s apart agree."""
    prev = snapshot(st)
    for _ in range(50):
        time.sleep(0.4)
        cur = snapshot(st)
        if cur[0] == prev[0] and cur[1] == prev[1] and set(cur[2]) == set(prev[2]):
            return cur
        prev = cur
    raise TimeoutError("the stack did not settle")


def same(before, after):
    """Nothing changed: counts and rows equal, no Redis key made (one may
    expire meanwhile)."""
    return before[0] == after[0] and before[1] == after[1] and set(after[2]) <= set(before[2])


@pytest.fixture(scope="module")
def env():
    with checked_stack(partitions=1) as st:
        e = Env(st)
        st.start_ingress(**LIMITS)
        e.s1, e.s2 = st.token(S1, "seller"), st.token(S2, "seller")
        e.ev = create_event_via_api(st, e.s1, 20, "Owned by S1", max_per_user=4)
        e.ev2 = create_event_via_api(st, e.s1, 20, "S1's second")
        e.ev3 = create_event_via_api(st, e.s1, 5, "Role table target")
        e.venue = st.sql("SELECT venue_id FROM events WHERE event_id = %s", (e.ev,))[0][0]
        # The scanner admits at S1's venues (each event made its own).
        for ev in (e.ev, e.ev2, e.ev3):
            st.assign_scanner(SCANNER, ev)
        st.scanner_account(SCANNER2)
        # A: paid order of two tickets on ev; a held reservation on ev2.
        e.intent_paid, p = e.reserve(A, e.ev, 2)
        s, _, b = e.checkout(A, p["reservation"]["reservation_id"], "authz-a-1")
        assert s == 202, b
        e.oid = b["order_id"]
        o = e.wait_order(A, e.oid)
        assert o["state"] == "paid", o
        e.t1, e.t2 = [t["ticket_id"] for t in o["tickets"]]
        e.intent_held, p2 = e.reserve(A, e.ev2, 1)
        assert p2["state"] == "reserved", p2
        e.res = p2["reservation"]["reservation_id"]
        yield e


# ---- 1. cross-user access to a fan's things ------------------------------------------------

def idor_cases(e):
    """(label, method, path, body, headers, the owner's success status or
    None when the owner's request would change something)."""
    key = {"Idempotency-Key": "authz-steal"}
    return [
        ("intent_get", "GET", f"/v1/intents/{e.intent_held}", None, None, 200),
        ("intent_get_paid", "GET", f"/v1/intents/{e.intent_paid}", None, None, 200),
        ("order_get", "GET", f"/v1/orders/{e.oid}", None, None, 200),
        ("ticket_code", "GET", f"/v1/tickets/{e.t1}/code", None, None, 200),
        ("intent_delete", "DELETE", f"/v1/intents/{e.intent_held}", None, None, None),
        ("reservation_delete", "DELETE", f"/v1/reservations/{e.res}", None, None, None),
        ("checkout", "POST", f"/v1/reservations/{e.res}/checkout",
         {"payment_method": "pm_card_visa"}, key, None),
        # To a third user (to the attacker themself is 400 before any read).
        ("ticket_transfer", "POST", f"/v1/tickets/{e.t1}/transfer", {"to_user_id": C}, None, None),
        ("ticket_cancel", "POST", f"/v1/tickets/{e.t1}/cancel", None, None, None),
    ]


# Who attacks: another fan, an admin (no override on fans' things), the same
# other user as a seller and as a scanner.
ATTACKERS = [(B, "fan"), (ADMIN, "admin"), (B, "seller"), (SCANNER, "scanner")]
IDOR_LABELS = [c[0] for c in idor_cases(type("E", (), dict(
    intent_held="x", intent_paid="x", oid="x", t1=1, res="x"))())]


@pytest.mark.parametrize("who", ATTACKERS, ids=[f"{r}{u}" for u, r in ATTACKERS])
@pytest.mark.parametrize("label", IDOR_LABELS)
def test_another_users_things_are_404_and_unchanged(env, label, who):
    st = env.st
    case = {c[0]: c for c in idor_cases(env)}[label]
    _, method, path, body, headers, owner_ok = case
    tok = st.token(*who)
    before = quiet(st)
    assert err(st.http(method, path, body, token=tok, headers=headers)) == (404, "not_found"), case
    time.sleep(0.3)  # a record wrongly produced would reach the owner by now
    assert same(before, snapshot(st)), case
    if owner_ok:
        # Control: the owner (under any role: ids are bound to the user) reads it.
        for role in ("fan", "seller"):
            s, _, b = st.http(method, path, body, token=st.token(A, role), headers=headers)
            assert s == owner_ok, (case, role, b)


def test_a_queued_intent_is_the_owners_only(env):
    """A queued intent's poll is answered at the accept gate from memory
    (ing_route_intent_get_now): the same refusals hold there. The worker
    is stopped so the intent stays queued."""
    st = env.st
    with paused(env):
        _, b = st.join_ok(env.ev, st.token(95))
        url = f"/v1/intents/{b['intent_id']}"
        s, _, mine = st.http("GET", url, token=st.token(95))
        assert s == 200 and mine["state"] == "queued", mine  # control
        for who in ATTACKERS:
            assert err(st.http("GET", url, token=st.token(*who))) == (404, "not_found"), who
            assert err(st.http("DELETE", url, token=st.token(*who))) == (404, "not_found"), who
        assert err(st.http("GET", url)) == (401, "unauthorized")
        assert err(st.http("GET", url, token=bad_tokens()["other_secret"])) == \
            (401, "unauthorized")
    st.wait_for(lambda: st.http("GET", url, token=st.token(95))[2].get("state") == "reserved",
                30, "the intent served")
    assert st.http("DELETE", url, token=st.token(95))[0] == 202  # the owner leaves


def test_ids_of_one_kind_are_not_ids_of_another(env):
    """The tag binds kind, position and user: the owner's intent id is not a
    reservation or an order id, and the reverse."""
    st, tok = env.st, env.st.token(A)
    key = {"Idempotency-Key": "authz-kind"}
    before = quiet(st)
    for path, method, body, hs in [
            (f"/v1/reservations/{env.intent_held}/checkout", "POST",
             {"payment_method": "pm_card_visa"}, key),
            (f"/v1/reservations/{env.intent_held}", "DELETE", None, None),
            (f"/v1/orders/{env.intent_paid}", "GET", None, None),
            (f"/v1/intents/{env.oid}", "GET", None, None),
            (f"/v1/orders/{env.res}", "GET", None, None),
            (f"/v1/intents/{env.res}", "DELETE", None, None)]:
        assert err(st.http(method, path, body, token=tok, headers=hs)) == (404, "not_found"), path
    time.sleep(0.3)
    assert same(before, snapshot(st))


def test_my_tickets_lists_only_mine(env):
    st = env.st
    s, _, b = st.http("GET", "/v1/me/tickets", token=st.token(B))
    assert s == 200 and [t for t in b["tickets"] if t["ticket_id"] in (env.t1, env.t2)] == [], b
    s, _, b = st.http("GET", "/v1/me/tickets", token=st.token(A))
    assert s == 200 and {env.t1, env.t2} <= {t["ticket_id"] for t in b["tickets"]}, b


# ---- 2. a seller's venue and events ---------------------------------------------------------

def seller_cases(e):
    """(label, method, path, body): the owner seller's success status follows."""
    return [
        ("event_update", "PATCH", f"/v1/events/{e.ev2}", {"name": "Renamed by S2"}, 200),
        ("event_update_prices", "PATCH", f"/v1/events/{e.ev2}",
         {"tiers": [{"section": "A", "price_cents": 1}]}, None),
        ("event_pause", "POST", f"/v1/events/{e.ev2}/pause", None, None),
        ("event_resume", "POST", f"/v1/events/{e.ev2}/resume", None, None),
        ("event_cancel", "POST", f"/v1/events/{e.ev2}/cancel", None, None),
        ("event_admission", "POST", f"/v1/events/{e.ev2}/admission", {"max_active_holds": 1},
         202),
        ("event_pow", "POST", f"/v1/events/{e.ev2}/pow", {"difficulty": 0}, 200),
        ("event_on_their_venue", "POST", "/v1/events",
         {"venue_id": e.venue, "name": "On S1's venue", "category": "concert",
          "starts_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 40 * 86400)),
          "tiers": [{"section": "A", "price_cents": 100}]}, 201),
        # Who may scan at S1's venue (docs/tickets.md "Who may scan where").
        ("venue_scanner_put", "PUT", f"/v1/venues/{e.venue}/scanners/{SCANNER2}", None, 200),
        ("venue_scanner_delete", "DELETE", f"/v1/venues/{e.venue}/scanners/{SCANNER}", None,
         None),
        ("venue_scanners_list", "GET", f"/v1/venues/{e.venue}/scanners", None, 200),
    ]


SELLER_LABELS = [c[0] for c in seller_cases(type("E", (), dict(ev2=1, venue=1))())]


@pytest.mark.parametrize("label", SELLER_LABELS)
def test_another_sellers_event_is_403_and_unchanged(env, label):
    st = env.st
    _, method, path, body, owner_ok = {c[0]: c for c in seller_cases(env)}[label]
    before = quiet(st)
    assert err(st.http(method, path, body, token=env.s2)) == (403, "forbidden"), label
    # A fan and a scanner are refused by role before the event is read.
    for role in ("fan", "scanner"):
        assert err(st.http(method, path, body, token=st.token(S1, role))) == (403, "forbidden")
    time.sleep(0.3)
    assert same(before, snapshot(st)), label
    if owner_ok:
        # Control: the owner's same request works (an admin's too, below).
        s, _, b = st.http(method, path, body, token=env.s1)
        assert s == owner_ok, (label, b)


def test_admin_may_act_on_any_event(env):
    st = env.st
    s, _, b = st.http("PATCH", f"/v1/events/{env.ev2}", {"description": "by admin"},
                      token=st.token(ADMIN, "admin"))
    assert s == 200 and b["description"] == "by admin", b


# ---- 3. every role-restricted route under every role it does not admit ---------------------

ROLE_BITS = {"FAN": "fan", "SELLER": "seller", "SCANNER": "scanner", "ADMIN": "admin"}


def route_table():
    """[(name, method, pattern, roles)] of ingress/routes.c whose roles are
    neither public (0) nor ANYONE."""
    text = open(os.path.join(ROOT, "ingress", "routes.c")).read()
    out = []
    for name, m, pat, roles in re.findall(
            r'\{"(\w+)",\s*"(\w+)",\s*"([^"]+)",\s*\w+,\s*([A-Z0-9 |]+),', text):
        roles = roles.strip()
        if roles in ("0", "ANYONE"):
            continue
        out.append((name, m, pat, {ROLE_BITS[r.strip()] for r in roles.split("|")}))
    return out


ROUTES = route_table()
BODIES = {"join": {"quantity": 1}, "scan": {"ticket_id": 1, "code": "12345678"},
          "venue_create": {"name": "V", "city": "C", "country": "NL",
                           "sections": [{"name": "A", "rows": 1, "seats_per_row": 1}]},
          "event_update": {"name": "x"}, "event_admission": {"max_active_holds": 1},
          "event_pow": {"difficulty": 0}, "user_roles_grant": {"role": "admin"}}


def test_route_table_is_walked():
    assert len(ROUTES) >= 14, ROUTES  # the parse of routes.c still finds the table


@pytest.mark.parametrize("route", ROUTES, ids=[r[0] for r in ROUTES])
def test_a_role_the_route_does_not_admit_is_403(env, route):
    st = env.st
    name, method, pattern, allowed = route
    path = pattern.replace("{}", str(env.ev3 if "events" in pattern else A))
    body = BODIES.get(name, {} if method in ("POST", "PATCH") else None)
    if name == "event_create":
        body = seller_cases(env)[-1][3]
    before = quiet(st)
    refused = 0
    for role in sorted(set(ROLE_BITS.values()) - allowed):
        assert err(st.http(method, path, body, token=st.token(A, role))) == (403, "forbidden"), \
            (name, role)
        refused += 1
    assert refused > 0
    time.sleep(0.2)
    assert same(before, snapshot(st)), name
    # Control: an admitted role gets past the role check (whatever it then
    # says: a scan of a ticket at no venue of A's is 403 scanner_not_assigned).
    got = err(st.http(method, path, body, token=st.token(S1 if "seller" in allowed else A,
                                                            sorted(allowed)[0])))
    assert got != (403, "forbidden"), (name, got)


# ---- 4. tokens -----------------------------------------------------------------------------

def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def craft(header, claims, secret=SECRET):
    h, p = b64url(json.dumps(header).encode()), b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest() if secret else b""
    return f"{h}.{p}.{b64url(sig)}"


def bad_tokens():
    now = int(time.time())
    hs = {"alg": "HS256", "typ": "JWT"}
    ok = {"sub": str(A), "role": "fan", "exp": now + 600}
    return {
        "other_secret": make_token(A, "fan", secret="another-secret-0123456789abcdef"),
        "alg_none": craft({"alg": "none", "typ": "JWT"}, ok, secret=None),
        "alg_none_signed": craft({"alg": "none", "typ": "JWT"}, ok),
        "no_signature": make_token(A, "fan").rsplit(".", 1)[0] + ".",
        "expired": make_token(A, "fan", exp=now - 5),
        "not_yet": craft(hs, {**ok, "nbf": now + 600}),
        "no_exp": craft(hs, {"sub": str(A), "role": "fan"}),
        "role_unknown": craft(hs, {**ok, "role": "superuser"}),
        "role_list": craft(hs, {**ok, "role": ["fan", "admin"]}),
        "sub_zero": craft(hs, {**ok, "sub": "0"}),
        "sub_negative": craft(hs, {**ok, "sub": "-10"}),
        "sub_text": craft(hs, {**ok, "sub": "alice"}),
        "sub_huge": craft(hs, {**ok, "sub": "99999999999999999999"}),
        "payload_swapped": (make_token(A, "fan").split(".")[0] + "."
                            + make_token(ADMIN, "admin").split(".")[1] + "."
                            + make_token(A, "fan").split(".")[2]),
    }


@pytest.mark.parametrize("kind", sorted(bad_tokens()))
def test_a_bad_token_is_401_and_changes_nothing(env, kind):
    st, tok = env.st, bad_tokens()[kind]
    before = quiet(st)
    assert err(st.http("GET", f"/v1/orders/{env.oid}", token=tok)) == (401, "unauthorized")
    assert err(st.http("POST", f"/v1/tickets/{env.t2}/transfer", {"to_user_id": B},
                       token=tok)) == (401, "unauthorized")
    assert err(st.http("POST", f"/v1/events/{env.ev2}/pause", None, token=tok)) == \
        (401, "unauthorized")
    time.sleep(0.2)
    assert same(before, snapshot(st)), kind
    # Control: the good token of the same user reads the same order.
    assert st.http("GET", f"/v1/orders/{env.oid}", token=st.token(A))[0] == 200


def test_a_cached_token_still_expires(env):
    """A token verified (and cached) while valid is refused once its exp
    passes (the cache keeps exp, common/auth.c)."""
    st = env.st
    tok = make_token(A, "fan", exp=int(time.time()) + 2)
    assert st.http("GET", f"/v1/orders/{env.oid}", token=tok)[0] == 200
    time.sleep(3.1)
    assert err(st.http("GET", f"/v1/orders/{env.oid}", token=tok)) == (401, "unauthorized")


# ---- 5. tickets that changed hands, and admitted tickets ------------------------------------

def owner_of(st, tid):
    return st.sql("SELECT owner_id, status FROM tickets WHERE ticket_id = %s", (tid,))[0]


def refunds_of(st, tid):
    return st.sql("SELECT count(*) FROM outbox WHERE kind = 'refund' AND ticket_id = %s",
                  (tid,))[0][0]


def ticket_routes(tid):
    return [("GET", f"/v1/tickets/{tid}/code", None),
            ("POST", f"/v1/tickets/{tid}/transfer", {"to_user_id": 77}),
            ("POST", f"/v1/tickets/{tid}/cancel", None)]


def test_the_old_owner_loses_every_ticket_route(env):
    st = env.st
    tid, = env.buy(20)
    old = st.token(20)
    # Control: while it is theirs the code is shown.
    assert st.http("GET", f"/v1/tickets/{tid}/code", token=old)[0] == 200
    st.account(21)
    assert st.http("POST", f"/v1/tickets/{tid}/transfer", {"to_user_id": 21}, token=old)[0] == 202
    st.wait_for(lambda: owner_of(st, tid) == (21, "valid"), 20, "transferred")
    before = quiet(st)
    for method, path, body in ticket_routes(tid):
        assert err(st.http(method, path, body, token=old)) == (404, "not_found"), path
    time.sleep(0.3)
    assert same(before, snapshot(st))
    # The new holder cancels; then nobody can use it: the old owner 404,
    # the new one 409 (its own, no longer valid).
    assert st.http("POST", f"/v1/tickets/{tid}/cancel", None, token=st.token(21))[0] == 202
    st.wait_for(lambda: owner_of(st, tid)[1] == "cancelled", 20, "cancelled")
    for method, path, body in ticket_routes(tid):
        assert err(st.http(method, path, body, token=old))[0] == 404, path
        assert err(st.http(method, path, body, token=st.token(21)))[0] == 409, path
    st.wait_for(lambda: settled(env), 30, "refund sent")
    assert refunds_of(st, tid) == 1


def scan(st, code_body):
    return st.http("POST", "/v1/scans", {"scan": code_body["scan"]},
                   token=st.token(SCANNER, "scanner"))


def test_an_admitted_ticket_cannot_be_cancelled_or_transferred(env):
    """Failed before the fix: the cancel answered 202 and the owner
    refunded the ticket (and freed its seat for sale) after it had got its
    holder in; a transfer handed on a used ticket."""
    st = env.st
    tid, other = env.buy(30, 2)
    tok = st.token(30)
    s, _, code = st.http("GET", f"/v1/tickets/{tid}/code", token=tok)
    assert s == 200, code
    s, _, b = scan(st, code)
    assert s == 200 and b["state"] == "admitted", b
    before = quiet(st)
    assert err(st.http("POST", f"/v1/tickets/{tid}/cancel", None, token=tok)) == \
        (409, "already_admitted")
    assert err(st.http("POST", f"/v1/tickets/{tid}/transfer", {"to_user_id": 31}, token=tok)) == \
        (409, "already_admitted")
    time.sleep(0.5)
    assert same(before, snapshot(st))
    assert owner_of(st, tid) == (30, "valid") and refunds_of(st, tid) == 0
    # Control: the same fan's ticket that was not admitted cancels.
    assert st.http("POST", f"/v1/tickets/{other}/cancel", None, token=tok)[0] == 202
    st.wait_for(lambda: owner_of(st, other)[1] == "cancelled", 20, "control cancelled")


# ---- 6. races -------------------------------------------------------------------------------

def at_once(*calls):
    """Runs the calls on their own threads, released together; returns
    their results in order."""
    go, out = threading.Barrier(len(calls)), [None] * len(calls)

    def run(i, f):
        go.wait()
        out[i] = f()
    ts = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(calls)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return out


def worker_log(env):
    return env.worker.output()


def ignored_lines(env, tid):
    return len(re.findall(rf"ticket (transfer|cancel) of {tid} by user \d+ ignored", worker_log(env)))


class paused:
    """The partition owner (the one worker) stopped for the block: requests
    sent meanwhile all pass ingress's checks against PostgreSQL, which the
    owner has not changed yet, so their records meet at the owner. This is
    the control that the races below are real: every request answers 202,
    every record reaches the single writer."""

    def __init__(self, env):
        self.env = env

    def __enter__(self):
        self.env.worker.popen.send_signal(signal.SIGSTOP)

    def __exit__(self, *exc):
        self.env.worker.popen.send_signal(signal.SIGCONT)


def tickets_of(st, u):
    return [t["ticket_id"] for t in st.http("GET", "/v1/me/tickets", token=st.token(u))[2]["tickets"]]


def one_accepted(r1, r2):
    """Of two changes of one ticket sent at once, ingress accepts the one
    that claimed the ticket first (202) and refuses the other (409
    ticket_change_pending, Retry-After): before the claim marker both
    answered 202 and the owner dropped the second. Returns the winner's
    index."""
    codes = sorted([r1[0], r2[0]])
    assert codes == [202, 409], (r1, r2)
    loser = r1 if r1[0] == 409 else r2
    assert err(loser) == (409, "ticket_change_pending"), loser
    assert loser[1].get("retry-after") == "1", loser[1]
    return 0 if r1[0] == 202 else 1


def test_two_transfers_of_one_ticket_one_wins(env):
    """Sent at once while the owner is stopped (both pass ingress's read):
    the first claim wins, the second is refused at ingress, nothing of it
    reaches the owner: one holder."""
    st = env.st
    tid, = env.buy(40)
    st.account(41), st.account(42)
    tok = st.token(40)
    with paused(env):
        r1, r2 = at_once(
            lambda: st.http("POST", f"/v1/tickets/{tid}/transfer", {"to_user_id": 41}, token=tok),
            lambda: st.http("POST", f"/v1/tickets/{tid}/transfer", {"to_user_id": 42}, token=tok))
        holder = (41, 42)[one_accepted(r1, r2)]
    st.wait_for(lambda: owner_of(st, tid) == (holder, "valid"), 20, "transferred")
    loser = 41 + 42 - holder
    assert tid in tickets_of(st, holder) and tid not in tickets_of(st, loser)
    assert tid not in tickets_of(st, 40) and ignored_lines(env, tid) == 0
    # The loser cannot use it; the winner can.
    assert err(st.http("GET", f"/v1/tickets/{tid}/code", token=st.token(loser)))[0] == 404
    assert st.http("GET", f"/v1/tickets/{tid}/code", token=st.token(holder))[0] == 200


@pytest.mark.parametrize("pair", ["transfer_cancel", "cancel_transfer", "cancel_cancel"])
def test_a_ticket_changed_twice_at_once_is_refunded_at_most_once(env, pair):
    st = env.st
    user = {"transfer_cancel": 50, "cancel_transfer": 55, "cancel_cancel": 60}[pair]
    tid, = env.buy(user)
    tok = st.token(user)
    st.account(user + 1)
    transfer = lambda: st.http("POST", f"/v1/tickets/{tid}/transfer",  # noqa: E731
                               {"to_user_id": user + 1}, token=tok)
    cancel = lambda: st.http("POST", f"/v1/tickets/{tid}/cancel", None, token=tok)  # noqa: E731
    calls = {"transfer_cancel": (transfer, cancel), "cancel_transfer": (cancel, transfer),
             "cancel_cancel": (cancel, cancel)}[pair]
    with paused(env):
        r1, r2 = at_once(*calls)
        won = pair.split("_")[one_accepted(r1, r2)]
    st.wait_for(lambda: owner_of(st, tid) != (user, "valid"), 20, "changed")
    st.wait_for(lambda: settled(env), 30, "outbox settled")
    owner, status = owner_of(st, tid)
    if won == "cancel":
        assert (owner, status) == (user, "cancelled") and refunds_of(st, tid) == 1
        assert tid not in tickets_of(st, user + 1)
    else:
        assert (owner, status) == (user + 1, "valid") and refunds_of(st, tid) == 0
    assert ignored_lines(env, tid) == 0 and claimed(st, tid) is None
    assert reconcile(env) > 0


def test_two_checkouts_of_one_hold_charge_once(env):
    """Two checkouts of one hold with different Idempotency-Keys, from two
    connections: the owner takes the first (paying) and fails the second
    (not_held): one paid order, one charge."""
    st = env.st
    rid = env.hold(80, env.ev, 1)
    with paused(env):
        r1, r2 = at_once(lambda: env.checkout(80, rid, "race-k1"),
                         lambda: env.checkout(80, rid, "race-k2"))
        assert (r1[0], r2[0]) == (202, 202), (r1, r2)
    assert r1[2]["order_id"] != r2[2]["order_id"]
    orders = [env.wait_order(80, r[2]["order_id"]) for r in (r1, r2)]
    assert sorted(o["state"] for o in orders) == ["failed", "paid"], orders
    assert [o.get("reason") for o in orders if o["state"] == "failed"] == ["not_held"], orders
    st.wait_for(lambda: settled(env), 30, "outbox settled")
    ids = {r[0] for r in st.sql("SELECT order_id FROM orders WHERE reservation_id = %s",
                                (int(rid[:16], 16),))}
    assert len(ids) == 2, ids
    charges = [c for c in env.ledger()["charges"] if int(c["order_id"]) in ids]
    assert len(charges) == 1, charges
    assert reconcile(env) > 0


def test_two_checkouts_with_one_key_from_two_connections(env):
    """The same Idempotency-Key at once: one order; the other answer is the
    same order or 409 idempotency_in_progress, never a second charge."""
    st = env.st
    rid = env.hold(81, env.ev, 1)
    r1, r2 = at_once(lambda: env.checkout(81, rid, "race-same"),
                     lambda: env.checkout(81, rid, "race-same"))
    ok = [r for r in (r1, r2) if r[0] == 202]
    assert ok and all(r[0] == 202 or err(r) == (409, "idempotency_in_progress")
                      for r in (r1, r2)), (r1, r2)
    assert len({r[2]["order_id"] for r in ok}) == 1, (r1, r2)
    assert env.wait_order(81, ok[0][2]["order_id"])["state"] == "paid"
    st.wait_for(lambda: settled(env), 30, "outbox settled")
    assert st.sql("SELECT count(*) FROM orders WHERE reservation_id = %s",
                  (int(rid[:16], 16),))[0][0] == 1


def test_a_ticket_cancel_racing_the_event_cancel_refunds_once(env):
    """The fan cancels a ticket while its seller cancels the event: the
    ticket's refund and the event's void of the order must not both pay
    the ticket back. The order's refunds add up to its charge, no more."""
    st = env.st
    ev = create_event_via_api(st, env.s1, 4, "Cancelled under a ticket cancel")
    t1, t2 = env.buy(85, 2, ev=ev)
    with paused(env):
        r1, r2 = at_once(
            lambda: st.http("POST", f"/v1/tickets/{t1}/cancel", None, token=st.token(85)),
            lambda: st.http("POST", f"/v1/events/{ev}/cancel", None, token=env.s1))
        assert (r1[0], r2[0]) == (202, 202), (r1, r2)
    st.wait_for(lambda: owner_of(st, t2)[1] == "voided", 30, "event cancel applied")
    st.wait_for(lambda: settled(env), 30, "outbox settled")
    (oid,), = st.sql("SELECT DISTINCT order_id FROM tickets WHERE ticket_id IN (%s, %s)", (t1, t2))
    led = env.ledger()
    charge, = [c for c in led["charges"] if int(c["order_id"]) == oid]
    back = sum(r["amount_cents"] for r in led["refunds"] if r["charge"] == charge["id"])
    assert back == charge["amount_cents"], (charge, led["refunds"])
    assert owner_of(st, t1)[1] in ("cancelled", "voided")
    assert reconcile(env) > 0


def test_an_idempotency_key_is_the_callers_own(env):
    """Fan B reusing fan A's Idempotency-Key on the same request gets its
    own answer, never a replay of A's (which names A's intent)."""
    st = env.st
    key = {"Idempotency-Key": "shared-key-1"}
    s, _, a = st.http("POST", f"/v1/events/{env.ev2}/intents", {"quantity": 1},
                      token=st.token(90), headers=key)
    assert s == 202, a
    # Control: A's retry with the key is A's replay.
    s, _, a2 = st.http("POST", f"/v1/events/{env.ev2}/intents", {"quantity": 1},
                       token=st.token(90), headers=key)
    assert s == 202 and a2["intent_id"] == a["intent_id"], a2
    s, _, b = st.http("POST", f"/v1/events/{env.ev2}/intents", {"quantity": 1},
                      token=st.token(91), headers=key)
    assert s == 202 and b["intent_id"] != a["intent_id"], b
    assert err(st.http("GET", f"/v1/intents/{a['intent_id']}", token=st.token(91))) == \
        (404, "not_found")


def test_a_cancel_racing_the_door_scan_does_not_admit_and_refund(env):
    """The cancel is checked by ingress and applied later by the partition
    owner; a scan in between used to admit the ticket, which the owner then
    refunded and put back on sale (failed before the fix: the scan answered
    200 admitted and the ticket ended cancelled, admitted and refunded).
    The worker is stopped to hold the window open. Control: in the same
    window, the fan's other ticket, not being cancelled, admits."""
    st = env.st
    tid, other = env.buy(70, 2)
    tok = st.token(70)
    code = st.http("GET", f"/v1/tickets/{tid}/code", token=tok)[2]
    other_code = st.http("GET", f"/v1/tickets/{other}/code", token=tok)[2]
    env.worker.popen.send_signal(signal.SIGSTOP)
    try:
        assert st.http("POST", f"/v1/tickets/{tid}/cancel", None, token=tok)[0] == 202
        s, _, b = scan(st, code)
        assert (s, (b.get("error") or {}).get("code")) == (409, "ticket_transferred"), b
        s, _, b = scan(st, other_code)
        assert s == 200 and b["state"] == "admitted", b
    finally:
        env.worker.popen.send_signal(signal.SIGCONT)
    st.wait_for(lambda: owner_of(st, tid)[1] == "cancelled", 20, "cancel applied")
    # Applied, the cancel is what the gate says for the old code.
    assert err(scan(st, code)) == (409, "ticket_not_valid")
    st.wait_for(lambda: settled(env), 30, "refund sent")
    assert st.sql("SELECT count(*) FROM tickets WHERE admitted_at IS NOT NULL "
                  "AND status <> 'valid'")[0][0] == 0
    assert refunds_of(st, tid) == 1 and refunds_of(st, other) == 0
    # The admitted one now refuses a cancel (test above).
    assert err(st.http("POST", f"/v1/tickets/{other}/cancel", None, token=tok)) == \
        (409, "already_admitted")


def claimed(st, tid):
    return st.sql("SELECT change_claimed_at FROM tickets WHERE ticket_id = %s", (tid,))[0][0]


def current_scan(st, tid):
    """The scan string of tid's code at its current code_version, computed
    here as ingress would (docs/tickets.md): what a fan fetching the code
    after the claim would show at the door."""
    version = st.sql("SELECT code_version FROM tickets WHERE ticket_id = %s", (tid,))[0][0]
    step = int(time.time()) // 30
    return {"scan": f"ONS1:{tid}:{step}:{expected_code(tid, version, step)}"}


@pytest.mark.parametrize("kind", ["cancel", "transfer"])
def test_a_change_in_flight_shows_no_code_and_admits_nobody(env, kind):
    """The owner sends a cancel (or transfer), fetches the ticket's code at
    once and has it scanned, before the partition owner applied the change
    (stopped here to hold the window open). Failed before the claim marker:
    the code route answered 200 with the new version's code, the scan 200
    admitted, and the owner then refunded the admitted ticket and put its
    seat back on sale (or handed the used ticket on). Now both are 409
    ticket_change_pending until the change is applied; control: the fan's
    other ticket, not being changed, shows its code and admits meanwhile."""
    st = env.st
    user = {"cancel": 72, "transfer": 74}[kind]
    tid, other = env.buy(user, 2)
    tok, scanner = st.token(user), st.token(SCANNER, "scanner")
    st.account(user + 1)
    body = {"to_user_id": user + 1} if kind == "transfer" else None
    with paused(env):
        assert st.http("POST", f"/v1/tickets/{tid}/{kind}", body, token=tok)[0] == 202
        s, h, b = st.http("GET", f"/v1/tickets/{tid}/code", token=tok)
        assert (s, err((s, h, b))[1], h.get("retry-after")) == \
            (409, "ticket_change_pending", "1"), b
        s, _, b = st.http("POST", "/v1/scans", current_scan(st, tid), token=scanner)
        assert err((s, None, b)) == (409, "ticket_change_pending"), b
        # A second change while the first is in flight: refused, not sent.
        assert err(st.http("POST", f"/v1/tickets/{tid}/cancel", None, token=tok)) == \
            (409, "ticket_change_pending")
        code = st.http("GET", f"/v1/tickets/{other}/code", token=tok)
        assert code[0] == 200, code
        assert scan(st, code[2])[0] == 200
    want = (user, "cancelled") if kind == "cancel" else (user + 1, "valid")
    st.wait_for(lambda: owner_of(st, tid) == want, 20, f"{kind} applied")
    assert claimed(st, tid) is None
    assert st.sql("SELECT admitted_at FROM tickets WHERE ticket_id = %s", (tid,))[0][0] is None
    if kind == "cancel":
        st.wait_for(lambda: settled(env), 30, "refund sent")
        assert refunds_of(st, tid) == 1
        assert err(st.http("GET", f"/v1/tickets/{tid}/code", token=tok)) == \
            (409, "ticket_not_valid")
        return
    # Applied, the recipient's code admits once; the sender's is gone.
    assert err(st.http("GET", f"/v1/tickets/{tid}/code", token=tok)) == (404, "not_found")
    s, _, code = st.http("GET", f"/v1/tickets/{tid}/code", token=st.token(user + 1))
    assert s == 200, code
    assert scan(st, code)[2]["state"] == "admitted"
    assert err(scan(st, code)) == (409, "already_admitted")
    assert refunds_of(st, tid) == 0 and ignored_lines(env, tid) == 0
