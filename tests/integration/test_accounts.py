"""test_accounts.py - accounts and logins against the real stack
(docs/accounts.md, openapi: createUser, createSession, refreshSession,
deleteSession, getMe, grantRole): sign-up with case-insensitive unique
emails, argon2id hashes at rest (and rehash when the limits change), login
answers that do not tell an unknown email from a wrong password (same status,
body and cost), refresh-token rotation with reuse revoking the whole family,
logout, /v1/me, role grants whose next login can act as seller, failed-login
throttling per account and per address (429 + Retry-After), the bound on
concurrent password hashes (503), and strict validation of every input.
"""
import concurrent.futures
import os
import statistics
import sys
import time
import uuid

import jsonschema
import pytest
import yaml

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, checked_stack  # noqa: E402

OPENAPI = yaml.safe_load(open(os.path.join(ROOT, "schemas", "openapi.yaml")))


def conforms(body, schema):
    """Validates a response body against components/schemas/<schema>."""
    jsonschema.validate(body, {"$ref": f"#/components/schemas/{schema}", **OPENAPI})

ACCOUNT_LIMIT = 3
ADDR_LIMIT = 5
ADMIN = 990001  # a minted operator token: no account row


@pytest.fixture(scope="module")
def st():
    with checked_stack(partitions=1) as s:
        s.start_ingress(accounts_login_account_failures=ACCOUNT_LIMIT,
                        accounts_login_addr_failures=ADDR_LIMIT, accounts_login_window_s=60,
                        accounts_hash_concurrency=4, pool_threads=6,
                        # the tests speak as the proxy in front (X-Forwarded-For)
                        client_trusted_proxies="127.0.0.1")
        yield s


def email():
    return f"fan-{uuid.uuid4().hex[:10]}@example.com"


def signup(st, mail=None, password="correct horse battery", name="Ada"):
    mail = mail or email()
    s, _, b = st.http("POST", "/v1/users", {"email": mail, "password": password,
                                             "display_name": name})
    assert s == 201, b
    return b


def login(st, mail, password="correct horse battery", addr=None, **extra):
    headers = {"X-Forwarded-For": addr} if addr else None
    body = {"email": mail, "password": password}
    body.update(extra)
    return st.http("POST", "/v1/sessions", body, headers=headers)


def refresh(st, token):
    return st.http("POST", "/v1/sessions/refresh", {"refresh_token": token})


def users(st):
    return st.sql("SELECT count(*) FROM users")[0][0]


def metric(st, series):
    """The value of one series on the current ingress's /metrics, 0 when absent."""
    text = st.http("GET", "/metrics")[2]
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


# ---- sign-up ---------------------------------------------------------------------


def test_signup_returns_the_fan_and_stores_an_argon2id_hash(st):
    mail = email()
    u = signup(st, mail, name="Zoë Fan")
    assert u["email"] == mail and u["display_name"] == "Zoë Fan" and u["roles"] == ["fan"]
    assert u["user_id"] > 0 and u["created_at"].endswith("Z")
    conforms(u, "User")
    (h,), = st.sql("SELECT password_hash FROM users WHERE user_id = %s", (u["user_id"],))
    assert h.startswith("$argon2id$v=19$m=65536,t=2,p=1$"), h
    assert "correct horse" not in h


def test_duplicate_email_case_insensitive_is_409(st):
    mail = email()
    signup(st, mail)
    before = users(st)
    s, _, b = st.http("POST", "/v1/users", {"email": mail.upper(), "password": "another password",
                                             "display_name": "Eve"})
    assert s == 409 and b["error"]["code"] == "email_taken" and b["error"]["field"] == "email"
    conforms(b, "Error")
    assert users(st) == before


@pytest.mark.parametrize("body,code,field", [
    ({"password": "long enough", "display_name": "A"}, "missing_field", "email"),
    ({"email": "x@example.com", "display_name": "A"}, "missing_field", "password"),
    ({"email": "x@example.com", "password": "long enough"}, "missing_field", "display_name"),
    ({"email": "no-at-sign", "password": "long enough", "display_name": "A"}, "invalid_field", "email"),
    ({"email": "a@b", "password": "long enough", "display_name": "A"}, "invalid_field", "email"),
    ({"email": "a@@b.com", "password": "long enough", "display_name": "A"}, "invalid_field", "email"),
    ({"email": "a b@x.com", "password": "long enough", "display_name": "A"}, "invalid_field", "email"),
    ({"email": ".a@x.com", "password": "long enough", "display_name": "A"}, "invalid_field", "email"),
    ({"email": "a@-x.com", "password": "long enough", "display_name": "A"}, "invalid_field", "email"),
    ({"email": "é@x.com", "password": "long enough", "display_name": "A"}, "invalid_field", "email"),
    ({"email": "a" * 65 + "@x.com", "password": "long enough", "display_name": "A"}, "invalid_field", "email"),
    ({"email": 7, "password": "long enough", "display_name": "A"}, "invalid_field", "email"),
    ({"email": "x@example.com", "password": "short", "display_name": "A"}, "invalid_field", "password"),
    ({"email": "x@example.com", "password": "p" * 257, "display_name": "A"}, "invalid_field", "password"),
    ({"email": "x@example.com", "password": "tab\there!", "display_name": "A"}, "invalid_field", "password"),
    ({"email": "x@example.com", "password": "long enough", "display_name": ""}, "invalid_field", "display_name"),
    ({"email": "x@example.com", "password": "long enough", "display_name": "   "}, "invalid_field", "display_name"),
    ({"email": "x@example.com", "password": "long enough", "display_name": "é" * 101}, "invalid_field", "display_name"),
    ({"email": "x@example.com", "password": "long enough", "display_name": "A", "role": "admin"}, "unknown_field", "role"),
])
def test_signup_bad_input_is_400_and_changes_nothing(st, body, code, field):
    before = users(st)
    s, _, b = st.http("POST", "/v1/users", body)
    assert s == 400, b
    assert b["error"]["code"] == code and b["error"].get("field") == field, b
    assert users(st) == before


def test_signup_limits_are_inclusive(st):
    u = signup(st, password="p" * 256, name="é" * 100)
    assert u["display_name"] == "é" * 100
    s, _, _ = login(st, u["email"], "p" * 256)
    assert s == 201
    signup(st, password="8 chars!")


def test_signup_not_json_is_400(st):
    s, _, b = st.http("POST", "/v1/users", raw=b"{not json", headers={"Content-Type": "application/json"})
    assert s == 400 and b["error"]["code"] == "invalid_json"


# ---- login -------------------------------------------------------------------------


def test_login_gives_access_and_refresh_tokens(st):
    u = signup(st)
    s, _, b = login(st, u["email"].upper())  # emails match case-insensitively
    assert s == 201, b
    conforms(b, "Session")
    assert b["token_type"] == "Bearer" and b["expires_in"] == 900 and b["role"] == "fan"
    assert b["user_id"] == u["user_id"] and b["user"]["email"] == u["email"]
    assert len(b["refresh_token"]) == 66 and b["refresh_token"][22] == "."
    s, _, me = st.http("GET", "/v1/me", token=b["access_token"])
    assert s == 200, me
    assert me["user_id"] == u["user_id"] and me["email"] == u["email"] and me["role"] == "fan"
    assert me["roles"] == ["fan"] and me["display_name"] == "Ada"
    # The refresh token is stored only as a selector and a hash of its secret part.
    sel, ver = b["refresh_token"].split(".")
    rows = st.sql("SELECT selector, verifier_hash FROM refresh_tokens")
    assert (sel,) in [(r[0],) for r in rows]
    assert all(ver not in r[1] for r in rows)


def test_unknown_email_and_wrong_password_answer_alike(st):
    u = signup(st)
    s1, h1, b1 = login(st, u["email"], "wrong password!")
    s2, h2, b2 = login(st, email(), "wrong password!")
    assert s1 == s2 == 401
    assert b1 == b2
    assert b1["error"]["code"] == "invalid_credentials"
    assert b1["error"]["message"] == "The email or password is wrong."
    for h in (h1, h2):
        h.pop("x-request-id")
        h.pop("date", None)
    assert h1 == h2


def test_unknown_email_costs_as_much_as_a_wrong_password(st):
    """Without the dummy-hash verification an unknown email answers in ~1 ms
    and a wrong password in ~50-100 ms: the medians must be close."""
    st.sql("DELETE FROM login_throttle")
    accounts = [signup(st), signup(st)]
    known, unknown = [], []
    for _ in range(ACCOUNT_LIMIT):
        for u in accounts:
            t = time.monotonic()
            assert login(st, u["email"], "wrong password!")[0] == 401
            known.append(time.monotonic() - t)
            t = time.monotonic()
            assert login(st, email(), "wrong password!")[0] == 401
            unknown.append(time.monotonic() - t)
    k, n = statistics.median(known), statistics.median(unknown)
    assert k > 0.01, known  # argon2id really ran
    assert 0.4 < n / k < 2.5, (known, unknown)


@pytest.mark.parametrize("body,code,field", [
    ({"password": "long enough"}, "missing_field", "email"),
    ({"email": "x@example.com"}, "missing_field", "password"),
    ({"email": "nope", "password": "long enough"}, "invalid_field", "email"),
    ({"email": "x@example.com", "password": "short"}, "invalid_field", "password"),
    ({"email": "x@example.com", "password": "long enough", "role": "root"}, "invalid_field", "role"),
    ({"email": "x@example.com", "password": "long enough", "remember": True}, "unknown_field", "remember"),
])
def test_login_bad_input_is_400(st, body, code, field):
    s, _, b = st.http("POST", "/v1/sessions", body)
    assert s == 400 and b["error"]["code"] == code and b["error"].get("field") == field, b


# ---- refresh and logout --------------------------------------------------------------


def test_refresh_rotates_and_reuse_revokes_the_family(st):
    u = signup(st)
    _, _, b = login(st, u["email"])
    r1 = b["refresh_token"]
    s, _, b2 = refresh(st, r1)
    assert s == 200, b2
    conforms(b2, "Session")
    r2 = b2["refresh_token"]
    assert r2 != r1 and b2["user_id"] == u["user_id"] and b2["role"] == "fan"
    assert st.http("GET", "/v1/me", token=b2["access_token"])[0] == 200
    s, _, b3 = refresh(st, r2)
    assert s == 200
    r3 = b3["refresh_token"]
    # r1 was rotated long ago: presenting it again means a copy exists.
    reuse = metric(st, "onsale_ingress_refresh_reuse_total")
    s, _, e = refresh(st, r1)
    assert metric(st, "onsale_ingress_refresh_reuse_total") == reuse + 1
    assert s == 401 and e["error"]["code"] == "invalid_refresh_token"
    # ... and every token of the family is dead now, the current one too.
    for t in (r2, r3):
        s, _, e = refresh(st, t)
        assert s == 401 and e["error"]["code"] == "invalid_refresh_token"
    (reason,), = st.sql("SELECT revoke_reason FROM login_sessions s JOIN refresh_tokens t "
                        "USING (session_id) WHERE t.selector = %s", (r1.split(".")[0],))
    assert reason == "reuse"
    # Another session of the same user is untouched, and logging in again works.
    _, _, other = login(st, u["email"])
    assert refresh(st, other["refresh_token"])[0] == 200


def test_logout_revokes_the_session(st):
    u = signup(st)
    _, _, b = login(st, u["email"])
    _, _, b2 = refresh(st, b["refresh_token"])
    s, _, body = st.http("DELETE", "/v1/sessions", {"refresh_token": b2["refresh_token"]})
    assert s == 204 and body is None
    assert refresh(st, b2["refresh_token"])[0] == 401
    # Logging out twice is harmless; a token we never issued is 401.
    assert st.http("DELETE", "/v1/sessions", {"refresh_token": b2["refresh_token"]})[0] == 204
    s, _, e = st.http("DELETE", "/v1/sessions", {"refresh_token": "A" * 22 + "." + "B" * 43})
    assert s == 401 and e["error"]["code"] == "invalid_refresh_token"


def test_a_forged_verifier_is_refused_and_revokes_nothing(st):
    u = signup(st)
    _, _, b = login(st, u["email"])
    sel = b["refresh_token"].split(".")[0]
    s, _, e = refresh(st, sel + "." + "x" * 43)
    assert s == 401 and e["error"]["code"] == "invalid_refresh_token"
    assert st.http("DELETE", "/v1/sessions", {"refresh_token": sel + "." + "x" * 43})[0] == 401
    assert refresh(st, b["refresh_token"])[0] == 200


@pytest.mark.parametrize("body,status,code", [
    ({}, 400, "missing_field"),
    ({"refresh_token": 5}, 400, "invalid_field"),
    ({"refresh_token": "short"}, 401, "invalid_refresh_token"),
    ({"refresh_token": "A" * 22 + "." + "B" * 42 + "!"}, 401, "invalid_refresh_token"),
    ({"refresh_token": "x", "extra": 1}, 400, "unknown_field"),
])
def test_refresh_bad_input(st, body, status, code):
    s, _, b = st.http("POST", "/v1/sessions/refresh", body)
    assert s == status and b["error"]["code"] == code, b


def test_me_needs_a_token_and_an_account(st):
    s, _, b = st.http("GET", "/v1/me")
    assert s == 401 and b["error"]["code"] == "unauthorized"
    s, _, b = st.http("GET", "/v1/me", token=st.token(123456, "fan"))
    assert s == 404 and b["error"]["code"] == "no_account"


# ---- roles -----------------------------------------------------------------------------


def test_admin_grants_seller_and_the_next_login_can_create_a_venue(st):
    u = signup(st)
    _, _, fan = login(st, u["email"])
    venue = {"name": "Hall", "city": "Utrecht", "country": "NL",
             "sections": [{"name": "A", "rows": 1, "seats_per_row": 2}]}
    s, _, _ = st.http("POST", "/v1/venues", venue, token=fan["access_token"])
    assert s == 403
    s, _, g = st.http("POST", f"/v1/admin/users/{u['user_id']}/roles", {"role": "seller"},
                      token=st.token(ADMIN, "admin"))
    assert s == 200 and g["roles"] == ["fan", "seller"], g
    # granting twice changes nothing
    s, _, g = st.http("POST", f"/v1/admin/users/{u['user_id']}/roles", {"role": "seller"},
                      token=st.token(ADMIN, "admin"))
    assert s == 200 and g["roles"] == ["fan", "seller"]
    _, _, sel = login(st, u["email"])
    assert sel["role"] == "seller"  # the highest granted role
    s, _, v = st.http("POST", "/v1/venues", venue, token=sel["access_token"])
    assert s == 201, v
    (owner,), = st.sql("SELECT owner_id FROM venues WHERE venue_id = %s", (v["venue_id"],))
    assert owner == u["user_id"]
    # A refresh keeps the role; a login may ask for a granted lower one.
    assert refresh(st, sel["refresh_token"])[2]["role"] == "seller"
    s, _, f = login(st, u["email"], role="fan")
    assert s == 201 and f["role"] == "fan"
    assert refresh(st, f["refresh_token"])[2]["role"] == "fan"
    s, _, e = login(st, u["email"], role="admin")
    assert s == 403 and e["error"]["code"] == "role_not_granted"


def test_scanner_and_admin_grants(st):
    u = signup(st)
    adm = st.token(ADMIN, "admin")
    for role in ("scanner", "admin"):
        s, _, g = st.http("POST", f"/v1/admin/users/{u['user_id']}/roles", {"role": role}, token=adm)
        assert s == 200, g
    assert g["roles"] == ["fan", "scanner", "admin"]
    _, _, b = login(st, u["email"])
    assert b["role"] == "admin"
    _, _, sc = login(st, u["email"], role="scanner")
    s, _, me = st.http("GET", "/v1/me", token=sc["access_token"])
    assert s == 200 and me["role"] == "scanner"
    # The granted admin can grant in turn.
    v = signup(st)
    s, _, _ = st.http("POST", f"/v1/admin/users/{v['user_id']}/roles", {"role": "seller"},
                      token=b["access_token"])
    assert s == 200


@pytest.mark.parametrize("path,body,token_role,status,code", [
    ("/v1/admin/users/{id}/roles", {"role": "fan"}, "admin", 400, "invalid_field"),
    ("/v1/admin/users/{id}/roles", {"role": "root"}, "admin", 400, "invalid_field"),
    ("/v1/admin/users/{id}/roles", {}, "admin", 400, "missing_field"),
    ("/v1/admin/users/{id}/roles", {"role": "seller", "x": 1}, "admin", 400, "unknown_field"),
    ("/v1/admin/users/0/roles", {"role": "seller"}, "admin", 400, "invalid_id"),
    ("/v1/admin/users/99999999/roles", {"role": "seller"}, "admin", 404, "not_found"),
    ("/v1/admin/users/{id}/roles", {"role": "seller"}, "seller", 403, "forbidden"),
    ("/v1/admin/users/{id}/roles", {"role": "seller"}, "fan", 403, "forbidden"),
])
def test_grant_refusals(st, path, body, token_role, status, code):
    u = signup(st)
    s, _, b = st.http("POST", path.format(id=u["user_id"]), body, token=st.token(ADMIN, token_role))
    assert s == status and b["error"]["code"] == code, b
    (roles,), = st.sql("SELECT roles FROM users WHERE user_id = %s", (u["user_id"],))
    assert roles == ["fan"]


# ---- throttling ------------------------------------------------------------------------


def test_failed_logins_are_throttled_per_account(st):
    u = signup(st)
    for _ in range(ACCOUNT_LIMIT):
        assert login(st, u["email"], "wrong password!")[0] == 401
    throttled = metric(st, 'onsale_ingress_logins_total{result="throttled"}')
    s, h, b = login(st, u["email"])  # even the right password now waits
    assert s == 429 and b["error"]["code"] == "too_many_attempts"
    assert metric(st, 'onsale_ingress_logins_total{result="throttled"}') == throttled + 1
    assert 1 <= int(h["retry-after"]) <= 60
    # An unknown email is throttled exactly the same way.
    ghost = email()
    for _ in range(ACCOUNT_LIMIT):
        assert login(st, ghost, "wrong password!")[0] == 401
    s2, h2, b2 = login(st, ghost, "wrong password!")
    assert s2 == 429 and b2["error"]["code"] == "too_many_attempts" and "retry-after" in h2
    # Other accounts are unaffected.
    v = signup(st)
    assert login(st, v["email"])[0] == 201
    # When the window ends the account can log in again.
    st.sql("UPDATE login_throttle SET window_ends = now() - interval '1 second'")
    assert login(st, u["email"])[0] == 201


def test_a_successful_login_clears_the_account_counter(st):
    u = signup(st)
    for _ in range(ACCOUNT_LIMIT - 1):
        assert login(st, u["email"], "wrong password!")[0] == 401
    assert login(st, u["email"])[0] == 201
    for _ in range(ACCOUNT_LIMIT - 1):
        assert login(st, u["email"], "wrong password!")[0] == 401
    assert login(st, u["email"])[0] == 201


def test_failed_logins_are_throttled_per_address(st):
    addr = "10.1.2.3"
    for _ in range(ADDR_LIMIT):  # spread over emails: no account limit is hit
        assert login(st, email(), "wrong password!", addr=f"203.0.113.9, {addr}")[0] == 401
    u = signup(st)
    s, h, b = login(st, u["email"], addr=addr)
    assert s == 429 and b["error"]["code"] == "too_many_attempts" and int(h["retry-after"]) >= 1
    # The proxy's entry (the last one) counts, not what the client put first.
    assert login(st, u["email"], addr=f"{addr}, 10.9.9.9")[0] == 201


# ---- the hashing bound -----------------------------------------------------------------


def test_concurrent_hashes_are_bounded(st):
    """With one hashing slot, a burst of logins gets some 503s with
    Retry-After at once instead of queueing in front of joins; a join-path
    request still answers while the burst runs."""
    base_port = st.ingress_port
    st.start_ingress(accounts_hash_concurrency=1, pool_threads=2)
    try:
        u = signup(st)
        ev = st.create_event()
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            futs = [pool.submit(login, st, u["email"]) for _ in range(16)]
            t = time.monotonic()
            s, _, _ = st.http("GET", f"/v1/events/{ev}")
            event_latency = time.monotonic() - t
            results = [f.result() for f in futs]
        codes = sorted(r[0] for r in results)
        assert 201 in codes and 503 in codes, codes
        assert metric(st, 'onsale_ingress_logins_total{result="busy"}') == codes.count(503)
        assert metric(st, 'onsale_ingress_logins_total{result="ok"}') == codes.count(201)
        assert set(codes) <= {201, 503}, codes
        for s503, h, b in results:
            if s503 == 503:
                assert b["error"]["code"] == "overloaded" and h["retry-after"] == "1"
        assert s == 200 and event_latency < 2.0, event_latency
    finally:
        st.ingress_port = base_port


def test_rehash_when_the_limits_change(st):
    u = signup(st)
    (h1,), = st.sql("SELECT password_hash FROM users WHERE user_id = %s", (u["user_id"],))
    assert ",t=2," in h1
    base_port = st.ingress_port
    st.start_ingress(accounts_hash_ops=3)
    try:
        assert login(st, u["email"], "wrong password!")[0] == 401
        (h,), = st.sql("SELECT password_hash FROM users WHERE user_id = %s", (u["user_id"],))
        assert h == h1  # a failed login rehashes nothing
        assert login(st, u["email"])[0] == 201
        (h2,), = st.sql("SELECT password_hash FROM users WHERE user_id = %s", (u["user_id"],))
        assert h2.startswith("$argon2id$v=19$m=65536,t=3,p=1$") and h2 != h1
        assert login(st, u["email"])[0] == 201  # the new hash verifies
    finally:
        st.ingress_port = base_port
    assert login(st, u["email"])[0] == 201  # and so does it under the old limits
