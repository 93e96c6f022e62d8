#!/usr/bin/env python3
"""Validates every record msg_samples prints against its JSON Schema, and
checks that each schema rejects a record with an unknown field (so the
schemas are as strict as the codec)."""
import json, subprocess, sys, pathlib
import jsonschema

samples_bin, schema_dir = sys.argv[1], pathlib.Path(sys.argv[2])
schemas = {p.name.split('.')[0]: json.loads(p.read_text()) for p in schema_dir.glob('*.schema.json')}
out = subprocess.run([samples_bin], check=True, capture_output=True, text=True).stdout
seen, failed = set(), 0
for line in out.splitlines():
    kind, record = line.split(' ', 1)
    doc = json.loads(record)
    schema = schemas[kind]
    seen.add(kind)
    try:
        jsonschema.Draft202012Validator(schema).validate(doc)
    except jsonschema.ValidationError as e:
        print(f"FAIL {kind}: {record}: {e.message}"); failed += 1
    doc['unexpected'] = 1
    if jsonschema.Draft202012Validator(schema).is_valid(doc):
        print(f"FAIL {kind}: schema accepts an unknown field"); failed += 1
missing = set(schemas) - seen
if missing:
    print(f"FAIL no samples for {sorted(missing)}"); failed += 1
print(f"{len(out.splitlines())} records checked against {len(schemas)} schemas, {failed} failures")
sys.exit(1 if failed else 0)
