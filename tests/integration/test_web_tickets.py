"""test_web_tickets.py - the fan page shows each ticket's live gate code
(docs/tickets.md) in headless Chromium (tests/web/driver.js, as
test_web.py): a fan with tickets opens the home page, sees every valid
ticket with its 8-digit code (the documented algorithm's value for the
step shown) and a QR image that loads, and the code turns with the step
without a reload. A ticket transferred away says so and shows no code.
Screenshots go to .state/test-artifacts/web/.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Stack  # noqa: E402
from test_checkout import Env  # noqa: E402
from test_tickets import STEP_S, expected_code  # noqa: E402
from test_web import Browser, need_browser  # noqa: E402


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
