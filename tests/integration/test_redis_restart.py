"""test_redis_restart.py - a Redis restart never leaves a fan reading a state
that is over (issue 14, faults mid-sale).

Redis holds the worker's projection: each intent's result r:<seq>. A result
the worker could not write (Redis down when the batch committed) or that
Redis lost when it restarted (appendfsync everysec loses up to about a
second; a restart from an older snapshot more) used to leave the older
result in place for good: the fan polled "reserved" after its hold was
released or expired, and the active key naming that "live" intent kept the
fan from joining again (409 already_in_queue). After a failed projection the
worker now repairs the results it wrote recently (redis.resync_window_ms) and
every one since: it writes them again from the documents it kept (never over
a later state), or drops them so that polls answer them from PostgreSQL.

Redis here is a private redis-server, so restarting it disturbs no other
test. The control runs the same with redis.resync_window_ms = 0 and a
snapshot older than the window: the stale answer is real."""
import os
import time

import pytest

from fault_util import PrivateRedis
from harness import BIN, Stack

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-worker"), os.X_OK),
                                reason="onsale-worker is not built")


def poll(st, iid, fan):
    s, _, b = st.http("GET", f"/v1/intents/{iid}", token=fan)
    return s, b


def reserved_fan(st, ev, user):
    fan = st.token(user, "fan")
    s, _, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, token=fan)
    assert s == 202, b
    iid = b["intent_id"]
    p = st.wait_for(lambda: (lambda x: x if x[0] == 200 and x[1]["state"] == "reserved"
                             else None)(poll(st, iid, fan)), 30, "reserved")[1]
    return fan, iid, p["reservation"]["reservation_id"]


def state_after_restart(st, rd, iid, fan, final):
    """Redis came back holding "reserved" for iid: waits up to 10 s for the
    worker to see the restart (it publishes at least every second), then
    returns what the fan's polls say."""
    key = st.key(f"r:{int(iid[:16], 16)}")
    # "reserved", unless the worker's repair has already dropped it or
    # written it again (final)
    held = rd.client().get(key)
    assert held is None or '"reserved"' in held or f'"{final}"' in held, held
    end = time.time() + 10
    while time.time() < end and '"reserved"' in (rd.client().get(key) or ""):
        time.sleep(0.1)
    # Each job thread's first call after the restart finds its connection
    # broken (and answers from PostgreSQL): ask a few times, keep the last.
    for _ in range(8):
        s, b = poll(st, iid, fan)
        assert s == 200, b
        time.sleep(0.1)
    return b["state"]


def stale_after_lost_write(window_ms):
    """A fan is reserved; Redis snapshots; the fan releases the hold (the
    worker writes "released"); Redis is killed and comes back from the
    snapshot, which says "reserved". Returns what the fan's polls say
    10 s later and the status of a new join."""
    with PrivateRedis(aof=False) as rd, Stack(partitions=1) as st:
        via = dict(redis_port=rd.port)
        st.start_worker(redis_resync_window_ms=window_ms, **via)
        st.start_ingress(**via)
        ev = st.create_event(sections=[("A", 1, 10, 5000)])
        fan, iid, rid = reserved_fan(st, ev, 41)
        rd.client().save()
        s, _, b = st.http("DELETE", f"/v1/reservations/{rid}", token=fan)
        assert s == 202, b
        st.wait_for(lambda: poll(st, iid, fan)[1].get("state") == "released", 30, "released")
        assert st.sql("SELECT state FROM intents WHERE user_id = 41") == [("released",)]
        if window_ms == 0:
            time.sleep(1.5)  # an idle publish has moved the (empty) window past the release
        rd.restart(kill=True)  # back from the snapshot: "reserved"
        state = state_after_restart(st, rd, iid, fan, "released")
        s, _, again = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, token=fan)
        st.stop_clean()
        return state, s, again


def test_a_result_redis_lost_in_a_restart_is_read_from_postgresql():
    state, s, again = stale_after_lost_write(5000)
    assert state == "released"
    assert s == 202, again  # the fan's place is free again


def test_control_without_the_repair_the_lost_write_stays_stale():
    state, s, again = stale_after_lost_write(0)
    assert state == "reserved"
    assert s == 409 and again["error"]["code"] == "already_in_queue", again


def test_a_result_committed_while_redis_was_down_is_not_answered_stale():
    """The hold expires while Redis is down: the batch's projection fails.
    When Redis is back (with everything it had), the fan reads "expired",
    not the "reserved" Redis still holds."""
    with PrivateRedis() as rd, Stack(partitions=1) as st:
        via = dict(redis_port=rd.port)
        st.start_worker(debug_hold_seconds_override=4, hold_check_ms=50, **via)
        st.start_ingress(**via)
        ev = st.create_event(sections=[("A", 1, 10, 5000)])
        fan, iid, rid = reserved_fan(st, ev, 42)
        rd.stop()
        st.wait_for(lambda: st.sql("SELECT state FROM intents WHERE user_id = 42") ==
                    [("expired",)], 30, "the hold expired in PostgreSQL")
        rd.start()
        assert state_after_restart(st, rd, iid, fan, "expired") == "expired"
        s, _, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, token=fan)
        assert s == 202, b
        st.stop_clean()
