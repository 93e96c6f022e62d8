"""test_web_tickets.py - the fan page shows each ticket's live gate code
(docs/tickets.md) in headless Chromium (tests/web/driver.js, as
test_web.py): a fan with tickets opens the home page, sees every valid
ticket with its 8-digit code (the documented algorithm's value for the
step shown) and a QR image that loads, and the code turns with the step
without a reload. A ticket transferred away says so and shows no code.
Screenshots go to .state/test-artifacts/web/.
"""
import os
import signal
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Stack  # noqa: E402
from test_checkout import Env  # noqa: E402
from test_tickets import STEP_S, expected_code  # noqa: E402
from test_web import Browser, need_browser  # noqa: E402

DOWN_S = 3  # ingress killed -9, back this much later


@pytest.fixture(scope="module")
def env():
    with Stack(partitions=1) as st:
        e = Env(st)
        e.base = st.start_ingress(tickets_code_step_s=STEP_S)
        e.ev = st.create_event(sections=(("A", 2, 10, 5000),), name="Gate test")
        yield e


def card_js(tid, what):
    sel = f'.ticket[data-ticket-id="{tid}"]'
    return {
        "code": f"const c = document.querySelector('{sel} .code'); "
                "return c && /^[0-9]{8}$/.test(c.textContent) && "
                f"[c.textContent, document.querySelector('{sel}').dataset.step]",
        "qr": f"const i = document.querySelector('{sel} img.qr'); "
              "return i && i.complete && i.naturalWidth > 0 && i.naturalWidth",
        "left": f"return document.querySelector('{sel} .code-left').textContent",
    }[what]


@need_browser
def test_fan_page_shows_live_ticket_codes(env):
    st = env.st
    t1, t2 = env.buy(70, qty=2)
    b = Browser()
    try:
        b("open", name="fan")
        b("goto", page="fan", url=f"{env.base}/#token={st.token(70, 'fan')}")
        for tid in (t1, t2):
            code, step = b("wait", page="fan", js=card_js(tid, "code"), timeout=20000)
            assert code == expected_code(tid, 0, int(step)), (tid, code, step)
            assert b("wait", page="fan", js=card_js(tid, "qr"), timeout=10000) > 0
        assert "New code in" in b("eval", page="fan", js=card_js(t1, "left"))
        b.shot("fan", "tickets-codes")
        # The code turns with the step, without a reload.
        _, step = b("eval", page="fan", js=card_js(t1, "code"))
        turned = f"const v = (() => {{ {card_js(t1, 'code')} }})(); return v && v[1] !== '{step}' && v"
        code2, step2 = b("wait", page="fan", js=turned, timeout=(STEP_S + 5) * 1000)
        assert int(step2) > int(step) and code2 == expected_code(t1, 0, int(step2))
        # Transferred away: the card stops showing a code.
        st.account(71)
        s, _, r = st.http("POST", f"/v1/tickets/{t2}/transfer", {"to_user_id": 71},
                          token=st.token(70, "fan"))
        assert s == 202, r
        gone = f"return {card_js(t2, 'left').replace('return ', '')}.includes('no longer yours')"
        assert b("wait", page="fan", js=gone, timeout=(STEP_S + 10) * 1000)
        b.shot("fan", "tickets-transferred")
    finally:
        b.close()


@need_browser
def test_a_ticket_change_on_its_way_hides_the_code_until_it_is_applied(env):
    """A transfer claimed but not yet applied (the worker stopped): the
    code is 409 ticket_change_pending with Retry-After, a refusal that
    clears by itself. The card says a change is on its way and asks
    again; once the owner applies it, it says the ticket went to someone
    else. Before, the card took the 409 for an invalid ticket and stopped
    asking for good ("no longer valid", a transferred ticket never shown
    as such, a dropped change never showing its code again)."""
    st = env.st
    (t,) = env.buy(72)
    b = Browser()
    try:
        b("open", name="fan")
        b("goto", page="fan", url=f"{env.base}/#token={st.token(72, 'fan')}")
        b("wait", page="fan", js=card_js(t, "code"), timeout=20000)
        st.account(73)
        env.worker.kill(signal.SIGSTOP)
        try:
            s, _, r = st.http("POST", f"/v1/tickets/{t}/transfer", {"to_user_id": 73},
                              token=st.token(72, "fan"))
            assert s == 202, r
            s, h, r = st.http("GET", f"/v1/tickets/{t}/code", token=st.token(72, "fan"))
            assert (s, r["error"]["code"]) == (409, "ticket_change_pending") and h.get("retry-after"), r
            left = card_js(t, "left")
            on_way = f"return ({left.replace('return ', '')}).includes('on its way')"
            b("wait", page="fan", js=on_way, timeout=(STEP_S + 10) * 1000)
            b.shot("fan", "tickets-change-pending")
        finally:
            env.worker.kill(signal.SIGCONT)
        gone = f"return {card_js(t, 'left').replace('return ', '')}.includes('no longer yours')"
        assert b("wait", page="fan", js=gone, timeout=40000)
    finally:
        b.close()


# Every 50 ms, when any changes: each card's transfer and cancel buttons
# (off?), whether its controls are shown, and its change message.
CHANGES_JS = """
window.__cards = []; let lastCards = null;
setInterval(() => {
  const row = [...document.querySelectorAll('.ticket')].map((c) => [c.dataset.ticketId,
    c.querySelector('.xfer-btn').disabled, c.querySelector('.cancel-btn').disabled,
    !c.querySelector('.ticket-actions').classList.contains('hidden'),
    c.querySelector('.change-msg').textContent]);
  const k = JSON.stringify(row);
  if (k !== lastCards) { lastCards = k; window.__cards.push([Date.now(), row]); }
}, 50);
return true;
"""


@need_browser
def test_a_ticket_cancel_and_transfer_pressed_while_ingress_is_down_are_carried_through(env):
    """A fan with two tickets cancels one and transfers the other (to a
    signed-up fan's email) on the page while ingress is killed -9; it is
    back DOWN_S later on the same port. Each change is retried on the
    backoff (no sooner than backoffMs allows), its controls off meanwhile,
    and ends on the truth: the cancelled ticket void with one refund of its
    price at the gateway, the other owned by the recipient in PostgreSQL,
    each card saying so. (Main's page has no such controls.)"""
    from test_web_faults import NET_JS, retry_faults
    st = env.st
    t1, t2 = env.buy(76, qty=2)
    st.account(77)
    b = Browser()
    card = lambda tid: f'.ticket[data-ticket-id="{tid}"]'  # noqa: E731
    try:
        b("open", name="fan")
        b("init", page="fan", js=NET_JS)
        b("goto", page="fan", url=f"{env.base}/#token={st.token(76, 'fan')}")
        for tid in (t1, t2):
            b("wait", page="fan", js=card_js(tid, "code"), timeout=20000)
        b("eval", page="fan", js=CHANGES_JS)
        ing = [p for p in st.procs if p.name == "ingress"][-1]
        ing.kill()
        ing.wait()
        b("click", page="fan", selector=f"{card(t1)} .cancel-btn")
        b("click", page="fan", selector=f"{card(t1)} .cancel-btn")
        b("eval", page="fan", js=f"document.querySelector('{card(t2)} .xfer-email').value = "
                                 "'User77@accounts.test'; return 1")
        b("click", page="fan", selector=f"{card(t2)} .xfer-btn")
        b("click", page="fan", selector=f"{card(t2)} .xfer-btn")
        time.sleep(DOWN_S)
        st.start_ingress(http_port=int(env.base.rsplit(":", 1)[1]), tickets_code_step_s=STEP_S)
        msg = lambda tid: f"return document.querySelector('{card(tid)} .change-msg').textContent"  # noqa: E731
        b("wait", page="fan", js=f"return ({msg(t1)[7:]}) === 'Cancelled: your refund is on its way.'",
          timeout=30000)
        b("wait", page="fan", js=f"return ({msg(t2)[7:]}) === 'Transferred.'", timeout=30000)
        net = b("eval", page="fan", js="return window.__net")
        cards = b("eval", page="fan", js="return window.__cards")
        sent = {tid: [e for e in net if e["p"].startswith(f"/v1/tickets/{tid}/") and e["m"] == "POST"]
                for tid in (t1, t2)}
        assert all(len(v) >= 2 and v[0]["status"] == 0 and v[-1]["status"] == 202
                   for v in sent.values()), sent
        faults = retry_faults(net, env.ev)
        # each card's controls off from its first change request to the outcome
        first = {str(tid): v[0]["t"] for tid, v in sent.items()}
        faults += [("controls on while a change was on its way", r) for r in cards
                   if any(r[0] > first[c[0]] + 25 and c[3] and not (c[1] and c[2])
                          for c in r[1] if c[0] in first)]
        assert not faults, faults[:3]
        rows = dict((tid, (owner, status)) for tid, owner, status in st.sql(
            "SELECT ticket_id, owner_id, status FROM tickets WHERE ticket_id IN (%s, %s)", (t1, t2)))
        assert rows == {t1: (76, "cancelled"), t2: (77, "valid")}, rows
        (oid,), = st.sql("SELECT order_id FROM tickets WHERE ticket_id = %s", (t1,))
        led = env.ledger()
        charge = [c for c in led["charges"] if str(c["order_id"]) == str(oid)]
        assert len(charge) == 1, charge
        refunds = [r["amount_cents"] for r in led["refunds"] if r["charge"] == charge[0]["id"]]
        assert refunds == [5000], refunds
    finally:
        b.close()


# Every GET of a ticket's code held SLOW_CODE_MS in the page before it is
# sent (a slow network), each recorded with when it was asked and answered;
# every change POST recorded with when it was sent.
SLOW_CODE_MS = 2500
SLOW_CODE_JS = """
window.__codes = []; window.__posts = [];
const f = window.fetch;
window.fetch = async (input, init) => {
  const p = String(input), m = (init && init.method) || 'GET';
  if (m === 'POST' && p.startsWith('/v1/tickets/')) window.__posts.push([Date.now(), p]);
  if (m !== 'GET' || !/^\\/v1\\/tickets\\/[0-9]+\\/code$/.test(p)) return f(input, init);
  const e = [Date.now(), 0]; window.__codes.push(e);
  await new Promise((res) => setTimeout(res, %d));
  try { return await f(input, init); } finally { e[1] = Date.now(); }
};
""" % SLOW_CODE_MS


@need_browser
def test_a_double_click_is_one_press_and_a_change_never_doubles_the_code_reads(env):
    """A double-click on "Cancel for a refund" arms it and no more (its
    second click is part of one gesture, not the press the confirmation
    asks for: before, it cancelled the ticket at once). The press after
    it cancels, while the card's first code read is still on its way (a
    slow network): the read the change asks for must wait for it, not
    start a second chain of reads beside it (before: two reads of the
    card's code at once, and from then on two timers per card)."""
    st = env.st
    (t,) = env.buy(78)
    b = Browser()
    sel = f'.ticket[data-ticket-id="{t}"] .cancel-btn'
    try:
        b("open", name="fan")
        b("init", page="fan", js=SLOW_CODE_JS)
        b("goto", page="fan", url=f"{env.base}/#token={st.token(78, 'fan')}")
        b("wait", page="fan", js=f"return !!document.querySelector('{sel}')", timeout=20000)
        b("dblclick", page="fan", selector=sel)
        time.sleep(0.3)
        armed = b("eval", page="fan", js=f"return [document.querySelector('{sel}').textContent, "
                                        "window.__posts.length]")
        assert armed == ["Press again to cancel", 0], armed
        b("click", page="fan", selector=sel)
        done = "Cancelled: your refund is on its way."
        b("wait", page="fan", timeout=30000,
          js=f"return document.querySelector('.ticket[data-ticket-id=\"{t}\"] .change-msg')"
             f".textContent === '{done}'")
        codes = b("eval", page="fan", js="return window.__codes")
        posts = b("eval", page="fan", js="return window.__posts")
        assert len(posts) == 1, posts
        # the first read was still on its way when the change was taken
        assert codes[0][1] > posts[0][0], (codes, posts)
        overlap = [(a, c) for a, c in zip(codes, codes[1:]) if c[0] < a[1]]
        assert not overlap, overlap
        (status,), = st.sql("SELECT status FROM tickets WHERE ticket_id = %s", (t,))
        assert status == "cancelled"
    finally:
        b.close()
