"""The prediction summary's pure parts: settings from the policy, how each output is
read, class and bin counts, the per-output windows, and the evaluator core carrying them."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driftline.analysis.divergence import BinnedCounts
from driftline.api.driftpolicy import DEFAULT_SCORE_BIN_EDGES, DriftPolicySpec
from driftline_serving.drift import load_profile
from driftline_serving.evaluator import predictions
from driftline_serving.evaluator.core import Evaluator
from driftline_serving.evaluator.predictions import (
    MAX_OUTPUTS,
    OTHER,
    OutputKind,
    PredictionWindows,
    SummarySettings,
    bin_counts,
    class_counts,
    output_kind,
    prediction_values,
    summarise,
)
from driftline_serving.sampling.codec import SampleBatch

from .conftest import reference_rows, scores_for

EDGES = (0.25, 0.5, 0.75)


# --- settings ----------------------------------------------------------------------------


def test_the_sidecar_and_the_resource_default_to_the_same_bins() -> None:
    assert predictions.DEFAULT_SCORE_BIN_EDGES == DEFAULT_SCORE_BIN_EDGES
    spec = DriftPolicySpec.model_validate({"targetRef": {"name": "churn"}}).wire()
    assert SummarySettings.from_policy(spec) == SummarySettings()
    assert SummarySettings().score_bin_edges == (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def test_settings_are_read_from_the_policy() -> None:
    spec = {"predictionSummary": {"enabled": False, "scoreBinEdges": [0, 1.5], "maxClasses": 3}}
    assert SummarySettings.from_policy(spec) == SummarySettings(False, (0.0, 1.5), 3)
    assert SummarySettings.from_policy({}) == SummarySettings()


@pytest.mark.parametrize(
    ("summary", "message"),
    [
        ({"scoreBinEdges": []}, "needs 1 to 64 edges, not 0"),
        ({"scoreBinEdges": list(range(65))}, "needs 1 to 64 edges, not 65"),
        ({"scoreBinEdges": [0.1, math.inf]}, "must be finite numbers"),
        ({"scoreBinEdges": [0.1, math.nan]}, "must be finite numbers"),
        ({"scoreBinEdges": [0.5, 0.2]}, "must strictly increase: [0.5, 0.2]"),
        ({"scoreBinEdges": [0.5, 0.5]}, "must strictly increase"),
        ({"scoreBinEdges": "0.1,0.2"}, "must be a list of numbers"),
        ({"scoreBinEdges": 0.5}, "must be a list of numbers"),
        ({"scoreBinEdges": ["low"]}, "must be numbers"),
        ({"maxClasses": 0}, "maxClasses must be between 1 and 100, not 0"),
        ({"maxClasses": 101}, "maxClasses must be between 1 and 100, not 101"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(summary: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        SummarySettings.from_policy({"predictionSummary": summary})
    assert message in str(caught.value)


def test_the_resource_refuses_bins_that_do_not_increase_or_are_not_finite() -> None:
    for edges, message in (([0.5, 0.2], "strictly increase"), ([0.1, math.inf], "finite")):
        with pytest.raises(ValueError, match=message):
            DriftPolicySpec.model_validate(
                {"targetRef": {"name": "churn"}, "predictionSummary": {"scoreBinEdges": edges}}
            )


# --- how an output is read ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "kind"),
    [
        (np.zeros((4, 3), np.float32), OutputKind.CLASSES),
        (np.zeros((4, 2), np.float64), OutputKind.CLASSES),
        (np.zeros((4, 2, 2), np.float32), OutputKind.CLASSES),
        (np.zeros(4, np.float32), OutputKind.SCORES),
        (np.zeros((4, 1), np.float32), OutputKind.SCORES),
        (np.zeros((4, 1), np.int64), OutputKind.CLASSES),
        (np.zeros(4, np.int32), OutputKind.CLASSES),
        (np.zeros(4, np.uint8), OutputKind.CLASSES),
        (np.zeros(4, bool), OutputKind.CLASSES),
        (np.zeros((4, 3), np.int64), None),
        (np.float32(1.0).reshape(()), None),
    ],
)
def test_output_kind_follows_dtype_and_width(array: np.ndarray, kind: OutputKind | None) -> None:
    assert output_kind(array) is kind


def test_class_scores_give_the_argmax_and_a_non_finite_row_is_invalid() -> None:
    scores = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1], [np.nan, 0.5, 0.5], [0.2, 0.2, 0.6]])
    values = prediction_values(scores.astype(np.float32), OutputKind.CLASSES)
    assert values.tolist() == ["1", "0", "", "2"]


def test_integer_and_boolean_outputs_are_their_own_labels() -> None:
    assert prediction_values(np.array([[3], [-1], [3]]), OutputKind.CLASSES).tolist() == [
        "3",
        "-1",
        "3",
    ]
    flags = np.array([True, False, True])
    assert prediction_values(flags, OutputKind.CLASSES).tolist() == ["1", "0", "1"]


def test_scores_are_one_float_per_row() -> None:
    values = prediction_values(np.array([[0.25], [np.inf]], np.float32), OutputKind.SCORES)
    assert values.dtype == np.float64 and values[0] == 0.25 and np.isinf(values[1])


# --- counts ------------------------------------------------------------------------------


def test_class_counts_most_frequent_first_ties_by_name() -> None:
    classes, invalid = class_counts(["b", "a", "c", "a", "b", "", "d", "a"], max_classes=10)
    assert classes == [
        {"name": "a", "count": 3},
        {"name": "b", "count": 2},
        {"name": "c", "count": 1},
        {"name": "d", "count": 1},
    ]
    assert invalid == 1


def test_classes_past_the_limit_are_summed_as_other() -> None:
    labels = ["0"] * 5 + ["1"] * 4 + ["2"] * 2 + ["3"] * 1
    assert class_counts(labels, max_classes=2) == (
        [{"name": "0", "count": 5}, {"name": "1", "count": 4}, {"name": OTHER, "count": 3}],
        0,
    )
    exactly, _ = class_counts(labels, max_classes=4)
    assert [c["name"] for c in exactly] == ["0", "1", "2", "3"], "no other when all fit"


def test_no_predictions_give_no_classes() -> None:
    assert class_counts([], max_classes=3) == ([], 0)
    assert class_counts(["", ""], max_classes=3) == ([], 2)


def test_bin_counts_put_an_edge_in_the_bin_it_closes() -> None:
    scores = np.array([-3.0, 0.25, 0.2500001, 0.5, 0.6, 0.75, 0.9, 2.0, np.nan, -np.inf])
    counts, invalid = bin_counts(scores, EDGES)
    # (-inf, 0.25]: -3, 0.25; (0.25, 0.5]: 0.2500001, 0.5; (0.5, 0.75]: 0.6, 0.75;
    # (0.75, inf): 0.9, 2.0
    assert counts == [2, 2, 2, 2]
    assert invalid == 2


def test_bin_counts_name_the_same_bins_as_the_divergence_gate() -> None:
    counts, _ = bin_counts(np.array([0.1, 0.3, 0.3, 0.9]), EDGES)
    assert BinnedCounts(EDGES, tuple(map(float, counts))).by_bin() == {
        "(-inf, 0.25]": 1.0,
        "(0.25, 0.5]": 2.0,
        "(0.5, 0.75]": 0.0,
        "(0.75, inf]": 1.0,
    }


def test_summaries_on_the_wire() -> None:
    settings = SummarySettings(score_bin_edges=EDGES, max_classes=1)
    classes = summarise("label", OutputKind.CLASSES, np.array(["1", "2", "1"], object), settings)
    assert classes == {
        "output": "label",
        "kind": "Classes",
        "classes": [{"name": "1", "count": 2}, {"name": OTHER, "count": 1}],
        "invalid": 0,
    }
    scores = summarise("score", OutputKind.SCORES, np.array([0.1, np.nan]), settings)
    assert scores == {
        "output": "score",
        "kind": "Scores",
        "binEdges": [0.25, 0.5, 0.75],
        "binCounts": [1, 0, 0, 0],
        "invalid": 1,
    }


# --- windows -----------------------------------------------------------------------------


def batch_outputs(rows: int, offset: float = 0.0) -> dict[str, np.ndarray]:
    scores = np.tile(np.array([0.1, 0.8, 0.1], np.float32), (rows, 1))
    return {
        "probabilities": scores,
        "score": np.full((rows, 1), 0.4 + offset, np.float32),
        "label": np.full(rows, 7, np.int64),
        "embedding": np.zeros((rows, 4), np.int64),  # not a prediction we can summarise
    }


def test_windows_summarise_every_output_they_can_read() -> None:
    windows = PredictionWindows(size=10)
    windows.add(batch_outputs(3), rows=3, now=1.0)
    summary = windows.summary(1.0, SummarySettings(score_bin_edges=EDGES))
    assert [(s["output"], s["kind"]) for s in summary] == [
        ("probabilities", "Classes"),
        ("score", "Scores"),
        ("label", "Classes"),
    ]
    assert summary[0]["classes"] == [{"name": "1", "count": 3}]
    assert summary[1]["binCounts"] == [0, 3, 0, 0]
    assert summary[2]["classes"] == [{"name": "7", "count": 3}]


def test_windows_keep_the_newest_rows_and_none_too_old() -> None:
    windows = PredictionWindows(size=4, max_age_seconds=10.0)
    windows.add(batch_outputs(3, offset=0.0), rows=3, now=0.0)  # scores 0.4
    windows.add(batch_outputs(2, offset=0.2), rows=2, now=5.0)  # scores 0.6
    settings = SummarySettings(score_bin_edges=EDGES)
    score = windows.summary(6.0, settings)[1]
    assert score["binCounts"] == [0, 2, 2, 0], "the oldest row left the 4-row window"
    score = windows.summary(12.0, settings)[1]
    assert score["binCounts"] == [0, 0, 2, 0], "rows older than 10 s are gone"


def test_an_output_with_another_row_count_is_skipped() -> None:
    windows = PredictionWindows(size=10)
    windows.add({"score": np.zeros((2, 1), np.float32)}, rows=3, now=0.0)
    assert windows.summary(0.0, SummarySettings()) == []


def test_an_output_whose_kind_changes_starts_a_new_window() -> None:
    windows = PredictionWindows(size=10)
    windows.add({"out": np.full((2, 1), 0.95, np.float32)}, rows=2, now=0.0)
    windows.add({"out": np.array([[0.9, 0.1]], np.float32)}, rows=1, now=1.0)
    (summary,) = windows.summary(1.0, SummarySettings())
    assert summary["kind"] == "Classes" and summary["classes"] == [{"name": "0", "count": 1}]


def test_at_most_max_outputs_are_summarised() -> None:
    windows = PredictionWindows(size=10)
    outputs = {f"o{i}": np.zeros((1, 1), np.float32) for i in range(MAX_OUTPUTS + 2)}
    windows.add(outputs, rows=1, now=0.0)
    summary = windows.summary(0.0, SummarySettings())
    assert [s["output"] for s in summary] == [f"o{i}" for i in range(MAX_OUTPUTS)]


# --- the evaluator core ------------------------------------------------------------------


def sample_batch(rows: int, seed: int) -> SampleBatch:
    matrix = reference_rows(rows, seed=seed)
    scores = scores_for(matrix)
    return SampleBatch(
        model_version="v1",
        request_ids=[f"r{seed}-{i}" for i in range(rows)],
        received_at=np.zeros(rows),
        inputs={"input": matrix},
        outputs={"probabilities": scores, "confidence": scores.max(axis=1, keepdims=True)},
    )


def test_the_evaluator_summarises_the_rows_of_its_window(profile_file: tuple[Path, str]) -> None:
    evaluator = Evaluator(load_profile(profile_file[0]))
    evaluator.configure(
        {
            "window": {"size": 50, "minSamples": 10},
            "predictionSummary": {"scoreBinEdges": [0.5], "maxClasses": 2},
        }
    )
    batch = sample_batch(80, seed=3)
    evaluator.add(batch, now=1.0)
    newest = batch.outputs["probabilities"][-50:]
    classes, counts = np.unique(newest.argmax(axis=1), return_counts=True)
    ranked = sorted(zip(counts.tolist(), classes.tolist(), strict=True), key=lambda c: -c[0])
    probabilities, confidence = evaluator.prediction_summary(now=1.0)
    expected = [{"name": str(label), "count": count} for count, label in ranked[:2]]
    if len(ranked) > 2:
        expected.append({"name": OTHER, "count": sum(count for count, _ in ranked[2:])})
    assert probabilities["classes"] == expected
    top = batch.outputs["confidence"][-50:, 0]
    assert confidence["binCounts"] == [int((top <= 0.5).sum()), int((top > 0.5).sum())]


def test_rows_of_the_wrong_width_are_not_summarised(profile_file: tuple[Path, str]) -> None:
    evaluator = Evaluator(load_profile(profile_file[0]))
    batch = sample_batch(5, seed=4)
    narrow = SampleBatch(
        batch.model_version,
        batch.request_ids,
        batch.received_at,
        {"input": batch.inputs["input"][:, :2]},
        batch.outputs,
    )
    evaluator.add(narrow, now=1.0)
    assert evaluator.prediction_summary(now=1.0) == []


def test_bad_summary_settings_keep_the_previous_ones(profile_file: tuple[Path, str]) -> None:
    evaluator = Evaluator(load_profile(profile_file[0]))
    evaluator.configure({"predictionSummary": {"scoreBinEdges": [0.3, 0.6]}})
    with pytest.raises(ValueError, match="strictly increase"):
        evaluator.configure(
            {
                "window": {"size": 20, "minSamples": 5},
                "predictionSummary": {"scoreBinEdges": [1, 0]},
            }
        )
    assert evaluator.summary_settings.score_bin_edges == (0.3, 0.6)
    evaluator.add(sample_batch(30, seed=5), now=1.0)
    (probabilities, _) = evaluator.prediction_summary(now=1.0)
    assert sum(c["count"] for c in probabilities["classes"]) == 20, "the window setting applied"
