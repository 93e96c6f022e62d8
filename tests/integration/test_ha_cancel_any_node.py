"""A cancel sent to any ingress node reaches the partition that holds the
intent, also while the intent is still queued and another node accepted the
join: the node reads the join record back from its place in the log to learn
its event. Control: debug.cancel_local_only (the node-local map only) gives
the old 409 not_cancellable_yet."""
import pytest

from harness import Stack


def intent_state(st, port, user, iid):
    st.ingress_port = port
    s, _, b = st.http("GET", f"/v1/intents/{iid}", token=st.token(user, "fan"))
    assert s == 200, b
    return b["state"]


@pytest.mark.parametrize("local_only", [False, True])
def test_cancel_of_queued_intent_through_another_node(local_only):
    with Stack(partitions=2) as st:
        ev = st.create_event(sections=[("A", 2, 10, 5000)])
        st.start_ingress()
        a = st.ingress_port
        st.start_ingress(debug_cancel_local_only=str(local_only).lower())
        b = st.ingress_port
        # no worker yet: the intent stays queued
        st.ingress_port = a
        s, _, j = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1},
                          token=st.token(31, "fan"))
        assert s == 202, j
        iid = j["intent_id"]
        st.ingress_port = b
        s, _, c = st.http("DELETE", f"/v1/intents/{iid}", token=st.token(31, "fan"))
        if local_only:
            assert s == 409 and c["error"]["code"] == "not_cancellable_yet", c
            return
        assert s == 202 and c["state"] == "cancelling", c
        # someone else's id (forged for another user) is still 404 there
        s, _, _ = st.http("DELETE", f"/v1/intents/{iid}", token=st.token(32, "fan"))
        assert s == 404
        # the owner applies join then cancel: the intent ends released on every node
        st.start_worker()
        st.wait_for(lambda: intent_state(st, a, 31, iid) not in ("queued", "reserved"), 60,
                    "the cancel applied")
        # the other node answers from its own served cursor, refreshed every
        # status.refresh_ms: it agrees within a few of those, never later
        final = intent_state(st, a, 31, iid)
        st.wait_for(lambda: intent_state(st, b, 31, iid) == final, 5, "node b agrees")
        (state, reason), = st.sql("SELECT state, reason FROM intents WHERE user_id = 31")
        assert state == "released" or reason == "cancelled", (state, reason)
