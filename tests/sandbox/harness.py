"""Running `driftline sandbox` as a user does, in a subprocess, and watching it from outside:
the API through its kubeconfig, the Service through its loopback address, the processes
through psutil. Nothing here reads what the sandbox prints."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import kubernetes
import psutil

from driftline.sandbox.leftovers import WORKDIR_PREFIX
from tests.support import wait_until

NAMESPACE = "sandbox"
GROUP, VERSION = "driftline.io", "v1alpha1"
START_DEADLINE_S = 120.0
# tenure_months, monthly_charges, total_charges, support_calls, contract, payment_method
TYPICAL_CUSTOMER = [24.0, 65.0, 1560.0, 1.0, 1.0, 0.0]


class SandboxRun:
    def __init__(
        self,
        workdir: Path | None,
        *args: str,
        scenario: str = "default",
        tmpdir: Path | None = None,
    ) -> None:
        """`workdir` None: the sandbox makes its own. `tmpdir`: its TMPDIR, where its own
        workdir and its pods' folders go."""
        self._given_workdir = workdir
        self.tmpdir = tmpdir
        if workdir is not None:
            workdir.mkdir(parents=True, exist_ok=True)
            self.output = workdir.parent / f"{workdir.name}.out"
        else:
            assert tmpdir is not None, "a sandbox that makes its own workdir needs a tmpdir"
            handle, name = tempfile.mkstemp(prefix="sandbox-", suffix=".out", dir=tmpdir)
            os.close(handle)
            self.output = Path(name)
        workdir_option = ["--workdir", str(workdir)] if workdir is not None else []
        env = {**os.environ, "TMPDIR": str(tmpdir)} if tmpdir is not None else None
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "driftline",
                    "sandbox",
                    "--scenario",
                    scenario,
                    "--quick",
                    *workdir_option,
                    *args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self._custom: Any = None
        self._core: Any = None

    @property
    def workdir(self) -> Path | None:
        """The given workdir, or the one the sandbox made (once its sandbox.json names
        this process)."""
        if self._given_workdir is not None or self.tmpdir is None:
            return self._given_workdir
        for path in self.tmpdir.glob(f"{WORKDIR_PREFIX}*/sandbox.json"):
            with contextlib.suppress(OSError, ValueError):
                if json.loads(path.read_text()).get("pid") == self.process.pid:
                    return path.parent
        return None

    def log(self) -> str:
        """For failure messages only."""
        parts = [self.output.read_text(errors="replace")[-3000:]]
        logs = self.workdir / "logs" if self.workdir else None
        for log in sorted(logs.glob("*.log")) if logs else []:
            parts.append(f"--- {log.name}\n" + log.read_text(errors="replace")[-3000:])
        return "\n".join(parts)

    def state(self) -> dict[str, Any]:
        path = self.workdir / "sandbox.json" if self.workdir else None
        if path is None or not path.exists():
            return {}
        state: dict[str, Any] = json.loads(path.read_text())
        return state

    def connect(self) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"the sandbox exited early:\n{self.log()}")
            return bool(self.state().get("apiserver"))

        wait_until(ready, START_DEADLINE_S, what="the sandbox's API", interval_s=0.1)
        client = kubernetes.config.new_client_from_config(config_file=self.state()["kubeconfig"])
        self._custom = kubernetes.client.CustomObjectsApi(client)
        self._core = kubernetes.client.CoreV1Api(client)

    def status(self, plural: str, name: str) -> dict[str, Any]:
        try:
            obj = self._custom.get_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name)
        except (kubernetes.client.ApiException, OSError, Exception):
            return {}
        status: dict[str, Any] = obj.get("status") or {}
        return status

    def custom_object(self, plural: str, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self._custom.get_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, plural, name
        )
        return obj

    def running_serving_pods(self) -> int:
        try:
            pods = self._core.list_namespaced_pod(NAMESPACE).items
        except Exception:
            return 0
        return sum(
            1
            for p in pods
            if p.status is not None
            and p.status.phase == "Running"
            and any(c.name == "server" for c in p.spec.containers)
            and all(s.ready for s in p.status.container_statuses or [])
            and p.status.container_statuses
        )

    def job_pods(self, job: str) -> list[Any]:
        pods: list[Any] = self._core.list_namespaced_pod(
            NAMESPACE, label_selector=f"job-name={job}"
        ).items
        return pods

    def pod_ips(self) -> set[str]:
        pods = self._core.list_namespaced_pod(NAMESPACE).items
        return {p.status.pod_ip for p in pods if p.status is not None and p.status.pod_ip}

    def service_address(self) -> str | None:
        addresses = self.state().get("addresses", {}).get("Service/sandbox/churn")
        return addresses[0] if addresses else None

    def infer(self, row: list[float] | None = None) -> str | None:
        """One inference request through the Service (one customer of the example's churn
        table); the version that answered."""
        address = self.service_address()
        if address is None:
            return None
        row = row or TYPICAL_CUSTOMER
        body = json.dumps(
            {"inputs": [{"name": "features", "shape": [1, 6], "datatype": "FP32", "data": row}]}
        ).encode()
        request = urllib.request.Request(
            f"http://{address}/v2/models/churn/infer",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                version: str = json.loads(response.read())["model_version"]
                return version
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            return None

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


def all_gone(processes: list[psutil.Process]) -> bool:
    def gone(process: psutil.Process) -> bool:
        try:
            return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    return all(gone(p) for p in processes)


def names(processes: list[psutil.Process]) -> set[str]:
    found = set()
    for process in processes:
        with contextlib.suppress(psutil.Error):
            found.add(" ".join(process.cmdline()))
    return found
