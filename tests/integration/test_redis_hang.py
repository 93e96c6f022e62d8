"""test_redis_hang.py - Redis HANGS mid-sale (SIGSTOP, not a kill): the
truth fans are told meanwhile, and the recovery after SIGCONT.

A stopped redis-server still accepts TCP connections (the kernel's backlog)
but answers nothing, so every Redis round trip of ingress waits its whole
redis.timeout_ms; a restart or a kill (test_redis_restart.py,
test_faults_mid_sale.py) fails at once instead. While Redis is stopped a
crowd joins, polls and checks out:

  - every answer comes within a bound: redis.timeout_ms for the request's
    own round trip plus the time it waited for a thread, which
    redis.down_ms keeps short (a Redis that just timed out is not asked
    again by that connection for redis.down_ms: the requests behind it fail
    at once instead of each waiting redis.timeout_ms);
  - a refusal is a 503 of the error table with Retry-After;
  - after SIGCONT, without restarting anything, joins, polls and checkouts
    work again, every 202'd join reaches PostgreSQL exactly once, and no
    fan holds two places.

The control runs the same with redis.down_ms = 0 (every request waits its
own timeout, one after the other on the job threads): the answers come
many seconds late, so the bound is real."""
import collections
import concurrent.futures as cf
import os
import signal
import threading
import time

import pytest

from fault_util import PrivateRedis
from harness import BIN, Stack, metric

pytestmark = pytest.mark.skipif(not os.access(os.path.join(BIN, "onsale-worker"), os.X_OK),
                                reason="onsale-worker is not built")

TIMEOUT_MS = 300
HANG_S = 6
# The slowest answer while Redis hangs: a thread's own timed-out round trip
# or two (the result reader's, then the job thread's) and the wait for a
# thread, with room for a loaded box.
BOUND_S = 2 * TIMEOUT_MS / 1000 + 2.4
CROWD = 96


def join(st, ev, user, key):
    return st.http("POST", f"/v1/events/{ev}/intents", {"quantity": 1}, token=st.token(user),
                   headers={"Idempotency-Key": key}, timeout=60)


def poll(st, url, user):
    return st.http("GET", url, token=st.token(user), timeout=60)


def reserved(st, ev, user):
    s, _, b = join(st, ev, user, f"k{user}")
    assert s == 202, b
    p = st.wait_for(lambda: (lambda x: x if x[0] == 200 and x[2].get("state") == "reserved"
                             else None)(poll(st, b["status_url"], user)), 30, f"{user} reserved")
    return b["status_url"], p[2]["reservation"]["reservation_id"]


def crowd(st, ev, holders, stop, out):
    """Threads that join (new fans), poll (the holders) and check out (the
    holders) until stop is set; out gets (kind, status, headers, body,
    seconds) for every answer."""
    lock = threading.Lock()
    seq = iter(range(10**6))

    def one(kind, user, call):
        t0 = time.time()
        try:
            s, h, b = call()
        except OSError as e:  # a client timeout: the answer never came
            s, h, b = 0, {}, str(e)
        with lock:
            out.append((kind, user, s, h, b, time.time() - t0))

    def loop(i):
        while not stop.is_set():
            n = next(seq)
            user = 10000 + n
            one("join", user, lambda: join(st, ev, user, f"c{user}"))
            u, (url, rid) = holders[n % len(holders)]
            one("poll", u, lambda: poll(st, url, u))
            if n % 4 == 0:
                one("checkout", u, lambda: st.http(
                    "POST", f"/v1/reservations/{rid}/checkout", {"payment_method": "pm_card_visa"},
                    token=st.token(u), headers={"Idempotency-Key": f"co{u}"}, timeout=60))

    with cf.ThreadPoolExecutor(CROWD) as ex:
        list(ex.map(loop, range(CROWD)))


def hang_mid_sale(down_ms):
    """Redis is stopped for HANG_S seconds under a crowd. Returns the
    answers given while it was stopped, and the Stack's checks after."""
    with PrivateRedis() as rd, Stack(partitions=1) as st:
        via = dict(redis_port=rd.port, redis_timeout_ms=TIMEOUT_MS, redis_down_ms=down_ms)
        st.start_worker(**via)
        st.start_ingress(**via)
        ev = st.create_event(sections=[("A", 10, 50, 5000)])
        holders = [(u, reserved(st, ev, u)) for u in range(1, 9)]
        out, stop = [], threading.Event()
        ingress = [p for p in st.procs if p.name == "ingress"][0]
        before = proc_status(ingress.popen.pid)
        rd.proc.send_signal(signal.SIGSTOP)
        t = threading.Thread(target=crowd, args=(st, ev, holders, stop, out))
        t.start()
        depth, t_end = 0.0, time.time() + HANG_S
        while time.time() < t_end:  # the jobs waiting for a job thread
            depth = max(depth, metric(st.ingress_port, "onsale_ingress_job_queue_depth") or 0.0)
            time.sleep(0.2)
        threads = proc_status(ingress.popen.pid) - before
        stop.set()
        t.join()
        during = list(out)
        rd.proc.send_signal(signal.SIGCONT)
        after = recovery(st, ev, holders)
        accepted = [b["intent_id"] for k, _, s, _, b, _ in during if k == "join" and s == 202]
        st.wait_for(lambda: st.sql("SELECT count(*) FROM intents WHERE event_id = %s", (ev,))[0][0]
                    >= len(holders) + len(accepted) + 1, 60, "every accepted join applied")
        twice = st.sql("SELECT user_id, count(*) FROM intents WHERE event_id = %s AND state IN "
                       "('queued', 'reserved', 'purchased') GROUP BY 1 HAVING count(*) > 1", (ev,))
        alive = all(p.alive() for p in st.procs)
        # A late reply never answers another request: each poll's answer
        # names the intent polled, each join's a fresh intent.
        for kind, user, s, _, b, _ in during:
            if kind == "poll" and s == 200:
                assert b["intent_id"] == dict(holders)[user][0].rsplit("/", 1)[1], (user, b)
        assert len(set(accepted)) == len(accepted)
        return during, after, twice, alive, (threads, depth)


def proc_status(pid):
    """The threads of a process."""
    with open(f"/proc/{pid}/status") as f:
        kv = dict(line.split(":", 1) for line in f)
    return int(kv["Threads"])


def recovery(st, ev, holders):
    """After SIGCONT: a new fan's join and its hold, a holder's poll, a
    holder's checkout, each retried as a client would for up to 10 s.
    Returns their statuses."""
    def until_ok(call, ok, timeout=10):
        end = time.time() + timeout
        while True:
            r = call()
            if r[0] in ok or time.time() > end:
                return r
            time.sleep(0.2)
    s_join, _, b = until_ok(lambda: join(st, ev, 99999, "after"), (202,))
    state = None
    if s_join == 202:
        state = st.wait_for(lambda: (lambda x: x[2].get("state") if x[0] == 200 and x[2].get("state")
                                     in ("reserved", "rejected") else None)(
            poll(st, b["status_url"], 99999)), 30, "the new fan's answer")
    u, (url, rid) = holders[-1]
    s_poll = until_ok(lambda: poll(st, url, u), (200,))[0]
    s_co = until_ok(lambda: st.http("POST", f"/v1/reservations/{rid}/checkout",
                                    {"payment_method": "pm_card_visa"}, token=st.token(u),
                                    headers={"Idempotency-Key": "after"}), (202, 409))[0]
    return {"join": s_join, "state": state, "poll": s_poll, "checkout": s_co}


def slowest(during):
    """(kind, status, error code) -> (count, p50, max seconds), printed."""
    agg = collections.defaultdict(list)
    for kind, _, s, _, b, secs in during:
        code = b.get("error", {}).get("code") if isinstance(b, dict) else None
        agg[(kind, s, code)].append(secs)
    out = {}
    for k, v in sorted(agg.items(), key=str):
        v.sort()
        out[k] = (len(v), v[len(v) // 2], v[-1])
        print(k, "n %d p50 %.2f max %.2f" % out[k])
    return max(x[2] for x in out.values())


def test_a_hung_redis_gets_prompt_honest_answers_and_recovers():
    during, after, twice, alive, grew = hang_mid_sale(down_ms=1000)
    assert slowest(during) < BOUND_S
    for kind, user, s, h, b, secs in during:
        assert s != 0, (kind, user, b)
        if s >= 500:
            assert s == 503, (kind, s, b)
            assert h.get("retry-after"), (kind, h)
            assert b["error"]["code"] == "unavailable", b
    assert after == {"join": 202, "state": "reserved", "poll": 200, "checkout": 202}, after
    assert twice == [] and alive
    threads, depth = grew
    print("threads added", threads, "job queue depth max", depth)
    # no thread per waiting request; the queue holds at most the crowd
    assert threads == 0 and depth <= CROWD, grew


def test_control_without_the_down_window_answers_wait_in_line():
    """redis.down_ms = 0: every poll's fallback waits out its own Redis
    timeout on a job thread, one after the other: the crowd's polls wait
    far past the bound."""
    during, after, twice, alive, (threads, depth) = hang_mid_sale(down_ms=0)
    print("threads added", threads, "job queue depth max", depth)
    assert slowest(during) > BOUND_S
    assert after["poll"] == 200 and twice == [] and alive
