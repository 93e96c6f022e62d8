#!/usr/bin/env python3
"""Keeps the HTTP contract true: schemas/openapi.yaml against the server's
own route table and error codes, and against docs/api.md, the human-readable
contract. Everything it reads is inside the repository.

usage: check_openapi.py [SOURCE_DIR]     (default: this checkout)

Reads SOURCE_DIR/schemas/openapi.yaml, docs/api.md, ingress/routes.c, the
error table ingress/api_error.h and the error replies of ingress/*.c and
common/httpd*.c. Checks, each failure
printed as one FAIL line (exit 1 if any):
  * the YAML parses and is an OpenAPI 3.0 document (info, paths, components),
    every $ref resolves, every operation has an operationId (unique) and
    responses, every path template variable is declared as a path parameter,
    and every security requirement names a declared scheme;
  * routes: every row of ing_routes[] (ingress/routes.c) is an operation of
    openapi.yaml and an endpoint of docs/api.md, and every operation of
    openapi.yaml is a route (path parameter names may differ); a route open
    to everyone (roles 0) has `security: []`, any other route does not;
  * error codes: every (status, code) the server can answer -- each row of
    the API error table (ingress/api_error.h, X(ING_E_..., status, "code",
    retry, "message")) whose id some ingress source names, the literal code
    and status of each call to a function taking `const char *code` (the
    common/httpd*.c checks), and each "code":"..." built by hand -- is
    listed in openapi.yaml under
    components.schemas.Error (property error.code, x-codes: {code:
    [statuses]}), its status is a response of some operation, and it is a
    row of docs/api.md's error table ("| `code` | 400, 409 | ..."); and
    neither lists a code or status the server never answers;
  * docs/api.md's endpoint items (lines like "- `POST /v1/venues` ...",
    "`/resume`" shorthands after a full path) are operations of
    openapi.yaml; the query parameters they show (`?q=&city=`) are declared;
    the success status after the arrow ("→ 201") is a declared response;
  * the request and response bodies docs/api.md sketches (`{name, lat?,
    ...}`) match the schemas: every field exists, a field without "?" is
    required in responses and requests, a "?" field is not required, enums
    written as (a|b|c) and ranges written as (1–10, default 8) agree;
  * prose enums ("States: `queued` -> ...", "status (`a` | `b`)") equal the
    response schema's enums;
  * the error shape `{"error":{...}}` matches components.schemas.Error;
  * every `snake_case` word in an endpoint's item (states, reasons, error
    codes) occurs in openapi.yaml.
"""
import glob
import json
import os
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


# ---------------------------------------------------------------- docs/api.md


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
    """Parses an api.md body sketch '{a, b?, c (x|y), d:{...}, e:[{...}]}'
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


# ------------------------------------------------------- bodies in api.md


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
            fail(f"{at} is optional in api.md but required in the schema")
        if not f["optional"] and name not in required:
            fail(f"{at} is required in api.md but optional in the schema")
        note = f["note"] or ""
        enum = enum_of(note)
        if enum and sorted(enum) != sorted(prop.get("enum", [])):
            fail(f"{at}: enum {enum} in api.md, {prop.get('enum')} in the schema")
        rng = re.search(r"(\d+)\s*[–-]\s*(\d+)", note)
        if rng and (prop.get("minimum"), prop.get("maximum")) != (int(rng[1]), int(rng[2])):
            fail(f"{at}: range {rng[1]}..{rng[2]} in api.md, "
                 f"{prop.get('minimum')}..{prop.get('maximum')} in the schema")
        dflt = re.search(r"default (\w+)", note)
        if dflt and str(prop.get("default")).lower() != dflt[1].lower():
            fail(f"{at}: default {dflt[1]} in api.md, {prop.get('default')} in the schema")
        value = " ".join((f["value"] or "").split())
        if value.startswith('"'):
            const = value.strip('"')
            if const not in prop.get("enum", [const]) or "enum" not in prop:
                fail(f"{at}: api.md fixes it to {const!r}, the schema does not")
        elif value.startswith("{"):
            sub = parse_fields(value)
            if sub:
                check_fields(doc, f"{where}.{name}", sub, props[name], request)
        elif value.startswith("["):
            if prop.get("type") != "array":
                fail(f"{at} is an array in api.md, not in the schema")
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
            fail(f"{where}: api.md shows a request body, openapi.yaml has none")
        else:
            check_fields(doc, f"{where} request", req, schema, True)
    if not arrow:
        return
    m = re.match(r"\s*(\d{3})?", tail)
    status = m.group(1) or "200"
    if status not in (op.get("responses") or {}):
        fail(f"{where}: api.md answers {status}, openapi.yaml does not declare it")
        return
    spans_after = [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", tail)]
    resp = parse_fields(spans_after[0]) if spans_after else None
    if resp is None:
        return
    schema = json_body(doc, op, "response", status)
    if schema is None:
        fail(f"{where}: api.md shows a {status} body, openapi.yaml has none")
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
            fail(f"{where}: states {states} in api.md, {enum('state')} in the schema")
        missing = set(reasons) - set(enum("reason"))
        if missing:
            fail(f"{where}: reasons {sorted(missing)} missing from the schema")
    m = re.search(r"status\s*\(((?:\s*`[a-z_]+`\s*\|?)+)\)", item)
    if m:
        statuses = re.findall(r"`([a-z_]+)`", m.group(1))
        if sorted(statuses) != sorted(enum("status")):
            fail(f"{where}: statuses {statuses} in api.md, {enum('status')} in the schema")


def check_error_shape(doc, text):
    m = re.search(r'`(\{"error":\{.*?\}\})`', text)
    if not m:
        fail("api.md: no error shape {\"error\":{...}} found")
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
            fail(f"Error schema: field {name} required-ness differs from api.md")


def check_words(spec_text, endpoints):
    """Every `snake_case` word api.md writes in an endpoint's item (states,
    reasons, error codes, statuses) must occur in openapi.yaml."""
    words = set(re.findall(r"[A-Za-z0-9_]+", spec_text))
    items = {(line, item) for _, _, _, line, item in endpoints}
    for line, item in sorted(items):
        for span in re.findall(r"`([a-z][a-z0-9_]*)`", item):
            if span not in words:
                fail(f"api.md:{line}: `{span}` does not occur in openapi.yaml")


# ------------------------------------------------ the server's own tables


def c_source(path):
    """A C file with its comments blanked (line numbers kept)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return re.sub(r"/\*.*?\*/|//[^\n]*",
                  lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)


def parse_routes(path):
    """ing_routes[] rows of ingress/routes.c: [(name, method, pattern,
    roles)], roles '0' for routes open to everyone."""
    text = c_source(path)
    body = text[text.index("ing_routes[]"):]
    rows = re.findall(r'\{\s*"([a-z_]+)"\s*,\s*"([A-Z]+)"\s*,\s*"([^"]*)"\s*,\s*(\w+)\s*,'
                      r'\s*([^,]+?)\s*,\s*([01]|ING_BODY_OWN)\s*(?:,[^{}]*)?\}', body)
    return [(name, method.lower(), pattern, roles.strip()) for name, method, pattern, _, roles, _
            in rows]


def split_args(s):
    """Top-level comma split of a C argument list (strings and nesting kept)."""
    args, depth, cur, i = [], 0, "", 0
    while i < len(s):
        ch = s[i]
        if ch == '"':
            j = i + 1
            while j < len(s) and s[j] != '"':
                j += 2 if s[j] == "\\" else 1
            cur += s[i:j + 1]
            i = j + 1
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            args.append(cur.strip())
            cur = ""
        else:
            cur += ch
        i += 1
    if cur.strip():
        args.append(cur.strip())
    return args


def calls(text, name):
    """Yields (offset, [args]) for each call name(...) in text that is not
    the function's definition."""
    for m in re.finditer(r"\b%s\s*\(" % re.escape(name), text):
        before = text[max(0, m.start() - 40):m.start()]
        depth, i = 1, m.end()
        while i < len(text) and depth:
            if text[i] == '"':
                i += 1
                while i < len(text) and text[i] != '"':
                    i += 2 if text[i] == "\\" else 1
            elif text[i] == "(":
                depth += 1
            elif text[i] == ")":
                depth -= 1
            i += 1
        after = text[i:i + 20].lstrip()
        if re.search(r"(void|int|static)\s*\*?\s*$", before) and after.startswith("{"):
            continue  # the definition
        yield m.start(), split_args(text[m.end():i - 1])


CODE_LITERAL = re.compile(r'"([a-z][a-z0-9_]*)"')
STATUS = re.compile(r"^[1-5][0-9][0-9]$")


def error_functions(sources):
    """Functions taking `const char *code`: {name: (file or None, code_index,
    status)}, status the index of an `int status` parameter, or a fixed
    literal status the function passes on (a wrapper such as
    join_fail_503), or None. file is set for static functions (their calls
    are looked for in that file only)."""
    found = {}
    for path, text in sources.items():
        for m in re.finditer(r"(static\s+)?(?:void|int)\s+(\w+)\s*\(([^)]*\bconst char \*code\b[^)]*)\)\s*\{",
                             text):
            params = split_args(m.group(3))
            ci = next(i for i, p in enumerate(params) if re.search(r"\bcode$", p))
            si = next((i for i, p in enumerate(params) if re.fullmatch(r"int\s+status", p)), None)
            found[m.group(2)] = [path if m.group(1) else None, ci, si, m.end(), text]
    for name, f in found.items():
        if f[2] is not None:
            continue
        body = f[4][f[3]:f[4].find("\n}", f[3])]
        for other, g in found.items():
            for _, args in calls(body, other):
                if len(args) > max(g[1], g[2] or 0) and args[g[1]] == "code" \
                        and g[2] is not None and STATUS.match(args[g[2]]):
                    f[2] = int(args[g[2]])
    return {n: (f[0], f[1], f[2]) for n, f in found.items()}


ERROR_ROW = re.compile(r'\bX\(\s*(ING_E_[A-Z0-9_]+)\s*,\s*(\d+)\s*,\s*"([a-z][a-z0-9_]*)"\s*,'
                       r'\s*(\d+)\s*,')


def error_table(root):
    """Rows of ingress/api_error.h's ING_API_ERRORS: {id: (status, code,
    line)}. A missing table or one that parses to nothing fails."""
    path = os.path.join(root, "ingress", "api_error.h")
    if not os.path.exists(path):
        fail("ingress/api_error.h: no error table")
        return {}
    text = c_source(path)
    rows = {}
    for m in ERROR_ROW.finditer(text.replace("\\\n", " \n")):
        if m.group(1) in rows:
            fail(f"ingress/api_error.h: {m.group(1)} is two rows")
        rows[m.group(1)] = (int(m.group(2)), m.group(3), text.count("\n", 0, m.start()) + 1)
    if len(rows) < 10:
        fail(f"ingress/api_error.h: only {len(rows)} error rows parsed; has the format changed?")
    return rows


def server_error_codes(root):
    """{code: {status: [where, ...]}} of every error reply the server's code
    can make (see the module docstring for what is recognised)."""
    paths = sorted(glob.glob(os.path.join(root, "ingress", "*.c")))
    headers = sorted(p for p in glob.glob(os.path.join(root, "ingress", "*.h"))
                     if os.path.basename(p) != "api_error.h")
    paths.append(os.path.join(root, "common", "httpd.c"))
    paths.append(os.path.join(root, "common", "httpd_gate.c"))
    paths.append(os.path.join(root, "common", "httpd_head.c"))
    sources = {p: c_source(p) for p in paths}
    funcs = error_functions(sources)
    out = {}

    def add(code, status, path, text, off):
        where = f"{os.path.relpath(path, root)}:{text.count(chr(10), 0, off) + 1}"
        out.setdefault(code, {}).setdefault(status, []).append(where)

    # The table: a row answers when an ingress file names its id.
    table = error_table(root)
    used = set()
    for path in paths + headers:
        text = sources.get(path) or c_source(path)
        for m in re.finditer(r"\b(ING_E_[A-Z0-9_]+)\b", text):
            if m.group(1) == "ING_E_COUNT":
                continue
            if m.group(1) not in table:
                fail(f"{os.path.relpath(path, root)}: {m.group(1)} is not a row of "
                     f"ingress/api_error.h")
                continue
            used.add(m.group(1))
            status, code, _ = table[m.group(1)]
            add(code, status, path, text, m.start())
    for eid in sorted(set(table) - used):
        fail(f"ingress/api_error.h:{table[eid][2]}: {eid} is answered nowhere (drop the row)")

    for path, text in sources.items():
        for name, (home, ci, si) in funcs.items():
            if home and home != path:
                continue
            for off, args in calls(text, name):
                if len(args) <= ci:
                    continue
                arg = args[ci]
                if "?" in arg:  # cond ? "a" : "b": the codes follow the '?'
                    arg = arg.split("?", 1)[1]
                codes = CODE_LITERAL.findall(arg)
                if not codes:
                    continue  # passed through (code, e.code): found at its origin
                status = args[si] if si is not None and si < 100 and si < len(args) else str(si)
                if not STATUS.match(status):
                    fail(f"{os.path.relpath(path, root)}: {name}(...) with code {codes} "
                         f"and a status that is not a literal ({status})")
                    continue
                for code in codes:
                    add(code, int(status), path, text, off)
        # "code" given by hand: json_pack(... "code", "x" ...) or "\"code\":\"x\""
        for m in re.finditer(r'"code"\s*,\s*"([a-z][a-z0-9_]*)"|\\"code\\":\\"([a-z][a-z0-9_]*)\\"',
                             text):
            code = m.group(1) or m.group(2)
            # its status: the nearest 4xx/5xx literal
            window_start = max(0, m.start() - 300)
            near = sorted((abs(window_start + s.start() - m.start()), int(s.group(1))) for s in
                          re.finditer(r"\b([45][0-9][0-9])\b",
                                      text[window_start:m.start() + 400]))
            if not near:
                fail(f"{os.path.relpath(path, root)}: error code {code} built by hand with no "
                     f"status nearby")
                continue
            add(code, near[0][1], path, text, m.start())
    return out


def check_routes(routes, ops, endpoints):
    """Route table <-> openapi.yaml operations <-> docs/api.md endpoints."""
    if len(routes) < 15:
        fail(f"ingress/routes.c: only {len(routes)} routes parsed; has the format changed?")
    served = set()
    documented = {(m, norm(p)) for m, p, _, _, _ in endpoints}
    for name, method, pattern, roles in routes:
        key = (method, norm(pattern))
        served.add(key)
        where = f"ingress/routes.c route {name} ({method.upper()} {pattern})"
        if key not in ops:
            fail(f"{where}: not in openapi.yaml")
        else:
            public = ops[key][1].get("security") == []
            if public != (roles == "0"):
                fail(f"{where}: roles {roles}, but openapi.yaml "
                     f"{'has' if public else 'lacks'} `security: []`")
        if key not in documented:
            fail(f"{where}: not in docs/api.md")
    for key, (where, _, _) in sorted(ops.items()):
        if key not in served:
            fail(f"openapi: {where} is not a route of ingress/routes.c")


def api_error_table(text):
    """Rows '| `code` | 400, 409 | meaning |' of docs/api.md: {code: {statuses}}."""
    rows = {}
    for m in re.finditer(r"^\|\s*`([a-z][a-z0-9_]*)`\s*\|\s*([0-9, ]+)\|", text, re.M):
        rows[m.group(1)] = {int(s) for s in re.findall(r"\d{3}", m.group(2))}
    return rows


def check_error_codes(doc, ops, server, table):
    err = flatten(doc, {"$ref": "#/components/schemas/Error"})
    inner = flatten(doc, err.get("properties", {}).get("error", {}))
    code_prop = inner.get("properties", {}).get("code", {})
    spec = code_prop.get("x-codes")
    if not isinstance(spec, dict):
        fail("openapi: components.schemas.Error error.code has no x-codes map {code: [statuses]}")
        spec = {}
    declared = {s for _, (_, op, _) in ops.items() for s in (op.get("responses") or {})}
    if not table:
        fail("docs/api.md: no error code table (rows like '| `code` | 400 | meaning |')")
    for code, statuses in sorted(server.items()):
        where = f"error code {code} ({', '.join(sorted({w for ws in statuses.values() for w in ws})[:3])})"
        want = set(statuses)
        have = set(spec.get(code) or [])
        if code not in spec:
            fail(f"{where}: not in openapi.yaml (Error error.code x-codes)")
        elif want != have:
            fail(f"{where}: answered with {sorted(want)}, openapi.yaml x-codes says {sorted(have)}")
        if code not in table:
            fail(f"{where}: not in docs/api.md's error table")
        elif want != table[code]:
            fail(f"{where}: answered with {sorted(want)}, docs/api.md says {sorted(table[code])}")
        for s in want:
            # 405 answers a method no operation of the path declares
            if s != 405 and str(s) not in declared:
                fail(f"{where}: status {s} is not a response of any operation in openapi.yaml")
    for code in sorted(set(spec) - set(server)):
        fail(f"openapi: x-codes lists {code}, which the server never answers")
    for code in sorted(set(table) - set(server)):
        fail(f"docs/api.md: the error table lists {code}, which the server never answers")


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    root = os.path.abspath(root)
    with open(os.path.join(root, "docs", "api.md"), encoding="utf-8") as f:
        text = f.read()
    with open(os.path.join(root, "schemas", "openapi.yaml"), encoding="utf-8") as f:
        spec_text = f.read()
    doc = yaml.safe_load(spec_text)
    ops = check_structure(doc)
    if not ops:
        return 1

    endpoints = parse_api(text)
    if len(endpoints) < 15:
        fail(f"api.md: only {len(endpoints)} endpoints parsed; has the format changed?")
    for method, path, query, line, item in endpoints:
        where = f"api.md:{line} {method.upper()} {path}"
        key = (method, norm(path))
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

    routes = parse_routes(os.path.join(root, "ingress", "routes.c"))
    check_routes(routes, ops, endpoints)
    server = server_error_codes(root)
    check_error_codes(doc, ops, server, api_error_table(text))

    print(f"{len(routes)} routes, {len(server)} error codes and {len(endpoints)} endpoints of "
          f"docs/api.md checked against {len(ops)} operations, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
