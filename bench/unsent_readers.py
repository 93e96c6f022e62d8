#!/usr/bin/env python3
"""unsent_readers.py - clients that ask for a large answer and never read it
(docs/http-edge.md "Answers nobody reads"). Starts a private stack from
ONSALE_BUILD_BIN (tests/integration/harness.py), a pre-queue event whose
public draw list (GET /v1/events/{id}/draw) has ENTRANTS entries, one
ingress (extra options as name=value arguments), then opens CONNS
connections (SO_RCVBUF 4 KiB) that each send that GET and never read, and
prints ingress's RSS as they come and what a well-behaved client gets
meanwhile (a small GET, the same draw read whole). Stops by itself.

    ONSALE_BUILD_BIN=build/bin bench/unsent_readers.py 100000 200 [http_send_buffer=65536 ...]
"""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
from harness import Stack  # noqa: E402
from test_hostile_costs import draw_event  # noqa: E402


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def kernel_queued(port):
    """Bytes in the kernel's send queues of ingress's client sockets
    (/proc/net/tcp tx_queue of the sockets whose local port is port)."""
    total = 0
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == port and f[3] == "01":  # ESTABLISHED
            total += int(f[4].split(":")[0], 16)
    return total


def get(port, path, timeout=10.0):
    """(status, body bytes, seconds) of one GET on a new connection."""
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    data = b""
    try:
        while True:
            k = s.recv(1 << 16)
            if not k:
                break
            data += k
    except OSError:
        pass
    s.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, data.split(b"\r\n\r\n", 1)[-1], time.monotonic() - t0


def hostile(port, path):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return s


def main():
    entrants, conns = int(sys.argv[1]), int(sys.argv[2])
    opts = dict(a.split("=", 1) for a in sys.argv[3:])
    with Stack(partitions=1) as st:
        st.start_ingress(**opts)
        pid = [p for p in st.procs if p.name == "ingress"][-1].pid
        port = st.ingress_port
        ev, opens = draw_event(st, entrants)
        time.sleep(max(0.0, opens + 0.3 - time.time()))
        path = f"/v1/events/{ev}/draw"
        s0, body, secs = get(port, path)
        print(f"draw: {s0}, {len(body)} bytes, {secs:.3f} s; RSS {rss_kb(pid)} kB")
        held = []
        for i in range(conns):
            held.append(hostile(port, path))
            if (i + 1) % max(1, conns // 10) == 0:
                time.sleep(0.2)
                a = get(port, "/healthz")
                b = get(port, path)
                print(f"{i + 1:5d} never-reading: RSS {rss_kb(pid):7d} kB; healthz {a[0]} "
                      f"{a[2]:.3f} s; draw {b[0]} {len(b[1])} B {b[2]:.3f} s", flush=True)
        time.sleep(1.0)
        print(f"after 1 s: RSS {rss_kb(pid)} kB; kernel send queues of ingress's sockets "
              f"{kernel_queued(port) // 1024} kB")
        m = get(port, "/metrics")[1].decode(errors="replace")
        for line in m.splitlines():
            if "unsent" in line or "send_stall" in line:
                print(line)
        answers = {}
        for s in held:
            s.settimeout(2.0)
            try:
                first = s.recv(16)
            except OSError:
                first = b""
            code = first[9:12].decode() if first.startswith(b"HTTP/1.1 ") else "none"
            answers[code] = answers.get(code, 0) + 1
            s.close()
        print("never-reading clients' status lines:", json.dumps(answers))


if __name__ == "__main__":
    main()
