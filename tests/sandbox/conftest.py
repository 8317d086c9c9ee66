"""Rendered pod specs for the sandbox's tests: the real renderer on the project's examples."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftline.api.driftpolicy import DriftPolicy
from driftline.api.manifests import load_documents
from driftline.api.modeldeployment import ModelDeployment
from driftline.api.modelversion import ModelVersion
from driftline.render.deployment import render_deployment
from driftline.render.settings import RenderSettings
from driftline.render.verification import render_verification_job
from driftline.sandbox.slots import AddressBlock, claim_slot

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
UID = "00000000-0000-0000-0000-000000000001"


def _example(path: Path, index: int = 0) -> dict[str, Any]:
    body = copy.deepcopy(list(load_documents(path))[index])
    body["metadata"] = {**body["metadata"], "uid": UID, "generation": 1}
    return body


def rendered_deployment(*, with_policy: bool = True) -> dict[str, Any]:
    """The stable track's Deployment of examples/cpu-canary, with the drift sidecar."""
    owner = _example(EXAMPLES / "cpu-canary" / "modeldeployment.yaml")
    version_body = _example(EXAMPLES / "cpu-canary" / "modelversions.yaml")
    version_body["spec"]["features"] = [
        {"name": f["name"], "type": f["type"]} for f in version_body["spec"]["features"]
    ]
    policy = DriftPolicy.model_validate(_example(EXAMPLES / "drift-retrain" / "driftpolicy.yaml"))
    return render_deployment(
        owner,
        ModelDeployment.model_validate(owner).spec,
        track="stable",
        model_version=ModelVersion.model_validate(version_body),
        replicas=1,
        policy=policy if with_policy else None,
        settings=RenderSettings(),
    )


def rendered_verification_job() -> dict[str, Any]:
    version_body = _example(EXAMPLES / "cpu-canary" / "modelversions.yaml")
    version_body["spec"]["features"] = [
        {"name": f["name"], "type": f["type"]} for f in version_body["spec"]["features"]
    ]
    version = ModelVersion.model_validate(version_body)
    return render_verification_job(version_body, version, RenderSettings())


def pod_from(template: dict[str, Any], name: str, namespace: str = "ml") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "labels": dict((template.get("metadata") or {}).get("labels") or {}),
        },
        "spec": copy.deepcopy(template["spec"]),
    }


@pytest.fixture
def deployment_pod() -> dict[str, Any]:
    return pod_from(rendered_deployment()["spec"]["template"], "churn-stable-abc12")


@pytest.fixture
def block() -> Iterator[AddressBlock]:
    """An address slot of the test's own, as a sandbox claims one: tests running beside
    each other and beside real sandboxes never bind the same address."""
    with claim_slot() as claim:
        yield claim.addresses
