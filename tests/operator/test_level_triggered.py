"""What is applied follows the spec as it is now, whatever happened in between; status
claims a generation only once it is applied; a Job or object of someone else is never
trusted or adopted."""

from __future__ import annotations

import json

from operator_harness import NAMESPACE, model_deployment, verified_version, wait_for

from driftline.apiserver.faults import Fault


def served_version(cluster, name: str) -> str | None:
    deployment = next(
        (d for d in cluster.deployments() if d.metadata.name == f"{name}-stable"), None
    )
    return (
        (deployment.metadata.annotations or {}).get("driftline.io/model-version")
        if deployment
        else None
    )


def settled(cluster, name: str) -> bool:
    body = cluster.get("modeldeployments", name) or {}
    status = body.get("status") or {}
    return status.get("observedGeneration") == body["metadata"]["generation"] and cluster.condition(
        "modeldeployments", name, "Reconciled"
    ) == ("True", "ObjectsApplied")


def test_a_reverted_spec_is_applied_once_the_api_recovers(
    api, cluster, operator, model_file, tmp_path
):
    for version in ("churn-a", "churn-b"):
        verified_version(cluster, tmp_path, version, model_file)
    cluster.create("modeldeployments", model_deployment("churn", "churn-a"))
    wait_for(lambda: served_version(cluster, "churn") == "churn-a", what="serving a")
    cluster.patch("modeldeployments", "churn", {"spec": {"modelVersion": "churn-b"}})
    wait_for(lambda: served_version(cluster, "churn") == "churn-b", what="serving b")

    # Writes to the track Deployment fail while the spec goes back to a.
    fault = api.call(
        lambda: api.faults.add(
            Fault(kind=500, verbs=frozenset({"patch"}), resource="deployments", name="churn-stable")
        )
    )
    reverted = cluster.patch("modeldeployments", "churn", {"spec": {"modelVersion": "churn-a"}})
    generation = reverted["metadata"]["generation"]
    wait_for(
        lambda: (
            cluster.condition("modeldeployments", "churn", "Reconciled")
            == ("False", "ApiUnavailable")
        ),
        what="the failure in status",
    )
    # Status never claims a generation whose objects were not applied.
    status = cluster.status("modeldeployments", "churn")
    assert status["observedGeneration"] < generation
    assert served_version(cluster, "churn") == "churn-b"

    api.call(lambda: api.faults.remove(fault))
    wait_for(lambda: served_version(cluster, "churn") == "churn-a", timeout=90, what="back on a")
    wait_for(lambda: settled(cluster, "churn"), timeout=60, what="generation applied")


def test_random_api_faults_leave_no_deployment_behind(api, cluster, operator, model_file, tmp_path):
    verified_version(cluster, tmp_path, "churn-a", model_file)
    verified_version(cluster, tmp_path, "churn-b", model_file)
    names = [f"md-{i}" for i in range(10)]
    for name in names:
        cluster.create("modeldeployments", model_deployment(name, "churn-a"))
    for resource in ("deployments", "services", "poddisruptionbudgets"):
        api.call(
            lambda resource=resource: api.faults.add(
                Fault(
                    kind=500,
                    verbs=frozenset({"create", "patch"}),
                    resource=resource,
                    rate=0.1,
                    duration=15,
                )
            )
        )
    for name in names:  # back and forth while one write in ten fails
        cluster.patch("modeldeployments", name, {"spec": {"modelVersion": "churn-b"}})
        cluster.patch("modeldeployments", name, {"spec": {"modelVersion": "churn-a"}})
    for name in names:
        wait_for(
            lambda name=name: served_version(cluster, name) == "churn-a" and settled(cluster, name),
            timeout=120,
            what=f"{name} settled on a",
        )


def test_a_verification_job_made_by_someone_else_is_not_trusted(
    api, cluster, operator, model_file, tmp_path
):
    # Anyone with Job rights makes a Job of the expected name that reports success...
    ok, message = model_file.verification_message(tmp_path)
    assert ok and json.loads(message.splitlines()[-1])["ok"] is True
    cluster.set_job_outcome("churn-v1-verify", succeed=True, message=message)
    cluster.batch.create_namespaced_job(
        NAMESPACE,
        {
            "metadata": {"name": "churn-v1-verify"},
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "verify", "image": "x"}],
                    }
                }
            },
        },
    )
    wait_for(
        lambda: cluster.batch.read_namespaced_job("churn-v1-verify", NAMESPACE).status.succeeded,
        what="the foreign Job succeeded",
    )
    # ...before the ModelVersion exists: it is never marked Ready by that Job.
    verified_version(cluster, tmp_path, "churn-v1", model_file)
    wait_for(
        lambda: (
            cluster.condition("modelversions", "churn-v1", "Verified")
            == ("Unknown", "VerificationJobNotOwned")
        ),
        what="the Job refused",
    )
    assert cluster.status("modelversions", "churn-v1")["phase"] == "Verifying"
    assert "VerificationJobNotOwned" in {e.reason for e in cluster.events_for("churn-v1")}

    # Once that Job is gone, the operator's own Job verifies the version.
    cluster.batch.delete_namespaced_job(
        "churn-v1-verify", NAMESPACE, propagation_policy="Background"
    )
    wait_for(
        lambda: cluster.status("modelversions", "churn-v1").get("phase") == "Ready",
        timeout=90,
        what="verified by its own Job",
    )


def test_a_drift_policy_says_whether_its_target_exists(cluster, operator, model_file, tmp_path):
    cluster.create(
        "driftpolicies",
        {
            "apiVersion": "driftline.io/v1alpha1",
            "kind": "DriftPolicy",
            "metadata": {"name": "churn-drift"},
            "spec": {"targetRef": {"kind": "ModelDeployment", "name": "churn"}},
        },
    )
    wait_for(
        lambda: (
            cluster.condition("driftpolicies", "churn-drift", "Ready")
            == ("False", "TargetNotFound")
        ),
        what="TargetNotFound",
    )
    assert cluster.status("driftpolicies", "churn-drift")["observedGeneration"] == 1
    verified_version(cluster, tmp_path, "churn-v1", model_file)
    cluster.create("modeldeployments", model_deployment("churn", "churn-v1"))
    wait_for(
        lambda: (
            cluster.condition("driftpolicies", "churn-drift", "Ready")
            == ("True", "AllConditionsMet")
        ),
        what="Ready once the target exists",
    )
