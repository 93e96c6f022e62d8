"""contract.py - checks answers of the running server against
schemas/openapi.yaml, as a client written from the spec would read them.

Contract(spec_path).check(method, path, status, headers, body_text) finds the
operation whose path template and method match, and returns a list of
mismatches (strings; empty = conforms):
  * the status is one the operation lists;
  * Content-Type is one of that response's media types (its parameters, e.g.
    `version=0.0.4`, must be there too); a response without content has no
    body;
  * the body validates against the response's schema, converted from
    OpenAPI 3.0 to JSON Schema (draft 4): `$ref`s inlined, `nullable`,
    `allOf` merged, `date-time` checked as RFC 3339 in UTC;
  * POLICY (docs/api.md "Fields and endpoints may be added"): a client may
    meet fields it does not know, but the spec must name every field the
    server sends, so response objects are checked as if they had
    `additionalProperties: false` (unless the spec gives
    additionalProperties itself): an undocumented field is a mismatch of
    the spec, fixed by documenting it;
  * the headers the response marks `required: true` (Retry-After, ETag,
    Cache-Control, RateLimit...) are present, Content-Encoding when gzip
    was asked for, and every 429 and 503 carries Retry-After; every answer
    carries X-Request-Id, and Cache-Control no-store unless the response
    lists a Cache-Control of its own (the spec's preamble);
  * an error body's code is one x-codes lists with this status.
Operations answered with a 2xx or 304 are recorded in `covered` so a test
can require every operation of the spec to have been exercised.
"""
import json
import re
import urllib.parse

import jsonschema
import yaml

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|\+00:00)$")
METHODS = ("get", "post", "put", "patch", "delete")


def _format_checker():
    fc = jsonschema.FormatChecker(formats=())

    @fc.checks("date-time")
    def _dt(value):
        return not isinstance(value, str) or bool(RFC3339_UTC.match(value))
    return fc


class Contract:
    def __init__(self, spec_path):
        with open(spec_path) as f:
            self.spec = yaml.safe_load(f)
        self.ops = []  # (method, regex, template, operationId, operation)
        for template, item in self.spec["paths"].items():
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
            for m in METHODS:
                if m in item:
                    self.ops.append((m.upper(), re.compile(rx), template,
                                     item[m]["operationId"], item[m]))
        self.covered = {}  # operationId -> statuses seen (2xx/304)
        self.codes = (self.spec["components"]["schemas"]["Error"]["properties"]["error"]
                      ["properties"]["code"]["x-codes"])
        self.checker = _format_checker()

    def operation_ids(self):
        return {op[3] for op in self.ops}

    # ---- OpenAPI 3.0 -> JSON Schema -------------------------------------------
    def _resolve(self, ref):
        assert ref.startswith("#/"), ref
        node = self.spec
        for part in ref[2:].split("/"):
            node = node[part]
        return node

    def _merge(self, parts):
        out = {}
        for p in parts:
            for k, v in p.items():
                if k == "properties":
                    out.setdefault("properties", {}).update(v)
                elif k == "required":
                    out["required"] = sorted(set(out.get("required", [])) | set(v))
                elif k == "additionalProperties" and "additionalProperties" in out:
                    continue
                else:
                    out[k] = v
        return out

    def schema(self, s, strict=True):
        """s as draft-4 JSON Schema; strict: objects without an
        additionalProperties of their own take none (the policy above)."""
        if "$ref" in s:
            return self.schema(self._resolve(s["$ref"]), strict)
        s = dict(s)
        nullable = s.pop("nullable", False)
        if "allOf" in s:
            parts = [self.schema(p, strict) for p in s.pop("allOf")]
            rest = self.schema(s, strict) if s else {}
            # allOf parts are objects (or one scalar with a description):
            # merged, so the strict check sees every property at once.
            merged = self._merge(parts + [rest])
            for p in parts:
                if p.get("anyOf") and {"type": "null"} in p["anyOf"]:
                    nullable = True
                    merged = self._merge([x for x in p["anyOf"] if x != {"type": "null"}]
                                         + [x for x in parts if x is not p] + [rest])
            s = self._strict(merged) if strict else merged
        else:
            for k in ("description", "example", "examples", "default"):
                s.pop(k, None)
            for k in list(s):
                if k.startswith("x-"):
                    del s[k]
            if "properties" in s:
                s["properties"] = {k: self.schema(v, strict) for k, v in s["properties"].items()}
            if isinstance(s.get("additionalProperties"), dict):
                s["additionalProperties"] = self.schema(s["additionalProperties"], strict)
            if "items" in s:
                s["items"] = self.schema(s["items"], strict)
            if "anyOf" in s:
                s["anyOf"] = [self.schema(x, strict) for x in s["anyOf"]]
            if strict:
                s = self._strict(s)
        if nullable:
            return {"anyOf": [s, {"type": "null"}]}
        return s

    @staticmethod
    def _strict(s):
        # An object the spec gives no properties at all is held to the same
        # rule: whatever the server sends in it is undocumented.
        if ("properties" in s or s.get("type") == "object") and "additionalProperties" not in s:
            s = dict(s, additionalProperties=False)
        return s

    # ---- one answer --------------------------------------------------------------
    def operation(self, method, path):
        p = urllib.parse.urlsplit(path).path
        for m, rx, template, op_id, op in self.ops:
            # Templates are matched whole, segment by segment, so no two
            # operations of one method match one path.
            if m == method and rx.match(p):
                return template, op_id, op
        return None

    def check(self, method, path, status, headers, text, gzip_asked=False):
        """Mismatches of one answer (headers: lower-cased names)."""
        found = self.operation(method, path)
        if not found:
            return self._check_unrouted(method, path, status, headers, text)
        template, op_id, op = found
        where = f"{op_id} ({method} {template}) {status}"
        resp = op["responses"].get(str(status))
        if resp is None:
            return [f"{where}: status {status} not listed (listed: {sorted(op['responses'])})"]
        if "$ref" in resp:
            resp = self._resolve(resp["$ref"])
        out = []
        out += self._check_headers(where, status, resp, headers, gzip_asked)
        out += self._check_body(where, status, resp, headers, text)
        if not out and (200 <= status < 300 or status == 304):
            self.covered.setdefault(op_id, set()).add(status)
        return out

    def _check_unrouted(self, method, path, status, headers, text):
        """A request no operation takes (docs/api.md "Requests"): a path
        the spec has, with another method, is 405 method_not_allowed with
        Allow naming the methods it has; any other is 404 not_found."""
        p = urllib.parse.urlsplit(path).path
        allowed = sorted({m for m, rx, _, _, _ in self.ops if rx.match(p)})
        where = f"{method} {path} {status}"
        want = (405, "method_not_allowed") if allowed else (404, "not_found")
        try:
            code = json.loads(text)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = None
        out = []
        if (status, code) != want:
            out.append(f"{where}: no operation; expected {want}, got {(status, code)}")
        if allowed:
            got = sorted(x.strip() for x in headers.get("allow", "").split(",") if x.strip())
            # HEAD is served wherever GET is (an HTTP server's own rule).
            if [m for m in got if m != "HEAD"] != allowed:
                out.append(f"{where}: Allow {headers.get('allow')!r}, the spec has {allowed}")
        return out

    def _check_headers(self, where, status, resp, headers, gzip_asked):
        out = []
        listed = {}
        for name, h in (resp.get("headers") or {}).items():
            listed[name.lower()] = self._resolve(h["$ref"]) if "$ref" in h else h
        required = {n for n, h in listed.items() if h.get("required")}
        if status in (429, 503):
            required.add("retry-after")
        if gzip_asked and "content-encoding" in listed:
            required.add("content-encoding")
        # The preamble's promises for every answer: a request id, and
        # Cache-Control no-store unless the response names its own.
        required.add("x-request-id")
        if "cache-control" not in listed and headers.get("cache-control") != "no-store":
            out.append(f"{where}: Cache-Control {headers.get('cache-control')!r}, not no-store")
        for h in sorted(required):
            if h not in headers:
                out.append(f"{where}: header {h} promised, not sent")
        if "retry-after" in headers and not re.fullmatch(r"\d+", headers["retry-after"]):
            out.append(f"{where}: Retry-After {headers['retry-after']!r} is not whole seconds")
        for name, h in listed.items():
            sch = h.get("schema") or {}
            if name in headers and sch.get("type") == "string":
                errs = jsonschema.Draft4Validator(self.schema(sch)).iter_errors(headers[name])
                out += [f"{where}: header {name}: {e.message}" for e in errs]
        return out

    def _check_body(self, where, status, resp, headers, text):
        content = resp.get("content")
        if not content:
            if text:
                return [f"{where}: no content promised, got {text[:80]!r}"]
            return []
        ctype = headers.get("content-type", "")
        got = [x.strip().lower() for x in ctype.split(";")]
        match = None
        for media in content:
            want = [x.strip().lower() for x in media.split(";")]
            if want[0] == got[0] and all(w in got[1:] for w in want[1:]):
                match = media
        if match is None:
            return [f"{where}: Content-Type {ctype!r} not one of {sorted(content)}"]
        schema = content[match].get("schema")
        if not match.startswith("application/json") or schema is None:
            return []
        try:
            body = json.loads(text)
        except ValueError:
            return [f"{where}: body is not JSON: {text[:80]!r}"]
        js = self.schema(schema)
        v = jsonschema.Draft4Validator(js, format_checker=self.checker)
        out = [f"{where}: {'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}"
               for e in sorted(v.iter_errors(body), key=lambda e: list(map(str, e.path)))]
        if status >= 400 and isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = body["error"].get("code")
            if status not in self.codes.get(code, []):
                out.append(f"{where}: error code {code!r} not listed with {status} in x-codes")
        return out
