"""test_web_view.py - the fan page fetches the event view on the schedule
the view asks for (refresh_after_ms, docs/api.md): every 5 s while the
event is quiet, and no sooner than the hint while a crowd waits, so that a
crowd's refreshes stay within event_view.views_per_s. In headless Chromium
(tests/web/driver.js); the page's own fetches are counted in the browser
(performance entries), both pages open side by side for the same time.
"""
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import Stack  # noqa: E402
from test_web import browser, need_browser  # noqa: E402,F401 (browser: the fixture)


@pytest.fixture(scope="module")
def st():
    with Stack(partitions=1) as s:
        s.start_worker()
        # One view a second for a whole event's crowd: 20 fans make 20 s.
        s.start_ingress(event_view_views_per_s=1, event_view_ttl_ms=0,
                        event_view_refresh_max_ms=30000)
        yield s


def views(b, page, ev):
    return b("eval", page=page,
             js="return performance.getEntriesByType('resource')"
                f".filter(e => new URL(e.name).pathname === '/v1/events/{ev}').length")


@need_browser
def test_fan_page_follows_the_views_refresh_hint(st, browser):
    quiet = st.create_event(sections=[("GA", 1, 10, 3000)], name="Quiet Night")
    packed = st.create_event(sections=[("GA", 1, 1, 3000)], name="Packed Night")
    for u in range(1, 21):  # one fan holds the only seat, nineteen wait
        s, _, b = st.http("POST", f"/v1/events/{packed}/intents", {"quantity": 1}, st.token(u))
        assert s == 202, b
    st.wait_for(lambda: st.http("GET", f"/v1/events/{packed}")[2]["refresh_after_ms"] == 20000,
                20, "the packed event's view asks for 20 s")
    assert st.http("GET", f"/v1/events/{quiet}")[2]["refresh_after_ms"] == 5000
    b = browser
    for page, ev in (("quiet", quiet), ("packed", packed)):
        b("open", name=page)
        b("goto", page=page, url=f"http://127.0.0.1:{st.ingress_port}/q/{ev}"
                                 f"#token={st.token(9000 + ev, 'fan')}")
        b.wait_state(page, "join")
    time.sleep(11.5)
    # The quiet page refreshed at 5 and 10 s (the control: refreshes are
    # seen); the packed one only loaded, its next view is due at 20 s.
    assert views(b, "quiet", quiet) >= 3, views(b, "quiet", quiet)
    assert views(b, "packed", packed) == 1, views(b, "packed", packed)
    b.shot("packed", "40-packed-event-view")
