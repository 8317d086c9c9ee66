"""Which ModelVersion a following deployment (spec.versionSelector) serves."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from driftline.api.modeldeployment import (
    BlueGreenStrategy,
    CanaryStrategy,
    ModelDeploymentSpec,
    StrategyType,
    VersionSelector,
)

# Set on a retrained ModelVersion by its validation gate, and by a policy whose retraining
# promotion is Manual (driftline.render.retraining).
VALIDATION_LABEL: Final = "driftline.io/validation"
PROMOTION_LABEL: Final = "driftline.io/promotion"
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


def manual_promotion(body: Mapping[str, Any] | None) -> bool:
    """Whether the version waits for `driftline rollout promote` (retraining promotion Manual)."""
    labels = ((body or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(PROMOTION_LABEL) == "manual"


def held_for_promotion(spec: ModelDeploymentSpec) -> ModelDeploymentSpec:
    """The spec as the rollout engine sees it for a version that waits for a manual
    promote: a canary waits at its first step (as with pauseSeconds 0), a blue-green
    preview is not switched to by itself."""
    strategy = spec.strategy
    if strategy.type == StrategyType.CANARY:
        canary = strategy.canary or CanaryStrategy()
        steps = [canary.steps[0].model_copy(update={"pause_seconds": 0}), *canary.steps[1:]]
        strategy = strategy.model_copy(
            update={"canary": canary.model_copy(update={"steps": steps})}
        )
    elif strategy.type == StrategyType.BLUE_GREEN:
        blue_green = strategy.blue_green or BlueGreenStrategy()
        strategy = strategy.model_copy(
            update={"blue_green": blue_green.model_copy(update={"auto_promote": False})}
        )
    return spec.model_copy(update={"strategy": strategy})
