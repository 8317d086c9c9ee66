"""Between a ModelDeployment's reconcile and the pure rollout engine: what the engine is
told (observed tracks, the manual request, the replica total) and how its decision
becomes track plans."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from driftline.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from driftline.api.modelversion import ModelVersion
from driftline.render.objects import TrackPlan
from driftline.rollout.types import (
    REQUEST_ACTIONS,
    REQUEST_ANNOTATION,
    ManualRequest,
    ObservedTrack,
    RolloutDecision,
    RolloutInput,
)


def manual_request(metadata: Mapping[str, Any]) -> ManualRequest | None:
    """The request in the annotation, or None when there is none or it is not one."""
    raw = (metadata.get("annotations") or {}).get(REQUEST_ANNOTATION)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    request_id, action = data.get("id"), data.get("action")
    if not isinstance(request_id, str) or not request_id or action not in REQUEST_ACTIONS:
        return None
    return ManualRequest(id=request_id[:128], action=action)


def total_replicas(spec: ModelDeploymentSpec) -> int:
    """What the tracks share: spec.replicas (with autoscaling, the HPA's, set through the
    scale subresource), else, before the HPA has spoken, the autoscaling minimum."""
    if spec.replicas is not None:
        if spec.autoscaling is not None:
            return min(
                max(spec.replicas, spec.autoscaling.min_replicas), spec.autoscaling.max_replicas
            )
        return spec.replicas
    assert spec.autoscaling is not None
    return spec.autoscaling.min_replicas


def rollout_input(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus | None,
    metadata: Mapping[str, Any],
    tracks: Mapping[str, ObservedTrack],
    *,
    desired_servable: bool,
    now: str,
    gated: bool | None = None,
) -> RolloutInput:
    return RolloutInput(
        spec=spec,
        desired_version=spec.model_version or "",
        desired_servable=desired_servable,
        total_replicas=total_replicas(spec),
        tracks=tracks,
        status=status or ModelDeploymentStatus(),
        request=manual_request(metadata),
        now=parse_time(now),
        gated=gated,
    )


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def track_plans(decision: RolloutDecision, versions: Mapping[str, ModelVersion]) -> list[TrackPlan]:
    """The engine's tracks as render plans. A version that cannot be read (deleted) is left
    out: the track keeps running as it is."""
    return [
        TrackPlan(track, versions[target.version], target.replicas)
        for track in ("stable", "canary", "preview")
        if (target := decision.tracks.get(track)) is not None and target.version in versions
    ]
