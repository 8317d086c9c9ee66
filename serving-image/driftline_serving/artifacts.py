"""Fetch a model artifact and verify its sha256 before anyone loads it.

Shared by the serving server, the drift sidecar and the operator's verification Job, so
it depends on nothing else in the package. Sources:

- a plain path (a mounted volume) or ``file://``: read in place, hashed while streaming;
- ``https://`` (and ``http://``, for in-cluster mirrors): streamed to a temporary file in
  the destination directory while hashing, renamed into place only when the digest
  matches, so a half-written or wrong file is never left where a loader could find it.
  Credentials come from the environment, where the operator puts the keys of the
  ModelVersion's ``secretRef`` Secret: ``DRIFTLINE_ARTIFACT_TOKEN`` is sent as
  ``Authorization: Bearer <token>``, or ``DRIFTLINE_ARTIFACT_USERNAME`` and
  ``DRIFTLINE_ARTIFACT_PASSWORD`` as basic authentication. They are sent over https
  only (a plain http URL with credentials set is refused), never to the target of a
  redirect (a pre-signed object-store URL must not receive them), and never logged;
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

import base64
import hashlib
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

CHUNK_BYTES = 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ArtifactError(RuntimeError):
    """The artifact cannot be used; the message names the URI and the reason."""


class ArtifactRefused(ArtifactError):
    """The artifact was named or delivered wrongly (an unsupported URI, a malformed
    expected digest, a digest mismatch): fetching again as it is will not help."""


@dataclass(frozen=True, slots=True)
class ArtifactLocation:
    scheme: str  # "file", "https", "http" or "s3"
    path: str = ""  # local path for "file"
    url: str = ""  # full URL for "http(s)"
    bucket: str = ""
    key: str = ""


TOKEN_ENV = "DRIFTLINE_ARTIFACT_TOKEN"
USERNAME_ENV = "DRIFTLINE_ARTIFACT_USERNAME"
PASSWORD_ENV = "DRIFTLINE_ARTIFACT_PASSWORD"


@dataclass(frozen=True, slots=True)
class HttpCredentials:
    """The Authorization header value for https downloads; kept out of every repr."""

    authorization: str = field(repr=False)
    scheme: str  # "Bearer" or "Basic", safe to name in messages


def http_credentials(environ: Mapping[str, str]) -> HttpCredentials | None:
    """Credentials from DRIFTLINE_ARTIFACT_* variables (the secretRef's keys), if any."""
    token = environ.get(TOKEN_ENV, "")
    username = environ.get(USERNAME_ENV, "")
    password = environ.get(PASSWORD_ENV, "")
    if token and (username or password):
        raise ArtifactRefused(
            f"artifact credentials are ambiguous: set either {TOKEN_ENV} or "
            f"{USERNAME_ENV} and {PASSWORD_ENV} in the secretRef Secret, not both"
        )
    if token:
        if any(c in token for c in "\r\n"):
            raise ArtifactRefused(f"{TOKEN_ENV} must be a single line")
        return HttpCredentials(f"Bearer {token.strip()}", "Bearer")
    if username or password:
        if not (username and password):
            raise ArtifactRefused(
                f"basic authentication needs both {USERNAME_ENV} and {PASSWORD_ENV}"
            )
        pair = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        return HttpCredentials(f"Basic {pair}", "Basic")
    return None


@dataclass(frozen=True, slots=True)
class FetchedArtifact:
    path: Path
    sha256: str
    size: int


def parse_artifact_uri(uri: str) -> ArtifactLocation:
    """Classify an artifact URI; raise ArtifactError for anything unsupported."""
    if not uri or not uri.strip():
        raise ArtifactRefused("artifact URI is empty")
    parsed = urllib.parse.urlsplit(uri)
    scheme = parsed.scheme.lower()
    if scheme == "" or (len(scheme) == 1 and os.name == "nt"):
        return ArtifactLocation("file", path=uri)
    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ArtifactRefused(
                f"file URI {uri!r} names host {parsed.netloc!r}; only local files are supported"
            )
        return ArtifactLocation("file", path=urllib.parse.unquote(parsed.path))
    if scheme in ("http", "https"):
        if not parsed.netloc:
            raise ArtifactRefused(f"URL {uri!r} has no host")
        return ArtifactLocation(scheme, url=uri)
    if scheme == "s3":
        key = parsed.path.lstrip("/")
        if not parsed.netloc or not key:
            raise ArtifactRefused(f"S3 URI {uri!r} must look like s3://bucket/key")
        return ArtifactLocation("s3", bucket=parsed.netloc, key=urllib.parse.unquote(key))
    raise ArtifactRefused(
        f"unsupported artifact URI scheme {parsed.scheme!r} in {uri!r}; "
        "use a path, file://, https:// or s3://"
    )


def normalise_sha256(expected: str | None) -> str | None:
    if expected is None:
        return None
    digest = expected.strip().lower().removeprefix("sha256:")
    if not _SHA256.match(digest):
        raise ArtifactRefused(
            f"expected sha256 must be 64 hexadecimal characters, got {expected!r}"
        )
    return digest


def check_digest(uri: str, expected: str | None, actual: str) -> None:
    if expected is not None and actual != expected:
        raise ArtifactRefused(
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
    environ: Mapping[str, str] | None = None,
) -> FetchedArtifact:
    """Make the artifact available as a local, verified file and return where it is.

    `environ` (default: the process environment) supplies credentials: DRIFTLINE_ARTIFACT_*
    for https, AWS_* for s3.
    """
    expected = normalise_sha256(expected_sha256)
    location = parse_artifact_uri(uri)
    if location.scheme == "file":
        return _verify_local(uri, Path(location.path), expected)
    if location.scheme in ("http", "https"):
        credentials = http_credentials(os.environ if environ is None else environ)
        if credentials is not None and location.scheme != "https":
            raise ArtifactRefused(
                f"refusing to send {credentials.scheme} credentials over plain http to {uri}; "
                "use an https URL"
            )
        return _download(
            uri,
            destination_dir,
            expected,
            lambda: _http_chunks(location.url, timeout_s, credentials),
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


def _http_chunks(
    url: str, timeout_s: float, credentials: HttpCredentials | None = None
) -> Iterator[bytes]:
    # Imported here: urllib.request pulls in http.client, email and ssl, which cost
    # start-up time that a server loading from a mounted volume should not pay.
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": "driftline-artifacts"})
    if credentials is not None:
        # "Unredirected": urllib does not copy it to the request that follows a redirect.
        request.add_unredirected_header("Authorization", credentials.authorization)
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
