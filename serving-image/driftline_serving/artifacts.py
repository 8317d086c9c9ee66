"""Fetch a model artifact and verify its sha256 before anyone loads it.

Shared by the serving server, the drift sidecar and the operator's verification Job, so
it depends on nothing else in the package. Sources:

- a plain path (a mounted volume) or ``file://``: read in place, hashed while streaming;
- ``https://`` (and ``http://``, for in-cluster mirrors): streamed to a temporary file in
  the destination directory while hashing, renamed into place only when the digest
  matches, so a half-written or wrong file is never left where a loader could find it;
- ``s3://bucket/key``: through obstore (optional extra ``driftline[s3]``), imported only
  when such a URI is used, and streamed. obstore (Python bindings of the Rust
  ``object_store`` crate used by Arrow, DataFusion and delta-rs) because it has no Python
  dependencies, reads the standard AWS environment (keys, region, ``AWS_ENDPOINT_URL``
  for MinIO and other S3-compatible stores, web identity / IRSA, ECS and instance
  credentials) and streams in bounded chunks. boto3 was the obvious alternative but
  botocore pins python-dateutil < 3 while kubernetes >= 37 (a dependency of this
  distribution) needs >= 3, so the two cannot be installed together.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

CHUNK_BYTES = 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ArtifactError(RuntimeError):
    """The artifact cannot be used; the message names the URI and the reason."""


@dataclass(frozen=True, slots=True)
class ArtifactLocation:
    scheme: str  # "file", "https", "http" or "s3"
    path: str = ""  # local path for "file"
    url: str = ""  # full URL for "http(s)"
    bucket: str = ""
    key: str = ""


@dataclass(frozen=True, slots=True)
class FetchedArtifact:
    path: Path
    sha256: str
    size: int


def parse_artifact_uri(uri: str) -> ArtifactLocation:
    """Classify an artifact URI; raise ArtifactError for anything unsupported."""
    if not uri or not uri.strip():
        raise ArtifactError("artifact URI is empty")
    parsed = urllib.parse.urlsplit(uri)
    scheme = parsed.scheme.lower()
    if scheme == "" or (len(scheme) == 1 and os.name == "nt"):
        return ArtifactLocation("file", path=uri)
    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ArtifactError(
                f"file URI {uri!r} names host {parsed.netloc!r}; only local files are supported"
            )
        return ArtifactLocation("file", path=urllib.parse.unquote(parsed.path))
    if scheme in ("http", "https"):
        if not parsed.netloc:
            raise ArtifactError(f"URL {uri!r} has no host")
        return ArtifactLocation(scheme, url=uri)
    if scheme == "s3":
        key = parsed.path.lstrip("/")
        if not parsed.netloc or not key:
            raise ArtifactError(f"S3 URI {uri!r} must look like s3://bucket/key")
        return ArtifactLocation("s3", bucket=parsed.netloc, key=urllib.parse.unquote(key))
    raise ArtifactError(
        f"unsupported artifact URI scheme {parsed.scheme!r} in {uri!r}; "
        "use a path, file://, https:// or s3://"
    )


def normalise_sha256(expected: str | None) -> str | None:
    if expected is None:
        return None
    digest = expected.strip().lower().removeprefix("sha256:")
    if not _SHA256.match(digest):
        raise ArtifactError(f"expected sha256 must be 64 hexadecimal characters, got {expected!r}")
    return digest


def check_digest(uri: str, expected: str | None, actual: str) -> None:
    if expected is not None and actual != expected:
        raise ArtifactError(
            f"sha256 mismatch for {uri}: expected {expected}, got {actual}; refusing to use it"
        )


def hash_chunks(
    chunks: Iterable[bytes], sink: Callable[[bytes], Any] | None = None
) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink(chunk)
    return digest.hexdigest(), size


def _read_chunks(handle: BinaryIO) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK_BYTES):
        yield chunk


def fetch_artifact(
    uri: str,
    destination_dir: Path,
    expected_sha256: str | None = None,
    *,
    timeout_s: float = 60.0,
) -> FetchedArtifact:
    """Make the artifact available as a local, verified file and return where it is."""
    expected = normalise_sha256(expected_sha256)
    location = parse_artifact_uri(uri)
    if location.scheme == "file":
        return _verify_local(uri, Path(location.path), expected)
    if location.scheme in ("http", "https"):
        return _download(
            uri, destination_dir, expected, lambda: _http_chunks(location.url, timeout_s)
        )
    return _download(uri, destination_dir, expected, lambda: _s3_chunks(location, timeout_s))


def _verify_local(uri: str, path: Path, expected: str | None) -> FetchedArtifact:
    try:
        with path.open("rb") as handle:
            actual, size = hash_chunks(_read_chunks(handle))
    except IsADirectoryError:
        raise ArtifactError(
            f"cannot read artifact {uri}: {path} is a directory, not a file"
        ) from None
    except OSError as error:
        raise ArtifactError(f"cannot read artifact {uri}: {error.strerror or error}") from None
    check_digest(uri, expected, actual)
    return FetchedArtifact(path, actual, size)


def _download(
    uri: str,
    destination_dir: Path,
    expected: str | None,
    open_chunks: Callable[[], Iterator[bytes]],
) -> FetchedArtifact:
    import tempfile  # imported here: only downloads need it, and start-up time counts

    name = Path(urllib.parse.urlsplit(uri).path).name or "model.onnx"
    try:
        destination_dir.mkdir(parents=True, exist_ok=True)
        # Closed by the "with handle" below; opened here to report a clear error first.
        handle = tempfile.NamedTemporaryFile(dir=destination_dir, prefix=".partial-", delete=False)  # noqa: SIM115
    except OSError as error:
        raise ArtifactError(
            f"cannot write to {destination_dir}: {error.strerror or error}"
        ) from None
    temporary = Path(handle.name)
    try:
        with handle:
            actual, size = hash_chunks(open_chunks(), handle.write)
        check_digest(uri, expected, actual)
        final = destination_dir / f"{actual[:16]}-{name}"
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return FetchedArtifact(final, actual, size)


def _http_chunks(url: str, timeout_s: float) -> Iterator[bytes]:
    # Imported here: urllib.request pulls in http.client, email and ssl, which cost
    # start-up time that a server loading from a mounted volume should not pay.
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": "driftline-artifacts"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as error:
        raise ArtifactError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ArtifactError(f"cannot download {url}: {reason}") from None
    with response:
        declared = response.headers.get("Content-Length")
        received = 0
        try:
            while chunk := response.read(CHUNK_BYTES):
                received += len(chunk)
                yield chunk
        except OSError as error:
            raise ArtifactError(
                f"download of {url} broke off after {received} bytes: {error}"
            ) from None
        if declared is not None and declared.isdigit() and received != int(declared):
            raise ArtifactError(
                f"download of {url} is incomplete: got {received} of {declared} bytes"
            )


def _s3_chunks(location: ArtifactLocation, timeout_s: float) -> Iterator[bytes]:
    uri = f"s3://{location.bucket}/{location.key}"
    try:
        import obstore
        from obstore.exceptions import BaseError, NotFoundError
        from obstore.store import S3Store
    except ImportError:
        raise ArtifactError(
            f"cannot fetch {uri}: S3 support needs obstore (pip install 'driftline[s3]')"
        ) from None
    try:
        # Region, credentials and endpoint come from the standard AWS_* environment.
        # Client options given here replace those from the environment, so the
        # plain-HTTP switch (in-cluster MinIO without TLS) is carried over explicitly.
        client_options: dict[str, Any] = {"timeout": f"{max(int(timeout_s), 1)}s"}
        if os.environ.get("AWS_ALLOW_HTTP", "").lower() == "true":
            client_options["allow_http"] = True
        store = S3Store(location.bucket, client_options=client_options)  # type: ignore[arg-type]
        result = obstore.get(store, location.key)
        for chunk in result.stream(min_chunk_size=CHUNK_BYTES):
            yield bytes(chunk)
    except (NotFoundError, FileNotFoundError):  # obstore raises the built-in one
        raise ArtifactError(f"cannot fetch {uri}: no such object") from None
    except BaseError as error:
        # obstore's messages span several lines of context; the first says what failed.
        summary = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ArtifactError(f"cannot fetch {uri}: {summary}") from None
