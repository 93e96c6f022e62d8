"""test_pg_connection_loss.py - every process survives PostgreSQL closing its
sessions (common/pg).

Ingress (job threads, monitor, the read-replica reader: pg.read_dsn points
at the primary here, which counts as a fresh replica), the worker and
onsale-payments each hold PostgreSQL sessions opened through common/pg,
which names them (fallback_application_name) and reconnects with backoff. A fan buys a
ticket; then every session of the test's database is terminated
(pg_terminate_backend, what a PostgreSQL restart or failover does to
clients); a second fan buys one through the same processes. Nothing
restarts, no process dies, the second purchase completes (a client retries
a 5xx as it would anyway), ticket history is read from the "replica" again,
and each process logs its reconnect once."""
import re
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Stack  # noqa: E402
from test_checkout import Env  # noqa: E402


def sessions(st):
    """application_name -> sessions on this Stack's database (ours excluded)."""
    return dict(st.sql("SELECT application_name, count(*) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                       "GROUP BY 1"))


def terminate_sessions(st):
    return st.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                  "WHERE datname = current_database() AND pid <> pg_backend_pid()")[0][0]


def until_not_5xx(call, timeout=20):
    """Calls call() until its status is not a 5xx (a client's retry)."""
    deadline = time.time() + timeout
    while True:
        r = call()
        if r[0] < 500 or time.time() > deadline:
            return r
        time.sleep(0.2)


def buy(env, user, ev):
    """Join, wait for the hold, check out, wait until paid."""
    st, fan = env.st, env.st.token(user, "fan")
    s, _, b = until_not_5xx(lambda: st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1},
                                            token=fan, headers={"Idempotency-Key": f"j{user}"}))
    assert s == 202, b

    def held():
        p = st.http("GET", b["status_url"], token=fan)[2]
        return p if isinstance(p, dict) and p.get("state") == "reserved" else None
    p = st.wait_for(held, 30, f"user {user} reserved")
    rid = p["reservation"]["reservation_id"]
    s, _, o = until_not_5xx(lambda: env.checkout(user, rid, f"c{user}"))
    assert s == 202, o
    o = env.wait_order(user, o["order_id"])
    assert o["state"] == "paid", o


def replica_reads(st):
    m = re.search(r'onsale_ingress_reads_total\{target="replica"\} (\S+)', st.http("GET", "/metrics")[2])
    return float(m.group(1)) if m else 0.0


def history(st, user):
    s, _, t = st.http("GET", "/v1/me/tickets", token=st.token(user, "fan"))
    return t["tickets"] if s == 200 else None


def test_every_process_survives_its_sessions_being_terminated(monkeypatch):
    with Stack(partitions=2) as st:
        monkeypatch.setenv("ONSALE_PG_READ_DSN", st.env()["ONSALE_PG_DSN"])
        env = Env(st)
        ev = st.create_event(sections=[("A", 2, 10, 5000)])
        buy(env, 5, ev)
        assert len(history(st, 5)) == 1 and replica_reads(st) >= 1

        # Each process's sessions carry its name (a DSN's application_name
        # would win; the harness sets none).
        def named():
            n = sessions(st)
            return n if {"onsale-worker", "onsale-payments"} <= set(n) and any(
                a.startswith("ingress job thread") for a in n) and {
                    "ingress monitor", "ingress replica reader"} <= set(n) else None
        names = st.wait_for(named, 20, "every process's named session")
        assert terminate_sessions(st) >= sum(names.values()) - 1

        buy(env, 6, ev)
        # The replica reader finds its session gone, reads from the primary
        # meanwhile, reconnects on a later freshness check and is read again.
        before = replica_reads(st)
        st.wait_for(lambda: history(st, 6) and replica_reads(st) > before, 20,
                    "ticket history read from the replica again", interval=0.2)
        for p in st.procs:
            assert p.alive(), f"{p.name} died: {p.log_path}"
        assert st.sql("SELECT count(*) FROM tickets WHERE status = 'valid'")[0][0] == 2
        # Every process that lost its session opened a new one, and said so once.
        st.wait_for(lambda: named(), 20, "sessions back")
        for name in ("worker", "payments", "ingress"):
            out = "".join(p.output() for p in st.procs if p.name == name)
            assert "postgres connected again" in out, f"{name} did not reconnect"
        ingress = "".join(p.output() for p in st.procs if p.name == "ingress")
        # (the replica reader that read before may not be the one that reads
        # after: each job thread has its own; the reads above show it back)
        for who in ("ingress job thread", "ingress monitor"):
            assert re.search(who + r"[^\"]*: postgres connected again", ingress), who
        st.wait_for(lambda: st.http("GET", "/healthz")[0] == 200, 20, "healthz")



def test_the_order_poll_answers_the_same_before_and_after_its_sessions_end():
    """GET /v1/orders/{id} runs statements each job thread prepares once per
    session (ingress/pg_row.c ing_pg_prepared_i64). A paid order of two
    seats is polled on every job thread, their sessions are terminated, and
    the polls on the new sessions (prepared again; a 5xx while a thread
    reconnects is retried as a client would) answer exactly as before; so
    do they after a migration changes a column type under the statements."""
    with Stack(partitions=2) as st:
        env = Env(st, ingress={"pool_threads": 3})
        ev = st.create_event(sections=[("A", 2, 10, 5000)])
        _, p = env.reserve(7, ev, qty=2)
        s, _, b = env.checkout(7, p["reservation"]["reservation_id"], "order-poll-7")
        assert s == 202, b
        first = env.wait_order(7, b["order_id"])
        assert first["state"] == "paid" and len(first["tickets"]) == 2, first
        assert {t["status"] for t in first["tickets"]} == {"valid"}
        url, fan = f"/v1/orders/{b['order_id']}", st.token(7, "fan")
        # more polls than job threads: each thread prepares on its session
        for _ in range(12):
            assert st.http("GET", url, token=fan)[2] == first
        # another fan's id is still not found (the owner is a parameter)
        assert st.http("GET", url, token=st.token(8, "fan"))[0] == 404
        assert st.sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                      "datname = current_database() AND application_name LIKE "
                      "'ingress job thread%'")[0][0] >= 1
        for _ in range(12):
            s, _, again = until_not_5xx(lambda: st.http("GET", url, token=fan))
            assert s == 200 and again == first, again
        ingress = "".join(p.output() for p in st.procs if p.name == "ingress")
        # A migration changes the type of a column the poll reads while the
        # sessions hold the statement: their cached plans no longer fit
        # (0A000 "cached plan must not change result type"); each is
        # prepared again and the poll answered (500 on every thread before).
        st.sql("ALTER TABLE orders ALTER COLUMN currency TYPE varchar(3)")
        for _ in range(12):
            s, _, again = st.http("GET", url, token=fan)
            assert s == 200 and again == first, again
        ingress = "".join(p.output() for p in st.procs if p.name == "ingress")
        # no prepare failed but for the terminated sessions themselves (a
        # thread that served no poll before meets its dead session there)
        assert not [l for l in ingress.splitlines()
                    if "prepare ing_order" in l and "connection" not in l], ingress[-3000:]
