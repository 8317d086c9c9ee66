"""Stand-ins for the controllers our objects depend on, each switchable per test.

A real cluster runs a Deployment controller, a Job controller with pods, and a Service IP
allocator; the operator reads what they write. These write the same status fields, after
a delay the test chooses, through the same store, so watches see them as in a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from driftline.apiserver import metadata
from driftline.apiserver.cluster import Cluster
from driftline.apiserver.errors import ApiError
from driftline.apiserver.resources import ResourceType
from driftline.apiserver.store import Event, Obj

DEPLOYMENTS = ("apps", "deployments")
JOBS = ("batch", "jobs")
SERVICES = ("", "services")
# A Job may say how the stand-in finishes it (for the sandbox, where no test code runs).
OUTCOME_ANNOTATION = "apiserver.driftline.io/job-outcome"  # "succeed" or "fail"
MESSAGE_ANNOTATION = "apiserver.driftline.io/termination-message"


@dataclass
class DeploymentStandIn:
    """Reports every replica ready `ready_delay` seconds after each spec change (if `ready`)."""

    enabled: bool = True
    ready_delay: float = 0.0
    ready: bool = True
    # Deployments (by name) whose pods never become ready, whatever `ready` says.
    never_ready: set[str] = field(default_factory=set)

    def ready_for(self, name: str) -> bool:
        return self.ready and name not in self.never_ready


@dataclass(frozen=True)
class JobOutcome:
    succeed: bool = True
    message: str = ""
    delay: float = 0.0

    @property
    def exit_code(self) -> int:
        return 0 if self.succeed else 1


@dataclass
class JobStandIn:
    """Finishes each Job as configured: by name, else the default outcome."""

    enabled: bool = True
    default: JobOutcome = field(default_factory=JobOutcome)
    by_name: dict[str, JobOutcome] = field(default_factory=dict)

    def set_outcome(
        self, name: str, *, succeed: bool, message: str = "", delay: float = 0.0
    ) -> None:
        self.by_name[name] = JobOutcome(succeed, message, delay)

    def outcome_for(self, job: Obj) -> JobOutcome:
        """By name if set, else by the Job's annotations (for the sandbox), else the default."""
        meta = job["metadata"]
        if meta["name"] in self.by_name:
            return self.by_name[meta["name"]]
        annotations = meta.get("annotations") or {}
        wanted = annotations.get(OUTCOME_ANNOTATION)
        if wanted not in ("succeed", "fail"):
            return self.default
        message = annotations.get(MESSAGE_ANNOTATION, self.default.message)
        return JobOutcome(succeed=wanted == "succeed", message=message, delay=self.default.delay)


@dataclass
class ServiceStandIn:
    """Allocates a clusterIP from the service CIDR, as kube-apiserver's allocator does."""

    enabled: bool = True
    cidr: str = "10.96.0.0/12"
    _next: int = 10

    def allocate(self) -> str:
        network = ipaddress.ip_network(self.cidr)
        self._next += 1
        return str(network.network_address + self._next)


def _condition(kind: str, status: str, reason: str, message: str) -> dict[str, Any]:
    now = metadata.now()
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
    }


def deployment_status(deployment: Obj, ready: bool) -> dict[str, Any]:
    """The status the Deployment controller reports once a rollout has (or has not) finished."""
    replicas = int((deployment.get("spec") or {}).get("replicas", 1))
    name = deployment["metadata"]["name"]
    counts = {"replicas": replicas, "updatedReplicas": replicas}
    if ready:
        counts |= {"readyReplicas": replicas, "availableReplicas": replicas}
    else:
        counts |= {"unavailableReplicas": replicas}
    status: dict[str, Any] = {"observedGeneration": deployment["metadata"].get("generation", 1)}
    status |= {k: v for k, v in counts.items() if v}
    if ready:
        available = _condition(
            "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."
        )
        progressing = _condition(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            f'ReplicaSet "{name}" has successfully progressed.',
        )
    else:
        available = _condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
        progressing = _condition(
            "Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{name}" is progressing.'
        )
    status["conditions"] = [available, progressing]
    return status


def job_pod(job: Obj, outcome: JobOutcome) -> tuple[Obj, dict[str, Any]]:
    """The pod a Job ran, and its final status with the container's termination message."""
    meta = job["metadata"]
    template = (job.get("spec") or {}).get("template") or {}
    spec = template.get("spec") or {}
    labels = {
        **((template.get("metadata") or {}).get("labels") or {}),
        "batch.kubernetes.io/job-name": meta["name"],
        "job-name": meta["name"],
        "batch.kubernetes.io/controller-uid": meta["uid"],
        "controller-uid": meta["uid"],
    }
    pod = {
        "metadata": {
            "generateName": meta["name"] + "-",
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }
    now = metadata.now()
    terminated = {
        "exitCode": outcome.exit_code,
        "reason": "Completed" if outcome.succeed else "Error",
        "startedAt": now,
        "finishedAt": now,
    }
    if outcome.message:
        terminated["message"] = outcome.message
    statuses = [
        {
            "name": c.get("name", ""),
            "image": c.get("image", ""),
            "imageID": c.get("image", ""),
            "containerID": "containerd://" + meta["uid"].replace("-", ""),
            "ready": False,
            "restartCount": 0,
            "started": False,
            "state": {"terminated": terminated},
        }
        for c in spec.get("containers") or [{}]
    ]
    status = {
        "phase": "Succeeded" if outcome.succeed else "Failed",
        "startTime": now,
        "containerStatuses": statuses,
    }
    return pod, status


def job_status(job: Obj, outcome: JobOutcome) -> dict[str, Any]:
    now = metadata.now()
    start = ((job.get("status") or {}).get("startTime")) or now

    def condition(kind: str, reason: str = "", message: str = "") -> dict[str, Any]:
        entry = {"type": kind, "status": "True", "lastProbeTime": now, "lastTransitionTime": now}
        return entry | ({"reason": reason, "message": message} if reason else {})

    if outcome.succeed:
        return {
            "startTime": start,
            "completionTime": now,
            "succeeded": 1,
            "ready": 0,
            "terminating": 0,
            "conditions": [
                condition(
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                ),
                condition(
                    "Complete", "CompletionsReached", "Reached expected number of succeeded pods"
                ),
            ],
        }
    return {
        "startTime": start,
        "failed": 1,
        "ready": 0,
        "terminating": 0,
        "conditions": [
            condition(
                "FailureTarget",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ),
            condition(
                "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"
            ),
        ],
    }


def _job_finished(job: Obj) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


class Controllers:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.deployments = DeploymentStandIn()
        self.jobs = JobStandIn()
        self.services = ServiceStandIn()
        self._queue: (
            asyncio.Queue[tuple[tuple[str, str, str], Coroutine[Any, Any, None]]] | None
        ) = None
        self._runner: asyncio.Task[None] | None = None
        self._pending: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        cluster.admissions.append(self._admit_service)

    def disable_all(self) -> None:
        self.deployments.enabled = self.jobs.enabled = self.services.enabled = False

    def _admit_service(self, resource: ResourceType, old: Obj | None, obj: Obj) -> Obj:
        if resource.storage_key != SERVICES or not isinstance(obj.get("spec"), dict):
            return obj
        spec = obj["spec"]
        spec.setdefault("type", "ClusterIP")
        old_ip = ((old or {}).get("spec") or {}).get("clusterIP")
        if old_ip and not spec.get("clusterIP"):
            spec["clusterIP"], spec["clusterIPs"] = old_ip, [old_ip]  # immutable once allocated
        elif self.services.enabled and not spec.get("clusterIP") and spec["type"] != "ExternalName":
            address = self.services.allocate()
            spec["clusterIP"], spec["clusterIPs"] = address, [address]
        return obj

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self.cluster.store.listen(self._on_event)
        self._runner = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self.cluster.store.unlisten(self._on_event)
        if self._queue is not None:
            while not self._queue.empty():
                self._queue.get_nowait()[1].close()  # never started
        tasks = [t for t in (self._runner, *self._pending.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_event(self, event: Event) -> None:
        """Decide at the moment of the change (so a switch flipped later does not apply to it)."""
        obj = event.obj
        if (
            self._queue is None
            or event.type == "DELETED"
            or obj["metadata"].get("deletionTimestamp")
        ):
            return
        key = (event.storage[1], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if event.storage == DEPLOYMENTS and self.deployments.enabled:
            observed = (obj.get("status") or {}).get("observedGeneration")
            if observed != obj["metadata"].get("generation"):
                work = self._finish_rollout(
                    obj,
                    self.deployments.ready_delay,
                    self.deployments.ready_for(obj["metadata"]["name"]),
                )
                self._queue.put_nowait((key, work))
        elif (
            event.storage == JOBS
            and self.jobs.enabled
            and event.type == "ADDED"
            and not _job_finished(obj)
        ):
            self._queue.put_nowait((key, self._finish_job(obj, self.jobs.outcome_for(obj))))

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            key, work = await self._queue.get()
            self._schedule(key, work)

    def _schedule(self, key: tuple[str, str, str], work: Coroutine[Any, Any, None]) -> None:
        previous = self._pending.pop(key, None)
        if previous is not None:
            previous.cancel()  # a newer spec supersedes a rollout in progress
        task = asyncio.create_task(work)
        self._pending[key] = task
        task.add_done_callback(
            lambda t: self._pending.pop(key, None) if self._pending.get(key) is t else None
        )

    async def _finish_rollout(self, deployment: Obj, delay: float, ready: bool) -> None:
        await asyncio.sleep(delay)  # the simulated time a rollout takes, not synchronisation
        resource = self.cluster.resource("apps", "v1", "deployments")
        current = self.cluster.store.get(
            DEPLOYMENTS, deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        )
        if current is None or current["metadata"]["uid"] != deployment["metadata"]["uid"]:
            return
        with contextlib.suppress(ApiError):
            self.cluster.write_status(resource, current, deployment_status(current, ready))

    async def _finish_job(self, job: Obj, outcome: JobOutcome) -> None:
        await asyncio.sleep(outcome.delay)  # the simulated run time of the Job
        jobs = self.cluster.resource("batch", "v1", "jobs")
        pods = self.cluster.resource("", "v1", "pods")
        current = self.cluster.store.get(
            JOBS, job["metadata"]["namespace"], job["metadata"]["name"]
        )
        if current is None or current["metadata"]["uid"] != job["metadata"]["uid"]:
            return
        with contextlib.suppress(ApiError):
            pod, pod_status = job_pod(current, outcome)
            created = self.cluster.create(pods, current["metadata"]["namespace"], pod)
            self.cluster.write_status(pods, created, pod_status)
            self.cluster.write_status(jobs, current, job_status(current, outcome))
