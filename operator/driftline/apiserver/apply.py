"""Server-side apply (pure): field ownership by manager, conflicts, and managedFields.

Good enough for create-or-update with field managers: maps merge field by field, lists are
atomic (as `x-kubernetes-list-type: atomic`), and only Apply operations own fields.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from driftline.apiserver.metadata import now
from driftline.apiserver.patching import JSON, FieldPath, PatchError

# Identity and server-owned fields are never owned by a field manager.
_UNOWNED_METADATA = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "generateName",
        "selfLink",
    }
)


def owned_fields(config: JSON, path: FieldPath = ()) -> set[FieldPath]:
    """The leaf fields an applied configuration sets (lists are atomic, as `x-kubernetes-list-type: atomic`)."""
    fields: set[FieldPath] = set()
    if not isinstance(config, dict):
        return {path} if path else fields
    for key, value in config.items():
        if not path and key in ("apiVersion", "kind"):
            continue
        if path == ("metadata",) and key in _UNOWNED_METADATA:
            continue
        if isinstance(value, dict) and value:
            fields |= owned_fields(value, (*path, key))
        else:
            fields.add((*path, key))
    return fields


def get_path(obj: JSON, path: FieldPath) -> tuple[bool, Any]:
    current = obj
    for part in path:
        if not isinstance(current, dict) or part not in current:
            return False, None
        current = current[part]
    return True, current


def remove_path(obj: dict[str, Any], path: FieldPath) -> None:
    """Delete a field and the maps it leaves empty (in place, on a copy owned by the caller)."""
    parents: list[tuple[dict[str, Any], str]] = []
    current: Any = obj
    for part in path[:-1]:
        if not isinstance(current, dict) or not isinstance(current.get(part), dict):
            return
        parents.append((current, part))
        current = current[part]
    if isinstance(current, dict):
        current.pop(path[-1], None)
    for parent, part in reversed(parents):
        if parent[part] == {}:
            del parent[part]
        else:
            break


def fields_to_v1(fields: Iterable[FieldPath]) -> dict[str, Any]:
    """The `fieldsV1` notation of managedFields: nested `f:<name>` maps."""
    tree: dict[str, Any] = {}
    for path in fields:
        node = tree
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return tree


def fields_from_v1(tree: dict[str, Any], path: FieldPath = ()) -> set[FieldPath]:
    fields: set[FieldPath] = set()
    children = {k: v for k, v in tree.items() if k.startswith("f:")}
    if not children:
        return {path} if path else fields
    for key, subtree in children.items():
        fields |= fields_from_v1(subtree if isinstance(subtree, dict) else {}, (*path, key[2:]))
    return fields


class ApplyConflict(PatchError):
    def __init__(self, conflicts: list[tuple[str, FieldPath]]) -> None:
        described = [f'conflict with "{manager}": .{".".join(path)}' for manager, path in conflicts]
        noun = "conflict" if len(conflicts) == 1 else "conflicts"
        super().__init__(
            f"Apply failed with {len(conflicts)} {noun}: " + "\n".join(described), status=409
        )
        self.conflicts = conflicts


def _deep_merge(live: JSON, config: JSON) -> JSON:
    if isinstance(live, dict) and isinstance(config, dict):
        result = dict(live)
        for key, value in config.items():
            result[key] = _deep_merge(live.get(key), value)
        return result
    return copy.deepcopy(config)


def server_side_apply(
    live: dict[str, Any],
    config: dict[str, Any],
    manager: str,
    managers: dict[str, set[FieldPath]],
    *,
    force: bool,
) -> tuple[dict[str, Any], dict[str, set[FieldPath]]]:
    """Merge an applied configuration into the live object, tracking who owns which field.

    A field another manager owns and that this configuration sets to a different value is a
    conflict (409) unless forced, when ownership moves; fields this manager applied before and
    no longer applies are removed unless another manager still owns them.
    """
    applied = owned_fields(config)
    conflicts: list[tuple[str, FieldPath]] = []
    new_managers = {m: set(fields) for m, fields in managers.items() if m != manager}
    for other, fields in new_managers.items():
        for path in sorted(fields & applied):
            if get_path(live, path) != get_path(config, path):
                conflicts.append((other, path))
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    for other in new_managers:
        new_managers[other] -= applied
    still_owned = set().union(*new_managers.values()) if new_managers else set()
    result = _deep_merge(live, config)
    for path in managers.get(manager, set()) - applied - still_owned:
        remove_path(result, path)
    new_managers[manager] = applied
    return result, {m: f for m, f in new_managers.items() if f}


def managers_of(obj: dict[str, Any]) -> dict[str, set[FieldPath]]:
    """The fields each Apply manager owns, read back from metadata.managedFields."""
    return {
        entry["manager"]: fields_from_v1(entry.get("fieldsV1") or {})
        for entry in obj["metadata"].get("managedFields") or []
        if entry.get("operation") == "Apply" and entry.get("manager")
    }


def managed_fields_entries(
    api_version: str, managers: dict[str, set[FieldPath]], live: dict[str, Any]
) -> list[dict[str, Any]]:
    """metadata.managedFields after an apply: non-Apply entries kept, Apply entries rewritten."""
    previous = {e.get("manager"): e for e in live["metadata"].get("managedFields") or []}
    entries = [
        e for e in live["metadata"].get("managedFields") or [] if e.get("operation") != "Apply"
    ]
    for manager, fields in sorted(managers.items()):
        old = previous.get(manager)
        fields_v1 = fields_to_v1(fields)
        unchanged = old is not None and old.get("fieldsV1") == fields_v1
        entries.append(
            {
                "manager": manager,
                "operation": "Apply",
                "apiVersion": api_version,
                "time": old["time"] if unchanged and old is not None else now(),
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1,
            }
        )
    return entries
