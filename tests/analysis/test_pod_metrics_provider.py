"""Reading the serving pods' own /metrics: a real ``driftline-serve`` process, a port
with nothing listening, a hung one, and a loopback server for broken answers."""

from __future__ import annotations

import pytest
import urllib3

from driftline.analysis.providers.pod_metrics import (
    PodEndpoint,
    PodMetricsResponseError,
    PodMetricsUnavailable,
    TrackMetrics,
    read_pod_metrics,
    read_track_metrics,
)
from tests.serving.conftest import ServerProcess
from tests.serving.exposition import metric_value

from .conftest import TRACK, VERSION_NAME, RecordingServer, send_traffic

IDENTITY = f'version="{VERSION_NAME}",track="{TRACK}"'


def endpoint(name: str, port: int) -> PodEndpoint:
    return PodEndpoint(name, "127.0.0.1", port)


def test_reads_the_real_servers_metrics(canary_server: ServerProcess) -> None:
    send_traffic(canary_server, good=3, bad=1)
    text = read_pod_metrics(endpoint("churn-canary-0", canary_server.port))
    requests = "driftline_inference_requests_total"
    assert metric_value(text, requests, IDENTITY + ',outcome="success"') >= 3
    assert metric_value(text, "driftline_request_duration_seconds_count", IDENTITY) >= 4


def test_nothing_listening_is_unavailable(closed_port: int) -> None:
    with pytest.raises(PodMetricsUnavailable) as raised:
        read_pod_metrics(endpoint("churn-canary-1", closed_port))
    assert raised.value.pod == "churn-canary-1"
    assert raised.value.url == f"http://127.0.0.1:{closed_port}/metrics"
    assert "churn-canary-1" in str(raised.value)
    assert isinstance(raised.value.__cause__, urllib3.exceptions.NewConnectionError)


def test_a_hung_pod_times_out_as_unavailable(silent_port: int) -> None:
    with pytest.raises(PodMetricsUnavailable) as raised:
        read_pod_metrics(endpoint("hung", silent_port), timeout=(1.0, 0.5))
    assert isinstance(raised.value.__cause__, urllib3.exceptions.TimeoutError)


def test_metrics_larger_than_the_bound_are_refused(canary_server: ServerProcess) -> None:
    with pytest.raises(PodMetricsResponseError, match="more than 1024 bytes") as raised:
        read_pod_metrics(endpoint("big", canary_server.port), max_bytes=1024)
    assert raised.value.status == 200


@pytest.mark.parametrize("status", [404, 500, 302])
def test_an_http_error_is_a_response_error(recording_server: RecordingServer, status: int) -> None:
    recording_server.status, recording_server.body = status, b"no"
    with pytest.raises(PodMetricsResponseError, match=f"HTTP {status}") as raised:
        read_pod_metrics(endpoint("broken", recording_server.port))
    assert raised.value.status == status


def test_metrics_that_are_not_utf8_are_a_response_error(recording_server: RecordingServer) -> None:
    recording_server.body, recording_server.content_type = b"up \xff\xfe 1\n", "text/plain"
    with pytest.raises(PodMetricsResponseError, match="not UTF-8"):
        read_pod_metrics(endpoint("garbled", recording_server.port))


def test_the_classic_text_format_is_asked_for_on_the_given_path(
    recording_server: RecordingServer,
) -> None:
    recording_server.body, recording_server.content_type = b"up 1\n", "text/plain"
    pod = PodEndpoint("sidecar", "127.0.0.1", recording_server.port, path="/drift/metrics")
    assert read_pod_metrics(pod) == "up 1\n"
    [request] = recording_server.requests
    assert (request.method, request.path) == ("GET", "/drift/metrics")
    assert request.headers["Accept"].startswith("text/plain;version=0.0.4")


def test_a_track_read_keeps_the_pods_that_answered_and_the_errors_of_the_others(
    canary_server: ServerProcess, closed_port: int
) -> None:
    send_traffic(canary_server, good=1, bad=0)
    read = read_track_metrics(
        [endpoint("churn-canary-0", canary_server.port), endpoint("churn-canary-1", closed_port)]
    )
    assert list(read.texts) == ["churn-canary-0"]
    assert "driftline_inference_requests_total" in read.texts["churn-canary-0"]
    assert list(read.errors) == ["churn-canary-1"]
    assert isinstance(read.errors["churn-canary-1"], PodMetricsUnavailable)
    assert not read.complete


def test_a_track_without_ready_pods_reads_nothing() -> None:
    assert read_track_metrics([]) == TrackMetrics()


def test_pod_names_in_a_track_read_are_unique(closed_port: int) -> None:
    with pytest.raises(ValueError, match="unique"):
        read_track_metrics([endpoint("a", closed_port), endpoint("a", closed_port)])


@pytest.mark.parametrize(
    ("ip", "port", "path", "message"),
    [
        ("evil.example.com", 8080, "/metrics", "is not an IP address"),
        ("10.0.0.1/x", 8080, "/metrics", "is not an IP address"),
        ("10.0.0.1", 0, "/metrics", "is not a TCP port"),
        ("10.0.0.1", 70000, "/metrics", "is not a TCP port"),
        ("10.0.0.1", 8080, "metrics", "is not a plain absolute path"),
        ("10.0.0.1", 8080, "/metrics?x=1", "is not a plain absolute path"),
    ],
)
def test_an_endpoint_that_is_not_a_pod_address_is_refused(
    ip: str, port: int, path: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PodEndpoint("pod", ip, port, path)


def test_an_ipv6_pod_address_is_bracketed() -> None:
    assert PodEndpoint("pod", "fd00::1", 8080).url == "http://[fd00::1]:8080/metrics"
