"""The operator's measuring shell (driftline.handlers.analysis.Analyst): Prometheus gates
with credentials from a real Secret on the local Kubernetes API, the built-in gates through
a real Prometheus scraping a real driftline-serve, and every expected failure as an outcome."""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import kubernetes
import pytest

from driftline.analysis import runs
from driftline.analysis.builtin import SUCCESS_RATE, Window
from driftline.analysis.builtin_promql import outcomes_query, window_from_results
from driftline.analysis.divergence import DivergenceSettings
from driftline.analysis.types import NoData, QueryError, Value
from driftline.api.driftpolicy import DriftPolicy
from driftline.api.modeldeployment import (
    Analysis,
    BuiltinGates,
    ModelDeploymentSpec,
    PrometheusGate,
)
from driftline.handlers.analysis import Analyst, Subject, divergence_outcome
from driftline.handlers.kube import Kube
from tests.apiserver_support import RunningApiServer, running_apiserver
from tests.support import wait_until

from .conftest import TRACK, VERSION_NAME, RecordingServer, send_traffic
from .prometheus_server import start_prometheus

NS = "ml"
NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApiServer]:
    with running_apiserver(kubeconfig_path=tmp_path_factory.mktemp("kube") / "kubeconfig") as a:
        core = kubernetes.client.CoreV1Api(a.api_client())
        core.create_namespace({"metadata": {"name": NS}})
        core.create_namespaced_secret(
            NS,
            {
                "metadata": {"name": "prometheus-auth"},
                "data": {"token": base64.b64encode(b"s3cret-token\n").decode()},
            },
        )
        core.create_namespaced_secret(
            NS, {"metadata": {"name": "empty"}, "data": {"other": base64.b64encode(b"x").decode()}}
        )
        yield a


def subject(**analysis) -> Subject:
    spec = ModelDeploymentSpec.model_validate(
        {"modelVersion": VERSION_NAME, "replicas": 1, "strategy": {"analysis": analysis}}
    )
    return Subject(NS, "churn", spec, stable_version=None, policy=None)


def due_of(who: Subject, compare_with_stable: bool = False) -> list[runs.Due]:
    target = runs.Target("step-0", VERSION_NAME, TRACK, compare_with_stable)
    definitions = runs.gate_definitions(
        who.spec.strategy.analysis, has_policy=False, compare_with_stable=compare_with_stable
    )
    return [runs.Due(target, d) for d in definitions]


GATE = {"name": "errors", "query": 'sum(x{version="{{version}}",track="{{track}}"})', "max": 1}


def test_a_prometheus_gate_sends_the_secret_token_and_the_rendered_query(
    api, recording_server: RecordingServer
):
    recording_server.answer(
        200,
        {
            "status": "success",
            "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "0.5"]}]},
        },
    )
    who = subject(
        prometheusUrl=recording_server.url,
        prometheusSecretRef={"name": "prometheus-auth"},
        metrics=[GATE],
    )
    outcomes = Analyst(Kube(api.api_client()), None).measure(who, due_of(who), NOW)
    assert outcomes == {("step-0", "errors"): Value(0.5)}
    sent = recording_server.requests[-1]
    assert sent.headers["Authorization"] == "Bearer s3cret-token"
    assert b"version%3D%22churn-v2%22%2Ctrack%3D%22canary%22" in sent.body


@pytest.mark.parametrize(
    ("secret", "expected"),
    [
        ("missing", "Secret ml/missing (spec.strategy.analysis.prometheusSecretRef) is missing"),
        ("empty", "has neither key 'token'"),
    ],
)
def test_a_secret_that_cannot_serve_is_an_error_outcome(api, secret, expected):
    who = subject(
        prometheusUrl="http://127.0.0.1:9", prometheusSecretRef={"name": secret}, metrics=[GATE]
    )
    outcome = Analyst(Kube(api.api_client()), None).measure(who, due_of(who), NOW)[
        ("step-0", "errors")
    ]
    assert isinstance(outcome, QueryError) and expected in outcome.message


def test_without_any_prometheus_a_prometheus_gate_says_what_to_set(api):
    who = subject(metrics=[GATE])
    outcome = Analyst(Kube(api.api_client()), None).measure(who, due_of(who), NOW)[
        ("step-0", "errors")
    ]
    assert isinstance(outcome, QueryError)
    assert "DRIFTLINE_PROMETHEUS_URL" in outcome.message


def test_the_operators_default_prometheus_is_used_when_the_spec_names_none(
    api, recording_server: RecordingServer
):
    recording_server.answer(
        200, {"status": "success", "data": {"resultType": "scalar", "result": [1, "2"]}}
    )
    who = subject(metrics=[GATE])
    analyst = Analyst(Kube(api.api_client()), recording_server.url)
    assert analyst.measure(who, due_of(who), NOW) == {("step-0", "errors"): Value(2.0)}


def test_an_unreachable_prometheus_is_an_error_never_a_value(api):
    who = subject(prometheusUrl="http://127.0.0.1:9", metrics=[GATE])
    outcome = Analyst(Kube(api.api_client()), None).measure(who, due_of(who), NOW)[
        ("step-0", "errors")
    ]
    assert isinstance(outcome, QueryError) and "no answer from Prometheus" in outcome.message


def test_built_in_gates_through_a_real_prometheus(api, canary_server, tmp_path: Path):
    prometheus = start_prometheus(
        tmp_path / "prometheus", [canary_server.url], labels={"namespace": NS}
    )
    try:
        prometheus.wait_scraping(1)
        send_traffic(canary_server, good=30, bad=10)
        query = outcomes_query(NS, VERSION_NAME, TRACK, 120)
        wait_until(
            lambda: sum(float(s["value"][1]) for s in prometheus.query(query)["result"]) >= 39,
            30,
            what="prometheus to see the traffic",
            interval_s=0.2,
        )
        who = subject(
            prometheusUrl=prometheus.url,
            intervalSeconds=120,
            builtin={"minRequests": 20, "maxP99Seconds": 5},
        )
        outcomes = Analyst(Kube(api.api_client()), None).measure(who, due_of(who), NOW)
    finally:
        prometheus.stop()
    rate = outcomes[("step-0", SUCCESS_RATE)]
    assert isinstance(rate, Value) and rate.value == pytest.approx(0.75, abs=0.03)
    p99 = outcomes[("step-0", "p99-latency")]
    assert isinstance(p99, Value) and 0 < p99.value < 5


def test_built_in_gates_read_from_pods_need_a_baseline_first(api):
    # No pod is Ready on the track: no data, never a pass; and no baseline was read.
    who = subject(builtin={})
    outcomes = Analyst(Kube(api.api_client()), None).measure(who, due_of(who), NOW)
    assert isinstance(outcomes[("step-0", SUCCESS_RATE)], NoData)


def test_prometheus_vectors_become_a_track_window():
    outcomes = {
        "resultType": "vector",
        "result": [
            {"metric": {"outcome": "success"}, "value": [1, "90"]},
            {"metric": {"outcome": "bad_request"}, "value": [1, "10"]},
            {"metric": {"outcome": "error"}, "value": [1, "NaN"]},
        ],
    }
    buckets = {
        "resultType": "vector",
        "result": [
            {"metric": {"le": "0.1"}, "value": [1, "80"]},
            {"metric": {"le": "+Inf"}, "value": [1, "90"]},
        ],
    }
    window = window_from_results(outcomes, buckets)
    assert window == Window({"success": 90.0, "bad_request": 10.0}, {0.1: 80.0, math.inf: 90.0})
    assert window_from_results({"resultType": "vector", "result": []}, buckets) == Window(
        {}, {0.1: 80.0, math.inf: 90.0}
    )


@pytest.mark.parametrize(
    "broken",
    [
        {"resultType": "matrix", "result": []},
        {"resultType": "vector", "result": [{"metric": {}, "value": "x"}]},
        None,
    ],
)
def test_prometheus_answers_that_are_no_window_are_errors(broken):
    good = {"resultType": "vector", "result": []}
    assert isinstance(window_from_results(broken, good), QueryError)
    assert isinstance(window_from_results(good, broken), QueryError)


def test_a_label_value_that_would_break_a_matcher_is_refused():
    with pytest.raises(ValueError, match="cannot be used in a matcher"):
        outcomes_query(NS, 'v"}', TRACK, 30)


SETTINGS = DivergenceSettings(alpha=0.01, min_effect=0.1, min_samples=100)


def test_divergence_outcome_paths():
    same = {"a": 500.0, "b": 500.0}
    assert divergence_outcome(same, {"a": 510.0, "b": 490.0}, SETTINGS) == Value(0.0)
    apart = divergence_outcome({"a": 800.0, "b": 200.0}, same, SETTINGS)
    assert isinstance(apart, Value) and apart.value == pytest.approx(0.3)
    few = divergence_outcome({"a": 10.0}, same, SETTINGS)
    assert isinstance(few, NoData) and "fewer than the minimum 100" in few.reason


def test_spec_defaults_of_the_analysis():
    analysis = Analysis()
    assert (analysis.interval_seconds, analysis.count, analysis.consecutive_error_limit) == (
        30,
        3,
        4,
    )
    assert analysis.builtin is None and analysis.divergence is None and not analysis.background
    gates = BuiltinGates()
    assert (gates.min_requests, gates.min_success_rate, gates.max_p99_ratio) == (50, 0.99, 1.5)
    assert PrometheusGate(name="x", query="up", min=1).failure_limit == 0


def policy_with(pods: dict) -> DriftPolicy:
    return DriftPolicy.model_validate(
        {
            "metadata": {"name": "churn-drift", "namespace": NS},
            "spec": {
                "targetRef": {"name": "churn"},
                "window": {"intervalSeconds": 10, "minSamples": 50},
                "hysteresis": {"consecutiveWindows": 1},
            },
            "status": {"pods": pods},
        }
    )


def drift_report(samples: int, at: datetime, severity: str = "None") -> dict:
    return {
        "state": "Evaluating",
        "modelVersion": VERSION_NAME,
        "consecutiveDrifted": 1 if severity != "None" else 0,
        "evaluation": {
            "time": at.isoformat(),
            "samples": samples,
            "drifted": severity != "None",
            "severity": severity,
            "features": [],
        },
    }


@pytest.mark.parametrize(
    ("pods", "seconds_in", "expected"),
    [
        ({}, 5, "have not reported a full window"),  # a new pod: not yet, an error
        ({"p": drift_report(10, NOW)}, 5, "have not reported a full window"),
        ({}, 60, "NoData"),  # past the freshness window: nothing is no data
        ({"p": drift_report(80, NOW)}, 5, "Value(0)"),
        ({"p": drift_report(80, NOW, "High")}, 5, "Value(3)"),
    ],
)
def test_the_drift_gate_waits_for_a_new_pods_first_full_window(api, pods, seconds_in, expected):
    from datetime import timedelta

    spec = subject().spec
    who = Subject(NS, "churn", spec, stable_version=None, policy=policy_with(pods))
    target = runs.Target("step-0", VERSION_NAME, TRACK, True)
    drift = runs.gate_definitions(spec.strategy.analysis, has_policy=True)[0]
    due = runs.Due(target, drift, run_started_at=NOW - timedelta(seconds=seconds_in))
    outcome = Analyst(Kube(api.api_client()), None).measure(who, [due], NOW)[("step-0", "drift")]
    if expected == "NoData":
        assert isinstance(outcome, NoData)
    elif expected.startswith("Value"):
        assert outcome == Value(float(expected[6:-1]))
    else:
        assert isinstance(outcome, QueryError) and expected in outcome.message
