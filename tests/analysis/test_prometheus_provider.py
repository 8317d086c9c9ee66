"""The Prometheus provider against a real Prometheus scraping a real ``driftline-serve``,
and against a loopback HTTP server for what a healthy Prometheus never answers (5xx,
not JSON, hung, TLS, the Authorization header it was sent)."""

from __future__ import annotations

import base64
import logging
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import urllib3

from driftline.analysis.providers.prometheus import (
    PrometheusAuth,
    PrometheusClient,
    PrometheusConfigError,
    PrometheusQueryError,
    PrometheusResponseError,
    PrometheusUnavailable,
    auth_from_secret_data,
)
from tests.serving.conftest import ServerProcess
from tests.serving.exposition import metric_value
from tests.support import wait_until

from .conftest import TRACK, VERSION_NAME, Certificate, RecordingServer, send_traffic
from .prometheus_server import PrometheusServer, start_prometheus

IDENTITY = f'version="{VERSION_NAME}",track="{TRACK}"'
REQUESTS = f'driftline_inference_requests_total{{{IDENTITY},outcome="success"}}'
SUCCESS_RATE = f"sum(rate({REQUESTS}[10s]))"
TOKEN = "s3cret-Token.value"
SUCCESS = {"status": "success", "data": {"resultType": "vector", "result": []}}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def value_of(data: dict[str, Any]) -> float:
    [series] = data["result"]
    return float(series["value"][1])


# --- a real Prometheus scraping a real server -------------------------------------------


def test_the_request_rate_of_a_track_is_a_one_element_vector(
    prometheus: PrometheusServer, canary_server: ServerProcess
) -> None:
    client = PrometheusClient(prometheus.url)
    answers: list[dict[str, Any]] = []

    def rate_is_positive() -> bool:
        send_traffic(canary_server, good=3, bad=0)  # the rate needs traffic between scrapes
        answers.append(client.instant_query(SUCCESS_RATE))
        result = answers[-1]["result"]
        return bool(result) and float(result[0]["value"][1]) > 0

    wait_until(rate_is_positive, 60, what=f"a positive {SUCCESS_RATE}", interval_s=0.2)
    data = answers[-1]
    assert data["resultType"] == "vector"
    assert len(data["result"]) == 1
    assert data["result"][0]["metric"] == {}


def test_a_series_comes_back_with_its_labels_and_the_time_is_sent(
    prometheus: PrometheusServer, canary_server: ServerProcess
) -> None:
    client = PrometheusClient(prometheus.url)
    send_traffic(canary_server, good=4, bad=0)
    # what the server counted so far: Prometheus has it once it scraped after the traffic
    served = metric_value(
        canary_server.metrics(),
        "driftline_inference_requests_total",
        IDENTITY + ',outcome="success"',
    )
    wait_until(
        lambda: (
            (result := client.instant_query(REQUESTS)["result"])
            and float(result[0]["value"][1]) >= served
        ),
        60,
        what=f"{REQUESTS} to reach {served}",
        interval_s=0.2,
    )
    [series] = client.instant_query(REQUESTS)["result"]
    assert series["metric"]["version"] == VERSION_NAME
    assert series["metric"]["track"] == TRACK
    assert series["metric"]["outcome"] == "success"
    # at a time before the server existed there is no sample: the time reached Prometheus
    before = client.instant_query(REQUESTS, at=datetime(2001, 1, 1, tzinfo=UTC))
    assert before == {"resultType": "vector", "result": []}


def test_a_metric_that_does_not_exist_is_an_empty_vector(prometheus: PrometheusServer) -> None:
    data = PrometheusClient(prometheus.url).instant_query(
        f'sum(rate(driftline_no_such_metric_total{{version="{VERSION_NAME}"}}[1m]))'
    )
    assert data == {"resultType": "vector", "result": []}


def test_a_scalar_comes_back_as_a_scalar(prometheus: PrometheusServer) -> None:
    # a fractional read timeout is also sent as Prometheus' evaluation timeout
    data = PrometheusClient(prometheus.url, timeout=(5.0, 2.5)).instant_query("1 + 1")
    assert data["resultType"] == "scalar"
    assert float(data["result"][1]) == 2.0


def test_bad_promql_raises_a_query_error_with_prometheus_message(
    prometheus: PrometheusServer,
) -> None:
    query = "sum(rate(driftline_inference_requests_total[1m]"
    with pytest.raises(PrometheusQueryError) as raised:
        PrometheusClient(prometheus.url).instant_query(query)
    assert raised.value.status == 400
    assert raised.value.error_type == "bad_data"
    assert raised.value.query == query
    assert "parse error" in str(raised.value)


def test_an_evaluation_error_raises_a_query_error(prometheus: PrometheusServer) -> None:
    # two series on the right with the same (empty) match group: Prometheus refuses it
    query = 'vector(1) + on() (vector(1) or label_replace(vector(1), "a", "b", "", ""))'
    with pytest.raises(PrometheusQueryError) as raised:
        PrometheusClient(prometheus.url).instant_query(query)
    assert raised.value.status == 422
    assert raised.value.error_type == "execution"


def test_a_naive_time_is_refused_before_anything_is_sent(recording_server: RecordingServer) -> None:
    with pytest.raises(ValueError, match="no timezone"):
        PrometheusClient(recording_server.url).instant_query("up", at=datetime(2026, 1, 1))
    assert recording_server.requests == []


def test_prometheus_stopped_mid_test_is_unavailable(tmp_path: Path) -> None:
    server = start_prometheus(tmp_path / "prometheus", [])
    client = PrometheusClient(server.url, timeout=(2.0, 5.0))
    try:
        assert client.instant_query("vector(1)")["resultType"] == "vector"
    finally:
        server.stop()
    with pytest.raises(PrometheusUnavailable) as raised:
        client.instant_query("vector(1)")
    assert isinstance(raised.value.__cause__, urllib3.exceptions.HTTPError)
    assert raised.value.status is None
    assert server.url in str(raised.value)


# --- what reached the server ------------------------------------------------------------


def test_the_query_is_posted_form_encoded_with_the_bearer_token(
    recording_server: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    recording_server.answer(200, SUCCESS)
    client = PrometheusClient(recording_server.url + "/prometheus/", bearer_token=TOKEN)
    at = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    with caplog.at_level(logging.DEBUG):
        assert client.instant_query('up{job="x"}', at=at) == SUCCESS["data"]
    [request] = recording_server.requests
    assert request.method == "POST"
    assert request.path == "/prometheus/api/v1/query"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = urllib.parse.parse_qs(request.body.decode())
    assert form["query"] == ['up{job="x"}']
    assert float(form["time"][0]) == at.timestamp()
    # the token appears nowhere but in the header
    assert TOKEN not in repr(client)
    assert TOKEN not in caplog.text
    assert 'up{job="x"}' in caplog.text  # the debug log was captured, and names the query


def test_without_a_token_no_authorization_is_sent(recording_server: RecordingServer) -> None:
    recording_server.answer(200, SUCCESS)
    PrometheusClient(recording_server.url).instant_query("up")
    [request] = recording_server.requests
    assert "Authorization" not in request.headers


def test_a_5xx_is_unavailable_with_prometheus_reason(recording_server: RecordingServer) -> None:
    recording_server.answer(
        503, {"status": "error", "errorType": "timeout", "error": "query timed out"}
    )
    with pytest.raises(PrometheusUnavailable, match="503: timeout: query timed out") as raised:
        PrometheusClient(recording_server.url).instant_query("up")
    assert raised.value.status == 503


def test_throttling_is_unavailable(recording_server: RecordingServer) -> None:
    recording_server.status, recording_server.body = 429, b"slow down"
    with pytest.raises(PrometheusUnavailable, match="429"):
        PrometheusClient(recording_server.url).instant_query("up")


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (200, b"<html>a login page</html>", "not a JSON object"),
        (200, b"[1, 2]", "not a JSON object"),
        (200, b'{"status": "error", "errorType": "x", "error": "y"}', "status 'error': x y"),
        (200, b'{"status": "success"}', "without a data object"),
        (200, b'{"status": "success", "data": {"result": []}}', "without a data object"),
        (401, b"Unauthorized", "HTTP 401: Unauthorized"),
        (302, b"", "HTTP 302"),
    ],
)
def test_an_answer_that_is_not_the_api_raises_a_response_error(
    recording_server: RecordingServer, status: int, body: bytes, message: str
) -> None:
    recording_server.status, recording_server.body = status, body
    with pytest.raises(PrometheusResponseError, match=message) as raised:
        PrometheusClient(recording_server.url).instant_query("up")
    assert raised.value.status == status


def test_an_oversized_answer_raises_a_response_error(recording_server: RecordingServer) -> None:
    recording_server.answer(
        200,
        {"status": "success", "data": {"resultType": "vector", "result": [{}] * 10_000}},
    )
    client = PrometheusClient(recording_server.url, max_response_bytes=4096)
    with pytest.raises(PrometheusResponseError, match="more than 4096 bytes"):
        client.instant_query("up")


def test_a_hung_prometheus_times_out_as_unavailable(silent_port: int) -> None:
    client = PrometheusClient(f"http://127.0.0.1:{silent_port}", timeout=(1.0, 0.5))
    with pytest.raises(PrometheusUnavailable) as raised:
        client.instant_query("up")
    assert isinstance(raised.value.__cause__, urllib3.exceptions.TimeoutError)


def test_nothing_listening_is_unavailable(closed_port: int) -> None:
    with pytest.raises(PrometheusUnavailable) as raised:
        PrometheusClient(f"http://127.0.0.1:{closed_port}").instant_query("up")
    assert isinstance(raised.value.__cause__, urllib3.exceptions.HTTPError)


# --- TLS and credentials from a Secret --------------------------------------------------


def test_tls_verified_with_the_ca_from_a_secret_and_the_token_sent(
    tls_recording_server: RecordingServer, loopback_certificate: Certificate
) -> None:
    tls_recording_server.answer(200, SUCCESS)
    auth = auth_from_secret_data(
        {"token": b64(TOKEN + "\n"), "ca.crt": b64(loopback_certificate.cert_pem)}
    )
    client = PrometheusClient.with_auth(tls_recording_server.url, auth)
    assert client.instant_query("up") == SUCCESS["data"]
    [request] = tls_recording_server.requests
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_tls_with_an_unknown_ca_is_refused_as_unavailable(
    tls_recording_server: RecordingServer,
) -> None:
    tls_recording_server.answer(200, SUCCESS)
    with pytest.raises(PrometheusUnavailable) as raised:
        PrometheusClient(tls_recording_server.url, bearer_token=TOKEN).instant_query("up")
    assert isinstance(raised.value.__cause__, urllib3.exceptions.SSLError)
    assert tls_recording_server.requests == []  # the token never left


def test_tls_verification_can_be_skipped_explicitly(tls_recording_server: RecordingServer) -> None:
    tls_recording_server.answer(200, SUCCESS)
    client = PrometheusClient(tls_recording_server.url, insecure_skip_verify=True)
    with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
        assert client.instant_query("up") == SUCCESS["data"]


def test_a_service_account_token_secret_is_read_as_it_is() -> None:
    auth = auth_from_secret_data(
        {
            "token": b64(TOKEN),
            "ca.crt": b64("-----BEGIN CERTIFICATE-----\n"),
            "namespace": b64("ml"),
        }
    )
    assert auth == PrometheusAuth(bearer_token=TOKEN, ca_data="-----BEGIN CERTIFICATE-----\n")
    assert TOKEN not in repr(auth)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"username": b64("x")}, "neither key 'token'.*nor 'ca.crt'.*\\['username'\\]"),
        ({"token": "not base64!"}, "key 'token' is not base64"),
        ({"token": base64.b64encode(b"\xff\xfe").decode()}, "key 'token' is not base64"),
        ({"token": b64("  \n")}, "key 'token' is not a bearer token"),
        ({"token": b64("two words")}, "key 'token' is not a bearer token"),
        ({"ca.crt": b64("hello")}, "key 'ca.crt' is not a PEM"),
    ],
)
def test_a_secret_without_usable_credentials_is_refused(data: dict[str, str], message: str) -> None:
    with pytest.raises(PrometheusConfigError, match=message) as raised:
        auth_from_secret_data(data, secret="ml/prometheus-auth")
    assert "ml/prometheus-auth" in str(raised.value)


@pytest.mark.parametrize(
    ("url", "token", "message"),
    [
        ("prometheus:9090", None, "not an http:// or https:// URL"),
        ("ftp://prometheus", None, "not an http:// or https:// URL"),
        ("http://user:pw@prometheus:9090", None, "credentials come from a Secret"),
        ("http://prometheus:9090/?x=1", None, "must not carry a query"),
        ("http://prometheus.monitoring:9090", TOKEN, "refusing to send a bearer token"),
    ],
)
def test_a_client_that_cannot_be_built_safely_is_refused(
    url: str, token: str | None, message: str
) -> None:
    with pytest.raises(PrometheusConfigError, match=message) as raised:
        PrometheusClient(url, bearer_token=token)
    assert TOKEN not in str(raised.value)


def test_a_token_over_https_or_to_loopback_is_accepted() -> None:
    PrometheusClient("https://prometheus.monitoring:9090", bearer_token=TOKEN)
    PrometheusClient("http://127.0.0.1:9090", bearer_token=TOKEN)
    PrometheusClient("http://localhost:9090", bearer_token=TOKEN)
