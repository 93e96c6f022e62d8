#!/usr/bin/python3
"""bench/draw_cost.py - what one GET /v1/events/{id}/draw costs ingress.

Starts ingress on the shared stack through the test harness (its own
database, topic and Redis prefix), makes a pre-queue event whose sale
opens 3 s later, writes ENTRANTS pre-queued intents in SQL (as the
partition owner stores them), waits for the sale to open and asks for the
draw REPEAT times, one after the other, printing each answer's size, wall
time and ingress CPU (/proc/PID/stat utime + stime around the request).

Usage: ONSALE_BUILD_BIN=build/bin bench/draw_cost.py [ENTRANTS] [REPEAT]
"""
import http.client
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
from harness import Stack, iso  # noqa: E402


def cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with Stack(partitions=1) as st:
        st.start_ingress()
        pid = [p for p in st.procs if p.name == "ingress"][-1].pid
        seller = st.token(9000, "seller")
        _, _, v = st.http("POST", "/v1/venues", {"name": "H", "city": "U", "country": "NL",
                          "sections": [{"name": "A", "rows": 1, "seats_per_row": 100}]}, seller)
        now = time.time()
        _, _, e = st.http("POST", "/v1/events", {
            "venue_id": v["venue_id"], "name": "D", "category": "c",
            "starts_at": iso(now + 86400 * 30), "onsale_at": iso(now + 3),
            "prequeue_opens_at": iso(now - 60), "tiers": [{"section": "A", "price_cents": 1000}]},
            seller)
        ev = e["event_id"]
        st.sql("INSERT INTO intents (intent_seq, event_id, user_id, partition, kafka_offset, "
               "quantity, state, accepted_at) SELECT g, %s, g + 1, 0, g, 1, 'queued', "
               "now() - interval '30 seconds' FROM generate_series(0, %s - 1) g", (ev, n))
        time.sleep(max(0.0, now + 3.5 - time.time()))
        for _ in range(repeat):
            c0, t0 = cpu_s(pid), time.time()
            conn = http.client.HTTPConnection("127.0.0.1", st.ingress_port, timeout=60)
            conn.request("GET", f"/v1/events/{ev}/draw")
            r = conn.getresponse()
            body = r.read()
            print(f"entrants={n} status={r.status} bytes={len(body)} "
                  f"wall={time.time() - t0:.3f}s ingress_cpu={cpu_s(pid) - c0:.3f}s")


if __name__ == "__main__":
    main()
