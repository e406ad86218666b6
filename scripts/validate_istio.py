"""Validates Istio security resources offline against their JSON schemas.

    validate_istio.py --schemas DIR PATH...

Every YAML document in PATH (files, or folders searched recursively for
*.yaml and *.yml) must be a kind with a schema in DIR, and valid against it.
Prints one line per document and a summary; exits 1 on any failure.

The schemas (generated from Istio's CRDs) cover `spec` and `status` only,
so apiVersion, kind and metadata.name are checked here. They do not check
the CRDs' CEL rules (x-kubernetes-validations), which only an API server
runs.
"""

import argparse
import json
import pathlib
import sys

import yaml
from jsonschema import Draft7Validator

# (apiVersion, kind) -> schema file. Only these kinds belong in deploy/istio.
SCHEMAS = {
    ("security.istio.io/v1", "PeerAuthentication"): "peerauthentication_v1.json",
    ("security.istio.io/v1", "RequestAuthentication"): "requestauthentication_v1.json",
    ("security.istio.io/v1", "AuthorizationPolicy"): "authorizationpolicy_v1.json",
}


def yaml_files(paths):
    for p in map(pathlib.Path, paths):
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.suffix in (".yaml", ".yml") and f.is_file())
        elif p.is_file():
            yield p
        else:
            raise SystemExit(f"validate_istio: {p}: no such file or folder")


def as_json(doc):
    # What the API server sees: YAML turned into JSON (integer map keys such
    # as portLevelMtls ports become strings, dates stay strings).
    return json.loads(json.dumps(doc, default=str))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schemas", required=True, type=pathlib.Path, help="folder of the *_v1.json schemas")
    ap.add_argument("paths", nargs="+")
    args = ap.parse_args()

    validators = {}
    for key, name in SCHEMAS.items():
        path = args.schemas / name
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise SystemExit(f"validate_istio: cannot read schema {path}: {e.strerror}")
        Draft7Validator.check_schema(schema)
        validators[key] = Draft7Validator(schema)

    files = list(yaml_files(args.paths))
    valid = invalid = 0

    def fail(where, *messages):
        nonlocal invalid
        invalid += 1
        for m in messages:
            print(f"FAIL {where}: {m}")

    for f in files:
        try:
            docs = list(yaml.safe_load_all(f.read_text(encoding="utf-8")))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            fail(f, "not YAML: " + " ".join(str(e).split()))
            continue
        # A file of comments only (or an empty document between ---) holds
        # no resource: nothing to validate.
        if all(d is None for d in docs):
            print(f"--   {f}: no document (comments only)")
        for i, doc in enumerate((d for d in docs if d is not None), start=1):
            where = f"{f} #{i}"
            if not isinstance(doc, dict):
                fail(where, f"a document must be a mapping, not {type(doc).__name__}")
                continue
            doc = as_json(doc)
            api, kind = doc.get("apiVersion"), doc.get("kind")
            meta = doc.get("metadata")
            name = meta.get("name") if isinstance(meta, dict) else None
            where = f"{where} {kind}/{name}"
            if (api, kind) not in validators:
                known = ", ".join(f"{a} {k}" for a, k in SCHEMAS)
                fail(where, f"unknown kind {api} {kind}: deploy/istio holds only {known}")
                continue
            if not isinstance(name, str) or not name:
                fail(where, "$.metadata.name: required, a non-empty string")
                continue
            errors = sorted(validators[(api, kind)].iter_errors(doc), key=lambda e: e.json_path)
            if errors:
                fail(where, *(f"{e.json_path}: {e.message}" for e in errors))
                continue
            valid += 1
            print(f"ok   {where} (schema {SCHEMAS[(api, kind)]})")

    print(f"istio: {valid} documents valid, {invalid} invalid, in {len(files)} files")
    if not files or valid + invalid == 0:
        print("FAIL no Istio document found")
        return 1
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
