"""The live panel and the summary, rendered to text (pure: a View in, a renderable out),
and the command's options."""

from __future__ import annotations

from click.testing import CliRunner
from rich.console import Console

from driftline.cli import main
from driftline.sandbox import display
from driftline.sandbox.story import SCENARIOS, View
from driftline.sandbox.traffic import LabelFeed, Traffic


def text(renderable: object) -> str:
    console = Console(record=True, width=120, force_terminal=False)
    console.print(renderable)
    return console.export_text()


def test_the_live_panel_shows_phase_tracks_weights_traffic_and_events():
    traffic = Traffic()
    for version in ("1.0.0", "1.0.0", "2.0.0", None):
        traffic.record(version)
    view = View(
        scenario="default (quick)",
        phase="canary churn-v2",
        status={
            "phase": "Progressing",
            "stableVersion": "churn-v1",
            "canaryVersion": "churn-v2",
            "canaryWeight": 25,
            "currentStep": 0,
        },
        versions={"churn-v1": "Ready", "churn-v2": "Ready"},
        events=["Normal StepAdvanced churn: step 1/2"],
        traffic=traffic,
        feed=LabelFeed(delivered=140, undelivered=3),
    )
    shown = text(display.live(view))
    assert "phase: canary churn-v2" in shown
    assert "deployment: Progressing" in shown
    lines = shown.splitlines()
    assert any("stable" in line and "churn-v1" in line and "75%" in line for line in lines)
    assert any("canary (step 0)" in line and "churn-v2" in line and "25%" in line for line in lines)
    assert "1.0.0: 2, 2.0.0: 1" in shown and "errors: 1" in shown
    assert "labels fed back: 140 (undelivered 3)" in shown
    assert "StepAdvanced" in shown
    assert "churn-v1=Ready" in shown


def test_the_summary_lists_each_phase_and_the_total():
    view = View()
    view.enter("one", moment=view.phase_started + 1.0)  # "starting" is not a phase of its own
    view.enter("two", moment=view.phase_started + 2.5)
    view.enter("done", moment=view.phase_started + 4.0)
    assert view.timings == [("one", 2.5), ("two", 4.0)]
    shown = text(display.summary(view))
    assert "one" in shown and "2.5" in shown and "4.0" in shown
    assert any("total" in line and "6.5" in line for line in shown.splitlines())


def test_traffic_only_counts_a_full_run_of_one_version():
    traffic = Traffic()
    for _ in range(19):
        traffic.record("2.0.0")
    assert not traffic.only("2.0.0")
    traffic.record("2.0.0")
    assert traffic.only("2.0.0")
    traffic.record("1.0.0")
    assert not traffic.only("2.0.0")


def test_the_command_names_its_scenarios_and_refuses_an_unknown_one():
    runner = CliRunner()
    shown = runner.invoke(main, ["sandbox", "--help"])
    assert shown.exit_code == 0
    for name in SCENARIOS:
        assert name in shown.output
    refused = runner.invoke(main, ["sandbox", "--scenario", "nope"])
    assert refused.exit_code == 2
    assert "'nope' is not one of" in refused.output


def test_the_live_panel_shows_the_analysis_gates_drift_scores_and_retraining():
    view = View(
        status={
            "phase": "Progressing",
            "stableVersion": "churn-v2",
            "canaryVersion": "churn-drift-retrained-1",
            "canaryWeight": 50,
            "analysis": [
                {"name": "step-0", "version": "churn-v1", "verdict": "Passed", "gates": []},
                {
                    "name": "step-0",
                    "version": "churn-drift-retrained-1",
                    "verdict": "Running",
                    "gates": [
                        {
                            "name": "success-rate",
                            "track": "canary",
                            "verdict": "Running",
                            "successful": 1,
                            "failed": 0,
                            "recent": [{"phase": "Successful", "value": "0.985"}],
                        },
                        {"name": "drift", "track": "canary", "verdict": "Running", "recent": []},
                    ],
                },
            ],
            "drift": {
                "policy": "churn-drift",
                "drifted": True,
                "severity": "Medium",
                "features": ["monthly_charges"],
            },
        },
        policy={
            "pods": {
                "churn-stable-a": {
                    "state": "Evaluating",
                    "modelVersion": "churn-v2",
                    "evaluation": {
                        "severity": "Medium",
                        "performance": {
                            "metric": "accuracy",
                            "value": 0.7912,
                            "baseline": 0.785,
                            "labels": 150,
                            "dropped": False,
                        },
                        "features": [
                            {"name": "monthly_charges", "drifted": True, "statistic": 0.61234},
                            {"name": "tenure_months", "drifted": False, "statistic": 0.05},
                        ],
                    },
                }
            },
            "retrainings": [
                {
                    "job": "churn-drift-retrain-1",
                    "modelVersion": "churn-drift-retrained-1",
                    "phase": "Succeeded",
                }
            ],
        },
        world="price-rise",
    )
    shown = text(display.live(view))
    assert "traffic: price-rise" in shown
    assert "analysis step-0 of churn-drift-retrained-1: Running" in shown  # the latest run
    assert "success-rate [canary] Running: 0.985  (ok 1, failed 0)" in shown
    assert "drift [canary] Running: -" in shown
    assert "drift: drifted, severity Medium, features monthly_charges" in shown
    assert (
        "churn-stable-a (churn-v2): Medium  accuracy 0.791 of 150 labels (offline 0.785)  "
        "drifted: monthly_charges=0.612"
    ) in shown
    assert "tenure_months=" not in shown  # only the drifted features' scores
    assert "retraining churn-drift-retrain-1 -> churn-drift-retrained-1: Succeeded" in shown


def test_the_summary_has_the_spans_across_phases_and_the_drift_report_link():
    view = View(
        timings=[("canary churn-v2", 20.0)],
        milestones=[("drift onset -> Drifted", 16.5)],
        report_url="http://127.10.0.9:9090/report",
    )
    shown = text(display.summary(view))
    assert any("drift onset -> Drifted" in line and "16.5" in line for line in shown.splitlines())
    assert any("total" in line and "20.0" in line for line in shown.splitlines())
    assert "drift report:   http://127.10.0.9:9090/report" in shown


def test_quick_is_an_option_of_every_scenario():
    runner = CliRunner()
    shown = runner.invoke(main, ["sandbox", "--help"])
    assert "--quick" in shown.output
