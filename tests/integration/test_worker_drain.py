"""test_worker_drain.py - what the drain's faster writes (issue 12) must keep:
every column of an intents row the batch's binary COPY writes, and the
set-based event check of migration 0012 (refuses a missing event, locks the
events it names FOR KEY SHARE until commit)."""
import time

import psycopg2
import pytest

from harness import Stack, pg_dsn
from worker_util import audit, intent, seq, wait_count


def test_copied_intent_rows_keep_every_column():
    with Stack(partitions=1) as st:
        ev = st.create_event(sections=[("Balc\u00f3n", 1, 4, 5000), ("B", 1, 2, 3000)],
                             max_per_user=4)
        w = st.start_worker()
        sent = int(time.time() * 1000) - 1234
        recs = [
            dict(intent(1, 2, "Balc\u00f3n", adjacent=False, max_price=9000), sent_ms=sent),
            dict(intent(2, 2), sent_ms=sent + 1),                 # the rest of Balcon
            dict(intent(3, 2), sent_ms=sent + 2),                 # B
            dict(intent(4, 1, 'Q"uote\\d'), sent_ms=sent + 3),    # unknown section
            dict(intent(5, 4), sent_ms=sent + 4),                 # waits
            dict(intent(5, 1), sent_ms=sent + 5),                 # duplicate
            dict(intent(6, 5), sent_ms=sent + 6),                 # over max_per_user
        ]
        pos = st.produce_many(ev, recs)
        wait_count(st, ev, len(recs), proc=w)
        rows = {r[0]: r[1:] for r in st.sql(
            "SELECT kafka_offset, intent_seq, partition, user_id, quantity, section, "
            "max_price_cents, adjacent, state, reason, reservation_id, "
            "(extract(epoch FROM accepted_at) * 1000)::bigint, "
            "extract(microseconds FROM accepted_at)::bigint %% 1000 "
            "FROM intents WHERE event_id = %s", (ev,))}
        p = pos[0][0]
        want = [
            (1, 2, "Balc\u00f3n", 9000, False, "reserved", None, True),
            (2, 2, None, None, True, "reserved", None, True),
            (3, 2, None, None, True, "reserved", None, True),
            (4, 1, 'Q"uote\\d', None, True, "rejected", "insufficient_seats", False),
            (5, 4, None, None, True, "waiting", None, False),
            (5, 1, None, None, True, "rejected", "duplicate", False),
            (6, 5, None, None, True, "rejected", "insufficient_seats", False),
        ]
        for i, (part, off) in enumerate(pos):
            user, qty, sec, maxp, adj, state, reason, has_res = want[i]
            got = rows[off]
            assert got == (seq(part, off), p, user, qty, sec, maxp, adj, state, reason,
                           seq(part, off) if has_res else None, sent + i, 0), (i, got)
        assert audit(st) == []


def test_event_check_refuses_missing_events_and_locks_the_named_ones():
    with Stack(partitions=1) as st:
        ev = st.create_event(sections=[("A", 1, 4, 5000)])
        row = ("INSERT INTO intents (intent_seq, event_id, user_id, partition, kafka_offset, "
               "quantity, adjacent, state, accepted_at) "
               "SELECT g, %s, g + 1, 0, g, 1, true, 'waiting', now() FROM generate_series(%s, %s) g")
        # one missing event among existing ones: nothing is written
        with pytest.raises(psycopg2.errors.ForeignKeyViolation):
            st.sql(row.replace("SELECT g, %s", "SELECT g, CASE WHEN g = 3 THEN %s + 1000000 "
                               "ELSE %s END"), (ev, ev, 1, 5))
        assert st.sql("SELECT count(*) FROM intents")[0][0] == 0
        with pytest.raises(psycopg2.errors.ForeignKeyViolation):
            st.sql("INSERT INTO reservations (reservation_id, event_id, user_id, state, "
                   "seat_count, total_cents, currency, expires_at) "
                   "VALUES (1, %s, 1, 'held', 1, 1, 'USD', now())", (ev + 1000000,))
        # the check's lock: while a transaction that wrote intents of ev is
        # open, the event cannot be deleted (nor its key changed)
        other = psycopg2.connect(pg_dsn(st.db))
        try:
            with other.cursor() as c:
                c.execute(row, (ev, 10, 20))
                with st.pg.cursor() as d:
                    d.execute("SET lock_timeout = '300ms'")
                    with pytest.raises(psycopg2.errors.LockNotAvailable):
                        d.execute("DELETE FROM events WHERE event_id = %s", (ev,))
                    d.execute("SET lock_timeout = 0")
            other.commit()
        finally:
            other.close()
        assert st.sql("SELECT count(*) FROM intents WHERE event_id = %s", (ev,))[0][0] == 11


def test_intent_check_refuses_missing_intents_and_locks_those_of_other_transactions():
    """Migration 0021: a reservation's intent must exist; an intent inserted
    by the reservation's own transaction is not locked (no other
    transaction can see it), every other one is locked FOR KEY SHARE until
    commit, as 0002's check did."""
    with Stack(partitions=1) as st:
        ev = st.create_event(sections=[("A", 1, 4, 5000)])
        intents = ("INSERT INTO intents (intent_seq, event_id, user_id, partition, kafka_offset, "
                   "quantity, adjacent, state, accepted_at) "
                   "SELECT g, %s, g + 1, 0, g, 1, true, 'reserved', now() "
                   "FROM generate_series(%s, %s) g")
        res = ("INSERT INTO reservations (reservation_id, event_id, user_id, state, seat_count, "
               "total_cents, currency, expires_at) SELECT g, %s, g + 1, 'held', 1, 5000, 'USD', "
               "now() + interval '1 hour' FROM generate_series(%s, %s) g")
        st.sql(intents, (ev, 1, 3))  # committed: another transaction's
        other = psycopg2.connect(pg_dsn(st.db))
        try:
            with other.cursor() as c:
                # one missing intent among mine and others': nothing written
                c.execute(intents, (ev, 10, 12))
                with pytest.raises(psycopg2.errors.ForeignKeyViolation):
                    c.execute(res, (ev, 1, 13))
                other.rollback()
                with pytest.raises(psycopg2.errors.ForeignKeyViolation):
                    c.execute(res, (ev, 100, 100))
                other.rollback()
                # mine (10..12) and others' (1..3) in one statement
                c.execute(intents, (ev, 10, 12))
                c.execute("INSERT INTO reservations (reservation_id, event_id, user_id, state, "
                          "seat_count, total_cents, currency, expires_at) "
                          "SELECT g, %s, g + 1, 'held', 1, 5000, 'USD', now() "
                          "FROM unnest(array[1, 2, 3, 10, 11, 12]) g", (ev,))
                c.execute("SELECT intent_seq FROM intents WHERE intent_seq IN (1, 2, 3, 10, 11, 12) "
                          "AND xmax <> 0 ORDER BY 1")
                # the lock is on the other transaction's intents only
                assert [r[0] for r in c.fetchall()] == [1, 2, 3]
                with st.pg.cursor() as d:
                    d.execute("SET lock_timeout = '300ms'")
                    for k in (1, 3):
                        with pytest.raises(psycopg2.errors.LockNotAvailable):
                            d.execute("SELECT 1 FROM intents WHERE intent_seq = %s FOR UPDATE", (k,))
                        st.pg.rollback()
                    d.execute("SET lock_timeout = 0")
            other.commit()
        finally:
            other.close()
        assert st.sql("SELECT count(*) FROM reservations")[0][0] == 6
