"""test_check_openapi.py - check_openapi.py catches a contract that drifts
from the server: each case copies what the checker reads (docs/api.md,
schemas/openapi.yaml, ingress/*.[ch] with the error table ingress/api_error.h,
common/httpd.c, common/httpd_gate.c, common/httpd_head.c) into a temporary tree,
changes one thing, and expects a FAIL line naming it. The unchanged copy
passes, so the checker reads nothing outside the tree it is given.
"""
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHECKER = os.path.join(ROOT, "tests", "unit", "check_openapi.py")


@pytest.fixture
def tree(tmp_path):
    for d in ("docs", "schemas", "ingress", "common"):
        os.makedirs(tmp_path / d)
    shutil.copy(os.path.join(ROOT, "docs", "api.md"), tmp_path / "docs")
    shutil.copy(os.path.join(ROOT, "schemas", "openapi.yaml"), tmp_path / "schemas")
    for f in ("httpd.c", "httpd_gate.c", "httpd_head.c"):
        shutil.copy(os.path.join(ROOT, "common", f), tmp_path / "common")
    for f in os.listdir(os.path.join(ROOT, "ingress")):
        if f.endswith(".c") or f.endswith(".h"):
            shutil.copy(os.path.join(ROOT, "ingress", f), tmp_path / "ingress")
    return tmp_path


def run(tree):
    p = subprocess.run([sys.executable, CHECKER, str(tree)], capture_output=True, text=True,
                       timeout=60)
    return p.returncode, [line for line in p.stdout.splitlines() if line.startswith("FAIL")]


def refused(tree, *lines):
    """The checker refuses tree (exit 1) with, for each of lines, a FAIL line
    holding it (a string) or every part of it (a tuple)."""
    rc, fails = run(tree)
    assert rc == 1, fails
    for want in lines:
        parts = (want,) if isinstance(want, str) else want
        assert any(all(x in f for x in parts) for f in fails), (want, fails)


def edit(path, old, new, count=1):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    assert old in text, f"{old!r} not in {path}"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(old, new, count))


def test_the_copy_passes(tree):
    assert run(tree) == (0, [])


def test_route_missing_from_the_spec(tree):
    spec = tree / "schemas" / "openapi.yaml"
    with open(spec, encoding="utf-8") as f:
        text = f.read()
    # drop the whole /v1/me/tickets path item
    text = re.sub(r"\n  /v1/me/tickets:\n(?:    .*\n|\n)*?(?=  /)", "\n", text)
    with open(spec, "w", encoding="utf-8") as f:
        f.write(text)
    refused(tree, "route my_tickets (GET /v1/me/tickets): not in openapi.yaml")


def test_new_route_missing_everywhere(tree):
    edit(tree / "ingress" / "routes.c", '    {"healthz", "GET", "/healthz"',
         '    {"refund_all", "POST", "/v1/refunds", ing_route_healthz, ADMIN, 0},\n'
         '    {"healthz", "GET", "/healthz"')
    refused(tree, "refund_all (POST /v1/refunds): not in openapi.yaml",
            "refund_all (POST /v1/refunds): not in docs/api.md")


def test_operation_that_is_no_route(tree):
    edit(tree / "ingress" / "routes.c", '    {"metrics", "GET", "/metrics", ing_route_metrics, 0, 0},\n',
         "")
    refused(tree, "GET /metrics is not a route")


def test_public_route_must_say_so(tree):
    edit(tree / "ingress" / "routes.c", '{"events_list", "GET", "/v1/events", ing_route_events_list, 0,',
         '{"events_list", "GET", "/v1/events", ing_route_events_list, FAN,')
    refused(tree, ("route events_list", "security: []"))


TABLE_ROW = 'X(ING_E_SOLD_OUT, 409, "sold_out", 0,'


def add_table_row(tree, row):
    edit(tree / "ingress" / "api_error.h", "    " + TABLE_ROW, "    " + row + " \\\n    " + TABLE_ROW)


def test_new_error_code_missing_from_spec_and_docs(tree):
    add_table_row(tree, 'X(ING_E_BRAND_NEW, 400, "brand_new_code", 0, "New.")')
    edit(tree / "ingress" / "routes_queue.c", "ING_E_INVALID_ID", "ING_E_BRAND_NEW")
    refused(tree, ("error code brand_new_code", "not in openapi.yaml"),
            ("error code brand_new_code", "not in docs/api.md"))


def test_code_answered_with_another_status(tree):
    edit(tree / "ingress" / "api_error.h", TABLE_ROW, TABLE_ROW.replace("409", "410"))
    refused(tree, ("error code sold_out", "[410]", "x-codes"), "status 410 is not a response")


def test_table_row_answered_nowhere(tree):
    add_table_row(tree, 'X(ING_E_SPARE, 409, "spare", 0, "Never said.")')
    refused(tree, "ING_E_SPARE is answered nowhere")


def test_site_names_an_id_the_table_lacks(tree):
    edit(tree / "ingress" / "routes_queue.c", "ING_E_INVALID_ID", "ING_E_INVALID_IDENT")
    refused(tree, "ING_E_INVALID_IDENT is not a row")


def test_literal_code_outside_the_table(tree):
    # The checks common/httpd.c makes before a route runs still say their
    # code and status as literals.
    edit(tree / "common" / "httpd.c", 'fail(e, 413, "payload_too_large"', 'fail(e, 413, "too_big"')
    refused(tree, ("error code too_big", "not in openapi.yaml"))


def test_code_the_server_never_answers(tree):
    edit(tree / "schemas" / "openapi.yaml", "                sold_out: [409]\n",
         "                sold_out: [409]\n                never_answered: [429]\n")
    edit(tree / "docs" / "api.md", "| `sold_out` | 409 |",
         "| `never_answered` | 429 | too many requests |\n| `sold_out` | 409 |")
    refused(tree, "x-codes lists never_answered", "error table lists never_answered")


def test_docs_row_missing(tree):
    edit(tree / "docs" / "api.md", "| `checkout_in_progress` | 409 |", "| checkout_in_progress | 409 |")
    refused(tree, ("checkout_in_progress", "not in docs/api.md"))


def test_docs_endpoint_body_drift(tree):
    edit(tree / "docs" / "api.md", "→ 201 `{venue_id, capacity}`", "→ 201 `{venue_id, capacity, seats}`")
    refused(tree, "field seats is missing from the schema")
