"""Growing the topics under a running sale (docs/scaling.md "Growing the
topics"): `kafka-topics.sh --alter --partitions N` on the intents topic and
its control lane while ingress and workers run, one ingress restarted (so
two nodes disagree on the count) and a second worker started for the new
partitions.

Before: records were keyed by event and placed by librdkafka's murmur2 over
the node's partition count, so once a node knew the new count an event's
records went to another partition than before, owned by another partition
memory: two writers for one event (each with its own copy of the seats),
FIFO broken across the two partitions. Now every event has a home
partition, fixed when it is created (events.partitions, migration 0020),
and every record of the event is produced to it: growing the topics moves
no event. Control (the hazard is real): the same scenario against the
binaries before the change (ONSALE_BUILD_BIN=<main's build>/bin) fails the
one-partition-per-event and FIFO assertions (bench/NOTES.md, "Growing the
topics")."""
import contextlib
import http.client
import json
import os
import re
import subprocess
import urllib.request

from confluent_kafka.admin import AdminClient, NewPartitions

import psycopg2

from harness import BIN, Stack, create_event_via_api, exchange, free_port, make_token, pg_dsn
from worker_util import audit, intent

SEATS = 6  # per event
FANS = 14  # per event, one seat each: the first SEATS accepted hold them


def murmur2_partition(key, n):
    """Kafka's (and librdkafka's murmur2_random) partition of a key."""
    data = key.encode()
    m, r, length = 0x5BD1E995, 24, len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = length % 4
    tail = data[length - rest:]
    if rest == 3:
        h ^= tail[2] << 16
    if rest >= 2:
        h ^= tail[1] << 8
    if rest >= 1:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % n


def join(st, port, user, ev):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    return exchange(conn, "POST", f"/v1/events/{ev}/intents", {"quantity": 1},
                    make_token(user, "fan", st.secret),
                    headers={"Idempotency-Key": f"grow-{ev}-{user}"})


def grow(st, n):
    admin = AdminClient({"bootstrap.servers": st.brokers})
    fut = admin.create_partitions([NewPartitions(t, n) for t in (st.topic, st.control_topic)])
    for f in fut.values():
        f.result(30)


def misrouted(port):
    """The worker's count of records fenced as not of their event's home."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    m = re.search(r'^onsale_worker_poison_records_total\{reason="misrouted"\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def ids_partition(st, ev):
    (p,), = st.sql("SELECT DISTINCT intent_seq >> 40 FROM intents WHERE event_id = %s", (ev,))
    return p


def onsalectl_audit(st):
    p = subprocess.run([os.path.join(BIN, "onsalectl"), "audit"], env=st.env(audit_wait_s=10),
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def checkout(st, port, iid, tok):
    """Checks out intent iid's reservation (once it is reserved): the order id."""
    p = st.wait_for(lambda: (lambda b: b if b.get("state") == "reserved" else None)(
        exchange(http.client.HTTPConnection("127.0.0.1", port, timeout=30), "GET",
                 f"/v1/intents/{iid}", None, tok)[2]), 30, f"{iid} reserved")
    rid = p["reservation"]["reservation_id"]
    s, _, b = exchange(http.client.HTTPConnection("127.0.0.1", port, timeout=30), "POST",
                       f"/v1/reservations/{rid}/checkout", {"payment_method": "pm_card_visa"},
                       tok, headers={"Idempotency-Key": f"pay-{iid}"})
    assert s == 202, (s, b)
    return b["order_id"]


def order_decided(st, port, tok, oid):
    return st.wait_for(lambda: (lambda o: o if o.get("state") not in (None, "pending") else None)(
        exchange(http.client.HTTPConnection("127.0.0.1", port, timeout=30), "GET",
                 f"/v1/orders/{oid}", None, tok)[2]), 30, f"order {oid} decided")


def test_growing_the_topics_mid_sale_moves_no_event():
    with Stack(partitions=2) as st:
        ports = [free_port(), free_port()]
        st.start_worker(name="w1", kafka_session_timeout_ms=6000, metrics_port=ports[0])
        st.start_payments_path()
        st.start_ingress(monitor_interval_ms=200)
        old_port = st.ingress_port
        # Events whose murmur2 partition changes when 2 partitions become 4
        # (the hazard), and one whose does not.
        moved, stays = [], []
        while len(moved) < 3 or not stays:
            ev = st.create_event(sections=[("A", 1, SEATS, 5000)], max_per_user=1)
            (moved if murmur2_partition(str(ev), 2) != murmur2_partition(str(ev), 4)
             else stays).append(ev)
        events = moved[:3] + stays[:1]
        accepted = {ev: [] for ev in events}  # intent ids in the order their 202s came

        first_user, users_of, bodies = {}, {}, []

        def fan(port, user, ev):
            first_user.setdefault(ev, user)
            s, _, b = join(st, port, user, ev)
            assert s == 202, (s, b)
            bodies.append((port, ev, b))
            accepted[ev].append(b["intent_id"])
            users_of[b["intent_id"]] = user

        # The sale runs on 2 partitions: 4 fans an event.
        users = iter(range(1, 10000))
        for _ in range(4):
            for ev in events:
                fan(old_port, next(users), ev)
        # One pays before the growth: the payments relay's producer reads the
        # topics' metadata (2 partitions) and keeps it. Before, a result for
        # an order on a new partition then failed at once (librdkafka knew no
        # such partition, and refreshes every 5 minutes) until that refresh.
        iid = accepted[stays[0]][1]
        tok = make_token(users_of[iid], "fan", st.secret)
        o = order_decided(st, old_port, tok, checkout(st, old_port, iid, tok))
        assert o["state"] == "paid", o
        # The operator grows both topics, restarts one ingress (it now maps
        # events over 4 partitions) and starts a worker for the new ones.
        grow(st, 4)
        st.start_ingress(monitor_interval_ms=200, kafka_partitions=4)
        new_port = st.ingress_port
        st.start_worker(name="w2", kafka_session_timeout_ms=6000, metrics_port=ports[1])
        # New events spread over the new partitions: one made through the
        # restarted node, homed on partition 2 or 3 (its count is 4).
        seller = make_token(1000, "seller", st.secret)
        while True:
            fresh = create_event_via_api(st, seller, SEATS, "after the growth", max_per_user=1)
            if murmur2_partition(str(fresh), 4) >= 2:
                break
        events.append(fresh)
        accepted[fresh] = []
        for _ in range(4):
            fan(new_port, next(users), fresh)
        # The sale goes on through both nodes, one fan at a time.
        for i in range(FANS - 4):
            for ev in events:
                fan(new_port if i % 2 == 0 else old_port, next(users), ev)

        # The first fan of each event (a hold taken before the growth)
        # gives it back: its cancel is produced after the growth, and the
        # seat goes to the first fan waiting.
        for ev in events:
            iid = accepted[ev][0]
            conn = http.client.HTTPConnection("127.0.0.1", new_port, timeout=30)
            s, _, b = exchange(conn, "DELETE", f"/v1/intents/{iid}", None,
                               make_token(first_user[ev], "fan", st.secret))
            assert s in (200, 202), (s, b)
        # A record placed by the key over the grown topics (as a producer
        # without home partitions does) lands on another partition than
        # its event's home: fenced there, never applied.
        stray_p, stray_o = st.produce(moved[0], intent(99999, 1))
        assert stray_p >= 2, stray_p
        # The second fan of an event moved by murmur2 (a hold from before
        # the growth) and of the new one pays: the checkout goes to the
        # event's home, the payment's result to the order's partition.
        paying = {moved[0]: accepted[moved[0]][1], fresh: accepted[fresh][1]}
        orders = {}
        for ev, iid in paying.items():
            tok = make_token(users_of[iid], "fan", st.secret)
            orders[ev] = (tok, checkout(st, new_port, iid, tok))
        paying[stays[0]] = accepted[stays[0]][1]
        total = FANS * len(events)

        def settled():
            return st.sql("SELECT count(*) FROM intents WHERE state IN ('reserved', 'waiting', "
                          "'released', 'purchased')")[0][0] == total and st.sql(
                "SELECT count(*) FROM intents WHERE state = 'released'")[0][0] == len(events)
        try:
            st.wait_for(settled, 30, f"all {total} intents applied, {len(events)} released")
        finally:
            report = st.sql("SELECT event_id, intent_seq >> 40, state, count(*) FROM intents "
                            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
            print("intents by event, partition, state:", report)
        for ev, (tok, oid) in orders.items():
            o = order_decided(st, new_port, tok, oid)
            assert o["state"] == "paid" and len(o["tickets"]) == 1, (ev, o)
        for ev in events:
            rows = st.sql("SELECT intent_seq, state FROM intents WHERE event_id = %s AND "
                          "user_id <> 99999", (ev,))
            by_id = {s: state for s, state in rows}
            ids = [int(i[:16], 16) for i in accepted[ev]]
            # no lost intent: every 202 is an applied intent
            assert sorted(ids) == sorted(by_id), (ev, sorted(ids), sorted(by_id))
            # one writer: every intent of the event in one partition
            assert len({i >> 40 for i in ids}) == 1, (ev, [i >> 40 for i in ids])
            # FIFO: the first fan gave the hold back, the next SEATS hold the seats
            want = ["released"] + ["reserved"] * SEATS + ["waiting"] * (FANS - SEATS - 1)
            if ev in paying:
                want[1] = "purchased"
            assert [by_id[i] for i in ids] == want, (ev, [by_id[i] for i in ids])
            (held,), = st.sql("SELECT count(*) FROM seats WHERE event_id = %s AND status <> "
                              "'available'", (ev,))
            assert held == SEATS, (ev, held)
        assert murmur2_partition(str(fresh), 4) == ids_partition(st, fresh) >= 2
        # The stray join: rejected where it landed (its fan is answered),
        # applied nowhere else.
        assert st.sql("SELECT intent_seq >> 40, state, reason FROM intents WHERE user_id = 99999"
                      ) == [(stray_p, "rejected", "misrouted")]
        doc = st.wait_for(lambda: st.redis.get(st.key(f"r:{(stray_p << 40) | stray_o}")), 10,
                          "the stray join's result")
        assert json.loads(doc)["reason"] == "misrouted", doc
        st.wait_for(lambda: sum(misrouted(p) for p in ports) >= 1, 10, "the stray record fenced")
        assert audit(st) == []
        rc, out = onsalectl_audit(st)
        assert rc == 0, out
        # The node not restarted still answers for an intent on a new
        # partition (it knows the grown count from its monitor).
        s, _, b = exchange(http.client.HTTPConnection("127.0.0.1", old_port, timeout=30), "GET",
                           f"/v1/intents/{accepted[fresh][0]}", None,
                           make_token(first_user[fresh], "fan", st.secret))
        assert (s, b.get("state")) == (200, "released"), (s, b)
        # It tells no position or ETA for an intent on a partition it does
        # not watch (its cursors and watermarks cover the first 2); before,
        # the raw log offset was given as the position. The restarted node
        # does.
        for port, ev, b in bodies:
            placed = ev != fresh or port == new_port
            assert ("position" in b and "eta_seconds" in b) == placed, (port, ev, b)
            assert b["state"] == "queued" and b["status_url"], b
            # and, unplaced, no fast polls: it learns the place only once
            # restarted (status.poll_max_ms, 10 s by default)
            assert placed or b["poll_after_ms"] == 10000, b
        iid = accepted[fresh][-1]
        s, _, b = exchange(http.client.HTTPConnection("127.0.0.1", old_port, timeout=30), "GET",
                           f"/v1/intents/{iid}", None, make_token(users_of[iid], "fan", st.secret))
        assert s == 200 and b["state"] == "waiting", (s, b)
        # An event's count is fixed once it has intents (a change would move
        # its home: two writers), and bounded.
        for bad in (4, 0, 70000):
            try:
                st.sql("UPDATE events SET partitions = %s WHERE event_id = %s", (bad, moved[0]))
                raise AssertionError(f"partitions set to {bad}")
            except psycopg2.errors.CheckViolation:
                pass
        assert st.sql("SELECT partitions FROM events WHERE event_id = %s", (moved[0],)) == [(2,)]
        # Fixed too once an owner loaded it, intents or not (one not yet
        # committed is invisible to the trigger; the owner's memory holds the
        # home already). Control: the same event before the load takes it.
        quiet = st.create_event(sections=[("A", 1, 4, 5000)])
        st.sql("UPDATE events SET partitions = 2 WHERE event_id = %s", (quiet,))
        st.sql("UPDATE events SET owner_loaded_at = now() WHERE event_id = %s", (quiet,))
        try:
            st.sql("UPDATE events SET partitions = 4 WHERE event_id = %s", (quiet,))
            raise AssertionError("a loaded event's count changed")
        except psycopg2.errors.CheckViolation:
            pass


def new_partition_served(refresh_ms, within_s):
    """A worker alone (no member joins after it), the topics grown from 1
    to 2 partitions, a join of an event homed on the new partition: is it
    applied within within_s?"""
    with Stack(partitions=1) as st:
        st.start_worker(kafka_metadata_refresh_ms=refresh_ms)
        st.wait_for(lambda: st.sql("SELECT owner FROM partition_owner WHERE partition = 0"
                                   )[0][0] is not None, 30, "partition 0 claimed")
        grow(st, 2)
        ev = st.create_event(sections=[("A", 1, 4, 5000)])
        while murmur2_partition(str(ev), 2) != 1:
            ev = st.create_event(sections=[("A", 1, 4, 5000)])
        st.sql("UPDATE events SET partitions = 2 WHERE event_id = %s", (ev,))  # made after the growth
        p, _ = st.produce(ev, intent(7, 1))
        assert p == 1
        try:
            st.wait_for(lambda: st.sql("SELECT 1 FROM intents WHERE event_id = %s", (ev,)),
                        within_s, "the join on the new partition applied")
            return True
        except TimeoutError:
            return False


def test_grown_partitions_are_claimed_without_a_new_worker():
    """Before, a group with no new member noticed grown topics at
    librdkafka's metadata refresh (5 minutes): events created on the new
    partitions waited that long. The worker now reads the metadata every
    kafka.metadata_refresh_ms (30 s by default; 1 s here): the new
    partition is claimed and its join applied. Control: at librdkafka's
    default (300000), not within the same 10 s."""
    assert new_partition_served(1000, 10)
    assert not new_partition_served(300000, 10)


def seller_and_event_body(st, name):
    """A seller's token and the body of an event of a new 4-seat venue,
    for tests that create the event through the API themselves."""
    seller = make_token(1000, "seller", st.secret)
    s, _, v = st.http("POST", "/v1/venues",
                      {"name": "Hall", "city": "Utrecht", "country": "NL",
                       "sections": [{"name": "A", "rows": 1, "seats_per_row": 4}]}, seller)
    assert s == 201, v
    return seller, {"venue_id": v["venue_id"], "name": name, "category": "concert",
                    "starts_at": "2099-01-01T00:00:00Z",
                    "tiers": [{"section": "A", "price_cents": 1000}]}


def test_events_are_not_homed_on_a_count_the_brokers_have_not_confirmed():
    """kafka.partitions set by hand above the topics' count with the start
    check off (kafka.partitions_check_ms 0): before, events were created
    homed over the 4 partitions the node was told of, and one homed on 2 or
    3 (which do not exist) could never be joined, even through a node set
    right. Now creation takes the count the brokers last told: lower than
    the node's, it is refused (503, nothing stored); once a node's count is
    confirmed, created and joined. Control: main's binaries answer the
    first creation 201 (bench/NOTES.md, fifteenth round)."""
    with Stack(partitions=2) as st:
        st.start_worker(name="w1")
        st.start_ingress(monitor_interval_ms=200, kafka_partitions=4, kafka_partitions_check_ms=0)
        seller, body = seller_and_event_body(st, "told 4")
        for _ in range(4):  # murmur2 would home some of these on 2 or 3
            s, h, b = st.http("POST", "/v1/events", body, seller)
            assert (s, b["error"]["code"], h.get("retry-after")) == (503, "queue_unavailable", "1"), (s, b)
        assert st.sql("SELECT count(*) FROM events")[0][0] == 0
        # Set right (and still unchecked at start): created once the
        # monitor has read the count, and joined.
        st.start_ingress(monitor_interval_ms=200, kafka_partitions=2, kafka_partitions_check_ms=0)
        ev = st.wait_for(lambda: (lambda r: r[2]["event_id"] if r[0] == 201 else None)(
            st.http("POST", "/v1/events", body, seller)), 10, "an event created")
        assert st.sql("SELECT partitions FROM events WHERE event_id = %s", (ev,)) == [(2,)]
        s, _, b = join(st, st.ingress_port, 1, ev)
        assert s == 202, (s, b)


def test_a_retried_creation_is_replayed_before_the_count_is_confirmed():
    """A seller's creation answered 201 on one node whose reply was lost,
    retried with its Idempotency-Key on a node whose partition count the
    brokers have not confirmed: before, that node answered 503 (the count
    was checked before the key), and the seller could not learn the event
    it had made. Now the stored 201 is replayed first (same event id,
    nothing new stored); a new key on that node still gets the 503.
    Control: main's binaries answer the retry 503 queue_unavailable."""
    with Stack(partitions=2) as st:
        st.start_worker(name="w1")
        st.start_ingress(monitor_interval_ms=200)
        seller, body = seller_and_event_body(st, "lost reply")
        first = st.wait_for(lambda: (lambda r: r if r[0] == 201 else None)(
            st.http("POST", "/v1/events", body, seller,
                    headers={"Idempotency-Key": "make-once"})), 10, "the event created")
        # A node told 4 partitions, never confirmed (the brokers have 2).
        st.start_ingress(monitor_interval_ms=200, kafka_partitions=4, kafka_partitions_check_ms=0)
        s, _, b = st.http("POST", "/v1/events", body, seller,
                          headers={"Idempotency-Key": "make-once"})
        assert (s, b) == (201, first[2]), (s, b, first)
        s, h, b = st.http("POST", "/v1/events", body, seller,
                          headers={"Idempotency-Key": "make-twice"})
        assert (s, b["error"]["code"]) == (503, "queue_unavailable"), (s, b)
        assert st.sql("SELECT count(*) FROM events")[0][0] == 1
        # The refused new key was given back: a node set right takes it.
        st.start_ingress(monitor_interval_ms=200)
        s, _, b = st.wait_for(lambda: (lambda r: r if r[0] == 201 else None)(
            st.http("POST", "/v1/events", body, seller,
                    headers={"Idempotency-Key": "make-twice"})), 10, "the second created")
        assert b["event_id"] != first[2]["event_id"], b


@contextlib.contextmanager
def postgresql_down(st):
    """Inside the block the test's database refuses connections and its
    sessions are cut (PostgreSQL down for it); st.pg reconnected after."""
    admin = psycopg2.connect(pg_dsn("postgres"))
    admin.autocommit = True
    with admin.cursor() as c:
        c.execute(f'ALTER DATABASE "{st.db}" ALLOW_CONNECTIONS false')
        c.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                  "WHERE datname = %s", (st.db,))
    try:
        yield
    finally:
        with admin.cursor() as c:
            c.execute(f'ALTER DATABASE "{st.db}" ALLOW_CONNECTIONS true')
        admin.close()
        st.pg = psycopg2.connect(pg_dsn(st.db))
        st.pg.autocommit = True


def test_a_node_new_to_an_event_takes_joins_with_postgresql_down():
    """docs/scaling.md: joins are accepted with PostgreSQL down. An
    event's home came from PostgreSQL the first time a node produced for
    it: a node that had not (started after the event's first joins)
    answered 503 queue_unavailable while PostgreSQL was down, and read
    PostgreSQL on the join claimer's thread. The count now comes with the
    sale state a join reads from Redis (ev:<id>, written at creation).
    Control: main's binaries answer the cold node's join 503."""
    with Stack(partitions=2) as st:
        st.start_worker(name="w1")
        st.start_ingress(monitor_interval_ms=200)
        warm = st.ingress_port
        ev = create_event_via_api(st, make_token(1000, "seller", st.secret), 20, "pg down",
                                  max_per_user=1)
        s, _, b = join(st, warm, 1, ev)
        assert s == 202, (s, b)
        st.start_ingress(monitor_interval_ms=200)
        cold = st.ingress_port
        with postgresql_down(st):
            got = [join(st, port, user, ev)[:3:2] for port, user in ((warm, 2), (cold, 3), (cold, 4))]
        assert [s for s, _ in got] == [202, 202, 202], got
        st.wait_for(lambda: st.sql("SELECT count(*) FROM intents WHERE event_id = %s", (ev,)
                                   )[0][0] == 4, 30, "the four joins applied")


def test_an_event_without_section_names_in_redis_takes_joins_with_postgresql_down():
    """An event whose Redis sale state is complete but lacks section_names
    (made before they were written, or its creation's best-effort HSET
    failed): the join's fill took it for incomplete and read PostgreSQL,
    so with PostgreSQL down every join for it got 503. Now the fill
    answers Redis's state with the names unknown (the join is queued as
    before), and once PostgreSQL is back a later fill writes only the names
    back. Control: h17-api's binaries answer these joins 503."""
    with Stack(partitions=2) as st:
        st.start_worker(name="w1")
        st.start_ingress(monitor_interval_ms=200)
        ev = create_event_via_api(st, make_token(1000, "seller", st.secret), 20, "no names",
                                  max_per_user=1)
        assert st.redis.hdel(st.key(f"ev:{ev}"), "section_names") == 1
        st.start_ingress(monitor_interval_ms=200)  # a node that has not cached the event
        with postgresql_down(st):
            got = [join(st, st.ingress_port, user, ev)[:3:2] for user in (1, 2)]
        assert [s for s, _ in got] == [202, 202], got
        st.wait_for(lambda: st.sql("SELECT count(*) FROM intents WHERE event_id = %s", (ev,)
                                   )[0][0] == 2, 30, "the two joins applied")
        # PostgreSQL back: a fill once the entry is stale writes the names.
        users = iter(range(3, 40))  # a new fan each time: a replay reads no event state
        st.wait_for(lambda: join(st, st.ingress_port, next(users), ev)[0] == 202 and
                    st.redis.hget(st.key(f"ev:{ev}"), "section_names") == "1:A",
                    15, "the names written back", interval=1)


def test_records_of_an_event_homed_elsewhere_neither_load_nor_stamp_it():
    """A partition memory fenced records of an event homed elsewhere but
    loaded the event for them first: it stamped owner_loaded_at (the
    seller's price edit then refused as if the sale were running) and
    reloaded it on every batch; every record logged a warning. Now the
    event's home is read before the stamp (nothing of it is stamped or
    loaded there), and the warnings are one per 10 s. Control: main's
    binaries stamp it and log a line a record."""
    with Stack(partitions=2) as st:
        st.start_worker(name="w1")
        st.wait_for(lambda: st.sql("SELECT count(*) FROM partition_owner WHERE owner IS NOT NULL"
                                   )[0][0] == 2, 30, "both partitions claimed")
        ev = st.create_event(sections=[("A", 1, 4, 5000)])
        while murmur2_partition(str(ev), 2) != 1:
            ev = st.create_event(sections=[("A", 1, 4, 5000)])
        # Homed on partition 0 (one partition when made); the key places its
        # records on 1. No intent yet, so the count may still be set.
        st.sql("UPDATE events SET partitions = 1 WHERE event_id = %s", (ev,))
        for batch in range(2):
            placed = st.produce_many(ev, [intent(100 + 3 * batch + i, 1) for i in range(3)])
            assert {p for p, _ in placed} == {1}, placed
            st.wait_for(lambda: st.sql("SELECT count(*) FROM intents WHERE event_id = %s AND "
                                       "reason = 'misrouted'", (ev,))[0][0] == 3 * (batch + 1),
                        30, "the stray joins rejected")
        assert st.sql("SELECT owner_loaded_at FROM events WHERE event_id = %s", (ev,)) == [(None,)]
        out = "".join(p.output() for p in st.procs if p.name == "w1")
        assert out.count("skipped: misrouted") == 1, out[-3000:]
        assert out.count(f"event {ev} is homed on partition 0") == 1, out[-3000:]
