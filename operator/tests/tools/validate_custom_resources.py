"""Validate custom resources the way the API server would, without one.

usage: validate_custom_resources.py CRD.yaml FILE...

For every object of the CRD's kind in the files (SalesSystems, ServiceMonitors...): apply the schema's defaults (structural
defaulting), validate against the CRD's openAPIV3Schema with jsonschema, then
evaluate every `x-kubernetes-validations` CEL rule at its place with cel-python.
Prints one JSON object per document: {"file", "name", "errors": [...]}.
"""

import json
import os
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from crd_validation import validate  # noqa: E402


def main():
    crd = yaml.safe_load(open(sys.argv[1]))
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    schemas = {
        f"{group}/{v['name']}": v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"]
    }
    for path in sys.argv[2:]:
        for doc in yaml.safe_load_all(open(path)):
            if not doc or doc.get("kind") != kind:
                continue
            schema = schemas.get(doc.get("apiVersion"))
            if schema is None:
                print(json.dumps({"file": path, "name": None,
                                  "errors": [f"no version {doc.get('apiVersion')} in the CRD"]}))
                continue
            errors = validate(schema, doc)
            print(json.dumps({
                "file": path,
                "name": (doc.get("metadata") or {}).get("name"),
                "errors": errors,
            }))


if __name__ == "__main__":
    main()
