"""The data plane of the drift-loop benchmark: a serving pod made of processes and the
traffic sent to it.

A pod is the real `driftline-serve` beside the real `driftline-evaluator`, sharing a
sample socket, the evaluator reporting into the DriftPolicy through the local Kubernetes
API. It is tests/evaluator/sidecar_pods.py's `Pod` with one difference that matters
here: that one passes `--interval 0.3` so that tests run fast, which would make the
benchmark measure 0.3 s instead of the policy's interval. This one passes no override, so
the sidecar evaluates every `window.intervalSeconds` of the DriftPolicy it reads, as the
sidecar the operator renders does.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from driftline_serving.examples.models import MLP_INPUT_NAME, MLP_INPUTS
from tests.serving.conftest import ServerProcess
from tests.support import free_port, wait_until


@dataclass(frozen=True)
class PodSpec:
    name: str
    namespace: str
    policy: str
    model_version: str
    track: str
    model_path: Path
    model_sha256: str
    profile_path: Path
    profile_sha256: str


class ProcessPod:
    """One serving pod: a server process and its evaluator process."""

    def __init__(self, spec: PodSpec, directory: Path, kubeconfig: Path) -> None:
        self.spec = spec
        self.server: ServerProcess | None = None
        self.evaluator: subprocess.Popen[bytes] | None = None
        self.evaluator_port = free_port()
        self.evaluator_log = directory / f"{spec.name}-evaluator.log"
        self.server_log = directory / f"{spec.name}-server.log"
        self._socket = f"unix://{directory}/{spec.name}.sock"
        self._directory = directory
        self._kubeconfig = kubeconfig

    def start(self) -> None:
        """Start both processes; the caller stops them (also after a failed start)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        spec = self.spec
        with self.evaluator_log.open("wb") as log:
            self.evaluator = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "driftline_serving.evaluator.cli",
                    "--policy",
                    spec.policy,
                    "--namespace",
                    spec.namespace,
                    "--pod",
                    spec.name,
                    "--model-version",
                    spec.model_version,
                    "--profile-uri",
                    f"file://{spec.profile_path}",
                    "--profile-sha256",
                    spec.profile_sha256,
                    "--listen",
                    self._socket,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.evaluator_port),
                    "--kubeconfig",
                    str(self._kubeconfig),
                    "--cache-dir",
                    str(self._directory),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        port = free_port()
        args = [
            sys.executable,
            "-m",
            "driftline_serving.server.cli",
            "--model-name",
            "mlp",
            "--model-uri",
            str(spec.model_path),
            "--sha256",
            spec.model_sha256,
            "--model-version",
            spec.model_version,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--intra-op-threads",
            "1",
            "--drift-sample-socket",
            self._socket,
            "--drift-sampling-rate",
            "1.0",
            "--track",
            spec.track,
        ]
        with self.server_log.open("wb") as log:
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.server = ServerProcess(process, port, self.server_log, args)
        self.server.wait_ready()
        wait_until(self._evaluator_listening, 60.0, what=f"{spec.name}'s evaluator", interval_s=0.1)

    def _evaluator_listening(self) -> bool:
        assert self.evaluator is not None
        if self.evaluator.poll() is not None:
            raise RuntimeError(
                f"the evaluator exited ({self.evaluator.returncode}):\n"
                + self.evaluator_log.read_text(errors="replace")
            )
        url = f"http://127.0.0.1:{self.evaluator_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return b"driftline_drift_samples_received_total" in response.read()
        except OSError:
            return False

    def infer(self, rows: np.ndarray, request_id: str) -> None:
        assert self.server is not None
        body = orjson.dumps(
            {
                "id": request_id,
                "inputs": [
                    {
                        "name": MLP_INPUT_NAME,
                        "shape": list(rows.shape),
                        "datatype": "FP32",
                        "data": rows.astype(np.float32).ravel().tolist(),
                    }
                ],
            }
        )
        status, answer, _ = self.server.post("/v2/models/mlp/infer", body)
        if status != 200:
            raise RuntimeError(f"inference answered {status}: {answer[:300]!r}")

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.evaluator is not None and self.evaluator.poll() is None:
            self.evaluator.terminate()
            try:
                self.evaluator.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.evaluator.kill()
                self.evaluator.wait(timeout=15)


class Traffic:
    """Steady requests of `rows_per_request` rows from the reference distribution (standard
    normal) until `shift()`, then from the same distribution moved by `shift_sd` standard
    deviations on every feature. `onset` is the moment the first shifted request was sent
    (time.monotonic()): drift onset as the pod sees it."""

    def __init__(
        self, pod: ProcessPod, *, rows_per_request: int, pause_s: float, shift_sd: float, seed: int
    ) -> None:
        self.pod = pod
        self.rows_per_request = rows_per_request
        self.pause_s = pause_s
        self.shift_sd = shift_sd
        self.rng = np.random.default_rng(seed)
        self.onset: float | None = None
        self.rows_sent = 0
        self.errors: list[str] = []
        self._shifted = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def shift(self) -> None:
        self._shifted.set()

    def _run(self) -> None:
        sent = 0
        while not self._stopping.is_set():
            rows = self.rng.normal(size=(self.rows_per_request, MLP_INPUTS))
            if self._shifted.is_set():
                rows += self.shift_sd
                if self.onset is None:
                    self.onset = time.monotonic()
            try:
                self.pod.infer(rows, f"r{sent}")
            except (OSError, RuntimeError) as error:
                # counted, not fatal: the run checks that traffic flowed
                if len(self.errors) < 10:
                    self.errors.append(str(error))
            else:
                self.rows_sent += self.rows_per_request
            sent += 1
            # the request rate, not synchronisation
            self._stopping.wait(self.pause_s)

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(RuntimeError):  # never started
            self._thread.join(timeout=30)
