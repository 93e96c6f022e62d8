"""test_contract_responses.py - the server's answers are what
schemas/openapi.yaml promises (tests/integration/contract.py says how each
answer is checked), over a realistic journey through EVERY operation of the
spec against the real stack (Kafka, PostgreSQL, Redis, worker, payments, the
gateway simulator, a real Prometheus for the ops history):

  admin grants a signed-up account the seller role; the seller logs in,
  refreshes, makes a venue (and assigns, lists and removes its scanner)
  and three events (one on sale, one scheduled with
  a pre-queue, one to cancel), edits the scheduled one, pauses and resumes
  and caps the sale, asks a proof of work; fans sign up, log in, search,
  view, fetch a challenge and join with its solution, poll, hold, pay via
  the gateway, read the order and ticket history, transfer a ticket and
  cancel another; one fan leaves the line, one releases a hold; the new
  owner shows the gate code and a scanner admits it; ops read health,
  readiness, metrics, queues and history; the web pages and an asset load.

Every answer is checked (status listed, Content-Type, body schema with
undocumented fields refused, promised headers, 304 on the ETags). The test
fails when any operation of the spec was not answered successfully at least
once, so a new route cannot be added without being walked here.
"""
import os
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from contract import Contract  # noqa: E402
from harness import ROOT, Proc, Stack, free_port, iso  # noqa: E402
from test_checkout import Env  # noqa: E402
from test_pow import solve  # noqa: E402

SPEC = os.path.join(ROOT, "schemas", "openapi.yaml")
ADMIN = 1  # a token minted for an operator (onsalectl token); id 1 is also the first account
PASSWORD = "correct horse battery"


def start_prometheus(st):
    """A real Prometheus with the ops recording rules, scraping ingress
    (set up before ingress starts; an ingress down is just a down target).
    Returns (its URL, the ingress port it scrapes)."""
    port, ing_port = free_port(), free_port()
    cfg = os.path.join(st.logdir, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                f"rule_files: ['{ROOT}/scripts/ha/rules.yml']\n"
                "scrape_configs:\n"
                f"  - job_name: ingress\n    static_configs: [{{targets: ['127.0.0.1:{ing_port}']}}]\n")
    p = Proc("prometheus", ["prometheus", f"--config.file={cfg}",
                            f"--storage.tsdb.path={os.path.join(st.logdir, 'prom')}",
                            f"--web.listen-address=127.0.0.1:{port}"],
             dict(os.environ), os.path.join(st.logdir, "prometheus.log"))
    st.procs.append(p)

    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False
    st.wait_for(up, 30, "prometheus listening", proc=p)
    return f"http://127.0.0.1:{port}", ing_port


class Client:
    """Every request of the journey goes through call(), which checks the
    answer against the spec and keeps the mismatches."""

    def __init__(self, st, contract):
        self.st, self.c, self.mismatches = st, contract, []

    def call(self, method, path, body=None, token=None, headers=None, expect=None):
        import http.client
        import json
        conn = http.client.HTTPConnection("127.0.0.1", self.st.ingress_port, timeout=30)
        h = dict(headers or {})
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if token:
            h["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        raw = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        conn.close()
        gz = "gzip" in h.get("Accept-Encoding", "")
        text = "" if hdrs.get("content-encoding") == "gzip" else raw.decode(errors="replace")
        if hdrs.get("content-encoding") == "gzip":
            import gzip
            text = gzip.decompress(raw).decode(errors="replace")
        for m in self.c.check(method, path, r.status, hdrs, text, gzip_asked=gz):
            if m not in self.mismatches:
                self.mismatches.append(m)
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        if expect is not None:
            assert r.status == expect, (method, path, r.status, parsed)
        return r.status, hdrs, parsed


@pytest.fixture(scope="module")
def journey():
    contract = Contract(SPEC)
    with Stack(partitions=1) as st:
        prom_url, ing_port = start_prometheus(st)
        env = Env(st, ingress={"http_port": ing_port, "ops_prometheus_url": prom_url,
                               "tickets_code_step_s": 5})
        cl = Client(st, contract)
        yield st, env, cl


def test_every_operation_answers_as_the_spec_says(journey):
    st, env, cl = journey
    admin = st.token(ADMIN, "admin")

    # ---- accounts -------------------------------------------------------------
    users = {}
    for who in ("seller", "fan1", "fan2", "fan3", "fan4", "scanner"):
        _, _, u = cl.call("POST", "/v1/users", {"email": f"{who}@example.com", "password": PASSWORD,
                                               "display_name": who.title()}, expect=201)
        users[who] = u["user_id"]
    cl.call("POST", f"/v1/admin/users/{users['seller']}/roles", {"role": "seller"}, admin, expect=200)
    cl.call("POST", f"/v1/admin/users/{users['scanner']}/roles", {"role": "scanner"}, admin,
            expect=200)

    def login(who, role=None):
        body = {"email": f"{who}@example.com", "password": PASSWORD}
        if role:
            body["role"] = role
        return cl.call("POST", "/v1/sessions", body, expect=201)[2]

    s = login("seller", "seller")
    s = cl.call("POST", "/v1/sessions/refresh", {"refresh_token": s["refresh_token"]}, expect=200)[2]
    seller = s["access_token"]
    _, _, me = cl.call("GET", "/v1/me", token=seller, expect=200)
    assert me["role"] == "seller" and "seller" in me["roles"], me
    fans = {w: login(w)["access_token"] for w in ("fan1", "fan2", "fan3", "fan4")}
    scanner = login("scanner", "scanner")["access_token"]
    # A wrong password, and its throttle (429 with Retry-After) is checked too.
    cl.call("POST", "/v1/sessions", {"email": "fan4@example.com", "password": "wrong password"},
            expect=401)

    # ---- seller: venue, events, edits, controls -----------------------------------
    venue_body = {"name": "Contract Hall", "city": "Utrecht", "country": "NL",
                  "address": "Vredenburgkade 11", "lat": 52.09, "lon": 5.11,
                  "sections": [{"name": "Floor", "rows": 2, "seats_per_row": 10},
                               {"name": "Balcony", "rows": 1, "seats_per_row": 10}]}
    _, _, v = cl.call("POST", "/v1/venues", venue_body, seller,
                      headers={"Idempotency-Key": "venue-1"}, expect=201)
    # The same key and body: the original answer; another body: 422.
    again = cl.call("POST", "/v1/venues", venue_body, seller, headers={"Idempotency-Key": "venue-1"},
                    expect=201)[2]
    assert again == v, (again, v)
    cl.call("POST", "/v1/venues", dict(venue_body, name="Other Hall"), seller,
            headers={"Idempotency-Key": "venue-1"}, expect=422)
    # The venue's scanner (docs/tickets.md "Who may scan where"): assigned,
    # listed; a fan account cannot be; one removed and assigned again.
    vs = f"/v1/venues/{v['venue_id']}/scanners"
    cl.call("PUT", f"{vs}/{users['scanner']}", token=seller, expect=200)
    cl.call("PUT", f"{vs}/{users['fan1']}", token=seller, expect=409)  # not_a_scanner
    cl.call("DELETE", f"{vs}/{users['scanner']}", token=seller, expect=204)
    cl.call("PUT", f"{vs}/{users['scanner']}", token=seller, expect=200)
    _, _, listed = cl.call("GET", vs, token=seller, expect=200)
    assert [x["user_id"] for x in listed["scanners"]] == [users["scanner"]], listed
    now = time.time()
    base = {"venue_id": v["venue_id"], "category": "concert", "starts_at": iso(now + 30 * 86400),
            "tiers": [{"section": "Floor", "price_cents": 5000},
                      {"section": "Balcony", "price_cents": 2500}]}
    _, _, ev = cl.call("POST", "/v1/events", {**base, "name": "Contract Live",
                                              "description": "A sale to read the contract by"},
                       seller, headers={"Idempotency-Key": "event-1"}, expect=201)
    ev = ev["event_id"]
    _, _, ev2 = cl.call("POST", "/v1/events",
                        {**base, "name": "Contract Later", "onsale_at": iso(now + 3600),
                         "prequeue_opens_at": iso(now - 60)}, seller, expect=201)
    ev2 = ev2["event_id"]
    # A scanner bound to one event (docs/tickets.md): assigned, listed, removed.
    es = f"/v1/events/{ev2}/scanners"
    cl.call("PUT", f"{es}/{users['scanner']}", token=seller, expect=200)
    _, _, listed = cl.call("GET", es, token=seller, expect=200)
    assert [x["user_id"] for x in listed["scanners"]] == [users["scanner"]], listed
    cl.call("DELETE", f"{es}/{users['scanner']}", token=seller, expect=204)
    _, _, ev3 = cl.call("POST", "/v1/events", {**base, "name": "Contract Cancelled"}, seller,
                        expect=201)
    ev3 = ev3["event_id"]
    cl.call("PATCH", f"/v1/events/{ev2}", {"description": "Edited", "starts_at": iso(now + 40 * 86400),
                                           "tiers": [{"section": "Floor", "price_cents": 5500}]},
            seller, expect=200)
    cl.call("GET", f"/v1/events/{ev2}/draw", expect=200)
    cl.call("POST", f"/v1/events/{ev}/pause", token=seller, expect=202)
    st.wait_for(lambda: cl.call("GET", f"/v1/events/{ev}")[2]["status"] == "paused", 30, "paused")
    cl.call("POST", f"/v1/events/{ev}/resume", token=seller, expect=202)
    st.wait_for(lambda: cl.call("GET", f"/v1/events/{ev}")[2]["status"] == "on_sale", 30, "on sale")
    cl.call("POST", f"/v1/events/{ev}/admission", {"max_active_holds": 100,
                                                   "admissions_per_minute": None}, seller, expect=202)
    cl.call("POST", f"/v1/events/{ev3}/cancel", token=seller, expect=202)

    # ---- fans: search, view, challenge, join ----------------------------------------
    def search():
        s, h, b = cl.call("GET", "/v1/events?q=contract&sort=relevance&limit=2")
        return (s, h, b) if s == 200 and b["events"] else None
    _, h, page = st.wait_for(search, 30, "the catalog finds the events")
    cl.call("GET", "/v1/events?q=contract&sort=relevance&limit=2",
            headers={"If-None-Match": h["etag"]}, expect=304)
    if page["next_cursor"]:
        cl.call("GET", f"/v1/events?q=contract&sort=relevance&limit=2&cursor={page['next_cursor']}",
                expect=200)
    cl.call("GET", "/v1/events?city=utrecht&lat=52.1&lon=5.1&km=10&sort=price", expect=200)
    _, h, _ = cl.call("GET", f"/v1/events/{ev}", expect=200)
    cl.call("GET", f"/v1/events/{ev}", headers={"If-None-Match": h["etag"]}, expect=304)

    _, _, ch = cl.call("GET", f"/v1/events/{ev}/challenge", token=fans["fan1"], expect=200)
    assert ch["difficulty"] == 0 and ch["challenge"] is None, ch
    cl.call("POST", f"/v1/events/{ev}/pow", {"difficulty": 6}, seller, expect=200)
    _, _, ch = cl.call("GET", f"/v1/events/{ev}/challenge", token=fans["fan1"], expect=200)
    pow_hdr = f"{ch['challenge']}:{solve(ch['challenge'], ch['difficulty'])}"
    _, _, j1 = cl.call("POST", f"/v1/events/{ev}/intents", {"quantity": 2, "section": "Floor"},
                       fans["fan1"], headers={"Idempotency-Key": "join-1", "Onsale-PoW": pow_hdr},
                       expect=202)
    cl.call("POST", f"/v1/events/{ev}/pow", {"difficulty": 0}, seller, expect=200)
    # A second join while the first is active: 409 already_in_queue with its id.
    cl.call("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, fans["fan1"], expect=409)
    # The pre-queue of the scheduled event.
    cl.call("POST", f"/v1/events/{ev2}/intents", {"quantity": 1}, fans["fan1"], expect=202)

    def held(intent, tok):
        def f():
            s, _, b = cl.call("GET", intent["status_url"], token=tok, expect=200)
            return b if b["state"] == "reserved" else None
        return st.wait_for(f, 30, "reserved")

    p1 = held(j1, fans["fan1"])
    # fan2 holds and releases the reservation; fan3 holds and leaves by its intent.
    _, _, j2 = cl.call("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, fans["fan2"], expect=202)
    p2 = held(j2, fans["fan2"])
    cl.call("DELETE", f"/v1/reservations/{p2['reservation']['reservation_id']}", token=fans["fan2"],
            expect=202)
    _, _, j3 = cl.call("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, fans["fan3"], expect=202)
    held(j3, fans["fan3"])
    cl.call("DELETE", f"/v1/intents/{j3['intent_id']}", token=fans["fan3"], expect=202)
    st.wait_for(lambda: cl.call("GET", j3["status_url"], token=fans["fan3"])[2]["state"] == "released",
                30, "released")

    # ---- checkout, order, tickets ---------------------------------------------------
    rid = p1["reservation"]["reservation_id"]
    _, _, o = cl.call("POST", f"/v1/reservations/{rid}/checkout", {"payment_method": "pm_card_visa"},
                      fans["fan1"], headers={"Idempotency-Key": "pay-1"}, expect=202)
    order = st.wait_for(lambda: (lambda b: b if b["state"] == "paid" else None)(
        cl.call("GET", f"/v1/orders/{o['order_id']}", token=fans["fan1"], expect=200)[2]),
        60, "order paid")
    assert len(order["tickets"]) == 2, order
    cl.call("GET", j1["status_url"], token=fans["fan1"], expect=200)  # purchased, with the record
    _, _, mine = cl.call("GET", "/v1/me/tickets?limit=1", token=fans["fan1"], expect=200)
    # The history says when the show is (the event's starts_at).
    starts = cl.call("GET", f"/v1/events/{ev}", expect=200)[2]["starts_at"]
    assert mine["tickets"][0]["starts_at"] == starts, (mine, starts)
    if mine["next_cursor"]:
        cl.call("GET", f"/v1/me/tickets?limit=1&cursor={mine['next_cursor']}", token=fans["fan1"],
                expect=200)
    t_give, t_cancel = (t["ticket_id"] for t in order["tickets"])
    cl.call("POST", f"/v1/tickets/{t_give}/transfer", {"to_user_id": users["fan2"]}, fans["fan1"],
            expect=202)
    cl.call("POST", f"/v1/tickets/{t_cancel}/cancel", token=fans["fan1"], expect=202)

    def fan2_has_it():
        b = cl.call("GET", "/v1/me/tickets", token=fans["fan2"], expect=200)[2]
        return any(t["ticket_id"] == t_give for t in b["tickets"])
    st.wait_for(fan2_has_it, 30, "the transferred ticket in fan2's history")
    code = st.wait_for(lambda: (lambda r: r[2] if r[0] == 200 else None)(
        cl.call("GET", f"/v1/tickets/{t_give}/code", token=fans["fan2"])), 30, "fan2's code")
    cl.call("POST", "/v1/scans", {"ticket_id": 10**12, "code": "12345678"}, scanner,
            expect=403)  # scanner_not_assigned: no such ticket (or another venue's)
    cl.call("POST", "/v1/scans", {"scan": code["scan"]}, scanner, expect=200)
    cl.call("POST", "/v1/scans", {"scan": code["scan"]}, scanner, expect=409)  # already_admitted
    cl.call("GET", f"/v1/tickets/{t_give}/code", token=fans["fan2"], expect=200)  # admitted_at

    # ---- log out ---------------------------------------------------------------------
    s = login("fan4")
    cl.call("DELETE", "/v1/sessions", {"refresh_token": s["refresh_token"]}, expect=204)
    cl.call("POST", "/v1/sessions/refresh", {"refresh_token": s["refresh_token"]}, expect=401)

    # ---- no such route, no such method (405 with Allow) -------------------------------
    cl.call("GET", "/v1/nothing-here", expect=404)
    cl.call("PUT", f"/v1/events/{ev}", {"name": "x"}, seller, expect=405)
    cl.call("DELETE", "/v1/users", expect=405)

    # ---- ops -------------------------------------------------------------------------------
    cl.call("GET", "/healthz", expect=200)
    cl.call("GET", "/readyz", expect=200)
    cl.call("GET", "/metrics", expect=200)
    cl.call("GET", "/v1/admin/queues", token=admin, expect=200)
    cl.call("GET", "/v1/admin/history?minutes=5", token=admin, expect=200)

    # ---- web ---------------------------------------------------------------------------------
    _, h, _ = cl.call("GET", "/", expect=200)
    cl.call("GET", "/", headers={"If-None-Match": h["etag"]}, expect=304)
    _, h, _ = cl.call("GET", "/", headers={"Accept-Encoding": "gzip"}, expect=200)
    assert h.get("content-encoding") == "gzip", h
    cl.call("GET", f"/q/{ev}", expect=200)
    cl.call("GET", "/ops/", expect=200)
    cl.call("GET", "/ops", expect=200)
    _, h, _ = cl.call("GET", "/web/fan.js", expect=200)
    cl.call("GET", "/web/fan.js", headers={"If-None-Match": h["etag"]}, expect=304)
    cl.call("GET", "/web/style.css", headers={"Accept-Encoding": "gzip"}, expect=200)
    cl.call("GET", "/web/favicon.svg", expect=200)

    assert not cl.mismatches, "answers unlike the spec:\n" + "\n".join(cl.mismatches)
    missing = cl.c.operation_ids() - set(cl.c.covered)
    assert not missing, f"operations of the spec never answered successfully: {sorted(missing)}"


def test_limits_answer_with_retry_after():
    """429 (login throttle) and 503 (readyz with a dependency down: an
    ingress pointed at a closed Redis port) carry what the spec promises."""
    contract = Contract(SPEC)
    with Stack(partitions=1) as st:
        st.start_worker()
        st.start_ingress(accounts_login_account_failures=2)
        cl = Client(st, contract)
        cl.call("POST", "/v1/users", {"email": "t@example.com", "password": PASSWORD,
                                      "display_name": "T"}, expect=201)
        statuses = [cl.call("POST", "/v1/sessions", {"email": "t@example.com",
                                                     "password": "wrong password"})[0]
                    for _ in range(3)]
        assert statuses[-1] == 429, statuses
        st.start_ingress(redis_port=free_port())
        s = cl.call("GET", "/readyz")[0]
        assert s == 503, s
        assert not cl.mismatches, "answers unlike the spec:\n" + "\n".join(cl.mismatches)


def test_the_checker_sees_mismatches():
    """The control: answers unlike the spec are reported (else the journey
    above would pass whatever the server sent)."""
    import json
    c = Contract(SPEC)
    ok = {"status": "ok"}
    js = {"content-type": "application/json", "x-request-id": "1", "cache-control": "no-store"}
    assert c.check("GET", "/healthz", 200, js, json.dumps(ok)) == []
    assert c.covered == {"healthz": {200}}
    bad = [
        ("GET", "/healthz", 201, js, json.dumps(ok)),  # status not listed
        ("GET", "/healthz", 200, dict(js, **{"content-type": "text/html"}), json.dumps(ok)),
        ("GET", "/healthz", 200, dict(js, **{"cache-control": "max-age=60"}), json.dumps(ok)),
        ("GET", "/healthz", 200, {"content-type": "application/json", "cache-control": "no-store"},
         json.dumps(ok)),  # no X-Request-Id
        ("GET", "/healthz", 200, js, json.dumps({"status": "fine"})),  # enum
        ("GET", "/healthz", 200, js, json.dumps({"status": "ok", "extra": 1})),  # undocumented
        ("GET", "/readyz", 503, js, json.dumps({"status": "not_ready", "redis": False,
                                                "postgres": True, "kafka": True,
                                                "checked_ms_ago": 5})),  # no Retry-After
        ("GET", "/v1/events/7", 200, js, "{}"),  # required fields and ETag missing
        ("GET", "/v1/me/tickets", 200, js, json.dumps({"tickets": [], "next_cursor": 3})),
        ("POST", "/v1/sessions", 401, js,
         json.dumps({"error": {"code": "invalid_credentials", "message": "x", "field": None}})),
        ("POST", "/v1/sessions", 401, js, json.dumps({"error": {"code": "sold_out", "message": "x"}})),
        ("GET", "/v1/orders/" + "0" * 32, 200, js,
         json.dumps({"order_id": "0" * 32, "state": "paid", "total_cents": 1, "currency": "USD",
                     "tickets": [{"ticket_id": 1, "seat": {"section": "A", "row": 1, "seat": 1},
                                  "price_cents": 1, "status": "valid"}],
                     "when": "2026-11-30T02:00:00+01:00"})),
        ("GET", "/v1/events/1/draw", 200, js, json.dumps(
            {"event_id": 1, "commitment": None, "seed": None, "entries": ["x"]})),
        ("GET", "/nowhere", 200, js, "{}"),
        ("PUT", "/v1/events/1", 405, dict(js, allow="GET"),  # PATCH missing from Allow
         json.dumps({"error": {"code": "method_not_allowed", "message": "x"}})),
        ("GET", "/web/fan.js", 200, {"content-type": "text/javascript", "x-request-id": "1",
                                     "etag": '"a"', "vary": "Accept-Encoding",
                                     "cache-control": "max-age=600"}, "x"),  # not no-cache
        ("GET", "/v1/events", 429, dict(js, **{"retry-after": "soon", "ratelimit": "x",
                                              "ratelimit-policy": "y"}),
         json.dumps({"error": {"code": "rate_limited", "message": "x"}})),
    ]
    for m, p, s, h, t in bad:
        assert c.check(m, p, s, h, t), (m, p, s, t)
    ts = {"event_id": 1, "commitment": None, "seed": None, "entries": [],
          "at": "2026-11-30T02:00:00+01:00"}
    c.spec["components"]["schemas"]["Draw"]["properties"]["at"] = {"type": "string",
                                                                   "format": "date-time"}
    assert any("at" in x for x in c.check("GET", "/v1/events/1/draw", 200, js, json.dumps(ts)))
    assert set(c.covered) == {"healthz"}


def doc_block(path, heading):
    """The first ```sh block after the line `heading` of path."""
    text = open(os.path.join(ROOT, path)).read()
    rest = text[text.index(heading + "\n"):]
    start = rest.index("```sh\n") + len("```sh\n")
    return rest[start:rest.index("```\n", start)]


def test_the_try_it_block_of_api_md_runs_as_written(journey, tmp_path):
    """docs/api.md "Try it", as a new user copies it: the stack's address
    is the only change; it runs from a folder laid out like a checkout
    (.state/secrets.env with the stack's keys, build/bin)."""
    import harness
    st, _, _ = journey
    block = doc_block("docs/api.md", "## Try it")
    assert "API=http://127.0.0.1:8080\n" in block
    block = block.replace("API=http://127.0.0.1:8080\n", f"API=http://127.0.0.1:{st.ingress_port}\n")
    (tmp_path / ".state").mkdir()
    (tmp_path / ".state" / "secrets.env").write_text(
        f"ONSALE_AUTH_SECRET={st.secret}\nONSALE_IDS_SECRET={st.ids_secret}\n"
        f"ONSALE_TICKETS_SECRET={st.tickets_secret}\n")
    (tmp_path / "build").mkdir()
    os.symlink(harness.BIN, tmp_path / "build" / "bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONSALE_")}
    r = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:]
    import json
    # The last two answers: the order, then the ticket history.
    order_text, tickets_text = r.stdout.rsplit("}{", 2)[-2:]
    order = json.loads("{" + order_text + "}")
    tickets = json.loads("{" + tickets_text)
    assert order["state"] == "paid" and len(order["tickets"]) == 2, order
    assert [t["status"] for t in tickets["tickets"]] == ["valid", "valid"], tickets


def test_the_search_examples_of_the_docs_answer(journey):
    """Every `GET /v1/events?...` the docs show (docs/search.md's shapes,
    docs/api.md's list) is a query the server takes, answered as the spec
    says."""
    import re
    st, _, cl = journey
    seen = set()
    for doc in ("docs/search.md", "docs/api.md"):
        for q in re.findall(r"`GET (/v1/events\?[^`]*)`", open(os.path.join(ROOT, doc)).read()):
            if q in seen:
                continue
            seen.add(q)
            # docs/api.md lists the parameters with empty values: each alone.
            if re.search(r"=(&|$)", q):
                continue
            s, _, b = cl.call("GET", q)
            assert s == 200, (doc, q, b)
    assert len(seen) >= 7, seen
    assert not cl.mismatches, "answers unlike the spec:\n" + "\n".join(cl.mismatches)


def test_the_other_states_answer_as_the_spec_says(journey):
    """The answers a sale's less happy paths give, each checked like the
    journey's: a queued poll (worker stopped), a waiting fan (every seat
    held), a declined payment (order failed with its reason, the hold given
    back), sold out, the draw's
    seed, a prequeued poll, an event cancelled with a sold ticket (order
    refunded, ticket voided, its code refused), a token without account."""
    import signal
    st, env, cl = journey
    admin = st.token(ADMIN, "admin")
    seller = st.token(ADMIN, "admin")  # an admin may run any event
    tok = {}
    for who in ("a", "b", "c"):
        _, _, u = cl.call("POST", "/v1/users", {"email": f"other-{who}@example.com",
                                               "password": PASSWORD, "display_name": who},
                          expect=201)
        tok[who] = cl.call("POST", "/v1/sessions", {"email": f"other-{who}@example.com",
                                                    "password": PASSWORD}, expect=201)[2]["access_token"]
    _, _, v = cl.call("POST", "/v1/venues", {"name": "Solo", "city": "Delft", "country": "NL",
                                             "sections": [{"name": "S", "rows": 1, "seats_per_row": 1}]},
                      seller, expect=201)
    _, _, e = cl.call("POST", "/v1/events", {"venue_id": v["venue_id"], "name": "One Seat",
                                             "category": "theatre", "hold_seconds": 60,
                                             "starts_at": iso(time.time() + 30 * 86400),
                                             "tiers": [{"section": "S", "price_cents": 1000}]},
                      seller, expect=201)
    ev = e["event_id"]
    cl.call("GET", f"/v1/events/{ev}/draw", expect=200)  # on sale: the seed is out

    def poll(j, t, states):
        return st.wait_for(lambda: (lambda b: b if b["state"] in states else None)(
            cl.call("GET", j["status_url"], token=t, expect=200)[2]), 30, f"{states}")

    # Queued: the worker stopped, the join waits in the log; the poll is
    # answered from memory with a position and an ETA.
    env.worker.popen.send_signal(signal.SIGSTOP)
    try:
        _, _, ja = cl.call("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, tok["a"], expect=202)
        q = cl.call("GET", ja["status_url"], token=tok["a"], expect=200)[2]
        assert q["state"] == "queued", q
        cl.call("GET", "/v1/admin/queues", token=admin, expect=200)
    finally:
        env.worker.popen.send_signal(signal.SIGCONT)
    pa = poll(ja, tok["a"], ("reserved",))
    _, _, jb = cl.call("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, tok["b"], expect=202)
    poll(jb, tok["b"], ("waiting",))
    # A declined card: the order fails with its reason, the seat goes to b.
    _, _, oa = cl.call("POST", f"/v1/reservations/{pa['reservation']['reservation_id']}/checkout",
                       {"payment_method": "pm_card_chargeDeclined"}, tok["a"],
                       headers={"Idempotency-Key": "declined"}, expect=202)
    failed = st.wait_for(lambda: (lambda b: b if b["state"] == "failed" else None)(
        cl.call("GET", oa["status_url"], token=tok["a"], expect=200)[2]), 60, "order failed")
    assert failed.get("reason") == "declined", failed
    # The hold is given back (pay again or release it): a releases it, b gets the seat.
    pa = poll(ja, tok["a"], ("reserved",))
    cl.call("DELETE", f"/v1/reservations/{pa['reservation']['reservation_id']}", token=tok["a"],
            expect=202)
    pb = poll(jb, tok["b"], ("reserved",))
    _, _, ob = cl.call("POST", f"/v1/reservations/{pb['reservation']['reservation_id']}/checkout",
                       {"payment_method": "pm_card_visa"}, tok["b"],
                       headers={"Idempotency-Key": "paid"}, expect=202)
    paid = st.wait_for(lambda: (lambda b: b if b["state"] == "paid" else None)(
        cl.call("GET", ob["status_url"], token=tok["b"], expect=200)[2]), 60, "order paid")
    # Sold out: refused at the door or rejected by the owner, either as documented.
    s, _, jc = cl.call("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, tok["c"])
    if s == 202:
        r = poll(jc, tok["c"], ("rejected",))
        assert r.get("reason") == "sold_out", r
    else:
        assert s == 409 and jc["error"]["code"] == "sold_out", jc
    # The scheduled event's pre-queue: a prequeued poll.
    _, _, e2 = cl.call("POST", "/v1/events", {"venue_id": v["venue_id"], "name": "One Seat Later",
                                              "category": "theatre",
                                              "starts_at": iso(time.time() + 30 * 86400),
                                              "onsale_at": iso(time.time() + 3600),
                                              "prequeue_opens_at": iso(time.time() - 60),
                                              "tiers": [{"section": "S", "price_cents": 1000}]},
                       seller, expect=201)
    ev2 = e2["event_id"]
    _, _, jp = cl.call("POST", f"/v1/events/{ev2}/intents", {"quantity": 1}, tok["a"], expect=202)
    assert cl.call("GET", jp["status_url"], token=tok["a"], expect=200)[2]["state"] == "prequeued"
    # Cancelled with a sold ticket: refunded, voided, no code.
    cl.call("POST", f"/v1/events/{ev}/cancel", token=seller, expect=202)
    st.wait_for(lambda: cl.call("GET", ob["status_url"], token=tok["b"], expect=200)[2]["state"]
                == "refunded", 60, "order refunded")
    tid = paid["tickets"][0]["ticket_id"]
    st.wait_for(lambda: cl.call("GET", "/v1/me/tickets", token=tok["b"], expect=200)[2]["tickets"][0]
                ["status"] == "voided", 30, "ticket voided")
    cl.call("GET", f"/v1/tickets/{tid}/code", token=tok["b"], expect=409)
    st.wait_for(lambda: cl.call("GET", f"/v1/events/{ev}")[2]["status"] == "cancelled", 30,
                "event cancelled")
    cl.call("GET", f"/v1/events/{ev}/challenge", token=tok["c"], expect=200)
    # A minted token whose user id has no account.
    cl.call("GET", "/v1/me", token=st.token(999999, "fan"), expect=404)
    assert not cl.mismatches, "answers unlike the spec:\n" + "\n".join(cl.mismatches)
