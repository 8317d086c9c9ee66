"""Validate a custom object against its CRD's structural schema, as kube-apiserver does.

One walk per concern, in the API server's order: prune unknown fields, apply defaults,
check the schema, evaluate `x-kubernetes-validations` CEL rules. Messages have the
API server's wording, so users and tests see the same text locally and in a cluster.
No library does the Kubernetes-specific parts (pruning, defaulting, list-map keys, CEL
with oldSelf), so this is ours; CEL itself comes from `driftline.api.cel`.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from driftline.api.cel import CelRuleError, evaluate_rule, uses_old_self

Schema = dict[str, Any]
_ROOT_KEPT = ("apiVersion", "kind", "metadata")


@dataclass(frozen=True)
class FieldError:
    """One invalid field: a Kubernetes StatusCause."""

    path: str
    reason: str  # a metav1.CauseType, for example FieldValueInvalid
    message: str  # what follows the path, for example `Required value`

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def prepare_custom_object(
    schema: Schema,
    obj: dict[str, Any],
    old: dict[str, Any] | None = None,
    observer: RuleObserver | None = None,
) -> tuple[dict[str, Any], list[FieldError]]:
    """Prune, default and validate `obj`; `old` is the stored object on updates."""
    new = prune(schema, copy.deepcopy(obj), root=True)
    new = apply_defaults(schema, new)
    errors = validate_schema(schema, new)
    errors += validate_rules(schema, new, old, observer=observer)
    return new, errors


# --- pruning -------------------------------------------------------------------------


def prune(schema: Schema, value: Any, *, root: bool = False) -> Any:
    """Drop fields the schema does not know, unless it preserves unknown fields."""
    if isinstance(value, dict) and _type(schema) in ("object", None):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        keep_unknown = schema.get("x-kubernetes-preserve-unknown-fields", False)
        embedded = schema.get("x-kubernetes-embedded-resource", False)
        result: dict[str, Any] = {}
        for key, item in value.items():
            if item is None and not _nullable(properties, extra, key):
                continue  # the API server drops nulls of non-nullable fields before defaulting
            if (root or embedded) and key in _ROOT_KEPT:
                result[key] = item  # metadata is the API server's, not the schema's
            elif properties is not None and key in properties:
                result[key] = prune(properties[key], item)
            elif isinstance(extra, dict):
                result[key] = prune(extra, item)
            elif keep_unknown:
                result[key] = item
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune(schema["items"], item) for item in value]
    return value


def _nullable(properties: Schema | None, extra: Any, key: str) -> bool:
    if properties is not None and key in properties:
        return bool(properties[key].get("nullable", False))
    return isinstance(extra, dict) and bool(extra.get("nullable", False))


# --- unknown fields ------------------------------------------------------------------

_DEFINITION_REF = "#/definitions/"


def unknown_fields(
    schema: Schema,
    value: Any,
    definitions: Mapping[str, Schema] | None = None,
    path: str = "",
    *,
    remove: bool = False,
) -> list[str]:
    """Paths of the fields in `value` that the schema does not declare, as kube-apiserver
    names them in `unknown field "spec.stratgey"` (`[i]` for list items, `[key]` for map
    entries): what pruning drops, found before it is dropped (apiVersion, kind and metadata
    at the root are the API server's and always kept), for field validation to warn
    about or refuse. `$ref`s (`#/definitions/<name>`) resolve in `definitions`, which hold
    Kubernetes' own types, where an object with no declared fields is free-form (FieldsV1,
    RawExtension); in a CRD's structural schema such an object has no fields, unless
    x-kubernetes-preserve-unknown-fields keeps it open. With `remove`, the fields are
    also deleted from `value`, as decoding into Go types drops them for built-in kinds."""
    return _unknown(schema, value, definitions, path, builtin=False, root=True, remove=remove)


def _unknown(
    schema: Schema,
    value: Any,
    definitions: Mapping[str, Schema] | None,
    path: str,
    *,
    builtin: bool,
    root: bool = False,
    remove: bool = False,
) -> list[str]:
    schema, resolved = _resolve(schema, definitions)
    builtin = builtin or resolved
    if isinstance(value, list):
        items = schema.get("items")
        if not isinstance(items, dict):
            return []
        found: list[str] = []
        for index, item in enumerate(value):
            found += _unknown(
                items, item, definitions, f"{path}[{index}]", builtin=builtin, remove=remove
            )
        return found
    if not isinstance(value, dict) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if _type(schema) not in ("object", None):
        return []  # a type error, not an unknown field; schema validation reports it
    properties = schema.get("properties")
    extra = schema.get("additionalProperties")
    if builtin and properties is None and extra is None:
        return []
    embedded = schema.get("x-kubernetes-embedded-resource", False)
    found = []
    for key, item in list(value.items()):
        if root and key in _ROOT_KEPT and not _describes_fields((properties or {}).get(key)):
            continue  # a CRD's `metadata: {type: object}` stands for ObjectMeta, not for "no fields"
        if properties is not None and key in properties:
            found += _unknown(
                properties[key],
                item,
                definitions,
                _child(path, key),
                builtin=builtin,
                remove=remove,
            )
        elif isinstance(extra, dict):
            found += _unknown(
                extra, item, definitions, f"{path}[{key}]", builtin=builtin, remove=remove
            )
        elif extra is True or ((root or embedded) and key in _ROOT_KEPT):
            continue
        else:
            found.append(_child(path, key))
            if remove:
                del value[key]
    return found


def _describes_fields(schema: Any) -> bool:
    return isinstance(schema, dict) and any(k in schema for k in ("properties", "$ref", "allOf"))


def _resolve(schema: Schema, definitions: Mapping[str, Schema] | None) -> tuple[Schema, bool]:
    """Follow `$ref` (and the one-entry `allOf` OpenAPI v3 wraps references in); the schema,
    and whether a reference was followed."""
    resolved = False
    for _ in range(64):  # Kubernetes' documents never chain references this deep
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and "properties" not in schema:
            schema = all_of[0]
            continue
        ref = schema.get("$ref")
        if not isinstance(ref, str) or definitions is None:
            break
        target = definitions.get(ref.removeprefix(_DEFINITION_REF))
        if target is None:  # a type this server does not describe: assume it is open
            return {"x-kubernetes-preserve-unknown-fields": True}, True
        schema, resolved = target, True
    return schema, resolved


# --- defaulting ----------------------------------------------------------------------


def apply_defaults(schema: Schema, value: Any) -> Any:
    """Fill absent properties that have a default; defaults are defaulted in turn."""
    if isinstance(value, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in list(value):
                value[key] = apply_defaults(extra, value[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], item) for item in value]
    return value


# --- schema validation ---------------------------------------------------------------


def _type(schema: Schema) -> str | None:
    if schema.get("x-kubernetes-int-or-string"):
        return "int-or-string"
    kind = schema.get("type")
    return kind if isinstance(kind, str) else None


def _show(value: Any) -> str:
    """A value as Go's %#v-ish rendering in API server messages."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return repr(value)


def _json_type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _matches_type(kind: str, value: Any) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "int-or-string":
        return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    return True


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def validate_schema(schema: Schema, value: Any, path: str = "") -> list[FieldError]:
    """Every schema violation under `value`, with the API server's messages."""
    errors: list[FieldError] = []
    if value is None:
        if not schema.get("nullable", False):
            expected = _type(schema) or "object"
            errors.append(
                FieldError(
                    path,
                    "FieldValueTypeInvalid",
                    f'Invalid value: "null": {path} in body must be of type {expected}: "null"',
                )
            )
        return errors
    kind = _type(schema)
    if kind and not _matches_type(kind, value):
        return [
            FieldError(
                path,
                "FieldValueTypeInvalid",
                f"Invalid value: {_show(value)}: {path} in body must be of type {kind}: "
                f'"{_json_type_name(value)}"',
            )
        ]
    errors += _check_enum(schema, value, path)
    if isinstance(value, str):
        errors += _check_string(schema, value, path)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        errors += _check_number(schema, value, path)
    elif isinstance(value, list):
        errors += _check_array(schema, value, path)
    elif isinstance(value, dict):
        errors += _check_object(schema, value, path)
    return errors


def _check_enum(schema: Schema, value: Any, path: str) -> list[FieldError]:
    allowed = schema.get("enum")
    if allowed is None or value in allowed:
        return []
    supported = ", ".join(_show(a) for a in allowed)
    return [
        FieldError(
            path,
            "FieldValueNotSupported",
            f"Unsupported value: {_show(value)}: supported values: {supported}",
        )
    ]


def _check_string(schema: Schema, value: str, path: str) -> list[FieldError]:
    errors = []
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(
            FieldError(
                path,
                "FieldValueTooLong",
                f"Too long: may not be more than {schema['maxLength']} bytes",
            )
        )
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors.append(
            FieldError(
                path,
                "FieldValueInvalid",
                f"Invalid value: {_show(value)}: {path} in body should be at least {schema['minLength']} chars long",
            )
        )
    pattern = schema.get("pattern")
    if pattern is not None and re.search(pattern, value) is None:
        errors.append(
            FieldError(
                path,
                "FieldValueInvalid",
                f"Invalid value: {_show(value)}: {path} in body should match '{pattern}'",
            )
        )
    return errors


def _check_number(schema: Schema, value: float, path: str) -> list[FieldError]:
    errors = []
    if "minimum" in schema:
        low = schema["minimum"]
        exclusive = schema.get("exclusiveMinimum") is True
        if value < low or (exclusive and value == low):
            relation = "greater than" if exclusive else "greater than or equal to"
            errors.append(
                FieldError(
                    path,
                    "FieldValueInvalid",
                    f"Invalid value: {_show(value)}: {path} in body should be {relation} {_show(low)}",
                )
            )
    if "maximum" in schema:
        high = schema["maximum"]
        exclusive = schema.get("exclusiveMaximum") is True
        if value > high or (exclusive and value == high):
            relation = "less than" if exclusive else "less than or equal to"
            errors.append(
                FieldError(
                    path,
                    "FieldValueInvalid",
                    f"Invalid value: {_show(value)}: {path} in body should be {relation} {_show(high)}",
                )
            )
    return errors


def _check_array(schema: Schema, value: list[Any], path: str) -> list[FieldError]:
    errors = []
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(
            FieldError(
                path,
                "FieldValueTooMany",
                f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
            )
        )
    if "minItems" in schema and len(value) < schema["minItems"]:
        errors.append(
            FieldError(
                path,
                "FieldValueInvalid",
                f"Invalid value: {len(value)}: {path} in body should have at least {schema['minItems']} items",
            )
        )
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            errors += validate_schema(items, item, f"{path}[{index}]")
    errors += _check_list_type(schema, value, path)
    return errors


def _check_list_type(schema: Schema, value: list[Any], path: str) -> list[FieldError]:
    list_type = schema.get("x-kubernetes-list-type")
    if list_type not in ("map", "set"):
        return []
    keys = schema.get("x-kubernetes-list-map-keys", [])
    seen: set[str] = set()
    errors = []
    for index, item in enumerate(value):
        identity = (
            {k: item.get(k) for k in keys}
            if list_type == "map" and isinstance(item, dict)
            else item
        )
        marker = json.dumps(identity, sort_keys=True)
        if marker in seen:
            errors.append(
                FieldError(
                    f"{path}[{index}]", "FieldValueDuplicate", f"Duplicate value: {_show(identity)}"
                )
            )
        seen.add(marker)
    return errors


def _check_object(schema: Schema, value: dict[str, Any], path: str) -> list[FieldError]:
    errors = []
    for key in schema.get("required", []):
        if key not in value:
            errors.append(FieldError(_child(path, key), "FieldValueRequired", "Required value"))
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties")
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errors.append(
            FieldError(
                path,
                "FieldValueTooMany",
                f"Too many: {len(value)}: must have at most {schema['maxProperties']} items",
            )
        )
    for key, item in value.items():
        if key in properties:
            errors += validate_schema(properties[key], item, _child(path, key))
        elif isinstance(extra, dict):
            errors += validate_schema(extra, item, f"{path}[{key}]")
    return errors


# --- CEL rules -----------------------------------------------------------------------


def _cel_value(schema: Schema, value: Any) -> Any:
    """The value as CEL sees it: numbers of `type: number` are doubles even when integral."""
    kind = _type(schema)
    if kind == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind == "integer" and isinstance(value, float):
        return int(value)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        return {
            k: _cel_value(properties.get(k) or (extra if isinstance(extra, dict) else {}), v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        items = schema.get("items")
        item_schema: Schema = items if isinstance(items, dict) else {}
        return [_cel_value(item_schema, v) for v in value]
    return value


def _type_word(value: Any) -> str:
    return _json_type_name(value)


RuleObserver = Callable[[str, bool], None]


def validate_rules(
    schema: Schema, value: Any, old: Any, path: str = "", observer: RuleObserver | None = None
) -> list[FieldError]:
    """Evaluate every x-kubernetes-validations rule; transition rules only where `old` exists.

    `observer(rule, held)` is told of every evaluation, so tests can show each rule both
    passing and failing."""
    errors: list[FieldError] = []
    if value is None:
        return errors
    for rule_spec in schema.get("x-kubernetes-validations", []):
        rule = rule_spec["rule"]
        transition = uses_old_self(rule)
        if transition and old is None:
            continue
        field_path = path + rule_spec.get("fieldPath", "")
        try:
            holds = evaluate_rule(
                rule, _cel_value(schema, value), _cel_value(schema, old) if transition else None
            )
        except CelRuleError as error:
            errors.append(
                FieldError(
                    field_path,
                    "FieldValueInvalid",
                    f'Invalid value: "{_type_word(value)}": {error} evaluating rule: {rule}',
                )
            )
            continue
        if observer is not None:
            observer(rule, holds)
        if not holds:
            message = rule_spec.get("message") or f"failed rule: {rule}"
            reason = rule_spec.get("reason", "FieldValueInvalid")
            errors.append(
                FieldError(field_path, reason, f'Invalid value: "{_type_word(value)}": {message}')
            )
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key) or (extra if isinstance(extra, dict) else None)
            if sub is None:
                continue
            old_item = old.get(key) if isinstance(old, dict) else None
            sub_path = _child(path, key) if key in properties else f"{path}[{key}]"
            errors += validate_rules(sub, item, old_item, sub_path, observer)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        old_by_key = _correlate_list(schema, old)
        for index, item in enumerate(value):
            old_item = old_by_key.get(_list_key(schema, item)) if old_by_key else None
            errors += validate_rules(schema["items"], item, old_item, f"{path}[{index}]", observer)
    return errors


def _list_key(schema: Schema, item: Any) -> str | None:
    keys = schema.get("x-kubernetes-list-map-keys")
    if schema.get("x-kubernetes-list-type") != "map" or not keys or not isinstance(item, dict):
        return None
    return json.dumps([item.get(k) for k in keys])


def _correlate_list(schema: Schema, old: Any) -> dict[str | None, Any]:
    """Only list-type map items correlate with their old selves (Kubernetes' rule)."""
    if not isinstance(old, list) or schema.get("x-kubernetes-list-type") != "map":
        return {}
    return {_list_key(schema, item): item for item in old}


# --- the API server's answer ---------------------------------------------------------


def invalid_message(kind: str, group: str, name: str, errors: list[FieldError]) -> str:
    details = str(errors[0]) if len(errors) == 1 else "[" + ", ".join(str(e) for e in errors) + "]"
    return f'{kind}.{group} "{name}" is invalid: {details}'


def invalid_status(kind: str, group: str, name: str, errors: list[FieldError]) -> dict[str, Any]:
    """The 422 Status body kube-apiserver returns for an invalid object."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": invalid_message(kind, group, name, errors),
        "reason": "Invalid",
        "details": {
            "name": name,
            "group": group,
            "kind": kind,
            "causes": [{"reason": e.reason, "message": e.message, "field": e.path} for e in errors],
        },
        "code": 422,
    }
