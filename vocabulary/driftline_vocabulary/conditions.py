"""Status conditions per the Kubernetes API conventions, as pure functions.

Every part of Driftline that writes status uses these, so that conditions look the same
everywhere: CamelCase type and reason, lastTransitionTime that moves only when the
status changes, observedGeneration, and an aggregate Ready.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

ConditionStatus = Literal["True", "False", "Unknown"]
_CAMEL_CASE = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def now_rfc3339() -> str:
    """The current time as Kubernetes writes it: UTC, second precision, Z suffix."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_condition(
    type_: str,
    status: ConditionStatus | bool,
    reason: str,
    message: str = "",
    *,
    observed_generation: int | None = None,
    now: str | None = None,
) -> dict[str, Any]:
    """One condition as a JSON-ready dict; refuses a type or reason that is not CamelCase."""
    for label, value in (("type", type_), ("reason", reason)):
        if not _CAMEL_CASE.match(value):
            raise ValueError(f"condition {label} must be CamelCase, got {value!r}")
    if isinstance(status, bool):
        status = "True" if status else "False"
    condition: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": now or now_rfc3339(),
    }
    if observed_generation is not None:
        condition["observedGeneration"] = observed_generation
    return condition


def find_condition(conditions: Iterable[dict[str, Any]], type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == type_), None)


def is_true(conditions: Iterable[dict[str, Any]], type_: str) -> bool:
    found = find_condition(conditions, type_)
    return found is not None and found.get("status") == "True"


def set_condition(
    conditions: Sequence[dict[str, Any]], new: dict[str, Any]
) -> list[dict[str, Any]]:
    """Return the list with `new` in place of its type's old entry.

    lastTransitionTime is kept from the old entry when the status did not change, so that
    it tells when the status last flipped, not when the operator last looked.
    """
    result = []
    replaced = False
    for old in conditions:
        if old.get("type") != new["type"]:
            result.append(old)
            continue
        merged = dict(new)
        if old.get("status") == new["status"] and "lastTransitionTime" in old:
            merged["lastTransitionTime"] = old["lastTransitionTime"]
        result.append(merged)
        replaced = True
    if not replaced:
        result.append(dict(new))
    return result


def set_conditions(
    conditions: Sequence[dict[str, Any]], updates: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    result = list(conditions)
    for update in updates:
        result = set_condition(result, update)
    return result


def aggregate_ready(
    conditions: Sequence[dict[str, Any]],
    required: Sequence[str],
    *,
    observed_generation: int | None = None,
    now: str | None = None,
) -> dict[str, Any]:
    """Ready is True when every required condition is True; otherwise it names the first
    that is not, and carries that condition's reason and message."""
    for type_ in required:
        found = find_condition(conditions, type_)
        if found is None:
            return make_condition(
                "Ready",
                "Unknown",
                f"{type_}Unknown",
                f"{type_} has not been reported yet",
                observed_generation=observed_generation,
                now=now,
            )
        if found["status"] != "True":
            return make_condition(
                "Ready",
                "False",
                found["reason"],
                f"{type_}: {found.get('message', '')}".rstrip(": "),
                observed_generation=observed_generation,
                now=now,
            )
    return make_condition(
        "Ready",
        "True",
        "AllConditionsMet",
        ", ".join(required) + " are True",
        observed_generation=observed_generation,
        now=now,
    )
