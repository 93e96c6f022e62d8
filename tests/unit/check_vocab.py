#!/usr/bin/env python3
"""Keeps the shared vocabularies in step: queue/states.h (as compiled, printed
by vocab_dump) against the database's CHECK constraints, the HTTP contract
and the Kafka record schemas. Everything it reads is inside the repository.

usage: check_vocab.py VOCAB [SOURCE_DIR]    (default: this checkout)

VOCAB is the vocab_dump executable (run to get the JSON) or a JSON file of
its output. Checks, each failure printed as one FAIL line (exit 1 if any):
  * schemas/migrations/*.sql, applied in name order (a later ALTER TABLE ...
    CHECK replaces an earlier one): the CHECK (column IN (...)) lists of
    intents.state, intents.reason, reservations.state, events.status,
    seats.status, orders.state, orders.failure_reason and tickets.status hold the same names as the
    matching list of states.h; the intents_one_active index covers exactly
    the active intent states; intents.quantity, reservations.seat_count and
    events.max_per_user are BETWEEN 1 AND Q_MAX_SEATS; the intents and
    intent_tombstones CHECKs shift by Q_SEQ_OFFSET_BITS (partition, offset
    bound) and partition_owner's by Q_SEQ_CONTROL_BIT's (control offsets);
  * schemas/openapi.yaml: IntentState and IntentAccepted.state are
    "prequeued" and the intent states; IntentStatus.reason the reasons;
    EventStatus the event statuses; OrderState and CheckoutAccepted.state
    the order states; Order.reason the order reasons; TicketStatus the
    ticket statuses; every quantity and
    max_per_user property has maximum Q_MAX_SEATS;
  * schemas/messages: event_status.status lists the settable statuses,
    intent.quantity has maximum Q_MAX_SEATS.
Names are compared as sets (a list's order carries no meaning in SQL).
"""
import glob
import json
import os
import re
import subprocess
import sys

import yaml

# (table, column) -> the vocab_dump list its CHECK must equal.
SQL_LISTS = [
    (("intents", "state"), "intent_states"),
    (("intents", "reason"), "reasons"),
    (("reservations", "state"), "res_states"),
    (("events", "status"), "event_statuses"),
    (("seats", "status"), "seat_states"),
    (("orders", "state"), "order_states"),
    (("orders", "failure_reason"), "order_reasons"),
    (("tickets", "status"), "ticket_statuses"),
]
SQL_SEAT_LIMITS = [("intents", "quantity"), ("reservations", "seat_count"),
                   ("events", "max_per_user")]

failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL " + msg)


def load_vocab(arg):
    if os.access(arg, os.X_OK) and not arg.endswith(".json"):
        out = subprocess.run([arg], check=True, capture_output=True, text=True).stdout
        return json.loads(out)
    with open(arg) as f:
        return json.load(f)


def quoted(s):
    return re.findall(r"'([^']*)'", s)


def sql_facts(mig_dir):
    """What the migrations leave in force: CHECK IN lists by (table, column),
    BETWEEN bounds by (table, column), partial-index IN lists by index name,
    and the shift counts of each table's CHECKs."""
    ins, between, indexes, shifts = {}, {}, {}, {}
    files = sorted(glob.glob(os.path.join(mig_dir, "*.sql")))
    if not files:
        fail(f"no migrations in {mig_dir}")
    for path in files:
        with open(path) as f:
            text = f.read()
        text = re.sub(r"--[^\n]*", "", text)
        text = re.sub(r"\$(\w*)\$.*?\$\1\$", "", text, flags=re.S)  # function bodies
        for stmt in text.split(";"):
            m = re.match(r"\s*(?:CREATE|ALTER)\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", stmt, re.I)
            if m:
                table = m.group(1)
                for c in re.finditer(r"CHECK\s*\(\s*(\w+)\s+IN\s*\(([^)]*)\)\s*\)", stmt, re.I):
                    ins[(table, c.group(1))] = quoted(c.group(2))
                for c in re.finditer(r"CHECK\s*\(\s*(\w+)\s+BETWEEN\s+(\d+)\s+AND\s+(\d+)\s*\)",
                                     stmt, re.I):
                    between[(table, c.group(1))] = (int(c.group(2)), int(c.group(3)))
                for c in re.finditer(r"<<\s*(\d+)", stmt):
                    shifts.setdefault(table, set()).add(int(c.group(1)))
                continue
            m = re.match(r"\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(\w+).*?\bWHERE\b(.*)", stmt, re.I | re.S)
            if m:
                w = re.search(r"\w+\s+IN\s*\(([^)]*)\)", m.group(2))
                if w:
                    indexes[m.group(1)] = quoted(w.group(1))
    return ins, between, indexes, shifts


def same(what, got, want):
    if got is None:
        fail(f"{what}: not found")
        return
    missing, extra = [n for n in want if n not in got], [n for n in got if n not in want]
    if missing or extra:
        fail(f"{what}: lacks {missing} of queue/states.h, has {extra} that queue/states.h lacks")


def check_sql(v, root):
    ins, between, indexes, shifts = sql_facts(os.path.join(root, "schemas", "migrations"))
    for (table, col), key in SQL_LISTS:
        same(f"migrations: CHECK ({table}.{col} IN ...) vs {key}", ins.get((table, col)), v[key])
    same("migrations: index intents_one_active vs intent_active", indexes.get("intents_one_active"),
         v["intent_active"])
    seats = v["limits"]["max_seats"]
    for table, col in SQL_SEAT_LIMITS:
        b = between.get((table, col))
        if b != (1, seats):
            fail(f"migrations: {table}.{col} is BETWEEN {b} in SQL, 1..{seats} (Q_MAX_SEATS) in C")
    bits = v["limits"]["seq_offset_bits"]
    ctl = v["limits"]["seq_control_bit"].bit_length() - 1
    for table, want, name in (("intents", bits, "Q_SEQ_OFFSET_BITS"),
                              ("intent_tombstones", bits, "Q_SEQ_OFFSET_BITS"),
                              ("partition_owner", ctl, "Q_SEQ_CONTROL_BIT's")):
        if shifts.get(table) != {want}:
            fail(f"migrations: {table} CHECKs shift by {sorted(shifts.get(table, ()))}, "
                 f"{name} is {want}")


def dig(doc, path):
    for k in path:
        if not isinstance(doc, dict) or k not in doc:
            return None
        doc = doc[k]
    return doc


def seat_maximums(node, path, out):
    """Every (path, maximum) of a property named quantity or max_per_user."""
    if isinstance(node, dict):
        for k, sub in node.items():
            if k in ("quantity", "max_per_user") and isinstance(sub, dict) and "maximum" in sub:
                out.append(("/".join(path + [k]), sub["maximum"]))
            seat_maximums(sub, path + [str(k)], out)
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            seat_maximums(sub, path + [str(i)], out)
    return out


def check_openapi(v, root):
    with open(os.path.join(root, "schemas", "openapi.yaml")) as f:
        doc = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    s = ["components", "schemas"]
    intents = [v["intent_prequeued"]] + v["intent_states"]
    rules = [
        (s + ["IntentState", "enum"], intents, "prequeued + intent_states"),
        (s + ["IntentAccepted", "properties", "state", "enum"], intents, "prequeued + intent_states"),
        (s + ["IntentStatus", "properties", "reason", "enum"], v["reasons"], "reasons"),
        (s + ["EventStatus", "enum"], v["event_statuses"], "event_statuses"),
        (s + ["OrderState", "enum"], v["order_states"], "order_states"),
        (s + ["CheckoutAccepted", "properties", "state", "enum"], v["order_states"], "order_states"),
        (s + ["TicketStatus", "enum"], v["ticket_statuses"], "ticket_statuses"),
        (s + ["Order", "properties", "reason", "enum"], v["order_reasons"], "order_reasons"),
    ]
    for path, want, key in rules:
        same(f"openapi.yaml {'/'.join(path[2:])} vs {key}", dig(doc, path), want)
    found = seat_maximums(doc, [], [])
    if not found:
        fail("openapi.yaml: no quantity or max_per_user maximum found")
    for where, mx in found:
        if mx != v["limits"]["max_seats"]:
            fail(f"openapi.yaml {where}: maximum {mx}, Q_MAX_SEATS is {v['limits']['max_seats']}")


def check_messages(v, root):
    d = os.path.join(root, "schemas", "messages")
    with open(os.path.join(d, "event_status.schema.json")) as f:
        es = json.load(f)
    same("messages/event_status.schema.json status vs event_settable",
         dig(es, ["properties", "status", "enum"]), v["event_settable"])
    with open(os.path.join(d, "intent.schema.json")) as f:
        it = json.load(f)
    mx = dig(it, ["properties", "quantity", "maximum"])
    if mx != v["limits"]["max_seats"]:
        fail(f"messages/intent.schema.json quantity maximum {mx}, "
             f"Q_MAX_SEATS is {v['limits']['max_seats']}")


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    root = argv[2] if len(argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "..")
    v = load_vocab(argv[1])
    check_sql(v, root)
    check_openapi(v, root)
    check_messages(v, root)
    if failures:
        print(f"{len(failures)} vocabulary mismatch(es)")
        return 1
    print("vocabularies in step: migrations, openapi.yaml and record schemas")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
