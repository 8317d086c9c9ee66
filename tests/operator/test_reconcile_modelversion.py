"""The ModelVersion lifecycle as a pure function of the object and its verification Job."""

from __future__ import annotations

import json

import pytest

from driftline.conditions import find_condition
from driftline.reconcile.modelversion import (
    JobObservation,
    decide_model_version,
    deletion_blockers,
    is_servable,
    lifecycle_phase,
    observe_job,
    parse_verification_message,
    termination_message,
)

SHA = "ab" * 32
NOW = "2026-11-23T12:00:00Z"
LATER = "2026-11-23T12:05:00Z"


def body(status=None, labels=None):
    obj = {
        "apiVersion": "driftline.io/v1alpha1",
        "kind": "ModelVersion",
        "metadata": {"name": "m1", "namespace": "ml", "generation": 1, "labels": labels or {}},
        "spec": {
            "model": "m",
            "version": "1",
            "artifact": {"uri": "s3://models/m.onnx", "sha256": SHA},
        },
    }
    if status is not None:
        obj["status"] = status
    return obj


def ok_message(**extra):
    return json.dumps(
        {
            "ok": True,
            "reason": "Verified",
            "sha256": SHA,
            "sizeBytes": 1234,
            "signature": {
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
                "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
            },
            **extra,
        }
    )


def test_new_version_creates_the_job_and_is_verifying():
    decision = decide_model_version(body(), JobObservation("Missing"), "m1-verify", now=NOW)
    assert decision.create_job is True
    status = decision.status
    assert status["phase"] == "Verifying"
    assert status["verificationJob"] == "m1-verify"
    assert status["observedGeneration"] == 1
    ready = find_condition(status["conditions"], "Ready")
    assert ready["status"] == "False"
    assert find_condition(status["conditions"], "Verified")["status"] == "Unknown"
    assert [e.reason for e in decision.events] == ["Verifying"]


def test_running_job_is_not_created_again():
    previous = decide_model_version(body(), JobObservation("Missing"), "m1-verify", now=NOW).status
    decision = decide_model_version(
        body(previous), JobObservation("Running"), "m1-verify", now=LATER
    )
    assert decision.create_job is False
    assert decision.status["phase"] == "Verifying"
    assert decision.events == []
    # Unchanged conditions keep their transition time.
    assert find_condition(decision.status["conditions"], "Verified")["lastTransitionTime"] == NOW


def test_success_records_digest_size_and_signature():
    verifying = decide_model_version(body(), JobObservation("Missing"), "m1-verify", now=NOW).status
    decision = decide_model_version(
        body(verifying), JobObservation("Succeeded", ok_message()), "m1-verify", now=LATER
    )
    status = decision.status
    assert status["phase"] == "Ready"
    assert status["digest"] == SHA
    assert status["sizeBytes"] == 1234
    assert status["signature"]["inputs"][0]["name"] == "x"
    assert status["verifiedAt"] == LATER
    assert find_condition(status["conditions"], "Ready")["status"] == "True"
    assert [(e.type, e.reason) for e in decision.events] == [("Normal", "Verified")]
    assert is_servable(status)


@pytest.mark.parametrize(
    ("observation", "reason"),
    [
        (
            JobObservation(
                "Failed",
                json.dumps({"ok": False, "reason": "DigestMismatch", "message": "sha256 mismatch"}),
            ),
            "DigestMismatch",
        ),
        (
            JobObservation(
                "Failed", json.dumps({"ok": False, "reason": "SignatureMismatch", "message": "x"})
            ),
            "SignatureMismatch",
        ),
        (JobObservation("Failed", None, "DeadlineExceeded"), "DeadlineExceeded"),
        (
            JobObservation("Failed", "Traceback: boom", "BackoffLimitExceeded"),
            "BackoffLimitExceeded",
        ),
        (JobObservation("Succeeded", None), "NoVerificationResult"),
        # A signature the CRD schema would refuse must not block the status write.
        (
            JobObservation("Succeeded", ok_message(signature={"inputs": [], "outputs": []})),
            "InvalidVerificationResult",
        ),
        # A success whose digest differs from the spec is never trusted.
        (JobObservation("Succeeded", ok_message(sha256="cd" * 32)), "DigestMismatch"),
    ],
)
def test_failures_carry_a_precise_reason(observation, reason):
    verifying = decide_model_version(body(), JobObservation("Missing"), "m1-verify", now=NOW).status
    decision = decide_model_version(body(verifying), observation, "m1-verify", now=LATER)
    assert decision.status["phase"] == "Failed"
    verified = find_condition(decision.status["conditions"], "Verified")
    assert (verified["status"], verified["reason"]) == ("False", reason)
    assert find_condition(decision.status["conditions"], "Ready")["reason"] == reason
    assert decision.events[0].type == "Warning"
    assert "digest" not in decision.status
    assert not is_servable(decision.status)


def test_failed_stays_failed_without_a_new_job():
    failed = {"phase": "Failed", "message": "bad", "conditions": []}
    decision = decide_model_version(body(failed), JobObservation("Missing"), "m1-verify", now=NOW)
    assert decision.create_job is False
    assert decision.status["phase"] == "Failed"


@pytest.mark.parametrize(
    ("label", "phase", "servable"),
    [("deprecated", "Deprecated", True), ("Retired", "Retired", False), ("", "Ready", True)],
)
def test_lifecycle_label_moves_a_verified_version(label, phase, servable):
    ready = {"phase": "Ready", "digest": SHA, "conditions": []}
    labels = {"driftline.io/lifecycle": label} if label else {}
    decision = decide_model_version(
        body(ready, labels), JobObservation("Missing"), "m1-verify", now=NOW
    )
    assert decision.create_job is False
    assert decision.status["phase"] == phase
    assert is_servable(decision.status) is servable


def test_retirement_is_reversible():
    retired = {"phase": "Retired", "digest": SHA, "conditions": []}
    decision = decide_model_version(body(retired), JobObservation("Missing"), "j", now=NOW)
    assert decision.status["phase"] == "Ready"
    assert decision.events[0].reason == "Verified"


def test_lifecycle_label_waits_for_verification():
    decision = decide_model_version(
        body(None, {"driftline.io/lifecycle": "retired"}), JobObservation("Missing"), "j", now=NOW
    )
    assert decision.status["phase"] == "Verifying"
    assert lifecycle_phase({"driftline.io/lifecycle": "unknown"}) == "Ready"


def test_job_observation():
    assert observe_job(None, []).state == "Missing"
    running = {"status": {"active": 1}}
    assert observe_job(running, []).state == "Running"
    complete = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    pod = {
        "status": {
            "containerStatuses": [
                {
                    "name": "verify",
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "message": '{"ok":true}',
                            "finishedAt": "2026-01-01T00:00:01Z",
                        }
                    },
                }
            ]
        }
    }
    observed = observe_job(complete, [pod])
    assert (observed.state, observed.message) == ("Succeeded", '{"ok":true}')
    failed = {
        "status": {
            "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]
        }
    }
    assert observe_job(failed, []).failure_reason == "BackoffLimitExceeded"


def test_newest_termination_message_wins():
    def pod(message, finished):
        return {
            "status": {
                "containerStatuses": [
                    {
                        "name": "verify",
                        "state": {"terminated": {"message": message, "finishedAt": finished}},
                    }
                ]
            }
        }

    assert (
        termination_message(
            [pod("new", "2026-01-01T00:00:09Z"), pod("old", "2026-01-01T00:00:01Z")]
        )
        == "new"
    )
    assert termination_message([]) is None


def test_parse_verification_message():
    assert parse_verification_message(None) is None
    assert parse_verification_message("not json") is None
    assert parse_verification_message('{"no": "ok"}') is None
    # FallbackToLogsOnError puts the log tail there; the JSON is its last line.
    parsed = parse_verification_message("some log line\n" + ok_message())
    assert parsed is not None and parsed.ok and parsed.size_bytes == 1234


def test_deletion_blockers():
    assert deletion_blockers("m1", []) is None
    assert "churn, fraud" in deletion_blockers("m1", ["fraud", "churn"])
