"""Fixtures for the serving tests: real ONNX files and real server processes on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from driftline_serving.examples.models import classifier_mlp, save, two_input_model
from tests.support import free_port

STARTUP_DEADLINE_S = 30.0


@dataclass
class ModelFile:
    path: Path
    sha256: str


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        # urllib would label the body application/x-www-form-urlencoded, which the
        # server refuses (415): a request names its type unless the test says otherwise.
        request = urllib.request.Request(
            self.base + path,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            return error.code, error.read(), dict(error.headers)

    def metrics(self) -> str:
        status, body = self.get("/metrics")
        assert status == 200
        return body.decode()

    def wait_until(
        self, condition: Callable[[], bool], what: str, deadline_s: float = STARTUP_DEADLINE_S
    ) -> None:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"server exited ({self.process.returncode}) while waiting for {what}:\n{self.log()}"
                )
            try:
                if condition():
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.02)  # polling interval, not synchronisation
        raise AssertionError(f"timed out waiting for {what}:\n{self.log()}")

    def wait_ready(self) -> None:
        self.wait_until(lambda: self.get("/v2/health/ready")[0] == 200, "readiness")

    def wait_answering(self) -> None:
        self.wait_until(lambda: self.get("/v2/health/live")[0] == 200, "liveness")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def mlp_file(model_dir: Path) -> ModelFile:
    path = model_dir / "mlp.onnx"
    return ModelFile(path, save(classifier_mlp(), path))


@pytest.fixture(scope="session")
def two_input_file(model_dir: Path) -> ModelFile:
    path = model_dir / "two_inputs.onnx"
    return ModelFile(path, save(two_input_model(), path))


@pytest.fixture(scope="session")
def start_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., ServerProcess]]:
    """Start ``driftline-serve`` as a real process: ``start_server(name, uri, *flags)``."""
    started: list[ServerProcess] = []
    logs = tmp_path_factory.mktemp("server-logs")

    def start(
        model_name: str, model_uri: str, *flags: str, env: dict[str, str] | None = None
    ) -> ServerProcess:
        port = free_port()
        args = [
            sys.executable,
            "-m",
            "driftline_serving.server.cli",
            "--model-name",
            model_name,
            "--model-uri",
            model_uri,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--artifact-dir",
            str(logs / f"artifacts-{port}"),
            "--intra-op-threads",
            "1",
            *flags,
        ]
        log_path = logs / f"server-{port}.log"
        process = subprocess.Popen(
            args,
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        server = ServerProcess(process, port, log_path, args)
        started.append(server)
        server.wait_answering()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def mlp_server(start_server: Callable[..., ServerProcess], mlp_file: ModelFile) -> ServerProcess:
    server = start_server(
        "mlp", str(mlp_file.path), "--sha256", mlp_file.sha256, "--max-body-bytes", "65536"
    )
    server.wait_ready()
    return server


@pytest.fixture(scope="module")
def two_input_server(
    start_server: Callable[..., ServerProcess], two_input_file: ModelFile
) -> ServerProcess:
    server = start_server("pair", f"file://{two_input_file.path}", "--model-version", "3")
    server.wait_ready()
    return server


@pytest.fixture(scope="session")
def lookup_file(model_dir: Path) -> ModelFile:
    from .extra_models import lookup_model

    path = model_dir / "lookup.onnx"
    return ModelFile(path, save(lookup_model(), path))


@pytest.fixture(scope="session")
def root_file(model_dir: Path) -> ModelFile:
    from .extra_models import root_model

    path = model_dir / "root.onnx"
    return ModelFile(path, save(root_model(), path))
