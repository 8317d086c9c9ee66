"""A serving pod made of processes: the real `driftline-serve` and the real
`driftline-evaluator`, sharing a sample socket, the evaluator reporting into the local
Kubernetes API's DriftPolicy (tests/evaluator/conftest.py)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from kubernetes.client.exceptions import ApiException

from driftline_serving.examples.models import MLP_INPUT_NAME
from tests.serving.conftest import ServerProcess
from tests.support import free_port, wait_until

from .conftest import NAMESPACE, POLICY

# the test's own reads may hit injected faults
eventually = functools.partial(wait_until, timeout_s=60.0, interval_s=0.1, ignore=(ApiException,))


class Pod:
    """One serving pod: a server process and its evaluator process, sharing a socket."""

    def __init__(
        self,
        name: str,
        directory: Path,
        artifacts: dict[str, Any],
        kubeconfig: Path,
        started: list[Pod],
        model_version: str = "mlp-v1",
        *,
        namespace: str = NAMESPACE,
        policy: str = POLICY,
        track: str = "stable",
    ) -> None:
        started.append(self)  # registered first, so a failed start is still cleaned up
        self.name = name
        self.model_version = model_version
        self.server: ServerProcess | None = None
        socket_address = f"unix://{directory}/{name}.sock"
        self.evaluator_port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.evaluator_log = directory / f"{name}-evaluator.log"
        self.evaluator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "driftline_serving.evaluator.cli",
                "--policy",
                policy,
                "--namespace",
                namespace,
                "--pod",
                name,
                "--model-version",
                model_version,
                "--profile-uri",
                f"file://{artifacts['profile']}",
                "--profile-sha256",
                artifacts["profile_sha"],
                "--listen",
                socket_address,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.evaluator_port),
                "--kubeconfig",
                str(kubeconfig),
                "--interval",
                "0.3",
            ],
            stdout=self.evaluator_log.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        port = free_port()
        log_path = directory / f"{name}-server.log"
        args = [
            sys.executable,
            "-m",
            "driftline_serving.server.cli",
            "--model-name",
            "mlp",
            "--model-uri",
            str(artifacts["model"]),
            "--sha256",
            artifacts["model_sha"],
            "--model-version",
            model_version,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--intra-op-threads",
            "1",
            "--drift-sample-socket",
            socket_address,
            "--drift-sampling-rate",
            "1.0",
            "--track",
            track,
            "--pod-name",
            name,
        ]
        process = subprocess.Popen(
            args, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, env=env
        )
        self.server = ServerProcess(process, port, log_path, args)
        self.server.wait_ready()
        eventually(self._evaluator_listening, timeout_s=60)

    def _evaluator_listening(self) -> bool:
        assert self.evaluator.poll() is None, self.evaluator_log.read_text()
        try:
            return "driftline_drift_samples_received_total" in self.evaluator_metrics()
        except OSError:
            return False

    def infer(self, rows: np.ndarray, request_id: str) -> dict[str, str]:
        """The answer's headers, names lower-cased."""
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
        status, answer, headers = self.server.post("/v2/models/mlp/infer", body)
        assert status == 200, answer
        return {name.lower(): value for name, value in headers.items()}

    def evaluator_metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.evaluator_port}/metrics", timeout=5
        ) as r:
            return r.read().decode()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.evaluator.terminate()
        try:
            self.evaluator.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.evaluator.kill()
