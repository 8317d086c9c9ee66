"""Everything one ModelDeployment needs, as a list of desired objects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from driftline.api.driftpolicy import DriftPolicy
from driftline.api.modeldeployment import ModelDeploymentSpec
from driftline.api.modelversion import ModelVersion
from driftline.render.deployment import render_deployment
from driftline.render.hpa import render_hpa
from driftline.render.httproute import render_httproute, render_track_service
from driftline.render.pdb import render_pdb
from driftline.render.rbac import render_role, render_role_binding, render_service_account
from driftline.render.service import render_service
from driftline.render.settings import RenderSettings


@dataclass(frozen=True, slots=True)
class TrackPlan:
    """One track to run: which version, and how many replicas (None: the HPA decides)."""

    track: str
    model_version: ModelVersion
    replicas: int | None


def render_model_deployment(
    owner: Mapping[str, Any],
    spec: ModelDeploymentSpec,
    tracks: Sequence[TrackPlan],
    policy: DriftPolicy | None,
    settings: RenderSettings,
    *,
    active_track: str | None = None,
    weights: Mapping[str, int] | None = None,
) -> list[dict[str, Any]]:
    """Desired objects in apply order: RBAC before the pods that use it, Deployments
    before the Services and HTTPRoute that send them traffic and the HPA that scales them.
    `active_track` (blue-green) makes the Service select that one track; a preview track
    also gets its own Service. With spec.traffic.httpRoute, each running track gets a
    backend Service and an HTTPRoute splits requests between them by `weights`."""
    if not tracks:
        return []
    model_name = tracks[0].model_version.spec.model
    objects: list[dict[str, Any]] = []
    if policy is not None:
        objects.append(render_service_account(owner, model_name=model_name))
        objects.append(
            render_role(owner, policy_name=policy.metadata["name"], model_name=model_name)
        )
        objects.append(render_role_binding(owner, model_name=model_name))
    for plan in tracks:
        objects.append(
            render_deployment(
                owner,
                spec,
                track=plan.track,
                model_version=plan.model_version,
                replicas=plan.replicas,
                policy=policy,
                settings=settings,
            )
        )
    objects.append(render_service(owner, spec, model_name=model_name, active_track=active_track))
    if any(plan.track == "preview" for plan in tracks):
        # Also the preview's backend when an HTTPRoute routes to it.
        objects.append(render_service(owner, spec, model_name=model_name, preview=True))
    if spec.traffic.http_route:
        running = [plan.track for plan in tracks]
        for track in running:
            if track != "preview":
                objects.append(render_track_service(owner, track=track, model_name=model_name))
        route_weights = {
            track: weight
            for track, weight in (weights or {"stable": 100}).items()
            if track in running
        }
        objects.append(render_httproute(owner, spec, weights=route_weights, model_name=model_name))
    if spec.autoscaling is not None:
        objects.append(render_hpa(owner, spec.autoscaling, model_name=model_name))
    objects.append(render_pdb(owner, model_name=model_name))
    return objects
