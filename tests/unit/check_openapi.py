#!/usr/bin/env python3
"""Keeps schemas/openapi.yaml in step with the API contract (shared/API.md).

usage: check_openapi.py API.md openapi.yaml

Checks, each failure printed as one FAIL line:
  * the YAML parses and is an OpenAPI 3.0 document (info, paths, components),
    every $ref resolves, every operation has an operationId (unique) and
    responses, every path template variable is declared as a path parameter,
    and every security requirement names a declared scheme;
  * every endpoint API.md names (lines like "- `POST /v1/venues` ...",
    "`/resume`" shorthands after a full path, /healthz /readyz /metrics) is
    an operation of openapi.yaml (path parameter names may differ);
  * the query parameters API.md shows (`?q=&city=`) are declared;
  * the success status after the arrow ("→ 201") is a declared response;
  * the request and response bodies API.md sketches (`{name, lat?, ...}`)
    match the schemas: every field exists, a field without "?" is required in
    responses and requests, a "?" field is not required, enums written as
    (a|b|c) and ranges written as (1–10, default 8) agree;
  * prose enums ("States: `queued` -> ...", "status (`a` | `b`)") equal the
    response schema's enums;
  * the error shape `{"error":{...}}` matches components.schemas.Error;
  * every `snake_case` word in an endpoint's item (states, reasons, error
    codes) occurs in openapi.yaml.
Endpoints only in openapi.yaml are listed but allowed (the implementation may
add endpoints).
"""
import json
import re
import sys

import yaml

METHODS = ("get", "post", "put", "patch", "delete")
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL " + msg)


def norm(path):
    """Path with parameter names erased: /v1/events/{id} -> /v1/events/{}."""
    return re.sub(r"\{[^}]*\}", "{}", path)


# ---------------------------------------------------------------- API.md


def api_items(text):
    """Yields (line_no, item_text) for each top-level markdown list item."""
    item, start = None, 0
    for no, line in enumerate(text.splitlines(), 1):
        if line.startswith("- "):
            if item is not None:
                yield start, item
            item, start = line[2:], no
        elif item is not None and line.startswith("  "):
            item += "\n" + line
        else:
            if item is not None:
                yield start, item
            item = None
    if item is not None:
        yield start, item


def split_top(s):
    """Splits s at commas outside (), [], {}."""
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts]


FIELD = re.compile(r"^([a-z_]+)(\?)?\s*(?:\((.*?)\))?\s*(?::\s*(.*))?$", re.S)


def parse_fields(body):
    """Parses an API.md body sketch '{a, b?, c (x|y), d:{...}, e:[{...}]}'
    into {name: {"optional", "note", "value"}}; None if it is not one."""
    body = " ".join(body.split())
    if not (body.startswith("{") and body.endswith("}")):
        return None
    fields = {}
    for tok in split_top(body[1:-1]):
        m = FIELD.match(tok)
        if not m:
            return None
        fields[m.group(1)] = {"optional": bool(m.group(2)), "note": m.group(3),
                              "value": m.group(4)}
    return fields


def parse_api(text):
    """Returns [(method, path, query_names, line, item)] for every endpoint."""
    endpoints = []
    for line_no, item in api_items(text):
        last = None
        for m in re.finditer(r"`([^`]+)`", item):
            span = " ".join(m.group(1).split())
            em = re.fullmatch(r"(GET|POST|PUT|PATCH|DELETE) (/\S*)", span)
            if em:
                path, _, query = em.group(2).partition("?")
                names = [q.split("=")[0] for q in query.split("&") if q]
                last = (em.group(1).lower(), path)
                endpoints.append((last[0], path, names, line_no, item))
            elif last and re.fullmatch(r"/[a-z_]+", span) and "\n" not in m.group(1):
                # "`POST /v1/events/{id}/pause`, `/resume`": a sibling path.
                path = last[1].rsplit("/", 1)[0] + span
                endpoints.append((last[0], path, [], line_no, item))
    return endpoints


# ---------------------------------------------------------------- OpenAPI


def resolve_ref(doc, ref):
    if not ref.startswith("#/"):
        return None
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def deref(doc, node):
    seen = 0
    while isinstance(node, dict) and "$ref" in node and seen < 32:
        node = resolve_ref(doc, node["$ref"])
        seen += 1
    return node


def flatten(doc, schema):
    """Schema with $ref followed and allOf merged (properties, required,
    and the scalar keywords of the first member that has them)."""
    schema = deref(doc, schema) or {}
    out = {k: v for k, v in schema.items() if k != "allOf"}
    out["properties"] = dict(schema.get("properties", {}))
    out["required"] = list(schema.get("required", []))
    for sub in schema.get("allOf", []):
        s = flatten(doc, sub)
        out["properties"].update(s.get("properties", {}))
        out["required"] += s.get("required", [])
        for k, v in s.items():
            out.setdefault(k, v)
    return out


def walk_refs(doc, node, where):
    """Fails on unresolved $refs and on null values: a YAML null is nowhere
    valid here and is the sign of a comma inside a {flow: mapping}."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and resolve_ref(doc, ref) is None:
            fail(f"openapi: unresolved $ref {ref} at {where}")
        for k, v in node.items():
            if v is None:
                fail(f"openapi: null value at {where}/{k} (unquoted comma in a flow mapping?)")
            walk_refs(doc, v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk_refs(doc, v, f"{where}/{i}")


def check_structure(doc):
    if not isinstance(doc, dict):
        fail("openapi: not a YAML mapping")
        return {}
    if not str(doc.get("openapi", "")).startswith("3."):
        fail(f"openapi: version field is {doc.get('openapi')!r}, want 3.x")
    info = doc.get("info") or {}
    if not info.get("title") or not info.get("version"):
        fail("openapi: info.title and info.version are required")
    if not isinstance(doc.get("paths"), dict) or not doc["paths"]:
        fail("openapi: no paths")
        return {}
    walk_refs(doc, doc, "#")
    schemes = (doc.get("components") or {}).get("securitySchemes") or {}
    bearer = schemes.get("bearerAuth") or {}
    if bearer.get("type") != "http" or bearer.get("scheme") != "bearer" \
            or bearer.get("bearerFormat") != "JWT":
        fail("openapi: securitySchemes.bearerAuth must be http bearer, bearerFormat JWT")

    ops, ids = {}, set()
    for path, item in doc["paths"].items():
        shared = [deref(doc, p) for p in item.get("parameters", [])]
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            where = f"{method.upper()} {path}"
            oid = op.get("operationId")
            if not oid or oid in ids:
                fail(f"openapi: {where}: missing or duplicate operationId {oid!r}")
            ids.add(oid)
            if not op.get("responses"):
                fail(f"openapi: {where}: no responses")
            params = shared + [deref(doc, p) for p in op.get("parameters", [])]
            declared = {p.get("name") for p in params if p and p.get("in") == "path"}
            for var in re.findall(r"\{([^}]*)\}", path):
                if var not in declared:
                    fail(f"openapi: {where}: path variable {{{var}}} not declared")
            for req in op.get("security", doc.get("security", [])):
                for name in req:
                    if name not in schemes:
                        fail(f"openapi: {where}: unknown security scheme {name}")
            key = (method, norm(path))
            if key in ops:
                fail(f"openapi: {where}: same path as {ops[key][0]}")
            ops[key] = (where, op, params)
    return ops


# ------------------------------------------------------- bodies in API.md


def enum_of(note):
    """'pending|paid|failed' -> [...]; None when note is not an enum."""
    if note and re.fullmatch(r"[a-z_]+(\|[a-z_]+)+", note.replace(" ", "")):
        return note.replace(" ", "").split("|")
    return None


def check_fields(doc, where, api_fields, schema, request):
    schema = flatten(doc, schema)
    props, required = schema.get("properties", {}), set(schema.get("required", []))
    for name, f in api_fields.items():
        at = f"{where}: field {name}"
        if name not in props:
            fail(f"{at} is missing from the schema")
            continue
        prop = flatten(doc, props[name])
        if f["optional"] and name in required:
            fail(f"{at} is optional in API.md but required in the schema")
        if not f["optional"] and name not in required:
            fail(f"{at} is required in API.md but optional in the schema")
        note = f["note"] or ""
        enum = enum_of(note)
        if enum and sorted(enum) != sorted(prop.get("enum", [])):
            fail(f"{at}: enum {enum} in API.md, {prop.get('enum')} in the schema")
        rng = re.search(r"(\d+)\s*[–-]\s*(\d+)", note)
        if rng and (prop.get("minimum"), prop.get("maximum")) != (int(rng[1]), int(rng[2])):
            fail(f"{at}: range {rng[1]}..{rng[2]} in API.md, "
                 f"{prop.get('minimum')}..{prop.get('maximum')} in the schema")
        dflt = re.search(r"default (\w+)", note)
        if dflt and str(prop.get("default")).lower() != dflt[1].lower():
            fail(f"{at}: default {dflt[1]} in API.md, {prop.get('default')} in the schema")
        value = " ".join((f["value"] or "").split())
        if value.startswith('"'):
            const = value.strip('"')
            if const not in prop.get("enum", [const]) or "enum" not in prop:
                fail(f"{at}: API.md fixes it to {const!r}, the schema does not")
        elif value.startswith("{"):
            sub = parse_fields(value)
            if sub:
                check_fields(doc, f"{where}.{name}", sub, props[name], request)
        elif value.startswith("["):
            if prop.get("type") != "array":
                fail(f"{at} is an array in API.md, not in the schema")
            inner = value[1:-1].strip()
            sub = parse_fields(inner) if inner.startswith("{") else None
            if sub:
                check_fields(doc, f"{where}.{name}[]", sub, prop.get("items", {}), request)


def json_body(doc, op, kind, status=None):
    if kind == "request":
        body = deref(doc, op.get("requestBody")) or {}
    else:
        body = deref(doc, (op.get("responses") or {}).get(status)) or {}
    return ((body.get("content") or {}).get("application/json") or {}).get("schema")


def check_bodies(doc, method, path, item, where, op):
    head, arrow, tail = item.partition("→")
    spans_before = [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", head)]
    req = next((parse_fields(s) for s in spans_before if s.startswith("{")), None)
    if req:
        schema = json_body(doc, op, "request")
        if schema is None:
            fail(f"{where}: API.md shows a request body, openapi.yaml has none")
        else:
            check_fields(doc, f"{where} request", req, schema, True)
    if not arrow:
        return
    m = re.match(r"\s*(\d{3})?", tail)
    status = m.group(1) or "200"
    if status not in (op.get("responses") or {}):
        fail(f"{where}: API.md answers {status}, openapi.yaml does not declare it")
        return
    spans_after = [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", tail)]
    resp = parse_fields(spans_after[0]) if spans_after else None
    if resp is None:
        return
    schema = json_body(doc, op, "response", status)
    if schema is None:
        fail(f"{where}: API.md shows a {status} body, openapi.yaml has none")
        return
    check_fields(doc, f"{where} {status}", resp, schema, False)
    # "`reservation = {...}`" later in the item defines a nested object.
    for s in spans_after[1:]:
        dm = re.fullmatch(r"([a-z_]+) = (\{.*\})", s)
        sub = parse_fields(dm.group(2)) if dm else None
        if sub:
            prop = flatten(doc, schema).get("properties", {}).get(dm.group(1))
            if prop is None:
                fail(f"{where} {status}: field {dm.group(1)} is missing from the schema")
            else:
                check_fields(doc, f"{where} {status}.{dm.group(1)}", sub, prop, False)


def check_states(doc, item, where, op):
    """Prose enums of an item: "States: `a` -> `b` ...; or `x` (reason `r`,
    ...)" must equal the response's state enum (reasons within its reason
    enum), and "status (`a` | `b` ...)" must equal its status enum."""
    ok = [s for s in ("200", "201", "202") if s in (op.get("responses") or {})]
    schema = json_body(doc, op, "response", ok[0]) if ok else None
    props = flatten(doc, schema).get("properties", {}) if schema else {}

    def enum(name):
        return flatten(doc, props[name]).get("enum", []) if name in props else []

    m = re.search(r"States:(.*)", item, re.S)
    if m:
        prose = m.group(1)
        reasons = []
        for r in re.findall(r"\(reason ([^)]*)\)", prose):
            reasons += re.findall(r"`([a-z_]+)`", r)
        states = re.findall(r"`([a-z_]+)`", re.sub(r"\(reason [^)]*\)", "", prose))
        if sorted(states) != sorted(enum("state")):
            fail(f"{where}: states {states} in API.md, {enum('state')} in the schema")
        missing = set(reasons) - set(enum("reason"))
        if missing:
            fail(f"{where}: reasons {sorted(missing)} missing from the schema")
    m = re.search(r"status\s*\(((?:\s*`[a-z_]+`\s*\|?)+)\)", item)
    if m:
        statuses = re.findall(r"`([a-z_]+)`", m.group(1))
        if sorted(statuses) != sorted(enum("status")):
            fail(f"{where}: statuses {statuses} in API.md, {enum('status')} in the schema")


def check_error_shape(doc, text):
    m = re.search(r'`(\{"error":\{.*?\}\})`', text)
    if not m:
        fail("API.md: no error shape {\"error\":{...}} found")
        return
    sample = json.loads(m.group(1))["error"]
    err = flatten(doc, {"$ref": "#/components/schemas/Error"})
    inner = flatten(doc, err.get("properties", {}).get("error", {}))
    props, required = inner.get("properties", {}), set(inner.get("required", []))
    if "error" not in err.get("required", []):
        fail("Error schema: 'error' must be required")
    for name, val in sample.items():
        if name not in props:
            fail(f"Error schema: field {name} missing")
        elif (val == "optional") == (name in required):
            fail(f"Error schema: field {name} required-ness differs from API.md")


def check_words(spec_text, endpoints):
    """Every `snake_case` word API.md writes in an endpoint's item (states,
    reasons, error codes, statuses) must occur in openapi.yaml."""
    words = set(re.findall(r"[A-Za-z0-9_]+", spec_text))
    items = {(line, item) for _, _, _, line, item in endpoints}
    for line, item in sorted(items):
        for span in re.findall(r"`([a-z][a-z0-9_]*)`", item):
            if span not in words:
                fail(f"API.md:{line}: `{span}` does not occur in openapi.yaml")


def main():
    api_path, spec_path = sys.argv[1], sys.argv[2]
    with open(api_path, encoding="utf-8") as f:
        text = f.read()
    with open(spec_path, encoding="utf-8") as f:
        spec_text = f.read()
    doc = yaml.safe_load(spec_text)
    ops = check_structure(doc)
    if not ops:
        return 1

    endpoints = parse_api(text)
    if len(endpoints) < 15:
        fail(f"API.md: only {len(endpoints)} endpoints parsed; has the format changed?")
    seen = set()
    for method, path, query, line, item in endpoints:
        where = f"API.md:{line} {method.upper()} {path}"
        key = (method, norm(path))
        seen.add(key)
        if key not in ops:
            fail(f"{where}: not in openapi.yaml")
            continue
        _, op, params = ops[key]
        qnames = {p.get("name") for p in params if p and p.get("in") == "query"}
        for q in query:
            if q not in qnames:
                fail(f"{where}: query parameter {q} not declared")
        check_bodies(doc, method, path, item, where, op)
        check_states(doc, item, where, op)
    check_error_shape(doc, text)
    check_words(spec_text, endpoints)

    for key, (where, _, _) in sorted(ops.items()):
        if key not in seen:
            print(f"note: {where} is in openapi.yaml only")
    print(f"{len(endpoints)} endpoints of API.md checked against {len(ops)} operations, "
          f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
