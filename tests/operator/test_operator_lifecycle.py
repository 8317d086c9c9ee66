"""Create, update and delete through the real operator over HTTP."""

from __future__ import annotations

import kubernetes
from operator_harness import (
    NAMESPACE,
    model_deployment,
    verified_version,
    wait_for,
)


def env_of(deployment, container="server"):
    (server,) = [c for c in deployment.spec.template.spec.containers if c.name == container]
    return {e.name: e.value for e in server.env}


def test_version_is_verified_and_deployment_becomes_healthy(
    cluster, operator, model_file, tmp_path
):
    verified_version(cluster, tmp_path, "churn-v1", model_file)
    cluster.create("modeldeployments", model_deployment("churn", "churn-v1"))

    wait_for(
        lambda: cluster.status("modelversions", "churn-v1").get("phase") == "Ready",
        what="ModelVersion Ready",
    )
    mv_status = cluster.status("modelversions", "churn-v1")
    assert mv_status["digest"] == model_file.sha256
    assert mv_status["sizeBytes"] == model_file.path.stat().st_size
    assert mv_status["signature"]["inputs"] == [
        {"name": "input", "datatype": "FP32", "shape": [-1, 32]}
    ]
    assert mv_status["verificationJob"] == "churn-v1-verify"
    job = cluster.batch.read_namespaced_job("churn-v1-verify", NAMESPACE)
    assert job.spec.template.spec.containers[0].command == ["driftline-verify"]

    wait_for(
        lambda: cluster.status("modeldeployments", "churn").get("phase") == "Healthy",
        what="ModelDeployment Healthy",
    )
    status = cluster.status("modeldeployments", "churn")
    md = cluster.get("modeldeployments", "churn")
    assert status["observedGeneration"] == md["metadata"]["generation"]
    assert status["stableVersion"] == "churn-v1"
    assert status["tracks"]["stable"]["readyReplicas"] == 2
    assert status["tracks"]["stable"]["availableReplicas"] == 2
    assert status["url"] == "http://churn.ml.svc.cluster.local/v2/models/churn"
    assert cluster.condition("modeldeployments", "churn", "Ready") == ("True", "AllConditionsMet")
    # The rollout engine's reason (issue 14 names it RolloutCompleted).
    assert cluster.condition("modeldeployments", "churn", "Progressing") == (
        "False",
        "RolloutCompleted",
    )

    (deployment,) = cluster.deployments()
    assert deployment.metadata.name == "churn-stable"
    assert deployment.metadata.owner_references[0].uid == md["metadata"]["uid"]
    assert env_of(deployment)["DRIFTLINE_SHA256"] == model_file.sha256
    assert cluster.core.read_namespaced_service("churn", NAMESPACE).spec.cluster_ip
    assert cluster.policy.read_namespaced_pod_disruption_budget("churn", NAMESPACE)
    # Every transition was announced.
    events = cluster.events_for("churn")
    assert "AllConditionsMet" in {e.reason for e in events}
    assert any("Progressing=False (RolloutCompleted)" in e.message for e in events)
    assert "Verified" in {e.reason for e in cluster.events_for("churn-v1")}


def test_failed_verification_degrades_the_deployment(cluster, operator, model_file, tmp_path):
    verified_version(cluster, tmp_path, "bad", model_file, sha256="0" * 64)
    cluster.create("modeldeployments", model_deployment("churn", "bad"))
    wait_for(
        lambda: cluster.status("modelversions", "bad").get("phase") == "Failed",
        what="ModelVersion Failed",
    )
    assert cluster.condition("modelversions", "bad", "Verified") == ("False", "DigestMismatch")
    assert "sha256 mismatch" in cluster.status("modelversions", "bad")["message"]
    wait_for(
        lambda: cluster.status("modeldeployments", "churn").get("phase") == "Degraded",
        what="ModelDeployment Degraded",
    )
    assert cluster.condition("modeldeployments", "churn", "Progressing") == (
        "False",
        "ModelVersionFailed",
    )
    assert cluster.deployments() == []


def test_new_version_moves_stable_once_ready(cluster, operator, model_file, model_dir, tmp_path):
    from operator_harness import ModelFile

    verified_version(cluster, tmp_path, "churn-v1", model_file)
    cluster.create("modeldeployments", model_deployment("churn", "churn-v1"))
    wait_for(
        lambda: cluster.status("modeldeployments", "churn").get("phase") == "Healthy",
        what="Healthy on v1",
    )

    newer = ModelFile(model_dir, seed=8)
    body_ok, message = newer.verification_message(tmp_path)
    assert body_ok
    # Verification of v2 takes a while: the stable track must keep serving v1 meanwhile.
    cluster.set_job_outcome("churn-v2-verify", succeed=True, message=message, delay=1.5)
    from operator_harness import model_version

    cluster.create("modelversions", model_version("churn-v2", newer, version="2.0.0"))
    cluster.patch("modeldeployments", "churn", {"spec": {"modelVersion": "churn-v2"}})
    wait_for(
        lambda: (
            cluster.condition("modeldeployments", "churn", "Progressing")
            == ("True", "ModelVersionVerifying")
        ),
        what="waiting for v2's verification",
    )
    (deployment,) = cluster.deployments()
    assert env_of(deployment)["DRIFTLINE_SHA256"] == model_file.sha256
    assert cluster.condition("modeldeployments", "churn", "Available") == (
        "True",
        "MinimumReplicasAvailable",
    )

    wait_for(
        lambda: (
            cluster.status("modeldeployments", "churn").get("stableVersion") == "churn-v2"
            and cluster.status("modeldeployments", "churn").get("phase") == "Healthy"
        ),
        what="Healthy on v2",
    )
    (deployment,) = cluster.deployments()
    assert env_of(deployment)["DRIFTLINE_SHA256"] == newer.sha256
    assert env_of(deployment)["DRIFTLINE_MODEL_VERSION"] == "2.0.0"


def test_scaling_and_autoscaling_changes(cluster, operator, model_file, tmp_path):
    verified_version(cluster, tmp_path, "churn-v1", model_file)
    cluster.create("modeldeployments", model_deployment("churn", "churn-v1"))
    wait_for(
        lambda: cluster.status("modeldeployments", "churn").get("phase") == "Healthy",
        what="Healthy",
    )

    cluster.patch("modeldeployments", "churn", {"spec": {"replicas": 4}})
    wait_for(
        lambda: (
            cluster.status("modeldeployments", "churn")
            .get("tracks", {})
            .get("stable", {})
            .get("readyReplicas")
            == 4
        ),
        what="4 ready replicas",
    )
    assert cluster.apps.read_namespaced_deployment("churn-stable", NAMESPACE).spec.replicas == 4

    cluster.patch(
        "modeldeployments",
        "churn",
        {
            "spec": {
                "replicas": None,
                "autoscaling": {"minReplicas": 2, "maxReplicas": 5, "targetInflightRequests": 8},
            }
        },
    )
    hpa = wait_for(
        lambda: _read_or_none(
            cluster.autoscaling.read_namespaced_horizontal_pod_autoscaler, "churn"
        ),
        what="HPA",
    )
    assert hpa.spec.max_replicas == 5
    assert hpa.spec.metrics[0].pods.metric.name == "driftline_in_flight_requests"
    # It scales the ModelDeployment (its scale subresource), which the operator splits.
    assert (hpa.spec.scale_target_ref.kind, hpa.spec.scale_target_ref.name) == (
        "ModelDeployment",
        "churn",
    )
    # What the HPA sets through the scale subresource is what the tracks get.
    cluster.custom.patch_namespaced_custom_object_scale(
        "driftline.io",
        "v1alpha1",
        NAMESPACE,
        "modeldeployments",
        "churn",
        {"spec": {"replicas": 3}},
    )
    wait_for(
        lambda: (
            cluster.apps.read_namespaced_deployment("churn-stable", NAMESPACE).spec.replicas == 3
        ),
        what="3 replicas from the scale subresource",
    )

    cluster.patch("modeldeployments", "churn", {"spec": {"autoscaling": None, "replicas": 1}})
    wait_for(
        lambda: (
            _read_or_none(cluster.autoscaling.read_namespaced_horizontal_pod_autoscaler, "churn")
            is None
            and cluster.apps.read_namespaced_deployment("churn-stable", NAMESPACE).spec.replicas
            == 1
        ),
        what="HPA removed, 1 replica",
    )


def test_drift_policy_adds_and_removes_the_sidecar(cluster, operator, model_file, tmp_path):
    verified_version(cluster, tmp_path, "churn-v1", model_file)
    cluster.create("modeldeployments", model_deployment("churn", "churn-v1"))
    wait_for(
        lambda: cluster.status("modeldeployments", "churn").get("phase") == "Healthy",
        what="Healthy",
    )
    cluster.create(
        "driftpolicies",
        {
            "apiVersion": "driftline.io/v1alpha1",
            "kind": "DriftPolicy",
            "metadata": {"name": "churn-drift"},
            "spec": {"targetRef": {"name": "churn"}},
        },
    )

    def containers():
        deployment = cluster.apps.read_namespaced_deployment("churn-stable", NAMESPACE)
        return [c.name for c in deployment.spec.template.spec.containers]

    wait_for(lambda: containers() == ["server", "drift-evaluator"], what="sidecar added")
    role = cluster.rbac.read_namespaced_role("churn-drift-evaluator", NAMESPACE)
    assert role.rules[0].resource_names == ["churn-drift"]
    assert cluster.rbac.read_namespaced_role_binding("churn-drift-evaluator", NAMESPACE)
    assert cluster.core.read_namespaced_service_account("churn-drift-evaluator", NAMESPACE)

    cluster.delete("driftpolicies", "churn-drift")
    wait_for(lambda: containers() == ["server"], what="sidecar removed")
    # the operator deletes the sidecar's RBAC objects one after another: wait for each
    for read, what in (
        (cluster.rbac.read_namespaced_role, "Role"),
        (cluster.rbac.read_namespaced_role_binding, "RoleBinding"),
        (cluster.core.read_namespaced_service_account, "ServiceAccount"),
    ):
        wait_for(
            lambda read=read: _read_or_none(read, "churn-drift-evaluator") is None,
            what=f"{what} removed",
        )


def test_version_in_use_cannot_be_deleted_until_unused(cluster, operator, model_file, tmp_path):
    verified_version(cluster, tmp_path, "churn-v1", model_file)
    cluster.create("modeldeployments", model_deployment("churn", "churn-v1"))
    wait_for(
        lambda: cluster.status("modeldeployments", "churn").get("phase") == "Healthy",
        what="Healthy",
    )

    cluster.delete("modelversions", "churn-v1")
    wait_for(
        lambda: "DeletionBlocked" in {e.reason for e in cluster.events_for("churn-v1")},
        what="deletion blocked",
    )
    still = cluster.get("modelversions", "churn-v1")
    assert still is not None and still["metadata"].get("deletionTimestamp")
    assert still["status"]["usedBy"] == ["churn"]

    cluster.delete("modeldeployments", "churn")
    # Children go with their owner (garbage collection by owner references)...
    wait_for(lambda: cluster.deployments() == [], what="Deployment collected")
    # ...and then the version is no longer in use.
    wait_for(lambda: cluster.get("modelversions", "churn-v1") is None, what="ModelVersion deleted")


def _read_or_none(read, name):
    try:
        return read(name, NAMESPACE)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        raise


def test_lifecycle_label_deprecates_and_retires(cluster, operator, model_file, model_dir, tmp_path):
    verified_version(cluster, tmp_path, "churn-v1", model_file)
    cluster.create("modeldeployments", model_deployment("churn", "churn-v1"))
    wait_for(lambda: healthy(cluster, "churn"), what="Healthy")

    cluster.patch(
        "modelversions",
        "churn-v1",
        {"metadata": {"labels": {"driftline.io/lifecycle": "deprecated"}}},
    )
    wait_for(
        lambda: cluster.status("modelversions", "churn-v1").get("phase") == "Deprecated",
        what="Deprecated",
    )
    # Deprecated still serves.
    assert healthy(cluster, "churn")

    cluster.patch(
        "modelversions", "churn-v1", {"metadata": {"labels": {"driftline.io/lifecycle": "retired"}}}
    )
    wait_for(
        lambda: cluster.status("modelversions", "churn-v1").get("phase") == "Retired",
        what="Retired",
    )
    assert cluster.condition("modelversions", "churn-v1", "Ready") == ("False", "Retired")
    # A retired version is never rolled out anew, but what serves keeps serving.
    wait_for(
        lambda: (
            cluster.condition("modeldeployments", "churn", "UpToDate")
            == ("False", "ModelVersionRetired")
        ),
        what="deployment told",
    )
    assert cluster.condition("modeldeployments", "churn", "Available") == (
        "True",
        "MinimumReplicasAvailable",
    )
    assert len(cluster.deployments()) == 1

    cluster.patch(
        "modelversions", "churn-v1", {"metadata": {"labels": {"driftline.io/lifecycle": None}}}
    )
    wait_for(
        lambda: cluster.status("modelversions", "churn-v1").get("phase") == "Ready",
        what="Ready again",
    )
    wait_for(lambda: healthy(cluster, "churn"), what="Healthy again")


def healthy(cluster, name):
    return cluster.status("modeldeployments", name).get("phase") == "Healthy"
