"""test_ingress_hostile_pipelines.py - hostile clients against whole
pipelines (docs/http-edge.md, "Every answer before a close"): dozens of
requests in one write, event views, queued polls, fan page files and joins
with bodies mixed, then a head the accept gate refuses, a body longer than
it declared, a reset mid-answer, a half-closed write side, a client that
reads nothing, and the server stopped under all of it.

- The requests a client sent before a head the gate refuses are answered,
  in order, then the refusal, then a clean close (no reset). Before, when
  the refused head came in the same read as the requests before it (one
  write from the client: a pipeline), the gate answered the refusal at once
  and gave nng end-of-file for the whole read: the client got the 400 (or
  411, 414) and none of the answers before it.
- SIGTERM while resetting, half-closed, non-reading and refused pipelines
  are in flight: ingress stops in bounded time, exits 0, and the ASan build
  reports nothing (no use after free, no leak at stop).

The module's stack is checked_stack: each ingress it started must exit 0
without a sanitizer report when the module ends. Run it on the ASan build.
"""
import itertools
import os
import socket
import struct
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import checked_stack  # noqa: E402
from test_ingress_direct_replies import read_to_eof, slow_reader, split_answers  # noqa: E402
from test_ingress_hostile import connect, head  # noqa: E402

_users = itertools.count(40000)
BODY = b'{"quantity": 1}'


@pytest.fixture(scope="module")
def st():
    with checked_stack(partitions=1) as s:
        s.direct_port = int(s.start_ingress().rsplit(":", 1)[1])
        s.nng_port = int(s.start_ingress(http_direct_replies="false").rsplit(":", 1)[1])
        s.ev = s.create_event(sections=[("A", 20, 50, 5000)], max_per_user=1)
        s.fan = s.token(next(_users))
        _, b = s.join_ok(s.ev, s.fan)
        s.poll = b["status_url"]
        yield s


def join(st, extra=()):
    """A join by a new fan, with its body; answered 202."""
    tok = st.token(next(_users))
    return head("POST", f"/v1/events/{st.ev}/intents", [
        f"Authorization: Bearer {tok}", "Content-Type: application/json",
        f"Content-Length: {len(BODY)}", *extra]) + BODY


def mixed(st, rounds):
    """rounds x (event view, queued poll, fan page, join, fan script): the
    requests and the statuses they get."""
    reqs = []
    for _ in range(rounds):
        reqs += [head("GET", f"/v1/events/{st.ev}"),
                 head("GET", st.poll, [f"Authorization: Bearer {st.fan}"]),
                 head("GET", "/web/fan.html"), join(st), head("GET", "/web/style.css")]
    return b"".join(reqs), [200, 200, 200, 202, 200] * rounds


def over_declared(st):
    """A join whose body is longer than its Content-Length (5): the rest is
    read as the next head, which is no request line."""
    tok = st.token(next(_users))
    return head("POST", f"/v1/events/{st.ev}/intents", [
        f"Authorization: Bearer {tok}", "Content-Type: application/json",
        "Content-Length: 5"]) + b'{"quantity": 1, "x": 2}'


BAD = {
    "header_without_colon": (lambda st: b"GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon\r\n\r\n",
                             [400]),
    "transfer_encoding": (lambda st: b"POST /v1/x HTTP/1.1\r\nHost: x\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", [411]),
    "body_longer_than_declared": (over_declared, [400, 400]),  # the join's own 400, then ours
    "empty_line": (lambda st: b"\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", [400]),
    "percent_path": (lambda st: head("GET", "/web/%2e%2e/x"), [400]),
    "long_url": (lambda st: head("GET", "/healthz?" + "q" * 4200), [414]),
}


REASON = {400: "Bad Request", 411: "Length Required", 414: "URI Too Long"}


@pytest.mark.parametrize("client", ["half_closed", "open"])
@pytest.mark.parametrize("path", ["direct", "nng"])
@pytest.mark.parametrize("bad", sorted(BAD))
def test_requests_before_a_refused_head_are_answered_then_the_refusal(st, bad, path, client):
    """Two rounds of the mixed pipeline, the bad head, one more request, in
    one write; the client reads (its write side shut down, or open, so
    that nothing but the gate ends the stream): ten answers in order, the
    refusal (Connection: close), end-of-file; the request after the bad
    head is never answered."""
    make, refusal = BAD[bad]
    reqs, want = mixed(st, 2)
    s = connect(st.direct_port if path == "direct" else st.nng_port, timeout=10)
    try:
        s.sendall(reqs + make(st) + head("GET", "/healthz"))
        if client == "half_closed":
            s.shutdown(socket.SHUT_WR)
        data, end = read_to_eof(s)
    finally:
        s.close()
    got = split_answers(data)
    assert [g[0] for g in got] == want + refusal and end == "eof", (end, got)
    last = data.rsplit(b"HTTP/1.1 ", 1)[1]
    assert last.count(b"Connection: close\r\n") == 1, data[-400:]
    # The status line's reason is the status's (411 was "Bad Request").
    assert last.split(b"\r\n", 1)[0].decode() == f"{refusal[-1]} {REASON[refusal[-1]]}", last
    assert st.http("GET", "/healthz")[0] == 200


def test_a_half_closed_client_gets_every_answer_in_order(st):
    """Thirty rounds (150 requests, 30 joins with bodies, ~20 KB: past
    nng's 8 KiB read buffer twice; the gate gives nng a head that a read
    left unfinished at its end only at its next read, into an empty
    buffer) and SHUT_WR: every answer, in order, then end-of-file."""
    reqs, want = mixed(st, 30)
    assert len(reqs) > 2 * 8192
    s = connect(st.direct_port, timeout=10)
    try:
        s.sendall(reqs)
        s.shutdown(socket.SHUT_WR)
        data, end = read_to_eof(s)
    finally:
        s.close()
    assert [g[0] for g in split_answers(data)] == want and end == "eof"


def test_stop_with_hostile_pipelines_in_flight(st):
    """A third ingress, and on it 24 clients at once: 6 reset the
    connection after the first bytes of their answers, 6 half-close and
    read, 6 never read (a 4 KiB window under 100 fan scripts), 6 send a
    pipeline with a body longer than declared; a fan polls throughout. Then
    SIGTERM: ingress exits 0 within 10 s, without a sanitizer report, and
    the fan was served until the stop."""
    port = int(st.start_ingress().rsplit(":", 1)[1])
    proc = st.procs[-1]
    errors, polls = [], []

    def guard(fn):
        def run(*a):
            try:
                fn(*a)
            except OSError:
                pass  # the stop closes them all: any end is fine here
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(repr(e))
        return run

    def resetter():
        s = connect(port, timeout=5)
        s.sendall(mixed(st, 6)[0])
        s.recv(2000)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()

    def half_closer():
        s = connect(port, timeout=5)
        s.sendall(mixed(st, 6)[0])
        s.shutdown(socket.SHUT_WR)
        read_to_eof(s, 5)
        s.close()

    def non_reader():
        s = slow_reader(port)
        s.settimeout(5)
        s.sendall(head("GET", "/web/fan.js") * 100)
        time.sleep(3)
        s.close()

    def over_body():
        s = connect(port, timeout=5)
        s.sendall(mixed(st, 3)[0] + over_declared(st) + mixed(st, 1)[0])
        read_to_eof(s, 5)
        s.close()

    stop = threading.Event()

    def fan():
        while not stop.is_set():
            polls.append(st.http("GET", st.poll, token=st.fan, timeout=5)[0])
            time.sleep(0.2)

    ths = [threading.Thread(target=guard(f)) for f in
           [resetter, half_closer, non_reader, over_body] * 6]
    f = threading.Thread(target=guard(fan))
    f.start()
    for t in ths:
        t.start()
    time.sleep(1.0)
    stop.set()
    f.join()
    t0 = time.time()
    code = proc.stop(timeout=10)
    took = time.time() - t0
    for t in ths:
        t.join(10)
    out = proc.output()
    assert "Sanitizer" not in out and code == 0 and took < 10, (code, took, out[-3000:])
    assert not errors, errors
    assert polls and set(polls) <= {200, 429}, polls
