"""The model's outputs: top-class and top-score extraction, and performance drift.

Prediction drift (output class distribution, Jensen-Shannon) and confidence drift (the
top score, Kolmogorov-Smirnov) run inside `engine.evaluate` with the inputs, so that
they share the multiple-testing family; this module prepares their inputs and judges
performance from delayed ground-truth labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from driftline_serving.drift.results import PerformanceResult
from driftline_serving.drift.values import categorical_column


def top_class_and_score(scores: Any) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Predicted class (argmax) and its score for a batch of class scores (rows x classes).

    Rows with a non-finite score give class -1 and score NaN, which the evaluation
    counts as invalid instead of letting them pick an arbitrary class.
    """
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim == 1:
        matrix = matrix[:, None]
    bad = ~np.all(np.isfinite(matrix), axis=1)
    safe = np.where(np.isfinite(matrix), matrix, -np.inf)
    classes = np.argmax(safe, axis=1).astype(np.int64)
    top = safe[np.arange(matrix.shape[0]), classes]
    classes[bad] = -1
    top = np.where(bad, np.nan, top)
    return classes, top


def accuracy(labels: Any, predictions: Any) -> float:
    truth, predicted = _aligned(labels, predictions)
    return float(np.mean(truth == predicted)) if truth.size else float("nan")


def macro_f1(labels: Any, predictions: Any) -> float:
    """Unweighted mean of per-class F1 over the classes present in labels or predictions."""
    truth, predicted = _aligned(labels, predictions)
    if truth.size == 0:
        return float("nan")
    scores = []
    for label in np.union1d(truth, predicted):
        true_positive = np.sum((truth == label) & (predicted == label))
        false_positive = np.sum((truth != label) & (predicted == label))
        false_negative = np.sum((truth == label) & (predicted != label))
        denominator = 2 * true_positive + false_positive + false_negative
        scores.append(2 * true_positive / denominator if denominator else 0.0)
    return float(np.mean(scores))


def _aligned(labels: Any, predictions: Any) -> tuple[NDArray[Any], NDArray[Any]]:
    # compare as category labels, so 1, 1.0 and "1" agree; missing values on either side
    # drop the pair
    truth = _labels(labels)
    predicted = _labels(predictions)
    if truth.size != predicted.size:
        raise ValueError(f"{truth.size} labels for {predicted.size} predictions")
    keep = (truth != "") & (predicted != "")
    return truth[keep], predicted[keep]


def _labels(values: Any) -> NDArray[Any]:
    """Each value as its category label ("" when missing), vectorised for numbers."""
    array = np.asarray(values).reshape(-1)
    if array.dtype.kind in "iub":
        return np.char.mod("%d", array.astype(np.int64)).astype(object)
    if array.dtype.kind == "f":
        out = np.full(array.size, "", dtype=object)
        finite = np.isfinite(array)
        whole = finite & (array == np.floor(array))
        out[whole] = np.char.mod("%d", array[whole].astype(np.int64))
        out[finite & ~whole] = [repr(float(v)) for v in array[finite & ~whole]]
        return out
    if array.dtype.kind == "U":
        return array.astype(object)
    out = np.empty(array.size, dtype=object)
    for index, item in enumerate(array.tolist()):
        column = categorical_column(np.array([item], dtype=object))
        out[index] = column.labels[0] if column.labels else ""
    return out


def performance_drift(
    labels: Any,
    predictions: Any,
    *,
    baseline: float,
    metric: str = "accuracy",
    min_labels: int = 100,
    max_absolute_drop: float | None = 0.05,
    max_relative_drop: float | None = None,
) -> PerformanceResult:
    """Compare the metric on labelled recent predictions with the offline baseline.

    Drift when the metric fell by more than `max_absolute_drop` (in metric units) or by
    more than `max_relative_drop` of the baseline; no verdict under `min_labels` labels.
    """
    if metric not in ("accuracy", "f1"):
        raise ValueError(f"unknown metric {metric!r} (expected 'accuracy' or 'f1')")
    truth, predicted = _aligned(labels, predictions)
    count = int(truth.size)
    if count < min_labels:
        return PerformanceResult(
            metric,
            None,
            baseline,
            count,
            None,
            None,
            False,
            note=f"{count} labels; {min_labels} needed before a verdict",
        )
    value = accuracy(truth, predicted) if metric == "accuracy" else macro_f1(truth, predicted)
    absolute = baseline - value
    relative = absolute / baseline if baseline > 0 else None
    dropped = bool(
        (max_absolute_drop is not None and absolute > max_absolute_drop)
        or (max_relative_drop is not None and relative is not None and relative > max_relative_drop)
    )
    return PerformanceResult(metric, value, baseline, count, absolute, relative, dropped)
