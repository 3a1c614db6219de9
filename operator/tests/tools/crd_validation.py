"""Validating custom resources the way the API server would, without one: structural
defaulting, the CRD's openAPIV3Schema as JSON Schema (jsonschema), and every
`x-kubernetes-validations` CEL rule where it stands (cel-python).

Shared by `validate_custom_resources.py` (operator tests) and
`system-tests/tests/packaging.rs` (chart tests).
"""

import copy


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
        elif k in ("allOf", "anyOf", "oneOf"):
            out[k] = [to_json_schema(p) for p in v]
        elif k == "not":
            out[k] = to_json_schema(v)
        else:
            out[k] = v
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out = {"anyOf": [{"type": "integer"}, {"type": "string"}], **out}
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def schema_errors(schema, obj):
    """Where `obj` breaks the schema, as `path: message` lines."""
    import jsonschema

    validator = jsonschema.Draft7Validator(to_json_schema(schema))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
            for e in validator.iter_errors(obj)]


def apply_defaults(schema, value):
    """Structural defaulting, as the API server does it (in place)."""
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


def cel_errors(schema, value, path="", old=None):
    """Every x-kubernetes-validations rule, evaluated where it stands. Transition
    rules (those that read `oldSelf`) only on an update (`old` given) where the old
    object has a value at the same place, as the API server does."""
    import celpy

    env = celpy.Environment()
    errors = []

    def walk(schema, value, path, old):
        for rule in schema.get("x-kubernetes-validations") or []:
            transition = "oldSelf" in rule["rule"]
            if transition and old is None:
                continue
            program = env.program(env.compile(rule["rule"]))
            activation = {"self": celpy.json_to_cel(value)}
            if transition:
                activation["oldSelf"] = celpy.json_to_cel(old)
            try:
                ok = program.evaluate(activation)
            except Exception as e:  # noqa: BLE001 - report, do not crash
                errors.append(f"{path or '<root>'}: rule {rule['rule']!r} could not be evaluated: {e}")
                continue
            if not bool(ok):
                errors.append(f"{path or '<root>'}: {rule.get('message', rule['rule'])}")
        old_map = old if isinstance(old, dict) else {}
        if isinstance(value, dict):
            for name, prop in (schema.get("properties") or {}).items():
                if name in value and value[name] is not None:
                    walk(prop, value[name], f"{path}.{name}" if path else name, old_map.get(name))
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                for k, v in value.items():
                    walk(extra, v, f"{path}[{k}]", old_map.get(k))
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            # List items are matched by position only for the rules that need it;
            # none of this project's transition rules sit inside a list.
            for i, v in enumerate(value):
                walk(schema["items"], v, f"{path}[{i}]", None)

    walk(schema, value, path, old)
    return errors


def validate(schema, doc, old_doc=None):
    """Defaults applied, then the schema, then (if the schema holds) the CEL rules;
    with `old_doc`, as an update of it (transition rules included)."""
    obj = copy.deepcopy(doc)
    apply_defaults(schema, obj)
    errors = schema_errors(schema, obj)
    if not errors:
        old = None
        if old_doc is not None:
            old = copy.deepcopy(old_doc)
            apply_defaults(schema, old)
        errors = cel_errors(schema, obj, old=old)
    return errors
