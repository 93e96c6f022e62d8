"""test_ingress_hostile_heads.py - request heads nng 1.5.2 misreads or does
not answer in JSON, sent raw to onsale-ingress (issue 14, item 13: the class,
not only the examples). Each is answered by the accept gate with one JSON
400 (malformed_request, or invalid_path for a path nng would decode) and the
connection is closed, so a request pipelined or smuggled behind it is never
read. Before common/httpd_head.c:

- "Content-Length : N" (a space before the colon) was filed by nng under
  another name, so the server read no body and nng parsed the body as a
  second request, which was answered (request smuggling);
- "/healthz#%41" passed the gate ('#' ended its path) while nng decodes up
  to '?' only, and nng 1.5.2 reads past its buffer on a path ending in an
  escape (valgrind: "Invalid read ... 0 bytes after a block");
- NUL, TAB, UTF-8 bytes, a lone CR, a folded or colon-less header line and
  HTTP/0.9 closed the connection without a word; a head without Host, a
  leading empty line, HTTP/2.0 or "OPTIONS *" got nng's HTML pages.

Run it against the ASan build too (ONSALE_BUILD_BIN=build-asan/bin).
"""
import json
import os
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import checked_stack, free_port  # noqa: E402
from test_ingress_hostile import (connect, exchange, head, json_error, read_all,  # noqa: E402
                                  responses)

OK = head("GET", "/healthz", ["Connection: close"])


@pytest.fixture(scope="module")
def st():
    with checked_stack(partitions=1) as s:
        s.start_ingress()
        yield s


def bad_heads(st):
    m = st.http("GET", "/metrics")[2]
    line = [ln for ln in m.splitlines() if ln.startswith("onsale_ingress_bad_heads_total ")]
    return float(line[0].split()[1]) if line else 0.0


def refused_alone(st, raw, code):
    """raw then a good request on one connection: one JSON 400 with code,
    the connection closed, the good request never answered."""
    before = bad_heads(st)
    data, closed = exchange(st.ingress_port, raw + OK)
    rs = responses(data)
    assert len(rs) == 1, data
    json_error(rs[0], 400, code)
    assert rs[0][1].get("connection") == "close" and closed, data
    assert bad_heads(st) == before + 1  # the gate answered, before nng parsed it
    assert st.http("GET", "/healthz")[0] == 200


def test_content_length_with_a_space_before_the_colon_smuggles_nothing(st):
    smuggled = head("GET", "/healthz", ["X-Smuggled: 1"])
    for name in (b"Content-Length :", b"Content-Length\t:", b" Content-Length:"):
        raw = (b"POST /healthz HTTP/1.1\r\nHost: x\r\n" + name +
               f" {len(smuggled)}\r\n\r\n".encode() + smuggled)
        refused_alone(st, raw, "malformed_request")
    # The same with Transfer-Encoding: the chunk is never a request.
    raw = b"POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n" + smuggled
    refused_alone(st, raw, "malformed_request")


def test_a_client_accepted_before_the_gate_started_is_gated(st):
    """nng accepts as soon as it listens, and the gate started after it: a
    connection accepted in between was never judged, for its whole life
    (seen once in CI under load: a "Content-Length :" smuggle answered 405
    and its smuggled request answered). The gate is armed before the
    server listens, so such a client waits in accept until the gate is up.
    Here the gate starts 1.5 s late (debug.gate_start_delay_ms) and the
    client connects and sends the smuggle at once. Control: with the arm
    removed (ingress/server.c), this answers 405 and then the smuggled
    request."""
    port = free_port()
    p = st.start("ingress", "onsale-ingress", http_port=port, debug_gate_start_delay_ms=1500)
    try:
        deadline = time.time() + 20
        while True:
            try:
                s = connect(port)
                break
            except OSError:
                assert time.time() < deadline and p.alive(), "ingress never listened"
                time.sleep(0.02)
        t0 = time.time()
        smuggled = head("GET", "/healthz", ["X-Smuggled: 1"])
        s.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length : " +
                  str(len(smuggled)).encode() + b"\r\n\r\n" + smuggled + OK)
        data, closed = read_all(s, 6.0)
        s.close()
        rs = responses(data)
        assert len(rs) == 1 and closed, data
        json_error(rs[0], 400, "malformed_request")
        assert time.time() - t0 < 5, "the client waited past the gate's start"
        # a test-only switch set is said at start (common/opts.c)
        assert "debug.gate_start_delay_ms is set away from its default" in p.output(), \
            p.output()[-2000:]
    finally:
        st.discard(p)


@pytest.mark.parametrize("cl", ["00000000000000000000005", " " * 100 + "5"])
def test_a_length_the_server_accepts_is_followed_by_the_gate(st, cl):
    """A Content-Length the server reads as 5 but the gate could not hold
    (over 19 digits, or padded past its buffer) made the gate stop judging
    the connection: the next head's '%' path reached nng's decoder and the
    server answered it. Now the gate frames the body and refuses that head."""
    before = bad_heads(st)
    s = connect(st.ingress_port)
    try:
        s.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length:" + cl.encode() +
                  b"\r\n\r\nhello")
        data, closed = read_all(s, 1.0)  # its answer, the connection kept
        assert [r[0] for r in responses(data)] == [405] and not closed, data
        s.sendall(head("GET", "/healthz%41") + OK)
        data, closed = read_all(s, 3.0)
    finally:
        s.close()
    rs = responses(data)
    assert len(rs) == 1 and closed, data
    json_error(rs[0], 400, "invalid_path")
    assert bad_heads(st) == before + 1


def test_framing_the_server_refuses_is_refused_by_the_gate(st):
    """Transfer-Encoding, two lengths, a length that is not a number: the
    gate answers as the server would (411, 400) and closes."""
    smuggled = head("GET", "/healthz")
    for extra, status, code in (
            (["Transfer-Encoding: chunked"], 411, "length_required"),
            (["Content-Length: 5", "Content-Length: 5"], 400, "invalid_content_length"),
            (["Content-Length: 5 5"], 400, "invalid_content_length")):
        raw = head("POST", "/healthz", extra) + b"hello" + smuggled
        data, closed = exchange(st.ingress_port, raw)
        rs = responses(data)
        assert len(rs) == 1 and closed, data
        json_error(rs[0], status, code)


@pytest.mark.parametrize("target", ["/healthz#%41", "/healthz#x%4", "/#%", "*", "healthz",
                                    "http://x/healthz"])
def test_a_target_nng_would_decode_or_not_route_is_invalid_path(st, target):
    refused_alone(st, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), "invalid_path")


@pytest.mark.parametrize("raw", [
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A:\tb\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: \xc3\xa9\r\n\r\n",
    b"GET /healthz\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\rHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  b\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A\r\n\r\n",
    b"GET /healthz\r\n\r\n",
    b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1 \r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
    b"\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\nHost: x\n\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\nContent-Length: 5\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n\n",
    b"GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: evil.example/x?\r\n\r\n",
], ids=["nul", "tab", "utf8", "non-ascii-path", "lone-cr", "folded", "no-colon", "http0.9",
        "http2", "version-space", "no-host", "two-hosts", "leading-crlf", "bare-lf",
        "bare-lf-in-a-value", "bare-lf-empty-line", "host-space",
        "host-path"])
def test_a_head_nng_cannot_parse_is_malformed_request(st, raw):
    refused_alone(st, raw, "malformed_request")


def test_a_head_pipelined_past_nngs_buffer_is_answered(st):
    """nng 1.5.2 reads heads into one 8 KiB buffer that it empties only when
    all of it is parsed: a 7,900-byte head (under http.max_head) pipelined
    behind small ones ran into its end, and nng closed the connection
    without a word after answering the small ones (later the gate answered
    431 then). Now, when the small ones and the head's start come in one
    read, the gate gives nng the small ones only and the head's start at
    its next read, into an empty buffer: every request is answered. The
    same when the client writes the head's start with the small ones and
    the rest apart: that read did not fill nng's buffer, and the gate left
    the head's start in it (then the 431 followed the answers before it)."""
    small = head("GET", "/healthz", ["X-P: " + "p" * 300])
    big = head("GET", "/healthz", ["X-F: " + "b" * 7900])
    assert len(big) < 8000
    for n in (1, 3, 30):
        data, closed = exchange(st.ingress_port, small * n + big + OK)
        assert [r[0] for r in responses(data)] == [200] * (n + 2) and closed, data
    before = bad_heads(st)
    s = connect(st.ingress_port)
    try:
        s.sendall(small + big[:100])
        time.sleep(0.3)
        s.sendall(big[100:] + OK)
        data, closed = read_all(s)
    finally:
        s.close()
    rs = responses(data)
    assert [r[0] for r in rs] == [200, 200, 200] and closed, data
    assert bad_heads(st) == before


def test_ordinary_heads_still_pass(st):
    """What real clients send is untouched: HTTP/1.0 without Host, '%' and
    '#' in the query, keep-alive with a body, pipelined."""
    body = b'{"quantity": 1}'
    raw = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" +
           b"GET /v1/events?q=%41%23# HTTP/1.1\r\nHost: x\r\n\r\n" +
           b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length:  " + str(len(body)).encode() + b" \r\n\r\n" + body +
           b"GET /healthz HTTP/1.0\r\n\r\n")
    data, closed = exchange(st.ingress_port, raw)
    assert [r[0] for r in responses(data)] == [200, 200, 405, 200], data
    assert json.loads(responses(data)[1][2])["events"] == []
    assert closed  # HTTP/1.0


def test_the_head_limits_hold_at_their_edge_and_one_past(st):
    """The sixteenth round's sweep: a request line of exactly
    http.max_request_line (4096) bytes is answered and one byte more is a
    414; a head of ~1,600 tiny headers within http.max_head (8000) is
    answered and one past it a 431, each closed after (no byte of it
    reaches nng's parser past the limit)."""
    for n, status in ((4096, 200), (4097, 414)):
        line = b"GET /healthz?" + b"a" * (n - len(b"GET /healthz? HTTP/1.1")) + b" HTTP/1.1"
        assert len(line) == n
        data, closed = exchange(st.ingress_port,
                                line + b"\r\nHost: x\r\nConnection: close\r\n\r\n" + OK)
        assert [r[0] for r in responses(data)] == [status] and closed, (n, data[:200])
    start = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    for size, status in ((8000, 200), (8001, 431)):
        fill = size - len(start) - 2
        tiny = b"a:b\r\n" * (fill // 5 - 1)
        raw = start + tiny + b"p:" + b"x" * (fill - len(tiny) - 4) + b"\r\n" + b"\r\n"
        assert len(raw) == size and raw.count(b"\r\n") > 1500
        data, closed = exchange(st.ingress_port, raw + OK)
        assert [r[0] for r in responses(data)] == [status] and closed, (size, data[:200])


@pytest.mark.parametrize("extra,status,code", [
    (["Content-Length: 5", "Transfer-Encoding: chunked"], 411, "length_required"),
    (["Transfer-Encoding: chunked", "Content-Length: 5"], 411, "length_required"),
    (["Transfer-Encoding: identity", "Content-Length: 5"], 411, "length_required"),
    (["Content-Length: -1"], 400, "invalid_content_length"),
    (["Content-Length: +5"], 400, "invalid_content_length"),
    (["Content-Length: 0x5"], 400, "invalid_content_length"),
    (["Content-Length: 5, 5"], 400, "invalid_content_length"),
    (["Content-Length: 99999999999999999999999"], 413, "payload_too_large"),
], ids=["cl-te", "te-cl", "te-identity", "negative", "plus", "hex", "list", "overflow"])
def test_framing_a_proxy_could_read_otherwise_is_refused_and_closed(st, extra, status, code):
    """Smuggling shapes beside test_framing_the_server_refuses...: both
    framings in either order, a length a lenient parser reads as 5, one
    past 64 bits; each is one JSON error and a close, the request behind
    it never answered (a chunk, with extension and a size past 64 bits,
    then a smuggled request)."""
    smuggled = head("GET", "/healthz", ["X-Smuggled: 1"])
    raw = head("POST", "/v1/events", extra) + b"ffffffffffffffffff;ext=1\r\nhello\r\n0\r\n\r\n"
    data, closed = exchange(st.ingress_port, raw + smuggled)
    rs = responses(data)
    assert len(rs) == 1 and closed, data
    json_error(rs[0], status, code)


def test_five_thousand_requests_in_one_packet_are_answered_in_order(st):
    """A pipeline of 5,000 /healthz in one write, then one that closes:
    every answer, in order, none dropped at nng's 8 KiB read buffer; then
    HTTP/1.0 with keep-alive gets its answer and the close (nng keeps no
    HTTP/1.0 connection), the request behind it unanswered."""
    s = connect(st.ingress_port, timeout=20)
    try:
        s.sendall(head("GET", "/healthz") * 5000 + OK)
        data, closed = read_all(s, 10)
    finally:
        s.close()
    rs = responses(data)
    assert len(rs) == 5001 and {r[0] for r in rs} == {200} and closed, len(rs)
    data, closed = exchange(st.ingress_port, b"GET /healthz HTTP/1.0\r\nHost: x\r\n"
                            b"Connection: keep-alive\r\n\r\n" + OK)
    assert [r[0] for r in responses(data)] == [200] and closed, data
