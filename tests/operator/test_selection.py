"""spec.versionSelector: which ModelVersion a following deployment serves."""

from __future__ import annotations

from typing import Any

from memory_kube import MemoryKube
from test_handlers_in_process import model_deployment, model_version, reconcile_md, status_of

from driftline.api.modeldeployment import VersionSelector
from driftline.reconcile.selection import select_version

FOLLOW = VersionSelector(model="churn")


def version(
    name: str,
    created: str,
    *,
    model: str = "churn",
    phase: str = "Ready",
    labels: dict[str, str] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "creationTimestamp": created, "labels": labels or {}}
    if deleting:
        metadata["deletionTimestamp"] = created
    return {"metadata": metadata, "spec": {"model": model}, "status": {"phase": phase}}


def test_the_newest_ready_version_of_the_model_is_chosen():
    candidates = [
        version("churn-v1", "2026-12-01T10:00:00Z"),
        version("churn-v3", "2026-12-01T12:00:00Z", phase="Verifying"),
        version("churn-v2", "2026-12-01T11:00:00Z"),
        version("other-v9", "2026-12-01T13:00:00Z", model="other"),
    ]
    assert select_version(FOLLOW, candidates, excluded=()) == "churn-v2"


def test_rejected_rolled_back_and_deleted_versions_are_never_chosen():
    candidates = [
        version("churn-v1", "2026-12-01T10:00:00Z"),
        version("churn-v2", "2026-12-01T11:00:00Z", labels={"driftline.io/validation": "rejected"}),
        version("churn-v3", "2026-12-01T12:00:00Z"),
        version("churn-v4", "2026-12-01T13:00:00Z", deleting=True),
    ]
    assert select_version(FOLLOW, candidates, excluded={"churn-v3"}) == "churn-v1"
    assert select_version(FOLLOW, candidates, excluded={"churn-v1", "churn-v3"}) is None


def test_labels_narrow_the_choice_and_ties_go_by_name():
    selector = VersionSelector(model="churn", match_labels={"channel": "stable"})
    candidates = [
        version("churn-a", "2026-12-01T10:00:00Z", labels={"channel": "stable"}),
        version("churn-b", "2026-12-01T10:00:00Z", labels={"channel": "stable"}),
        version("churn-c", "2026-12-01T11:00:00Z", labels={"channel": "beta"}),
    ]
    assert select_version(selector, candidates, excluded=()) == "churn-b"


def test_a_following_deployment_skips_a_rejected_retrained_version_in_process():
    kube = MemoryKube()
    kube.put(model_version("v1"))
    rejected = model_version("v2")
    rejected["metadata"]["labels"] = {"driftline.io/validation": "rejected"}
    rejected["metadata"]["creationTimestamp"] = "2026-12-02T00:00:00Z"
    kube.put(rejected)
    body = model_deployment()
    body["spec"].pop("modelVersion")
    body["spec"]["versionSelector"] = {"model": "churn"}
    kube.put(body)
    reconcile_md(kube)
    status = status_of(kube, "ModelDeployment", "churn")
    assert status["selectedVersion"] == "v1"
    stable = kube.find("Deployment", "churn-stable")
    assert stable is not None
    assert stable["metadata"]["annotations"]["driftline.io/model-version"] == "v1"


def test_a_version_for_manual_promotion_waits_for_a_promote():
    from driftline.api.modeldeployment import ModelDeploymentSpec
    from driftline.reconcile.selection import held_for_promotion, manual_promotion

    canary = ModelDeploymentSpec.model_validate({"modelVersion": "v2", "replicas": 2})
    held = held_for_promotion(canary)
    assert held.strategy.canary is not None
    assert held.strategy.canary.steps[0].pause_seconds == 0  # waits for a promote
    assert [s.weight for s in held.strategy.canary.steps] == [10, 50, 100]
    blue_green = ModelDeploymentSpec.model_validate(
        {"modelVersion": "v2", "replicas": 2, "strategy": {"type": "BlueGreen"}}
    )
    held = held_for_promotion(blue_green)
    assert held.strategy.blue_green is not None and not held.strategy.blue_green.auto_promote
    manual = version("v3", "2026-12-01T10:00:00Z", labels={"driftline.io/promotion": "manual"})
    assert manual_promotion(manual) and not manual_promotion(version("v4", "x"))


def test_rolling_followers_leave_a_manual_version_to_be_named():
    kube = MemoryKube()
    kube.put(model_version("v1"))
    manual = model_version("v2")
    manual["metadata"]["labels"] = {"driftline.io/promotion": "manual"}
    manual["metadata"]["creationTimestamp"] = "2026-12-02T00:00:00Z"
    kube.put(manual)
    body = model_deployment(strategy={"type": "Rolling"})
    body["spec"].pop("modelVersion")
    body["spec"]["versionSelector"] = {"model": "churn"}
    kube.put(body)
    reconcile_md(kube)
    assert status_of(kube, "ModelDeployment", "churn")["selectedVersion"] == "v1"
