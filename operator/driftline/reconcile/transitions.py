"""Kubernetes Events for condition transitions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from driftline.conditions import find_condition


@dataclass(frozen=True, slots=True)
class EventSpec:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


# Conditions whose False status is bad news, announced as a Warning.
_WARN_WHEN_FALSE = frozenset({"Ready", "Available", "Reconciled", "Verified"})


MESSAGE_LIMIT = 1024


def condition_events(
    old: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]]
) -> list[EventSpec]:
    """One Event for all conditions whose status or reason changed in one status write.

    One per write rather than one per condition: a deployment coming up flips four or
    five conditions at once, and an API call per flip would dominate the operator's load.
    The reason is Ready's when Ready changed (it sums up the rest), else the first
    changed condition's; the message lists every transition.
    """
    changed = []
    for condition in new:
        before = find_condition(old, condition["type"])
        if before is not None and (before.get("status"), before.get("reason")) == (
            condition["status"],
            condition["reason"],
        ):
            continue
        changed.append(condition)
    if not changed:
        return []
    ready = next((c for c in changed if c["type"] == "Ready"), None)
    headline = ready or changed[0]
    warning = any(c["status"] == "False" and c["type"] in _WARN_WHEN_FALSE for c in changed)
    parts = []
    for condition in changed:
        part = f"{condition['type']}={condition['status']} ({condition['reason']})"
        if condition.get("message"):
            part += f": {condition['message']}"
        parts.append(part)
    message = "; ".join(parts)
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 3] + "..."
    return [EventSpec("Warning" if warning else "Normal", headline["reason"], message)]
