"""Drift actions as pure decisions: retraining triggers recorded before their Job, exactly
one Job per trigger, the Job's result as a ModelVersion past the validation gate, failures
with a clear message, cooldown and concurrency, and rollback requests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from driftline.api import retraining as contract
from driftline.api.driftpolicy import DriftPolicy, Validation
from driftline.reconcile.drift_actions import decide_actions, validate
from driftline.reconcile.modelversion import JobObservation
from driftline.render import retraining as render

NOW = "2026-12-01T12:00:00Z"
LATER = "2026-12-01T12:10:00Z"
MUCH_LATER = "2026-12-01T14:00:00Z"
SHA = "a" * 64


def parent() -> dict[str, Any]:
    return {
        "apiVersion": "driftline.io/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": "churn-v1", "namespace": "ml"},
        "spec": {
            "model": "churn",
            "version": "1.0.0",
            "artifact": {"uri": "s3://models/churn-v1.onnx", "sha256": SHA},
            "reference": {"uri": "s3://models/churn-v1.profile.json", "sha256": SHA},
            "features": [{"name": "age", "type": "numeric"}],
            "metrics": {"accuracy": 0.91},
        },
    }


def policy_body(status: dict[str, Any] | None = None, **retraining: Any) -> dict[str, Any]:
    return {
        "apiVersion": "driftline.io/v1alpha1",
        "kind": "DriftPolicy",
        "metadata": {"name": "churn-drift", "namespace": "ml", "uid": "dp-uid", "generation": 1},
        "spec": {
            "targetRef": {"name": "churn"},
            "window": {"intervalSeconds": 60},
            "hysteresis": {"consecutiveWindows": 1},
            "actions": [
                {"severity": "Low", "action": "Alert"},
                {"severity": "Medium", "action": "Retrain"},
                {"severity": "High", "action": "Rollback"},
            ],
            "retraining": {
                "outputUri": "s3://models/retrained/",
                "cooldownSeconds": 3600,
                "jobTemplate": {
                    "template": {
                        "spec": {
                            "containers": [
                                {
                                    "name": "train",
                                    "image": "trainer:1",
                                    "env": [{"name": "X", "value": "1"}],
                                }
                            ]
                        }
                    }
                },
                **retraining,
            },
        },
        "status": status or {},
    }


def drifted_status(severity: str = "Medium", at: str = NOW) -> dict[str, Any]:
    return {
        "pods": {
            "churn-stable-0": {
                "state": "Evaluating",
                "evaluation": {
                    "time": at,
                    "samples": 500,
                    "drifted": True,
                    "severity": severity,
                    "features": [{"name": "age", "test": "KolmogorovSmirnov", "drifted": True}],
                },
                "consecutiveDrifted": 2,
                "modelVersion": "churn-v1",
            }
        },
        "severity": severity,
        "conditions": [
            {
                "type": "Drifted",
                "status": "True",
                "reason": "FeaturesDrifted",
                "message": f"severity {severity}",
                "lastTransitionTime": at,
            }
        ],
    }


def decide(body: dict[str, Any], now: str = NOW, jobs=None, versions=None):
    policy = DriftPolicy.model_validate(body)
    return decide_actions(
        body,
        policy,
        dict(body["status"]),
        versions={"churn-v1": parent()} if versions is None else versions,
        jobs=jobs or {},
        now=now,
    )


def step(body: dict[str, Any], decision) -> dict[str, Any]:
    """The policy as the API holds it after the decision's status was written."""
    return {**body, "status": decision.status}


RESULT = {
    "artifact": {
        "uri": "s3://models/retrained/churn-drift-retrain-1/model.onnx",
        "sha256": "b" * 64,
    },
    "reference": {
        "uri": "s3://models/retrained/churn-drift-retrain-1/profile.json",
        "sha256": "c" * 64,
    },
    "metrics": {"accuracy": 0.93},
}


def test_a_trigger_is_recorded_before_its_job_and_the_job_made_once():
    body = policy_body(drifted_status())
    first = decide(body)
    (run,) = first.status["retrainings"]
    assert (run["phase"], run["job"], run["parent"]) == (
        "Pending",
        "churn-drift-retrain-1",
        "churn-v1",
    )
    assert first.create_jobs == []  # recorded only
    assert [e.reason for e in first.events] == ["RetrainingTriggered"]
    # A second decision from the same read (another replica, a retry) records the same.
    assert decide(body).status["retrainings"] == first.status["retrainings"]

    body = step(body, first)
    second = decide(body)
    (job,) = second.create_jobs
    assert job["metadata"]["name"] == "churn-drift-retrain-1"
    assert second.status["retrainings"][0]["phase"] == "Running"
    body = step(body, second)
    # The Job exists: never made again, however often it is decided.
    for _ in range(3):
        again = decide(body, jobs={"churn-drift-retrain-1": JobObservation("Running")})
        assert again.create_jobs == []
        assert again.status["retrainings"][0]["phase"] == "Running"
        assert again.status["retrainingCount"] == 1


def test_the_job_is_told_the_contract():
    body = policy_body(drifted_status())
    body = step(body, decide(body))
    (job,) = decide(body).create_jobs
    template = job["spec"]["template"]
    container = template["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["X"] == "1"  # the user's own variables stay
    assert env[contract.ENV_SERVING_VERSION] == "churn-v1"
    assert env[contract.ENV_REFERENCE_URI] == "s3://models/churn-v1.profile.json"
    assert env[contract.ENV_OUTPUT_URI] == "s3://models/retrained/churn-drift-retrain-1/"
    assert env[contract.ENV_TRIGGER] == "churn-drift-1"
    assert {
        "name": render.CONTEXT_VOLUME,
        "mountPath": contract.CONTEXT_DIRECTORY,
        "readOnly": True,
    } in container["volumeMounts"]
    context = json.loads(template["metadata"]["annotations"][contract.CONTEXT_ANNOTATION])
    assert context["drift"]["features"] == ["age"] and context["metrics"] == {"accuracy": 0.91}
    assert job["spec"]["activeDeadlineSeconds"] == 6 * 3600
    assert job["metadata"]["ownerReferences"][0]["uid"] == "dp-uid"
    assert template["spec"]["restartPolicy"] == "Never"


def running(body: dict[str, Any]) -> dict[str, Any]:
    body = step(body, decide(body))
    return step(body, decide(body))


def finish(body, message: str | None, state: str = "Succeeded", reason: str | None = None):
    return decide(
        body, LATER, jobs={"churn-drift-retrain-1": JobObservation(state, message, reason)}
    )


def test_a_successful_job_becomes_a_model_version_with_lineage():
    done = finish(running(policy_body(drifted_status())), json.dumps(RESULT))
    (version,) = done.create_versions
    assert version["metadata"]["name"] == "churn-drift-retrained-1"
    assert version["metadata"]["labels"][render.VALIDATION_LABEL] == "passed"
    assert version["spec"]["artifact"]["sha256"] == "b" * 64
    assert version["spec"]["lineage"] == {
        "parent": "churn-v1",
        "trainingJob": "churn-drift-retrain-1",
        "driftPolicy": "churn-drift",
        "driftReport": f"severity Medium; features age; at {'2026-12-01T12:00:00+00:00'}",
    }
    run = done.status["retrainings"][0]
    assert (run["phase"], run["metrics"]) == ("Succeeded", {"accuracy": 0.93})
    assert done.events[-1].reason == "RetrainingSucceeded"
    assert "accuracy 0.93" in done.events[-1].message


def test_a_version_below_the_gate_is_created_rejected_with_its_numbers():
    body = policy_body(drifted_status(), validation={"minMetrics": {"accuracy": 0.95}})
    done = finish(running(body), json.dumps(RESULT))
    (version,) = done.create_versions
    assert version["metadata"]["labels"][render.VALIDATION_LABEL] == "rejected"
    annotation = version["metadata"]["annotations"][render.VALIDATION_ANNOTATION]
    assert annotation == "accuracy 0.93 is below the minimum 0.95"
    run = done.status["retrainings"][0]
    assert run["phase"] == "Rejected" and "never rolled out" in run["message"]
    assert done.events[-1].type == "Warning"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (None, "wrote no termination message"),
        ("not json", "is not JSON"),
        (json.dumps({"artifact": {"uri": "s3://x/m.onnx"}}), "artifact.sha256"),
    ],
)
def test_garbage_or_no_result_is_a_clear_failure_and_no_model_version(message, expected):
    done = finish(running(policy_body(drifted_status())), message)
    assert done.create_versions == []
    run = done.status["retrainings"][0]
    assert run["phase"] == "Failed" and expected in run["message"]
    assert done.events[-1].reason == "RetrainingFailed"


def test_a_failed_job_says_where_its_logs_are():
    done = finish(running(policy_body(drifted_status())), None, "Failed", "BackoffLimitExceeded")
    message = done.status["retrainings"][0]["message"]
    assert "BackoffLimitExceeded" in message
    assert "kubectl -n ml logs job/churn-drift-retrain-1" in message


def test_a_job_of_that_name_we_did_not_make_is_never_trusted():
    done = finish(running(policy_body(drifted_status())), json.dumps(RESULT), "NotOwned")
    assert done.create_versions == [] and done.status["retrainings"][0]["phase"] == "Failed"


def test_one_retraining_per_episode_and_the_cooldown_between_episodes():
    body = running(policy_body(drifted_status()))
    body = step(body, finish(body, json.dumps(RESULT)))
    # the same episode of drift: nothing new
    assert decide(body, LATER).status["retrainingCount"] == 1
    # a new episode within the cooldown: held, and looked at again when it ends
    body["status"] = {**body["status"], **drifted_status(at=LATER)}
    held = decide(body, LATER)
    assert held.status["retrainingCount"] == 1
    assert held.requeue_after == pytest.approx(3000)
    # after the cooldown the new episode retrains
    body["status"] = {**body["status"], **drifted_status(at=MUCH_LATER)}
    assert decide(body, MUCH_LATER).status["retrainingCount"] == 2


def test_concurrent_jobs_are_limited():
    body = running(policy_body(drifted_status(), cooldownSeconds=0))
    body["status"] = {**body["status"], **drifted_status(at=LATER)}
    held = decide(body, LATER, jobs={"churn-drift-retrain-1": JobObservation("Running")})
    assert held.status["retrainingCount"] == 1


def test_low_drift_neither_retrains_nor_rolls_back():
    decision = decide(policy_body(drifted_status("Low")))
    assert decision.status.get("retrainings") is None and decision.status.get("rollback") is None


def test_high_drift_asks_once_for_a_rollback_of_the_drifted_version():
    body = policy_body(drifted_status("High"))
    first = decide(body)
    assert first.status["rollback"]["version"] == "churn-v1"
    assert "RollbackRequested" in [e.reason for e in first.events]
    again = decide(step(body, first), LATER)
    assert "RollbackRequested" not in [e.reason for e in again.events]


def test_a_stale_report_triggers_nothing():
    body = policy_body(drifted_status(at=NOW))
    assert decide(body, MUCH_LATER).status.get("retrainings") is None


def test_validation_rules():
    gate = Validation(min_metrics={"accuracy": 0.9}, max_drop_from_parent={"auc": 0.02})
    assert validate(gate, {"accuracy": 0.92, "auc": 0.80}, {"auc": 0.81}) is None
    assert validate(gate, {"auc": 0.80}, {}) == "accuracy not reported (minimum 0.9)"
    assert validate(gate, {"accuracy": 0.92, "auc": 0.75}, {"auc": 0.81}) == (
        "auc 0.75 is 0.06 below the parent's 0.81, more than the margin 0.02"
    )
