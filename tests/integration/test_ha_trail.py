"""One id through every log: on the --ha stack every Onsale process writes
JSON lines, and `grep <intent_id>` over all logs shows the intent's whole
life: ingress accepted the join (with its request id, which also travels in
the Kafka record's header), the worker applied and committed it (projection
included), the checkout was accepted, the payments relay charged, the worker
committed the paid order with its tickets."""
import json, time

from ha_util import (LOGS, checkout, create_event, join, log_lines, wait_for, wait_intent,
                     wait_order)

ONSALE_LOGS = ("ingress-", "worker-", "payments-", "gateway")


def test_grep_intent_id_shows_its_whole_life():
    ev = create_event(seats=50, name="trail")
    user = 4100 + int(time.time()) % 1000
    s, h, b = join(user, ev, qty=2)
    assert s == 202, b
    iid, rid = b["intent_id"], h["x-request-id"]
    p = wait_intent(user, iid)
    assert p["state"] == "reserved", p
    res = p["reservation"]["reservation_id"]
    s, _, o = checkout(user, res, f"trail-{iid}")
    assert s == 202, o
    assert wait_order(user, o["order_id"])["state"] == "paid"

    def trail():
        lines = [(f, l) for f, l in log_lines(iid) if f.startswith(ONSALE_LOGS)]
        msgs = " | ".join(f"{f}: {json.loads(l)['msg']}" for f, l in lines)
        want = ["join accepted", "applied intent", "committed and projected: intent reserved",
                "checkout accepted", "applied checkout", "charge", "committed: order paid"]
        return (lines, msgs) if all(w in msgs for w in want) else None

    lines, msgs = wait_for(trail, 30, "the intent's whole trail in the logs")
    files = {f.split("-")[0].split(".")[0] for f, _ in lines}
    assert {"ingress", "worker", "payments"} <= files, msgs
    for f, line in lines:
        rec = json.loads(line)  # every line is JSON
        assert rec["intent_id"] == iid, line
    # the request id travelled in the Kafka record: the worker's apply line has it
    applied = [json.loads(l) for f, l in lines if "applied intent" in l]
    assert applied and applied[0].get("request_id") == rid, applied
    assert "tickets issued" in msgs


def test_every_onsale_log_line_is_json():
    import os
    bad = []
    for name in sorted(os.listdir(LOGS)):
        if not name.startswith(ONSALE_LOGS) or not name.endswith(".log"):
            continue
        with open(os.path.join(LOGS, name), errors="replace") as f:
            for n, line in enumerate(f, 1):
                try:
                    rec = json.loads(line)
                    assert {"ts", "level", "proc", "msg"} <= rec.keys()
                except (ValueError, AssertionError):
                    bad.append(f"{name}:{n}: {line[:200]}")
    assert not bad, "\n".join(bad[:20])
