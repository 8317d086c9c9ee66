"""The sandbox's kubelet: a client of the API that runs the Pods bound to its node as
local processes, probes them, restarts them, and writes their status back.

Each pod gets its own loopback address from the sandbox's block (slots.py: 127.S.0.2,
127.S.0.3, ...), so its containers listen on their own ports as in a pod network; its volumes are directories under the pod's own folder
(see plan.py for how paths are mapped). The rules (plan, status, probes, restarts) are
pure functions in plan.py and podstatus.py; this module does the I/O.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import secrets
import shutil
import signal
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from driftline.sandbox import processes
from driftline.sandbox.kube import Kube, KubeError, wake_on_changes
from driftline.sandbox.plan import ContainerPlan, PlanError, PodContext, PodPlan, Probe, plan_pod
from driftline.sandbox.podstatus import (
    ContainerState,
    ProbeCounter,
    Terminated,
    pod_status,
    restart_backoff,
    should_restart,
    termination_message,
)
from driftline.sandbox.slots import AddressBlock

log = logging.getLogger("driftline.sandbox.kubelet")
NODE_NAME = "sandbox"
PROBE_TIMEOUT_S = 1.0  # timeoutSeconds' default
LOG_TAIL_BYTES = 8192
START_ERROR_CODE = 128  # what Kubernetes reports for a container that could not start


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def default_path_env() -> str:
    """Where the containers' commands are found: this Python's scripts, then the system's."""
    return os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"])


@dataclass(frozen=True)
class KubeletOptions:
    root: str  # pods' folders live here (kept short: Unix socket paths are limited)
    api_host: str
    api_port: int
    block: AddressBlock  # where the pods' IPs come from
    node_name: str = NODE_NAME
    # A probe's period, at most this (None: as the spec says). The sandbox's quick
    # scenarios shorten it; the probes themselves and their thresholds stay real.
    max_probe_period_s: float | None = None
    restart_backoff_base_s: float = 10.0
    # A pod's terminationGracePeriodSeconds, at most this.
    max_grace_s: float = 10.0
    path_env: str = ""


class ContainerRunner:
    """One container: its process, restarts, and probes."""

    def __init__(self, pod: PodRunner, plan: ContainerPlan, image: str) -> None:
        self.pod = pod
        self.plan = plan
        self.state = ContainerState(name=plan.name, image=image)
        self.process: asyncio.subprocess.Process | None = None
        self.log_path = os.path.join(pod.directory, "logs", f"{plan.name}.log")
        self._stopping = False
        self._started = asyncio.Event()

    def _probe_period(self, probe: Probe) -> float:
        limit = self.pod.kubelet.options.max_probe_period_s
        return min(probe.period_s, limit) if limit is not None else probe.period_s

    async def _probe_once(self, probe: Probe) -> bool:
        url = f"http://{self.pod.ip}:{probe.port}{probe.path}"
        try:
            async with self.pod.kubelet.http.get(
                url, timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)
            ) as response:
                return 200 <= response.status < 400
        except (aiohttp.ClientError, TimeoutError, OSError):
            return False

    async def _probe(self, probe: Probe, process: asyncio.subprocess.Process) -> None:
        """Run one probe for one process's life; kills the process when liveness fails."""
        counter = ProbeCounter(probe.failure_threshold, probe.success_threshold)
        if probe.kind != "startup":
            await self._started.wait()
        await asyncio.sleep(probe.initial_delay_s)  # initialDelaySeconds, as the spec says
        while process.returncode is None:
            ok = await self._probe_once(probe)
            counter.record(ok)
            if probe.kind == "startup":
                if counter.passed:
                    self.state.started = True
                    self._started.set()
                    self.pod.changed()
                    return
                if counter.failed:
                    processes.signal_group(process.pid, signal.SIGKILL)
                    return
            elif probe.kind == "readiness":
                if self.state.ready != counter.passed:
                    self.state.ready = counter.passed
                    self.pod.changed()
            elif counter.failed:
                log.info("%s/%s: liveness failed, restarting", self.pod.name, self.plan.name)
                processes.signal_group(process.pid, signal.SIGKILL)
                return
            # the probe's period, the kubelet's schedule (not synchronisation)
            await asyncio.sleep(self._probe_period(probe))

    async def run(self) -> None:
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        while not self._stopping:
            if self.state.restart_count:
                self.state.waiting_reason = "CrashLoopBackOff"
                self.pod.changed()
                await asyncio.sleep(
                    restart_backoff(
                        self.state.restart_count,
                        base_s=self.pod.kubelet.options.restart_backoff_base_s,
                    )
                )
                if self._stopping:
                    return
            try:
                exit_status, started_at = await self._run_once()
            except OSError as error:  # the command cannot be run: Kubernetes' StartError
                log.warning("%s/%s cannot start: %s", self.pod.name, self.plan.name, error)
                moment = now()
                finished = Terminated(START_ERROR_CODE, moment, moment, f"cannot start: {error}")
            else:
                code, signum = processes.exit_code(exit_status)
                message = self._termination_message(code)
                finished = Terminated(code, started_at, now(), message, signum)
            code = finished.exit_code
            self.state.running_since = None
            self.state.ready = False
            if self._stopping or not should_restart(self.pod.restart_policy, code):
                self.state.terminated = finished
                self.pod.changed()
                return
            self.state.last_terminated = finished
            self.state.restart_count += 1
            self.pod.changed()

    async def _run_once(self) -> tuple[int, str]:
        with open(self.plan.termination_message_path, "w"):
            pass  # a fresh termination message file for each run
        with open(self.log_path, "ab") as output:
            self.process = await processes.start(
                self.plan.argv, env=self.plan.env, cwd=self.pod.directory, log=output
            )
        started_at = now()
        has_startup = any(p.kind == "startup" for p in self.plan.probes)
        self._started = asyncio.Event()
        if not has_startup:
            self._started.set()
        self.state.running_since = started_at
        self.state.started = not has_startup
        self.state.ready = not any(p.kind == "readiness" for p in self.plan.probes)
        self.state.terminated = None
        self.pod.changed()
        probes = [asyncio.create_task(self._probe(p, self.process)) for p in self.plan.probes]
        try:
            status = await self.process.wait()
        finally:
            for task in probes:
                task.cancel()
            processes.forget(self.process.pid)
            processes.signal_group(
                self.process.pid, signal.SIGKILL
            )  # what the container left behind
        return status, started_at

    def _termination_message(self, code: int) -> str:
        try:
            with open(self.plan.termination_message_path, errors="replace") as file:
                text = file.read()
        except OSError:
            text = ""
        tail = ""
        with contextlib.suppress(OSError), open(self.log_path, "rb") as log_file:
            log_file.seek(max(0, os.path.getsize(self.log_path) - LOG_TAIL_BYTES))
            tail = log_file.read().decode(errors="replace")
        return termination_message(text, tail, self.plan.termination_message_policy, code)

    async def stop(self, grace_s: float) -> None:
        self._stopping = True
        if self.process is not None and self.process.returncode is None:
            await processes.stop(self.process, grace_s)


class PodRunner:
    def __init__(self, kubelet: Kubelet, pod: dict[str, Any], ip: str, directory: str) -> None:
        self.kubelet = kubelet
        self.pod = pod
        self.ip = ip
        self.directory = directory
        meta = pod["metadata"]
        self.name, self.namespace, self.uid = meta["name"], meta["namespace"], meta["uid"]
        self.plan: PodPlan | None = None
        self.containers: list[ContainerRunner] = []
        self.start_time = now()
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._conditions: list[dict[str, Any]] = []

    def changed(self) -> None:
        self._changed.set()

    @property
    def restart_policy(self) -> str:
        return self.plan.restart_policy if self.plan is not None else "Always"

    async def start(self) -> None:
        try:
            self.plan = await self._plan()
        except (PlanError, KubeError) as error:
            await self._fail(str(error))
            return
        for path, content in self.plan.files.items():
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as file:
                file.write(content)
        for directory in self.plan.volumes.values():
            os.makedirs(directory, exist_ok=True)
        os.makedirs(os.path.join(self.directory, "termination"), exist_ok=True)
        images = {c["name"]: c.get("image", "") for c in self.pod["spec"]["containers"]}
        self.containers = [ContainerRunner(self, c, images[c.name]) for c in self.plan.containers]
        self._tasks = [asyncio.create_task(c.run()) for c in self.containers]
        for task in self._tasks:
            task.add_done_callback(_log_failure)
        self._tasks.append(asyncio.create_task(self._write_status()))

    async def _plan(self) -> PodPlan:
        secrets_by_name: dict[str, dict[str, str]] = {}
        config_maps: dict[str, dict[str, str]] = {}
        for item in await self.kubelet.kube.list("v1", "configmaps", self.namespace):
            config_maps[item["metadata"]["name"]] = dict(item.get("data") or {})
        for item in await self.kubelet.kube.list("v1", "secrets", self.namespace):
            data = item.get("data") or {}
            secrets_by_name[item["metadata"]["name"]] = {
                k: base64.b64decode(v).decode(errors="replace") for k, v in data.items()
            } | dict(item.get("stringData") or {})
        options = self.kubelet.options
        context = PodContext(
            pod_ip=self.ip,
            pod_dir=self.directory,
            api_host=options.api_host,
            api_port=options.api_port,
            token=secrets.token_urlsafe(32),
            kubeconfig_path=os.path.join(self.directory, "kubeconfig"),
            path_env=options.path_env or default_path_env(),
            secrets=secrets_by_name,
            config_maps=config_maps,
        )
        return plan_pod(self.pod, context)

    async def _fail(self, message: str) -> None:
        log.warning("pod %s/%s cannot run: %s", self.namespace, self.name, message)
        status = {
            "phase": "Failed",
            "reason": "SandboxUnsupported",
            "message": message,
            "startTime": self.start_time,
        }
        with contextlib.suppress(KubeError):
            await self.kubelet.kube.patch(
                "v1", "pods", self.namespace, self.name, {"status": status}, subresource="status"
            )

    async def _write_status(self) -> None:
        assert self.plan is not None
        while True:
            await self._changed.wait()
            self._changed.clear()
            status = pod_status(
                [c.state for c in self.containers],
                restart_policy=self.plan.restart_policy,
                pod_ip=self.ip,
                start_time=self.start_time,
                now=now(),
                previous_conditions=self._conditions,
            )
            self._conditions = status["conditions"]
            try:
                await self.kubelet.kube.patch(
                    "v1",
                    "pods",
                    self.namespace,
                    self.name,
                    {"status": status},
                    subresource="status",
                )
            except KubeError as error:
                if error.status == 404:
                    return
                log.warning("pod %s status not written: %s", self.name, error)
                self._changed.set()
                await asyncio.sleep(0.5)  # retry backoff
            except aiohttp.ClientError:
                self._changed.set()
                await asyncio.sleep(0.5)  # retry backoff

    async def stop(self) -> None:
        grace = self.kubelet.options.max_grace_s
        if self.plan is not None:
            grace = min(grace, self.plan.grace_period_s)
        await asyncio.gather(*(c.stop(grace) for c in self.containers))
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("a container runner failed", exc_info=task.exception())


class Kubelet:
    def __init__(self, kube: Kube, options: KubeletOptions) -> None:
        self.kube = kube
        self.options = options
        self.pods: dict[str, PodRunner] = {}
        self._next_address = 0
        self._wake = asyncio.Event()
        self._removals: set[asyncio.Task[None]] = set()
        self.http: aiohttp.ClientSession

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        self.http = aiohttp.ClientSession()
        watcher = asyncio.create_task(wake_on_changes(self.kube, [("v1", "pods")], self.wake))
        try:
            while True:
                try:
                    await self.sync()
                except (KubeError, aiohttp.ClientError) as error:
                    log.warning("kubelet sync failed: %s", error)
                # a re-list at least every second: the watch wakes it sooner
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                self._wake.clear()
        finally:
            watcher.cancel()
            await self.stop_all()
            await self.http.close()

    async def sync(self) -> None:
        listed = {
            p["metadata"]["uid"]: p
            for p in await self.kube.list("v1", "pods")
            if (p.get("spec") or {}).get("nodeName") == self.options.node_name
        }
        for uid, runner in list(self.pods.items()):
            pod = listed.get(uid)
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                del self.pods[uid]
                # in the background: a grace period must not hold up the other pods
                task = asyncio.create_task(self._remove(runner, graceful=pod is not None))
                self._removals.add(task)
                task.add_done_callback(self._removals.discard)
        for uid, pod in listed.items():
            if uid in self.pods or pod["metadata"].get("deletionTimestamp"):
                continue
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue  # finished before this kubelet started
            index = self._next_address
            self._next_address += 1
            directory = os.path.join(self.options.root, str(index))
            runner = PodRunner(self, pod, self.options.block.pod(index), directory)
            log.info("starting pod %s/%s at %s", runner.namespace, runner.name, runner.ip)
            self.pods[uid] = runner
            await runner.start()

    async def _remove(self, runner: PodRunner, *, graceful: bool) -> None:
        await runner.stop()
        shutil.rmtree(runner.directory, ignore_errors=True)
        if graceful:  # a graceful delete waits for the kubelet to finish the pod
            with contextlib.suppress(KubeError, aiohttp.ClientError):
                await self.kube.delete("v1", "pods", runner.namespace, runner.name)

    async def stop_all(self) -> None:
        runners = list(self.pods.values())
        self.pods.clear()
        await asyncio.gather(*(r.stop() for r in runners), *self._removals, return_exceptions=True)
