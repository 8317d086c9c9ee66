"""ModelVersion handlers: verification through a Job, lifecycle phases, deletion guard."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import kopf

from driftline.api.common import API_VERSION, GROUP, VERSION
from driftline.api.modelversion import ModelVersion
from driftline.conditions import now_rfc3339
from driftline.handlers.kube import KubeError
from driftline.handlers.metrics import measured
from driftline.handlers.modeldeployment import post_events, reconcile_model_deployment
from driftline.handlers.runtime import backoff_seconds, current, kopf_error, plain
from driftline.reconcile.merge_patch import merge_patch
from driftline.reconcile.modeldeployment import status_changed
from driftline.reconcile.modelversion import (
    VERIFIED_PHASES,
    JobObservation,
    decide_model_version,
    deletion_blockers,
    is_servable,
    observe_job,
)
from driftline.render import labels as lbl
from driftline.render.verification import render_verification_job

KIND = "ModelVersion"
# How often a blocked deletion looks again whether the version is still in use.
DELETION_RECHECK_SECONDS = float(os.environ.get("DRIFTLINE_DELETION_RECHECK_SECONDS") or 10)
RECORD_ATTEMPTS = 5
REQUEUE_ANNOTATION = "driftline.io/requeued-at"
logger = logging.getLogger(__name__)


def _users(index_views: Mapping[str, Any], namespace: str, name: str) -> list[dict[str, Any]]:
    index = index_views.get("deployments_by_version")
    if index is None:
        return []
    unique = {summary["name"]: dict(summary) for summary in index.get((namespace, name), [])}
    return [unique[n] for n in sorted(unique)]


def _observe(namespace: str, job_name: str, status: Mapping[str, Any]) -> JobObservation:
    """Read the Job (and its pods once it has finished) only while verification is due."""
    if status.get("phase") in VERIFIED_PHASES and status.get("digest"):
        return JobObservation("Missing")
    if status.get("phase") == "Failed":
        return JobObservation("Missing")
    kube = current().kube
    job = kube.get("batch/v1", "Job", namespace, job_name)
    observation = observe_job(job, [])
    if observation.state in ("Succeeded", "Failed"):
        pods = kube.list("v1", "Pod", namespace, f"job-name={job_name}")
        observation = observe_job(job, pods)
    return observation


def reconcile_model_version(
    body: Mapping[str, Any], index_views: Mapping[str, Any], *, retry: int = 0
) -> None:
    runtime = current()
    body = plain(body)
    metadata = body["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    job_name = lbl.verification_job_name(name)
    old_status = {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
    try:
        observation = _observe(namespace, job_name, old_status)
        decision = decide_model_version(body, observation, job_name, now=now_rfc3339())
        if decision.create_job:
            model_version = ModelVersion.model_validate(body)
            runtime.kube.apply(render_verification_job(body, model_version, runtime.settings))
        users = _users(index_views, namespace, name)
        new_status = {**decision.status, "usedBy": [u["name"] for u in users]}
        if status_changed(old_status, new_status):
            runtime.kube.patch_status(
                API_VERSION,
                KIND,
                namespace,
                name,
                merge_patch(old_status, new_status),
                resource_version=metadata.get("resourceVersion"),
            )
        post_events(body, decision.events)
        # Deployments waiting for this version (or serving one that stopped being servable)
        # move now rather than on their next change.
        phase_changed = old_status.get("phase") != new_status["phase"]
        servable = is_servable(new_status)
        fresh = {**body, "status": new_status}
        waiting = [
            user["name"]
            for user in users
            if user["target"] == name and (phase_changed or (servable and user["stable"] != name))
        ]
    except KubeError as error:
        raise kopf_error(error, retry) from None
    _move_deployments(namespace, waiting, fresh, index_views, retry)


def _move_deployments(
    namespace: str,
    names: list[str],
    model_version: Mapping[str, Any],
    index_views: Mapping[str, Any],
    retry: int,
) -> None:
    """Reconcile each deployment on its own: one that fails must not hold back the rest.
    Failures are retried through this ModelVersion's handler, which then moves only the
    deployments that do not serve it yet."""
    failed: list[str] = []
    for deployment_name in names:
        try:
            deployment = current().kube.get(
                API_VERSION, "ModelDeployment", namespace, deployment_name
            )
            if deployment is not None:
                reconcile_model_deployment(
                    deployment, index_views, retry=retry, model_version_override=model_version
                )
        except (KubeError, kopf.TemporaryError, kopf.PermanentError) as error:
            logger.warning("moving %s to a new version failed: %s", deployment_name, error)
            failed.append(deployment_name)
    still_failed = []
    for deployment_name in failed:
        # Hand the deployment to its own handler, whose retries (with backoff, for as long
        # as it takes) kopf keeps: an annotation change is a change kopf reacts to.
        try:
            current().kube.annotate(
                API_VERSION,
                "ModelDeployment",
                namespace,
                deployment_name,
                {REQUEUE_ANNOTATION: now_rfc3339()},
            )
        except KubeError:
            still_failed.append(deployment_name)
    failed = still_failed
    if failed:
        raise kopf.TemporaryError(
            f"could not move {', '.join(failed)} yet", delay=backoff_seconds(retry)
        )


@kopf.on.resume(GROUP, VERSION, "modelversions")
@kopf.on.create(GROUP, VERSION, "modelversions")
@kopf.on.update(GROUP, VERSION, "modelversions")
def model_version_changed(body: kopf.Body, retry: int, **kwargs: Any) -> None:
    with measured(KIND):
        reconcile_model_version(body, kwargs, retry=retry)


@kopf.on.event(
    "batch",
    "v1",
    "jobs",
    labels={lbl.MANAGED_BY_LABEL: lbl.MANAGED_BY, lbl.COMPONENT: lbl.COMPONENT_VERIFICATION},
)
def verification_job_changed(body: kopf.Body, type: str | None, **kwargs: Any) -> None:
    """A verification Job finished: record its result on the ModelVersion."""
    if type in (None, "DELETED"):
        return
    observation = observe_job(plain(body), [])
    if observation.state not in ("Succeeded", "Failed"):
        return
    metadata = body["metadata"]
    owner = next(
        (
            ref["name"]
            for ref in metadata.get("ownerReferences") or []
            if ref.get("kind") == KIND and ref.get("controller")
        ),
        None,
    )
    if owner is None:
        return
    with measured(KIND):
        for attempt in range(RECORD_ATTEMPTS):
            try:
                model_version = current().kube.get(API_VERSION, KIND, metadata["namespace"], owner)
                if model_version is not None:
                    reconcile_model_version(model_version, kwargs, retry=attempt)
                return
            except kopf.TemporaryError as error:
                # A conflict with a concurrent write, or a passing API error: read again.
                logger.info("recording verification of %s: %s; trying again", owner, error)
                time.sleep(backoff_seconds(attempt))
            except (KubeError, kopf.PermanentError) as error:
                logger.warning("recording verification of %s failed: %s", owner, error)
                return


@kopf.on.delete(GROUP, VERSION, "modelversions")
def model_version_deleted(name: str, namespace: str | None, body: kopf.Body, **kwargs: Any) -> None:
    """The finalizer: a version in use stays until no ModelDeployment uses it."""
    if namespace is None:
        return
    users = [u["name"] for u in _users(kwargs, namespace, name)]
    blocked = deletion_blockers(name, users)
    if blocked is None:
        return
    status = {k: v for k, v in (body.get("status") or {}).items() if k != "kopf"}
    if status.get("usedBy") != users:
        try:
            current().kube.patch_status(API_VERSION, KIND, namespace, name, {"usedBy": users})
        except KubeError as error:
            logger.warning("cannot record users of %s: %s", name, error)
    kopf.event(body, type="Warning", reason="DeletionBlocked", message=blocked)
    raise kopf.TemporaryError(blocked, delay=DELETION_RECHECK_SECONDS)
