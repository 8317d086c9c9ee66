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
) -> list[dict[str, Any]]:
    """Desired objects in apply order: RBAC before the pods that use it, Deployments
    before the HPA that scales them."""
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
    objects.append(render_service(owner, spec, model_name=model_name))
    if spec.autoscaling is not None:
        objects.append(render_hpa(owner, spec.autoscaling, model_name=model_name))
    objects.append(render_pdb(owner, model_name=model_name))
    return objects
