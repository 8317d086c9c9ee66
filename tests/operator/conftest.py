"""Fixtures: the local Kubernetes API, the real operator in a subprocess, real ONNX files."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
from operator_harness import (
    NAMESPACE,
    REPO,
    Cluster,
    ModelFile,
    OperatorProcess,
    assert_nothing_denied,
    install_operator_identity,
)

from driftline.apiserver.controllers import JobOutcome
from tests.apiserver_support import RunningApiServer, running_apiserver


@pytest.fixture
def api(tmp_path: Path) -> Iterator[RunningApiServer]:
    """The local API with RBAC on: the tests act as its admin, the operator as the chart's
    ServiceAccount (`operator_kubeconfig`); any request it denied fails the test."""
    # DRIFTLINE_APISERVER_AUTHORIZATION_LOG (as for `driftline apiserver`) collects every
    # decision of every test in one JSON-lines file, to see what the operator asks for.
    log = os.environ.get("DRIFTLINE_APISERVER_AUTHORIZATION_LOG")
    with running_apiserver(
        kubeconfig_path=tmp_path / "kubeconfig",
        crds=REPO / "crds",
        authorization="RBAC",
        authorization_log=Path(log) if log else None,
    ) as running:
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
        assert_nothing_denied(running)


@pytest.fixture
def operator_kubeconfig(api: RunningApiServer, tmp_path: Path) -> Path:
    return install_operator_identity(api, tmp_path / "operator-kubeconfig")


@pytest.fixture
def cluster(api: RunningApiServer) -> Cluster:
    return Cluster(api)


@pytest.fixture
def operator(operator_kubeconfig: Path, tmp_path: Path) -> Iterator[OperatorProcess]:
    process = OperatorProcess(operator_kubeconfig, tmp_path)
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
