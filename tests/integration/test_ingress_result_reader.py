"""test_ingress_result_reader.py - polls of processed intents share the
result reader's MGETs (issue 12), against the real binaries.

  * 300 fans for 10 seats (10 reserved, 290 waiting), each polled three
    times at once through a node with the reader and a node without it (the
    control, status.round_max=0): both answer every fan as PostgreSQL holds
    it, the reader with far fewer Redis round trips than polls and the
    control with none of its rounds.
  * Results missing from Redis (deleted behind the reader's back): the
    reader hands those polls on to a job thread, which answers from
    PostgreSQL.
"""
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from harness import BIN, KeepAliveClient, Stack, metric  # noqa: E402

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-worker"), os.X_OK),
                                reason="onsale-worker is not built")

FANS = 300



def poll_all(port, urls):
    c = KeepAliveClient(port)
    with ThreadPoolExecutor(48) as ex:
        return list(ex.map(lambda ut: (ut[0], c.request("GET", ut[0][1], token=ut[1])),
                           [(u, t) for u, t in urls for _ in range(3)]))


def test_polls_of_processed_intents_share_mgets_and_answer_as_postgres_holds():
    with Stack(partitions=2) as st:
        st.start_worker()
        reader = int(st.start_ingress().rsplit(":", 1)[1])
        control = int(st.start_ingress(status_round_max=0).rsplit(":", 1)[1])
        ev = st.create_event(sections=[("A", 1, 10, 5000)])
        urls = []
        for u in range(1, FANS + 1):
            tok = st.token(u, "fan")
            _, b = st.join_ok(ev, tok)
            urls.append(((u, b["status_url"]), tok))
        st.wait_for(lambda: st.sql("SELECT count(*) FROM intents WHERE event_id = %s AND "
                                   "state <> 'queued'", (ev,))[0][0] == FANS, 60, "all applied")
        held = dict(st.sql("SELECT user_id, state FROM intents WHERE event_id = %s", (ev,)))
        assert sorted(held.values()).count("reserved") == 10, held
        # every result is in Redis before the polls (the worker publishes after commit)
        st.wait_for(lambda: all(c.request("GET", url, token=t)[1]["state"] != "queued"
                                for c in [KeepAliveClient(control)] for (_, url), t in urls[-5:]),
                    30, "results published")
        for port in (reader, control):
            for (u, _), (s, b) in poll_all(port, urls):
                assert s == 200 and b["state"] == held[u], (port, u, s, b)
                assert b["event_id"] == ev and "left_queue_at" in b, b
                assert ("reservation" in b) == (held[u] == "reserved"), b
        reads = metric(reader, "onsale_ingress_result_reads_total")
        rounds = metric(reader, "onsale_ingress_result_rounds_total")
        assert reads >= 3 * FANS and rounds < reads / 2, (rounds, reads)
        assert not metric(control, "onsale_ingress_result_rounds_total")
        # results gone from Redis: the reader's polls fall back to PostgreSQL
        gone = urls[:20]
        for (u, url), _ in gone:
            seq = int(url.rsplit("/", 1)[1][:16], 16)
            st.redis.delete(st.key(f"r:{seq}"))
        for (u, _), (s, b) in poll_all(reader, gone):
            assert s == 200 and b["state"] == held[u], (u, s, b)
        st.stop_clean()
