"""ModelDeployment: gather what the cluster shows, decide, execute."""

from __future__ import annotations

import time
from typing import Any

from pydantic import ValidationError

from driftline.analysis import runs as analysis_runs
from driftline.analysis.types import Outcome
from driftline.api.common import API_VERSION
from driftline.api.modeldeployment import ModelDeployment, ModelDeploymentStatus
from driftline.conditions import now_rfc3339
from driftline.handlers import metrics
from driftline.handlers.analysis import Subject
from driftline.handlers.context import Runtime
from driftline.handlers.executor import execute
from driftline.handlers.indexes import CHILD_INDEXES
from driftline.reconcile.modeldeployment import (
    KIND,
    ModelDeploymentObserved,
    analysis_due,
    choose_policy,
    decide,
    read_status,
    stable_version_name,
)
from driftline.reconcile.rollouts import parse_time
from driftline.render import labels as lbl


def gather(
    runtime: Runtime, namespace: str, name: str, *, fresh: bool
) -> ModelDeploymentObserved | None:
    """What one reconcile needs, from kopf's indexes; `fresh` reads the resource itself from
    the API (after a conflict the index copy may be older than what the API holds)."""
    key = (namespace, name)
    body = runtime.read("model_deployments", API_VERSION, KIND, namespace, name, fresh=fresh)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return None  # garbage collection removes the children
    tracks: dict[str, dict[str, Any]] = {}
    for deployment in runtime.lookup("owned_deployments", key):
        track = (deployment.get("metadata", {}).get("labels") or {}).get(lbl.TRACK)
        if track:
            tracks[track] = deployment
    status = read_status(body)
    wanted = {
        (body.get("spec") or {}).get("modelVersion"),
        stable_version_name(tracks, status),
        *(
            (track.get("metadata", {}).get("annotations") or {}).get(lbl.MODEL_VERSION)
            for track in tracks.values()
        ),
    }
    if status is not None:
        wanted |= {
            status.stable_version,
            status.canary_version,
            status.preview_version,
            status.previous_version,
            status.rolled_back_to,
            # a drift rollback returns to one of these
            *(revision.version for revision in status.history if revision.outcome == "Promoted"),
        }
    versions = {
        version: found
        for version in wanted
        if version and (found := runtime.first("model_versions", (namespace, version))) is not None
    }
    model = ((body.get("spec") or {}).get("versionSelector") or {}).get("model")
    candidates = runtime.lookup("versions_by_model", (namespace, model)) if model else []
    return ModelDeploymentObserved(
        body=body,
        candidates=candidates,
        model_versions=versions,
        policies=runtime.lookup("policies_by_target", key),
        tracks=tracks,
        children=[child for index in CHILD_INDEXES for child in runtime.lookup(index, key)],
    )


def reconcile(runtime: Runtime, namespace: str, name: str, attempt: int) -> float | None:
    observed = gather(runtime, namespace, name, fresh=attempt > 0)
    key = (namespace, name)
    if observed is None:
        runtime.resynced_at.pop(key, None)
        runtime.analyst.forget(namespace, name)
        return None
    now = now_rfc3339()
    clock = time.monotonic()
    last = runtime.resynced_at.get(key)
    resync = runtime.settings.resync_seconds
    reapply_all = last is None or clock - last >= resync
    subject = analysis_subject(observed)
    due = analysis_due(observed, now)
    outcomes: dict[tuple[str, str], Outcome] = {}
    if due and subject is not None:
        outcomes = runtime.analyst.measure(subject, due, parse_time(now))
    decision = decide(observed, runtime.render, now, reapply_all=reapply_all, outcomes=outcomes)
    written = execute(runtime.kube, decision, ModelDeploymentStatus(), now)
    if subject is not None and decision.status is not None:
        old = read_status(observed.body) or ModelDeploymentStatus()
        new = decision.status
        count_analysis(namespace, name, old, new, outcomes)
        if new.rollback_handled_at != old.rollback_handled_at and (
            new.rolled_back_version != old.rolled_back_version
            or new.aborted_version != old.aborted_version
        ):
            metrics.ROLLBACKS.labels(namespace, name).inc()
        running = [
            target
            for target in analysis_runs.active_targets(subject.spec, new)
            if any(
                run.name == target.run
                and run.version == target.version
                and run.verdict == "Running"
                for run in new.analysis
            )
        ]
        runtime.analyst.prepare(subject, running)
    if reapply_all:
        runtime.resynced_at[key] = clock
    until_resync = resync - (clock - runtime.resynced_at[key])
    if written:
        runtime.remember_write(KIND, (namespace, name), written)
    return min(
        (t for t in (decision.requeue_after, max(until_resync, 1.0)) if t is not None),
        default=None,
    )


def analysis_subject(observed: ModelDeploymentObserved) -> Subject | None:
    """What the analysis measures for, or None for a spec that cannot be read."""
    try:
        resource = ModelDeployment.model_validate(observed.body)
    except ValidationError:
        return None
    metadata = observed.body["metadata"]
    status = read_status(observed.body)
    return Subject(
        namespace=metadata["namespace"],
        name=metadata["name"],
        spec=resource.spec,
        stable_version=status.stable_version if status is not None else None,
        policy=choose_policy(observed.policies),
    )


def count_analysis(
    namespace: str,
    name: str,
    old: ModelDeploymentStatus,
    new: ModelDeploymentStatus,
    outcomes: dict[tuple[str, str], Outcome],
) -> None:
    """The operator's analysis metrics: each measurement recorded, and the verdict of
    every gate and run that ended in this reconcile."""
    was_running = {(r.name, r.version) for r in old.analysis if r.verdict == "Running"}
    for run in new.analysis:
        for gate in run.gates:
            if (run.name, gate.name) in outcomes and gate.recent:
                metrics.ANALYSIS_MEASUREMENTS.labels(
                    namespace, name, gate.name, gate.recent[-1].phase
                ).inc()
        if run.verdict != "Running" and (run.name, run.version) in was_running:
            metrics.ANALYSIS_RUNS.labels(namespace, name, run.name, run.verdict).inc()
            for gate in run.gates:
                metrics.ANALYSIS_VERDICTS.labels(namespace, name, gate.name, gate.verdict).inc()
