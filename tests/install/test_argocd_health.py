"""The Argo CD health checks in deploy/argocd/, run by a real Lua 5.1 runtime (lupa's,
the Lua version Argo CD embeds through gopher-lua), on statuses written by hand for each
rule and on statuses produced by the operator's own decision functions for the examples;
and the argocd-cm snippet that ships them, with its ignoreDifferences paths run by jq
the way Argo CD applies them (`del(<path>)`)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51  # the dev extra's real Lua 5.1 runtime

from driftline.api.modelversion import ModelVersion
from driftline.driftstatus import merge_pod_report
from driftline.reconcile.driftpolicy import DriftPolicyObserved, decide
from driftline.reconcile.modeldeployment import ApplyOutcome, compute_status
from driftline.reconcile.modelversion import JobObservation, decide_model_version
from tests.rollout.sim import serving

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "deploy" / "argocd"
EXAMPLES = ROOT / "examples"
KINDS = ("ModelVersion", "ModelDeployment", "DriftPolicy")
NOW = "2026-11-23T12:00:00Z"
LATER = "2026-11-23T12:05:00Z"
STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def script(kind: str) -> str:
    return (ARGOCD / f"{kind.lower()}.lua").read_text()


def _without_nulls(value: Any) -> Any:
    """JSON as Argo CD hands it to Lua: a null field is simply absent."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    """Run the kind's health script on `obj` as Argo CD does: `obj` is a global, the
    script's chunk returns the health table. io, os and module loading are not there."""
    lua = lua51.LuaRuntime()
    for name in ("io", "os", "require", "package", "dofile", "loadfile", "debug"):
        lua.globals()[name] = None
    lua.globals().obj = lua.table_from(_without_nulls(json.loads(json.dumps(obj))), recursive=True)
    result = lua.execute(script(kind))
    status, message = result["status"], result["message"]
    assert status in STATUSES
    assert isinstance(message, str)
    return status, message


def condition(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": NOW,
    }


def resource(kind: str, status: dict[str, Any] | None, generation: int = 2) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "driftline.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "churn", "namespace": "ml", "generation": generation},
        "spec": {},
    }
    if status is not None:
        obj["status"] = {"observedGeneration": generation, **status}
    return obj


def example(path: str, kind: str) -> dict[str, Any]:
    for doc in yaml.safe_load_all((EXAMPLES / path).read_text()):
        if doc and doc.get("kind") == kind:
            doc["metadata"].setdefault("generation", 1)
            return dict(doc)
    raise AssertionError(f"no {kind} in examples/{path}")


# --- the snippet -------------------------------------------------------------------------


def snippet() -> dict[str, Any]:
    loaded = yaml.safe_load((ARGOCD / "argocd-cm-snippet.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_snippet_embeds_exactly_the_lua_files() -> None:
    data = snippet()["data"]
    for kind in KINDS:
        assert data[f"resource.customizations.health.driftline.io_{kind}"] == script(kind), (
            f"{kind}: run deploy/argocd/generate.sh"
        )
    assert {key for key in data if ".health." in key} == {
        f"resource.customizations.health.driftline.io_{kind}" for kind in KINDS
    }


def test_the_generator_reproduces_the_committed_snippet(tmp_path: Path) -> None:
    copy = tmp_path / "argocd"
    shutil.copytree(ARGOCD, copy)
    (copy / "argocd-cm-snippet.yaml").unlink()
    subprocess.run(["sh", str(copy / "generate.sh")], check=True)
    assert (copy / "argocd-cm-snippet.yaml").read_text() == (
        ARGOCD / "argocd-cm-snippet.yaml"
    ).read_text()


def test_the_snippet_is_an_argocd_cm_configmap() -> None:
    cm = snippet()
    assert (cm["apiVersion"], cm["kind"], cm["metadata"]["name"]) == (
        "v1",
        "ConfigMap",
        "argocd-cm",
    )
    assert all(isinstance(value, str) for value in cm["data"].values())


def ignored_paths(kind: str) -> list[str]:
    key = f"resource.customizations.ignoreDifferences.driftline.io_{kind}"
    rules = yaml.safe_load(snippet()["data"][key])
    assert set(rules) == {"jqPathExpressions"}
    paths = rules["jqPathExpressions"]
    assert isinstance(paths, list)
    return paths


def normalized(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` with the kind's ignored paths removed the way Argo CD's normalizer does it:
    `del(<path>)`, one jq program per path."""
    jq = shutil.which("jq")
    if jq is None:
        pytest.skip("jq is not installed (apt-get install jq)")
    for path in ignored_paths(kind):
        done = subprocess.run(
            [jq, "-c", f"del({path})"],
            input=json.dumps(obj),
            capture_output=True,
            text=True,
            check=True,
        )
        obj = json.loads(done.stdout)
    return obj


def test_what_the_hpa_and_rollout_requests_write_is_ignored() -> None:
    git = example("cpu-canary/modeldeployment.yaml", "ModelDeployment")
    git["spec"].pop("replicas", None)
    git["spec"]["autoscaling"] = {"minReplicas": 2, "maxReplicas": 8, "targetCPUUtilization": 70}
    git["metadata"]["annotations"] = {"team": "ml"}
    live = json.loads(json.dumps(git))
    live["spec"]["replicas"] = 5  # the HPA, through the scale subresource
    live["metadata"]["annotations"]["driftline.io/rollout-request"] = (
        '{"id": "r1", "action": "promote"}'
    )
    assert live != git
    assert normalized("ModelDeployment", live) == normalized("ModelDeployment", git) == git


def test_replicas_still_count_without_autoscaling() -> None:
    git = example("cpu-canary/modeldeployment.yaml", "ModelDeployment")
    git["spec"].pop("autoscaling", None)
    git["spec"]["replicas"] = 3
    live = json.loads(json.dumps(git))
    live["spec"]["replicas"] = 4
    assert normalized("ModelDeployment", live)["spec"]["replicas"] == 4
    assert normalized("ModelDeployment", live) != normalized("ModelDeployment", git)


def test_only_the_operators_finalizer_is_ignored() -> None:
    git = example("cpu-canary/modelversions.yaml", "ModelVersion")
    assert normalized("ModelVersion", git) == git  # no finalizers at all: nothing to drop
    live = json.loads(json.dumps(git))
    live["metadata"]["finalizers"] = ["example.com/keep", "driftline.io/finalizer"]
    assert normalized("ModelVersion", live)["metadata"]["finalizers"] == ["example.com/keep"]


# --- the rules, on hand-written statuses -------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_no_status_yet_waits_for_the_operator(kind: str) -> None:
    status, message = health(kind, resource(kind, None))
    assert (status, "Waiting for the operator" in message) == ("Progressing", True)


@pytest.mark.parametrize("kind", KINDS)
def test_a_stale_observed_generation_waits_for_the_operator(kind: str) -> None:
    obj = resource(kind, {"phase": "Ready" if kind == "ModelVersion" else "Healthy"})
    obj["status"]["conditions"] = [condition("Ready", "True", "AllConditionsMet")]
    assert health(kind, obj)[0] == "Healthy"
    obj["metadata"]["generation"] = 3
    assert health(kind, obj) == (
        "Progressing",
        "Waiting for the operator: generation 2 observed, 3 current",
    )


@pytest.mark.parametrize(
    ("phase", "expected", "text"),
    [
        ("Ready", "Healthy", "artifact verified"),
        ("Deprecated", "Healthy", "Deprecated"),
        ("Retired", "Healthy", "Retired"),
        ("Pending", "Progressing", "artifact verified"),
        ("Verifying", "Progressing", "artifact verified"),
        ("Failed", "Degraded", "artifact verified"),
        ("Exploded", "Unknown", "Exploded"),
    ],
)
def test_model_version_phases(phase: str, expected: str, text: str) -> None:
    obj = resource(
        "ModelVersion",
        {
            "phase": phase,
            "conditions": [condition("Verified", "True", "Verified", "artifact verified")],
        },
    )
    status, message = health("ModelVersion", obj)
    assert status == expected
    assert text in message


def test_model_version_failure_says_why() -> None:
    obj = resource("ModelVersion", {"phase": "Failed", "message": "sha256 mismatch: got cd…"})
    assert health("ModelVersion", obj) == ("Degraded", "sha256 mismatch: got cd…")


def md(phase: str | None, *conditions: dict[str, Any]) -> dict[str, Any]:
    return resource("ModelDeployment", {"phase": phase, "conditions": list(conditions)})


def test_model_deployment_phases() -> None:
    served = condition("UpToDate", "True", "DesiredVersionServed", "all traffic on v2")
    assert health("ModelDeployment", md("Healthy", served)) == ("Healthy", "all traffic on v2")
    step = condition("Progressing", "True", "WaitingForAnalysis", "step 1: 10% on v2")
    assert health("ModelDeployment", md("Progressing", step)) == (
        "Progressing",
        "step 1: 10% on v2",
    )
    held = condition("Progressing", "True", "Paused", "held at step 1")
    assert health("ModelDeployment", md("Paused", held)) == (
        "Suspended",
        "Rollout paused: held at step 1",
    )
    assert health("ModelDeployment", md("Sideways"))[0] == "Unknown"


@pytest.mark.parametrize("reason", ["AnalysisFailed", "ProgressDeadlineExceeded"])
def test_a_degraded_condition_is_degraded_with_its_message(reason: str) -> None:
    obj = md(
        "Degraded",
        condition("Degraded", "True", reason, f"{reason}: p99 latency 0.9 > 0.5"),
        condition("UpToDate", "False", reason, "rolling back"),
    )
    assert health("ModelDeployment", obj) == ("Degraded", f"{reason}: p99 latency 0.9 > 0.5")


def test_an_aborted_rollout_is_degraded_whatever_the_phase() -> None:
    aborted = condition("UpToDate", "False", "RolloutAborted", "the rollout of v2 was aborted")
    for phase in ("Degraded", "Progressing", None):
        assert health("ModelDeployment", md(phase, aborted)) == (
            "Degraded",
            "the rollout of v2 was aborted",
        )


def test_a_missing_model_version_is_missing() -> None:
    obj = md(
        "Degraded",
        condition("UpToDate", "False", "ModelVersionNotFound", "ModelVersion v9 not found"),
    )
    assert health("ModelDeployment", obj) == ("Missing", "ModelVersion v9 not found")
    retired = md(
        "Degraded",
        condition("UpToDate", "False", "ModelVersionRetired", "ModelVersion v1 is retired"),
    )
    assert health("ModelDeployment", retired) == ("Degraded", "ModelVersion v1 is retired")


def dp(*conditions: dict[str, Any], severity: str = "None") -> dict[str, Any]:
    return resource("DriftPolicy", {"severity": severity, "conditions": list(conditions)})


READY = condition("Ready", "True", "AllConditionsMet", "all conditions met")
FOUND = condition("TargetFound", "True", "TargetExists", "ModelDeployment churn exists")
EVALUATING = condition("Evaluating", "True", "Evaluating", "every reporting pod evaluates drift")


def test_confirmed_drift_is_degraded_with_its_severity() -> None:
    drifted = condition("Drifted", "True", "FeaturesDrifted", "drifted features: age")
    assert health("DriftPolicy", dp(READY, FOUND, EVALUATING, drifted, severity="High")) == (
        "Degraded",
        "Drift confirmed (severity High): drifted features: age",
    )


def test_drift_awaiting_confirmation_is_healthy() -> None:
    waiting = condition("Drifted", "False", "AwaitingConfirmation", "needs 3 consecutive windows")
    assert health("DriftPolicy", dp(READY, FOUND, EVALUATING, waiting)) == (
        "Healthy",
        "needs 3 consecutive windows",
    )
    assert health("DriftPolicy", dp(READY, FOUND, EVALUATING)) == ("Healthy", "all conditions met")


def test_a_missing_target_is_missing() -> None:
    lost = condition(
        "TargetFound", "False", "TargetNotFound", "ModelDeployment churn does not exist"
    )
    not_ready = condition("Ready", "False", "TargetNotFound", "TargetFound is False")
    assert health("DriftPolicy", dp(not_ready, lost, EVALUATING)) == (
        "Missing",
        "ModelDeployment churn does not exist",
    )


def test_not_evaluating_is_degraded() -> None:
    stopped = condition("Evaluating", "False", "ReferenceUnavailable", "pod-a: 403 from S3")
    not_ready = condition("Ready", "False", "ReferenceUnavailable", "Evaluating is False")
    assert health("DriftPolicy", dp(not_ready, FOUND, stopped)) == (
        "Degraded",
        "Drift is not evaluated: pod-a: 403 from S3",
    )


def test_ready_unknown_is_progressing() -> None:
    unknown = condition("Ready", "Unknown", "Reconciling", "")
    assert health("DriftPolicy", dp(unknown))[0] == "Progressing"


# --- statuses from the operator's own decisions, on the examples --------------------------


def with_status(obj: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return {**obj, "status": status}


def test_example_model_version_through_verification() -> None:
    mv = example("cpu-canary/modelversions.yaml", "ModelVersion")
    sha = mv["spec"]["artifact"]["sha256"]
    verifying = decide_model_version(mv, JobObservation("Missing"), "v-verify", now=NOW).status
    assert health("ModelVersion", with_status(mv, verifying))[0] == "Progressing"
    ok = json.dumps(
        {
            "ok": True,
            "reason": "Verified",
            "sha256": sha,
            "sizeBytes": 1234,
            "signature": {
                "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 6]}],
                "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1]}],
            },
        }
    )
    ready = decide_model_version(
        with_status(mv, verifying), JobObservation("Succeeded", ok), "v-verify", now=LATER
    ).status
    assert ready["phase"] == "Ready"
    assert health("ModelVersion", with_status(mv, ready))[0] == "Healthy"
    failed = decide_model_version(
        with_status(mv, verifying),
        JobObservation("Failed", None, "DeadlineExceeded"),
        "v-verify",
        now=LATER,
    ).status
    assert failed["phase"] == "Failed"
    assert health("ModelVersion", with_status(mv, failed))[0] == "Degraded"


def track(version: str, replicas: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "churn-stable",
            "generation": 1,
            "annotations": {"driftline.io/model-version": version},
        },
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "updatedReplicas": replicas,
        },
    }


def ready_version(name: str) -> ModelVersion:
    return ModelVersion.model_validate(
        {
            "metadata": {"name": name, "namespace": "ml"},
            "spec": {
                "model": "churn",
                "version": name,
                "artifact": {"uri": "s3://models/m.onnx", "sha256": "a" * 64},
            },
            "status": {"phase": "Ready", "digest": "a" * 64},
        }
    )


def deployment_status(rollout: Any, spec_version: str, serving_version: str) -> dict[str, Any]:
    body = example("cpu-canary/modeldeployment.yaml", "ModelDeployment")
    body["spec"]["modelVersion"] = spec_version
    decision = compute_status(
        body,
        target=ready_version(spec_version),
        deployments={"stable": track(serving_version, 4)},
        apply=ApplyOutcome(True),
        url=None,
        now=NOW,
        rollout=rollout,
    )
    return with_status(body, decision.status.wire())


THREE_STEPS = [(10, None, True), (50, None, True), (100, None, False)]


def test_an_aborted_rollout_from_the_real_decisions_is_degraded() -> None:
    world = serving(steps=THREE_STEPS)
    world.set_version("v2")
    world.settle()
    aborted = world.request("abort")
    obj = deployment_status(aborted, "v2", "v1")
    assert obj["status"]["abortedVersion"] == "v2"
    status, message = health("ModelDeployment", obj)
    assert status == "Degraded"
    assert "the rollout of v2 was aborted" in message


def test_a_failed_analysis_from_the_real_decisions_is_degraded() -> None:
    world = serving(steps=THREE_STEPS, gates=True)
    world.set_version("v2")
    world.settle()
    failed = world.verdict("step-0", "Failed", "p99 latency 0.9 > 0.5")
    status, message = health("ModelDeployment", deployment_status(failed, "v2", "v1"))
    assert status == "Degraded"
    assert "0.9" in message


def test_a_canary_in_progress_then_promoted_from_the_real_decisions() -> None:
    world = serving(steps=THREE_STEPS)
    started = world.set_version("v2")
    obj = deployment_status(started, "v2", "v1")
    assert obj["status"]["phase"] == "Progressing"
    assert health("ModelDeployment", obj)[0] == "Progressing"
    done = world.converge()
    promoted = deployment_status(done, "v2", "v2")
    assert promoted["status"]["phase"] == "Healthy"
    assert health("ModelDeployment", promoted)[0] == "Healthy"


def policy_status(status: dict[str, Any] | None, target_exists: bool = True) -> dict[str, Any]:
    policy = example("drift-retrain/driftpolicy.yaml", "DriftPolicy")
    if status is not None:
        policy["status"] = status
    decision = decide(DriftPolicyObserved(policy, target_exists), NOW, recheck_seconds=60)
    return with_status(policy, decision.status.wire())


def pod_report(drifted: bool, consecutive: int) -> dict[str, Any]:
    return {
        "evaluation": {
            "time": NOW,
            "samples": 500,
            "invalidSamples": 0,
            "drifted": drifted,
            "severity": "High" if drifted else "None",
            "features": [
                {"name": "tenure", "test": "KolmogorovSmirnov", "pValue": 1e-9, "drifted": drifted}
            ],
        },
        "consecutiveDrifted": consecutive,
        "modelVersion": "churn-v2",
    }


def reported(*reports: dict[str, Any]) -> Iterator[dict[str, Any]]:
    status: dict[str, Any] | None = None
    for report in reports:
        status = merge_pod_report(
            status, "churn-pod-a", report, consecutive_windows=3, generation=1, now=NOW
        )
        yield status


def test_a_confirmed_drift_from_the_real_decisions_is_degraded() -> None:
    quiet, awaiting, confirmed = reported(
        pod_report(False, 0), pod_report(True, 2), pod_report(True, 3)
    )
    assert health("DriftPolicy", policy_status(quiet))[0] == "Healthy"
    assert health("DriftPolicy", policy_status(awaiting))[0] == "Healthy"
    status, message = health("DriftPolicy", policy_status(confirmed))
    assert status == "Degraded"
    assert message.startswith("Drift confirmed (severity High)")
    assert "tenure" in message


def test_a_policy_without_its_deployment_from_the_real_decisions_is_missing() -> None:
    assert health("DriftPolicy", policy_status(None, target_exists=False))[0] == "Missing"
    assert health("DriftPolicy", policy_status(None))[0] == "Healthy"
