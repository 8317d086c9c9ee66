"""ModelVersion: gather what the cluster shows, decide, execute."""

from __future__ import annotations

from typing import Any

from driftline.api.common import API_VERSION
from driftline.api.modelversion import ModelVersion, ModelVersionStatus
from driftline.conditions import now_rfc3339
from driftline.handlers.context import Runtime
from driftline.handlers.executor import execute
from driftline.reconcile.modelversion import (
    KIND,
    JobObservation,
    ModelVersionObserved,
    decide,
    observe_owned_job,
    read_status,
    verification_due,
)
from driftline.render import labels as lbl
from driftline.render.verification import render_verification_job


def _observe_job(runtime: Runtime, body: dict[str, Any]) -> JobObservation:
    """Read the Job (and its pods once it has finished) only while verification is due."""
    if not verification_due(read_status(body)):
        return JobObservation("Missing")
    metadata = body["metadata"]
    namespace, job_name = metadata["namespace"], lbl.verification_job_name(metadata["name"])
    job = runtime.kube.get("batch/v1", "Job", namespace, job_name)
    observation = observe_owned_job(job, [], metadata.get("uid"))
    if observation.state in ("Succeeded", "Failed"):
        pods = runtime.kube.list("v1", "Pod", namespace, f"job-name={job_name}")
        observation = observe_owned_job(job, pods, metadata.get("uid"))
    return observation


def gather(
    runtime: Runtime, namespace: str, name: str, *, fresh: bool
) -> ModelVersionObserved | None:
    body = runtime.read("model_versions", API_VERSION, KIND, namespace, name, fresh=fresh)
    if body is None:
        return None
    return ModelVersionObserved(
        body=body,
        job=_observe_job(runtime, body),
        users=runtime.lookup("deployments_by_version", (namespace, name)),
    )


def reconcile(runtime: Runtime, namespace: str, name: str, attempt: int) -> float | None:
    observed = gather(runtime, namespace, name, fresh=attempt > 0)
    if observed is None:
        return None
    now = now_rfc3339()
    body = observed.body

    def render_job() -> dict[str, Any]:
        return render_verification_job(body, ModelVersion.model_validate(body), runtime.render)

    decision = decide(
        observed,
        render_job,
        now,
        recheck_seconds=runtime.settings.blocked_recheck_seconds,
    )
    written = execute(runtime.kube, decision, ModelVersionStatus(), now)
    if written:
        runtime.remember_write(KIND, (namespace, name), written)
    return decision.requeue_after
