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


# --- credentials from artifact.secretRef, over https ------------------------------------

TOKEN = "s3cr3t-token-value"
USERNAME, PASSWORD = "reader", "pa55:word"


class AuthenticatedArtifactHandler(http.server.BaseHTTPRequestHandler):
    """Serves the artifact only with the expected Authorization header; records what came."""

    expected = ""
    redirect_to = ""  # when set, /models/model.onnx redirects there after authenticating
    received: list[tuple[str, str]] = []

    def do_GET(self) -> None:
        authorization = self.headers.get("Authorization", "")
        type(self).received.append((self.path, authorization))
        if authorization != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", "Bearer")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def log_message(self, *args: object) -> None:
        pass


class RecordingHandler(ArtifactHandler):
    """The target of a redirect: serves the artifact to anyone, records the headers."""

    received: list[str] = []

    def do_GET(self) -> None:
        RecordingHandler.received.append(self.headers.get("Authorization", ""))
        super().do_GET()


@pytest.fixture(scope="module")
def loopback_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made by the real openssl."""
    import subprocess

    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def https_base(loopback_certificate, monkeypatch) -> Iterator[str]:
    import ssl

    cert, key = loopback_certificate
    # The download trusts it the way a pod trusts a private CA: through SSL_CERT_FILE.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    for name in (artifacts.TOKEN_ENV, artifacts.USERNAME_ENV, artifacts.PASSWORD_ENV):
        monkeypatch.delenv(name, raising=False)
    AuthenticatedArtifactHandler.received = []
    AuthenticatedArtifactHandler.redirect_to = ""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AuthenticatedArtifactHandler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_bearer_token_from_the_secret_is_sent_over_https(https_base, tmp_path, monkeypatch):
    AuthenticatedArtifactHandler.expected = f"Bearer {TOKEN}"
    uri = f"{https_base}/models/model.onnx"
    with pytest.raises(ArtifactError, match="HTTP 401") as refused:
        fetch_artifact(uri, tmp_path / "cache", DIGEST)
    assert TOKEN not in str(refused.value)
    monkeypatch.setenv(artifacts.TOKEN_ENV, TOKEN)
    fetched = fetch_artifact(uri, tmp_path / "cache", DIGEST)
    assert fetched.path.read_bytes() == PAYLOAD
    assert AuthenticatedArtifactHandler.received[-1] == ("/models/model.onnx", f"Bearer {TOKEN}")


def test_username_and_password_are_sent_as_basic_auth(https_base, tmp_path):
    import base64

    pair = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    AuthenticatedArtifactHandler.expected = f"Basic {pair}"
    environ = {artifacts.USERNAME_ENV: USERNAME, artifacts.PASSWORD_ENV: PASSWORD}
    fetched = fetch_artifact(
        f"{https_base}/models/model.onnx", tmp_path / "cache", DIGEST, environ=environ
    )
    assert fetched.sha256 == DIGEST


def test_redirect_target_receives_no_authorization(https_base, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        RecordingHandler.received = []
        AuthenticatedArtifactHandler.expected = f"Bearer {TOKEN}"
        target = f"http://127.0.0.1:{server.server_address[1]}/models/model.onnx"
        AuthenticatedArtifactHandler.redirect_to = target
        fetch_artifact(
            f"{https_base}/models/model.onnx",
            tmp_path / "cache",
            DIGEST,
            environ={artifacts.TOKEN_ENV: TOKEN},
        )
        assert RecordingHandler.received == [""]
    finally:
        server.shutdown()
        server.server_close()


def test_credentials_are_never_sent_over_plain_http(http_base, tmp_path):
    with pytest.raises(ArtifactError, match="refusing to send Bearer credentials over plain http"):
        fetch_artifact(
            f"{http_base}/models/model.onnx",
            tmp_path / "cache",
            DIGEST,
            environ={artifacts.TOKEN_ENV: TOKEN},
        )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {artifacts.TOKEN_ENV: TOKEN, artifacts.USERNAME_ENV: USERNAME},
            "credentials are ambiguous",
        ),
        ({artifacts.USERNAME_ENV: USERNAME}, "needs both"),
        ({artifacts.TOKEN_ENV: "a\r\nX-Injected: 1"}, "must be a single line"),
    ],
)
def test_malformed_credentials_are_refused_without_showing_them(environ, message):
    with pytest.raises(ArtifactError, match=message) as refused:
        artifacts.http_credentials(environ)
    assert TOKEN not in str(refused.value)
    assert TOKEN not in repr(artifacts.http_credentials({artifacts.TOKEN_ENV: TOKEN}))
