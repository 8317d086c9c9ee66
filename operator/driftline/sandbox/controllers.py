"""The controller-manager's part in the sandbox: Deployments and Jobs become Pods.

API clients like the kubelet. The Deployment controller here owns Pods directly (no
ReplicaSet in between: the operator reads only the Deployment's status) and rolls a new
template out by surge, taking an old pod away for each new one that is ready (the
operator renders maxUnavailable 0). The Job controller runs a pod at a time up to
backoffLimit + 1 failures. The decisions are pure functions; `Controllers` does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from driftline.sandbox.kube import Kube, KubeError, wake_on_changes
from driftline.sandbox.kubelet import NODE_NAME, now
from driftline.sandbox.podstatus import is_pod_ready

log = logging.getLogger("driftline.sandbox.controllers")
TEMPLATE_HASH = "pod-template-hash"


def template_hash(template: Mapping[str, Any]) -> str:
    text = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _suffix() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))


def owned_by(pod: Mapping[str, Any], uid: str) -> bool:
    return any(
        ref.get("uid") == uid and ref.get("controller")
        for ref in (pod.get("metadata") or {}).get("ownerReferences") or []
    )


def pod_for(
    owner: Mapping[str, Any],
    kind: str,
    api_version: str,
    name_prefix: str,
    extra_labels: dict[str, str],
) -> dict[str, Any]:
    """A Pod from the owner's template, bound to the sandbox node (there is no scheduler)."""
    meta = owner["metadata"]
    template = owner["spec"]["template"]
    template_meta = template.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name_prefix}-{_suffix()}",
            "namespace": meta["namespace"],
            "labels": {**(template_meta.get("labels") or {}), **extra_labels},
            "annotations": dict(template_meta.get("annotations") or {}),
            "ownerReferences": [
                {
                    "apiVersion": api_version,
                    "kind": kind,
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {**template["spec"], "nodeName": NODE_NAME},
    }


@dataclass(frozen=True)
class DeploymentPlan:
    create: int = 0
    delete: tuple[str, ...] = ()
    status: dict[str, Any] = field(default_factory=dict)


def _ready_first_then_oldest(pod: Mapping[str, Any]) -> tuple[bool, str]:
    return (not is_pod_ready(dict(pod)), pod["metadata"].get("creationTimestamp") or "")


def plan_deployment(
    deployment: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], timestamp: str
) -> DeploymentPlan:
    """Pods to create and delete, and the status to report, for one Deployment."""
    spec = deployment.get("spec") or {}
    desired = int(spec.get("replicas", 1))
    current_hash = template_hash(spec.get("template") or {})
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    new = [p for p in live if p["metadata"].get("labels", {}).get(TEMPLATE_HASH) == current_hash]
    old = [p for p in live if p not in new]
    new_ready = [p for p in new if is_pod_ready(dict(p))]
    ready = [p for p in live if is_pod_ready(dict(p))]
    delete: list[str] = []
    create = max(0, desired - len(new))
    if len(new) > desired:  # scale down: the not-ready and the newest go first
        extra = sorted(new, key=_ready_first_then_oldest)[desired:]
        delete += [p["metadata"]["name"] for p in extra]
    # Old pods that serve nothing go at once; a ready old pod goes only while the ready
    # pods left still cover `desired` (maxUnavailable 0).
    old_ready = [p for p in old if is_pod_ready(dict(p))]
    delete += [p["metadata"]["name"] for p in old if p not in old_ready]
    removable = max(0, len(new_ready) + len(old_ready) - desired)
    oldest_first = sorted(old_ready, key=lambda p: p["metadata"].get("creationTimestamp") or "")
    delete += [p["metadata"]["name"] for p in oldest_first[:removable]]
    updated = min(len(new), desired)
    available = min(len(ready), len(live))
    complete = len(new_ready) >= desired and not old and len(new) == desired
    status: dict[str, Any] = {
        "observedGeneration": deployment["metadata"].get("generation", 1),
        "replicas": len(live),
        "updatedReplicas": updated,
        "readyReplicas": len(ready),
        "availableReplicas": available,
        "unavailableReplicas": max(0, desired - available),
        "conditions": [
            {
                "type": "Available",
                "status": "True" if available >= desired else "False",
                "reason": "MinimumReplicasAvailable"
                if available >= desired
                else "MinimumReplicasUnavailable",
                "lastUpdateTime": timestamp,
                "lastTransitionTime": timestamp,
            },
            {
                "type": "Progressing",
                "status": "True",
                "reason": "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                "lastUpdateTime": timestamp,
                "lastTransitionTime": timestamp,
            },
        ],
    }
    return DeploymentPlan(create=create, delete=tuple(dict.fromkeys(delete)), status=status)


@dataclass(frozen=True)
class JobPlan:
    create: bool
    status: dict[str, Any] | None  # None: leave the status as it is


def plan_job(job: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], timestamp: str) -> JobPlan:
    """One pod at a time; Complete on a success, Failed after backoffLimit + 1 failures."""
    status = dict(job.get("status") or {})
    if any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in status.get("conditions") or []
    ):
        return JobPlan(False, None)
    phases = [(p.get("status") or {}).get("phase") for p in pods]
    succeeded = phases.count("Succeeded")
    failed = phases.count("Failed")
    active = len(pods) - succeeded - failed
    limit = int((job.get("spec") or {}).get("backoffLimit", 6))
    start = status.get("startTime") or timestamp

    def condition(kind: str, reason: str, message: str) -> dict[str, Any]:
        return {
            "type": kind,
            "status": "True",
            "reason": reason,
            "message": message,
            "lastProbeTime": timestamp,
            "lastTransitionTime": timestamp,
        }

    counts = {"startTime": start, "active": active, "succeeded": succeeded, "failed": failed}
    if succeeded:
        message = "Reached expected number of succeeded pods"
        return JobPlan(
            False,
            {
                **counts,
                "active": 0,
                "completionTime": timestamp,
                "conditions": [
                    condition("SuccessCriteriaMet", "CompletionsReached", message),
                    condition("Complete", "CompletionsReached", message),
                ],
            },
        )
    if failed > limit:
        message = "Job has reached the specified backoff limit"
        return JobPlan(
            False,
            {
                **counts,
                "active": 0,
                "conditions": [
                    condition("FailureTarget", "BackoffLimitExceeded", message),
                    condition("Failed", "BackoffLimitExceeded", message),
                ],
            },
        )
    changed = {k: v for k, v in counts.items() if status.get(k) != v}
    return JobPlan(active == 0, {**status, **counts} if changed else None)


class Controllers:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._wake = asyncio.Event()

    async def run(self) -> None:
        kinds = [("apps/v1", "deployments"), ("batch/v1", "jobs"), ("v1", "pods")]
        watcher = asyncio.create_task(wake_on_changes(self.kube, kinds, self._wake.set))
        try:
            while True:
                try:
                    await self.sync()
                except (KubeError, aiohttp.ClientError) as error:
                    log.warning("controllers sync failed: %s", error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                self._wake.clear()
        finally:
            watcher.cancel()

    async def sync(self) -> None:
        pods = await self.kube.list("v1", "pods")
        timestamp = now()
        for deployment in await self.kube.list("apps/v1", "deployments"):
            await self._sync_deployment(deployment, pods, timestamp)
        for job in await self.kube.list("batch/v1", "jobs"):
            await self._sync_job(job, pods, timestamp)

    async def _sync_deployment(
        self, deployment: dict[str, Any], pods: list[dict[str, Any]], timestamp: str
    ) -> None:
        meta = deployment["metadata"]
        if meta.get("deletionTimestamp"):
            return
        mine = [p for p in pods if owned_by(p, meta["uid"])]
        plan = plan_deployment(deployment, mine, timestamp)
        current_hash = template_hash(deployment["spec"].get("template") or {})
        for _ in range(plan.create):
            pod = pod_for(
                deployment,
                "Deployment",
                "apps/v1",
                f"{meta['name']}-{current_hash}",
                {TEMPLATE_HASH: current_hash},
            )
            await self.kube.create("v1", "pods", meta["namespace"], pod)
        for name in plan.delete:
            await self.kube.delete("v1", "pods", meta["namespace"], name)
        if _status_differs(deployment.get("status") or {}, plan.status):
            with contextlib.suppress(KubeError):
                await self.kube.patch(
                    "apps/v1",
                    "deployments",
                    meta["namespace"],
                    meta["name"],
                    {"status": plan.status},
                    subresource="status",
                )

    async def _sync_job(
        self, job: dict[str, Any], pods: list[dict[str, Any]], timestamp: str
    ) -> None:
        meta = job["metadata"]
        if meta.get("deletionTimestamp"):
            return
        mine = [p for p in pods if owned_by(p, meta["uid"])]
        plan = plan_job(job, mine, timestamp)
        if plan.create:
            labels = {
                "batch.kubernetes.io/job-name": meta["name"],
                "job-name": meta["name"],
                "batch.kubernetes.io/controller-uid": meta["uid"],
                "controller-uid": meta["uid"],
            }
            pod = pod_for(job, "Job", "batch/v1", meta["name"], labels)
            await self.kube.create("v1", "pods", meta["namespace"], pod)
        if plan.status is not None:
            with contextlib.suppress(KubeError):
                await self.kube.patch(
                    "batch/v1",
                    "jobs",
                    meta["namespace"],
                    meta["name"],
                    {"status": plan.status},
                    subresource="status",
                )


def _status_differs(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether anything but the conditions' times changed."""

    def strip(status: Mapping[str, Any]) -> Any:
        return {
            **{k: v for k, v in status.items() if k != "conditions"},
            "conditions": [
                (c.get("type"), c.get("status"), c.get("reason"))
                for c in status.get("conditions") or []
            ],
        }

    return bool(strip(old) != strip(new))
