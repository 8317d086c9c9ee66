"""Fixtures: the local Kubernetes API, the real operator in a subprocess, real ONNX files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
from operator_harness import NAMESPACE, REPO, Cluster, ModelFile, OperatorProcess

from driftline.apiserver.controllers import JobOutcome
from tests.apiserver_support import RunningApiServer, running_apiserver


@pytest.fixture
def api(tmp_path: Path) -> Iterator[RunningApiServer]:
    with running_apiserver(kubeconfig_path=tmp_path / "kubeconfig", crds=REPO / "crds") as running:
        kubernetes.client.CoreV1Api(running.api_client()).create_namespace(
            {"metadata": {"name": NAMESPACE}}
        )
        # A Job nobody told us about fails, as a verification of an unknown artifact would.
        running.call(
            lambda: setattr(
                running.controllers.jobs,
                "default",
                JobOutcome(
                    False, json.dumps({"ok": False, "reason": "FetchFailed", "message": "unknown"})
                ),
            )
        )
        yield running


@pytest.fixture
def cluster(api: RunningApiServer) -> Cluster:
    return Cluster(api)


@pytest.fixture
def operator(api: RunningApiServer, tmp_path: Path) -> Iterator[OperatorProcess]:
    process = OperatorProcess(api.kubeconfig_path, tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def model_file(model_dir: Path) -> ModelFile:
    return ModelFile(model_dir, 7)
