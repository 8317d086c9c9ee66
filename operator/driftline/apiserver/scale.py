"""The scale subresource (pure): an object seen as an autoscaling/v1 Scale, and back."""

from __future__ import annotations

import copy
from typing import Any

from driftline.apiserver.resources import ScalePaths

Obj = dict[str, Any]


def read_path(obj: Obj, path: str) -> Any:
    """The value at a `.a.b.c` path, or None."""
    current: Any = obj
    for part in path.lstrip(".").split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def write_path(obj: Obj, path: str, value: Any) -> None:
    parts = path.lstrip(".").split(".")
    current = obj
    for part in parts[:-1]:
        current = current.setdefault(part, {})
    current[parts[-1]] = value


def scale_of(paths: ScalePaths, obj: Obj) -> Obj:
    meta = obj["metadata"]
    status: dict[str, Any] = {"replicas": read_path(obj, paths.status_replicas) or 0}
    if paths.label_selector:
        selector = read_path(obj, paths.label_selector)
        if selector is not None:
            status["selector"] = selector
    kept = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in kept if k in meta},
        "spec": {"replicas": read_path(obj, paths.spec_replicas) or 0},
        "status": status,
    }


def replicas_requested(scale: Any) -> int:
    """The replicas a Scale asks for; ValueError for anything but a Scale with an integer."""
    replicas = (scale.get("spec") or {}).get("replicas") if isinstance(scale, dict) else None
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise ValueError("a Scale object with a non-negative integer spec.replicas is required")
    return replicas


def scaled(paths: ScalePaths, obj: Obj, scale: Obj) -> Obj:
    """The object with the Scale's replicas, carrying the Scale's resourceVersion if it has one."""
    candidate = copy.deepcopy(obj)
    write_path(candidate, paths.spec_replicas, replicas_requested(scale))
    version = (scale.get("metadata") or {}).get("resourceVersion")
    if version:
        candidate["metadata"]["resourceVersion"] = version
    return candidate
