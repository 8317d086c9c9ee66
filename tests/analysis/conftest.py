"""Fixtures for the analysis tests: a real ``driftline-serve`` process (the serving
tests' fixtures, reused), a real Prometheus scraping it, and a small HTTP server on
loopback that answers what a test tells it to and records what it was sent."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

# The serving tests' fixtures (real ONNX files, real server processes), reused as they are.
from tests.serving.conftest import ModelFile, ServerProcess, mlp_file, model_dir, start_server

from .prometheus_server import PrometheusServer, start_prometheus

__all__ = ["mlp_file", "model_dir", "start_server"]

INFER = "/v2/models/churn/infer"
# How the operator names a canary's series (the ModelVersion's name and the track).
VERSION_NAME = "churn-v2"
TRACK = "canary"


def send_traffic(server: ServerProcess, good: int = 5, bad: int = 1) -> None:
    """`good` successful inferences and `bad` malformed requests (outcome != success)."""
    body = json.dumps(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 32], "data": [0.5] * 32}]}
    ).encode()
    for _ in range(good):
        assert server.post(INFER, body)[0] == 200
    for _ in range(bad):
        assert server.post(INFER, b"{")[0] == 400


@pytest.fixture(scope="module")
def canary_server(start_server: Callable[..., ServerProcess], mlp_file: ModelFile) -> ServerProcess:
    """``driftline-serve`` as the operator runs a canary."""
    server = start_server(
        "churn",
        str(mlp_file.path),
        "--model-version",
        "2",
        "--track",
        TRACK,
        env={"DRIFTLINE_MODEL_VERSION_NAME": VERSION_NAME},
    )
    server.wait_ready()
    return server


@pytest.fixture(scope="module")
def prometheus(
    canary_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """A real Prometheus scraping the canary server every second, once it is up."""
    server = start_prometheus(tmp_path_factory.mktemp("prometheus"), [canary_server.url])
    try:
        server.wait_scraping(targets=1)
        yield server
    finally:
        server.stop()


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class RecordingServer:
    """Answers every request with `status`, `body` and `content_type` (set them before
    the request) and records each request in `requests`."""

    port: int = 0
    scheme: str = "http"
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    requests: list[Recorded] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def answer(self, status: int, document: object) -> None:
        self.status = status
        self.body = json.dumps(document).encode()
        self.content_type = "application/json"


@contextmanager
def serving(recorder: RecordingServer, tls: ssl.SSLContext | None = None) -> Iterator[None]:
    """Run `recorder` on a loopback port (over TLS with `tls`) for the block."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            recorder.requests.append(
                Recorded(self.command, self.path, dict(self.headers), self.rfile.read(length))
            )
            self.send_response(recorder.status)
            self.send_header("Content-Type", recorder.content_type)
            self.send_header("Content-Length", str(len(recorder.body)))
            self.end_headers()
            self.wfile.write(recorder.body)

        do_GET = _reply
        do_POST = _reply

        def log_message(self, format: str, *args: object) -> None:  # quiet test output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    recorder.port = server.server_address[1]
    # shutdown() waits for the loop to look again: poll often so teardown is quick
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def recording_server() -> Iterator[RecordingServer]:
    recorder = RecordingServer()
    with serving(recorder):
        yield recorder


@dataclass(frozen=True)
class Certificate:
    cert_pem: str
    key_file: Path
    cert_file: Path


@pytest.fixture(scope="session")
def loopback_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1, made by the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed: no certificate for the TLS tests")
    directory = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return Certificate(cert.read_text(), key, cert)


@pytest.fixture
def tls_recording_server(loopback_certificate: Certificate) -> Iterator[RecordingServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(loopback_certificate.cert_file, loopback_certificate.key_file)
    recorder = RecordingServer(scheme="https")
    with serving(recorder, context):
        yield recorder


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose connections are accepted by the kernel (the listen backlog) and
    never answered: a hung server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port with nothing listening: held bound (so nothing else takes it) but never
    listening, so a connection is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        yield int(probe.getsockname()[1])
