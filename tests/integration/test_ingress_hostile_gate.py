"""test_ingress_hostile_gate.py - hostile clients against the accept gate's
own reader threads (http.gate_threads, docs/http-edge.md "On the gate's own
threads"): connections that were answered at the gate and wait between
requests are read by those threads, which answer the queued poll and the
event view there and hand everything else back to nng. Each case first
makes its connection one of theirs (a GET answered at the gate, then a
pause: the connection is parked and the gate's epoll holds it), then:

- pipelines thousands of GETs and never reads: the gate's threads never
  block on the full send buffer, a normal client keeps getting answers
  within a bound, and memory stays bounded;
- sends the next head one byte per write, or a body slowly;
- half-closes after a pipeline of GETs and POSTs: every answer arrives,
  then end-of-file;
- resets mid-answer;
- sends a head the gate refuses (long lines, too many headers, NUL, bare
  CR, bad Content-Length, Content-Length with Transfer-Encoding): the same
  refusal as on a fresh connection, after the answers before it;
- stays idle, by the connection cap's worth: the 503 beyond the cap, the
  idle timeout closes them, new clients are served after.

The module's stack is checked_stack: each ingress must exit 0 without a
sanitizer report. Run it on the ASan build too.
"""
import itertools
import json
import os
import socket
import struct
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import checked_stack  # noqa: E402
from test_ingress_direct_replies import read_to_eof, split_answers  # noqa: E402
from test_ingress_hostile import connect, head, ingress_pid, json_error, responses, rss_kb  # noqa: E402

_users = itertools.count(60000)
BODY = b'{"quantity": 1}'
HZ = os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def st():
    with checked_stack(partitions=1) as s:
        opts = dict(http_max_connections=64, http_idle_timeout_ms=4000,
                    http_header_timeout_ms=3000,
                    # the pipelines poll by the thousand
                    ratelimit_poll_user_per_min=1000000, ratelimit_poll_user_burst=1000000,
                    ratelimit_poll_addr_per_min=1000000, ratelimit_poll_addr_burst=1000000)
        # nng's poller alone answers at the gate (the ninth round's path)
        s.port_nng = int(s.start_ingress(http_gate_threads=0, **opts).rsplit(":", 1)[1])
        s.port = int(s.start_ingress(http_gate_threads=2, **opts).rsplit(":", 1)[1])
        s.ev = s.create_event(sections=[("A", 20, 50, 5000)], max_per_user=1)
        s.fan = s.token(next(_users))
        _, b = s.join_ok(s.ev, s.fan)
        s.poll = b["status_url"]
        yield s


def view(st):
    return head("GET", f"/v1/events/{st.ev}")


def poll(st):
    return head("GET", st.poll, [f"Authorization: Bearer {st.fan}"])


def join(st):
    tok = st.token(next(_users))
    return head("POST", f"/v1/events/{st.ev}/intents", [
        f"Authorization: Bearer {tok}", "Content-Type: application/json",
        f"Content-Length: {len(BODY)}"]) + BODY


def gate_cpu(pid):
    """CPU seconds of the gate's reader threads (named gate:read)."""
    total = 0.0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            if open(f"/proc/{pid}/task/{t}/comm").read().strip() != "gate:read":
                continue
            f = open(f"/proc/{pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(f[11]) + int(f[12])) / HZ
    return total


def read_answers(sock, n, timeout=10.0):
    """Reads until n whole answers came (or timeout): split_answers' list."""
    buf, deadline, was = b"", time.time() + timeout, sock.gettimeout()
    sock.settimeout(0.5)
    try:
        while time.time() < deadline:
            got = split_answers(buf)
            if len([g for g in got if g[0] != "partial"]) >= n:
                return got
            try:
                b = sock.recv(65536)
            except socket.timeout:
                continue
            if not b:
                break
            buf += b
        return split_answers(buf)
    finally:
        sock.settimeout(was)


def held(st, timeout=10.0):
    """A connection the gate's threads hold: a view answered at the gate,
    read, then a pause for nng to park it."""
    s = connect(st.port, timeout=timeout)
    s.sendall(view(st))
    assert [g[0] for g in read_answers(s, 1)] == [200]
    time.sleep(0.05)
    return s


def test_the_gates_threads_hold_the_connections(st):
    """Control: the cases below run on the gate's threads. 3,000 views on
    held connections, one at a time: the gate:read threads' CPU rises."""
    pid = ingress_pid(st)
    socks = [held(st) for _ in range(4)]
    before = gate_cpu(pid)
    for i in range(3000):
        s = socks[i % 4]
        s.sendall(view(st))
        assert [g[0] for g in read_answers(s, 1)] == [200]
    for s in socks:
        s.close()
    assert gate_cpu(pid) > before, "the gate's threads answered nothing"


def never_reads(st, stop, sent):
    """Pipelines views and polls until the server stops taking them (its
    answers fill the socket, which this client never reads), then waits."""
    s = held(st)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(0.5)
    chunk = (view(st) + poll(st)) * 50
    try:
        while not stop.is_set():
            try:
                s.sendall(chunk)
                sent[0] += 100
            except socket.timeout:
                stop.wait(0.2)
    except OSError:
        pass
    finally:
        stop.wait()
        s.close()


def test_clients_that_never_read_stall_no_one(st):
    """Eight held connections pipeline views and polls by the thousand and
    never read. A normal client on another connection keeps getting every
    answer within 3 s (the gate's threads never wait on a full socket), and
    the server's memory grows by at most 32 MB (one answer's rest and one
    read per connection are kept, never the pipeline)."""
    pid = ingress_pid(st)
    rss0 = rss_kb(pid)
    stop, sent = threading.Event(), [0]
    ts = [threading.Thread(target=never_reads, args=(st, stop, sent)) for _ in range(8)]
    for t in ts:
        t.start()
    worst = 0.0
    try:
        fan = held(st)
        for i in range(150):
            t0 = time.time()
            fan.sendall(view(st) if i % 2 else poll(st))
            got = read_answers(fan, 1, timeout=10)
            worst = max(worst, time.time() - t0)
            assert [g[0] for g in got] == [200], (i, got)
        fan.close()
        rss1 = rss_kb(pid)
    finally:
        stop.set()
        for t in ts:
            t.join()
    assert sent[0] >= 8 * 100, sent
    assert worst < 3.0, worst
    assert rss1 - rss0 < 32 * 1024, (rss0, rss1)
    assert st.http("GET", "/healthz")[0] == 200


def test_a_head_one_byte_per_write_is_answered(st):
    """On a held connection the next head comes a byte at a time (the gate's
    thread reads each byte and hands the unfinished head to nng): answered,
    and the connection is the gate's again after; then a join whose body
    comes a byte at a time."""
    s = held(st)
    try:
        for req in (view(st), poll(st)):
            for b in req:
                s.send(bytes([b]))
                time.sleep(0.002)
            assert [g[0] for g in read_answers(s, 1)] == [200]
            time.sleep(0.05)
        j = join(st)
        h, body = j.split(b"\r\n\r\n", 1)
        s.sendall(h + b"\r\n\r\n")
        for b in body:
            time.sleep(0.02)
            s.send(bytes([b]))
        assert [g[0] for g in read_answers(s, 1)] == [202]
        s.sendall(view(st))
        assert [g[0] for g in read_answers(s, 1)] == [200]
    finally:
        s.close()


def test_a_slow_head_on_a_held_connection_times_out(st):
    """A held connection that starts a head and stops: closed after
    http.header_timeout_ms (3 s here) with nothing more, not kept open."""
    s = held(st, timeout=15)
    try:
        s.sendall(b"GET /v1/events/1 HTTP/1.1\r\nHost: x\r\nX-A: ")
        t0 = time.time()
        data, end = read_to_eof(s, timeout=15)
        assert end in ("eof", "reset") and time.time() - t0 < 12, (end, data)
    finally:
        s.close()


@pytest.mark.parametrize("where", ["fresh", "held"])
def test_a_head_trickled_a_byte_at_a_time_is_cut_at_the_header_timeout(st, where):
    """Slowloris: a head that keeps coming a byte every half second, on a
    new connection or a held one after a request. http.header_timeout_ms
    (3 s here) counts from the head's start (docs/http-edge.md: a
    connection that sends no complete head within it is closed). Before,
    it counted from the last byte: such a head (up to http.max_head, 8,000
    bytes: over an hour at the default 10 s) kept its connection open, and
    a few thousand of them the connection cap full."""
    s = held(st) if where == "held" else connect(st.port)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: ")
        s.settimeout(0.05)
        t0, end = time.time(), None
        while end is None and time.time() - t0 < 10:
            try:
                s.send(b"a")
                time.sleep(0.5)
                if not s.recv(65536):
                    end = "eof"
            except socket.timeout:
                pass
            except OSError as e:
                end = repr(e)
        took = time.time() - t0
    finally:
        s.close()
    assert end is not None and took < 7, (end, took)


def mixed(st, rounds):
    reqs, want = [], []
    for _ in range(rounds):
        reqs += [view(st), poll(st), join(st), view(st), head("GET", "/web/fan.html"), poll(st)]
        want += [200, 200, 202, 200, 200, 200]
    return b"".join(reqs), want


@pytest.mark.parametrize("rounds", [1, 40])
def test_a_half_closed_pipeline_gets_every_answer(st, rounds):
    """A held connection pipelines views, polls, joins and a page, then
    shuts its write side: every answer, in order, then end-of-file."""
    s = held(st)
    try:
        reqs, want = mixed(st, rounds)
        s.sendall(reqs)
        s.shutdown(socket.SHUT_WR)
        data, end = read_to_eof(s, timeout=20)
    finally:
        s.close()
    assert [g[0] for g in split_answers(data)] == want and end == "eof", (end, split_answers(data)[-3:])


@pytest.mark.parametrize("threads", [2, 0])
def test_a_half_closed_client_that_reads_late_gets_every_answer(st, threads):
    """The same with 2,000 views and polls, a 4 KiB receive window and a
    second's wait before reading, with the gate's threads and without: the
    answers the socket could not take wait for the client (never cut at the
    end of the stream). Before, the head a read left unfinished behind whole
    requests, when part of that read had been answered at the gate, was left
    in nng's buffer with only the answered bytes' room behind it: a poll's
    head did not fit, nng closed with the gate's 431 and the reset threw
    away every answer after the third."""
    port = st.port if threads else st.port_nng
    for _ in range(3):  # the first time on a fresh server was often fine
        late_reader(st, port)


def late_reader(st, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(20)
    s.connect(("127.0.0.1", port))
    try:
        s.sendall(view(st))
        assert [g[0] for g in read_answers(s, 1)] == [200]
        time.sleep(0.05)
        reqs = (view(st) + poll(st)) * 1000

        def send():
            try:
                s.sendall(reqs)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        t = threading.Thread(target=send)
        t.start()
        time.sleep(1.0)
        data, end = read_to_eof(s, timeout=30)
        t.join()
    finally:
        s.close()
    got = split_answers(data)
    assert len(got) == 2000 and set(g[0] for g in got) == {200} and end == "eof", (
        len(got), got[-3:], end)


def test_resets_mid_answer_harm_no_one(st):
    """Held connections pipeline 2,000 views and polls, read a little, and
    reset (SO_LINGER 0), twenty times, four at a time; the server answers
    on (and the ASan build reports nothing at the module's end)."""
    def one():
        s = held(st)
        s.sendall((view(st) + poll(st)) * 200)
        s.recv(1000)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    for _ in range(5):
        ts = [threading.Thread(target=one) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    s = held(st)
    s.sendall(poll(st) + view(st))
    assert [g[0] for g in read_answers(s, 2)] == [200, 200]
    s.close()


def bad_heads(st):
    """(name, raw head, status, code): heads the gate refuses."""
    return [
        ("long_header_line", head("GET", f"/v1/events/{st.ev}", ["X-A: " + "a" * 9000]),
         431, "headers_too_large"),
        ("too_many_headers", head("GET", f"/v1/events/{st.ev}",
                                  [f"X-H{i}: v" for i in range(1500)]), 431, "headers_too_large"),
        ("nul_in_header", head("GET", f"/v1/events/{st.ev}", ["X-A: a\0b"]), 400,
         "malformed_request"),
        ("nul_in_path", head("GET", f"/v1/events/{st.ev}\0"), 400, "malformed_request"),
        ("bare_cr_in_header", head("GET", f"/v1/events/{st.ev}", ["X-A: a\rb"]), 400,
         "malformed_request"),
        ("bare_cr_line_end", b"GET /v1/events/1 HTTP/1.1\rHost: x\r\n\r\n", 400,
         "malformed_request"),
        ("negative_length", head("POST", f"/v1/events/{st.ev}/intents", ["Content-Length: -1"]),
         400, "invalid_content_length"),
        ("huge_length", head("POST", f"/v1/events/{st.ev}/intents",
                             ["Content-Length: 99999999999999999999999"]), 413, None),
        ("two_lengths", head("POST", f"/v1/events/{st.ev}/intents",
                             ["Content-Length: 5", "Content-Length: 5"]), 400,
         "invalid_content_length"),
        ("length_and_chunked", head("POST", f"/v1/events/{st.ev}/intents",
                                    ["Content-Length: 5", "Transfer-Encoding: chunked"]) +
         b"5\r\nhello\r\n0\r\n\r\n", 411, "length_required"),
        ("length_with_sign", head("POST", f"/v1/events/{st.ev}/intents", ["Content-Length: +5"]),
         400, "invalid_content_length"),
    ]


@pytest.mark.parametrize("case", range(11))
@pytest.mark.parametrize("where", ["fresh", "held"])
def test_bad_heads_are_refused_on_held_connections_as_on_fresh_ones(st, case, where):
    """A view and a poll, then the bad head, then a view, in one write, on a
    fresh connection or a held one: the two answers, the refusal (JSON, its
    code, Connection: close), end-of-file; the view after it is never
    answered. The same on both."""
    name, raw, status, code = bad_heads(st)[case]
    s = held(st) if where == "held" else connect(st.port, timeout=10)
    try:
        s.sendall(view(st) + poll(st) + raw + view(st))
        data, end = read_to_eof(s, timeout=10)
    finally:
        s.close()
    got = responses(data)
    assert [g[0] for g in got] == [200, 200, status] and end in ("eof", "reset"), (name, end, got)
    json_error(got[-1], status, code)
    assert got[-1][1].get("connection") == "close", (name, got[-1])


def test_idle_held_connections_up_to_the_cap_and_over(st):
    """Held connections stay idle until the cap refuses one (64 here; the
    gate counts descriptors, some of which the server's own links take): the
    further clients get the gate's 503 at once, never a hang; the idle
    timeout (4 s here) closes the held ones; after it a new client is
    served."""
    socks, refused = [], None
    try:
        for _ in range(100):
            s = connect(st.port, timeout=10)
            s.sendall(view(st))
            got = read_answers(s, 1)
            if got[0][0] != 200:
                refused = got
                s.close()
                break
            socks.append(s)
        assert refused and refused[0][0] == 503 and len(socks) >= 16, (refused, len(socks))
        for _ in range(8):
            c = connect(st.port, timeout=10)
            t0 = time.time()
            c.sendall(view(st))
            got = responses(read_to_eof(c, timeout=5)[0])
            c.close()
            assert time.time() - t0 < 3, got
            json_error(got[0], 503, "overloaded")
        t0 = time.time()
        for s in socks:
            data, end = read_to_eof(s, timeout=15)
            assert end in ("eof", "reset") and data == b"", (end, data)
        assert time.time() - t0 < 14
    finally:
        for s in socks:
            s.close()
    time.sleep(0.3)
    s = held(st)
    s.sendall(poll(st))
    assert [g[0] for g in read_answers(s, 1)] == [200]
    s.close()


# ---- Expect: 100-continue (RFC 9110, 10.1.1) ------------------------------------------

def join_head(st, expect, version="HTTP/1.1", length=None):
    """A join's head (no body) with an Expect header of value expect."""
    tok = st.token(next(_users))
    lines = [f"POST /v1/events/{st.ev}/intents {version}", "Host: x",
             f"Authorization: Bearer {tok}", "Content-Type: application/json",
             f"Content-Length: {len(BODY) if length is None else length}", f"Expect: {expect}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@pytest.mark.parametrize("port", ["port", "port_nng"])
def test_a_join_that_expects_100_continue_gets_it_before_its_body(st, port):
    """The head alone, then a wait: the 100 arrives (before, nothing came and
    the client waited for its own timeout: curl 1 s), then the body is sent
    and the join answered 202."""
    s = connect(getattr(st, port), timeout=10)
    try:
        s.sendall(join_head(st, "100-continue"))
        s.settimeout(0.5)
        got = b""
        while len(got) < len(CONTINUE):
            b = s.recv(len(CONTINUE) - len(got))  # socket.timeout fails the test
            assert b, got
            got += b
        assert got == CONTINUE
        s.settimeout(10)
        s.sendall(BODY)
        assert [g[0] for g in read_answers(s, 1)] == [202]
    finally:
        s.close()


def test_a_body_refused_from_its_head_gets_no_100(st):
    """A declared body over http.max_body: 413 at once, no 100, closed."""
    s = connect(st.port, timeout=10)
    try:
        s.sendall(join_head(st, "100-continue", length=10 ** 6))
        data, end = read_to_eof(s, timeout=5)
        assert not data.startswith(b"HTTP/1.1 100"), data[:200]
        json_error(responses(data)[0], 413, "payload_too_large")
        assert end in ("eof", "reset"), end
    finally:
        s.close()


def test_an_unknown_expectation_is_417(st):
    """Any expectation but 100-continue on a request with a body: 417
    expectation_failed, no 100, the connection closed (the body may follow
    or not). On a request without a body it is ignored (RFC 9110 allows
    it; a GET pays no header lookup for it)."""
    s = connect(st.port, timeout=10)
    try:
        s.sendall(join_head(st, "fly-to-the-moon"))
        data, end = read_to_eof(s, timeout=5)
        assert end in ("eof", "reset"), end
        assert not data.startswith(b"HTTP/1.1 100"), data[:200]
        json_error(responses(data)[0], 417, "expectation_failed")
    finally:
        s.close()
    s = connect(st.port, timeout=10)
    try:
        s.sendall(head("GET", f"/v1/events/{st.ev}", ["Expect: fly-to-the-moon"]))
        assert [g[0] for g in read_answers(s, 1)] == [200]
    finally:
        s.close()


def test_http_1_0_gets_no_100(st):
    """An HTTP/1.0 request's Expect is ignored (RFC 9110): no 100, the body
    is read when it comes, then the answer."""
    s = connect(st.port, timeout=10)
    try:
        s.sendall(join_head(st, "100-continue", version="HTTP/1.0"))
        s.settimeout(0.5)
        with pytest.raises(socket.timeout):
            s.recv(64)
        s.sendall(BODY)
        data, _ = read_to_eof(s, timeout=10)
        assert data.startswith(b"HTTP/1.1 202 "), data[:200]
    finally:
        s.close()


def test_curl_posting_with_expect_100_continue_does_not_wait(st):
    """curl sends the head, waits for the 100 (--expect100-timeout: 5 s
    here, 1 s by default) and only then the body. It gets the 100 and the
    202 well before its timeout (before: it waited the timeout out)."""
    import subprocess
    tok = st.token(next(_users))
    t0 = time.time()
    p = subprocess.run(
        ["curl", "-sS", "-v", "--expect100-timeout", "5", "-o", "/dev/null", "-w", "%{http_code}",
         "-H", "Expect: 100-continue", "-H", f"Authorization: Bearer {tok}",
         "-H", "Content-Type: application/json", "--data-binary", BODY.decode(),
         f"http://127.0.0.1:{st.port}/v1/events/{st.ev}/intents"],
        capture_output=True, text=True, timeout=30)
    took = time.time() - t0
    assert p.stdout == "202", (p.stdout, p.stderr[-2000:])
    assert "HTTP/1.1 100 Continue" in p.stderr, p.stderr[-2000:]
    assert took < 4, took
