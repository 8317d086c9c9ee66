"""ModelDeployment decisions: which tracks run which version, and the status that follows
from what the cluster reports.

For now a change of spec.modelVersion moves the stable track once the new version is
servable (Ready or Deprecated); the canary and blue-green state machines come later and
plug in at `plan_tracks`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from driftline.api.modeldeployment import ModelDeploymentSpec
from driftline.api.modelversion import ModelVersion
from driftline.conditions import aggregate_ready, make_condition, set_conditions
from driftline.reconcile.modelversion import is_servable
from driftline.reconcile.transitions import EventSpec, condition_events
from driftline.render import labels as lbl
from driftline.render.objects import TrackPlan

READY_REQUIRES = ("Reconciled", "Available", "UpToDate")

# Why the desired version is not (yet) what the stable track serves.
WaitReason = Literal[
    "ModelVersionNotFound",
    "ModelVersionVerifying",
    "ModelVersionFailed",
    "ModelVersionRetired",
]
# Waiting that ends by itself (verification finishing); the others need a user.
TRANSIENT_WAITS = frozenset({"ModelVersionVerifying"})


@dataclass(frozen=True, slots=True)
class Plan:
    tracks: list[TrackPlan]
    waiting: WaitReason | None = None
    waiting_message: str = ""


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    """What happened when the desired objects were applied (None when not attempted)."""

    ok: bool
    reason: str = "ObjectsApplied"
    message: str = ""


@dataclass(frozen=True, slots=True)
class StatusDecision:
    status: dict[str, Any]
    events: list[EventSpec] = field(default_factory=list)


def _wait_reason(name: str, target: ModelVersion | None) -> tuple[WaitReason | None, str]:
    if target is None:
        return "ModelVersionNotFound", f"ModelVersion {name} does not exist"
    status = target.status.wire() if target.status else {}
    phase = status.get("phase", "Pending")
    if is_servable(status):
        return None, ""
    if phase == "Failed":
        detail = status.get("message") or "verification failed"
        return "ModelVersionFailed", f"ModelVersion {name} failed verification: {detail}"
    if phase == "Retired":
        return "ModelVersionRetired", f"ModelVersion {name} is retired"
    return "ModelVersionVerifying", f"ModelVersion {name} is {phase}"


def plan_tracks(
    spec: ModelDeploymentSpec,
    target: ModelVersion | None,
    current_stable: ModelVersion | None,
) -> Plan:
    """The stable track serves the desired version once it is servable; until then it
    keeps serving what it serves now (if anything)."""
    replicas = spec.replicas if spec.autoscaling is None else None
    waiting, message = _wait_reason(spec.model_version, target)
    if waiting is None and target is not None:
        return Plan([TrackPlan("stable", target, replicas)])
    if current_stable is not None:
        return Plan([TrackPlan("stable", current_stable, replicas)], waiting, message)
    return Plan([], waiting, message)


@dataclass(frozen=True, slots=True)
class TrackObservation:
    version: str
    deployment: str
    desired: int
    ready: int
    available: int
    updated: int
    total: int
    observed_current: bool

    @property
    def rolled_out(self) -> bool:
        return (
            self.observed_current
            and self.updated == self.desired
            and self.ready == self.desired
            and self.available == self.desired
            and self.total == self.desired
        )


def observe_track(deployment: Mapping[str, Any]) -> TrackObservation:
    """A track's state from its Deployment as the cluster reports it."""
    metadata = deployment.get("metadata", {})
    spec = deployment.get("spec", {})
    status = deployment.get("status") or {}
    desired = spec.get("replicas", 1)
    return TrackObservation(
        # The annotation holds the full name; the label may be cut to 63 characters.
        version=(metadata.get("annotations") or {}).get(lbl.MODEL_VERSION)
        or (metadata.get("labels") or {}).get(lbl.MODEL_VERSION, ""),
        deployment=metadata.get("name", ""),
        desired=desired,
        ready=status.get("readyReplicas", 0) or 0,
        available=status.get("availableReplicas", 0) or 0,
        updated=status.get("updatedReplicas", 0) or 0,
        total=status.get("replicas", 0) or 0,
        observed_current=(status.get("observedGeneration") or 0) >= metadata.get("generation", 0),
    )


def compute_status(
    body: Mapping[str, Any],
    *,
    target: ModelVersion | None,
    deployments: Mapping[str, Mapping[str, Any]],
    apply: ApplyOutcome | None,
    url: str | None,
    now: str,
) -> StatusDecision:
    """The ModelDeployment's status from its spec, the desired version's state and the
    track Deployments the cluster reports. `apply` None keeps the last Reconciled."""
    metadata = body.get("metadata", {})
    generation = metadata.get("generation")
    spec = body.get("spec", {})
    desired_name = spec.get("modelVersion", "")
    old = dict(body.get("status") or {})
    conditions = list(old.get("conditions") or [])
    tracks = {track: observe_track(obj) for track, obj in deployments.items()}
    stable = tracks.get("stable")
    waiting, waiting_message = _wait_reason(desired_name, target)

    def condition(type_: str, status: bool, reason: str, message: str = "") -> dict[str, Any]:
        return make_condition(
            type_,
            status,
            reason,
            message,
            observed_generation=generation,
            now=now,
        )

    updates = []
    if apply is not None:
        updates.append(condition("Reconciled", apply.ok, apply.reason, apply.message))

    if stable is None:
        available = condition(
            "Available", False, "NoServableVersion", waiting_message or "no Deployment yet"
        )
    elif stable.desired == 0:
        available = condition("Available", False, "ScaledToZero", "replicas is 0")
    elif stable.available >= 1:
        available = condition(
            "Available",
            True,
            "MinimumReplicasAvailable",
            f"{stable.available}/{stable.desired} replicas of {stable.version} available",
        )
    else:
        available = condition(
            "Available",
            False,
            "NoReplicasAvailable",
            f"0/{stable.desired} replicas of {stable.version} available",
        )
    updates.append(available)

    if waiting is not None:
        up_to_date = condition("UpToDate", False, waiting, waiting_message)
        transient = waiting in TRANSIENT_WAITS
        progressing = condition(
            "Progressing",
            transient,
            waiting,
            waiting_message,
        )
    elif stable is None or stable.version != desired_name:
        up_to_date = condition(
            "UpToDate", False, "RollingOut", f"moving the stable track to {desired_name}"
        )
        progressing = condition(
            "Progressing", True, "RollingOut", f"moving the stable track to {desired_name}"
        )
    elif not stable.rolled_out:
        message = (
            f"{stable.updated}/{stable.desired} replicas updated, {stable.ready} ready, "
            f"{stable.total} running"
        )
        up_to_date = condition("UpToDate", False, "RollingOut", message)
        progressing = condition("Progressing", True, "RollingOut", message)
    else:
        message = f"all {stable.desired} replicas serve {desired_name}"
        up_to_date = condition("UpToDate", True, "DesiredVersionServed", message)
        progressing = condition("Progressing", False, "RolloutComplete", message)
    updates += [up_to_date, progressing]
    conditions = set_conditions(conditions, updates)
    ready = aggregate_ready(conditions, READY_REQUIRES, observed_generation=generation, now=now)
    conditions = set_conditions(conditions, [ready])

    status: dict[str, Any] = {
        key: value for key, value in old.items() if key not in ("conditions", "kopf")
    }
    status["observedGeneration"] = generation
    status["conditions"] = conditions
    status["tracks"] = {
        track: {
            "version": observed.version,
            "deployment": observed.deployment,
            "replicas": observed.desired,
            "readyReplicas": observed.ready,
            "availableReplicas": observed.available,
        }
        for track, observed in sorted(tracks.items())
    }
    if stable is not None:
        status["stableVersion"] = stable.version
    status["replicas"] = sum(t.ready for t in tracks.values())
    status["selector"] = lbl.selector_string(lbl.server_selector(metadata.get("name", "")))
    if url is not None:
        status["url"] = url
    if spec.get("paused"):
        phase = "Paused"
    elif ready["status"] == "True":
        phase = "Healthy"
    elif progressing["status"] == "True":
        phase = "Progressing"
    else:
        phase = "Degraded"
    status["phase"] = phase
    events = condition_events(old.get("conditions") or [], conditions)
    return StatusDecision(status, events)


def status_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether writing `new` would change anything (kopf's own bookkeeping aside)."""
    before = {k: v for k, v in (old or {}).items() if k != "kopf"}
    return before != dict(new)


def users_of(model_version: str, deployments: Sequence[Mapping[str, Any]]) -> list[str]:
    """ModelDeployments that want or serve the named ModelVersion."""
    users = []
    for body in deployments:
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        served = {
            spec.get("modelVersion"),
            status.get("stableVersion"),
            status.get("canaryVersion"),
        }
        if model_version in served:
            users.append(body.get("metadata", {}).get("name", ""))
    return sorted(users)
