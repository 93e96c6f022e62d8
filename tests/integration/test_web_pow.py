"""test_web_pow.py - the fan page solves an event's proof of work (issue 10,
docs/fairness.md "Bot friction") in headless Chromium (tests/web/driver.js)
and joins with it:

  * an event that asks for work from the start: the page shows its progress
    ("Checking this browser ... %"), solves with Web Crypto, joins, and the
    fan is in line (the intent exists: the server accepted the solution);
  * the seller raises the difficulty while the page is open (its copy of the
    event still says 0): the join is refused 403 pow_required, the page
    fetches a challenge, solves it and joins without the fan doing anything.

Screenshots go to .state/test-artifacts/web/.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Stack  # noqa: E402
from test_web import browser, need_browser  # noqa: E402,F401 (browser: the fixture)

D = 12

# Records whether the join message ever said the browser was being checked.
WATCH = ("window.__powSeen = false; const m = document.getElementById('join-msg'); "
         "new MutationObserver(() => { if (m.textContent.includes('Checking this browser')) "
         "window.__powSeen = true; }).observe(m, {childList: true, characterData: true, "
         "subtree: true}); return true;")


@pytest.fixture(scope="module")
def st():
    with Stack(partitions=1) as s:
        s.start_worker()
        s.start_ingress(event_cache_ttl_ms=100)
        yield s


def url(st, path, token):
    return f"http://127.0.0.1:{st.ingress_port}{path}#token={token}"


def set_pow(st, ev, d):
    s, _, b = st.http("POST", f"/v1/events/{ev}/pow", {"difficulty": d}, st.token(1, "admin"))
    assert s == 200 and b["pow_difficulty"] == d, b


def in_line(st, ev, user):
    return st.sql("SELECT count(*) FROM intents WHERE event_id = %s AND user_id = %s",
                  (ev, user)) == [(1,)]


@need_browser
def test_fan_page_solves_the_challenge_and_joins(st, browser):
    ev = st.create_event(sections=[("GA", 2, 10, 3000)], name="Guarded Night")
    set_pow(st, ev, D)
    b = browser
    b("open", name="pow")
    b("goto", page="pow", url=url(st, f"/q/{ev}", st.token(7301, "fan")))
    b.wait_state("pow", "join")
    b("wait", page="pow", js="return !document.getElementById('join-btn').disabled")
    b("eval", page="pow", js=WATCH)
    b("click", page="pow", selector="#join-btn")
    b.wait_state("pow", "queued", "reserved", timeout=60000)
    assert b("eval", page="pow", js="return window.__powSeen") is True
    ms = b("eval", page="pow", js="return document.body.dataset.powMs")
    assert ms is not None and int(ms) >= 0, ms
    assert b("eval", page="pow",
             js="return document.getElementById('pow-bar').classList.contains('hidden')")
    b.shot("pow", "30-pow-solved-joined")
    st.wait_for(lambda: in_line(st, ev, 7301), 20, "the fan's intent")


@need_browser
def test_fan_page_answers_a_difficulty_raised_while_it_was_open(st, browser):
    ev = st.create_event(sections=[("GA", 2, 10, 3000)], name="Suddenly Guarded")
    b = browser
    b("open", name="raise")
    b("goto", page="raise", url=url(st, f"/q/{ev}", st.token(7302, "fan")))
    b.wait_state("raise", "join")
    b("wait", page="raise", js="return !document.getElementById('join-btn').disabled")
    # The page read the event with no work asked; the seller raises it now.
    set_pow(st, ev, D)
    s, _, r = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, st.token(7399))
    assert s == 403 and r["error"]["code"] == "pow_required", r
    b("eval", page="raise", js=WATCH)
    b("click", page="raise", selector="#join-btn")
    b.wait_state("raise", "queued", "reserved", timeout=60000)
    assert b("eval", page="raise", js="return window.__powSeen") is True
    # Two joins went out: the refused one (403 pow_required) and the solved one.
    joins = b("eval", page="raise",
              js="return performance.getEntriesByType('resource')"
                 ".filter(e => e.name.endsWith('/intents')).length")
    assert joins == 2, joins
    b.shot("raise", "31-pow-raised-solved-joined")
    st.wait_for(lambda: in_line(st, ev, 7302), 20, "the fan's intent")
