"""The pure readers of the DriftPolicy's per-pod reports: which reports count, the
confirmed severity, and prediction counts ready for the divergence gate."""

from __future__ import annotations

import ast
import math
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from driftline.analysis.divergence import BinnedCounts, DivergenceSettings, judge_divergence
from driftline.analysis.pod_reports import drift_outcome, prediction_counts
from driftline.analysis.types import NoData, QueryError, Value
from driftline.api.driftpolicy import DriftPolicyStatus

NOW = datetime(2026, 12, 2, 3, 0, 0, tzinfo=UTC)
EDGES = [0.25, 0.5, 0.75]


def at(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def report(
    version: str = "v1",
    *,
    age: float = 10,
    severity: str = "None",
    drifted: bool = False,
    consecutive: int = 0,
    predictions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "state": "Evaluating",
        "evaluation": {
            "time": at(age),
            "samples": 500,
            "drifted": drifted,
            "severity": severity,
            "features": [],
        },
        "consecutiveDrifted": consecutive,
        "modelVersion": version,
    }
    if predictions is not None:
        wire["predictions"] = predictions
    return wire


def not_evaluating(version: str = "v1", reason: str = "ReferenceUnavailable") -> dict[str, Any]:
    return {
        "state": "NotEvaluating",
        "reason": reason,
        "message": "cannot fetch s3://models/ref.dlprofile",
        "modelVersion": version,
    }


def classes(output: str, **counts: int) -> dict[str, Any]:
    listed = [{"name": name.removeprefix("c"), "count": n} for name, n in counts.items()]
    return {"output": output, "kind": "Classes", "classes": listed, "invalid": 0}


def scores(output: str, counts: list[int], edges: list[float] = EDGES) -> dict[str, Any]:
    return {"output": output, "kind": "Scores", "binEdges": edges, "binCounts": counts}


def severity(pods: dict[str, dict[str, Any]], version: str = "v1", **kw: Any) -> Any:
    settings: dict[str, Any] = {"now": NOW, "max_age_seconds": 60, "consecutive_windows": 2}
    return drift_outcome(pods, version, **{**settings, **kw})


def counts(pods: dict[str, dict[str, Any]], output: str = "probabilities", **kw: Any) -> Any:
    return prediction_counts(pods, kw.pop("version", "v1"), output, now=NOW, max_age_seconds=60)


# --- drift_outcome -----------------------------------------------------------------------


def test_the_highest_confirmed_severity_of_the_version_is_its_rank() -> None:
    pods = {
        "a": report(severity="Low", drifted=True, consecutive=2),
        "b": report(severity="Medium", drifted=True, consecutive=5),
        "c": report(severity="None"),
        "other": report("v2", severity="High", drifted=True, consecutive=9),
    }
    assert severity(pods) == Value(2.0)
    assert severity(pods, "v2") == Value(3.0)


def test_drift_not_yet_confirmed_ranks_as_none() -> None:
    pods = {"a": report(severity="High", drifted=True, consecutive=1)}
    assert severity(pods) == Value(0.0)
    assert severity(pods, consecutive_windows=1) == Value(3.0)


def test_no_drift_is_rank_zero() -> None:
    assert severity({"a": report()}) == Value(0.0)


def test_no_report_of_the_version_is_no_data_naming_what_there_is() -> None:
    outcome = severity({"a": report("v2")})
    assert outcome == NoData("no pod serving v1 has reported drift yet (reports name v2)")
    assert severity({}) == NoData("no pod serving v1 has reported drift yet")


def test_an_entry_that_is_not_a_report_counts_for_no_version() -> None:
    pods: dict[str, Any] = {"junk": None, "text": "Evaluating", "a": report("v2")}
    assert severity(pods) == NoData("no pod serving v1 has reported drift yet (reports name v2)")
    assert severity(pods, "v2") == Value(0.0)


def test_only_stale_reports_are_no_data_saying_how_old() -> None:
    outcome = severity({"a": report(age=300), "b": report(age=61)})
    assert outcome == NoData(
        "no fresh drift report of v1: a's report is 300s old (max 60s); "
        "b's report is 61s old (max 60s)"
    )


def test_a_report_exactly_max_age_old_is_fresh_and_one_from_the_future_too() -> None:
    assert severity({"a": report(age=60)}) == Value(0.0)
    assert severity({"a": report(age=-5, severity="Low", drifted=True, consecutive=2)}) == Value(
        1.0
    )


def test_not_evaluating_pods_are_no_data_with_the_sidecars_reason() -> None:
    outcome = severity({"a": not_evaluating(), "b": not_evaluating(reason="")})
    assert outcome == NoData(
        "no fresh drift report of v1: a is not evaluating drift (ReferenceUnavailable: "
        "cannot fetch s3://models/ref.dlprofile); b is not evaluating drift (no reason "
        "given: cannot fetch s3://models/ref.dlprofile)"
    )


def test_reports_without_a_usable_time_do_not_count() -> None:
    no_evaluation = {"state": "Evaluating", "modelVersion": "v1"}
    bad_time = report()
    bad_time["evaluation"]["time"] = "yesterday"
    naive = report()
    naive["evaluation"]["time"] = "2026-12-02T02:59:50"
    outcome = severity({"a": no_evaluation, "b": bad_time, "c": naive})
    assert outcome == NoData(
        "no fresh drift report of v1: a has no evaluation yet; b's evaluation time "
        "'yesterday' is not an RFC 3339 time; c's evaluation time '2026-12-02T02:59:50' is "
        "not an RFC 3339 time"
    )


def test_partial_freshness_takes_the_fresh_reports_alone() -> None:
    pods = {
        "fresh": report(severity="Low", drifted=True, consecutive=3),
        "stale": report(age=600, severity="High", drifted=True, consecutive=3),
        "broken": not_evaluating(),
    }
    assert severity(pods) == Value(1.0)


def test_a_window_too_small_to_evaluate_is_no_verdict() -> None:
    small = report()
    small["evaluation"]["samples"] = 50
    empty = report()
    empty["evaluation"]["samples"] = 0
    pods = {"small": small, "empty": empty, "stale": report(age=600)}
    assert severity(pods, min_samples=100) == NoData(
        "no fresh drift report of v1 evaluated a full window: empty's window held 0 samples "
        "(min 100); small's window held 50 samples (min 100); stale's report is 600s old "
        "(max 60s)"
    )
    assert severity(pods) == Value(0.0), "50 samples are enough when 1 is the minimum"
    assert severity({"empty": empty}) == NoData(
        "no fresh drift report of v1 evaluated a full window: empty's window held 0 samples (min 1)"
    )
    full = report(severity="Low", drifted=True, consecutive=2)
    assert severity({"small": small, "full": full}, min_samples=100) == Value(1.0)


def test_an_evaluation_without_a_sample_count_is_an_error() -> None:
    broken = report()
    del broken["evaluation"]["samples"]
    assert severity({"a": broken}) == QueryError("pod a's evaluation has no sample count: None")


def test_an_unknown_severity_is_an_error_not_a_zero() -> None:
    outcome = severity({"a": report(severity="Critical", drifted=True, consecutive=2)})
    assert isinstance(outcome, QueryError)
    assert "pod a reports an unknown drift severity 'Critical'" in outcome.message
    assert "None, Low, Medium, High" in outcome.message


def test_the_readers_take_status_as_the_models_write_it() -> None:
    """Reports parsed and written back by the operator's models read the same."""
    pods = {
        "a": report(severity="Medium", drifted=True, consecutive=2),
        "b": report(predictions=[classes("probabilities", c0=3)]),
    }
    wire = DriftPolicyStatus.model_validate({"pods": pods}).wire()["pods"]
    assert severity(wire) == Value(2.0)
    assert counts(wire) == {"0": 3.0}


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"consecutive_windows": 0}, "consecutive_windows must be at least 1, not 0"),
        ({"consecutive_windows": True}, "consecutive_windows must be at least 1, not True"),
        ({"min_samples": 0}, "min_samples must be at least 1, not 0"),
        ({"max_age_seconds": 0}, "max_age_seconds must be a positive number, not 0"),
        ({"max_age_seconds": math.inf}, "max_age_seconds must be a positive number, not inf"),
        ({"max_age_seconds": math.nan}, "max_age_seconds must be a positive number, not nan"),
        ({"now": datetime(2026, 12, 2)}, "now must be timezone-aware"),
    ],
)
def test_bad_arguments_are_refused(keywords: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        severity({"a": report()}, **keywords)
    assert message in str(caught.value)


# --- prediction_counts -------------------------------------------------------------------


def test_class_counts_are_summed_over_the_fresh_pods_of_the_version() -> None:
    pods = {
        "a": report(predictions=[classes("probabilities", c0=5, c1=2), scores("conf", [1] * 4)]),
        "b": report(predictions=[classes("probabilities", c1=4, c2=1, cother=3)]),
        "stale": report(age=120, predictions=[classes("probabilities", c0=100)]),
        "v2": report("v2", predictions=[classes("probabilities", c2=100)]),
    }
    assert counts(pods) == {"0": 5.0, "1": 6.0, "2": 1.0, "other": 3.0}


def test_score_bins_are_summed_and_named_as_the_gate_names_them() -> None:
    pods = {
        "a": report(predictions=[scores("conf", [1, 2, 3, 4])]),
        "b": report(predictions=[scores("conf", [0, 10, 0, 1])]),
    }
    assert counts(pods, "conf") == BinnedCounts(tuple(EDGES), (1, 12, 3, 5)).by_bin()
    assert counts(pods, "conf") == {
        "(-inf, 0.25]": 1,
        "(0.25, 0.5]": 12,
        "(0.5, 0.75]": 3,
        "(0.75, inf]": 5,
    }


def test_bins_that_differ_between_pods_are_an_error_naming_them() -> None:
    pods = {
        "a": report(predictions=[scores("conf", [1, 2, 3, 4])]),
        "b": report(predictions=[scores("conf", [1, 2], edges=[0.5])]),
    }
    outcome = counts(pods, "conf")
    assert isinstance(outcome, QueryError)
    assert "the pods' score bins of 'conf' differ" in outcome.message
    assert "a: [0.25, 0.5, 0.75]; b: [0.5]" in outcome.message


def test_different_kinds_of_one_output_are_an_error() -> None:
    pods = {
        "a": report(predictions=[scores("out", [1, 2, 3, 4])]),
        "b": report(predictions=[classes("out", c0=1)]),
        "c": report(predictions=[{"output": "out", "kind": "Histogram"}]),
    }
    outcome = counts(pods, "out")
    assert outcome == QueryError(
        "output 'out' is summarised in different or unknown kinds (Classes or Scores "
        "expected): a: 'Scores', b: 'Classes', c: 'Histogram'"
    )


@pytest.mark.parametrize(
    ("summary", "message"),
    [
        (
            {"output": "out", "kind": "Classes", "classes": {"0": 1}},
            "pod a's class counts of 'out' are not a list",
        ),
        (
            {"output": "out", "kind": "Classes", "classes": [{"name": "0", "count": -1}]},
            "pod a's class count of 'out' is not a name and a count >= 0",
        ),
        (
            {"output": "out", "kind": "Classes", "classes": [{"name": 0, "count": 1}]},
            "is not a name and a count >= 0",
        ),
        (
            {"output": "out", "kind": "Classes", "classes": [{"name": "0", "count": True}]},
            "is not a name and a count >= 0",
        ),
        (
            {"output": "out", "kind": "Classes", "classes": ["0"]},
            "is not a name and a count >= 0",
        ),
        ({"output": "out", "kind": "Scores", "binEdges": EDGES}, "lack binEdges or binCounts"),
        (
            {"output": "out", "kind": "Scores", "binEdges": EDGES, "binCounts": [1, 2]},
            "pod a's score bins of 'out': 3 edges make 4 bins, not 2 counts",
        ),
        (
            {"output": "out", "kind": "Scores", "binEdges": [0.5, 0.1], "binCounts": [1, 2, 3]},
            "bin edges must increase",
        ),
        (
            {"output": "out", "kind": "Scores", "binEdges": ["a"], "binCounts": [1, 2]},
            "are not numbers",
        ),
        (
            {"output": "out", "kind": "Scores", "binEdges": [0.5], "binCounts": [1, math.nan]},
            "are not numbers",
        ),
    ],
)
def test_a_malformed_summary_is_an_error_saying_what_is_wrong(
    summary: dict[str, Any], message: str
) -> None:
    outcome = counts({"a": report(predictions=[summary])}, "out")
    assert isinstance(outcome, QueryError)
    assert message in outcome.message


def test_a_summary_that_is_not_an_object_is_an_error() -> None:
    outcome = counts({"a": report(predictions=["probabilities"])})
    assert outcome == QueryError("pod a's prediction summary is not an object: 'probabilities'")


def test_no_fresh_summary_of_the_output_is_no_data() -> None:
    pods = {
        "a": report(predictions=[classes("label", c0=1), scores("conf", [0, 0, 0, 1])]),
        "b": report(),  # the summary turned off, or a sidecar older than it
    }
    assert counts(pods) == NoData(
        "no fresh report of v1 (a, b) summarises output 'probabilities'; they summarise conf, label"
    )
    assert counts({"b": report()}) == NoData(
        "no fresh report of v1 (b) summarises output 'probabilities'"
    )


def test_pods_without_the_output_are_left_out_of_the_sum() -> None:
    pods = {"a": report(predictions=[classes("probabilities", c0=4)]), "b": report()}
    assert counts(pods) == {"0": 4.0}


def test_counts_share_the_freshness_rule() -> None:
    assert counts({"a": not_evaluating()}) == NoData(
        "no fresh drift report of v1: a is not evaluating drift (ReferenceUnavailable: "
        "cannot fetch s3://models/ref.dlprofile)"
    )
    assert counts({}, version="v9") == NoData("no pod serving v9 has reported drift yet")


def test_an_empty_window_counts_nothing() -> None:
    assert counts({"a": report(predictions=[classes("probabilities")])}) == {}


# --- into the divergence gate ------------------------------------------------------------

SETTINGS = DivergenceSettings(min_samples=200)


def tracks(canary: dict[str, int], stable: dict[str, int]) -> dict[str, dict[str, Any]]:
    return {
        "canary-0": report("v2", predictions=[classes("probabilities", **canary)]),
        "stable-0": report("v1", predictions=[classes("probabilities", **stable)]),
        "stable-1": report("v1", predictions=[classes("probabilities", **stable)]),
    }


def test_a_canary_that_predicts_differently_fails_the_gate() -> None:
    pods = tracks({"c0": 80, "c1": 220}, {"c0": 200, "c1": 100})
    verdict = judge_divergence(counts(pods, version="v2"), counts(pods, version="v1"), SETTINGS)
    assert verdict.verdict == "Failed"
    assert "300 canary and 600 stable predictions" in verdict.reason


def test_a_canary_that_predicts_alike_passes_the_gate() -> None:
    pods = tracks({"c0": 198, "c1": 102}, {"c0": 200, "c1": 100})
    verdict = judge_divergence(counts(pods, version="v2"), counts(pods, version="v1"), SETTINGS)
    assert verdict.verdict == "Passed"


def test_too_few_predictions_are_inconclusive() -> None:
    pods = tracks({"c0": 10, "c1": 90}, {"c0": 200, "c1": 100})
    verdict = judge_divergence(counts(pods, version="v2"), counts(pods, version="v1"), SETTINGS)
    assert verdict.verdict == "Inconclusive"


# --- purity ------------------------------------------------------------------------------


def test_the_readers_import_nothing_impure() -> None:
    """As tests/analysis/test_purity.py checks for the other pure modules: the standard
    library and our own pure packages only (the operator image has no numpy)."""
    path = Path(__file__).resolve().parents[2] / "operator/driftline/analysis/pod_reports.py"
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module or "")
    ours = ("driftline.analysis.divergence", "driftline.analysis.types", "driftline.vocabulary")
    ours += ("driftline.driftstatus",)
    outside = {n for n in names if n.partition(".")[0] not in sys.stdlib_module_names}
    assert outside == set(ours)
