"""DriftPolicy: gather what the cluster shows, decide, execute."""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from typing import Any

from driftline.api.common import API_VERSION
from driftline.api.driftpolicy import DriftPolicyStatus
from driftline.conditions import now_rfc3339
from driftline.handlers import metrics
from driftline.handlers.context import Runtime
from driftline.handlers.executor import execute
from driftline.reconcile.driftpolicy import KIND, DriftPolicyObserved, decide
from driftline.reconcile.modelversion import JobObservation, observe_owned_job
from driftline.render.labels import selector_string, server_selector


def _live_pods(runtime: Runtime, body: dict[str, Any], target: str) -> Collection[str] | None:
    """The target's serving pods, listed at most once per prune interval and only while
    some pod has reported (so an idle policy costs no API call)."""
    if not (body.get("status") or {}).get("pods") or not target:
        return None
    metadata = body["metadata"]
    key = (metadata["namespace"], metadata["name"])
    now = time.monotonic()
    last = runtime.pods_listed_at.get(key)
    if last is not None and now - last < runtime.settings.drift_prune_seconds:
        return None
    pods = runtime.kube.list(
        "v1", "Pod", metadata["namespace"], selector_string(server_selector(target))
    )
    runtime.pods_listed_at[key] = now
    return {pod["metadata"]["name"] for pod in pods}


def gather(
    runtime: Runtime, namespace: str, name: str, *, fresh: bool
) -> DriftPolicyObserved | None:
    body = runtime.read("drift_policies", API_VERSION, KIND, namespace, name, fresh=fresh)
    if body is None or body["metadata"].get("deletionTimestamp"):
        runtime.pods_listed_at.pop((namespace, name), None)
        return None
    target = ((body.get("spec") or {}).get("targetRef") or {}).get("name", "")
    exists = runtime.first("model_deployments", (namespace, target)) is not None
    status = body.get("status") or {}
    in_flight = [
        run for run in status.get("retrainings") or [] if run.get("phase") in ("Pending", "Running")
    ]
    wanted = {str(r.get("modelVersion") or "") for r in (status.get("pods") or {}).values()}
    wanted |= {str(run.get("parent") or "") for run in in_flight}
    versions = {
        version: found
        for version in wanted
        if version and (found := runtime.first("model_versions", (namespace, version)))
    }
    return DriftPolicyObserved(
        body=body,
        target_exists=exists,
        live_pods=_live_pods(runtime, body, target),
        versions=versions,
        jobs={run["job"]: _observe_job(runtime, body, run["job"]) for run in in_flight},
    )


def _observe_job(runtime: Runtime, body: dict[str, Any], name: str) -> JobObservation:
    """A retraining Job, and once it finished its pods (for the termination message)."""
    metadata = body["metadata"]
    namespace, uid = metadata["namespace"], metadata.get("uid")
    job = runtime.kube.get("batch/v1", "Job", namespace, name)
    observation = observe_owned_job(job, [], uid, container=None)
    if observation.state in ("Succeeded", "Failed"):
        pods = runtime.kube.list("v1", "Pod", namespace, f"job-name={name}")
        observation = observe_owned_job(job, pods, uid, container=None)
    return observation


def reconcile(runtime: Runtime, namespace: str, name: str, attempt: int) -> float | None:
    observed = gather(runtime, namespace, name, fresh=attempt > 0)
    if observed is None:
        return None
    now = now_rfc3339()
    decision = decide(observed, now, recheck_seconds=runtime.settings.drift_prune_seconds)
    written = execute(runtime.kube, decision, DriftPolicyStatus(), now)
    count_retrainings(namespace, name, observed.body, decision.status)
    if written:
        runtime.remember_write(KIND, (namespace, name), written)
    return decision.requeue_after


def count_retrainings(
    namespace: str, name: str, body: Mapping[str, Any], new: DriftPolicyStatus | None
) -> None:
    """The operator's metric of retraining runs that ended in this reconcile."""
    if new is None:
        return
    before = {
        run.get("trigger"): run.get("phase")
        for run in (body.get("status") or {}).get("retrainings") or []
    }
    for run in new.retrainings:
        if (
            run.phase in ("Succeeded", "Failed", "Rejected")
            and before.get(run.trigger) != run.phase
        ):
            metrics.RETRAINING_JOBS.labels(namespace, name, run.phase.lower()).inc()
