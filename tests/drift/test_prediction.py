"""Output extraction and label-based performance drift."""

from __future__ import annotations

import numpy as np
import pytest

from driftline_serving.drift.prediction import (
    accuracy,
    macro_f1,
    performance_drift,
    top_class_and_score,
)


def test_top_class_and_score_with_invalid_rows():
    classes, top = top_class_and_score([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [np.nan, 0.5, 0.5]])
    assert classes.tolist() == [1, 0, -1]
    assert top[:2].tolist() == [0.7, 0.5] and np.isnan(top[2])


def test_accuracy_and_macro_f1_by_hand():
    labels = [0, 0, 1, 1, 2]
    predictions = [0, 1, 1, 1, 0]
    assert accuracy(labels, predictions) == pytest.approx(0.6)
    # F1: class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp1 fn0 -> 0.8; class 2: 0
    assert macro_f1(labels, predictions) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert accuracy(["1", "2"], [1.0, 2]) == 1.0  # labels compare as categories


def test_performance_drift_absolute_and_relative():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 1000)
    good = np.where(rng.random(1000) < 0.9, labels, 1 - labels)
    worse = np.where(rng.random(1000) < 0.75, labels, 1 - labels)
    assert not performance_drift(labels, good, baseline=0.9).dropped
    dropped = performance_drift(labels, worse, baseline=0.9)
    assert dropped.dropped and dropped.absolute_drop == pytest.approx(0.15, abs=0.03)
    relative = performance_drift(
        labels, worse, baseline=0.9, max_absolute_drop=None, max_relative_drop=0.1
    )
    assert relative.dropped and relative.relative_drop > 0.1
    assert performance_drift(labels, worse, baseline=0.9, metric="f1").metric == "f1"


def test_performance_needs_enough_labels_and_valid_settings():
    result = performance_drift([1, 0, None], [1, 1, 1], baseline=0.9)
    assert not result.dropped and result.labels == 2 and "100 needed" in result.note
    with pytest.raises(ValueError, match="metric"):
        performance_drift([1], [1], baseline=1.0, metric="auc")
    with pytest.raises(ValueError, match="labels for"):
        performance_drift([1, 2], [1], baseline=1.0)
