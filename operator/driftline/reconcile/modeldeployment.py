"""ModelDeployment decisions: which tracks run which version, and the status that follows
from what the cluster reports.

Which version each track runs, and at what size, is the rollout engine's decision
(driftline.rollout, through reconcile.rollouts); `decide` renders it and computes the
status. `plan_tracks` is the plan of the Rolling strategy before the engine existed, kept
for its tests until they move to the engine's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import ValidationError

from driftline.analysis import runs as analysis_runs
from driftline.analysis.types import Outcome
from driftline.api.common import API_VERSION
from driftline.api.driftpolicy import DriftPolicy
from driftline.api.modeldeployment import (
    DriftSummary,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    StrategyType,
)
from driftline.api.modelversion import ModelVersion
from driftline.conditions import aggregate_ready, find_condition, make_condition, set_conditions
from driftline.reconcile.decision import ChildState, Decision, ObjectRef, with_applied_hash
from driftline.reconcile.modelversion import is_servable
from driftline.reconcile.rollouts import parse_time, rollout_input, track_plans
from driftline.reconcile.selection import (
    NOTHING_SELECTED,
    held_for_promotion,
    manual_promotion,
    select_version,
)
from driftline.reconcile.transitions import EventSpec, condition_events
from driftline.render import labels as lbl
from driftline.render.objects import TrackPlan, render_model_deployment
from driftline.render.service import serving_url
from driftline.render.settings import RenderSettings
from driftline.rollout.engine import decide_rollout
from driftline.rollout.rollback import RollbackRequest, apply_rollback, bad_versions
from driftline.rollout.types import ObservedTrack, RolloutDecision

KIND = "ModelDeployment"
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
    status: ModelDeploymentStatus
    events: list[EventSpec] = field(default_factory=list)


def read_status(body: Mapping[str, Any]) -> ModelDeploymentStatus | None:
    """The status as the API holds it, read through its model (kopf's key aside)."""
    raw = {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
    return ModelDeploymentStatus.model_validate(raw) if raw else None


def not_implemented(spec: Mapping[str, Any]) -> list[str]:
    """Spec fields the CRD accepts that this operator does not act on yet, each with what
    happens instead. Reported in the Supported condition rather than silently ignored.
    Every ModelDeployment field is acted on today."""
    return []


def _wait_reason(name: str, target: ModelVersion | None) -> tuple[WaitReason | None, str]:
    if not name:
        return "ModelVersionNotFound", NOTHING_SELECTED
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
    waiting, message = _wait_reason(spec.model_version or "", target)
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
    rollout: RolloutDecision | None = None,
    rolled_back: tuple[bool, str, str] | None = None,
    drift: DriftSummary | None = None,
) -> StatusDecision:
    """The ModelDeployment's status from its spec, the desired version's state and the
    track Deployments the cluster reports. `apply` None keeps the last Reconciled.
    With `rollout` (the rollout engine's decision), the rollout's own fields, Progressing
    and Degraded come from it, and stableVersion is the engine's (the version promoted),
    not whatever the stable Deployment runs mid-promotion."""
    metadata = body.get("metadata", {})
    generation = metadata.get("generation")
    spec = body.get("spec", {})
    desired_name = spec.get("modelVersion", "")
    old_model = read_status(body)
    old = old_model.wire() if old_model is not None else {}
    conditions = list(old.get("conditions") or [])
    base = rollout.status.wire() if rollout is not None else old
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

    if rollout is not None:
        # Availability is that of the tracks that take traffic now.
        serving = [tracks[t] for t, w in rollout.weights.items() if w > 0 and t in tracks]
        stable = (
            TrackObservation(
                version=",".join(sorted({t.version for t in serving})),
                deployment=",".join(t.deployment for t in serving),
                desired=sum(t.desired for t in serving),
                ready=sum(t.ready for t in serving),
                available=sum(t.available for t in serving),
                updated=sum(t.updated for t in serving),
                total=sum(t.total for t in serving),
                observed_current=all(t.observed_current for t in serving),
            )
            if serving
            else None
        )
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

    in_flight = rollout is not None and bool(
        rollout.status.canary_version or rollout.status.preview_version
    )
    if rollout is not None and (waiting is None or in_flight):
        done, reason, message = rollout.progressing
        progressing = condition("Progressing", done, reason, message)
        promoted = rollout.status.stable_version == desired_name and not in_flight
        stable_track = tracks.get("stable")
        if promoted and stable_track is not None and stable_track.rolled_out:
            up_to_date = condition(
                "UpToDate", True, "DesiredVersionServed", f"all traffic on {desired_name}"
            )
        elif rollout.status.aborted_version == desired_name:
            up_to_date = condition(
                "UpToDate",
                False,
                "RolloutAborted",
                f"the rollout of {desired_name} was aborted; {rollout.status.stable_version} "
                "serves (name another version, or retry)",
            )
        else:
            up_to_date = condition("UpToDate", False, reason, message)
        degraded = rollout.degraded
        updates.append(
            condition("Degraded", True, degraded[1], degraded[2])
            if degraded is not None and degraded[0]
            else condition("Degraded", False, "AsExpected", "no rollout failed")
        )
    elif waiting is not None:
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
    if rolled_back is not None:
        updates.append(condition("RolledBack", *rolled_back))
    unsupported = not_implemented(spec)
    updates.append(
        condition("Supported", False, "NotImplemented", "; ".join(unsupported))
        if unsupported
        else condition("Supported", True, "AllFieldsSupported", "every field set is acted on")
    )
    conditions = set_conditions(conditions, updates)
    ready = aggregate_ready(conditions, READY_REQUIRES, observed_generation=generation, now=now)
    conditions = set_conditions(conditions, [ready])

    status: dict[str, Any] = {key: value for key, value in base.items() if key != "conditions"}
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
    if rollout is None and stable is not None:
        status["stableVersion"] = stable.version
    status["replicas"] = sum(t.ready for t in tracks.values())
    status["selector"] = lbl.selector_string(lbl.server_selector(metadata.get("name", "")))
    if url is not None:
        status["url"] = url
    if drift is not None:
        status["drift"] = drift.wire()
    else:
        status.pop("drift", None)
    if spec.get("versionSelector") is not None:
        status["selectedVersion"] = desired_name or None
    else:
        status.pop("selectedVersion", None)
    degraded_now = find_condition(conditions, "Degraded")
    if (
        rollout is not None
        and in_flight
        and (spec.get("paused") or rollout.status.paused_by_request)
    ) or (rollout is None and spec.get("paused")):
        phase = "Paused"
    elif ready["status"] == "True":
        phase = "Healthy"
    elif degraded_now is not None and degraded_now["status"] == "True":
        phase = "Degraded"
    elif progressing["status"] == "True":
        phase = "Progressing"
    else:
        phase = "Degraded"
    status["phase"] = phase
    events = condition_events(old.get("conditions") or [], conditions)
    # Through the model: a key the CRD does not declare fails here, not silently in the API.
    return StatusDecision(ModelDeploymentStatus.model_validate(status), events)


def status_changed(
    old: Mapping[str, Any] | ModelDeploymentStatus | None, new: ModelDeploymentStatus
) -> bool:
    """Whether writing `new` would change anything (kopf's own bookkeeping aside)."""
    if isinstance(old, ModelDeploymentStatus):
        return old.wire() != new.wire()
    before = read_status({"status": old or {}})
    return (before.wire() if before is not None else {}) != new.wire()


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


# -- the whole reconcile of one ModelDeployment ---------------------------------------

# Kinds whose objects come and go with the spec and the rollout (tracks, their Services
# and route, the HPA, the sidecar's RBAC); the PodDisruptionBudget lives as long as the
# ModelDeployment does.
PRUNABLE_KINDS = frozenset(
    {
        "Deployment",
        "Service",
        "HTTPRoute",
        "HorizontalPodAutoscaler",
        "ServiceAccount",
        "Role",
        "RoleBinding",
    }
)
# What keeps serving when nothing servable can be read (a ModelVersion gone or unreadable):
# production is never taken down for that.
KEPT_WITHOUT_TRACKS = frozenset({"Deployment", "Service", "HTTPRoute"})


@dataclass(frozen=True, slots=True)
class ModelDeploymentObserved:
    """What one reconcile of a ModelDeployment reads from the cluster."""

    body: Mapping[str, Any]
    # ModelVersions the decision may need (the desired one, the one the stable track
    # serves), by name; a missing name is a ModelVersion that does not exist.
    model_versions: Mapping[str, Mapping[str, Any]]
    # DriftPolicies whose targetRef names this deployment.
    policies: Sequence[Mapping[str, Any]]
    # Track name -> the track's Deployment as the cluster reports it.
    tracks: Mapping[str, Mapping[str, Any]]
    # Every object labelled as ours that names this deployment as its controller.
    children: Sequence[ChildState]
    # With spec.versionSelector: the ModelVersions of the model it follows.
    candidates: Sequence[Mapping[str, Any]] = ()


def choose_policy(policies: Sequence[Mapping[str, Any]]) -> DriftPolicy | None:
    """The DriftPolicy targeting the deployment; with several, the first by name wins."""
    for candidate in sorted(policies, key=lambda p: p["metadata"]["name"]):
        if candidate.get("metadata", {}).get("deletionTimestamp"):
            continue
        try:
            return DriftPolicy.model_validate(candidate)
        except ValidationError:
            continue  # refused by the CRD schema in a real cluster; never rendered
    return None


def rollback_request(policy: DriftPolicy | None) -> RollbackRequest | None:
    """The rollback the policy asks of the deployment, if any."""
    if policy is None or policy.status is None or policy.status.rollback is None:
        return None
    asked = policy.status.rollback
    return RollbackRequest(
        policy=policy.metadata.get("name", ""),
        version=asked.version,
        at=asked.at,
        message=asked.message or f"severity {asked.severity}",
    )


def drift_summary(policy: DriftPolicy | None) -> DriftSummary | None:
    """The policy's verdict, mirrored into the deployment's status."""
    if policy is None or policy.status is None:
        return None
    drifted = find_condition([c.wire() for c in policy.status.conditions], "Drifted")
    if drifted is None:
        return None
    features = sorted(
        {
            feature.name
            for report in policy.status.pods.values()
            if report.evaluation is not None and report.evaluation.drifted
            for feature in report.evaluation.features
            if feature.drifted
        }
    )
    return DriftSummary(
        policy=policy.metadata.get("name", ""),
        drifted=drifted.get("status") == "True",
        severity=str(policy.status.severity),
        features=features[:64] if drifted.get("status") == "True" else [],
        message=(drifted.get("message") or "")[:1024] or None,
        since=drifted.get("lastTransitionTime"),
    )


def stable_version_name(
    tracks: Mapping[str, Mapping[str, Any]], status: ModelDeploymentStatus | None
) -> str | None:
    """What the stable Deployment runs is the fact; status only repeats it (and may lag
    behind, if a status write failed)."""
    stable = tracks.get("stable")
    if stable is not None:
        name = (stable.get("metadata", {}).get("annotations") or {}).get(lbl.MODEL_VERSION)
        if name:
            return str(name)
    return status.stable_version if status is not None else None


def _parse_version(raw: Mapping[str, Any] | None) -> ModelVersion | None:
    if raw is None:
        return None
    try:
        return ModelVersion.model_validate(raw)
    except ValidationError:
        return None


def _decision(
    observed: ModelDeploymentObserved,
    status: StatusDecision,
    *,
    apply: Sequence[dict[str, Any]] = (),
    known: frozenset[ObjectRef] = frozenset(),
    prune: Sequence[ChildState] = (),
) -> Decision[ModelDeploymentStatus]:
    metadata = observed.body["metadata"]
    return Decision(
        target=ObjectRef(API_VERSION, KIND, metadata["namespace"], metadata["name"]),
        resource_version=metadata.get("resourceVersion"),
        old_status=read_status(observed.body),
        status=status.status,
        apply=tuple(apply),
        known=known,
        prune=tuple(prune),
        events=tuple(status.events),
        generation=metadata.get("generation"),
        involved=observed.body,
    )


def decide(
    observed: ModelDeploymentObserved,
    settings: RenderSettings,
    now: str,
    *,
    reapply_all: bool = False,
    outcomes: Mapping[tuple[str, str], Outcome] | None = None,
) -> Decision[ModelDeploymentStatus]:
    """The objects one ModelDeployment needs, what to remove, and its status.

    `outcomes` are the analysis measurements taken for this reconcile (by (run, gate)),
    which `analysis_due` named.

    A child whose applied-hash matches what is rendered is not applied again, unless
    `reapply_all` (the periodic resync): server-side apply then restores any field of ours
    that someone changed by hand, at one no-op call per child when nothing did."""
    body = observed.body
    metadata = body["metadata"]
    try:
        resource = ModelDeployment.model_validate(body)
    except ValidationError as error:
        # The CRD schema should have refused this; say so rather than guess.
        invalid = ApplyOutcome(False, "InvalidSpec", str(error)[:1000])
        return _decision(
            observed,
            compute_status(
                body, target=None, deployments=observed.tracks, apply=invalid, url=None, now=now
            ),
        )
    spec = resource.spec
    old_status = read_status(body)
    known = dict(observed.model_versions)
    if spec.version_selector is not None:
        # The version it follows now stands in for spec.modelVersion everywhere below.
        excluded = bad_versions(old_status or ModelDeploymentStatus())
        if spec.strategy.type == StrategyType.ROLLING:
            # Rolling has no step to wait at: a version for manual promotion is named
            # in spec.modelVersion instead
            excluded |= {c["metadata"]["name"] for c in observed.candidates if manual_promotion(c)}
        selected = select_version(spec.version_selector, observed.candidates, excluded)
        chosen = next((c for c in observed.candidates if c["metadata"]["name"] == selected), None)
        spec = spec.model_copy(update={"model_version": selected or ""})
        if manual_promotion(chosen):
            spec = held_for_promotion(spec)
        body = {**body, "spec": {**body.get("spec", {}), "modelVersion": selected or ""}}
        known |= {c["metadata"]["name"]: c for c in observed.candidates}
    desired_name = spec.model_version or ""
    target = _parse_version(known.get(desired_name))
    versions = {
        name: parsed for name, raw in known.items() if (parsed := _parse_version(raw)) is not None
    }
    observations = {track: observe_track(obj) for track, obj in observed.tracks.items()}
    policy = choose_policy(observed.policies)
    has_policy = policy is not None
    moment = parse_time(now)
    recorded = analysis_runs.record_outcomes(
        spec,
        old_status or ModelDeploymentStatus(),
        outcomes or {},
        has_policy=has_policy,
        now=moment,
    )
    servable = {
        name
        for name, version in versions.items()
        if is_servable(version.status.wire() if version.status else {})
    }
    rollback = apply_rollback(
        rollout_input(
            spec,
            recorded.status,
            metadata,
            {
                track: ObservedTrack(o.version, o.desired, o.ready, o.available, o.rolled_out)
                for track, o in observations.items()
            },
            desired_servable=_wait_reason(desired_name, target)[0] is None,
            now=now,
            gated=analysis_runs.is_gated(spec, has_policy=has_policy),
        ),
        rollback_request(policy),
        servable,
    )
    rollout = decide_rollout(rollback.rollout)
    analysed = analysis_runs.start_runs(
        spec, rollout.status, rollout.progressing[1], has_policy=has_policy, now=moment
    )
    rollout = replace(rollout, status=analysed)
    tracks = track_plans(rollout, versions)
    rendered = render_model_deployment(
        body,
        spec,
        tracks,
        policy,
        settings,
        active_track=rollout.active_track if spec.strategy.type == "BlueGreen" else None,
        weights=rollout.weights,
    )
    desired = [with_applied_hash(obj) for obj in rendered]
    uid = metadata.get("uid")
    owned = {child.ref: child for child in observed.children if child.owner_uid == uid}
    apply = [
        obj
        for obj, digest in desired
        if reapply_all
        or (child := owned.get(ObjectRef.of(obj))) is None
        or child.applied_hash != digest
    ]
    wanted = {ObjectRef.of(obj) for obj, _ in desired}
    prune = [
        child
        for ref, child in sorted(owned.items())
        if ref not in wanted
        and ref.kind in PRUNABLE_KINDS
        and not (ref.kind in KEPT_WITHOUT_TRACKS and not tracks)
    ]
    outcome = ApplyOutcome(
        True,
        "ObjectsApplied",
        f"{len(desired)} objects applied"
        if desired
        else "nothing to run until a version is servable",
    )
    url = (
        serving_url(
            metadata["name"],
            metadata["namespace"],
            tracks[0].model_version.spec.model,
            settings,
        )
        if tracks
        else None
    )
    status = compute_status(
        body,
        target=target,
        deployments=observed.tracks,
        apply=outcome,
        url=url,
        now=now,
        rollout=rollout,
        rolled_back=rollback.condition,
        drift=drift_summary(policy),
    )
    decision = _decision(observed, status, apply=apply, known=frozenset(owned), prune=prune)
    waits = [
        rollout.requeue_after,
        analysis_runs.next_due_seconds(spec, analysed, has_policy=has_policy, now=moment),
    ]
    return replace(
        decision,
        events=(*recorded.events, *rollback.events, *rollout.events, *decision.events),
        requeue_after=min((w for w in waits if w is not None), default=None),
    )


def analysis_due(observed: ModelDeploymentObserved, now: str) -> list[analysis_runs.Due]:
    """The analysis measurements due in this reconcile (none for a spec that cannot be
    read: the decision reports that)."""
    try:
        resource = ModelDeployment.model_validate(observed.body)
    except ValidationError:
        return []
    return analysis_runs.due_measurements(
        resource.spec,
        read_status(observed.body) or ModelDeploymentStatus(),
        has_policy=choose_policy(observed.policies) is not None,
        now=parse_time(now),
    )
