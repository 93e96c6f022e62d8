"""One ingress node's clock 5 minutes off (libfaketime): sale opening and
hold expiry follow the partition owner's clock only. The skewed node lets a
join through before the sale opens (its own check uses its clock), the owner
rejects it (sale_closed); a node with the right clock refuses it at the door
(409 sale_not_open); holds made through the skewed node expire by the
owner's clock. (The unit test test_clock_skew shows the rule failing without
the fix in workers/partition.c.)"""
import os

from harness import BIN, Proc, Stack

# libfaketime, preloaded straight into the ingress: the faketime(1) wrapper
# forks, so a SIGTERM to it left the skewed ingress running after the test.
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def start_skewed_ingress(st, offset="+5m"):
    from harness import free_port
    port = free_port()
    env = st.env(http_port=port)
    assert os.path.exists(LIBFAKETIME), "libfaketime missing: run scripts/setup (package faketime)"
    env["LD_PRELOAD"] = LIBFAKETIME
    env["FAKETIME"] = offset
    env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    # libfaketime is preloaded after the sanitizer runtime in a sanitized build
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")
    p = Proc("ingress-skewed", [os.path.join(BIN, "onsale-ingress")], env,
             os.path.join(st.logdir, "ingress-skewed.log"))
    st.procs.append(p)
    st.ingress_port = port
    st.wait_for(st._healthy, 30, "skewed ingress /healthz", proc=p)
    return port


def test_sale_opening_and_holds_follow_the_owners_clock():
    with Stack(partitions=2) as st:
        st.start_worker()
        ev = st.create_event(sections=[("A", 2, 10, 5000)], onsale_in_s=90, hold_seconds=120,
                             status="scheduled")
        st.start_ingress()
        good = st.ingress_port
        skewed = start_skewed_ingress(st)
        # the node with the right clock refuses at the door
        st.ingress_port = good
        s, _, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, token=st.token(41, "fan"))
        assert s == 409 and b["error"]["code"] == "sale_not_open", b
        # the skewed node believes the sale is open; the owner does not
        st.ingress_port = skewed
        s, _, b = st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, token=st.token(42, "fan"))
        assert s == 202, b
        st.wait_for(lambda: st.sql("SELECT state, reason FROM intents WHERE user_id = 42"), 30, "applied")
        assert st.sql("SELECT state, reason FROM intents WHERE user_id = 42")[0] == ("rejected", "sale_closed")

        # an open sale: a hold through the skewed node expires hold_seconds
        # after the owner applied it, not 5 minutes later
        ev2 = st.create_event(sections=[("A", 1, 10, 5000)], hold_seconds=120)
        s, _, b = st.http("POST", f"/v1/events/{ev2}/intents", {"quantity": 1}, token=st.token(43, "fan"))
        assert s == 202, b
        st.wait_for(lambda: st.sql("SELECT 1 FROM reservations r JOIN intents i "
                                   "ON i.reservation_id = r.reservation_id WHERE i.user_id = 43"),
                    30, "reserved")
        (left,), = st.sql("SELECT extract(epoch FROM r.expires_at - now()) FROM reservations r "
                          "JOIN intents i ON i.reservation_id = r.reservation_id WHERE i.user_id = 43")
        assert 100 <= float(left) <= 121, left  # 120 s by the owner's clock (not 420)
        # libfaketime's node cannot stop in time (harness Stack.discard)
        st.discard(next(p for p in st.procs if p.name == "ingress-skewed"))
