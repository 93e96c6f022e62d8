"""test_sim.py - the CI-sized flash sale: onsale-sim drives 2,000 fans for 500
seats through a real ingress, worker, payments and gateway simulator (an
isolated Stack; 30% of reservations check out, 10% of charges decline), then the
invariant audit must pass. Control tests prove the audit can fail: a seat
pointed at a second reservation (held twice), a FIFO inversion and a
position that went up are each reported, with exit status 1."""
import hashlib
import json
import os
import shutil
import subprocess

from harness import BIN, ROOT, Stack


def run_sim(st, base, tmp, fans, seats, *extra):
    out = {k: os.path.join(tmp, f"sim.{k}") for k in ("json", "svg", "log")}
    p = subprocess.run([os.path.join(BIN, "onsale-sim"), "--ingress", base,
                        "--fans", str(fans), "--seats", str(seats),
                        "--burst-ms", "1000", "--tail-seconds", "3", "--seed", "42",
                        "--abandon-prob", "0.4", "--checkout-prob", "0.3",
                        "--json", out["json"], "--svg", out["svg"], "--log", out["log"],
                        "--audit-wait-s", "60", "--max-seconds", "240", "--progress", "false",
                        *extra],
                       env=st.env(), capture_output=True, text=True, timeout=400)
    report = None
    if os.path.exists(out["json"]):
        with open(out["json"]) as f:
            report = json.load(f)
    return p, report, out


def audit(st, event, log):
    p = subprocess.run([os.path.join(BIN, "onsalectl"), "audit", "--event", str(event),
                        "--sim-log", log],
                       env=st.env(audit_wait_s=5), capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def check_line(output, name):
    """The audit's line for invariant name, e.g. '  FAIL  seats_count ...'."""
    for line in output.splitlines():
        parts = line.split()
        if len(parts) > 1 and parts[1] == name:
            return line
    raise AssertionError(f"no {name} line in:\n{output}")


def test_ci_flash_sale_passes_the_audit(tmp_path):
    with Stack(partitions=2) as st:
        gw_port = st.start_payments_path()
        st.start_worker()
        base = st.start_ingress()
        p, r, out = run_sim(st, base, str(tmp_path), 2000, 500,
                            "--gateway-url", f"http://127.0.0.1:{gw_port}",
                            "--gateway-decline-rate", "0.1")
        assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
        assert r is not None
        assert r["audit"]["passed"] and r["audit"]["violations"] == 0, r["audit"]
        names = {c["name"]: c for c in r["audit"]["checks"]}
        for n in ("seats_live", "seats_count", "capacity", "accepted_reached", "positions",
                  "fifo", "charges", "kafka_applied"):
            assert names[n]["status"] == "ok", names[n]
        assert names["accepted_reached"]["checked"] == r["joins"]["accepted"]
        # every fan joined (or, as the fan page does, stopped at a first view
        # that said sold out); the queue had room for all of them
        assert r["joins"]["sent"] + r["sold_out_views"] == 2000
        assert r["joins"]["accepted"] + r["joins"]["refused"] == 2000
        assert r["joins"]["accepted"] > 1900, r["joins"]
        # seats were handed out, never more than the event has at once
        assert r["reserved"] > 0 and r["outcomes"]["error"] == 0, r
        # checkout worked end to end: tickets were bought and charges reconcile
        assert r["checkout"]["status"] != "not_available", r["checkout"]
        assert r["outcomes"]["purchased"] > 0, r["outcomes"]
        # as the fan page does, each accepted checkout's order is polled
        # from its 202 on (web/fan.js pollOrder)
        assert r["checkout"]["order_polls"] >= r["outcomes"]["purchased"], r["checkout"]
        assert names["charges"]["checked"] > 0, names["charges"]
        held = st.sql("SELECT count(*) FROM seats WHERE event_id = %s AND status <> 'available'",
                      (r["event_id"],))[0][0]
        assert held <= 500
        # nobody was left queued: every accepted intent got an answer
        assert r["outcomes"]["queued"] == 0
        assert r["polls_per_fan"] > 0 and r["join_latency_ms"]["samples"] >= 2000
        # joins (and each page's first view) went on the arrivals' lane, the
        # joined fans' polls, refreshes and checkouts on their own
        lanes = r["lanes"]
        assert lanes["arrive"]["sent"] >= 2 * 2000 and lanes["fan"]["sent"] >= r["polls"], lanes
        # the ETA each queued fan was first shown is compared with when it left
        # the queue (issue 10's ETA error; the figure itself is a benchmark's)
        ee = r["eta_error"]
        assert ee is not None and 0 < ee["fans"] <= r["joins"]["accepted"], ee
        assert 0 <= ee["p50_abs_ms"] <= ee["p90_abs_ms"] and 0 <= ee["p50_rel"] <= ee["p90_rel"], ee
        # measured to the moment the answer says the fan left the queue
        # (left_queue_at), or to a window for a fan told sold out by ingress
        assert 0 < ee["exact_fans"] <= ee["fans"] and ee["window_p50_ms"] >= 0, ee
        assert ee["seen_p50_rel"] <= ee["seen_p90_rel"], ee
        assert "ETA error" in p.stdout, p.stdout[-2000:]
        # each fan's page loaded the event view on arrival (and refreshed it
        # every 5 s or the view's refresh_after_ms while waiting), and it answered
        assert r["event_views"] >= 2000 and r["event_view_errors"] == 0, r
        assert r["event_view_latency_ms"]["samples"] >= 2000
        assert os.path.getsize(out["svg"]) > 500
        with open(out["log"]) as f:
            assert sum(1 for line in f if not line.startswith("#")) >= r["joins"]["accepted"]


def test_fans_arriving_after_the_sell_out_stop_at_the_page(tmp_path):
    """The fan page ends a visit whose first event view says sold out
    (web/fan.js renderJoinable): the simulator's late fans must not join."""
    with Stack(partitions=2) as st:
        gw_port = st.start_payments_path()
        st.start_worker()
        base = st.start_ingress(event_view_ttl_ms=200)
        p, r, out = run_sim(st, base, str(tmp_path), 60, 5,
                            "--gateway-url", f"http://127.0.0.1:{gw_port}",
                            "--burst-fraction", "0.2", "--burst-ms", "200",
                            "--tail-seconds", "8", "--checkout-prob", "1",
                            "--abandon-prob", "0", "--max-quantity", "1")
        assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
        assert r["audit"]["passed"], r["audit"]
        assert r["outcomes"]["purchased"] == 5, r["outcomes"]
        assert r["sold_out_views"] > 0, r
        assert r["joins"]["sent"] + r["sold_out_views"] == 60, r["joins"]
        assert r["outcomes"]["sold_out"] == 55, r["outcomes"]


def test_a_join_key_still_claimed_is_tried_again(tmp_path):
    """A join's Idempotency-Key can stay claimed after its request ended:
    a claimer round that timed out on a slow Redis answers 503, and its
    pipelined SET NX, still unread in Redis's socket, lands after the
    release (a 200,000-fan e2e refused 28 fans that way). The retry is
    answered 409 idempotency_in_progress with Retry-After until the
    claim's idem.inflight_ttl_s runs out; the fan page and the simulator
    retry such an answer (web/api.js ApiError.transient) instead of giving
    the fan up. Here half the fans' keys are claimed for 3 s before they
    join, with the record their own join would write."""
    fans, stuck, user_base = 10, 5, 7_310_000_000
    with Stack(partitions=2) as st:
        st.start_worker()
        base = st.start_ingress()
        ev = st.create_event(sections=(("A", 1, fans, 5000),))
        body = b'{"quantity":1}'
        h = hashlib.sha256(b"join:%d\0" % ev + body).hexdigest()
        for u in range(user_base, user_base + stuck):
            assert st.redis.set(st.key(f"idem:{u}:join-{u}-{ev}"),
                                json.dumps({"h": h, "s": 0}, separators=(",", ":")), ex=3)
        p, r, _ = run_sim(st, base, str(tmp_path), fans, fans, "--event", str(ev),
                          "--user-base", str(user_base), "--max-quantity", "1",
                          "--non-adjacent-prob", "0", "--checkout-prob", "0",
                          "--abandon-prob", "0")
        assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
        # the control: the claimed keys were met (the old simulator refused
        # each of these fans here)
        assert r["joins"]["by_code"].get("409 idempotency_in_progress", 0) >= stuck, r["joins"]
        assert r["outcomes"]["refused"] == 0, r["outcomes"]
        assert r["joins"]["accepted"] == fans, r["joins"]
        assert r["outcomes"]["kept"] == fans, r["outcomes"]
        assert r["audit"]["passed"], r["audit"]


def test_audit_catches_violations(tmp_path):
    """Control: the audit must fail on a corrupted copy of a clean sale."""
    with Stack(partitions=1) as st:
        st.start_worker()
        base = st.start_ingress()
        # no payments path here: fans keep their holds (no checkout) so
        # the corruptions below have held seats to work on
        p, r, out = run_sim(st, base, str(tmp_path), 300, 100, "--abandon-prob", "0",
                            "--checkout-prob", "0", "--max-quantity", "2")
        assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
        ev = r["event_id"]
        rc, text = audit(st, ev, out["log"])
        assert rc == 0, text
        for proc in st.procs:
            proc.stop()

        # 0. every reservation names the seats that hold it (seat_nos, which
        # the poll from PostgreSQL reads); one naming a seat it does not
        # hold fails seats_count
        named = st.sql("SELECT r.reservation_id, r.seat_nos, "
                       "(SELECT array_agg(seat_no ORDER BY seat_no) FROM seats s "
                       " WHERE s.event_id = r.event_id AND s.reservation_id = r.reservation_id) "
                       "FROM reservations r WHERE r.event_id = %s", (ev,))
        assert named and all(nos is not None and sorted(nos) == held for _, nos, held in named)
        # the migration's backfill (for reservations written before it)
        # names the same seats
        with open(os.path.join(ROOT, "schemas", "migrations", "0018_reservation_seats.sql")) as f:
            backfill = f.read().split("ADD COLUMN seat_nos integer[];", 1)[1]
        st.sql("UPDATE reservations SET seat_nos = NULL WHERE event_id = %s", (ev,))
        st.sql(backfill)
        assert sorted(st.sql("SELECT reservation_id, seat_nos FROM reservations "
                             "WHERE event_id = %s", (ev,))) == sorted((r, h) for r, _, h in named)
        rid, nos, _ = named[0]
        st.sql("UPDATE reservations SET seat_nos = %s WHERE reservation_id = %s",
               (nos[1:] + [max(nos) + 100000], rid))
        rc, text = audit(st, ev, out["log"])
        assert rc == 1 and "FAIL" in check_line(text, "seats_count"), text
        st.sql("UPDATE reservations SET seat_nos = %s WHERE reservation_id = %s", (nos, rid))
        rc, text = audit(st, ev, out["log"])
        assert rc == 0, text

        # 0b. a purchase of two whose first ticket was cancelled before 0018
        # (its seat given back): the backfill names the seat it still holds,
        # and seats_count accepts it
        rid, held = next((r, h) for r, _, h in named if len(h) == 2)
        st.sql("UPDATE reservations SET state = 'purchased', seat_nos = NULL "
               "WHERE reservation_id = %s", (rid,))
        st.sql("UPDATE seats SET status = 'available', reservation_id = NULL "
               "WHERE event_id = %s AND seat_no = %s", (ev, held[0]))
        st.sql("UPDATE seats SET status = 'sold' WHERE event_id = %s AND seat_no = %s",
               (ev, held[1]))
        st.sql(backfill)
        assert st.sql("SELECT seat_nos FROM reservations WHERE reservation_id = %s",
                      (rid,))[0][0] == [held[1]]
        rc, text = audit(st, ev, out["log"])
        assert "ok" in check_line(text, "seats_count").split()[0], text

        # 1. a seat held twice: one of A's seats now names B's reservation
        a, b = st.sql("SELECT reservation_id FROM reservations WHERE event_id = %s "
                      "AND state = 'held' ORDER BY reservation_id LIMIT 2", (ev,))
        st.sql("UPDATE seats SET reservation_id = %s WHERE event_id = %s AND seat_no = "
               "(SELECT min(seat_no) FROM seats WHERE event_id = %s AND reservation_id = %s)",
               (b[0], ev, ev, a[0]))
        rc, text = audit(st, ev, out["log"])
        assert rc == 1, text
        assert "FAIL" in check_line(text, "seats_count"), text
        assert "ok" in check_line(text, "fifo").split()[0]

        # 2. FIFO: the earliest grant of a request class is moved after a later one
        rows = st.sql("SELECT i.intent_seq FROM intents i JOIN reservations r "
                      "ON r.reservation_id = i.intent_seq WHERE i.event_id = %s "
                      "AND (i.quantity, i.adjacent) = (SELECT quantity, adjacent FROM intents "
                      "WHERE event_id = %s AND reservation_id IS NOT NULL "
                      "GROUP BY 1, 2 HAVING count(*) > 1 LIMIT 1) "
                      "ORDER BY i.intent_seq", (ev, ev))
        assert len(rows) >= 2
        st.sql("UPDATE reservations SET created_at = (SELECT max(created_at) FROM reservations "
               "WHERE event_id = %s) + interval '1 second' WHERE reservation_id = %s",
               (ev, rows[0][0]))
        rc, text = audit(st, ev, out["log"])
        assert rc == 1 and "FAIL" in check_line(text, "fifo"), text

        # 3. a position that went up, in a copy of the sim log
        bad_log = os.path.join(str(tmp_path), "bad.log")
        shutil.copy(out["log"], bad_log)
        with open(out["log"]) as f:
            first = next(l for l in f if not l.startswith("#") and l.split("\t")[3] == "queued")
        fan, iid, t, _, pos = first.rstrip("\n").split("\t")
        with open(bad_log, "a") as f:
            f.write(f"{fan}\t{iid}\t{int(t) + 1}\tqueued\t{int(pos) + 50}\n")
        rc, text = audit(st, ev, bad_log)
        assert rc == 1 and "FAIL" in check_line(text, "positions"), text

        # 4. an accepted intent the database never heard of (never applied)
        with open(bad_log, "a") as f:
            f.write(f"{fan}\t{'0' * 6}{'ff' * 5}{'0' * 16}\t{int(t) + 2}\tqueued\t0\n")
        rc, text = audit(st, ev, bad_log)
        assert rc == 1 and "FAIL" in check_line(text, "accepted_reached"), text
