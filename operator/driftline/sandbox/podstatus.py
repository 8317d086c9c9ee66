"""Process state -> the Pod status a kubelet writes, and the probe and restart rules (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# Kubernetes keeps at most 4096 bytes of a termination message, and with
# FallbackToLogsOnError the last 80 lines (at most 2048 bytes) of the log.
MESSAGE_LIMIT = 4096
LOG_FALLBACK_LINES = 80
LOG_FALLBACK_BYTES = 2048


@dataclass(frozen=True, slots=True)
class Terminated:
    exit_code: int
    started_at: str
    finished_at: str
    message: str = ""
    signal: int = 0

    @property
    def reason(self) -> str:
        return "Completed" if self.exit_code == 0 else "Error"

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
        }
        if self.signal:
            body["signal"] = self.signal
        if self.message:
            body["message"] = self.message
        return body


@dataclass(slots=True)
class ContainerState:
    """What the kubelet knows about one container."""

    name: str
    image: str
    running_since: str | None = None  # None: not running
    started: bool = False  # the startup probe passed (or there is none)
    ready: bool = False
    restart_count: int = 0
    terminated: Terminated | None = None  # the current state, when not running
    last_terminated: Terminated | None = None
    waiting_reason: str = "ContainerCreating"


@dataclass(slots=True)
class ProbeCounter:
    """Consecutive results of one probe, and the verdict Kubernetes draws from them."""

    failure_threshold: int
    success_threshold: int = 1
    successes: int = 0
    failures: int = 0
    passed: bool = False
    history: list[bool] = field(default_factory=list)

    def record(self, ok: bool) -> bool:
        """Count one result; True when the verdict changed."""
        before = self.passed
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= self.success_threshold:
                self.passed = True
        else:
            self.failures, self.successes = self.failures + 1, 0
            if self.failures >= self.failure_threshold:
                self.passed = False
        return before != self.passed

    @property
    def failed(self) -> bool:
        """Failed `failure_threshold` times in a row (liveness and startup restart on it)."""
        return self.failures >= self.failure_threshold


def restart_backoff(restart_count: int, *, base_s: float = 10.0, cap_s: float = 300.0) -> float:
    """The kubelet's CrashLoopBackOff: 10 s doubling per restart, at most 5 minutes."""
    return float(min(cap_s, base_s * (2 ** max(0, restart_count - 1)))) if restart_count else 0.0


def should_restart(restart_policy: str, exit_code: int) -> bool:
    if restart_policy == "Always":
        return True
    if restart_policy == "OnFailure":
        return exit_code != 0
    return False


def termination_message(file_text: str, log_tail: str, policy: str, exit_code: int) -> str:
    """The message from the terminationMessagePath file; with FallbackToLogsOnError, the
    log's tail when the file is empty and the container failed."""
    message = file_text[:MESSAGE_LIMIT]
    if not message.strip() and policy == "FallbackToLogsOnError" and exit_code != 0:
        lines = log_tail.splitlines()[-LOG_FALLBACK_LINES:]
        message = "\n".join(lines)[-LOG_FALLBACK_BYTES:]
    return message


def container_status(state: ContainerState) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": state.name,
        "image": state.image,
        "imageID": state.image,
        "ready": state.ready,
        "started": state.started,
        "restartCount": state.restart_count,
    }
    if state.running_since is not None:
        body["state"] = {"running": {"startedAt": state.running_since}}
        body["containerID"] = f"sandbox://{state.name}"
    elif state.terminated is not None:
        body["state"] = {"terminated": state.terminated.wire()}
    else:
        body["state"] = {"waiting": {"reason": state.waiting_reason}}
    if state.last_terminated is not None:
        body["lastState"] = {"terminated": state.last_terminated.wire()}
    return body


def pod_phase(states: Sequence[ContainerState], restart_policy: str) -> str:
    """Running while any container runs or will restart; Succeeded/Failed once all ended."""
    if any(s.running_since is not None for s in states):
        return "Running"
    if not states or any(s.terminated is None for s in states):
        return "Pending"
    codes = [s.terminated.exit_code for s in states if s.terminated is not None]
    if restart_policy == "Always":
        return "Running"
    if all(code == 0 for code in codes):
        return "Succeeded"
    if restart_policy == "OnFailure":
        return "Running"
    return "Failed"


def pod_status(
    states: Sequence[ContainerState],
    *,
    restart_policy: str,
    pod_ip: str,
    start_time: str,
    now: str,
    previous_conditions: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The status subresource body; conditions keep their lastTransitionTime while their
    status does not change."""
    phase = pod_phase(states, restart_policy)
    ready = bool(states) and all(s.ready for s in states) and phase == "Running"
    old = {c.get("type"): c for c in previous_conditions}

    def condition(kind: str, value: bool) -> dict[str, Any]:
        status = "True" if value else "False"
        before = old.get(kind)
        since = before["lastTransitionTime"] if before and before.get("status") == status else now
        return {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": since}

    return {
        "phase": phase,
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": start_time,
        "conditions": [
            condition("PodScheduled", True),
            condition("Initialized", True),
            condition("ContainersReady", ready),
            condition("Ready", ready),
        ],
        "containerStatuses": [container_status(s) for s in states],
    }


def is_pod_ready(pod: dict[str, Any]) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
