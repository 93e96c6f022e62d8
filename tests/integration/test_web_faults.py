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
    server was gone keep api.js's backoff and the Retry-After it was given;
  * the money steps on three held pages through a declining gateway, the
    payments relay killed -9, a 429, ingress killed -9 with a checkout in
    its log and a release sent while it is down: every page ends with the
    API's answer, one paid order and one charge per hold, one key and body
    per press, retries on the backoff, the buttons off while a step is on
    its way."""
import concurrent.futures as cf
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
  const e = { t: Date.now(), m: (init && init.method) || 'GET', p: String(input),
              k: init && init.headers && init.headers['Idempotency-Key'],
              body: init && init.body };
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
# Every 50 ms: the page's state, place, ahead, ETA, notice, the queue's
# note, the join form's message and whether its button is disabled, when
# any changes (Date.now() first).
SEEN_JS = """
window.__seen = []; let last = null;
setInterval(() => {
  const t = (id) => document.getElementById(id).textContent;
  const row = [document.body.dataset.state || '', t('q-place'), t('q-ahead'), t('q-eta'),
               t('notice'), t('q-note'), t('join-msg'), document.getElementById('join-btn').disabled];
  const k = JSON.stringify(row);
  if (k !== last) { last = k; window.__seen.push([Date.now(), ...row]); }
}, 50);
return true;
"""


FROZEN_S = 6  # a page frozen this long misses a view (5 s) and its polls


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
            # A tab long in the background comes back: every timer it
            # missed is due at once (a main thread blocked FROZEN_S: no
            # timer runs meanwhile, as in a throttled or frozen tab). One
            # poll and at most one view, not the ones it missed.
            n0 = len(b("eval", page="f", js="return window.__net"))
            woke = b("eval", page="f", js=f"const end = Date.now() + {FROZEN_S * 1000}; "
                                           "setTimeout(() => { window.__frozeAt = Date.now(); "
                                           "while (Date.now() < end); }, 0); return end")
            time.sleep(FROZEN_S + 1.5)
            net = b("eval", page="f", js="return window.__net")
            froze = b("eval", page="f", js="return window.__frozeAt")
            # (within 80 ms: the polls' own interval is 100 ms here; a poll
            # sent before the block began, between the two evals above on a
            # busy box, is not one it missed)
            after = [e for e in net[n0:] if froze <= e["t"] < woke + 80]
            assert all(e["t"] >= woke for e in after), after  # none while blocked
            assert sum(e["p"].startswith("/v1/intents/") for e in after) == 1, after
            assert sum(e["p"] == f"/v1/events/{ev}" for e in after) <= 1, after
            assert len(after) <= 2, after
            polls = [e for e in net[n0:] if e["p"].startswith("/v1/intents/")]
            for prev, e in zip(polls, polls[1:]):  # and then as told again
                assert e["t"] - prev["end"] >= prev["poll"] - 25, (prev, e)
            st.start_worker()
            b.wait_state("f", "reserved", timeout=30000)
            seen = b("eval", page="f", js="return window.__seen")
            shown = [r[2] for r in seen if r[1] == "queued"]
            assert shown[0] == "Not known yet" and "You're next" not in shown, shown
            assert seen[-1][5] == "", seen[-3:]  # no notice left
        finally:
            b.close()


# ---- faults mid-sale under real pages -----------------------------------------------
FAULT_PAGES = int(os.environ.get("ONSALE_WEB_FAULT_PAGES", "8"))
FILLERS = 12       # fans in line ahead of the pages (joined through the API)
DOWN_S = 6         # ingress killed -9, restarted this much later
HANG_S = 4         # Redis stopped
SLACK_MS = 25      # timers fire a little early; Date.now() has 1 ms steps
TRANSIENT = (0, 429, 502, 503, 504)


def kind_of(e, ev):
    path = e["p"].split("?")[0]
    if path == f"/v1/events/{ev}":
        return "view"
    if path.startswith("/v1/intents/") and e["m"] == "GET":
        return "poll"
    if path == f"/v1/events/{ev}/intents":
        return "join"
    return path


def min_backoff_ms(attempt):
    """The least delay api.js's backoffMs gives for attempt (from 1)
    without a Retry-After: half its capped exponential base."""
    return min(30000, 500 * 2 ** min(attempt - 1, 6)) / 2


# The attempt a kind of request's k-th failure in a row retries with
# (fan.js): the view starts two steps in (1-2 s), the others at 1.
FIRST_ATTEMPT = {"view": 3, "poll": 1, "join": 1}


def retry_faults(net, ev):
    """Each retry of a page after a failed request (no answer, 429, 5xx,
    a 409 with Retry-After) came no sooner than backoffMs allows for its attempt (the failures of
    that kind in a row) and Retry-After when the failure gave one."""
    faults, fails, last = [], {}, {}
    for e in net:
        k = kind_of(e, ev)
        prev = last.get(k)
        last[k] = e
        if prev is None or "end" not in prev:
            continue
        if prev["status"] in TRANSIENT or (prev["status"] == 409 and prev.get("ra")):
            fails[k] = fails.get(k, 0) + 1
            gap = e["t"] - prev["end"]
            least = min_backoff_ms(FIRST_ATTEMPT.get(k, 1) + fails[k] - 1)
            if prev.get("ra"):
                least = max(least, int(prev["ra"]) * 1000)
            if gap < least - SLACK_MS:
                faults.append((k, f"retry {gap} ms after failure {fails[k]} in a row, "
                                  f"least {least}", prev, e))
        else:
            fails[k] = 0
    return faults


def place_faults(net, seen, ev):
    """The places a page showed against its polls' answers: each one a
    place the server gave (No. position + 1), and the page's going up no
    more often than the server's did."""
    told = [e["pos"] for e in net if kind_of(e, ev) in ("poll", "join")
            and e.get("state") == "queued" and e.get("pos") is not None]
    shown = [int(r[2].split()[1].replace(",", "")) - 1 for r in seen
             if r[1] == "queued" and r[2].startswith("No. ")]
    ups = lambda xs: sum(b > a for a, b in zip(xs, xs[1:]))  # noqa: E731
    faults = [("shown, never told", p) for p in set(shown) - set(told)]
    if ups(shown) > ups(told):
        faults.append(("went up on its own", shown, told))
    return faults


def join_faults(net, seen, ev):
    """From the page's first join until its place: the join form never
    offered its button again, nor dropped what the join was doing (a
    second press started a second chain of retries)."""
    clicked = next((e["t"] for e in net if kind_of(e, ev) == "join"), None)
    if clicked is None:
        return [("never joined",)]
    placed = next((r[0] for r in seen if r[1] not in ("join", "")), None)
    # One join, so one key and one body: a retry that read the form again
    # (changed meanwhile) was a new key, a second join.
    sent = {(e.get("k"), e.get("body")) for e in net if kind_of(e, ev) == "join"}
    return ([("a retry changed its key or body", sorted(sent, key=str))] if len(sent) > 1 else []) + \
        [("the join form reset while joining", r) for r in seen
         if clicked < r[0] and (placed is None or r[0] < placed) and r[1] == "join"
         and (not r[8] or not (r[7].startswith("Joining") or "Trying again" in r[7]))]


@need_browser
def test_fan_pages_through_faults_mid_sale_end_with_the_truth():
    """FAULT_PAGES pages (each its own browser context) in line behind
    FILLERS fans: Redis (a private one) hangs HANG_S while they wait (and
    one more page tries to join meanwhile); the last two pages join just
    before ingress is killed -9 (their joins in the log, unanswered: the
    node holds its answers 2 s), and it is back DOWN_S later on the same
    address; then the worker starts, is killed -9
    and started again. Every page ends with the API's answer for its intent
    (held, or waiting with every seat held), no notice left, one intent per
    fan in PostgreSQL, places never going up unless the server's did, the
    join form never offered again while a join is retried, and every retry
    no sooner than the page's backoff and Retry-After allow."""
    seats = FILLERS + FAULT_PAGES // 2
    with PrivateRedis() as rd, Stack(partitions=1) as st:
        via = dict(redis_port=rd.port, redis_timeout_ms=300)
        port = free_port()
        # a cut join's idempotency claim clears in 5 s, not 60 (the test's time)
        opts = dict(http_port=port, status_poll_min_ms=200, status_poll_max_ms=2000,
                    idem_inflight_ttl_s=5, **via)
        base = st.start_ingress(debug_finisher_delay_ms=2000, **opts)
        ev = st.create_event(sections=[("A", 1, seats, 5000)], name="Faulty night", max_per_user=1)
        with cf.ThreadPoolExecutor(FILLERS) as ex:
            for s, _, body in ex.map(lambda u: st.http(
                    "POST", f"/v1/events/{ev}/intents", {"quantity": 1}, token=st.token(u, "fan")),
                    range(800, 800 + FILLERS)):
                assert s == 202, body
        b = Browser()
        names = [f"x{i}" for i in range(FAULT_PAGES)]
        users = {n: 8500 + i for i, n in enumerate(names)}
        early, hung, late = names[:-3], names[-3], names[-2:]
        try:
            b.open_fan_pages(names, [f"{base}/q/{ev}#token={st.token(users[n], 'fan')}"
                                     for n in names], NET_JS)
            b("evalAll", pages=names, js=SEEN_JS)
            b("evalAll", pages=early, js="document.getElementById('join-btn').click(); return 1")
            for n in early:
                b.wait_state(n, "queued", timeout=30000)
            # (b) Redis hangs while they wait in line.
            rd.proc.send_signal(signal.SIGSTOP)
            b("click", page=hung, selector="#join-btn")  # refused meanwhile: 503, Retry-After
            time.sleep(HANG_S)
            rd.proc.send_signal(signal.SIGCONT)
            b.wait_state(hung, "queued", timeout=30000)
            # (a) two more join; ingress dies with their joins in the log,
            # unanswered, and is back DOWN_S later.
            b("evalAll", pages=late, js="document.getElementById('join-btn').click(); return 1")
            time.sleep(1)
            ing = [p for p in st.procs if p.name == "ingress"][-1]
            ing.kill()
            ing.wait()
            down_at = b("eval", page=names[0], js="return Date.now()")
            # A fan picks another section while its join is retried: the
            # retries still send the first attempt's body and key.
            b("evalAll", pages=late, js="const s = document.getElementById('section'); "
                                        "s.value = 'A'; s.dispatchEvent(new Event('change')); "
                                        "return s.value")
            time.sleep(DOWN_S)
            st.start_ingress(**opts)
            up_at = b("eval", page=names[0], js="return Date.now()")
            # (c) the worker starts, dies -9 mid-sale and starts again.
            wopts = dict(batch_max_messages=2, debug_commit_delay_ms=100, **via)
            w = st.start_worker(**wopts)
            st.wait_for(lambda: st.sql("SELECT count(*) FROM intents WHERE event_id = %s",
                                       (ev,))[0][0] >= FILLERS // 2, 30, "the worker under way")
            w.kill()
            w.wait()
            st.start_worker(**wopts)
            for n in names:
                b.wait_state(n, "reserved", "waiting", "rejected", "sold_out", timeout=90000)
            time.sleep(2.5)  # a waiting page's next poll (status.poll_max_ms)
            shown, faults = {}, []
            for n in names:
                net = b("eval", page=n, js="return window.__net")
                seen = b("eval", page=n, js="return window.__seen")
                mine = b("eval", page=n, js=f"return localStorage.getItem("
                                            f"'onsale.intent.{ev}.{users[n]}')")
                assert mine, (n, seen[-3:])
                iid = json.loads(mine)["intent_id"]

                def agree(n=n, iid=iid):
                    s, _, api = st.http("GET", f"/v1/intents/{iid}", token=st.token(users[n], "fan"))
                    assert s == 200, api
                    page = b("eval", page=n, js="return [document.body.dataset.state, "
                                                "document.getElementById('notice').textContent]")
                    truth = "sold_out" if api.get("reason") == "sold_out" else api["state"]
                    return page if page == [truth, ""] else None

                shown[n] = st.wait_for(agree, 15, f"page {n} agrees with the API", interval=0.5)
                # 20 fans at event_view.views_per_s 2,000: every view says 5 s,
                # during the Redis hang too (it said 60 s, the cap, from a
                # failed read's uninitialized crowd)
                views = [e.get("refresh") for e in net if kind_of(e, ev) == "view"
                         and e.get("status") == 200]
                for what, found in (("retries", retry_faults(net, ev)),
                                    ("view hint", [v for v in views if v != 5000]),
                                    ("places", place_faults(net, seen, ev)),
                                    ("join form", join_faults(net, seen, ev))):
                    if found:
                        faults.append((n, what, found[:2]))
                down = [e for e in net if down_at <= e["t"] <= up_at]
                print(n, f"requests in the {up_at - down_at} ms ingress was down:",
                      {k: sum(kind_of(e, ev) == k for e in down) for k in ("view", "poll", "join")},
                      "refused:", sorted({(kind_of(e, ev), e.get("status"), e.get("code"))
                                          for e in net if e.get("status", 200) not in (200, 202)}))
            for f in faults:
                print("FAULT", *f)
            assert not faults, sorted({(n, what) for n, what, _ in faults})
            twice = st.sql("SELECT user_id, count(*) FROM intents WHERE event_id = %s "
                           "GROUP BY user_id HAVING count(*) > 1", (ev,))
            assert twice == [], twice
            placed = dict(st.sql("SELECT user_id, state FROM intents WHERE event_id = %s", (ev,)))
            assert all(placed.get(u) for u in users.values()), placed
            states = sorted(s for s, _ in shown.values())
            assert "reserved" in states and "waiting" in states, states  # both answers seen
        finally:
            b.close()


# ---- the money steps through faults ---------------------------------------------------
# Every 50 ms, when any changes: the page's state, the held view's message,
# whether its pay and release buttons are off, and the notice.
HELD_JS = """
window.__held = []; let lastHeld = null;
setInterval(() => {
  const g = (id) => document.getElementById(id);
  const row = [document.body.dataset.state || '', g('pay-msg').textContent, g('pay-btn').disabled,
               g('release-btn').disabled, g('notice').textContent];
  const k = JSON.stringify(row);
  if (k !== lastHeld) { lastHeld = k; window.__held.push([Date.now(), ...row]); }
}, 50);
return true;
"""
FINALS = ("purchased", "released", "expired", "refunded", "rejected", "sold_out")


def money_kind(e):
    path = e["p"].split("?")[0]
    if path.endswith("/checkout"):
        return "checkout"
    if path.startswith("/v1/reservations/") and e["m"] == "DELETE":
        return "release"
    return None


def button_faults(net, held, offered_after):
    """The held view's buttons are on only before the page's first money
    request, or while it says what it was offered them for (offered_after:
    a text of the message, e.g. a decline's): never while a step is on its
    way (a press then started a second chain of requests)."""
    first = next((e["t"] for e in net if money_kind(e)), None)
    if first is None:
        return [("never pressed",)]
    return [("buttons on while a step was on its way", r) for r in held
            if r[0] > first + SLACK_MS and r[1] in ("reserved", "paying")
            and (not r[3] or not r[4])
            and not (offered_after and offered_after in r[2])]


def key_faults(net, presses):
    """Each press is one Idempotency-Key sent with one body throughout its
    retries; presses keys in all."""
    sent = {}
    for e in net:
        if money_kind(e) == "checkout":
            sent.setdefault(e.get("k"), set()).add(e.get("body"))
    faults = [("a key sent with two bodies", k, b) for k, b in sent.items() if len(b) > 1]
    if len(sent) != presses:
        faults.append(("keys", sorted(sent, key=str), "presses", presses))
    return faults


def gateway(env, method, path, body=None):
    """The gateway simulator's admin API (test_checkout.Env.gw)."""
    from test_checkout import Env as CheckoutEnv
    return CheckoutEnv.gw(env, method, path, body)


@need_browser
def test_fan_pages_pay_and_release_through_faults():
    """Three fans hold a seat each, on pages (own contexts) served by a node
    that holds answers 1.5 s (debug.finisher_delay_ms) with a checkout rate
    limit of one per 5 s per fan: "dec" pays while the gateway declines
    every charge (declined: the page says so and offers the button again);
    then with the payments relay killed -9, "dec" pays again at once (over
    its rate: 429, Retry-After) and "cut" pays just before the node is
    killed -9 (its checkout in the log, unanswered; the node back DOWN_S
    later, its claim clearing in 5 s);
    "rel" presses release while the node is down; the relay comes back.
    Every page ends on the server's answer (two bought, one released),
    one paid order and one charge per hold at the gateway, no order charged
    twice, one key and body per press, every retry no sooner than the
    backoff and Retry-After allow, and the pay and release buttons off
    whenever a step is on its way."""
    from test_web import Env as WebEnv
    with Stack(partitions=1) as st:
        env = WebEnv(st)
        port = free_port()
        opts = dict(http_port=port, idem_inflight_ttl_s=5, debug_finisher_delay_ms=1500,
                    ratelimit_checkout_user_per_min=12, ratelimit_checkout_user_burst=1)
        base = st.start_ingress(**opts)
        env.ensure_worker()
        ev = st.create_event(sections=[("A", 1, 6, 4000)], name="Paying night", max_per_user=1)
        names = ["dec", "cut", "rel"]
        users = {n: 8600 + i for i, n in enumerate(names)}
        b = Browser()
        try:
            b.open_fan_pages(names, [f"{base}/q/{ev}#token={st.token(users[n], 'fan')}"
                                     for n in names], NET_JS)
            b("evalAll", pages=names, js=HELD_JS)
            b("evalAll", pages=names, js="document.getElementById('join-btn').click(); return 1")
            for n in names:
                b.wait_state(n, "reserved", timeout=30000)
            iids = {n: json.loads(b("eval", page=n, js=f"return localStorage.getItem("
                                    f"'onsale.intent.{ev}.{users[n]}')"))["intent_id"] for n in names}
            # (a) every charge declined: the page says so, offers the button again
            gateway(env, "POST", "/v1/_faults", {"decline_rate": 1})
            b("click", page="dec", selector="#pay-btn")
            b("wait", page="dec", timeout=20000,
              js="return /declined/.test(document.getElementById('pay-msg').textContent) && "
                 "!document.getElementById('pay-btn').disabled")
            gateway(env, "POST", "/v1/_faults", {"decline_rate": 0})
            # (b) the relay down: orders stay pending
            pay = [p for p in st.procs if p.name == "payments"][-1]
            pay.kill()
            pay.wait()
            # dec pays again at once: over its checkout rate (429, Retry-After)
            b("evalAll", pages=["dec", "cut"],
              js="document.getElementById('pay-btn').click(); return 1")
            time.sleep(0.7)  # their checkouts in the log, the answers held
            ing = [p for p in st.procs if p.name == "ingress"][-1]
            ing.kill()
            ing.wait()
            b("click", page="rel", selector="#release-btn")
            b("click", page="rel", selector="#release-btn")
            time.sleep(DOWN_S)
            st.start_ingress(**opts)
            time.sleep(2)
            st.start("payments", "onsale-payments",
                     payments_gateway_url=f"http://127.0.0.1:{env.gw_port}",
                     payments_key_prefix=f"{st.topic}-", metrics_port=free_port(),
                     payments_timeout_ms=1000, payments_backoff_base_ms=50,
                     payments_backoff_max_ms=500)
            want = {"dec": "purchased", "cut": "purchased", "rel": "released"}
            end = time.time() + 40
            while time.time() < end and not all(
                    b("eval", page=n, js="return document.body.dataset.state") in FINALS
                    for n in names):
                time.sleep(0.5)
            faults = []
            for n in names:
                net = b("eval", page=n, js="return window.__net")
                held = b("eval", page=n, js="return window.__held")
                page = b("eval", page=n, js="return [document.body.dataset.state, "
                                            "document.getElementById('notice').textContent]")
                api = st.http("GET", f"/v1/intents/{iids[n]}", token=st.token(users[n], "fan"))[2]
                if page != [want[n], ""] or api["state"] != want[n]:
                    faults.append((n, "answer", page, api.get("state"), held[-3:]))
                for what, found in (("retries", retry_faults(net, ev)),
                                    ("buttons", button_faults(net, held, "declined" if n == "dec"
                                                              else None)),
                                    ("keys", key_faults(net, {"dec": 2, "rel": 0}.get(n, 1)))):
                    if found:
                        faults.append((n, what, found[:2]))
                print(n, "money requests:", [(money_kind(e), e.get("status"), e.get("code"),
                                              e.get("ra")) for e in net if money_kind(e)])
                # the faults met: a decline and a 429 (dec), a checkout and a
                # release without an answer (cut, rel)
                met = {(money_kind(e), e.get("status")) for e in net if money_kind(e)}
                if not {"dec": {("checkout", 429)}, "cut": {("checkout", 0)},
                        "rel": {("release", 0)}}[n] <= met:
                    faults.append((n, "scenario", met))
            for f in faults:
                print("FAULT", *f)
            assert not faults, sorted({(n, what) for n, what, *_ in faults})
            # One paid order and one charge per hold; no order charged twice.
            orders = st.sql("SELECT o.reservation_id, o.order_id, o.state FROM orders o "
                            "JOIN reservations r USING (reservation_id) WHERE r.event_id = %s", (ev,))
            paid = {}
            for r, o, s in orders:
                if s == "paid":
                    paid.setdefault(r, []).append(o)
            assert sorted(map(len, paid.values())) == [1, 1], orders
            led = gateway(env, "GET", "/v1/ledger")
            mine = {str(o) for _, o, _ in orders}
            charged = [str(c.get("order_id")) for c in led["charges"]
                       if str(c.get("order_id")) in mine]
            assert sorted(charged) == sorted(str(o[0]) for o in paid.values()), (charged, orders)
        finally:
            b.close()
