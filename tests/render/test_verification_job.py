"""The verification Job of a ModelVersion."""

from __future__ import annotations

import json

import kubernetes_validate

from driftline.api.modelversion import ModelVersion
from driftline.render.settings import RenderSettings
from driftline.render.verification import render_verification_job


def owner_of(model_version: ModelVersion) -> dict:
    return {
        "apiVersion": "driftline.io/v1alpha1",
        "kind": "ModelVersion",
        "metadata": model_version.metadata,
    }


def test_job_with_signature_and_secret(embedder):
    job = render_verification_job(
        owner_of(embedder), embedder, RenderSettings(verify_memory_limit="3Gi")
    )
    kubernetes_validate.validate(job, "1.31", strict=True)
    assert job["metadata"]["name"] == "embedder-2026-11-20-verify"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "ModelVersion"
    assert job["metadata"]["labels"]["app.kubernetes.io/component"] == "verification"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["command"] == ["driftline-verify"]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["envFrom"] == [{"secretRef": {"name": "artifact-token"}}]
    assert container["resources"]["limits"]["memory"] == "3Gi"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["DRIFTLINE_MODEL_URI"] == embedder.spec.artifact.uri
    assert env["DRIFTLINE_SHA256"] == embedder.spec.artifact.sha256
    signature = json.loads(env["DRIFTLINE_SIGNATURE"])
    assert signature["inputs"][0] == {
        "name": "pixels",
        "datatype": "FP16",
        "shape": [-1, 3, 224, 224],
    }


def test_job_without_signature_or_secret(churn_v2):
    body = churn_v2.model_dump(by_alias=True, mode="json", exclude_none=True)
    body["spec"]["artifact"].pop("secretRef")
    model_version = ModelVersion.model_validate(body)
    job = render_verification_job(owner_of(model_version), model_version, RenderSettings())
    kubernetes_validate.validate(job, "1.31", strict=True)
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert "envFrom" not in container
    assert "DRIFTLINE_SIGNATURE" not in {e["name"] for e in container["env"]}
