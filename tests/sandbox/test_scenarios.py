"""The scenarios' resources and the example's worlds (pure: no process, no API)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from driftline.api.driftpolicy import DriftPolicy
from driftline.api.modeldeployment import ModelDeployment
from driftline.api.modelversion import ModelVersion
from driftline.sandbox import example
from driftline.sandbox.example import Artifacts, Built
from driftline.sandbox.story import (
    SCENARIOS,
    analysis_problems,
    drift_policy,
    model_deployment,
    model_version,
    scenario,
)

BASE = "http://127.0.0.1:8123"
ARTIFACTS = Artifacts(
    directory=Path("/work/sbx/artifacts"),
    models={"v1": Built("v1", "a" * 64, "b" * 64, {"accuracy": 0.78})},
    window_csv=Path("/work/sbx/artifacts/price-rise-window.csv"),
    traffic={},
    labels={},
)


def test_quick_shortens_the_timings_and_keeps_the_plot():
    for name in SCENARIOS:
        slow, quick = scenario(name), scenario(name, quick=True)
        assert quick.name == slow.name and quick.quick and not slow.quick
        assert quick.canary_pause_s < slow.canary_pause_s
        assert quick.drift_interval_s < slow.drift_interval_s
        assert quick.label == f"{name} (quick)"


def test_an_unknown_scenario_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown scenario 'nope'; expected one of default"):
        scenario("nope")


def test_the_resources_pass_the_operator_s_own_models():
    chosen = scenario("default", quick=True)
    version = ModelVersion.model_validate(
        model_version("churn-v1", "1.0.0", BASE, ARTIFACTS.models["v1"])
    )
    assert version.spec.artifact.uri == f"{BASE}/v1/model.onnx"
    assert [f.name for f in version.spec.features] == list(example.churn_data().FEATURES)
    deployment = ModelDeployment.model_validate(model_deployment(chosen))
    assert deployment.spec.version_selector is not None
    assert deployment.spec.version_selector.model == "churn"
    assert deployment.spec.model_version is None
    policy = DriftPolicy.model_validate(drift_policy(chosen, ARTIFACTS, BASE))
    assert [(a.severity, str(a.action)) for a in policy.spec.actions] == [
        ("Low", "Alert"),
        ("Medium", "Retrain"),
        ("High", "Rollback"),
    ]
    assert policy.spec.retraining is not None
    assert policy.spec.retraining.output_uri == "file:///work/sbx/artifacts/retrained/"
    assert policy.spec.retraining.validation.min_metrics == {"accuracy": 0.6}


def test_the_retraining_job_runs_the_example_on_the_window_and_publishes_over_http():
    spec = drift_policy(scenario("default"), ARTIFACTS, BASE)["spec"]
    (container,) = spec["retraining"]["jobTemplate"]["template"]["spec"]["containers"]
    assert container["command"][1] == str(example.RETRAIN_PROGRAM)
    assert Path(container["command"][1]).is_file()
    args = container["args"]
    assert args[args.index("--data") + 1] == str(ARTIFACTS.window_csv)
    # the output folder <outputUri>/<job>/ is served at the same path
    assert args[args.index("--published-uri") + 1] == f"{BASE}/retrained/$(JOB_NAME)/"
    assert container["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['job-name']"
    )
    assert "volumeMounts" not in container  # nothing under /tmp is remapped by the kubelet


def test_the_rollback_scenario_rolls_back_and_does_not_retrain():
    spec = drift_policy(scenario("rollback"), ARTIFACTS, BASE)["spec"]
    assert [a["action"] for a in spec["actions"]] == ["Alert", "Rollback"]
    assert "retraining" not in spec


def test_the_price_rise_moves_one_feature_and_the_new_market_all_of_them():
    features = list(example.churn_data().FEATURES)
    steady, steady_labels = example.world("steady", 500, 4)
    risen, risen_labels = example.world("price-rise", 500, 4)
    monthly = features.index("monthly_charges")
    assert np.allclose(risen[:, monthly] - steady[:, monthly], example.PRICE_RISE)
    others = [i for i in range(len(features)) if i != monthly]
    assert np.array_equal(risen[:, others], steady[:, others])
    assert np.array_equal(risen_labels, steady_labels)
    market, _ = example.world("new-market", 500, 4)
    assert (
        market[:, features.index("support_calls")].mean()
        > steady[:, features.index("support_calls")].mean() + 1
    )


def test_an_unknown_world_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown world 'calm'; expected one of steady"):
        example.world("calm", 10, 0)


def test_a_held_rollout_says_which_gate_had_no_data_and_why():
    status = {
        "analysis": [
            {"name": "step-0", "version": "churn-v1", "verdict": "Passed", "gates": []},
            {
                "name": "step-0",
                "version": "churn-v2",
                "verdict": "Inconclusive",
                "gates": [
                    {
                        "name": "success-rate",
                        "lastNoData": {"at": "t1", "message": "2 requests, 5 needed"},
                    },
                    {"name": "drift", "lastError": {"at": "t2", "message": "no report yet"}},
                ],
            },
        ]
    }
    told = analysis_problems(status)
    assert told.startswith("analysis step-0 of churn-v2: Inconclusive")
    assert "success-rate lastNoData at t1: 2 requests, 5 needed" in told
    assert "drift lastError at t2: no report yet" in told
    assert analysis_problems({}) == ""
