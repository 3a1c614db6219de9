"""Validate custom resources the way the API server would, without one.

usage: validate_custom_resources.py CRD.yaml FILE...

For every object of the CRD's kind in the files (SalesSystems, ServiceMonitors...): apply the schema's defaults (structural
defaulting), validate against the CRD's openAPIV3Schema with jsonschema, then
evaluate every `x-kubernetes-validations` CEL rule at its place with cel-python.
Prints one JSON object per document: {"file", "name", "errors": [...]}.
"""

import copy
import json
import sys

import celpy
import jsonschema
import yaml


def apply_defaults(schema, value):
    if isinstance(value, dict):
        for name, prop in (schema.get("properties") or {}).items():
            if name not in value and "default" in prop:
                value[name] = copy.deepcopy(prop["default"])
            if name in value:
                apply_defaults(prop, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for v in value.values():
                apply_defaults(extra, v)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for v in value:
            apply_defaults(schema["items"], v)


def to_json_schema(schema):
    """The OpenAPI v3 subset Kubernetes uses, as plain JSON Schema."""
    if not isinstance(schema, dict):
        return schema
    out = {}
    for k, v in schema.items():
        if k.startswith("x-kubernetes-") or k == "nullable":
            continue
        if k == "properties":
            out[k] = {n: to_json_schema(p) for n, p in v.items()}
        elif k in ("items", "additionalProperties") and isinstance(v, dict):
            out[k] = to_json_schema(v)
        else:
            out[k] = v
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}], **out}
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


ENV = celpy.Environment()


def cel_errors(schema, value, path, errors):
    for rule in schema.get("x-kubernetes-validations") or []:
        program = ENV.program(ENV.compile(rule["rule"]))
        try:
            ok = program.evaluate({"self": celpy.json_to_cel(value)})
        except Exception as e:  # noqa: BLE001 - report, do not crash
            errors.append(f"{path or '<root>'}: rule {rule['rule']!r} could not be evaluated: {e}")
            continue
        if not bool(ok):
            errors.append(f"{path or '<root>'}: {rule.get('message', rule['rule'])}")
    if isinstance(value, dict):
        for name, prop in (schema.get("properties") or {}).items():
            if name in value and value[name] is not None:
                cel_errors(prop, value[name], f"{path}.{name}" if path else name, errors)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for k, v in value.items():
                cel_errors(extra, v, f"{path}[{k}]", errors)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(value):
            cel_errors(schema["items"], v, f"{path}[{i}]", errors)


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
            validator = jsonschema.Draft7Validator(to_json_schema(schema))
            obj = copy.deepcopy(doc)
            apply_defaults(schema, obj)
            errors = [
                f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
                for e in validator.iter_errors(obj)
            ]
            if not errors:
                cel_errors(schema, obj, "", errors)
            print(json.dumps({
                "file": path,
                "name": (doc.get("metadata") or {}).get("name"),
                "errors": errors,
            }))


if __name__ == "__main__":
    main()
