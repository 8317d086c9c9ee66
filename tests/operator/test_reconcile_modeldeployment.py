"""ModelDeployment decisions: track plan and status from observed Deployments."""

from __future__ import annotations

import pytest

from driftline.api.modeldeployment import ModelDeploymentSpec
from driftline.api.modelversion import ModelVersion
from driftline.reconcile.modeldeployment import (
    ApplyOutcome,
    compute_status,
    plan_tracks,
    status_changed,
    users_of,
)

NOW = "2026-11-23T12:00:00Z"
LATER = "2026-11-23T12:01:00Z"


def model_version(name, phase="Ready"):
    return ModelVersion.model_validate(
        {
            "metadata": {"name": name, "namespace": "ml"},
            "spec": {
                "model": "churn",
                "version": name,
                "artifact": {"uri": "s3://models/m", "sha256": "a" * 64},
            },
            "status": {"phase": phase, "digest": "a" * 64} if phase else None,
        }
    )


def md_body(version="v2", status=None, replicas=2, paused=False):
    return {
        "metadata": {"name": "churn", "namespace": "ml", "generation": 3},
        "spec": {"modelVersion": version, "replicas": replicas, "paused": paused},
        "status": status or {},
    }


def deployment(
    version, desired=2, ready=2, available=None, updated=None, total=None, observed=4, generation=4
):
    available = ready if available is None else available
    return {
        "metadata": {
            "name": "churn-stable",
            "generation": generation,
            "labels": {"driftline.io/model-version": version[:63]},
            "annotations": {"driftline.io/model-version": version},
        },
        "spec": {"replicas": desired},
        "status": {
            "observedGeneration": observed,
            "replicas": desired if total is None else total,
            "readyReplicas": ready,
            "availableReplicas": available,
            "updatedReplicas": desired if updated is None else updated,
        },
    }


def conditions_of(status):
    status = status.wire() if hasattr(status, "wire") else status
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def spec(**fields):
    return ModelDeploymentSpec.model_validate({"modelVersion": "v2", "replicas": 2, **fields})


def test_plan_moves_stable_once_target_is_servable():
    plan = plan_tracks(spec(), model_version("v2"), model_version("v1"))
    assert [(t.track, t.model_version.metadata["name"], t.replicas) for t in plan.tracks] == [
        ("stable", "v2", 2)
    ]
    assert plan.waiting is None
    deprecated = plan_tracks(spec(), model_version("v2", "Deprecated"), None)
    assert deprecated.tracks[0].model_version.metadata["name"] == "v2"


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        (None, "ModelVersionNotFound"),
        (model_version("v2", "Verifying"), "ModelVersionVerifying"),
        (model_version("v2", None), "ModelVersionVerifying"),
        (model_version("v2", "Failed"), "ModelVersionFailed"),
        (model_version("v2", "Retired"), "ModelVersionRetired"),
    ],
)
def test_plan_keeps_current_stable_while_target_is_not_servable(target, reason):
    plan = plan_tracks(spec(), target, model_version("v1"))
    assert [t.model_version.metadata["name"] for t in plan.tracks] == ["v1"]
    assert plan.waiting == reason
    nothing = plan_tracks(spec(), target, None)
    assert nothing.tracks == [] and nothing.waiting == reason


def test_autoscaling_leaves_replicas_to_the_hpa():
    autoscaled = ModelDeploymentSpec.model_validate(
        {"modelVersion": "v2", "autoscaling": {"maxReplicas": 3, "targetCPUUtilization": 50}}
    )
    assert plan_tracks(autoscaled, model_version("v2"), None).tracks[0].replicas is None


def test_healthy_when_all_replicas_serve_the_desired_version():
    decision = compute_status(
        md_body(),
        target=model_version("v2"),
        deployments={"stable": deployment("v2")},
        apply=ApplyOutcome(True),
        url="http://churn.ml.svc.cluster.local/v2/models/churn",
        now=NOW,
    )
    status = decision.status.wire()
    assert conditions_of(status) == {
        "Reconciled": ("True", "ObjectsApplied"),
        "Available": ("True", "MinimumReplicasAvailable"),
        "UpToDate": ("True", "DesiredVersionServed"),
        "Progressing": ("False", "RolloutComplete"),
        "Ready": ("True", "AllConditionsMet"),
        # Every field set is acted on (analysis gates would be NotImplemented, issue 15).
        "Supported": ("True", "AllFieldsSupported"),
    }
    assert status["phase"] == "Healthy"
    assert status["observedGeneration"] == 3
    assert status["stableVersion"] == "v2"
    assert status["tracks"]["stable"] == {
        "version": "v2",
        "deployment": "churn-stable",
        "replicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 2,
    }
    assert status["replicas"] == 2
    assert (
        status["selector"]
        == "app.kubernetes.io/component=model-server,app.kubernetes.io/instance=churn"
    )
    assert status["url"].endswith("/v2/models/churn")
    # One Event per status write, headed by Ready's reason and listing every transition.
    (event,) = decision.events
    assert (event.type, event.reason) == ("Normal", "AllConditionsMet")
    assert "Progressing=False (RolloutComplete)" in event.message
    assert "Reconciled=True (ObjectsApplied)" in event.message


def test_rolling_out_while_replicas_are_not_ready():
    decision = compute_status(
        md_body(),
        target=model_version("v2"),
        deployments={"stable": deployment("v2", ready=1, updated=1, total=3)},
        apply=ApplyOutcome(True),
        url=None,
        now=NOW,
    )
    conditions = conditions_of(decision.status)
    assert conditions["Available"] == ("True", "MinimumReplicasAvailable")
    assert conditions["Progressing"] == ("True", "RollingOut")
    assert conditions["Ready"] == ("False", "RollingOut")
    assert decision.status.wire()["phase"] == "Progressing"


def test_stale_observed_generation_is_not_rolled_out():
    decision = compute_status(
        md_body(),
        target=model_version("v2"),
        deployments={"stable": deployment("v2", observed=3, generation=4)},
        apply=ApplyOutcome(True),
        url=None,
        now=NOW,
    )
    assert conditions_of(decision.status)["UpToDate"] == ("False", "RollingOut")


def test_waiting_for_verification_keeps_serving_the_old_version():
    decision = compute_status(
        md_body(),
        target=model_version("v2", "Verifying"),
        deployments={"stable": deployment("v1")},
        apply=ApplyOutcome(True),
        url=None,
        now=NOW,
    )
    conditions = conditions_of(decision.status)
    assert conditions["Available"] == ("True", "MinimumReplicasAvailable")
    assert conditions["Progressing"] == ("True", "ModelVersionVerifying")
    assert conditions["Ready"] == ("False", "ModelVersionVerifying")
    assert decision.status.wire()["stableVersion"] == "v1"
    assert decision.status.wire()["phase"] == "Progressing"


def test_failed_target_is_degraded():
    decision = compute_status(
        md_body(),
        target=model_version("v2", "Failed"),
        deployments={},
        apply=ApplyOutcome(True),
        url=None,
        now=NOW,
    )
    conditions = conditions_of(decision.status)
    assert conditions["Available"] == ("False", "NoServableVersion")
    assert conditions["Progressing"] == ("False", "ModelVersionFailed")
    assert decision.status.wire()["phase"] == "Degraded"
    (event,) = decision.events
    assert (event.type, event.reason) == ("Warning", "NoServableVersion")
    assert "Progressing=False (ModelVersionFailed)" in event.message


def test_scaled_to_zero_and_no_ready_replicas():
    zero = compute_status(
        md_body(replicas=0),
        target=model_version("v2"),
        deployments={"stable": deployment("v2", desired=0, ready=0)},
        apply=ApplyOutcome(True),
        url=None,
        now=NOW,
    )
    assert conditions_of(zero.status)["Available"] == ("False", "ScaledToZero")
    starting = compute_status(
        md_body(),
        target=model_version("v2"),
        deployments={"stable": deployment("v2", ready=0)},
        apply=ApplyOutcome(True),
        url=None,
        now=NOW,
    )
    assert conditions_of(starting.status)["Available"] == ("False", "NoReplicasAvailable")


def test_apply_failure_is_reported_and_kept_until_the_next_apply():
    failed = compute_status(
        md_body(),
        target=model_version("v2"),
        deployments={"stable": deployment("v2")},
        apply=ApplyOutcome(False, "InvalidObject", "Deployment churn-stable: 422 ..."),
        url=None,
        now=NOW,
    )
    assert conditions_of(failed.status)["Ready"] == ("False", "InvalidObject")
    # A readiness update (apply None) keeps the last Reconciled condition.
    refreshed = compute_status(
        md_body(status=failed.status.wire()),
        target=model_version("v2"),
        deployments={"stable": deployment("v2")},
        apply=None,
        url=None,
        now=LATER,
    )
    assert conditions_of(refreshed.status)["Reconciled"] == ("False", "InvalidObject")
    assert refreshed.events == []


def test_paused_phase_and_idempotence():
    first = compute_status(
        md_body(paused=True),
        target=model_version("v2"),
        deployments={"stable": deployment("v2")},
        apply=ApplyOutcome(True),
        url=None,
        now=NOW,
    )
    assert first.status.wire()["phase"] == "Paused"
    again = compute_status(
        md_body(status=first.status.wire(), paused=True),
        target=model_version("v2"),
        deployments={"stable": deployment("v2")},
        apply=ApplyOutcome(True),
        url=None,
        now=LATER,
    )
    # Nothing changed: same status (transition times kept), no events, nothing to write.
    assert again.status == first.status
    assert again.events == []
    assert not status_changed({**first.status.wire(), "kopf": {"x": 1}}, again.status)


def test_users_of():
    bodies = [
        {"metadata": {"name": "a"}, "spec": {"modelVersion": "v2"}, "status": {}},
        {
            "metadata": {"name": "b"},
            "spec": {"modelVersion": "v3"},
            "status": {"stableVersion": "v2"},
        },
        {
            "metadata": {"name": "c"},
            "spec": {"modelVersion": "v3"},
            "status": {"stableVersion": "v3"},
        },
    ]
    assert users_of("v2", bodies) == ["a", "b"]
    assert users_of("v9", bodies) == []


@pytest.mark.parametrize(
    "model",
    ["ModelDeploymentStatus", "ModelVersionStatus", "DriftPolicyStatus"],
)
def test_a_status_field_nobody_declared_fails(model):
    from pydantic import ValidationError

    import driftline.api as api

    with pytest.raises(ValidationError, match="stableVersoin"):
        getattr(api, model).model_validate({"stableVersoin": "v2"})


def test_decisions_write_only_declared_fields():
    # A decision computed from a status that carries an undeclared field refuses it, rather
    # than letting the API server drop it silently (as it prunes undeclared status fields).
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="canaryWieght"):
        compute_status(
            md_body(status={"canaryWieght": 10}),
            target=model_version("v2"),
            deployments={"stable": deployment("v2")},
            apply=ApplyOutcome(True),
            url=None,
            now=NOW,
        )
