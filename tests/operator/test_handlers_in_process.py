"""Each handler's gather-decide-execute, in-process, through the KubeApi Protocol with no API
server: what it writes, what it refuses, and that a settled resource costs no API call."""

from __future__ import annotations

import pytest
from memory_kube import MemoryKube

from driftline.api.modeldeployment import ModelDeploymentStatus
from driftline.handlers import driftpolicy, modeldeployment, modelversion
from driftline.handlers.context import OperatorSettings, Runtime
from driftline.handlers.executor import NameTaken
from driftline.handlers.kube import KubeError
from driftline.render.settings import RenderSettings

NS = "ml"
SHA = "a" * 64


def model_version(name: str, phase: str | None = "Ready") -> dict:
    body = {
        "apiVersion": "driftline.io/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "model": "churn",
            "version": name,
            "artifact": {"uri": f"s3://models/{name}.onnx", "sha256": SHA},
        },
    }
    if phase:
        body["status"] = {"phase": phase, "digest": SHA}
    return body


def model_deployment(name: str = "churn", version: str = "v1", **spec: object) -> dict:
    return {
        "apiVersion": "driftline.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"modelVersion": version, "replicas": 2, **spec},
    }


def runtime_for(kube: MemoryKube, **settings: float) -> Runtime:
    """The operator's runtime over `kube`, one per API (as one operator process keeps one),
    with the indexes kopf would hold now."""
    runtime: Runtime | None = getattr(kube, "runtime", None)
    if runtime is None:
        runtime = Runtime(
            kube=kube,
            render=RenderSettings(),
            settings=OperatorSettings(
                **{"blocked_recheck_seconds": 1, "drift_prune_seconds": 1, **settings}
            ),
            indexes={},
        )
        kube.runtime = runtime  # type: ignore[attr-defined]
    runtime.indexes = kube.indexes()
    return runtime


def reconcile_md(kube: MemoryKube, name: str = "churn") -> None:
    modeldeployment.reconcile(runtime_for(kube), NS, name, 0)


def status_of(kube: MemoryKube, kind: str, name: str) -> dict:
    return (kube.find(kind, name) or {}).get("status") or {}


def conditions(status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions", [])}


def test_deployment_creates_its_children_then_costs_no_call_when_settled():
    kube = MemoryKube()
    kube.put(model_version("v1"))
    kube.put(model_deployment())
    reconcile_md(kube)
    created = sorted(name for verb, name in kube.calls if verb == "create")
    assert created == ["Deployment/churn-stable", "PodDisruptionBudget/churn", "Service/churn"]
    status = status_of(kube, "ModelDeployment", "churn")
    assert status["observedGeneration"] == 1
    assert conditions(status)["Reconciled"] == ("True", "ObjectsApplied")
    # What was written is exactly what the status model declares.
    assert ModelDeploymentStatus.model_validate(status).wire() == status

    # The next look sees the Deployment it made (status follows); after that nothing has
    # changed, and a reconcile reads the indexes and makes no API call at all.
    reconcile_md(kube)
    kube.calls.clear()
    reconcile_md(kube)
    assert kube.calls == []


def test_a_child_name_owned_by_another_object_is_never_adopted():
    kube = MemoryKube()
    kube.put(model_version("v1"))
    kube.put(model_deployment())
    squatter = kube.put(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "churn", "namespace": NS, "labels": {"app": "theirs"}},
            "spec": {"selector": {"app": "theirs"}},
        }
    )
    with pytest.raises(NameTaken):
        reconcile_md(kube)
    assert kube.find("Service", "churn") == squatter  # untouched: no owner, same selector
    status = status_of(kube, "ModelDeployment", "churn")
    assert conditions(status)["Reconciled"] == ("False", "NameTaken")
    assert "observedGeneration" not in status
    assert any(e["reason"] == "NameTaken" for e in kube.events)


def test_a_failed_apply_is_reported_without_claiming_the_generation():
    kube = MemoryKube()
    kube.put(model_version("v1"))
    kube.put(model_deployment())
    kube.fail_next(
        "create", "Deployment", "churn-stable", KubeError.of(500, "InternalError", "boom", "x")
    )
    with pytest.raises(KubeError):
        reconcile_md(kube)
    status = status_of(kube, "ModelDeployment", "churn")
    assert conditions(status)["Reconciled"] == ("False", "ApiUnavailable")
    assert "observedGeneration" not in status
    reconcile_md(kube)  # the queue's retry: now it goes through
    status = status_of(kube, "ModelDeployment", "churn")
    assert conditions(status)["Reconciled"] == ("True", "ObjectsApplied")
    assert status["observedGeneration"] == 1


def test_a_stale_status_write_conflicts_and_is_made_again_from_a_fresh_read():
    kube = MemoryKube()
    kube.put(model_version("v1"))
    kube.put(model_deployment())
    runtime = runtime_for(kube)  # indexes as of now...
    body = kube.find("ModelDeployment", "churn")
    assert body is not None
    kube.patch_metadata(  # ...and then someone else writes
        "driftline.io/v1alpha1", "ModelDeployment", NS, "churn", {"labels": {"x": "y"}}
    )
    with pytest.raises(KubeError) as conflict:
        modeldeployment.reconcile(runtime, NS, "churn", 0)
    assert conflict.value.status == 409
    modeldeployment.reconcile(runtime, NS, "churn", 1)  # a retry reads the resource itself
    assert status_of(kube, "ModelDeployment", "churn")["observedGeneration"] == 1


def test_every_model_deployment_field_is_supported_analysis_included():
    """The analysis gates were named NotImplemented until they ran (issue 15)."""
    kube = MemoryKube()
    kube.put(model_version("v1"))
    gate = {"name": "errors", "query": "sum(rate(x[1m]))", "max": 0.01}
    kube.put(model_deployment(strategy={"type": "Canary", "analysis": {"metrics": [gate]}}))
    reconcile_md(kube)
    assert conditions(status_of(kube, "ModelDeployment", "churn"))["Supported"] == (
        "True",
        "AllFieldsSupported",
    )


def test_model_version_creates_its_job_and_trusts_only_its_own():
    kube = MemoryKube()
    kube.put(model_version("v1", phase=None))
    modelversion.reconcile(runtime_for(kube), NS, "v1", 0)
    job = kube.find("Job", "v1-verify")
    assert job is not None
    mv = kube.find("ModelVersion", "v1")
    assert mv is not None and "driftline.io/finalizer" in mv["metadata"]["finalizers"]
    assert job["metadata"]["ownerReferences"][0]["uid"] == mv["metadata"]["uid"]
    assert status_of(kube, "ModelVersion", "v1")["phase"] == "Verifying"

    # A Job of that name that someone else made, reporting success, is not believed.
    other = MemoryKube()
    other.put(model_version("v2", phase=None))
    other.put(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "v2-verify", "namespace": NS},
            "status": {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1},
        }
    )
    modelversion.reconcile(runtime_for(other), NS, "v2", 0)
    status = status_of(other, "ModelVersion", "v2")
    assert status["phase"] == "Verifying"
    assert conditions(status)["Verified"] == ("Unknown", "VerificationJobNotOwned")
    assert [e["reason"] for e in other.events].count("VerificationJobNotOwned") == 1


def test_model_version_in_use_keeps_its_finalizer_and_says_so_once():
    kube = MemoryKube()
    mv = model_version("v1")
    kube.put(mv)
    kube.put(model_deployment())
    modelversion.reconcile(runtime_for(kube), NS, "v1", 0)
    kube.patch_metadata(
        "driftline.io/v1alpha1",
        "ModelVersion",
        NS,
        "v1",
        {"deletionTimestamp": "2026-12-01T00:00:00Z"},
    )
    for _ in range(3):
        again = modelversion.reconcile(runtime_for(kube), NS, "v1", 0)
        assert again == 1  # looks again at the recheck interval
    assert [e["reason"] for e in kube.events].count("DeletionBlocked") == 1
    assert conditions(status_of(kube, "ModelVersion", "v1"))["DeletionBlocked"] == (
        "True",
        "InUse",
    )
    kube.objects.pop(("driftline.io/v1alpha1", "ModelDeployment", NS, "churn"))
    modelversion.reconcile(runtime_for(kube), NS, "v1", 0)
    remaining = kube.find("ModelVersion", "v1")
    assert remaining is not None and remaining["metadata"]["finalizers"] == []


def test_drift_policy_reports_its_target_and_what_it_supports():
    kube = MemoryKube()
    kube.put(
        {
            "apiVersion": "driftline.io/v1alpha1",
            "kind": "DriftPolicy",
            "metadata": {"name": "p", "namespace": NS, "generation": 2},
            "spec": {
                "targetRef": {"kind": "ModelDeployment", "name": "churn"},
                "actions": [
                    {"severity": "Low", "action": "Alert"},
                    {"severity": "High", "action": "Rollback"},
                ],
            },
        }
    )
    driftpolicy.reconcile(runtime_for(kube), NS, "p", 0)
    status = status_of(kube, "DriftPolicy", "p")
    assert status["observedGeneration"] == 2
    assert conditions(status)["TargetFound"] == ("False", "TargetNotFound")
    assert conditions(status)["Ready"] == ("False", "TargetNotFound")
    # every action is acted on (Rollback and Retrain since issue 16)
    assert conditions(status)["Supported"] == ("True", "AllFieldsSupported")
    kube.put(model_deployment())
    driftpolicy.reconcile(runtime_for(kube), NS, "p", 0)
    assert conditions(status_of(kube, "DriftPolicy", "p"))["Ready"] == ("True", "AllConditionsMet")


def test_drift_policy_says_when_pods_cannot_evaluate():
    from driftline.render.labels import server_selector

    kube = MemoryKube()
    kube.put(model_deployment())
    kube.put(  # the reporting pod is alive, so its report is kept
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "churn-stable-abc",
                "namespace": NS,
                "labels": server_selector("churn"),
            },
        }
    )
    kube.put(
        {
            "apiVersion": "driftline.io/v1alpha1",
            "kind": "DriftPolicy",
            "metadata": {"name": "p", "namespace": NS},
            "spec": {"targetRef": {"kind": "ModelDeployment", "name": "churn"}},
            "status": {
                "pods": {
                    "churn-stable-abc": {
                        "state": "NotEvaluating",
                        "reason": "NoReferenceProfile",
                        "message": "ModelVersion v1 has no reference profile",
                        "modelVersion": "v1",
                    }
                }
            },
        }
    )
    driftpolicy.reconcile(runtime_for(kube), NS, "p", 0)
    status = status_of(kube, "DriftPolicy", "p")
    assert conditions(status)["Evaluating"] == ("False", "NoReferenceProfile")
    assert conditions(status)["Ready"] == ("False", "NoReferenceProfile")
    assert "has no reference profile" in next(
        c["message"] for c in status["conditions"] if c["type"] == "Evaluating"
    )


def test_a_lost_first_status_write_still_records_the_stable_version():
    kube = MemoryKube()
    kube.put(model_version("v1"))
    kube.put(model_deployment())
    kube.fail_next(
        "patch_status", "ModelDeployment", "churn", KubeError.of(409, "Conflict", "x", "x")
    )
    with pytest.raises(KubeError):
        reconcile_md(kube)  # the children are made, the status write is lost
    assert kube.find("Deployment", "churn-stable") is not None
    modeldeployment.reconcile(runtime_for(kube), NS, "churn", 1)
    assert status_of(kube, "ModelDeployment", "churn")["stableVersion"] == "v1"


def test_a_hand_edit_of_a_child_is_undone_at_the_resync_and_not_before():
    kube = MemoryKube()
    kube.put(model_version("v1"))
    kube.put(model_deployment())
    runtime = runtime_for(kube, resync_seconds=3600)
    for _ in range(3):
        modeldeployment.reconcile(runtime_for(kube), NS, "churn", 0)
    service = kube.objects[("v1", "Service", NS, "churn")]
    service["spec"]["selector"] = {"app": "hijacked"}
    kube.calls.clear()
    again = modeldeployment.reconcile(runtime_for(kube), NS, "churn", 0)
    assert kube.calls == []  # within the resync period: nothing applied
    assert again is not None and again <= 3600  # but it comes back for the resync
    runtime.resynced_at.clear()  # the period is over
    modeldeployment.reconcile(runtime_for(kube), NS, "churn", 0)
    restored = kube.objects[("v1", "Service", NS, "churn")]["spec"]["selector"]
    assert restored["app.kubernetes.io/instance"] == "churn"
