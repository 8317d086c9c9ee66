"""Which ModelVersion a following deployment (spec.versionSelector) serves."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from driftline.api.modeldeployment import VersionSelector

# Set on a retrained ModelVersion by its validation gate (driftline.render.retraining).
VALIDATION_LABEL: Final = "driftline.io/validation"
NOTHING_SELECTED: Final = (
    "no ModelVersion matches spec.versionSelector (of the model, with its labels, Ready, "
    "not rejected by its validation gate, never rolled back or aborted here)"
)


def eligible(body: Mapping[str, Any], selector: VersionSelector, excluded: Collection[str]) -> bool:
    metadata = body.get("metadata") or {}
    labels = metadata.get("labels") or {}
    return (
        (body.get("spec") or {}).get("model") == selector.model
        and all(labels.get(key) == value for key, value in selector.match_labels.items())
        and labels.get(VALIDATION_LABEL) != "rejected"
        and (body.get("status") or {}).get("phase") == "Ready"
        and not metadata.get("deletionTimestamp")
        and metadata.get("name") not in excluded
    )


def select_version(
    selector: VersionSelector,
    candidates: Sequence[Mapping[str, Any]],
    excluded: Collection[str],
) -> str | None:
    """The newest eligible ModelVersion (by creation time, then name), or None."""
    chosen = [body for body in candidates if eligible(body, selector, excluded)]
    if not chosen:
        return None
    newest = max(
        chosen,
        key=lambda b: (b["metadata"].get("creationTimestamp") or "", b["metadata"]["name"]),
    )
    return str(newest["metadata"]["name"])
