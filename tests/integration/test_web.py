"""test_web.py - the fan queue page and the ops dashboard (issue 6), served
from memory by ingress and driven in headless Chromium (Debian's
/usr/bin/chromium through playwright-core, tests/web/driver.js) against an
isolated stack: gateway simulator, onsale-payments, worker and ingress.

  * assets: exact paths only, Content-Type, ETag/304, CSP, no traversal;
  * a fan joins behind 40 others, sees the position fall (never rise) to a
    reservation with a running countdown, reloads and keeps the place, pays
    and sees the tickets;
  * a second fan behind a sold-out event: waiting while every seat is held,
    then the sold-out answer; a late fan is told at once;
  * the ops dashboard's numbers match GET /v1/admin/queues; pause/resume work.

Screenshots of each state go to .state/test-artifacts/web/.
"""
import hashlib
import gzip
import http.client
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, ROOT, Stack, free_port  # noqa: E402

WEB = os.path.join(ROOT, "tests", "web")
CHROMIUM = os.environ.get("ONSALE_CHROMIUM", "/usr/bin/chromium")
ART = os.path.join(ROOT, ".state", "test-artifacts", "web")



def need_browser(test):
    """Browser tests need Chromium, node and playwright-core, which
    scripts/setup installs: a missing one is a failure, never a skip."""
    def run(*a, **kw):
        assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} missing: run scripts/setup"
        assert shutil.which("node"), "node missing: run scripts/setup"
        assert os.path.isdir(os.path.join(WEB, "node_modules", "playwright-core")), \
            "playwright-core missing in tests/web: run scripts/setup"
        return test(*a, **kw)
    run.__name__ = test.__name__
    run.__wrapped__ = test
    return run


class Browser:
    """tests/web/driver.js over a pipe: one JSON command, one JSON answer."""

    def __init__(self):
        self.proc = subprocess.Popen(["node", os.path.join(WEB, "driver.js")], cwd=WEB,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.n = 0

    def __call__(self, op, **args):
        self.n += 1
        self.proc.stdin.write(json.dumps({"id": self.n, "op": op, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"browser driver exited ({self.proc.wait()})")
        ans = json.loads(line)
        if not ans["ok"]:
            if op == "wait":  # what the page showed instead
                self("screenshot", page=args["page"], full=True,
                     file=os.path.join(ART, f"FAILED-{args['page']}.png"))
            raise AssertionError(f"{op} {args}: {ans['error']}\nconsole: {self.logs()}")
        return ans.get("value")

    def logs(self):
        try:
            self.proc.stdin.write(json.dumps({"id": 0, "op": "logs"}) + "\n")
            self.proc.stdin.flush()
            return json.loads(self.proc.stdout.readline()).get("value")
        except Exception:  # noqa: BLE001
            return None

    def shot(self, page, name):
        return self("screenshot", page=page, file=os.path.join(ART, f"{name}.png"), full=True)

    def text(self, page, element_id):
        return self("eval", page=page, js=f"return document.getElementById('{element_id}').textContent")

    def wait_state(self, page, *states, timeout=20000):
        js = f"return {json.dumps(list(states))}.includes(document.body.dataset.state) && document.body.dataset.state"
        return self("wait", page=page, js=js, timeout=timeout)

    def open_fan_pages(self, names, urls, init_js, record=False):
        """One page per name, each in its own browser context with init_js
        run before the page's own scripts (and recorded, if asked), loaded
        at once from urls, and each waited for at the join button."""
        for n in names:
            self("open", name=n, own=True)
            self("init", page=n, js=init_js)
            if record:
                self("record", page=n)
        loads = self("gotoAll", pages=names, urls=urls)
        assert all(s == 200 for s, _ in loads), loads
        for n in names:
            self.wait_state(n, "join", timeout=30000)

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"id": 0, "op": "quit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=15)
        except Exception:  # noqa: BLE001
            self.proc.kill()


class Env:
    """One isolated stack for the module: gateway, payments and ingress at
    once; the worker when a test first needs it (the first test builds a
    line before it starts). The worker is slowed down (small batches, a
    commit delay) so a browser can watch positions fall."""

    def __init__(self, st):
        self.st = st
        self.gw_port = free_port()
        st.start("gateway", "onsale-gateway", gateway_port=self.gw_port, gateway_seed=7)
        st.wait_for(self._gw_ok, 20, "gateway /healthz")
        st.start("payments", "onsale-payments", payments_gateway_url=f"http://127.0.0.1:{self.gw_port}",
                 payments_key_prefix=f"{st.topic}-", metrics_port=free_port(),
                 payments_timeout_ms=1000, payments_backoff_base_ms=50, payments_backoff_max_ms=500)
        self.base = st.start_ingress(status_poll_min_ms=100, status_poll_ms_per_position=5,
                                     status_poll_max_ms=2000)
        self.worker = None

    def _gw_ok(self):
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{self.gw_port}/healthz", timeout=2).status == 200
        except OSError:
            return False

    def ensure_worker(self):
        if self.worker is None:
            self.worker = self.st.start_worker(batch_max_messages=4, debug_commit_delay_ms=150)
        return self.worker

    def event_with_worker(self, sections, **kw):
        """The worker running (ensure_worker) and a new event of sections
        (Stack.create_event's keywords): its id."""
        self.ensure_worker()
        return self.st.create_event(sections=sections, **kw)

    def join(self, user, ev, qty=1):
        s, _, b = self.st.http("POST", f"/v1/events/{ev}/intents", {"quantity": qty},
                               token=self.st.token(user, "fan"))
        assert s == 202, b
        return b

    def intent(self, user, iid):
        return self.st.http("GET", f"/v1/intents/{iid}", token=self.st.token(user, "fan"))[2]

    def url(self, path, token):
        return f"{self.base}{path}#token={token}"


@pytest.fixture(scope="module")
def env():
    with Stack(partitions=2) as st:
        yield Env(st)


@pytest.fixture(scope="module")
def browser():
    os.makedirs(ART, exist_ok=True)
    b = Browser()
    yield b
    b.close()


# ---- assets over plain HTTP ---------------------------------------------------------
def test_assets_exact_paths_types_and_validators(env):
    st = env.st
    s, h, body = st.http("GET", "/q/7")
    assert s == 200 and h["content-type"].startswith("text/html")
    assert "<title>" in body and "/web/fan.js" in body
    assert "default-src 'none'" in h["content-security-policy"]
    assert h["x-content-type-options"] == "nosniff"
    etag = h["etag"]
    assert etag.startswith('"') and h["cache-control"] == "no-cache"
    s, h2, body = st.http("GET", "/q/7", headers={"If-None-Match": etag})
    assert s == 304 and not body
    assert st.http("GET", "/")[1]["etag"] == etag  # the same page
    s, h, body = st.http("GET", "/ops/")
    assert s == 200 and "/web/ops.js" in body and h["etag"] != etag
    for name, ctype in (("fan.js", "text/javascript"), ("api.js", "text/javascript"),
                        ("ops.js", "text/javascript"), ("style.css", "text/css"),
                        ("favicon.svg", "image/svg+xml")):
        s, h, body = st.http("GET", f"/web/{name}")
        assert s == 200 and h["content-type"].startswith(ctype), (name, s, h)
        assert body == open(os.path.join(ROOT, "web", name), encoding="utf-8").read()
    # Only the exact table: no directories, no dot segments, no encodings.
    for path, status in (("/web/nope.js", 404), ("/web/", 404), ("/web/../ingress/server.c", 400),
                         ("/web/.hidden", 400), ("/web/fan.js/", 404), ("/web/%2e%2e/x", 400),
                         ("/web/FAN.JS", 404), ("/q/7/fan.js", 404), ("/web/a/b", 404)):
        assert st.http("GET", path)[0] == status, path
    assert st.http("POST", "/web/fan.js", raw=b"")[0] == 405
    # /metrics is public for the dashboard (same origin, no token).
    s, h, body = st.http("GET", "/metrics")
    assert s == 200 and "onsale_ingress_request_seconds_bucket" in body


def test_assets_are_sent_gzipped_to_clients_that_take_gzip(env):
    """A crowd's first loads of the page are its scripts: each asset is sent
    gzipped (built in, its own ETag and 304) to a client that accepts
    gzip, as it is to one that does not, and both answers say they vary
    with Accept-Encoding."""
    def get(path, **headers):
        # A new connection each: one closed without an answer is a failure
        # (test_ingress_back_to_back.py; it retried once before that fix).
        c = http.client.HTTPConnection("127.0.0.1", env.st.ingress_port, timeout=10)
        try:
            c.request("GET", path, headers=headers)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    sent = plain_total = 0
    for path, name in (("/q/7", "fan.html"), ("/web/fan.js", "fan.js"), ("/web/api.js", "api.js"),
                       ("/web/style.css", "style.css"), ("/web/tickets.js", "tickets.js"),
                       ("/web/pow.js", "pow.js"), ("/web/favicon.svg", "favicon.svg")):
        plain = open(os.path.join(ROOT, "web", name), "rb").read()
        plain_total += len(plain)
        s, h, body = get(path, **{"Accept-Encoding": "gzip, deflate, br"})
        assert s == 200 and h.get("content-encoding") == "gzip", (path, h)
        assert gzip.decompress(body) == plain and len(body) < len(plain), path
        assert h["vary"] == "Accept-Encoding" and h["etag"].endswith('-gz"'), h
        sent += len(body)
        assert get(path, **{"Accept-Encoding": "gzip", "If-None-Match": h["etag"]})[0] == 304
        for refused in ("identity", "gzip;q=0, *", "br", "gzip; q=0.0"):
            s, h2, body = get(path, **{"Accept-Encoding": refused})
            assert s == 200 and "content-encoding" not in h2 and body == plain, (path, refused)
            assert h2["vary"] == "Accept-Encoding" and h2["etag"] != h["etag"], h2
        s, h2, body = get(path)  # no Accept-Encoding at all
        assert body == plain and h2["etag"] + h["etag"] != h["etag"] * 2
        assert get(path, **{"Accept-Encoding": "*;q=0.5"})[1].get("content-encoding") == "gzip"
    # Gzip takes 60 % off the page's first load, and the load has a ceiling
    # (76.9 KB as it is, 25.4 KB gzipped): growing past it is a choice, made
    # here. (0.4 * 75227 was a 30.1 KB ceiling, 22 % above the page.)
    assert sent < 0.4 * plain_total and sent < 27500, (sent, plain_total)


# ---- the fan page --------------------------------------------------------------------
@need_browser
def test_fan_joins_watches_position_fall_reloads_and_buys(env, browser):
    st = env.st
    ev = st.create_event(sections=[("Floor", 6, 10, 4500), ("Balcony", 2, 10, 9000)],
                         name="The Midnight Owls · Live")
    for u in range(100, 140):        # 40 fans ahead, no worker yet: they wait in line
        env.join(u, ev, 1)
    b = browser
    b("open", name="fan")
    b("goto", page="fan", url=env.url(f"/q/{ev}", st.token(7001, "fan")))
    b.wait_state("fan", "join")
    assert b.text("fan", "ev-name") == "The Midnight Owls · Live"
    assert "Test Hall" in b.text("fan", "ev-meta")
    assert b("eval", page="fan", js="return location.hash") == ""  # token moved out of the URL
    b.shot("fan", "01-event-join")

    # Keyboard only: quantity 2, Floor, Enter.
    b("select", page="fan", selector="#qty", value="2")
    b("select", page="fan", selector="#section", value="Floor")
    b("eval", page="fan", js="document.getElementById('join-btn').focus()")
    b("press", page="fan", key="Enter")
    b.wait_state("fan", "queued")
    b("wait", page="fan", js="return document.getElementById('q-ahead').textContent === '40'")
    assert b.text("fan", "q-place") == "No. 41"
    b.shot("fan", "02-queued")
    iid = b("eval", page="fan", js="return JSON.parse(localStorage.getItem(Object.keys(localStorage)"
                                   ".find(k => k.startsWith('onsale.intent.')))).intent_id")

    # Reload: the same place, no second join.
    b("reload", page="fan")
    b.wait_state("fan", "queued")
    b("wait", page="fan", js="return document.getElementById('q-ahead').textContent === '40'")
    assert not b("eval", page="fan", js="return document.getElementById('queue').classList.contains('hidden')")
    assert b("eval", page="fan", js="return document.getElementById('join').classList.contains('hidden')")
    assert env.intent(7001, iid)["state"] == "queued"
    b.shot("fan", "03-reloaded-same-place")

    # The line moves: record every position the page shows until the reservation.
    env.ensure_worker()
    b("eval", page="fan", js="""
        window.__seen = [];
        const el = document.getElementById('q-ahead');
        const rec = () => { const v = parseInt(el.textContent, 10); if (!isNaN(v) &&
            window.__seen[window.__seen.length - 1] !== v) window.__seen.push(v); };
        new MutationObserver(rec).observe(el, {childList: true, characterData: true, subtree: true});
        rec(); return true;""")
    seen_mid = b("wait", page="fan", timeout=30000, js="""
        const v = parseInt(document.getElementById('q-ahead').textContent, 10);
        return (v > 0 && v < 40 && document.body.dataset.state === 'queued') ? v : false;""")
    b.shot("fan", "04-position-falling")
    assert 0 < seen_mid < 40
    assert b.wait_state("fan", "reserved", "waiting", timeout=30000) == "reserved"
    seen = b("eval", page="fan", js="return window.__seen")
    assert seen == sorted(seen, reverse=True), f"position went up: {seen}"
    assert len(seen) >= 3, seen
    # The screen reader hears it (aria-live="polite"), once.
    b("wait", page="fan", js="return document.getElementById('announce').textContent.includes('seats are reserved')")

    # Reserved seats with a running countdown.
    seats = b("eval", page="fan", js="return [...document.querySelectorAll('#seats tr')].map(r => r.innerText)")
    assert len(seats) == 2 and all(s.startswith("Floor") for s in seats), seats
    c1 = b.text("fan", "countdown")
    time.sleep(1.3)
    c2 = b.text("fan", "countdown")
    assert c1 != c2 and c2.startswith("14:"), (c1, c2)
    b.shot("fan", "05-reserved-countdown")

    # A double-click on "Release seats" arms it, no more: it is one gesture,
    # not the second press the button asks for (before: released at once).
    # (On a desktop's width: on a phone's the armed label wraps the button
    # to the next line, and the second click misses it.)
    was = b("viewport", page="fan", width=1280, height=900)
    b("eval", page="fan", js="performance.clearResourceTimings(); return 1")
    b("dblclick", page="fan", selector="#release-btn")
    time.sleep(0.5)
    assert b.text("fan", "release-btn") == "Press again to release"
    assert not b("eval", page="fan", js="return performance.getEntriesByType('resource')"
                                        ".map((e) => new URL(e.name).pathname)"
                                        ".filter((p) => /^\\/v1\\/reservations\\/[^/]+$/.test(p))")
    assert b("eval", page="fan", js="return document.body.dataset.state") == "reserved"
    b("viewport", page="fan", **was)

    # Checkout with the test card; the page polls the order and shows the tickets.
    # The checkout's 202 is slow on its way back (held in the page until the
    # page has its answer, at most 20 s): once it lands, nothing the page says
    # (to a screen reader too) may go back to "Processing your payment" (it
    # did), and nothing more is asked of the API.
    b("eval", page="fan", js="""
        const f = window.fetch; window.__late = null; window.__said = [];
        window.fetch = async (input, init) => {
          const r = await f(input, init);
          if (!/\\/checkout$/.test(String(input))) return r;
          const fin = document.getElementById('final');
          for (let i = 0; i < 400 && fin.classList.contains('hidden'); i++)
            await new Promise((res) => setTimeout(res, 50));
          window.__late = [performance.now(), document.body.dataset.state,
                           document.getElementById('final-answer').textContent];
          return r;
        };
        const a = document.getElementById('announce');
        new MutationObserver(() => window.__said.push([performance.now(), a.textContent]))
          .observe(a, {childList: true, characterData: true, subtree: true});
        return 1;""")
    b("click", page="fan", selector="#pay-btn")
    b.wait_state("fan", "purchased", timeout=30000)
    late = b("wait", page="fan", js="return window.__late", timeout=25000)
    assert late[1:] == ["purchased", "You have tickets!"], late
    time.sleep(0.5)
    said = b("eval", page="fan", js="return window.__said.filter((s) => s[1])")
    assert said and said[-1][1].startswith("You have tickets!"), said
    assert not b("eval", page="fan", js=f"return performance.getEntriesByType('resource').filter((e) => "
                                        f"e.startTime > {late[0]} && e.name.includes('/v1/intents/'))"
                                        ".map((e) => e.name)")
    # the ticket list is fetched after the answer is shown: wait for it
    b("wait", page="fan", timeout=15000,
      js="return document.querySelectorAll('#tickets .ticket').length === 2")
    tickets = b("eval", page="fan", js="return [...document.querySelectorAll('#tickets .ticket')].map(t => t.innerText)")
    assert len(tickets) == 2 and all("Floor" in t for t in tickets), tickets
    assert b.text("fan", "final-answer") == "You have tickets!"
    b.shot("fan", "06-tickets")
    (paid,), = st.sql("SELECT count(*) FROM orders WHERE state = 'paid'")
    assert paid == 1
    b("close", page="fan")


@need_browser
def test_second_fan_behind_sold_out_event(env, browser):
    st = env.st
    ev = env.event_with_worker(sections=[("GA", 1, 2, 3000)], name="Tiny Room Sessions")
    first = env.join(8001, ev, 2)
    p = st.wait_for(lambda: (lambda x: x if x["state"] == "reserved" else None)(
        env.intent(8001, first["intent_id"])), 30, "first fan reserved")
    b = browser
    # Fan 2 joins while every seat is held: waiting, not "sold out" (yet).
    b("open", name="waiting")
    b("goto", page="waiting", url=env.url(f"/q/{ev}", st.token(8002, "fan")))
    b.wait_state("waiting", "join")
    b("select", page="waiting", selector="#qty", value="1")
    b("click", page="waiting", selector="#join-btn")
    b.wait_state("waiting", "waiting", timeout=30000)
    b.shot("waiting", "07-waiting-all-held")
    # Fan 3 has the page open, not yet in line.
    b("open", name="behind")
    b("goto", page="behind", url=env.url(f"/q/{ev}", st.token(8003, "fan")))
    b.wait_state("behind", "join")
    # The first fan pays: every seat is sold.
    s, _, o = st.http("POST", f"/v1/reservations/{p['reservation']['reservation_id']}/checkout",
                      {"payment_method": "pm_card_visa"}, token=st.token(8001, "fan"),
                      headers={"Idempotency-Key": "web-sold-out-1"})
    assert s == 202, o
    st.wait_for(lambda: st.http("GET", f"/v1/orders/{o['order_id']}", token=st.token(8001, "fan"))[2]
                ["state"] == "paid", 30, "first fan's order paid")
    st.wait_for(lambda: st.http("GET", f"/v1/events/{ev}")[2]["status"] == "sold_out", 20, "sold out")
    # the partition owner wrote it to PostgreSQL too (ops views read it there)
    st.wait_for(lambda: st.sql("SELECT status FROM events WHERE event_id = %s", (ev,)) ==
                [("sold_out",)], 10, "events.status sold_out")
    # Fan 3 tries to join now (or the page's refresh got there first): sold out.
    b("eval", page="behind", js="const x = document.getElementById('join-btn'); "
                                "if (!x.disabled && !document.getElementById('join').classList.contains('hidden')) x.click(); return true")
    b.wait_state("behind", "sold_out", timeout=20000)
    assert b.text("behind", "final-answer") == "Sold out"
    b.shot("behind", "08-sold-out")
    # A fan arriving after the sale sold out is told at once.
    b("open", name="later")
    b("goto", page="later", url=env.url(f"/q/{ev}", st.token(8004, "fan")))
    b.wait_state("later", "sold_out", timeout=20000)
    b.shot("later", "09-sold-out-on-arrival")
    b("close", page="behind")
    b("close", page="later")
    # The waiting fan should hear "sold out" too (DESIGN.md: once every seat
    # is sold the rest of the queue is answered sold_out at once).
    b.wait_state("waiting", "sold_out", timeout=8000)
    b.shot("waiting", "09b-waiting-then-sold-out")
    b("close", page="waiting")


@need_browser
def test_fan_join_waits_out_a_key_still_claimed(env, browser):
    """A join's Idempotency-Key can stay claimed after its request ended (a
    claimer round that timed out on a slow Redis answered 503, and its
    pipelined SET NX landed after the release): the retry is answered 409
    idempotency_in_progress with Retry-After until idem.inflight_ttl_s runs
    out. The page retries it as it does a 503 (web/api.js ApiError.transient)
    and gets its place; the old page showed the error and kept the key, so
    every click met the same 409 for up to a minute."""
    st = env.st
    user = 8101
    ev = env.event_with_worker(sections=[("GA", 1, 3, 3000)], name="Claimed Key Club")
    b = browser
    b("open", name="claimed")
    b("goto", page="claimed", url=env.url(f"/q/{ev}", st.token(user, "fan")))
    b.wait_state("claimed", "join")
    b("select", page="claimed", selector="#qty", value="1")
    # the key the page will send, claimed as the lost round left it (the
    # record the page's own join writes: its body's hash under the join's scope)
    raw = b'{"quantity":1}'
    h = hashlib.sha256(b"join:%d\0" % ev + raw).hexdigest()
    assert st.redis.set(st.key(f"idem:{user}:stuck-key-1"), json.dumps({"h": h, "s": 0},
                        separators=(",", ":")), ex=3)
    b("eval", page="claimed", js=f"""
sessionStorage.setItem('onsale.join.{ev}.{user}',
  JSON.stringify({{key: 'stuck-key-1', body: {{quantity: 1}}}}));
window.__joins = [];
const f = window.fetch;
window.fetch = async (...a) => {{
  const r = await f(...a);
  if (String(a[0]).endsWith('/intents')) window.__joins.push(r.status);
  return r;
}};
return true""")
    b("click", page="claimed", selector="#join-btn")
    b.wait_state("claimed", "queued", "reserved", timeout=30000)
    joins = b("eval", page="claimed", js="return window.__joins")
    # the control: the claimed key was met, then the same key got the place
    assert 409 in joins and joins[-1] == 202, joins
    b("close", page="claimed")


# ---- the ops dashboard ---------------------------------------------------------------------
@need_browser
def test_ops_dashboard_matches_admin_queues(env, browser):
    st = env.st
    ev = env.event_with_worker(sections=[("A", 2, 10, 5000)], name="Ops Check")
    for u in range(9000, 9012):
        env.join(u, ev, 2)
    admin = st.token(1, "admin")
    b = browser
    b("open", name="ops", width=1280, height=900)
    b("goto", page="ops", url=env.url("/ops/", admin))
    b("wait", page="ops", timeout=20000, js="return Number(document.body.dataset.refreshes) >= 3")
    # No Prometheus behind this ingress (ops.prometheus_url): the history
    # panel stays hidden; the --ha test reads it back from a real one.
    s, _, e = st.http("GET", "/v1/admin/history", token=admin)
    assert s == 404 and e["error"]["code"] == "history_not_configured", e
    assert b("eval", page="ops", js="const c = document.getElementById('history'); "
             "return c.dataset.state + ' ' + c.classList.contains('hidden')") == "off true"

    def api():
        return st.http("GET", "/v1/admin/queues", token=admin)[2]

    # Settled: the worker has drained every partition.
    st.wait_for(lambda: all(p["lag"] == 0 for p in api()["partitions"]), 30, "lag 0")
    time.sleep(2.5)  # two refreshes after the last change

    def dom():
        return b("eval", page="ops", js="""
            const t = (r, k) => r.querySelector(`[data-k="${k}"]`).textContent;
            return {
              parts: [...document.querySelectorAll('#parts tbody tr')].map(r => ({
                partition: +r.dataset.partition, owner: t(r, 'owner'), served_offset: t(r, 'served_offset'),
                high_watermark: t(r, 'high_watermark'), lag: t(r, 'lag'), drain_rate: t(r, 'drain_rate')})),
              events: [...document.querySelectorAll('#events tbody tr')].map(r => ({
                event_id: +r.dataset.event, status: r.dataset.status,
                queued: t(r, 'queued'), waiting: t(r, 'waiting'), held: t(r, 'held'),
                sold: t(r, 'sold'), available: t(r, 'available')})),
              kpi: ['k-rps', 'k-err', 'k-errpct', 'k-p50', 'k-p95', 'k-p99'].map(
                id => document.getElementById(id).textContent),
            };""")

    want, got = api(), dom()
    assert [p["partition"] for p in want["partitions"]] == [p["partition"] for p in got["parts"]]
    for w, g in zip(want["partitions"], got["parts"]):
        assert g["owner"] == (w["owner"] or "none")
        assert g["served_offset"] == str(w["served_offset"])
        assert g["high_watermark"] == str(w["high_watermark"])
        assert g["lag"] == str(w["lag"])
        # Smoothed and decaying while idle: equal up to a refresh's drift.
        assert abs(float(g["drain_rate"]) - w["drain_rate"]) <= 0.5 + 0.5 * w["drain_rate"]
    by_id = {e["event_id"]: e for e in got["events"]}
    assert {e["event_id"] for e in want["events"]} == set(by_id)
    for w in want["events"]:
        g = by_id[w["event_id"]]
        assert g["status"] == w["status"]
        for k in ("queued", "waiting", "held", "sold", "available"):
            assert g[k].replace(",", "") == str(w[k]), (w["event_id"], k, g, w)
    mine = by_id[ev]
    assert mine["held"] == "20" and mine["available"] == "0" and mine["waiting"] == "2", mine
    rps, err, errpct, p50, p95, p99 = got["kpi"]
    assert float(rps) > 0 and err == "0.0" and errpct == "0.0 %", got["kpi"]
    assert p50.endswith("ms") and p99.endswith("ms") or p99.endswith(" s"), got["kpi"]
    b.shot("ops", "10-ops-dashboard")

    # Pause and resume from the dashboard (keyboard: focus + Enter).
    sel = f'#events tr[data-key="{ev}"] button'
    b("eval", page="ops", js=f"document.querySelector('{sel}').focus()")
    b("press", page="ops", key="Enter")
    st.wait_for(lambda: st.http("GET", f"/v1/events/{ev}")[2]["status"] == "paused", 10, "paused")
    b("wait", page="ops", js=f"return document.querySelector('{sel}').textContent === 'Resume'")
    b.shot("ops", "11-ops-paused")
    assert b("eval", page="ops", js=f"return document.activeElement === document.querySelector('{sel}')")
    b("press", page="ops", key="Enter")
    st.wait_for(lambda: st.http("GET", f"/v1/events/{ev}")[2]["status"] == "on_sale", 10, "resumed")
    b("close", page="ops")


def test_fan_prequeue_draw_position_hold(env, browser):
    """Issue 10: the fan page through pre-queue -> draw -> place -> hold."""
    import hashlib
    st = env.st
    ev = env.event_with_worker(sections=[("GA", 1, 2, 2500)], name="Draw Night", onsale_in_s=3600)
    seed = os.urandom(32)
    st.sql("UPDATE events SET status = 'scheduled', onsale_at = now() + interval '12 seconds', "
           "prequeue_opens_at = now() - interval '1 minute', draw_seed = %s, "
           "draw_commitment = %s WHERE event_id = %s",
           (seed, hashlib.sha256(seed).hexdigest(), ev))
    s, _, view = st.http("GET", f"/v1/events/{ev}")
    assert view["status"] == "scheduled" and view["prequeue_opens_at"], view
    b = browser
    b("open", name="pre")
    b("goto", page="pre", url=env.url(f"/q/{ev}", st.token(9101, "fan")))
    b("wait", page="pre", timeout=20000,
      js="return !document.getElementById('join-btn').disabled && "
         "document.getElementById('join-msg').textContent.includes('pre-queue')")
    b("select", page="pre", selector="#qty", value="1")
    b("click", page="pre", selector="#join-btn")
    b.wait_state("pre", "prequeued", timeout=20000)
    assert "Draw in" in b.text("pre", "q-place")
    b.shot("pre", "20-prequeued-countdown")
    others = [env.join(u, ev) for u in (9102, 9103)]
    assert all(o["state"] == "prequeued" for o in others)
    got = b.wait_state("pre", "reserved", "waiting", timeout=60000)
    b.shot("pre", "21-after-draw")
    (seq,), = st.sql("SELECT intent_seq FROM intents WHERE event_id = %s AND user_id = 9101", (ev,))
    entries = st.http("GET", f"/v1/events/{ev}/draw")[2]["entries"]
    rank = [e[:16] for e in entries].index("%016x" % seq) + 1
    assert (got == "reserved") == (rank <= 2), (got, rank)
    if got == "waiting":
        assert b.text("pre", "q-place") == f"No. {rank}"
        for u, o in zip((9102, 9103), others):
            r = env.intent(u, o["intent_id"])
            assert r["state"] == "reserved", r
            s, _, _ = st.http("DELETE", f"/v1/reservations/{r['reservation']['reservation_id']}",
                              token=st.token(u, "fan"))
            assert s == 202
        b.wait_state("pre", "reserved", timeout=30000)
    b.shot("pre", "22-held")
