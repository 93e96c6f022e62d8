"""test_check_vocab.py - check_vocab.py catches a vocabulary that drifts from
queue/states.h: each case copies what the checker reads (schemas/migrations,
schemas/openapi.yaml, schemas/messages) into a temporary tree, or edits the
vocab_dump output, changes one thing, and expects a FAIL line naming it. The
unchanged copy passes, so the checker reads nothing outside the tree given.

ONSALE_VOCAB_DUMP names the vocab_dump binary (set by ctest).
"""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHECKER = os.path.join(ROOT, "tests", "unit", "check_vocab.py")


@pytest.fixture(scope="module")
def vocab():
    dump = os.environ.get("ONSALE_VOCAB_DUMP")
    assert dump, "ONSALE_VOCAB_DUMP must name the vocab_dump binary (ctest sets it)"
    return json.loads(subprocess.run([dump], check=True, capture_output=True, text=True).stdout)


@pytest.fixture
def tree(tmp_path):
    shutil.copytree(os.path.join(ROOT, "schemas"), tmp_path / "schemas")
    return tmp_path


def run(tree, vocab):
    path = tree / "vocab.json"
    path.write_text(json.dumps(vocab))
    p = subprocess.run([sys.executable, CHECKER, str(path), str(tree)],
                       capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def edit(path, old, new, count=1):
    text = path.read_text()
    assert text.count(old) >= 1, (path, old)
    path.write_text(text.replace(old, new, count))


def test_unchanged_tree_passes(tree, vocab):
    rc, out = run(tree, vocab)
    assert rc == 0, out


def test_a_state_added_in_c_only_fails(tree, vocab):
    vocab["intent_states"].append("parked")
    rc, out = run(tree, vocab)
    assert rc == 1
    assert "intents.state" in out and "parked" in out
    assert "IntentState" in out  # the API does not list it either


def test_a_new_migration_that_widens_a_check_fails(tree, vocab):
    (tree / "schemas" / "migrations" / "9999_more.sql").write_text(
        "ALTER TABLE seats DROP CONSTRAINT seats_status_check;\n"
        "ALTER TABLE seats ADD CONSTRAINT seats_status_check\n"
        "    CHECK (status IN ('available', 'held', 'paying', 'sold', 'blocked'));\n")
    rc, out = run(tree, vocab)
    assert rc == 1 and "seats.status" in out and "blocked" in out, out


def test_a_renamed_event_status_in_sql_fails(tree, vocab):
    edit(tree / "schemas" / "migrations" / "0001_init.sql", "'paused', 'sold_out'",
         "'on_hold', 'sold_out'")
    rc, out = run(tree, vocab)
    assert rc == 1 and "events.status" in out and "on_hold" in out, out


def test_the_active_index_must_match(tree, vocab):
    edit(tree / "schemas" / "migrations" / "0001_init.sql",
         "WHERE state IN ('queued', 'waiting', 'reserved', 'paying')",
         "WHERE state IN ('queued', 'waiting', 'reserved')")
    rc, out = run(tree, vocab)
    assert rc == 1 and "intents_one_active" in out and "paying" in out, out


def test_seat_maximum_drift_fails(tree, vocab):
    vocab["limits"]["max_seats"] = 12
    rc, out = run(tree, vocab)
    assert rc == 1
    for where in ("intents.quantity", "reservations.seat_count", "events.max_per_user",
                  "IntentCreate/properties/quantity", "intent.schema.json"):
        assert where in out, (where, out)


def test_seq_split_drift_fails(tree, vocab):
    vocab["limits"]["seq_offset_bits"] = 41
    rc, out = run(tree, vocab)
    assert rc == 1 and "intents CHECKs shift by [40]" in out, out
    vocab["limits"]["seq_offset_bits"] = 40
    vocab["limits"]["seq_control_bit"] = 1 << 38
    rc, out = run(tree, vocab)
    assert rc == 1 and "partition_owner" in out, out


@pytest.mark.parametrize("old,new,where", [
    ("enum: [scheduled, on_sale, paused, sold_out, cancelled, ended]",
     "enum: [scheduled, on_sale, paused, sold_out, cancelled]", "EventStatus"),
    ("enum: [prequeued, queued, waiting,", "enum: [queued, waiting,", "IntentState"),
    ("enum: [sold_out, insufficient_seats, duplicate, sale_closed, cancelled, misrouted]",
     "enum: [sold_out, insufficient_seats, duplicate, sale_closed, cancelled]",
     "IntentStatus/properties/reason"),
    ("enum: [pending, paid, failed, refunded]\n    CheckoutAccepted",
     "enum: [pending, paid, failed]\n    CheckoutAccepted", "OrderState"),
    ("enum: [valid, cancelled, voided]", "enum: [valid, cancelled]", "TicketStatus"),
    ("enum: [not_held, declined, failed, expired, cancelled, ended]",
     "enum: [not_held, declined, failed, expired, cancelled]", "Order/properties/reason"),
])
def test_openapi_enum_drift_fails(tree, vocab, old, new, where):
    edit(tree / "schemas" / "openapi.yaml", old, new)
    rc, out = run(tree, vocab)
    assert rc == 1 and where in out, out


def test_openapi_seat_maximum_drift_fails(tree, vocab):
    spec = tree / "schemas" / "openapi.yaml"
    text = spec.read_text()
    text, n = re.subn(r"(max_per_user: \{type: integer, minimum: 1, maximum: )10", r"\g<1>8", text)
    assert n >= 1
    spec.write_text(text)
    rc, out = run(tree, vocab)
    assert rc == 1 and "max_per_user: maximum 8" in out, out


def test_record_schema_drift_fails(tree, vocab):
    edit(tree / "schemas" / "messages" / "event_status.schema.json", '"ended"]', '"ended", "sold_out"]')
    rc, out = run(tree, vocab)
    assert rc == 1 and "event_status.schema.json" in out and "sold_out" in out, out


def test_a_missing_list_is_a_failure_not_a_pass(tree, vocab):
    edit(tree / "schemas" / "migrations" / "0001_init.sql",
         "CHECK (status IN ('available', 'held', 'paying', 'sold'))", "CHECK (status <> '')")
    rc, out = run(tree, vocab)
    assert rc == 1 and "seats.status IN ...) vs seat_states: not found" in out, out
