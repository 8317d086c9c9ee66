"""Artifact fetching and sha256 verification from paths, file:// and HTTP on loopback."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftline_serving import artifacts
from driftline_serving.artifacts import (
    ArtifactError,
    ArtifactLocation,
    fetch_artifact,
    parse_artifact_uri,
)

PAYLOAD = b"onnx bytes " * 5000
DIGEST = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/models/a.onnx", ArtifactLocation("file", path="/models/a.onnx")),
        ("relative/a.onnx", ArtifactLocation("file", path="relative/a.onnx")),
        ("file:///models/a%20b.onnx", ArtifactLocation("file", path="/models/a b.onnx")),
        (
            "https://example.com/m.onnx?sig=1",
            ArtifactLocation("https", url="https://example.com/m.onnx?sig=1"),
        ),
        ("s3://bucket/dir/m.onnx", ArtifactLocation("s3", bucket="bucket", key="dir/m.onnx")),
    ],
)
def test_uris_are_classified(uri, expected):
    assert parse_artifact_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("", "artifact URI is empty"),
        ("gs://bucket/m.onnx", "unsupported artifact URI scheme 'gs'"),
        ("s3://bucket", "must look like s3://bucket/key"),
        ("file://otherhost/m.onnx", "names host 'otherhost'"),
        ("https:///m.onnx", "has no host"),
    ],
)
def test_unsupported_uris_are_refused(uri, message):
    with pytest.raises(ArtifactError, match=message):
        parse_artifact_uri(uri)


@pytest.fixture
def artifact_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(PAYLOAD)
    return path


@pytest.mark.parametrize("as_uri", [False, True], ids=["path", "file-uri"])
def test_local_artifact_is_verified_in_place(artifact_file, tmp_path, as_uri):
    uri = f"file://{artifact_file}" if as_uri else str(artifact_file)
    fetched = fetch_artifact(uri, tmp_path / "cache", DIGEST.upper())
    assert fetched.path == artifact_file
    assert (fetched.sha256, fetched.size) == (DIGEST, len(PAYLOAD))


def test_local_checksum_mismatch_is_refused(artifact_file, tmp_path):
    wrong = "ab" * 32
    with pytest.raises(ArtifactError) as raised:
        fetch_artifact(str(artifact_file), tmp_path, wrong)
    assert str(raised.value) == (
        f"sha256 mismatch for {artifact_file}: expected {wrong}, got {DIGEST}; refusing to use it"
    )


def test_missing_and_directory_artifacts_are_clear_errors(tmp_path):
    with pytest.raises(ArtifactError, match="No such file or directory"):
        fetch_artifact(str(tmp_path / "absent.onnx"), tmp_path)
    with pytest.raises(ArtifactError, match="is a directory, not a file"):
        fetch_artifact(str(tmp_path), tmp_path)


def test_malformed_expected_digest_is_refused(artifact_file, tmp_path):
    with pytest.raises(ArtifactError, match="expected sha256 must be 64 hexadecimal characters"):
        fetch_artifact(str(artifact_file), tmp_path, "1234")


class ArtifactHandler(http.server.BaseHTTPRequestHandler):
    truncate = False

    def do_GET(self) -> None:
        if self.path != "/models/model.onnx":
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD[: len(PAYLOAD) // 2] if self.truncate else PAYLOAD)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_base() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ArtifactHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    ArtifactHandler.truncate = False


def test_http_download_is_streamed_verified_and_renamed_into_place(
    http_base, tmp_path, monkeypatch
):
    monkeypatch.setattr(artifacts, "CHUNK_BYTES", 4096)  # several chunks, as with a real model
    fetched = fetch_artifact(f"{http_base}/models/model.onnx", tmp_path / "cache", DIGEST)
    assert fetched.path.read_bytes() == PAYLOAD
    assert fetched.path.parent == tmp_path / "cache"
    assert fetched.path.name == f"{DIGEST[:16]}-model.onnx"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [fetched.path.name]


def test_http_checksum_mismatch_leaves_nothing_behind(http_base, tmp_path):
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        fetch_artifact(f"{http_base}/models/model.onnx", tmp_path / "cache", "0" * 64)
    assert list((tmp_path / "cache").iterdir()) == []


def test_http_errors_and_truncation_are_clear(http_base, tmp_path):
    with pytest.raises(ArtifactError, match="HTTP 404"):
        fetch_artifact(f"{http_base}/models/other.onnx", tmp_path)
    ArtifactHandler.truncate = True
    with pytest.raises(ArtifactError, match=r"is incomplete|broke off"):
        fetch_artifact(f"{http_base}/models/model.onnx", tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_unreachable_host_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused
        port = listener.getsockname()[1]
        with pytest.raises(ArtifactError, match="cannot download"):
            fetch_artifact(f"http://127.0.0.1:{port}/m.onnx", tmp_path, timeout_s=5)


class S3ObjectHandler(http.server.BaseHTTPRequestHandler):
    """The GET side of the S3 REST API, path-style, for one bucket: enough for a real
    S3 client to download an object; signatures are not checked."""

    objects: dict[str, bytes] = {}
    requests: list[tuple[str, str]] = []

    def do_GET(self) -> None:
        S3ObjectHandler.requests.append((self.path, self.headers.get("Authorization", "")))
        data = self.objects.get(self.path)
        if data is None:
            body = b"<?xml version='1.0'?><Error><Code>NoSuchKey</Code><Message>missing</Message></Error>"
            self.send_response(404)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", '"0123456789abcdef"')
        self.send_header("Last-Modified", "Mon, 23 Nov 2026 10:00:00 GMT")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def s3_endpoint(monkeypatch) -> Iterator[str]:
    pytest.importorskip("obstore")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), S3ObjectHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    S3ObjectHandler.objects = {"/models/v1/model.onnx": PAYLOAD}
    S3ObjectHandler.requests = []
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "test-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    yield endpoint
    server.shutdown()
    server.server_close()


def test_s3_object_is_streamed_signed_and_verified(s3_endpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(artifacts, "CHUNK_BYTES", 4096)
    fetched = fetch_artifact("s3://models/v1/model.onnx", tmp_path / "cache", DIGEST)
    assert fetched.path.read_bytes() == PAYLOAD
    assert fetched.sha256 == DIGEST
    path, authorization = S3ObjectHandler.requests[-1]
    assert path == "/models/v1/model.onnx"
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=test-key/")


def test_s3_missing_object_and_checksum_mismatch_are_clear(s3_endpoint, tmp_path):
    with pytest.raises(
        ArtifactError, match=r"cannot fetch s3://models/v1/other.onnx: no such object"
    ):
        fetch_artifact("s3://models/v1/other.onnx", tmp_path / "cache")
    with pytest.raises(ArtifactError, match=r"sha256 mismatch for s3://models/v1/model\.onnx"):
        fetch_artifact("s3://models/v1/model.onnx", tmp_path / "cache", "0" * 64)
    assert list((tmp_path / "cache").iterdir()) == []


def test_s3_without_obstore_says_how_to_get_it(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_obstore(name, *args, **kwargs):
        if name == "obstore" or name.startswith("obstore."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_obstore)
    with pytest.raises(
        ArtifactError, match=r"S3 support needs obstore \(pip install 'driftline\[s3\]'\)"
    ):
        fetch_artifact("s3://bucket/model.onnx", tmp_path)
