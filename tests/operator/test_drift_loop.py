"""Closing the loop with the real operator on the local Kubernetes API: confirmed drift
triggers exactly one retraining Job, whatever the restarts (the operator is SIGKILLed
between the trigger and the Job's creation, and again after), and the Job's result
becomes a verified ModelVersion with lineage; a Job that writes garbage leaves a clear
status and no ModelVersion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from operator_harness import (
    NAMESPACE,
    Cluster,
    ModelFile,
    OperatorProcess,
    model_deployment,
    verified_version,
    wait_for,
)

from driftline.apiserver.faults import Fault
from driftline.conditions import now_rfc3339
from driftline.render.labels import server_selector, track_selector
from driftline.render.retraining import TRIGGER_LABEL

POD = "churn-stable-0"
JOB = "churn-drift-retrain-1"
RETRAINED = "churn-drift-retrained-1"


def policy() -> dict[str, Any]:
    return {
        "apiVersion": "driftline.io/v1alpha1",
        "kind": "DriftPolicy",
        "metadata": {"name": "churn-drift"},
        "spec": {
            "targetRef": {"name": "churn"},
            "window": {"intervalSeconds": 30},
            "hysteresis": {"consecutiveWindows": 1},
            "actions": [
                {"severity": "Low", "action": "Alert"},
                {"severity": "Medium", "action": "Retrain"},
            ],
            "retraining": {
                "outputUri": "s3://models/retrained/",
                "validation": {"minMetrics": {"accuracy": 0.8}},
                "jobTemplate": {
                    "backoffLimit": 0,
                    "template": {"spec": {"containers": [{"name": "train", "image": "trainer:1"}]}},
                },
            },
        },
    }


def drifted_report() -> dict[str, Any]:
    """What the serving pod's drift sidecar writes once drift is confirmed."""
    return {
        "state": "Evaluating",
        "evaluation": {
            "time": now_rfc3339(),
            "samples": 800,
            "drifted": True,
            "severity": "Medium",
            "features": [{"name": "age", "test": "KolmogorovSmirnov", "drifted": True}],
        },
        "consecutiveDrifted": 1,
        "modelVersion": "churn-v1",
    }


def result(model: ModelFile, accuracy: float) -> str:
    return json.dumps(
        {
            "artifact": {"uri": f"s3://models/retrained/{JOB}/model.onnx", "sha256": model.sha256},
            "reference": {"uri": f"s3://models/retrained/{JOB}/profile.json", "sha256": "c" * 64},
            "metrics": {"accuracy": accuracy},
        }
    )


def retraining_jobs(cluster: Cluster) -> list[Any]:
    return [
        job
        for job in cluster.batch.list_namespaced_job(NAMESPACE).items
        if (job.metadata.labels or {}).get(TRIGGER_LABEL)
    ]


def runs(cluster: Cluster) -> list[dict[str, Any]]:
    return cluster.status("driftpolicies", "churn-drift").get("retrainings") or []


FOLLOWING = {
    "versionSelector": {"model": "churn"},
    "strategy": {
        "type": "Canary",
        "canary": {"steps": [{"weight": 50}, {"weight": 100, "analysis": False}]},
        # the drift gate: the new version's own pods must report no drift
        "analysis": {"intervalSeconds": 1, "count": 2},
    },
}


def serving_and_drifting(
    cluster: Cluster, tmp_path: Path, model_file: ModelFile, *, follow: bool = False
) -> None:
    verified_version(cluster, tmp_path, "churn-v1", model_file)
    if follow:
        wait_for(lambda: cluster.status("modelversions", "churn-v1").get("phase") == "Ready")
        body = model_deployment("churn", "churn-v1", replicas=1, **FOLLOWING)
        del body["spec"]["modelVersion"]
    else:
        body = model_deployment("churn", "churn-v1", replicas=1)
    cluster.create("modeldeployments", body)
    wait_for(
        lambda: cluster.status("modeldeployments", "churn").get("phase") == "Healthy",
        what="serving churn-v1",
    )
    cluster.pod_object(POD, server_selector("churn"))
    cluster.create("driftpolicies", policy())
    cluster.report_drift("churn-drift", {POD: drifted_report()})


def test_drift_retrains_exactly_once_through_restarts_into_a_verified_version(
    api, cluster: Cluster, model_dir: Path, model_file: ModelFile, tmp_path: Path
):
    retrained = ModelFile(model_dir, 11)
    operator = OperatorProcess(api.kubeconfig_path, tmp_path)
    operator.start()
    try:
        # The Job cannot be created yet: the trigger is recorded, the Job is not there.
        refused = api.call(
            lambda: api.faults.add(Fault(kind=500, verbs=frozenset({"create"}), name=JOB))
        )
        cluster.set_job_outcome(JOB, succeed=True, message=result(retrained, 0.93), delay=2.0)
        ok, verification = retrained.verification_message(tmp_path)
        cluster.set_job_outcome(f"{RETRAINED}-verify", succeed=ok, message=verification)
        serving_and_drifting(cluster, tmp_path, model_file, follow=True)
        # recorded in status, then announced: the Event follows the status write, so a
        # kill between the two would lose it (Events are best effort), and the count of
        # RetrainingTriggered below is about duplicates after the restarts
        wait_for(
            lambda: (
                [r["phase"] for r in runs(cluster)] == ["Pending"]
                and "RetrainingTriggered" in [e.reason for e in cluster.events_for("churn-drift")]
            ),
            what="the trigger recorded and its Event",
        )
        drifted = next(
            c
            for c in cluster.status("driftpolicies", "churn-drift")["conditions"]
            if c["type"] == "Drifted"
        )
        assert (drifted["status"], drifted["reason"]) == ("True", "FeaturesDrifted")
        assert retraining_jobs(cluster) == []
        operator.kill()  # between the trigger and the Job
        api.call(lambda: api.faults.remove(refused))
        operator.start()
        wait_for(lambda: len(retraining_jobs(cluster)) == 1, what="the Job")
        operator.kill()  # after the Job
        operator.start()
        wait_for(
            lambda: [r["phase"] for r in runs(cluster)] == ["Succeeded"],
            timeout=60,
            what="the retraining to succeed",
        )
        wait_for(
            lambda: cluster.status("modelversions", RETRAINED).get("phase") == "Ready",
            what="the retrained version verified",
        )
        # The following deployment starts a canary of it by itself; its pods report no
        # drift (as their sidecars would), the drift gate passes, it is promoted.
        wait_for(
            lambda: cluster.status("modeldeployments", "churn").get("canaryVersion") == RETRAINED,
            what="a canary of the retrained version",
        )
        cluster.pod_object("churn-canary-0", track_selector("churn", "canary"))
        healthy = drifted_report()
        healthy.update(modelVersion=RETRAINED, consecutiveDrifted=0)
        healthy["evaluation"].update(drifted=False, severity="None", features=[])

        def promoted() -> bool:
            healthy["evaluation"]["time"] = now_rfc3339()  # a sidecar reports every interval
            cluster.report_drift("churn-drift", {"churn-canary-0": healthy})
            status = cluster.status("modeldeployments", "churn")
            return status.get("stableVersion") == RETRAINED and not status.get("canaryVersion")

        wait_for(promoted, timeout=60, what="the retrained version promoted")
    finally:
        operator.stop()
    status = cluster.status("modeldeployments", "churn")
    gate = next(r for r in status["analysis"] if r["name"] == "step-0")["gates"][0]
    assert (gate["name"], gate["verdict"]) == ("drift", "Passed")
    assert status["selectedVersion"] == RETRAINED
    assert [job.metadata.name for job in retraining_jobs(cluster)] == [JOB]
    version = cluster.get("modelversions", RETRAINED)
    assert version is not None
    assert version["spec"]["lineage"]["parent"] == "churn-v1"
    assert version["spec"]["lineage"]["trainingJob"] == JOB
    assert version["spec"]["lineage"]["driftPolicy"] == "churn-drift"
    assert "severity Medium; features age" in version["spec"]["lineage"]["driftReport"]
    assert version["spec"]["metrics"] == {"accuracy": 0.93}
    reasons = [e.reason for e in cluster.events_for("churn-drift")]
    assert reasons.count("RetrainingTriggered") == 1
    assert "RetrainingSucceeded" in reasons


@pytest.mark.parametrize(
    ("message", "phase", "expected"),
    [
        ("garbage", "Failed", "is not JSON"),
        (None, "Rejected", "accuracy 0.5 is below the minimum 0.8"),
    ],
    ids=["garbage", "below-the-gate"],
)
def test_a_bad_result_leaves_a_clear_status(
    api, cluster, operator, model_dir, model_file, tmp_path, message, phase, expected
):
    retrained = ModelFile(model_dir, 12)
    cluster.set_job_outcome(JOB, succeed=True, message=message or result(retrained, 0.5))
    serving_and_drifting(cluster, tmp_path, model_file)
    wait_for(lambda: [r["phase"] for r in runs(cluster)] == [phase], timeout=60, what=phase)
    assert expected in runs(cluster)[0]["message"]
    assert (
        f'driftline_retraining_jobs_total{{namespace="{NAMESPACE}",outcome="{phase.lower()}",'
        'policy="churn-drift"} 1.0'
    ) in operator.metrics()
    version = cluster.get("modelversions", RETRAINED)
    if phase == "Failed":
        assert version is None
    else:
        assert version is not None
        assert version["metadata"]["labels"]["driftline.io/validation"] == "rejected"


def test_a_promoted_version_that_drifts_high_is_rolled_back(
    cluster: Cluster, operator, model_file: ModelFile, tmp_path: Path
):
    for name in ("churn-v1", "churn-v2"):
        verified_version(cluster, tmp_path, name, model_file)
        wait_for(lambda name=name: cluster.status("modelversions", name).get("phase") == "Ready")
    strategy = {
        "type": "Canary",
        "canary": {"steps": [{"weight": 50}, {"weight": 100}]},
        "analysis": {"driftGate": False},
    }
    cluster.create(
        "modeldeployments", model_deployment("churn", "churn-v1", replicas=2, strategy=strategy)
    )

    def healthy_on(version: str) -> bool:
        status = cluster.status("modeldeployments", "churn")
        return status.get("phase") == "Healthy" and status.get("stableVersion") == version

    wait_for(lambda: healthy_on("churn-v1"), what="serving churn-v1")
    cluster.patch("modeldeployments", "churn", {"spec": {"modelVersion": "churn-v2"}})
    wait_for(lambda: healthy_on("churn-v2"), timeout=60, what="churn-v2 promoted")

    body = policy()
    body["spec"]["actions"] = [{"severity": "High", "action": "Rollback"}]
    del body["spec"]["retraining"]
    cluster.pod_object(POD, server_selector("churn"))
    cluster.create("driftpolicies", body)
    report = drifted_report()
    report["evaluation"]["severity"] = "High"
    report["modelVersion"] = "churn-v2"
    cluster.report_drift("churn-drift", {POD: report})

    def rolled_back() -> bool:
        status = cluster.status("modeldeployments", "churn")
        history = status.get("history") or [{}]
        return (
            status.get("stableVersion") == "churn-v1"
            and status.get("rolledBackVersion") == "churn-v2"
            # the stable track has finished moving back
            and (history[0].get("version"), history[0].get("outcome")) == ("churn-v1", "Promoted")
        )

    wait_for(rolled_back, timeout=60, what="traffic back on churn-v1")
    status = cluster.status("modeldeployments", "churn")
    condition = next(c for c in status["conditions"] if c["type"] == "RolledBack")
    assert (condition["status"], condition["reason"]) == ("True", "DriftRollback")
    outcomes = [(r["version"], r["outcome"]) for r in status["history"]]
    assert outcomes[:3] == [
        ("churn-v1", "Promoted"),  # back on the stable track
        ("churn-v2", "RolledBack"),
        ("churn-v2", "Promoted"),
    ]
    assert status["drift"]["severity"] == "High" and status["drift"]["features"] == ["age"]
    stable = next(d for d in cluster.deployments() if d.metadata.name == "churn-stable")
    assert stable.metadata.annotations["driftline.io/model-version"] == "churn-v1"
    # The spec still names churn-v2 and nobody edited it; it is not served again.
    assert cluster.get("modeldeployments", "churn")["spec"]["modelVersion"] == "churn-v2"
    assert "RolledBack" in [e.reason for e in cluster.events_for("churn")]
    assert 'driftline_rollbacks_total{deployment="churn",namespace="ml"} 1.0' in operator.metrics()
