"""test_ingress_crash_join.py - an ingress killed (SIGKILL) after a join's
record reached the log but before it answered (issue 14, faults mid-sale).

The fan never got its 202; its active key still holds the dead request's
"pending:<sent_ms>" claim and its Idempotency-Key record is "in flight".
The fan retries (the same key, as the fan page and the simulator do, then
without one). It must be led to the intent the log holds - answered with
that intent's id - and never get a second intent (which the worker would
reject as a duplicate, leaving the fan with "rejected" while its real place
goes unseen)."""
import os
import threading
import time

import pytest

from harness import BIN, Stack

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-worker"), os.X_OK),
                                reason="onsale-worker is not built")

USER = 77


def test_retry_after_the_ingress_died_mid_join_finds_the_intent_it_wrote():
    with Stack(partitions=1) as st:
        st.start_worker()
        opts = dict(idem_inflight_ttl_s=5, kafka_produce_timeout_ms=1000)
        st.start_ingress(debug_finisher_delay_ms=8000, **opts)
        dying = st.procs[-1]
        ev = st.create_event(sections=[("A", 1, 10, 5000)])
        fan = st.token(USER, "fan")
        path = f"/v1/events/{ev}/intents"
        key = {"Idempotency-Key": "crash-1"}
        threading.Thread(target=lambda: _quiet(st, path, fan, key), daemon=True).start()
        st.wait_for(lambda: st.sql("SELECT count(*) FROM intents WHERE user_id = %s",
                                   (USER,))[0][0] == 1, 30, "the join applied")
        dying.kill()
        dying.wait()
        (seq, state), = st.sql("SELECT intent_seq, state FROM intents WHERE user_id = %s", (USER,))
        assert state == "reserved"
        st.start_ingress(**opts)
        answers = []
        end = time.time() + 20
        while time.time() < end:
            s, _, b = st.http("POST", path, {"quantity": 1}, token=fan, headers=key)
            answers.append((s, b))
            named = b.get("intent_id") if isinstance(b, dict) else None
            if named:
                break
            assert s == 409, b
            time.sleep(0.5)
        assert named and int(named[:16], 16) == seq, answers[-3:]
        # Without a key: the same place, named.
        s, _, b = st.http("POST", path, {"quantity": 1}, token=fan)
        assert s == 409 and int(b["intent_id"][:16], 16) == seq, b
        time.sleep(1)
        assert st.sql("SELECT count(*) FROM intents WHERE user_id = %s", (USER,)) == [(1,)], \
            st.sql("SELECT intent_seq, state, reason FROM intents WHERE user_id = %s", (USER,))


def _quiet(st, path, fan, key):
    try:
        st.http("POST", path, {"quantity": 1}, token=fan, headers=key, timeout=30)
    except OSError:
        pass
