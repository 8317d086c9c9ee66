"""Fixtures for the drift sidecar's tests: the local Kubernetes API with Driftline's CRDs,
a reference profile built from seeded data, and a DriftPolicy to report into."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driftline_serving.drift import Schema, build_profile, save_profile
from tests.apiserver_support import RunningApiServer, running_apiserver

REPO = Path(__file__).resolve().parents[2]
FEATURES = [f"f{i}" for i in range(8)]
NAMESPACE = "default"
POLICY = "churn-drift"


def reference_rows(rows: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, len(FEATURES))).astype(np.float32)


def scores_for(matrix: np.ndarray) -> np.ndarray:
    """A stand-in classifier's softmax over 3 classes, a fixed function of the inputs."""
    logits = matrix[:, :3]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="session")
def profile_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    reference = reference_rows(20_000)
    schema = Schema.of([(name, "numeric") for name in FEATURES])
    scores = scores_for(reference)
    profile = build_profile(
        schema,
        [{name: reference[:, i] for i, name in enumerate(FEATURES)}],
    )
    del scores
    path = tmp_path_factory.mktemp("profile") / "reference.dlprofile"
    digest = save_profile(profile, path)
    return path, digest


@pytest.fixture
def api(tmp_path: Path) -> Iterator[RunningApiServer]:
    with running_apiserver(kubeconfig_path=tmp_path / "kubeconfig", crds=REPO / "crds") as running:
        running.create(
            "driftline.io",
            "v1alpha1",
            "driftpolicies",
            NAMESPACE,
            {
                "apiVersion": "driftline.io/v1alpha1",
                "kind": "DriftPolicy",
                "metadata": {"name": POLICY, "namespace": NAMESPACE},
                "spec": {
                    "targetRef": {"name": "churn"},
                    "window": {"size": 500, "minSamples": 200, "intervalSeconds": 1},
                    "hysteresis": {"consecutiveWindows": 2},
                    "predictionDrift": {"enabled": False, "confidence": False},
                },
            },
        )
        yield running


def read_policy(api: RunningApiServer) -> dict[str, Any]:
    import kubernetes

    objects = kubernetes.client.CustomObjectsApi(api.api_client())
    return objects.get_namespaced_custom_object(
        "driftline.io", "v1alpha1", NAMESPACE, "driftpolicies", POLICY
    )


def drifted_condition(policy: dict[str, Any]) -> dict[str, Any] | None:
    conditions = (policy.get("status") or {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == "Drifted"), None)
