"""worker_util.py - helpers shared by the worker integration tests
(test_worker_*.py): building queue/msg.h records, reading outcomes from
PostgreSQL, and the consistency audit every test ends with."""
import json
import signal
import time
import urllib.request


def intent(user, qty, section=None, adjacent=True, max_price=None):
    r = {"type": "intent", "user_id": user, "quantity": qty, "adjacent": adjacent}
    if section:
        r["section"] = section
    if max_price:
        r["max_price_cents"] = max_price
    return r


def cancel(user, partition, offset, kind="intent"):
    r = {"type": "cancel", "user_id": user, "kind": kind, "target_partition": partition,
         "target_offset": offset}
    if kind == "reservation":
        r["reservation_id"] = seq(partition, offset)
    return r


def seq(partition, offset):
    return (partition << 40) | offset


def outcomes(st, ev):
    """{kafka_offset: (user, state, reason)} for one event."""
    return {o: (u, s, r) for o, u, s, r in st.sql(
        "SELECT kafka_offset, user_id, state, reason FROM intents WHERE event_id = %s", (ev,))}


def seats_of(st, ev, partition, offset):
    """[(section, row, seat)] held by the intent's reservation, in seat order."""
    return st.sql("SELECT c.name, s.row_no, s.seat_in_row FROM seats s JOIN sections c "
                  "USING (section_id) WHERE s.event_id = %s AND s.reservation_id = %s "
                  "ORDER BY s.seat_no", (ev, seq(partition, offset)))


def wait_count(st, ev, n, timeout=30, proc=None):
    st.wait_for(lambda: st.sql("SELECT count(*) FROM intents WHERE event_id = %s",
                               (ev,))[0][0] >= n, timeout, f"{n} intents applied", proc=proc)


def wait_state(st, partition, offset, state, timeout=30, proc=None):
    st.wait_for(lambda: st.sql("SELECT 1 FROM intents WHERE intent_seq = %s AND state = %s",
                               (seq(partition, offset), state)), timeout,
                f"intent {partition}:{offset} {state}", proc=proc)


def wait_result(st, rid, state, timeout=10):
    """Waits until intent rid's result document in Redis says state."""
    st.wait_for(lambda: (json.loads(st.redis.get(st.key(f"r:{rid}")) or "{}")
                         .get("state") == state), timeout, f"result of {rid} {state} in Redis")


def start_short_hold_worker(st, name, hold_s):
    """A worker whose holds last hold_s seconds (debug.hold_seconds_override),
    checked every 50 ms, and whose partitions move 6 s after it dies."""
    return st.start_worker(name=name, debug_hold_seconds_override=hold_s, hold_check_ms=50,
                           kafka_session_timeout_ms=6000)


def kill_9(proc):
    """Kills proc with SIGKILL (nothing flushed, nothing handed over) and reaps it."""
    proc.kill(signal.SIGKILL)
    proc.wait()


def audit(st):
    """Problems with the database's seat/reservation bookkeeping ([] = none):
    every live reservation holds exactly seat_count seats whose status matches,
    every non-available seat belongs to a live reservation, intent and
    reservation states agree."""
    bad = []
    bad += [f"reservation {r} ({state}) holds {n} seats, expects {c}" for r, state, c, n in st.sql(
        "SELECT r.reservation_id, r.state, r.seat_count, count(s.seat_no) FROM reservations r "
        "LEFT JOIN seats s ON s.reservation_id = r.reservation_id AND s.event_id = r.event_id "
        "WHERE r.state IN ('held', 'paying') GROUP BY 1, 2, 3 HAVING count(s.seat_no) <> r.seat_count")]
    bad += [f"seat {e}/{n} is {s} for reservation {r} in state {rs}" for e, n, s, r, rs in st.sql(
        "SELECT s.event_id, s.seat_no, s.status, s.reservation_id, r.state FROM seats s "
        "LEFT JOIN reservations r ON r.reservation_id = s.reservation_id "
        "WHERE s.status IN ('held', 'paying') AND (r.state IS NULL OR r.state NOT IN ('held', 'paying'))")]
    bad += [f"intent {i} is {s} but its reservation is {rs}" for i, s, rs in st.sql(
        "SELECT i.intent_seq, i.state, r.state FROM intents i JOIN reservations r "
        "ON r.reservation_id = i.intent_seq WHERE (i.state = 'reserved') <> (r.state = 'held')")]
    return bad


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def metric_value(text, name_with_labels):
    for line in text.splitlines():
        if line.startswith(name_with_labels + " "):
            return float(line.split()[-1])
    return None


def log_lines(proc, needle):
    return [l for l in proc.output().splitlines() if needle in l]


def wait_log(st, proc, needle, count=1, timeout=30):
    st.wait_for(lambda: len(log_lines(proc, needle)) >= count, timeout,
                f"{count}x '{needle}' in {proc.name}'s log")
    time.sleep(0)
