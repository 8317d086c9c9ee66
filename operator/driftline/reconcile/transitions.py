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


# Conditions whose fall from True to False is bad news, announced as a Warning.
_WARN_WHEN_LOST = frozenset({"Ready", "Available", "Verified"})
# Conditions that are False only on a failure, even when first reported (progress that
# stopped for any reason but completion needs someone to act).
_WARN_WHEN_FALSE = frozenset({"Reconciled", "Verified", "Progressing"})
_FINE_WHEN_FALSE = frozenset(
    {("Progressing", "RolloutComplete"), ("Progressing", "RolloutCompleted")}
)


MESSAGE_LIMIT = 1024


def _is_bad_news(before: dict[str, Any] | None, condition: dict[str, Any]) -> bool:
    if condition["status"] != "False":
        return False
    if (condition["type"], condition["reason"]) in _FINE_WHEN_FALSE:
        return False
    if condition["type"] in _WARN_WHEN_FALSE:
        return True
    # A resource that is still coming up is not in trouble: only a loss is.
    return condition["type"] in _WARN_WHEN_LOST and (before or {}).get("status") == "True"


def condition_events(
    old: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]]
) -> list[EventSpec]:
    """One Event for all conditions whose status or reason changed in one status write.

    One per write rather than one per condition: a deployment coming up flips four or
    five conditions at once, and an API call per flip would dominate the operator's load.
    The Event is headed by Ready when Ready changed (it sums up the rest), else by the
    first changed condition, and carries that condition's message; the others are named
    once, without their messages. It is a Warning only for bad news: a failure, or a
    condition lost that was True, never for a resource that is still coming up.
    """
    changed = []
    warning = False
    for condition in new:
        before = find_condition(old, condition["type"])
        if before is not None and (before.get("status"), before.get("reason")) == (
            condition["status"],
            condition["reason"],
        ):
            continue
        changed.append(condition)
        warning = warning or _is_bad_news(before, condition)
    if not changed:
        return []
    headline = next((c for c in changed if c["type"] == "Ready"), changed[0])
    message = f"{headline['type']}={headline['status']} ({headline['reason']})"
    if headline.get("message"):
        message += f": {headline['message']}"
    others = [f"{c['type']}={c['status']} ({c['reason']})" for c in changed if c is not headline]
    if others:
        message += f"; also {', '.join(others)}"
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 3] + "..."
    return [EventSpec("Warning" if warning else "Normal", headline["reason"], message)]
