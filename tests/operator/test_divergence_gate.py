"""The prediction divergence gate, end to end: the real operator on the local Kubernetes
API reads the prediction summaries that real drift sidecars (real `driftline-evaluator`
beside real `driftline-serve`) report for the stable and the canary pods on the same
traffic. A canary whose model predicts differently is stopped; a retrained model with the
same predictions passes."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from operator_harness import NAMESPACE, ModelFile, model_deployment, verified_version, wait_for

from driftline.render import labels as lbl
from driftline_serving.drift import Schema, build_profile, save_profile
from driftline_serving.examples.models import MLP_INPUTS
from tests.evaluator.sidecar_pods import Pod

POLICY = "churn-drift"
pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    rows = np.random.default_rng(5).normal(size=(2_000, MLP_INPUTS))
    features = [f"x{i}" for i in range(MLP_INPUTS)]
    profile = build_profile(
        Schema.of([(name, "numeric") for name in features]),
        [{name: rows[:, i] for i, name in enumerate(features)}],
    )
    path = tmp_path_factory.mktemp("reference") / "reference.dlprofile"
    return path, save_profile(profile, path)


@pytest.fixture
def pods(api, cluster) -> Iterator[Callable[..., Pod]]:
    started: list[Pod] = []

    def start(name: str, track: str, version: str, model: ModelFile, reference, tmp_path) -> Pod:
        # The Pod object the kubelet would report (the operator prunes reports of pods
        # that are not there), then the pod's processes.
        cluster.core.create_namespaced_pod(
            NAMESPACE,
            {
                "metadata": {"name": name, "labels": lbl.track_selector("churn", track)},
                "spec": {"containers": [{"name": "server", "image": "x"}]},
            },
        )
        artifacts = {
            "model": model.path,
            "model_sha": model.sha256,
            "profile": reference[0],
            "profile_sha": reference[1],
        }
        return Pod(
            name,
            tmp_path,
            artifacts,
            api.kubeconfig_path,
            started,
            model_version=version,
            namespace=NAMESPACE,
            policy=POLICY,
            track=track,
        )

    yield start
    for pod in started:
        pod.stop()


class SameTraffic:
    """The same rows to every pod, one request at a time, until stopped."""

    def __init__(self, targets: list[Pod]):
        self.targets = targets
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        rng = np.random.default_rng(11)
        sent = 0
        while not self.stopping.is_set():
            row = rng.normal(size=(1, MLP_INPUTS)).astype(np.float32)
            for pod in self.targets:
                # a pod being stopped at the end of the test may refuse
                with contextlib.suppress(AssertionError, OSError):
                    pod.infer(row, f"{pod.name}-{sent}")
            sent += 1
            self.stopping.wait(0.005)  # a request rate, not synchronisation

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)


def drift_policy() -> dict[str, Any]:
    return {
        "apiVersion": "driftline.io/v1alpha1",
        "kind": "DriftPolicy",
        "metadata": {"name": POLICY},
        "spec": {
            "targetRef": {"name": "churn"},
            "window": {"size": 400, "minSamples": 50, "intervalSeconds": 2},
        },
    }


def status(cluster) -> dict[str, Any]:
    return cluster.status("modeldeployments", "churn")


@pytest.mark.parametrize("same_predictions", [False, True], ids=["diverges", "same"])
def test_the_divergence_gate_stops_a_canary_that_predicts_differently(
    api, cluster, operator, model_dir, model_file, pods, reference, tmp_path, same_predictions
):
    canary_model = model_file if same_predictions else ModelFile(model_dir, 8)
    verified_version(cluster, tmp_path, "churn-a", model_file)
    verified_version(cluster, tmp_path, "churn-b", canary_model)
    for name in ("churn-a", "churn-b"):
        wait_for(lambda name=name: cluster.status("modelversions", name).get("phase") == "Ready")
    cluster.create("driftpolicies", drift_policy())
    strategy = {
        "type": "Canary",
        "canary": {"steps": [{"weight": 50}, {"weight": 100, "analysis": False}]},
        "analysis": {
            "intervalSeconds": 3,
            "count": 2,
            "driftGate": False,
            "divergence": {"minSamples": 100},
        },
    }
    cluster.create(
        "modeldeployments", model_deployment("churn", "churn-a", replicas=2, strategy=strategy)
    )
    wait_for(
        lambda: status(cluster).get("phase") == "Healthy", what="Healthy on churn-a", timeout=60
    )
    stable = pods("churn-stable-0", "stable", "churn-a", model_file, reference, tmp_path)
    canary = pods("churn-canary-0", "canary", "churn-b", canary_model, reference, tmp_path)
    traffic = SameTraffic([stable, canary])
    try:
        cluster.patch("modeldeployments", "churn", {"spec": {"modelVersion": "churn-b"}})
        if same_predictions:
            wait_for(
                lambda: (
                    status(cluster).get("stableVersion") == "churn-b"
                    and not status(cluster).get("canaryVersion")
                ),
                timeout=120,
                what="the retrained twin promoted",
            )
        else:
            wait_for(
                lambda: status(cluster).get("abortedVersion") == "churn-b",
                timeout=120,
                what="the diverging canary stopped",
            )
    finally:
        traffic.stop()
    run = next(r for r in status(cluster)["analysis"] if r["name"] == "step-0")
    (gate,) = run["gates"]
    assert (gate["name"], gate["kind"]) == ("divergence", "Divergence")
    if same_predictions:
        assert gate["verdict"] == "Passed"
        assert all(float(m["value"]) == 0.0 for m in gate["recent"] if m["phase"] == "Successful")
    else:
        assert gate["verdict"] == "Failed"
        assert float(gate["lastFailed"]["value"]) >= 0.1
        degraded = next(c for c in status(cluster)["conditions"] if c["type"] == "Degraded")
        assert degraded["reason"] == "AnalysisFailed" and "divergence" in degraded["message"]
