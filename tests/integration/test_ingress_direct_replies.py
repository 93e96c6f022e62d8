"""test_ingress_direct_replies.py - answers written whole by onsale-ingress on a
keep-alive connection (http.direct_replies, common/httpd.h
ons_httpd_finish_direct) instead of through nng 1.5.2's response object:

- the bytes are the ones nng writes: the same status line, the same headers
  in the same order (but the request id), the same body, for answers from
  the nng thread (event view, 304, 404, 401, 405, a poll), compared against
  an ingress with the switch off; answers from a job thread (a join's 202)
  still go through nng;
- requests pipelined in one write get their answers in order, direct and
  nng-written ones mixed (a HEAD among them: nng answers it, without body);
- HEAD is answered wherever GET is, by nng, with GET's status and headers
  and no body, on nng's routes and the gate's alike;
- a request after which nng closes the connection (HTTP/1.0, Connection:
  close) is answered through nng, whole, with Connection: close;
- clients that reset before a job thread's answer (a join held by
  debug.join_delay_ms) leave the server healthy (run it on the ASan build);
- answers made by the accept gate as it reads a request (http.gate_answers:
  queued polls, cached event views, the refusals before them) are the bytes
  nng's path writes (the option off), rate limits included; pipelined, they
  come in order with nng's, and a slow reader gets them all, in order, when
  the socket takes them only in part;
- answers queued behind a slow reader are all written, then the 431 of a
  head past nng's buffer, then a clean close: nng reads the next request only
  once a direct answer is written, and the gate reads the rest of the head
  before the close (direct replies are on by default since);
- the gate's reader threads (http.gate_threads) run where the gate answers,
  and a connection they read answers polls and a join in order;
- joins taken by the gate as it reads them (http.gate_joins, answered once
  queued) are the bytes of nng's path, their refusals too, whether made at
  once or by the claimer later; a join nng must frame (an Idempotency-Key,
  Connection: close, Expect, chunked, a body after its head) still goes to
  nng.
"""
import json
import os
import re
import signal
import socket
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import checked_stack  # noqa: E402


@pytest.fixture(scope="module")
def st():
    with checked_stack(partitions=1) as s:
        s.start_worker()
        # Caches that stay fresh through a test: the gate answers from them.
        fresh = dict(event_cache_ttl_ms=60000, event_view_ttl_ms=60000)
        s.nng_port = int(s.start_ingress(http_direct_replies="false", **fresh).rsplit(":", 1)[1])
        s.plain_port = int(s.start_ingress(http_gate_answers="false", **fresh).rsplit(":", 1)[1])
        s.direct_port = int(s.start_ingress(http_direct_replies="true", debug_join_delay_ms=300,
                                            **fresh).rsplit(":", 1)[1])
        s.ev = s.create_event(sections=[("A", 10, 100, 5000)], max_per_user=1)
        yield s


def connect(port, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s


def head(method, path, headers=(), version="HTTP/1.1"):
    lines = [f"{method} {path} {version}", "Host: x", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_responses(sock, n, heads=(), timeout=10.0, wait_close=True):
    """n answers off sock, framed by Content-Length (none for the indexes in
    heads, answers to HEAD). Returns [(status line, [(name, value)], body)]
    and whether the server closed the connection right after the last (None
    unless wait_close: that takes half a second when it does not). An
    interim 100 Continue (a request with Expect: 100-continue) is skipped,
    as a client does (RFC 9110, 15.2)."""
    sock.settimeout(timeout)
    buf, out = b"", []
    deadline = time.time() + timeout
    while len(out) < n:
        hd, sep, rest = buf.partition(b"\r\n\r\n")
        if sep and hd == b"HTTP/1.1 100 Continue":
            buf = rest
            continue
        if sep:
            lines = hd.decode().split("\r\n")
            hs = [(k, v.strip()) for k, v in (ln.split(":", 1) for ln in lines[1:])]
            length = 0 if len(out) in heads else int(dict(
                (k.lower(), v) for k, v in hs).get("content-length", "0"))
            if len(rest) >= length:
                out.append((lines[0], hs, rest[:length]))
                buf = rest[length:]
                continue
        assert time.time() < deadline, (out, buf)
        b = sock.recv(65536)
        assert b, ("closed early", out, buf)
        buf += b
    assert buf == b"", buf
    if not wait_close:
        return out, None
    sock.settimeout(0.5)
    try:
        closed = sock.recv(1) == b""
    except socket.timeout:
        closed = False
    except ConnectionResetError:
        closed = True
    return out, closed


def ask(port, raw, n=1, heads=(), wait_close=True):
    s = connect(port)
    try:
        s.sendall(raw)
        return read_responses(s, n, heads, wait_close=wait_close)
    finally:
        s.close()


def shape(resp):
    """What must match between the two paths: the status line, the header
    names in order with their values (but the request id's), the body."""
    line, hs, body = resp
    return line, [(k, "" if k == "X-Request-Id" else v) for k, v in hs], body


def test_direct_answers_are_the_bytes_nng_writes(st):
    _, _, view = ask(st.direct_port, head("GET", f"/v1/events/{st.ev}"))[0][0]
    etag = dict(ask(st.direct_port, head("GET", f"/v1/events/{st.ev}"))[0][0][1])["ETag"]
    cases = [
        head("GET", f"/v1/events/{st.ev}"),
        head("GET", f"/v1/events/{st.ev}", [f"If-None-Match: {etag}"]),
        head("GET", "/v1/events/999999"),
        head("GET", "/v1/intents/0123456789abcdef0123456789abcdef"),
        head("GET", "/healthz"),
        head("DELETE", "/healthz"),
    ]
    for raw in cases:
        a = ask(st.nng_port, raw)[0][0]
        b = ask(st.direct_port, raw)[0][0]
        assert shape(a) == shape(b), (raw, a, b)
    queued = st.token(12, "fan")
    _, _, joined = ask(st.nng_port, head("POST", f"/v1/events/{st.ev}/intents", [
        f"Authorization: Bearer {queued}", "Content-Type: application/json",
        "Content-Length: 15"]) + b'{"quantity": 1}')[0][0]
    poll = json.loads(joined)["status_url"]
    # A poll: the same headers (the state may move on between the two).
    a = ask(st.nng_port, head("GET", poll, [f"Authorization: Bearer {queued}"]))[0][0]
    b = ask(st.direct_port, head("GET", poll, [f"Authorization: Bearer {queued}"]))[0][0]
    assert a[0] == b[0] == "HTTP/1.1 200 OK", (a, b)
    assert [k for k, _ in a[1]] == [k for k, _ in b[1]], (a, b)
    assert json.loads(a[2])["state"] and json.loads(b[2])["state"], (a, b)
    # A join answered from a job thread (through nng on both): the same headers.
    outs = []
    for port, user in ((st.nng_port, 13), (st.direct_port, 14)):
        tok = st.token(user, "fan")
        outs.append(ask(port, head("POST", f"/v1/events/{st.ev}/intents", [
            f"Authorization: Bearer {tok}", "Content-Type: application/json",
            "Content-Length: 15"]) + b'{"quantity": 1}')[0][0])
    a, b = outs
    assert a[0] == b[0] == "HTTP/1.1 202 Accepted", outs
    assert [k for k, _ in a[1]] == [k for k, _ in b[1]], outs
    assert set(json.loads(a[2])) == set(json.loads(b[2])), outs
    assert json.loads(view)["event_id"] == st.ev


def test_pipelined_answers_come_in_order(st):
    """Forty requests in one write, answers direct and through nng mixed (a
    HEAD goes through nng): each answered once, in order, the connection
    kept."""
    reqs, want, heads = [], [], []
    for i in range(40):
        if i % 10 == 7:
            reqs.append(head("HEAD", f"/v1/events/{st.ev}"))
            want.append("200")  # HEAD is GET without the body
            heads.append(i)
        elif i % 3 == 0:
            reqs.append(head("GET", "/v1/events/999999"))
            want.append("404")
        elif i % 3 == 1:
            reqs.append(head("GET", f"/v1/events/{st.ev}"))
            want.append("200")
        else:
            reqs.append(head("GET", "/healthz"))
            want.append("200")
    out, closed = ask(st.direct_port, b"".join(reqs), 40, heads)
    assert [r[0].split()[1] for r in out] == want
    ids = [dict(r[1])["X-Request-Id"] for r in out]
    assert len(set(ids)) == 40
    for i, r in enumerate(out):
        if i not in heads and want[i] == "200" and i % 3 == 1:
            assert json.loads(r[2])["event_id"] == st.ev
    assert not closed


@pytest.mark.parametrize("raw", [
    head("GET", "/healthz", version="HTTP/1.0"),
    head("GET", "/healthz", ["Connection: close"]),
    head("GET", "/healthz", ["Connection: keep-alive, Close"]),
])
def test_requests_nng_closes_after_are_answered_whole_then_closed(st, raw):
    (resp,), closed = ask(st.direct_port, raw)
    assert resp[0].endswith("200 OK"), resp
    assert dict(resp[1]).get("Connection") == "close", resp
    assert json.loads(resp[2])
    assert closed


def test_head_is_get_without_the_body(st):
    """RFC 9110 9.3.2: HEAD answers as GET would, with no content (it was
    405). Each HEAD is followed on the same connection by the same GET:
    the GET's answer must come whole after it (a body sent for a HEAD
    would be read as the next answer), with the same status, type and
    length, and the connection kept."""
    fan = st.token(41, "fan")
    s, _, b = st.http("POST", f"/v1/events/{st.ev}/intents", {"quantity": 1}, token=fan)
    assert s == 202, b
    paths = [("/healthz", []), (f"/v1/events/{st.ev}", []),
             (b["status_url"], [f"Authorization: Bearer {fan}"]), (f"/q/{st.ev}", []),
             ("/v1/admin/queues", [f"Authorization: Bearer {st.token(1, 'admin')}"]),
             ("/v1/events?limit=2", [])]
    for path, hdrs in paths:
        s = connect(st.direct_port)
        try:
            s.sendall(head("HEAD", path, hdrs) + head("GET", path, hdrs))
            (h, g), closed = read_responses(s, 2, heads=(0,))
        finally:
            s.close()
        assert g[0].endswith("200 OK") and g[2], (path, g)
        assert h[0] == g[0] and h[2] == b"", (path, h)
        hh, gh = dict(h[1]), dict(g[1])
        assert hh["Content-Type"] == gh["Content-Type"], path
        assert int(hh["Content-Length"]) == len(g[2]), (path, h)
        assert not closed, path
    # HEAD only where GET is: a POST-only route still says what it allows,
    # and a route with both lists HEAD beside GET.
    (r,), _ = ask(st.direct_port, head("HEAD", f"/v1/events/{st.ev}/intents"), heads=(0,))
    assert r[0].split()[1] == "405" and dict(r[1])["Allow"] == "POST", r
    (r,), _ = ask(st.direct_port, head("DELETE", "/v1/events"))
    assert r[0].split()[1] == "405" and dict(r[1])["Allow"] == "POST, GET, HEAD", r


def test_clients_leaving_before_a_job_threads_answer(st):
    """Joins held 300 ms on a job thread (debug.join_delay_ms) whose clients
    reset their connections at once: the answers meet dead sockets (nng
    notices only when it writes); the server answers the next client."""
    body = b'{"quantity": 1}'
    socks = []
    for u in range(40):
        tok = st.token(1000 + u, "fan")
        s = connect(st.direct_port)
        s.sendall(head("POST", f"/v1/events/{st.ev}/intents", [
            f"Authorization: Bearer {tok}", "Content-Type: application/json",
            f"Content-Length: {len(body)}"]) + body)
        socks.append(s)
    time.sleep(0.05)
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
    time.sleep(1.0)
    (resp,), _ = ask(st.direct_port, head("GET", "/healthz"))
    assert resp[0].endswith("200 OK")
    for p in st.procs:
        assert p.alive(), p.output()[-2000:]


def slow_reader(port):
    """A client whose receive window is small (4 KiB buffer, 536-byte
    segments, which also keep the server's send buffer near its 40 KiB
    floor): the server's answers stall in its send queue until it reads."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    s.settimeout(10.0)
    s.connect(("127.0.0.1", port))
    return s


def read_to_eof(sock, timeout=10.0):
    buf, deadline = b"", time.time() + timeout
    while time.time() < deadline:
        try:
            b = sock.recv(65536)
        except ConnectionResetError:
            return buf, "reset"
        if not b:
            return buf, "eof"
        buf += b
    return buf, "timeout"


def split_answers(data):
    out = []
    while data:
        hd, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            out.append(("partial", len(data)))
            break
        lines = hd.decode().split("\r\n")
        hs = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
        n = int(hs.get("content-length", "0"))
        out.append((int(lines[0].split()[1]), len(rest[:n])))
        data = rest[n:]
    return out


def pipeline_to_slow_reader(port, small, big):
    """Sends the requests small, then the head big (over http.max_head: the
    431) with its start apart, to a reader that reads nothing for a second.
    Returns the answers (split_answers) and how the connection ended. (A
    head under http.max_head that runs past nng's buffer is held back by
    the gate and answered 200, its start written apart or not:
    test_ingress_hostile_heads.py.)"""
    s = slow_reader(port)
    try:
        s.sendall(small + big[:100])
        time.sleep(0.2)
        s.sendall(big[100:])
        time.sleep(0.8)
        data, end = read_to_eof(s)
    finally:
        s.close()
    return split_answers(data), end


@pytest.mark.parametrize("path", ["nng", "direct"])
def test_answers_queued_behind_a_slow_reader_are_written_before_the_431(st, path):
    """Twenty-four GETs of a 30 KB page pipelined with a head that runs past
    nng's 8 KiB buffer, from a client that reads nothing for a second: the
    answers (720 KB) fill the kernel's buffers and wait in the connection's
    write queue. nng then reaches the head and closes the connection. Before
    a direct answer held back nng's next read, nng parsed all 24 requests at
    once and its close cancelled every answer still queued (the client got
    one or two of 24, then a reset); now each is written before the next
    request is read, the 431 follows the last, and the connection closes
    without a reset (the gate reads what is left of the head before it
    closes)."""
    port = st.direct_port if path == "direct" else st.nng_port
    size = len(ask(port, head("GET", "/web/fan.js"))[0][0][2])
    assert size > 20000
    n = 24
    small = head("GET", "/web/fan.js") * n
    big = head("GET", "/healthz", ["X-F: " + "b" * 8100])
    assert len(small) < 8192 < len(small) + len(big) and len(big) > 8000
    got, end = pipeline_to_slow_reader(port, small, big)
    assert got == [(200, size)] * n + [(431, got[-1][1])] and end == "eof", (end, got[:3],
                                                                              len(got))
    for p in st.procs:
        assert p.alive(), p.output()[-2000:]


def test_a_view_answered_on_a_job_thread_after_the_stop_closed_its_connection(st):
    """The one job thread (pool.threads=1, joins alone: join.round_max=0) is
    held by a join (debug.join_delay_ms); an event view with If-None-Match
    waits behind it, and ingress is stopped. The stop closes the connection
    and nng frees its request; the view's job then answers (dropped).
    reply_etag read If-None-Match from that freed request (ASan:
    heap-use-after-free); it is copied before the request leaves nng's
    thread now. The stop leaves no leak either. Run it on the ASan build."""
    base = st.start_ingress(http_direct_replies="true", pool_threads=1, join_round_max=0,
                            debug_join_delay_ms=1500)
    port = int(base.rsplit(":", 1)[1])
    proc = st.procs[-1]
    # Direct answers first: their pooled buffers are freed at exit (LeakSanitizer).
    out, _ = ask(port, head("GET", "/healthz") * 3 + head("GET", "/web/fan.js"), 4)
    assert [r[0].split()[1] for r in out] == ["200"] * 4
    body = b'{"quantity": 1}'
    tok = st.token(3000, "fan")
    j = connect(port)
    j.sendall(head("POST", f"/v1/events/{st.ev}/intents", [
        f"Authorization: Bearer {tok}", "Content-Type: application/json",
        f"Content-Length: {len(body)}"]) + body)
    time.sleep(0.3)
    v = connect(port)
    v.sendall(head("GET", f"/v1/events/{st.ev}", ['If-None-Match: "0123456789abcdef"']))
    time.sleep(0.3)
    code = proc.stop()
    j.close()
    v.close()
    out = proc.output()
    assert "Sanitizer" not in out and code == 0, (code, out[-3000:])


def gate_answers(port):
    text = ask(port, head("GET", "/metrics"), wait_close=False)[0][0][2].decode()
    m = re.search(r"^onsale_ingress_gate_answers_total (\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def test_gate_answers_are_the_bytes_of_nngs_path(st):
    """The same requests to ingress with http.gate_answers off (nng parses
    each head and calls the handler) and on (the gate answers them as it
    reads them): the same status lines, headers in order (but the request
    id's) and bodies. A queued poll is of each node's own fan (a node knows
    the event of the joins it took): its id, position and ETA differ. The
    gate's counter shows which were answered there. The worker is paused
    first: polls of queued intents (the last tests of the module)."""
    for p in st.procs:
        if p.name == "worker":
            p.kill(signal.SIGSTOP)  # the stack's stop resumes it
    ev = st.create_event(sections=[("A", 10, 100, 5000)], max_per_user=1)  # the same on both
    view = f"/v1/events/{ev}"
    ask(st.plain_port, head("GET", view), wait_close=False)
    ask(st.direct_port, head("GET", view), wait_close=False)  # both caches warm
    etag = dict(ask(st.direct_port, head("GET", view), wait_close=False)[0][0][1])["ETag"]
    other = [f"Authorization: Bearer {st.token(22, 'fan')}"]

    def cases(port, user):
        auth = [f"Authorization: Bearer {st.token(user, 'fan')}"]
        _, _, joined = ask(port, head("POST", f"/v1/events/{ev}/intents", [
            *auth, "Content-Type: application/json",
            "Content-Length: 15"]) + b'{"quantity": 1}', wait_close=False)[0][0]
        poll = json.loads(joined)["status_url"]
        at_gate = [
            head("GET", view),
            head("GET", view, [f"If-None-Match: {etag}"]),
            head("GET", view, ["Idempotency-Key: ?"]),  # 400 after the hook kept the view
            head("GET", "/v1/events/abc"),
            head("GET", poll),  # 401
            head("GET", poll, ["Authorization: Bearer nope"]),
            head("GET", poll, other),  # 404: another fan's
            head("GET", "/v1/intents/zz", auth),  # 400 invalid_id
            head("GET", "/v1/scans", auth),  # 405
            head("GET", "/v1/nothing/here"),  # 404
            head("GET", poll, auth),  # queued
            head("GET", poll, [*auth, "Connection: keep-alive", "User-Agent:  x"]),
        ]
        to_nng = [
            head("GET", "/v1/events/999999"),  # no cached view: a job
            head("GET", "/healthz"),
            head("GET", "/v1/events?q=a"),
            head("GET", view, ["Accept: a", "accept: b"]),  # nng joins repeated headers
            head("GET", view, ["Connection: close"]),
            head("GET", view, version="HTTP/1.0"),
        ]
        return at_gate, to_nng

    off, on = cases(st.plain_port, 21), cases(st.direct_port, 23)
    before = gate_answers(st.direct_port)
    # One request at a time on one connection per node (each read starts
    # between requests), but the last two, which close theirs.
    conns = [connect(st.plain_port), connect(st.direct_port)]
    for i, (ra, rb) in enumerate(zip(off[0] + off[1], on[0] + on[1])):
        if i < len(on[0]) + len(on[1]) - 2:
            conns[0].sendall(ra)
            conns[1].sendall(rb)
            ((a,), a_closed), ((b,), b_closed) = (read_responses(c, 1, wait_close=False)
                                                  for c in conns)
        else:
            (a,), a_closed = ask(st.plain_port, ra)
            (b,), b_closed = ask(st.direct_port, rb)
            assert a_closed and b_closed, (a, b)
        if i in (10, 11):  # the queued polls
            assert a[0] == b[0] == "HTTP/1.1 200 OK", (a, b)
            drop = ("intent_id", "position", "eta_seconds", "eta_ms", "eta_at")
            a, b = ((r[0], [h for h in r[1] if h[0] != "Content-Length"],
                     {k: v for k, v in json.loads(r[2]).items() if k not in drop}) for r in (a, b))
            assert a[2]["state"] == "queued" and a[2]["event_id"] == ev, a
        assert shape(a) == shape(b), (ra, a, b)
    for c in conns:
        c.close()
    # /metrics itself is answered by nng: it does not count.
    assert gate_answers(st.direct_port) - before == len(on[0])
    assert gate_answers(st.plain_port) == 0


def test_gate_answers_keep_the_poll_rate_limit(st):
    """130 polls of one fan pipelined in one write (ratelimit.poll burst
    120): the answers past the burst are 429 with the same headers on both
    paths, and every answer comes in order."""
    outs = []
    for port, user in ((st.plain_port, 23), (st.direct_port, 24)):
        tok = st.token(user, "fan")
        auth = [f"Authorization: Bearer {tok}"]
        _, _, joined = ask(port, head("POST", f"/v1/events/{st.ev}/intents", [
            *auth, "Content-Type: application/json",
            "Content-Length: 15"]) + b'{"quantity": 1}', wait_close=False)[0][0]
        poll = json.loads(joined)["status_url"]
        outs.append(ask(port, head("GET", poll, auth) * 130, 130, wait_close=False)[0])
    a, b = outs
    sa, sb = [r[0].split()[1] for r in a], [r[0].split()[1] for r in b]
    assert "429" in sa and "429" in sb, (sa, sb)
    assert sa.index("429") >= 100 and sb.index("429") >= 100, (sa, sb)
    ra, rb = a[sa.index("429")], b[sb.index("429")]
    assert [k for k, _ in ra[1]] == [k for k, _ in rb[1]] and ra[2] == rb[2], (ra, rb)
    assert dict(ra[1])["RateLimit-Policy"] == dict(rb[1])["RateLimit-Policy"]
    for out in outs:
        ids = [dict(r[1])["X-Request-Id"] for r in out]
        assert len(set(ids)) == 130


def test_gate_answers_reach_a_slow_reader_in_order(st):
    """A slow reader pipelines 200 event views (answered at the gate) then
    a head that runs past nng's buffer, and reads nothing for a second: the
    gate's answers fill the socket, what it took only in part is kept and
    sent before any byte of nng's (the views nng answers behind it), and
    the 431 comes last, then a clean close."""
    view = ask(st.direct_port, head("GET", f"/v1/events/{st.ev}"), wait_close=False)[0][0][2]
    n = 200
    small = head("GET", f"/v1/events/{st.ev}") * n
    big = head("GET", "/healthz", ["X-F: " + "b" * 8100])
    assert len(small) < 8192 < len(small) + len(big) and n * len(view) > 60000
    before = gate_answers(st.direct_port)
    got, end = pipeline_to_slow_reader(st.direct_port, small, big)
    assert got == [(200, len(view))] * n + [(431, got[-1][1])] and end == "eof", (end, got[:3],
                                                                                  len(got))
    answered = gate_answers(st.direct_port) - before
    assert 0 < answered < n, answered  # some at the gate, the rest behind them by nng
    (resp,), _ = ask(st.direct_port, head("GET", "/healthz"), wait_close=False)
    assert resp[0].endswith("200 OK")


def gate_readers(pid):
    """How many of process pid's threads are the gate's readers."""
    names = []
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            names.append(open(f"/proc/{pid}/task/{t}/comm").read().strip())
        except OSError:
            pass
    return names.count("gate:read")


def test_gate_threads_follow_the_options(st):
    """http.gate_threads (2 by default) starts the gate's reader threads
    where the gate answers (common/httpd_gate.c: parked connections are
    read there), none where it does not (http.gate_answers=false); with
    them, polls one at a time on one connection and a pipeline of polls and
    a join are answered in order."""
    # The fixture's three (nng, plain, direct), not those other tests started
    # and stopped since.
    ing = [p for p in st.procs if p.name == "ingress"][:3]
    assert [gate_readers(p.popen.pid) for p in ing] == [0, 0, 2]
    tok = st.token(25, "fan")
    auth = [f"Authorization: Bearer {tok}"]
    join = head("POST", f"/v1/events/{st.ev}/intents", [
        *auth, "Content-Type: application/json", "Content-Length: 15"]) + b'{"quantity": 1}'
    s = connect(st.direct_port)
    try:
        s.sendall(join)
        poll = json.loads(read_responses(s, 1, wait_close=False)[0][0][2])["status_url"]
        for _ in range(20):
            s.sendall(head("GET", poll, auth))
            status, _, body = read_responses(s, 1, wait_close=False)[0][0]
            assert status.split()[1] == "200" and json.loads(body)["intent_id"], (status, body)
        s.sendall(head("GET", poll, auth) * 3 + join + head("GET", poll, auth))
        out = read_responses(s, 5, wait_close=False)[0]
        assert [r[0].split()[1] for r in out] == ["200", "200", "200", "409", "200"], out
    finally:
        s.close()


def gate_joins(port):
    text = ask(port, head("GET", "/metrics"), wait_close=False)[0][0][2].decode()
    m = re.search(r"^onsale_ingress_gate_joins_total (\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def join_cases(ev, auth):
    """(raw request, taken by the gate for later, answered whole with a
    body after its head) for one fan's joins: refusals made at once, the
    202, refusals the claimer makes later (409 already queued, 404 no such
    event), then those nng must frame."""
    ct = "Content-Type: application/json"

    def post(hs, body=b'{"quantity": 1}', path=f"/v1/events/{ev}/intents", extra=()):
        return head("POST", path, [*hs, f"Content-Length: {len(body)}", *extra]) + body

    at_gate = [
        (post([ct]), 0),  # 401
        (post([*auth, ct], b'{"quantity": 1'), 0),  # 400 invalid_json
        (post([*auth, "Content-Type: text/plain"]), 0),  # 415
        (post([*auth, ct], b'{"quantity": 1, "x": 2}'), 0),  # 400 unknown field
        (post([*auth, ct], path="/v1/events/abc/intents"), 0),  # 400 invalid id
        (post([*auth, ct], path=f"/v1/events/{ev}/intentz"), 0),  # 404 no route
        (post([*auth, ct]), 1),  # 202
        (post([*auth, ct]), 1),  # 409: queued already (claimer)
        (post([*auth, ct], path="/v1/events/999999/intents"), 1),  # 404 (claimer)
    ]
    to_nng = [
        (post([*auth, ct], extra=["Idempotency-Key: k1"]), 0),
        (post([*auth, ct], extra=["Connection: close"]), 0),
        (post([*auth, ct], extra=["Expect: 100-continue"]), 0),
        (head("POST", f"/v1/events/{ev}/intents", [*auth, ct, "Transfer-Encoding: chunked"]) +
         b"f\r\n{\"quantity\": 1}\r\n0\r\n\r\n", 0),  # 411, closed
    ]
    return at_gate, to_nng


def test_gate_joins_are_the_bytes_of_nngs_path(st):
    """The same joins to ingress with http.gate_answers off (nng parses
    each and the 202 goes through nng's response object) and on (the gate
    takes head and body as it reads them, the answer sent by the gate once
    the claimer, the producer and the finisher are done): the same status
    lines, headers in order (but the request id's) and bodies (but the
    intent's id, position and ETA). The gate's join counter moves for the
    joins handed to the claimer only; those nng must frame leave it alone."""
    ev = st.create_event(sections=[("A", 10, 100, 5000)], max_per_user=1)
    outs = []
    for port, user in ((st.plain_port, 31), (st.direct_port, 32)):
        auth = [f"Authorization: Bearer {st.token(user, 'fan')}"]
        at_gate, to_nng = join_cases(ev, auth)
        got = []
        for i, (raw, taken) in enumerate(at_gate + to_nng):
            before = gate_joins(port)
            if i < len(at_gate):
                (r,), _ = ask(port, raw, wait_close=False)
            else:
                # another fan each: a fresh join, whatever the earlier ones did
                fan = [f"Authorization: Bearer {st.token(user * 100 + i, 'fan')}"]
                raw = raw.replace(auth[0].encode(), fan[0].encode())
                (r,), _ = ask(port, raw, wait_close=False)
            got.append((r, gate_joins(port) - before, taken))
        outs.append(got)
    drop = ("intent_id", "position", "eta_seconds", "eta_ms", "eta_at", "status_url")
    for (a, a_taken, _), (b, b_taken, taken) in zip(*outs):
        assert a_taken == 0 and b_taken == taken, (b, b_taken, taken)
        if a[0].split()[1] == "202":
            a, b = ((r[0], [h for h in r[1] if h[0] != "Content-Length"],
                     {k: v for k, v in json.loads(r[2]).items() if k not in drop}) for r in (a, b))
            assert a[2]["state"] == "queued" and a[2]["event_id"] == ev, a
        else:  # a 409 names the fan's own intent
            a, b = ((r[0], r[1], re.sub(rb'"intent_id":"[0-9a-f]+"', b"", r[2])) for r in (a, b))
        assert shape(a) == shape(b), (a, b)
    statuses = [r[0].split()[1] for r, _, _ in outs[1]]
    assert statuses == ["401", "400", "415", "400", "400", "404", "202", "409", "404",
                        "202", "202", "202", "411"], statuses


def test_a_gate_join_holds_the_requests_behind_it(st):
    """A join (held 300 ms by debug.join_delay_ms) with a poll, an event
    view and a second join pipelined behind it in one write: the answers
    come in the requests' order, the 202 first, though the gate would answer
    the view at once (with the gate not holding the connection, the views
    come first: test_httpd later_control_unheld)."""
    ev = st.create_event(sections=[("A", 10, 100, 5000)], max_per_user=1)
    tok = st.token(33, "fan")
    auth = [f"Authorization: Bearer {tok}"]
    join = head("POST", f"/v1/events/{ev}/intents", [
        *auth, "Content-Type: application/json", "Content-Length: 15"]) + b'{"quantity": 1}'
    before = gate_joins(st.direct_port)
    s = connect(st.direct_port)
    try:
        t0 = time.time()
        s.sendall(join + head("GET", f"/v1/events/{ev}") * 2 + join +
                  head("GET", f"/v1/events/{ev}"))
        out = read_responses(s, 5, wait_close=False)[0]
        assert time.time() - t0 >= 0.3
        assert [r[0].split()[1] for r in out] == ["202", "200", "200", "409", "200"], out
        assert json.loads(out[0][2])["state"] == "queued"
    finally:
        s.close()
    # the first at the gate; what came behind it in the same read goes to nng
    assert gate_joins(st.direct_port) - before == 1
