"""Importing this module registers Driftline with kopf.

kopf watches and indexes; every watch event only wakes the resources it concerns, by
putting their keys on one work queue (the one way a resource wakes another). The queue's
workers reconcile each key in the same shape: gather, decide (pure), execute.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import kopf

from driftline.api.common import GROUP, VERSION
from driftline.handlers import (
    driftpolicy,
    indexes,
    modeldeployment,
    modelversion,
    watch_resilience,
)
from driftline.handlers.context import OperatorSettings, Runtime
from driftline.handlers.kube import Kube, load_client_configuration
from driftline.handlers.metrics import measured
from driftline.handlers.workqueue import Key, WorkQueue
from driftline.render import labels as lbl
from driftline.render.retraining import COMPONENT_RETRAINING
from driftline.render.settings import RenderSettings

__all__ = ["reconcile"]

MODEL_DEPLOYMENT, MODEL_VERSION, DRIFT_POLICY = "ModelDeployment", "ModelVersion", "DriftPolicy"
_RECONCILERS = {
    MODEL_DEPLOYMENT: modeldeployment.reconcile,
    MODEL_VERSION: modelversion.reconcile,
    DRIFT_POLICY: driftpolicy.reconcile,
}
logger = logging.getLogger(__name__)


def reconcile(runtime: Runtime, key: Key, attempt: int) -> float | None:
    """One reconcile of one resource; seconds until it wants another look, or None."""
    with measured(key.kind):
        return _RECONCILERS[key.kind](runtime, key.namespace, key.name, attempt)


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    # Our own Events announce every transition; kopf's per-handler chatter would cost one
    # API call per handling.
    settings.posting.level = logging.ERROR
    # No single API answer on a list or watch may stop the operator (kopf exits on a 409).
    watch_resilience.install()
    # Every watch event only wakes a key: kopf's "handler succeeded" line per event is noise.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    settings.peering.standalone = True
    settings.networking.request_timeout = 60
    # Event handlers only put keys on the queue: give many objects room at once.
    settings.batching.worker_limit = 1000
    operator_settings = OperatorSettings.from_environment()
    runtime = Runtime(
        kube=Kube(load_client_configuration()),
        render=RenderSettings.from_environment(),
        settings=operator_settings,
        # kopf's indexes are live views: filled before any event handler runs.
        indexes={name: kwargs[name] for name in _index_names() if name in kwargs},
    )
    queue = WorkQueue(
        lambda key, attempt: reconcile(runtime, key, attempt), workers=operator_settings.workers
    )
    queue.start()
    memo.runtime = runtime
    memo.queue = queue


def _index_names() -> Iterable[str]:
    yield from indexes.CHILD_INDEXES
    yield from (
        "owned_deployments",
        "policies_by_target",
        "drift_policies",
        "model_versions",
        "model_deployments",
        "deployments_in_namespace",
        "deployments_by_version",
        "versions_by_model",
        "followers_of_model",
    )


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    queue = getattr(memo, "queue", None)
    if isinstance(queue, WorkQueue):
        await queue.stop()


def _wake(
    memo: kopf.Memo,
    kind: str,
    namespace: str | None,
    names: Iterable[str],
    *,
    delay: float = 0.0,
) -> None:
    queue: WorkQueue = memo.queue
    for name in names:
        if namespace and name:
            queue.add(Key(kind, namespace, name), delay)


def _changed_for_dependents(memo: kopf.Memo, key: tuple[str, ...], signature: Any) -> bool:
    """Whether what other resources read of this one changed since its last event. Status
    writes that only the resource itself cares about (usedBy, per-pod drift reports) then
    wake nobody else. Only spares work: after a restart the first event wakes everyone."""
    seen: dict[tuple[str, ...], Any] = memo.runtime.dependents_saw
    if seen.get(key) == signature:
        return False
    seen[key] = signature
    return True


# -- what each watch event wakes -----------------------------------------------------


@kopf.on.event(GROUP, VERSION, "modeldeployments")
async def model_deployment_event(
    body: kopf.Body, name: str, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    _wake(memo, MODEL_DEPLOYMENT, namespace, [name])
    # The versions it wants or serves keep their usedBy (and deletion guard) current.
    spec, status = body.get("spec") or {}, body.get("status") or {}
    # (After a second, so that a burst of deployment changes costs one usedBy write.)
    _wake(memo, MODEL_VERSION, namespace, indexes.referenced_versions(spec, status), delay=1.0)
    # Policies that target it report whether their target exists.
    policies = memo.runtime.lookup("policies_by_target", (namespace, name))
    _wake(memo, DRIFT_POLICY, namespace, [p["metadata"]["name"] for p in policies])


@kopf.on.event(GROUP, VERSION, "modelversions")
async def model_version_event(
    body: kopf.Body, type: str | None, name: str, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    _wake(memo, MODEL_VERSION, namespace, [name])
    metadata, status = body.get("metadata", {}), body.get("status") or {}
    # Deployments read a version's spec, phase and digest (and whether it exists).
    signature = (
        type == "DELETED",
        metadata.get("generation"),
        status.get("phase"),
        status.get("digest"),
        # a following deployment chooses by labels (the validation gate's among them)
        tuple(sorted((metadata.get("labels") or {}).items())),
    )
    if _changed_for_dependents(memo, (MODEL_VERSION, namespace or "", name), signature):
        users = memo.runtime.lookup("deployments_by_version", (namespace, name))
        model = (body.get("spec") or {}).get("model")
        if model:
            users += memo.runtime.lookup("followers_of_model", (namespace, model))
        _wake(memo, MODEL_DEPLOYMENT, namespace, users)


@kopf.on.event(GROUP, VERSION, "driftpolicies")
async def drift_policy_event(
    body: kopf.Body, type: str | None, name: str, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    _wake(memo, DRIFT_POLICY, namespace, [name])
    metadata = body.get("metadata", {})
    status = body.get("status") or {}
    # Its target reads the policy's verdict and the rollback it asks for (not every report:
    # the analysis reads those when its measurements are due).
    verdict = (
        (status.get("rollback") or {}).get("at"),
        status.get("severity"),
        tuple(
            (c.get("status"), c.get("reason"))
            for c in status.get("conditions") or []
            if c.get("type") == "Drifted"
        ),
    )
    target = ((body.get("spec") or {}).get("targetRef") or {}).get("name")
    verdict_key = (DRIFT_POLICY, namespace or "", name, "verdict")
    if type == "DELETED":
        memo.runtime.dependents_saw.pop(verdict_key, None)
    if target and _changed_for_dependents(memo, verdict_key, verdict):
        _wake(memo, MODEL_DEPLOYMENT, namespace, [target])
    # Deployments read a policy's spec and whether it exists, not its drift reports.
    signature = (
        type == "DELETED",
        metadata.get("generation"),
        bool(metadata.get("deletionTimestamp")),
    )
    if not _changed_for_dependents(memo, (DRIFT_POLICY, namespace or "", name), signature):
        return
    # A policy that appears, changes target or goes adds or removes a sidecar: every
    # deployment of the namespace looks again (a look that changes nothing costs no call).
    _wake(
        memo,
        MODEL_DEPLOYMENT,
        namespace,
        memo.runtime.lookup("deployments_in_namespace", (namespace, "")),
    )


def _owner_event(kind: str) -> Any:
    async def child_event(
        body: kopf.Body, namespace: str | None, memo: kopf.Memo, **_: Any
    ) -> None:
        owner = indexes.controller_owner(body.get("metadata", {}), kind)
        if owner:
            _wake(memo, kind, namespace, [owner])

    return child_event


for _group, _version, _plural in indexes.CHILD_RESOURCES:
    kopf.on.event(_group, _version, _plural, labels=indexes.OWNED, id=f"wake_owner_of_{_plural}")(
        _owner_event(MODEL_DEPLOYMENT)
    )

kopf.on.event(
    "batch",
    "v1",
    "jobs",
    labels={lbl.MANAGED_BY_LABEL: lbl.MANAGED_BY, lbl.COMPONENT: lbl.COMPONENT_VERIFICATION},
    id="wake_owner_of_verification_jobs",
)(_owner_event(MODEL_VERSION))

kopf.on.event(
    "batch",
    "v1",
    "jobs",
    labels={lbl.MANAGED_BY_LABEL: lbl.MANAGED_BY, lbl.COMPONENT: COMPONENT_RETRAINING},
    id="wake_owner_of_retraining_jobs",
)(_owner_event(DRIFT_POLICY))
