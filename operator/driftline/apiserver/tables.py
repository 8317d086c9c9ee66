"""Server-side printing: the meta.k8s.io/v1 Table kubectl asks for with `kubectl get`.

Columns are Name, a CRD's additionalPrinterColumns, and Age, as kube-apiserver prints
custom resources; built-in kinds get Name and Age only.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from typing import Any

_SEGMENT = re.compile(
    r"""\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*["']([^"']*)["']\)\]"""
)
NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name of the object",
    "priority": 0,
}
AGE_COLUMN = {
    "name": "Age",
    "type": "date",
    "format": "",
    "description": "Time since creation",
    "priority": 0,
    "jsonPath": ".metadata.creationTimestamp",
}


def wants_table(accept: str | None) -> bool:
    return bool(accept) and "as=Table" in (accept or "")


def json_path(obj: Any, expression: str) -> Any:
    """The subset of kubectl JSONPath that printer columns use: `.a.b`, `[0]`, `[?(@.k=="v")]`."""
    position, current = 0, obj
    while position < len(expression):
        match = _SEGMENT.match(expression, position)
        if match is None:
            return None  # an expression this subset cannot read prints as empty, as for a missing field
        field, index, filter_path, filter_value = match.groups()
        if field is not None:
            current = current.get(field) if isinstance(current, dict) else None
        elif index is not None:
            current = (
                current[int(index)]
                if isinstance(current, list) and int(index) < len(current)
                else None
            )
        else:
            items = current if isinstance(current, list) else []
            current = next(
                (i for i in items if str(json_path(i, "." + filter_path)) == filter_value), None
            )
        if current is None:
            return None
        position = match.end()
    return current


def human_age(timestamp: str | None, now: datetime.datetime) -> str:
    """kubectl's short durations: 45s, 12m, 5h, 3d."""
    if not timestamp:
        return "<unknown>"
    created = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = max(int((now - created).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _cell(value: Any, column: dict[str, Any], now: datetime.datetime) -> Any:
    if column.get("type") == "date":
        return human_age(value, now) if isinstance(value, str) else "<unknown>"
    return value if value is not None else None


def table(
    objects: Iterable[dict[str, Any]],
    printer_columns: tuple[dict[str, Any], ...],
    resource_version: str,
) -> dict[str, Any]:
    columns = [c for c in printer_columns if c.get("jsonPath") != ".metadata.creationTimestamp"]
    definitions = (
        [NAME_COLUMN]
        + [
            {
                "name": c["name"],
                "type": c.get("type", "string"),
                "format": c.get("format", ""),
                "description": c.get("description", ""),
                "priority": c.get("priority", 0),
            }
            for c in columns
        ]
        + [{k: v for k, v in AGE_COLUMN.items() if k != "jsonPath"}]
    )
    now = datetime.datetime.now(datetime.UTC)
    rows = []
    for obj in objects:
        meta = obj["metadata"]
        cells = [
            meta["name"],
            *(_cell(json_path(obj, c["jsonPath"]), c, now) for c in columns),
            _cell(meta.get("creationTimestamp"), AGE_COLUMN, now),
        ]
        partial = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta,
        }
        rows.append({"cells": cells, "object": partial})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }
