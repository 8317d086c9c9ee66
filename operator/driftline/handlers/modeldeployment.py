"""ModelDeployment handlers: render, apply, prune, and report status from the cluster."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import kopf
from pydantic import ValidationError

from driftline.api.common import API_VERSION, GROUP, VERSION
from driftline.api.driftpolicy import DriftPolicy
from driftline.api.modeldeployment import ModelDeployment
from driftline.api.modelversion import ModelVersion
from driftline.conditions import now_rfc3339
from driftline.handlers import indexes
from driftline.handlers.kube import KubeError
from driftline.handlers.metrics import measured
from driftline.handlers.runtime import Runtime, current, kopf_error, plain, reason_for
from driftline.reconcile.merge_patch import merge_patch
from driftline.reconcile.modeldeployment import (
    ApplyOutcome,
    StatusDecision,
    compute_status,
    plan_tracks,
    status_changed,
)
from driftline.reconcile.modelversion import is_servable
from driftline.reconcile.transitions import EventSpec
from driftline.render import labels as lbl
from driftline.render.objects import render_model_deployment
from driftline.render.service import serving_url

KIND = "ModelDeployment"
logger = logging.getLogger(__name__)


def post_events(body: Mapping[str, Any], events: Iterable[EventSpec]) -> None:
    for event in events:
        kopf.event(
            cast(kopf.Body, dict(body)), type=event.type, reason=event.reason, message=event.message
        )


def _model_version(
    runtime: Runtime,
    namespace: str,
    name: str | None,
    override: Mapping[str, Any] | None,
    index_views: Mapping[str, Any],
) -> ModelVersion | None:
    """The named ModelVersion: the override, else the index when it says servable (the
    common case, no request), else a fresh read (it may have just become servable)."""
    if not name:
        return None
    raw: Mapping[str, Any] | None
    if override is not None and override.get("metadata", {}).get("name") == name:
        raw = override
    else:
        raw = indexes.indexed_body(index_views, "model_versions", (namespace, name))
        if raw is None or not is_servable(raw.get("status")):
            raw = runtime.kube.get(API_VERSION, "ModelVersion", namespace, name)
    if raw is None:
        return None
    return ModelVersion.model_validate(plain(raw))


def _choose_policy(
    policies: Iterable[Mapping[str, Any]], excluded: str | None
) -> DriftPolicy | None:
    """The DriftPolicy targeting the deployment; with several, the first by name wins."""
    candidates = sorted(
        (p for p in policies if p.get("metadata", {}).get("name") != excluded),
        key=lambda p: p["metadata"]["name"],
    )
    for candidate in candidates:
        if candidate.get("metadata", {}).get("deletionTimestamp"):
            continue
        try:
            return DriftPolicy.model_validate(plain(candidate))
        except ValidationError:
            logger.warning("ignoring invalid DriftPolicy %s", candidate["metadata"]["name"])
    return None


# Status writes carry the resourceVersion they were computed from; on a conflict the
# status is recomputed from a fresh read, so concurrent writers never undo each other.
STATUS_WRITE_ATTEMPTS = 4


def write_status(
    runtime: Runtime,
    body: Mapping[str, Any],
    compute: Callable[[Mapping[str, Any], bool], StatusDecision],
) -> None:
    metadata = body["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    for attempt in range(STATUS_WRITE_ATTEMPTS):
        decision = compute(body, attempt > 0)
        old = {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
        if not status_changed(old, decision.status):
            return
        try:
            runtime.kube.patch_status(
                API_VERSION,
                KIND,
                namespace,
                name,
                merge_patch(old, decision.status),
                resource_version=body["metadata"].get("resourceVersion"),
            )
        except KubeError as error:
            if error.status != 409 or attempt == STATUS_WRITE_ATTEMPTS - 1:
                raise
            fresh = runtime.kube.get(API_VERSION, KIND, namespace, name)
            if fresh is None:
                return
            body = fresh
            continue
        post_events(body, decision.events)
        return


def _reread_tracks(
    runtime: Runtime, namespace: str, observed: Mapping[str, Mapping[str, Any]]
) -> dict[str, Mapping[str, Any]]:
    fresh: dict[str, Mapping[str, Any]] = {}
    for track, deployment in observed.items():
        name = deployment.get("metadata", {}).get("name", "")
        current_state = runtime.kube.get("apps/v1", "Deployment", namespace, name)
        if current_state is not None:
            fresh[track] = current_state
    return fresh


def reconcile_model_deployment(
    body: Mapping[str, Any],
    index_views: Mapping[str, Any],
    *,
    retry: int = 0,
    model_version_override: Mapping[str, Any] | None = None,
    policy_override: Mapping[str, Any] | None = None,
    excluded_policy: str | None = None,
) -> None:
    """Make the cluster match one ModelDeployment and report what it shows."""
    runtime = current()
    body = plain(body)
    metadata = body["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    key = (namespace, name)
    now = now_rfc3339()
    try:
        deployment = ModelDeployment.model_validate(body)
    except ValidationError as error:
        # The CRD schema should have refused this; say so rather than guess.
        invalid = ApplyOutcome(False, "InvalidSpec", str(error)[:1000])
        write_status(
            runtime,
            body,
            lambda fresh, _: compute_status(
                fresh, target=None, deployments={}, apply=invalid, url=None, now=now
            ),
        )
        raise kopf.PermanentError(f"invalid spec: {error}") from None
    spec = deployment.spec
    status = body.get("status") or {}
    observed: dict[str, Mapping[str, Any]] = {}
    deployment_index = index_views.get("owned_deployments")
    if deployment_index is not None:
        for existing in deployment_index.get(key, []):
            track = (existing.get("metadata", {}).get("labels") or {}).get(lbl.TRACK)
            if track:
                observed[track] = existing
    try:
        target = _model_version(
            runtime, namespace, spec.model_version, model_version_override, index_views
        )
        # What the stable Deployment runs is the fact; status only repeats it (and may
        # lag behind, if a status write failed).
        stable_name = (
            (observed["stable"].get("metadata", {}).get("annotations") or {}).get(lbl.MODEL_VERSION)
            if "stable" in observed
            else None
        ) or status.get("stableVersion")
        current_stable = (
            target
            if stable_name == spec.model_version
            else _model_version(
                runtime, namespace, stable_name, model_version_override, index_views
            )
        )
    except KubeError as error:
        raise kopf_error(error, retry) from None

    policy_bodies: list[Mapping[str, Any]] = []
    policy_index = index_views.get("policies_by_target")
    if policy_index is not None:
        policy_bodies.extend(policy_index.get(key, []))
    if policy_override is not None:
        override_name = policy_override["metadata"]["name"]
        policy_bodies = [p for p in policy_bodies if p["metadata"]["name"] != override_name]
        policy_bodies.append(policy_override)
    policy = _choose_policy(policy_bodies, excluded_policy)

    plan = plan_tracks(spec, target, current_stable)
    desired = render_model_deployment(body, spec, plan.tracks, policy, runtime.settings)
    outcome = ApplyOutcome(
        True,
        "ObjectsApplied",
        f"{len(desired)} objects applied"
        if desired
        else "nothing to run until a version is servable",
    )
    failure: KubeError | None = None
    try:
        for obj in desired:
            applied = runtime.kube.apply(obj)
            if obj["kind"] == "Deployment":
                observed[obj["metadata"]["labels"][lbl.TRACK]] = applied
        wanted = {(o["apiVersion"], o["kind"], o["metadata"]["name"]) for o in desired}
        for api_version, kind, child in sorted(indexes.owned_children(index_views, key) - wanted):
            if kind == "Deployment" and not plan.tracks:
                # Nothing servable could be read (a ModelVersion gone or unreadable): keep
                # what serves now rather than take production down.
                continue
            # Only tracks, HPA and sidecar RBAC come and go with the spec; never prune what
            # another controller might own (the index holds only objects we labelled).
            runtime.kube.delete(api_version, kind, namespace, child)
            if kind == "Deployment":
                observed = {t: d for t, d in observed.items() if d["metadata"]["name"] != child}
    except KubeError as error:
        failure = error
        outcome = ApplyOutcome(False, reason_for(error), str(error)[:1000])
    url = (
        serving_url(name, namespace, plan.tracks[0].model_version.spec.model, runtime.settings)
        if plan.tracks
        else None
    )
    try:
        _write_tracks_status(runtime, body, observed, target, outcome, url, now)
    except KubeError as error:
        failure = failure or error
    if failure is not None:
        raise kopf_error(failure, retry) from None


def refresh_status_from_deployment(
    deployment: Mapping[str, Any], event_type: str | None, index_views: Mapping[str, Any]
) -> None:
    """A track Deployment changed: recompute the owner's status from what the cluster says."""
    runtime = current()
    metadata = deployment.get("metadata", {})
    owner = indexes.controller_owner(metadata, KIND)
    namespace = metadata.get("namespace")
    if owner is None or namespace is None:
        return
    body = indexes.indexed_body(index_views, "model_deployments", (namespace, owner))
    if body is None:
        body = runtime.kube.get(API_VERSION, KIND, namespace, owner)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return
    track = (metadata.get("labels") or {}).get(lbl.TRACK)
    observed: dict[str, Mapping[str, Any]] = {}
    deployment_index = index_views.get("owned_deployments")
    if deployment_index is not None:
        for existing in deployment_index.get((namespace, owner), []):
            existing_track = (existing.get("metadata", {}).get("labels") or {}).get(lbl.TRACK)
            if existing_track:
                observed[existing_track] = existing
    if track:
        if event_type == "DELETED":
            observed.pop(track, None)
        else:
            observed[track] = deployment
    spec = body.get("spec") or {}
    target = _model_version(runtime, namespace, spec.get("modelVersion"), None, index_views)
    model_name = target.spec.model if target else None
    stable = observed.get("stable")
    if stable is not None:
        model_name = (stable.get("metadata", {}).get("labels") or {}).get(lbl.NAME, model_name)
    url = serving_url(owner, namespace, model_name, runtime.settings) if model_name else None
    _write_tracks_status(runtime, body, observed, target, None, url, now_rfc3339())


def _write_tracks_status(
    runtime: Runtime,
    body: Mapping[str, Any],
    observed: Mapping[str, Mapping[str, Any]],
    target: ModelVersion | None,
    apply: ApplyOutcome | None,
    url: str | None,
    now: str,
) -> None:
    """Write the status computed from the observed track Deployments."""
    namespace = body["metadata"]["namespace"]
    write_status(
        runtime,
        body,
        lambda fresh, conflicted: compute_status(
            fresh,
            target=target,
            # After a conflict someone wrote newer news: read the tracks again too.
            deployments=_reread_tracks(runtime, namespace, observed) if conflicted else observed,
            apply=apply,
            url=url,
            now=now,
        ),
    )


# -- kopf registrations -------------------------------------------------------------


@kopf.on.resume(GROUP, VERSION, "modeldeployments")
@kopf.on.create(GROUP, VERSION, "modeldeployments")
@kopf.on.update(GROUP, VERSION, "modeldeployments")
def model_deployment_changed(body: kopf.Body, retry: int, **kwargs: Any) -> None:
    with measured(KIND):
        reconcile_model_deployment(body, kwargs, retry=retry)


# What status is computed from, per Deployment uid, as last handled. Only an optimisation:
# a Deployment event that changes none of it (our own no-op applies, managedFields) is
# skipped; after a restart the cache is empty and every event counts.
_last_seen: dict[str, tuple[Any, ...]] = {}


def _status_inputs(body: Mapping[str, Any]) -> tuple[Any, ...]:
    metadata = body.get("metadata", {})
    status = body.get("status") or {}
    return (
        metadata.get("generation"),
        (metadata.get("annotations") or {}).get(lbl.MODEL_VERSION),
        (body.get("spec") or {}).get("replicas"),
        status.get("observedGeneration"),
        status.get("replicas"),
        status.get("readyReplicas"),
        status.get("availableReplicas"),
        status.get("updatedReplicas"),
    )


@kopf.on.event("apps", "v1", "deployments", labels=indexes.OWNED)
def track_deployment_changed(body: kopf.Body, type: str | None, **kwargs: Any) -> None:
    # The initial listing at start-up (type None) is covered by the resume handlers.
    if type is None:
        return
    uid = body.get("metadata", {}).get("uid", "")
    inputs = _status_inputs(body)
    if type == "DELETED":
        _last_seen.pop(uid, None)
    elif _last_seen.get(uid) == inputs:
        return
    with measured("Deployment"):
        try:
            refresh_status_from_deployment(plain(body), type, kwargs)
            if type != "DELETED":
                _last_seen[uid] = inputs
        except KubeError as error:
            # Not retried by kopf (event handlers are fire-and-forget): the next change of
            # the Deployment, or the owner's own reconcile, brings status up to date.
            logger.warning("status refresh after %s failed: %s", body["metadata"]["name"], error)
