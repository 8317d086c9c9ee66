"""Inputs for the renderer tests: the project's examples plus small variations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from driftline.api.driftpolicy import DriftPolicy
from driftline.api.manifests import load_documents
from driftline.api.modelversion import ModelVersion

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_all(path: Path) -> list[dict[str, Any]]:
    return list(load_documents(path))


def with_uid(body: dict[str, Any], uid: str = "00000000-0000-0000-0000-000000000001") -> dict:
    body = dict(body)
    body["metadata"] = {**body["metadata"], "uid": uid, "generation": 1}
    return body


@pytest.fixture
def cpu_deployment_body() -> dict[str, Any]:
    return with_uid(load_all(EXAMPLES / "cpu-canary" / "modeldeployment.yaml")[0])


@pytest.fixture
def gpu_deployment_body() -> dict[str, Any]:
    return with_uid(load_all(EXAMPLES / "gpu-bluegreen" / "modeldeployment.yaml")[0])


@pytest.fixture
def churn_v2() -> ModelVersion:
    docs = load_all(EXAMPLES / "cpu-canary" / "modelversions.yaml")
    return ModelVersion.model_validate(with_uid(docs[1]))


@pytest.fixture
def churn_v1() -> ModelVersion:
    docs = load_all(EXAMPLES / "cpu-canary" / "modelversions.yaml")
    body = with_uid(docs[0])
    # The example's flow mapping `{..., description: month-to-month, one-year or two-year}`
    # parses the comma as a separator (an extra key); keep only what the renderers read.
    body["spec"] = {
        **body["spec"],
        "features": [{"name": f["name"], "type": f["type"]} for f in body["spec"]["features"]],
    }
    return ModelVersion.model_validate(body)


@pytest.fixture
def embedder() -> ModelVersion:
    return ModelVersion.model_validate(
        with_uid(load_all(EXAMPLES / "gpu-bluegreen" / "modelversion.yaml")[0])
    )


@pytest.fixture
def drift_policy() -> DriftPolicy:
    return DriftPolicy.model_validate(
        with_uid(load_all(EXAMPLES / "drift-retrain" / "driftpolicy.yaml")[0])
    )
