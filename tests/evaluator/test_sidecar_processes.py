"""Issue 6 end to end: the real server and the real evaluator as processes, real HTTP
traffic with drift switched on half-way, and the DriftPolicy in the local Kubernetes API
going from no drift to Drifted=True with the right features named; with two replicas
reporting at once, and with the API failing requests for a while."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from driftline_serving.drift import Schema, build_profile, save_profile
from driftline_serving.examples.models import MLP_INPUTS, classifier_mlp, save

from .conftest import drifted_condition, read_policy
from .sidecar_pods import Pod, eventually

FEATURES = [f"x{i}" for i in range(MLP_INPUTS)]
SHIFTED = ("x3", "x17")
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def mlp_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("sidecar")
    model_path = directory / "mlp.onnx"
    model_sha = save(classifier_mlp(), model_path)
    reference = np.random.default_rng(5).normal(size=(20_000, MLP_INPUTS))
    profile = build_profile(
        Schema.of([(name, "numeric") for name in FEATURES]),
        [{name: reference[:, i] for i, name in enumerate(FEATURES)}],
    )
    profile_path = directory / "reference.dlprofile"
    return {
        "model": model_path,
        "model_sha": model_sha,
        "profile": profile_path,
        "profile_sha": save_profile(profile, profile_path),
    }


@pytest.fixture
def start_pod(api, mlp_artifacts, tmp_path: Path) -> Iterator[Callable[[str], Pod]]:
    pods: list[Pod] = []

    def start(name: str) -> Pod:
        pod = Pod(name, tmp_path, mlp_artifacts, api.kubeconfig_path, started=pods)
        return pod

    yield start
    for pod in pods:
        pod.stop()


def traffic(pod: Pod, count: int, *, drift: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for i in range(count):
        rows = rng.normal(size=(1, MLP_INPUTS))
        if drift:
            for name in SHIFTED:
                rows[:, FEATURES.index(name)] += 1.0
        pod.infer(rows, f"{pod.name}-{seed}-{i}")


def condition_is(api, status: str, reason: str | None = None) -> Callable[[], Any]:
    def check() -> Any:
        condition = drifted_condition(read_policy(api))
        return (
            condition
            and condition["status"] == status
            and (reason is None or condition["reason"] == reason)
            and condition
        )

    return check


def drifted_features(api, pod: str) -> set[str]:
    report = read_policy(api)["status"]["pods"][pod]["evaluation"]
    return {f["name"] for f in report["features"] if f["drifted"]}


def test_single_pod_goes_from_no_drift_to_drifted(api, start_pod) -> None:
    pod = start_pod("mlp-0")
    traffic(pod, 500, drift=False, seed=1)
    eventually(condition_is(api, "False", "NoDrift"))
    traffic(pod, 500, drift=True, seed=2)
    condition = eventually(condition_is(api, "True"))
    assert drifted_features(api, "mlp-0") == set(SHIFTED)
    assert all(name in condition["message"] for name in SHIFTED)
    # every sampled request arrives (the verdict may come before the last ones do)
    eventually(lambda: "driftline_drift_samples_received_total 1000.0" in pod.evaluator_metrics())
    assert pod.server.metrics().count("driftline_drift_dropped_queue_full_rows 0.0") == 1


def test_two_replicas_report_at_once(api, start_pod) -> None:
    pods = [start_pod("mlp-0"), start_pod("mlp-1")]
    for index, pod in enumerate(pods):
        traffic(pod, 500, drift=False, seed=10 + index)
    eventually(lambda: len((read_policy(api).get("status") or {}).get("pods", {})) == 2)
    eventually(condition_is(api, "False", "NoDrift"))
    for index, pod in enumerate(pods):
        traffic(pod, 500, drift=True, seed=20 + index)
    eventually(
        lambda: all(
            read_policy(api)["status"]["pods"][p.name]["consecutiveDrifted"] >= 2 for p in pods
        )
    )
    condition = eventually(condition_is(api, "True"))
    assert "mlp-0" in condition["message"] and "mlp-1" in condition["message"]
    for pod in pods:
        assert drifted_features(api, pod.name) == set(SHIFTED)


def test_api_failing_for_a_while_loses_no_verdict(api, start_pod) -> None:
    pod = start_pod("mlp-0")
    traffic(pod, 500, drift=False, seed=30)
    eventually(condition_is(api, "False", "NoDrift"))
    faults = [
        api.faults.inject(kind, resource="driftpolicies", rate=0.8, duration=6.0, hang_seconds=2.0)
        for kind in (500, 429, "timeout")
    ]
    traffic(pod, 500, drift=True, seed=31)
    eventually(lambda: sum(f.fired for f in faults) >= 5)
    eventually(condition_is(api, "True"), timeout_s=90)
    assert drifted_features(api, "mlp-0") == set(SHIFTED)
    assert pod.evaluator.poll() is None, "the evaluator kept running through the outage"


def test_feedback_labels_reach_the_evaluator(api, start_pod) -> None:
    pod = start_pod("mlp-0")
    traffic(pod, 10, drift=False, seed=40)
    # each answer names the pod whose sidecar remembers it: where its label must go
    rows = np.random.default_rng(41).normal(size=(1, MLP_INPUTS))
    assert pod.infer(rows, "mlp-0-41-0")["driftline-pod"] == "mlp-0"
    status, body, _ = pod.server.post(
        "/v2/models/mlp/feedback",
        orjson.dumps(
            {"request_ids": ["mlp-0-40-0", "mlp-0-40-1", "never-seen"], "labels": [0, 2, 1]}
        ),
    )
    assert status == 200 and orjson.loads(body) == {"accepted": 3}
    eventually(
        lambda: (
            'driftline_drift_feedback_labels_total{outcome="joined"} 2.0' in pod.evaluator_metrics()
        )
    )
    assert 'driftline_drift_feedback_labels_total{outcome="unknown"} 1.0' in pod.evaluator_metrics()
    status, body, _ = pod.server.post(
        "/v2/models/mlp/feedback", b'{"request_ids": ["a"], "labels": []}'
    )
    assert status == 400 and b"pair up one to one" in body
