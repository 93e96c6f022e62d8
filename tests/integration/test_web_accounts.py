"""test_web_accounts.py - signing up, in and out on the fan page
(docs/accounts.md "The fan page") in headless Chromium (tests/web/driver.js,
as test_web.py): a fan creates an account, is signed in by name, joins the
queue with the login's token, gets a fresh access token from the refresh
token before the old one expires (without a reload), keeps the login across
a reload, logs out (the session is revoked on the server), and a wrong
password shows the server's answer. A #token= link still works.
"""
import json
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Stack  # noqa: E402
from test_web import browser, need_browser  # noqa: E402,F401 (browser: the fixture)

ACCESS_TTL = 60  # the page refreshes halfway through a token this short


@pytest.fixture(scope="module")
def st():
    with Stack(partitions=1) as s:
        s.start_ingress(accounts_access_ttl_s=ACCESS_TTL)
        yield s


def fill(b, page, values):
    js = "".join(f"document.getElementById({json.dumps(k)}).value = {json.dumps(v)};"
                 for k, v in values.items())
    b("eval", page=page, js=js + "return true")


def visible(b, page, element_id):
    return not b("eval", page=page,
                 js=f"return document.getElementById('{element_id}').classList.contains('hidden')")


def session(b, page):
    return b("eval", page=page, js="return {access: sessionStorage.getItem('onsale.fan.token'), "
                                   "refresh: sessionStorage.getItem('onsale.fan.token.refresh')}")


@need_browser
def test_fan_signs_up_joins_refreshes_and_logs_out(st, browser):
    ev = st.create_event(name="Accounts Night")
    base = f"http://127.0.0.1:{st.ingress_port}"
    b = browser
    b("open", name="acct")
    b("goto", page="acct", url=f"{base}/q/{ev}")
    b.wait_state("acct", "join")
    assert visible(b, "acct", "account") and not visible(b, "acct", "logout-btn")
    assert b("eval", page="acct", js="return document.getElementById('join-btn').disabled")
    b.shot("acct", "acct-01-signed-out")

    # A wrong password: the server's answer, still signed out.
    fill(b, "acct", {"login-email": "nobody@example.com", "login-password": "not the one"})
    b("click", page="acct", selector="#login-btn")
    b("wait", page="acct",
      js="return document.getElementById('acct-msg').textContent === 'The email or password is wrong.'")

    # Sign up: the page signs in and reloads as the new fan.
    b("click", page="acct", selector="#signup summary")
    fill(b, "acct", {"su-name": "Ada Lovelace", "su-email": "ada@example.com",
                     "su-password": "analytical engine"})
    b("click", page="acct", selector="#signup-btn")
    b("wait", page="acct", js="return document.getElementById('who').textContent === "
                              "'Signed in as Ada Lovelace'")
    b.wait_state("acct", "join")
    assert not visible(b, "acct", "account") and visible(b, "acct", "logout-btn")
    (uid, h), = st.sql("SELECT user_id, password_hash FROM users WHERE email = 'ada@example.com'")
    assert h.startswith("$argon2id$")
    s1 = session(b, "acct")
    b.shot("acct", "acct-02-signed-in")

    # The login's token joins the queue (no worker: the intent waits in line).
    b("click", page="acct", selector="#join-btn")
    b.wait_state("acct", "queued")
    (owner,), = st.sql("SELECT count(*) FROM users WHERE user_id = %s", (uid,))
    assert owner == 1

    # Before the access token expires the page trades the refresh token for
    # new ones, without a reload; the old refresh token is spent.
    t0 = time.monotonic()
    b("wait", page="acct", timeout=(ACCESS_TTL + 15) * 1000,
      js=f"return sessionStorage.getItem('onsale.fan.token.refresh') !== {json.dumps(s1['refresh'])}")
    assert time.monotonic() - t0 < ACCESS_TTL
    s2 = session(b, "acct")
    assert s2["access"] != s1["access"]
    s, _, me = st.http("GET", "/v1/me", token=s2["access"])
    assert s == 200 and me["email"] == "ada@example.com"
    (rotated,), = st.sql("SELECT rotated_at IS NOT NULL FROM refresh_tokens WHERE selector = %s",
                         (s1["refresh"].split(".")[0],))
    assert rotated

    # A reload keeps the login and the place in line.
    b("reload", page="acct")
    b.wait_state("acct", "queued")
    assert b.text("acct", "who") == "Signed in as Ada Lovelace"

    # Log out: signed out here, and the session is revoked on the server.
    b("click", page="acct", selector="#logout-btn")
    b("wait", page="acct", js="return !document.getElementById('account').classList.contains('hidden')")
    assert session(b, "acct") == {"access": None, "refresh": None}
    assert st.http("POST", "/v1/sessions/refresh", {"refresh_token": s2["refresh"]})[0] == 401
    b.shot("acct", "acct-03-signed-out-again")

    # Signing in again with the form works.
    fill(b, "acct", {"login-email": "ADA@example.com", "login-password": "analytical engine"})
    b("click", page="acct", selector="#login-btn")
    b("wait", page="acct", js="return document.getElementById('who').textContent === "
                              "'Signed in as Ada Lovelace'")

    # A #token= link replaces the login in this tab (a query makes it a real
    # navigation, not a fragment change of the same document).
    b("goto", page="acct", url=f"{base}/q/{ev}?from=link#token={st.token(4242, 'fan')}")
    b.wait_state("acct", "join")
    assert b.text("acct", "who").startswith("Signed in as fan #4242")
    assert session(b, "acct")["refresh"] is None
    assert not visible(b, "acct", "logout-btn")
    logs = b.logs() or []
    assert not [line for line in logs if "pageerror" in line], logs
