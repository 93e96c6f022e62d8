#!/usr/bin/python3
"""bench/control_cost.py - PostgreSQL's cost per control record (issue 12).

Replays the statements the partition owner's batch transaction runs for
checkouts and for successful payment results (workers/store.c,
workers/checkout_store.c), with the same parameters (unnest() arrays) and
the same planner settings, against a database cloned from the migrated
template, and prints each statement's backend CPU per record (the backend's
/proc/PID/schedstat: run it on the database's host).

The sale: one event of SEATS seats; BUYERS fans hold 1-4 seats each
(reserved intents, held reservations, held seats), as the e2e's first
buyers do. Then batches of BATCH checkouts (intents, reservations and
seats to paying; orders, order_items, outbox rows inserted), each followed
by the batch of their payment results (orders paid, intents purchased,
reservations purchased, seats sold, tickets inserted). Each batch is one
transaction, committed.

Usage: bench/control_cost.py [--seats 50000] [--buyers 20000] [--batch 1000]
                             [--template DB] [--keep]
Needs the stack's PostgreSQL (ONSALE_PG_PORT, default 15432).
"""
import argparse, os, random, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
import harness  # noqa: E402
import psycopg2  # noqa: E402


def arr(xs):
    return "{" + ",".join("NULL" if x is None else str(x) for x in xs) + "}"


def setup(cur, seats, buyers, rng):
    cur.execute("INSERT INTO venues (venue_id, owner_id, name, city, country, capacity) "
                "VALUES (1, 1, 'Hall', 'Utrecht', 'NL', %s)", (seats,))
    rows = (seats + 999) // 1000
    cur.execute("INSERT INTO sections (section_id, venue_id, name, position, rows, seats_per_row) "
                "VALUES (1, 1, 'A', 0, %s, 1000)", (rows,))
    cur.execute("INSERT INTO events (event_id, venue_id, seller_id, name, category, starts_at, seats_total) "
                "VALUES (1, 1, 1, 'Sale', 'concert', now() + interval '30 days', %s)", (seats,))
    cur.execute("INSERT INTO price_tiers VALUES (1, 1, 1000)")
    cur.execute("INSERT INTO seats (event_id, seat_no, section_id, row_no, seat_in_row, price_cents) "
                "SELECT 1, g, 1, g / 1000 + 1, g %% 1000 + 1, 1000 FROM generate_series(0, %s - 1) g",
                (seats,))
    holds, seat = [], 0
    for i in range(buyers):
        q = 1 + rng.randrange(4)
        if seat + q > seats:
            break
        seq = i  # partition 0, offset i
        holds.append((seq, 1000 + i, list(range(seat, seat + q))))
        seat += q
    cur.execute("INSERT INTO intents (intent_seq, event_id, user_id, partition, kafka_offset, quantity, "
                "state, reservation_id, accepted_at) "
                "SELECT u.s, 1, u.usr, 0, u.s, u.q, 'reserved', u.s, now() "
                "FROM unnest(%s::bigint[], %s::bigint[], %s::int[]) AS u(s, usr, q)",
                (arr(h[0] for h in holds), arr(h[1] for h in holds), arr(len(h[2]) for h in holds)))
    cur.execute("INSERT INTO reservations (reservation_id, event_id, user_id, state, seat_count, "
                "total_cents, currency, expires_at) "
                "SELECT u.s, 1, u.usr, 'held', u.q, u.q * 1000, 'USD', now() + interval '15 minutes' "
                "FROM unnest(%s::bigint[], %s::bigint[], %s::int[]) AS u(s, usr, q)",
                (arr(h[0] for h in holds), arr(h[1] for h in holds), arr(len(h[2]) for h in holds)))
    cur.execute("UPDATE seats s SET status = 'held', reservation_id = u.rid "
                "FROM unnest(%s::int[], %s::bigint[]) AS u(no, rid) WHERE s.event_id = 1 AND s.seat_no = u.no",
                (arr(n for h in holds for n in h[2]), arr(h[0] for h in holds for _ in h[2])))
    return holds


# The statements, as workers/store.c and workers/checkout_store.c send them.
UPDATE_INTENTS = ("UPDATE intents i SET state = u.state, reason = u.reason, "
                  "reservation_id = u.rid, updated_at = now() "
                  "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::bigint[]) "
                  "AS u(seq, state, reason, rid) WHERE i.intent_seq = u.seq")
UPDATE_RES = ("UPDATE reservations r SET state = u.state, updated_at = now() "
              "FROM unnest(%s::bigint[], %s::text[]) AS u(rid, state) "
              "WHERE r.reservation_id = u.rid")
UPDATE_SEATS = ("UPDATE seats s SET status = u.st, reservation_id = u.rid "
                "FROM unnest(%s::bigint[], %s::int[], %s::text[], %s::bigint[]) "
                "AS u(ev, no, st, rid) WHERE s.event_id = u.ev AND s.seat_no = u.no")
INSERT_ORDERS = ("INSERT INTO orders (order_id, reservation_id, user_id, event_id, state, "
                 "total_cents, currency, failure_reason, gateway_charge_id) "
                 "SELECT u.oid, u.rid, u.usr, u.ev, u.st, u.total, u.cur, u.why, u.ch "
                 "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], "
                 "%s::text[], %s::bigint[], %s::text[], %s::text[], %s::text[]) "
                 "AS u(oid, rid, usr, ev, st, total, cur, why, ch) "
                 "JOIN reservations r ON r.reservation_id = u.rid AND r.user_id = u.usr "
                 "ON CONFLICT (order_id) DO NOTHING")
INSERT_ITEMS = ("INSERT INTO order_items (order_id, event_id, seat_no, price_cents) "
                "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::int[], %s::bigint[]) "
                "ON CONFLICT DO NOTHING")
UPDATE_ORDERS = ("UPDATE orders o SET state = u.st, "
                 "failure_reason = coalesce(u.why, o.failure_reason), "
                 "gateway_charge_id = coalesce(u.ch, o.gateway_charge_id), "
                 "updated_at = now() "
                 "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) "
                 "AS u(oid, st, why, ch) WHERE o.order_id = u.oid AND o.state <> 'paid'")
INSERT_TICKETS = ("INSERT INTO tickets (ticket_id, event_id, seat_no, order_id, owner_id, "
                  "status, price_cents, code_version) SELECT * FROM unnest(%s::bigint[], "
                  "%s::bigint[], %s::int[], %s::bigint[], %s::bigint[], %s::text[], "
                  "%s::bigint[], %s::int[])")
INSERT_OUTBOX = ("INSERT INTO outbox (kind, order_id, reservation_id, event_id, ticket_id, "
                 "amount_cents, currency, payment_method, charge_id, idempotency_key) "
                 "SELECT u.kind, u.oid, CASE WHEN u.rid < 0 THEN o.reservation_id ELSE u.rid END, "
                 "u.ev, nullif(u.tid, 0), u.amt, u.cur, u.pm, "
                 "coalesce(u.ch, o.gateway_charge_id), u.key "
                 "FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], "
                 "%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::bool[]) "
                 "AS u(kind, oid, rid, ev, tid, amt, cur, pm, ch, key, unless_paid) "
                 "JOIN orders o ON o.order_id = u.oid "
                 "WHERE NOT (u.unless_paid AND (o.state = 'paid' OR EXISTS (SELECT 1 FROM outbox v "
                 "  WHERE v.idempotency_key = 'refund-cancel-' || u.oid))) "
                 "ON CONFLICT (idempotency_key) DO NOTHING")

CONTROL_BIT = 1 << 39


def checkout_batch(hs):
    oid = [h[0] | CONTROL_BIT for h in hs]  # stand-in for the checkout's own place in the log
    seats = [(h, n) for h in hs for n in h[2]]
    return [
        ("update intents", UPDATE_INTENTS,
         (arr(h[0] for h in hs), arr("paying" for _ in hs), arr("NULL" for _ in hs), arr(h[0] for h in hs))),
        ("update reservations", UPDATE_RES, (arr(h[0] for h in hs), arr("paying" for _ in hs))),
        ("update seats", UPDATE_SEATS,
         (arr(1 for _ in seats), arr(n for _, n in seats), arr("paying" for _ in seats), arr(h[0] for h, _ in seats))),
        ("insert orders", INSERT_ORDERS,
         (arr(oid), arr(h[0] for h in hs), arr(h[1] for h in hs), arr(1 for _ in hs),
          arr("pending" for _ in hs), arr(1000 * len(h[2]) for h in hs), arr("USD" for _ in hs),
          arr("NULL" for _ in hs), arr("NULL" for _ in hs))),
        ("insert order items", INSERT_ITEMS,
         (arr(h[0] | CONTROL_BIT for h, _ in seats), arr(1 for _ in seats), arr(n for _, n in seats),
          arr(1000 for _ in seats))),
        ("insert outbox", INSERT_OUTBOX,
         (arr("charge" for _ in hs), arr(oid), arr(h[0] for h in hs), arr(1 for _ in hs), arr(0 for _ in hs),
          arr(1000 * len(h[2]) for h in hs), arr("USD" for _ in hs), arr("card" for _ in hs),
          arr("NULL" for _ in hs), arr(f"order-{o}" for o in oid), arr("f" for _ in hs))),
    ]


def payment_batch(hs):
    oid = [h[0] | CONTROL_BIT for h in hs]
    seats = [(h, i, n) for h in hs for i, n in enumerate(h[2])]
    return [
        ("update orders", UPDATE_ORDERS,
         (arr(oid), arr("paid" for _ in hs), arr("NULL" for _ in hs), arr(f"ch_{o}" for o in oid))),
        ("insert tickets", INSERT_TICKETS,
         (arr((h[0] | CONTROL_BIT) * 16 + i + 1 for h, i, _ in seats), arr(1 for _ in seats),
          arr(n for _, _, n in seats), arr(h[0] | CONTROL_BIT for h, _, _ in seats),
          arr(h[1] for h, _, _ in seats), arr("valid" for _ in seats), arr(1000 for _ in seats),
          arr(0 for _ in seats))),
        ("update intents", UPDATE_INTENTS,
         (arr(h[0] for h in hs), arr("purchased" for _ in hs), arr("NULL" for _ in hs), arr(h[0] for h in hs))),
        ("update reservations", UPDATE_RES, (arr(h[0] for h in hs), arr("purchased" for _ in hs))),
        ("update seats", UPDATE_SEATS,
         (arr(1 for _ in seats), arr(n for _, _, n in seats), arr("sold" for _ in seats),
          arr(h[0] for h, _, _ in seats))),
    ]


def backend_cpu_s(conn):
    """The on-CPU time of conn's backend so far (its schedstat, in ns): a
    statement's own cost, whatever else the box runs meanwhile."""
    with open(f"/proc/{conn.get_backend_pid()}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


def run_batch(conn, stmts, totals, explain=False):
    """Runs one batch transaction; totals[what] sums each statement's
    backend CPU. Returns the batch's backend CPU."""
    cur = conn.cursor()
    if explain:
        # every statement's plan, the triggers' own queries too
        cur.execute("LOAD 'auto_explain'")
        cur.execute("SET auto_explain.log_min_duration = 0")
        cur.execute("SET auto_explain.log_analyze = on")
        cur.execute("SET auto_explain.log_nested_statements = on")
        cur.execute("SET client_min_messages = log")
    t0 = backend_cpu_s(conn)
    cur.execute("SET LOCAL enable_hashjoin = off")
    cur.execute("SET LOCAL enable_mergejoin = off")
    for what, sql, params in stmts:
        t = backend_cpu_s(conn)
        cur.execute(sql, params)
        totals[what] = totals.get(what, 0.0) + backend_cpu_s(conn) - t
    t = backend_cpu_s(conn)
    conn.commit()
    totals["commit"] = totals.get("commit", 0.0) + backend_cpu_s(conn) - t
    spent = backend_cpu_s(conn) - t0
    if explain:
        cur.execute("SET client_min_messages = notice")
        cur.execute("SET auto_explain.log_min_duration = -1")
        conn.commit()
        for m in conn.notices:
            print(m.rstrip())
        del conn.notices[:]
    return spent


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seats", type=int, default=50000)
    ap.add_argument("--buyers", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--template", default=None, help="the migrated template (default: the harness's)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--explain", action="store_true",
                    help="print the plans (auto_explain, the triggers queries too) of the middle batch pair")
    args = ap.parse_args()
    tpl = args.template or harness.template_db()
    db = f"control_cost_{os.getpid()}"
    admin = psycopg2.connect(harness.pg_dsn("postgres"))
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{db}" TEMPLATE "{tpl}"')
    conn = None
    try:
        conn = psycopg2.connect(harness.pg_dsn(db))
        rng = random.Random(12)
        with conn, conn.cursor() as cur:
            holds = setup(cur, args.seats, args.buyers, rng)
        conn.cursor().execute("ANALYZE")
        conn.commit()
        co, pay = {}, {}
        co_s = pay_s = 0.0
        n = 0
        for i in range(0, len(holds), args.batch):
            hs = holds[i:i + args.batch]
            ex = args.explain and i == (len(holds) // args.batch // 2) * args.batch
            co_s += run_batch(conn, checkout_batch(hs), co, ex)
            pay_s += run_batch(conn, payment_batch(hs), pay, ex)
            n += len(hs)
        nseats = sum(len(h[2]) for h in holds[:n])
        print(f"template {tpl}: {n} orders ({nseats} seats) in batches of {args.batch}")
        for name, tot, secs in (("checkout", co, co_s), ("payment result", pay, pay_s)):
            print(f"{name}: {secs / n * 1e6:.0f} us a record (backend CPU of the batch transaction)")
            for what, s in tot.items():
                print(f"  {what:22s} {s / n * 1e6:7.1f} us a record")
    finally:
        if conn:
            conn.close()
        if not args.keep:
            admin.cursor().execute(f'DROP DATABASE "{db}"')
        else:
            print(f"kept database {db}")


if __name__ == "__main__":
    main()
