"""Patch types of the Kubernetes API (pure functions over JSON-like values).

JSON merge patch (RFC 7386), JSON patch (RFC 6902, via the `jsonpatch` library), and
strategic merge patch for the built-in kinds (lists merged by their patch merge keys, as
declared in the Kubernetes API types). Server-side apply is in `apply.py`.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

JSON = Any
FieldPath = tuple[str, ...]


class PatchError(ValueError):
    """A patch that cannot be applied; `status` is the HTTP code kube-apiserver answers."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


# --- JSON merge patch ---------------------------------------------------------------


def merge_patch(original: JSON, patch: JSON) -> JSON:
    """RFC 7386: objects merge recursively, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- JSON patch ---------------------------------------------------------------------


def json_patch(original: JSON, operations: JSON) -> JSON:
    """RFC 6902; a failed `test` or a missing path is 422, a malformed patch is 400."""
    if not isinstance(operations, list):
        raise PatchError("json patch must be a list of operations", status=400)
    try:
        patch = jsonpatch.JsonPatch(operations)
        return patch.apply(original, in_place=False)
    except jsonpatch.JsonPatchTestFailed as exc:
        raise PatchError(
            f"the server rejected our request due to an error in our request: {exc}"
        ) from exc
    except (jsonpatch.JsonPatchConflict, jsonpointer.JsonPointerException) as exc:
        raise PatchError(
            f"the server rejected our request due to an error in our request: {exc}"
        ) from exc
    except (jsonpatch.InvalidJsonPatch, TypeError, KeyError) as exc:
        raise PatchError(f"invalid json patch: {exc}", status=400) from exc


# --- strategic merge patch ----------------------------------------------------------

# Patch merge keys of list fields in the built-in types (patchMergeKey in the Go types).
_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
}
# Lists of scalars merged as sets (patchStrategy "merge" on a primitive list).
_PRIMITIVE_MERGE_LISTS = frozenset({"finalizers"})
_CONTAINER_LISTS = frozenset({"containers", "initContainers", "ephemeralContainers"})
_DELETE = object()


def _merge_key(path: FieldPath, field: str) -> str | None:
    if field == "ports":
        # Container ports merge by containerPort, Service ports by port (as in the Go types).
        return "containerPort" if path and path[-1] in _CONTAINER_LISTS else "port"
    return _MERGE_KEYS.get(field)


def strategic_merge_patch(original: JSON, patch: JSON) -> JSON:
    """Apply a strategic merge patch to a built-in object."""
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object", status=400)
    result = _merge_map(original if isinstance(original, dict) else {}, patch, ())
    return {} if result is _DELETE else result


def _merge_map(original: dict[str, Any], patch: dict[str, Any], path: FieldPath) -> Any:
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    if directive is not None:
        raise PatchError(f"unknown patch type: {directive!r}", status=400)
    result = dict(original)
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            drop = set(map(_hashable, value or []))
            result[field] = [v for v in result.get(field) or [] if _hashable(v) not in drop]
        elif key.startswith("$"):
            continue  # $setElementOrder and $retainKeys only order or prune; handled below
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, (*path, key))
        elif isinstance(value, dict):
            current = result.get(key)
            merged = _merge_map(current if isinstance(current, dict) else {}, value, (*path, key))
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list([], value, (*path, key))
        else:
            result[key] = copy.deepcopy(value)
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _hashable(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else repr(value)


def _merge_list(original: list[Any], patch: list[Any], path: FieldPath) -> list[Any]:
    field = path[-1]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if field in _PRIMITIVE_MERGE_LISTS:
        seen = set(map(_hashable, original))
        return list(original) + [v for v in patch if _hashable(v) not in seen]
    key = _merge_key(path[:-1], field)
    if key is None:
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    result = list(original)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise PatchError(
                f"map: {item!r} does not contain declared merge key: {key}", status=400
            )
        index = next(
            (
                i
                for i, old in enumerate(result)
                if isinstance(old, dict) and old.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
        elif index is None:
            result.append({k: copy.deepcopy(v) for k, v in item.items() if not k.startswith("$")})
        else:
            merged = _merge_map(result[index], item, path)
            if merged is _DELETE:
                del result[index]
            else:
                result[index] = merged
    return result
