"""Validate custom resources the way the API server would, without one.

usage: validate_custom_resources.py [--old OLD.yaml] CRD.yaml FILE...

For every object of the CRD's kind in the files (SalesSystems, ServiceMonitors...): apply the schema's defaults (structural
defaulting), validate against the CRD's openAPIV3Schema with jsonschema, then
evaluate every `x-kubernetes-validations` CEL rule at its place with cel-python.
With `--old`, each object is checked as an update of the object of the same name in
OLD.yaml (the CEL transition rules, which read `oldSelf`, included).
Prints one JSON object per document: {"file", "name", "errors": [...]}.
"""

import json
import os
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crd_validation import validate  # noqa: E402


def main():
    args = sys.argv[1:]
    olds = {}
    if args[:1] == ["--old"]:
        for doc in yaml.safe_load_all(open(args[1])):
            if doc:
                olds[(doc.get("metadata") or {}).get("name")] = doc
        args = args[2:]
    crd = yaml.safe_load(open(args[0]))
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    schemas = {
        f"{group}/{v['name']}": v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"]
    }
    for path in args[1:]:
        for doc in yaml.safe_load_all(open(path)):
            if not doc or doc.get("kind") != kind:
                continue
            schema = schemas.get(doc.get("apiVersion"))
            if schema is None:
                print(json.dumps({"file": path, "name": None,
                                  "errors": [f"no version {doc.get('apiVersion')} in the CRD"]}))
                continue
            name = (doc.get("metadata") or {}).get("name")
            errors = validate(schema, doc, olds.get(name))
            print(json.dumps({
                "file": path,
                "name": (doc.get("metadata") or {}).get("name"),
                "errors": errors,
            }))


if __name__ == "__main__":
    main()
