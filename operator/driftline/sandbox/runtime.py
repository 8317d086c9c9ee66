"""The sandbox's parts started, watched and stopped together.

The local API and the operator are processes (`python -m driftline apiserver
--no-stand-ins`, `python -m driftline.operator`: the same code as in a cluster); the
kubelet, the controllers, the router and the Prometheus target writer are tasks of this
process, clients of the API over HTTP like their real counterparts. If the API or the
operator dies, the sandbox stops everything and fails; nothing it started outlives it.
Its loopback addresses come from the slot it claimed (slots.py); its pods' folders live
in a folder of its own that a later sandbox removes if this one is killed (leftovers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import sys
import time
import traceback
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp
import aiohttp.web
import yaml

from driftline.sandbox import processes
from driftline.sandbox.controllers import Controllers
from driftline.sandbox.kube import Kube, KubeError
from driftline.sandbox.kubelet import Kubelet, KubeletOptions
from driftline.sandbox.leftovers import POD_ROOT_PREFIX, OwnedFolder
from driftline.sandbox.podstatus import is_pod_ready
from driftline.sandbox.routing import Router
from driftline.sandbox.slots import AddressBlock
from driftline.sandbox.story import Scenario, View

START_DEADLINE_S = 60.0
STOP_TASKS_S = 20.0  # the in-process parts, the kubelet's pods included
STOP_STEP_S = 5.0  # the API client's and the artifact server's close
log = logging.getLogger("driftline.sandbox.runtime")


class SandboxFailed(RuntimeError):
    """A part of the sandbox stopped or never started; the message says which."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Part:
    name: str
    process: asyncio.subprocess.Process
    log: Path


@dataclass
class Sandbox:
    workdir: Path
    scenario: Scenario
    view: View
    block: AddressBlock
    pod_folder: OwnedFolder = field(default_factory=lambda: OwnedFolder.make(POD_ROOT_PREFIX))
    parts: list[Part] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    kube: Kube | None = None
    router: Router | None = None
    api_url: str = ""
    artifacts_url: str = ""
    prometheus_url: str = ""
    _artifact_runner: aiohttp.web.AppRunner | None = None

    @property
    def pod_root(self) -> Path:
        return self.pod_folder.path

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def state_path(self) -> Path:
        return self.workdir / "sandbox.json"

    def write_state(self) -> None:
        """Where everything is, for a user's scripts and the tests (written atomically)."""
        state = {
            "pid": os.getpid(),
            "kubeconfig": str(self.kubeconfig),
            "apiserver": self.api_url,
            "artifacts": self.artifacts_url,
            "prometheus": self.prometheus_url or None,
            "processes": {p.name: p.process.pid for p in self.parts},
            "addresses": {
                "/".join(key): value
                for key, value in (self.router.addresses if self.router else {}).items()
            },
            "podRoot": str(self.pod_root),
            "slot": self.block.slot,
            "network": self.block.network,
        }
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2))
        temporary.replace(self.state_path)

    async def _start_part(self, name: str, argv: list[str], env: dict[str, str]) -> Part:
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as output:
            process = await processes.start(argv, env=env, log=output)
        part = Part(name, process, log)
        self.parts.append(part)
        self.write_state()
        return part

    async def serve_artifacts(self, directory: Path) -> None:
        app = aiohttp.web.Application()
        app.router.add_static("/", directory)
        self._artifact_runner = aiohttp.web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._artifact_runner.setup()
        port = free_port()
        await aiohttp.web.TCPSite(self._artifact_runner, "127.0.0.1", port).start()
        self.artifacts_url = f"http://127.0.0.1:{port}"

    async def start_apiserver(self) -> None:
        part = await self._start_part(
            "apiserver",
            [
                sys.executable,
                "-m",
                "driftline",
                "apiserver",
                "--port",
                "0",
                "--no-stand-ins",
                "--kubeconfig",
                str(self.kubeconfig),
            ],
            dict(os.environ),
        )
        deadline = time.monotonic() + START_DEADLINE_S
        while not self.kubeconfig.exists():
            if part.process.returncode is not None or time.monotonic() > deadline:
                raise SandboxFailed(f"the local API did not start: {tail(part.log)}")
            await asyncio.sleep(0.1)  # polling for the file the API writes once it listens
        config = yaml.safe_load(self.kubeconfig.read_text())
        self.api_url = config["clusters"][0]["cluster"]["server"]
        self.kube = Kube(self.api_url)
        self.write_state()

    async def start_operator(self) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        env.pop("DRIFTLINE_PROMETHEUS_URL", None)
        if self.prometheus_url:  # the analysis' built-in gates query it (docs/analysis.md)
            env["DRIFTLINE_PROMETHEUS_URL"] = self.prometheus_url
        await self._start_part(
            "operator",
            [
                sys.executable,
                "-m",
                "driftline.operator",
                "--bind",
                "127.0.0.1",
                "--metrics-port",
                "0",
                "--liveness-port",
                "0",
            ],
            env,
        )

    def start_cluster_tasks(self) -> None:
        assert self.kube is not None
        address = urlparse(self.api_url)
        kubelet = Kubelet(
            self.kube,
            KubeletOptions(
                root=str(self.pod_root),
                api_host=address.hostname or "127.0.0.1",
                api_port=address.port or 80,
                block=self.block,
                max_probe_period_s=self.scenario.max_probe_period_s,
                restart_backoff_base_s=self.scenario.restart_backoff_base_s,
            ),
        )
        self.router = Router(self.kube, self.block)
        self.router.on_change = self.write_state
        for name, coroutine in (
            ("kubelet", kubelet.run()),
            ("controllers", Controllers(self.kube).run()),
            ("router", self.router.run()),
        ):
            self.tasks.append(asyncio.create_task(coroutine, name=name))

    async def start_prometheus(self) -> None:
        """Where a `prometheus` binary exists: scraping ready pods found by file discovery."""
        binary = shutil.which("prometheus")
        if binary is None:
            self.view.notes.append(
                "no prometheus binary: the analysis' built-in gates read the pods' /metrics"
            )
            return
        directory = self.workdir / "prometheus"
        directory.mkdir(parents=True, exist_ok=True)
        targets = directory / "targets.json"
        targets.write_text("[]")
        config = {
            # every second: the quick scenarios' analysis measures 4 s windows, and
            # increase() needs two samples in one
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "driftline-pods",
                    "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}],
                }
            ],
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        await self._start_part(
            "prometheus",
            [
                binary,
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            dict(os.environ),
        )
        self.prometheus_url = f"http://127.0.0.1:{port}"
        self.write_state()
        self.tasks.append(
            asyncio.create_task(self._write_targets(targets), name="prometheus target writer")
        )

    async def _write_targets(self, path: Path) -> None:
        assert self.kube is not None
        while True:
            with contextlib.suppress(KubeError, aiohttp.ClientError):
                pods = await self.kube.list("v1", "pods")
                groups = scrape_targets(pods)
                temporary = path.with_suffix(".tmp")
                temporary.write_text(json.dumps(groups))
                temporary.replace(path)
            await asyncio.sleep(1.0)  # file discovery's refresh pace

    async def watchdog(self) -> None:
        """Returns never; raises SandboxFailed when a part process exits or one of the
        in-process parts (kubelet, controllers, router, ...) stops."""
        waits: dict[asyncio.Future[Any], str] = {
            asyncio.ensure_future(p.process.wait()): p.name for p in self.parts
        }
        waits |= {task: task.get_name() for task in self.tasks}
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for future in pending:
            if future not in self.tasks:
                future.cancel()
        finished = done.pop()
        name = waits[finished]
        part = next((p for p in self.parts if p.name == name), None)
        if part is not None:
            raise SandboxFailed(
                f"the {part.name} exited with status {part.process.returncode}; "
                f"the last lines of {part.log}:\n{tail(part.log)}"
            )
        error = finished.exception() if not finished.cancelled() else None
        detail = "".join(traceback.format_exception(error)) if error else "it returned"
        raise SandboxFailed(f"the {name} stopped: {detail}")

    async def stop(self) -> None:
        """Everything down, each step bounded: a part that does not stop in time is named
        in the log and the stop goes on (the processes are killed at the end)."""
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            # the kubelet stops its pods here (each within its grace period, at most 10 s)
            _, late = await asyncio.wait(self.tasks, timeout=STOP_TASKS_S)
            if late:
                log.warning("not stopped in %s s: %s", STOP_TASKS_S, [t.get_name() for t in late])
        for part in reversed(self.parts):
            await processes.stop(part.process, 10.0)
        for name, closing in (
            ("API client", self.kube.close() if self.kube else None),
            (
                "artifact server",
                self._artifact_runner.cleanup() if self._artifact_runner else None,
            ),
        ):
            if closing is None:
                continue
            try:
                await asyncio.wait_for(closing, STOP_STEP_S)
            except TimeoutError:
                log.warning("the %s did not close in %s s", name, STOP_STEP_S)
        self.pod_folder.remove()
        processes.kill_all()


def scrape_targets(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Prometheus file discovery groups: ready pods that ask to be scraped."""
    groups = []
    for pod in pods:
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        ip = (pod.get("status") or {}).get("podIP")
        if annotations.get("prometheus.io/scrape") != "true" or not ip or not is_pod_ready(pod):
            continue
        groups.append(
            {
                "targets": [f"{ip}:{annotations.get('prometheus.io/port', '80')}"],
                "labels": {
                    "__metrics_path__": annotations.get("prometheus.io/path", "/metrics"),
                    "namespace": pod["metadata"].get("namespace", ""),
                    "pod": pod["metadata"].get("name", ""),
                },
            }
        )
    return groups


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def first_of(*awaitables: Awaitable[Any]) -> Any:
    """The result of whichever finishes first (its exception, if it raised); the others
    are cancelled."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        return done.pop().result()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
