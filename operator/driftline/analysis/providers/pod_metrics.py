"""Read the serving pods' own ``/metrics`` (Prometheus text exposition) over HTTP.

The built-in gates use this where no Prometheus is configured: two reads of every ready
pod of a track, and the counter and histogram deltas between them. Each read has a
timeout and a size bound, so a hung or hostile pod cannot hold a reconcile thread or
fill the operator's memory; a pod that cannot be read is reported with a typed error
next to the pods that could, so the gate can tell partial data from none.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import urllib3

logger = logging.getLogger(__name__)

# (connect, read) seconds: a pod is on the cluster network, and its /metrics is cheap.
DEFAULT_TIMEOUT: tuple[float, float] = (2.0, 5.0)
# driftline-serve's exposition is a few tens of KiB; a pod that sends more is broken.
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
# Ask for the classic text format: the OpenMetrics one has other suffixes and an EOF line.
ACCEPT = "text/plain;version=0.0.4;q=1.0, */*;q=0.1"
# Pods read at once for one track; the reads wait on the network, not on the CPU.
MAX_PARALLEL_READS = 8


@dataclass(frozen=True)
class PodEndpoint:
    """Where one pod serves its metrics: its name (for messages), IP and port."""

    name: str
    ip: str
    port: int
    path: str = "/metrics"

    def __post_init__(self) -> None:
        try:
            ipaddress.ip_address(self.ip)
        except ValueError as error:
            raise ValueError(
                f"pod {self.name}: {self.ip!r} is not an IP address (a pod's status.podIP)"
            ) from error
        if not 0 < self.port < 65536:
            raise ValueError(f"pod {self.name}: port {self.port} is not a TCP port (1-65535)")
        if not self.path.startswith("/") or any(c in self.path for c in "?# \r\n"):
            raise ValueError(f"pod {self.name}: {self.path!r} is not a plain absolute path")

    @property
    def url(self) -> str:
        address = ipaddress.ip_address(self.ip)
        host = f"[{address}]" if address.version == 6 else str(address)
        return f"http://{host}:{self.port}{self.path}"


class PodMetricsError(Exception):
    """A pod whose metrics could not be read; `pod` and `url` say which."""

    def __init__(self, message: str, *, pod: str, url: str) -> None:
        super().__init__(message)
        self.pod = pod
        self.url = url


class PodMetricsUnavailable(PodMetricsError):
    """No answer from the pod: refused, unreachable, timed out."""


class PodMetricsResponseError(PodMetricsError):
    """An answer that is not a metrics page: an HTTP error, too large, not UTF-8."""

    def __init__(self, message: str, *, pod: str, url: str, status: int | None) -> None:
        super().__init__(message, pod=pod, url=url)
        self.status = status


def _new_pool(timeout: tuple[float, float]) -> urllib3.PoolManager:
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]), retries=False
    )


def read_pod_metrics(
    endpoint: PodEndpoint,
    *,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    pool: urllib3.PoolManager | None = None,
) -> str:
    """The text exposition of one pod's metrics, or a `PodMetricsError`."""
    pool = pool or _new_pool(timeout)
    url = endpoint.url
    try:
        response = pool.request(
            "GET",
            url,
            headers={"Accept": ACCEPT},
            timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
            preload_content=False,
            redirect=False,
        )
        try:
            if response.status != 200:
                raise PodMetricsResponseError(
                    f"pod {endpoint.name} answered HTTP {response.status} at {url}",
                    pod=endpoint.name,
                    url=url,
                    status=response.status,
                )
            chunks: list[bytes] = []
            size = 0
            for chunk in response.stream(64 * 1024):
                size += len(chunk)
                if size > max_bytes:
                    raise PodMetricsResponseError(
                        f"pod {endpoint.name} sent more than {max_bytes} bytes of metrics at {url}",
                        pod=endpoint.name,
                        url=url,
                        status=response.status,
                    )
                chunks.append(chunk)
        finally:
            response.release_conn()
    except urllib3.exceptions.HTTPError as error:
        raise PodMetricsUnavailable(
            f"no answer from pod {endpoint.name} at {url}: {error}", pod=endpoint.name, url=url
        ) from error
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as error:
        raise PodMetricsResponseError(
            f"pod {endpoint.name} sent metrics that are not UTF-8 text at {url}",
            pod=endpoint.name,
            url=url,
            status=200,
        ) from error


@dataclass(frozen=True)
class TrackMetrics:
    """One read of every given pod of a track: the text of those that answered, the
    error of those that did not (by pod name)."""

    texts: dict[str, str] = field(default_factory=dict)
    errors: dict[str, PodMetricsError] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.errors


def read_track_metrics(
    endpoints: Sequence[PodEndpoint],
    *,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> TrackMetrics:
    """Read the metrics of every ready pod of one track (the caller lists them), in
    parallel, so one slow pod costs one timeout rather than one per pod."""
    names = [endpoint.name for endpoint in endpoints]
    if len(set(names)) != len(names):
        raise ValueError(f"pod names must be unique, got {names}")
    if not endpoints:
        return TrackMetrics()
    pool = _new_pool(timeout)
    try:

        def read(endpoint: PodEndpoint) -> str | PodMetricsError:
            try:
                return read_pod_metrics(endpoint, timeout=timeout, max_bytes=max_bytes, pool=pool)
            except PodMetricsError as error:
                logger.info("%s", error)
                return error

        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_READS, len(endpoints))) as workers:
            results = list(workers.map(read, endpoints))
    finally:
        pool.clear()
    texts = {e.name: r for e, r in zip(endpoints, results, strict=True) if isinstance(r, str)}
    errors = {
        e.name: r for e, r in zip(endpoints, results, strict=True) if isinstance(r, PodMetricsError)
    }
    return TrackMetrics(texts=texts, errors=errors)
