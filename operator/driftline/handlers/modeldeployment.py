"""ModelDeployment: gather what the cluster shows, decide, execute."""

from __future__ import annotations

import time
from typing import Any

from driftline.api.common import API_VERSION
from driftline.api.modeldeployment import ModelDeploymentStatus
from driftline.conditions import now_rfc3339
from driftline.handlers.context import Runtime
from driftline.handlers.executor import execute
from driftline.handlers.indexes import CHILD_INDEXES
from driftline.reconcile.modeldeployment import (
    KIND,
    ModelDeploymentObserved,
    decide,
    read_status,
    stable_version_name,
)
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
        }
    versions = {
        version: found
        for version in wanted
        if version and (found := runtime.first("model_versions", (namespace, version))) is not None
    }
    return ModelDeploymentObserved(
        body=body,
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
        return None
    now = now_rfc3339()
    clock = time.monotonic()
    last = runtime.resynced_at.get(key)
    resync = runtime.settings.resync_seconds
    reapply_all = last is None or clock - last >= resync
    decision = decide(observed, runtime.render, now, reapply_all=reapply_all)
    written = execute(runtime.kube, decision, ModelDeploymentStatus(), now)
    if reapply_all:
        runtime.resynced_at[key] = clock
    until_resync = resync - (clock - runtime.resynced_at[key])
    if written:
        runtime.remember_write(KIND, (namespace, name), written)
    return min(
        (t for t in (decision.requeue_after, max(until_resync, 1.0)) if t is not None),
        default=None,
    )
