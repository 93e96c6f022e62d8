"""test_web_faults.py - the real fan page (web/fan.html in headless
Chromium, tests/web/driver.js, as test_web.py) when the server cannot say
everything, or says nothing for a while:

  * a fan whose intent is accepted on a partition the answering node does
    not watch (the topics grew since it started: no position, no ETA,
    poll_after_ms = status.poll_max_ms) is told it is in line with its
    place not known, polls no faster than told, and sees its place once a
    node that watches the partition answers;
  * a few pages waiting in line while ingress is killed -9 (and restarted
    later), Redis hangs (SIGSTOP, a private redis-server) and the worker is
    killed -9 and restarted: every page ends with the API's answer, none
    is left on an error, none holds two places, the places a page shows
    never go up unless the server's did, and each page's retries while the
    server was gone keep api.js's backoff and the Retry-After it was given."""
import json
import os
import signal
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from fault_util import PrivateRedis  # noqa: E402
from harness import BIN, Stack, free_port  # noqa: E402
from test_topic_grow import murmur2_partition  # noqa: E402
from test_web import Browser, need_browser  # noqa: E402

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-worker"), os.X_OK),
                                reason="onsale-worker is not built")

# Each fetch of the page (Date.now() when sent and answered), with what
# its answer said (status, Retry-After, state, position, poll_after_ms,
# refresh_after_ms), set up before the page's scripts.
NET_JS = """
window.__net = [];
const f = window.fetch;
window.fetch = async (input, init) => {
  const e = { t: Date.now(), m: (init && init.method) || 'GET', p: String(input) };
  window.__net.push(e);
  try {
    const r = await f(input, init);
    e.end = Date.now(); e.status = r.status; e.ra = r.headers.get('Retry-After');
    try {
      const b = await r.clone().json();
      e.poll = b && b.poll_after_ms; e.refresh = b && b.refresh_after_ms;
      e.state = b && b.state; e.pos = b && b.position; e.code = b && b.error && b.error.code;
    } catch (x) { /* not JSON */ }
    return r;
  } catch (x) { e.end = Date.now(); e.status = 0; throw x; }
};
"""
# Every 50 ms: the page's state, place, notice and the queue's note when
# any changes (Date.now()).
SEEN_JS = """
window.__seen = []; let last = null;
setInterval(() => {
  const t = (id) => document.getElementById(id).textContent;
  const row = [document.body.dataset.state || '', t('q-place'), t('q-ahead'), t('q-eta'),
               t('notice'), t('q-note')];
  const k = JSON.stringify(row);
  if (k !== last) { last = k; window.__seen.push([Date.now(), ...row]); }
}, 50);
return true;
"""


def event_homed_on(st, partition, of):
    """An event (one section of 20 seats) whose home is partition of a
    count of `of` partitions."""
    while True:
        ev = st.create_event(sections=[("A", 1, 20, 5000)], name="Grown hall")
        if murmur2_partition(str(ev), of) == partition:
            st.sql("UPDATE events SET partitions = %s WHERE event_id = %s", (of, ev))
            return ev


@need_browser
def test_a_fan_not_placed_yet_is_told_so_then_sees_its_place():
    """Topics of 2 partitions, a node told of 1 (as a node not restarted
    after the topics grew): a join of an event homed on partition 1 is
    accepted there without a place. The page says the place is not known
    (not "You're next", not an ETA), polls every status.poll_max_ms, and
    once the node is restarted knowing both partitions shows the place the
    API gives (3 fans ahead: No. 4), then the hold once a worker runs."""
    with Stack(partitions=2) as st:
        port = free_port()
        opts = dict(http_port=port, status_poll_min_ms=100, status_poll_max_ms=1500)
        base = st.start_ingress(kafka_partitions=1, **opts)
        ev = event_homed_on(st, 1, 2)
        for u in (701, 702, 703):  # ahead of the page's fan
            s, _, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1},
                              token=st.token(u, "fan"))
            assert s == 202 and "position" not in b and b["poll_after_ms"] == 1500, b
        b = Browser()
        try:
            b("open", name="f")
            b("init", page="f", js=NET_JS)
            b("goto", page="f", url=f"{base}/q/{ev}#token={st.token(710, 'fan')}")
            b.wait_state("f", "join")
            b("eval", page="f", js=SEEN_JS)
            b("click", page="f", selector="#join-btn")
            b.wait_state("f", "queued")
            b("wait", page="f", timeout=10000,
              js="return window.__net.filter(e => e.p.startsWith('/v1/intents/')).length >= 2")
            assert b.text("f", "q-place") == "Not known yet"
            assert b.text("f", "q-eta") == "—" and b.text("f", "q-ahead") == "—"
            assert "cannot tell your place" in b.text("f", "q-note")
            net = b("eval", page="f", js="return window.__net")
            asked = [e for e in net if e["p"].startswith("/v1/intents/") or e["m"] == "POST"]
            assert asked[0]["poll"] == 1500 and asked[0].get("pos") is None, asked
            for prev, e in zip(asked, asked[1:]):  # the polls keep poll_max_ms
                assert e["t"] - prev["end"] >= prev["poll"] - 25, (prev, e)
            # A node that watches partition 1 answers on the same address.
            for p in st.procs:
                if p.name == "ingress":
                    p.kill()
                    p.wait()
            st.start_ingress(kafka_partitions=2, **opts)
            b("wait", page="f", timeout=15000,
              js="return document.getElementById('q-place').textContent.startsWith('No.')")
            st.wait_for(lambda: b.text("f", "q-eta") != "—", 5, "the ETA shown")
            iid = json.loads(b("eval", page="f", js=f"return localStorage.getItem("
                                                    f"'onsale.intent.{ev}.710')"))["intent_id"]
            s, _, api = st.http("GET", f"/v1/intents/{iid}", token=st.token(710, "fan"))
            assert s == 200 and api["state"] == "queued" and api["position"] == 3, api
            assert b.text("f", "q-place") == "No. 4" and b.text("f", "q-ahead") == "3"
            st.start_worker()
            b.wait_state("f", "reserved", timeout=30000)
            seen = b("eval", page="f", js="return window.__seen")
            shown = [r[2] for r in seen if r[1] == "queued"]
            assert shown[0] == "Not known yet" and "You're next" not in shown, shown
            assert seen[-1][5] == "", seen[-3:]  # no notice left
        finally:
            b.close()
