"""The prediction summary in each pod's report: per model output, how many predictions of
the window just evaluated fell in each class, or in each fixed score bin.

A rollout compares the canary's summary with the stable's (issue 15's prediction
divergence gate). The two tracks run different ModelVersions with different reference
profiles, so nothing here comes from the profile: score bins are the DriftPolicy's
`spec.predictionSummary.scoreBinEdges`, which both tracks' sidecars read, and classes
are the outputs' own labels. Both tracks therefore count on the same bins without
talking to each other.

How an output is read (the same reading as prediction drift, drift/prediction.py):

- floating point, two or more values per row: class scores; the class is the argmax
  (its index), and a row with a non-finite score is invalid;
- floating point, one value per row: a score, counted on the bins
  (-inf, e0], (e0, e1], ..., (e_last, +inf); a non-finite score is invalid;
- integer or boolean, one value per row: the class label itself;
- anything else (integers several per row): not summarised.

Counts go on the wire as lists, never as maps: the status is written as a JSON merge
patch, which would keep a class that the previous window had and this one lacks.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from driftline_serving.drift.prediction import top_class_and_score
from driftline_serving.drift.schema import Schema
from driftline_serving.drift.windows import SampleWindow

DEFAULT_SCORE_BIN_EDGES: Final = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
DEFAULT_MAX_CLASSES: Final = 20
MAX_CLASSES_LIMIT: Final = 100
MAX_BIN_EDGES: Final = 64
MAX_OUTPUTS: Final = 8  # outputs summarised per report, in the model's output order
OTHER: Final = "other"  # the classes past maxClasses; labels are numbers, so never a class
_VALUE = "value"


class OutputKind(StrEnum):
    CLASSES = "Classes"
    SCORES = "Scores"


@dataclass(frozen=True)
class SummarySettings:
    """`spec.predictionSummary` of the DriftPolicy."""

    enabled: bool = True
    score_bin_edges: tuple[float, ...] = DEFAULT_SCORE_BIN_EDGES
    max_classes: int = DEFAULT_MAX_CLASSES

    def __post_init__(self) -> None:
        edges = self.score_bin_edges
        if not 1 <= len(edges) <= MAX_BIN_EDGES:
            raise ValueError(f"scoreBinEdges needs 1 to {MAX_BIN_EDGES} edges, not {len(edges)}")
        if not all(np.isfinite(edge) for edge in edges):
            raise ValueError(f"scoreBinEdges must be finite numbers: {list(edges)}")
        if any(a >= b for a, b in itertools.pairwise(edges)):
            raise ValueError(f"scoreBinEdges must strictly increase: {list(edges)}")
        if not 1 <= self.max_classes <= MAX_CLASSES_LIMIT:
            raise ValueError(
                f"maxClasses must be between 1 and {MAX_CLASSES_LIMIT}, not {self.max_classes}"
            )

    @classmethod
    def from_policy(cls, spec: Mapping[str, Any]) -> SummarySettings:
        summary = spec.get("predictionSummary") or {}
        edges = summary.get("scoreBinEdges", DEFAULT_SCORE_BIN_EDGES)
        if isinstance(edges, str | bytes) or not isinstance(edges, Iterable):
            raise ValueError(f"scoreBinEdges must be a list of numbers, not {edges!r}")
        try:
            numbers = tuple(float(edge) for edge in edges)
        except (TypeError, ValueError) as error:
            raise ValueError(f"scoreBinEdges must be numbers: {edges!r}") from error
        return cls(
            enabled=bool(summary.get("enabled", True)),
            score_bin_edges=numbers,
            max_classes=int(summary.get("maxClasses", DEFAULT_MAX_CLASSES)),
        )


def output_kind(array: NDArray[Any]) -> OutputKind | None:
    """How an output's rows are summarised, from its dtype and width (module docstring)."""
    if array.ndim == 0:
        return None
    width = int(np.prod(array.shape[1:])) if array.ndim > 1 else 1
    if array.dtype.kind == "f":
        return OutputKind.CLASSES if width >= 2 else OutputKind.SCORES
    if array.dtype.kind in "iub" and width == 1:
        return OutputKind.CLASSES
    return None


def prediction_values(array: NDArray[Any], kind: OutputKind) -> NDArray[Any]:
    """One value per row: the class label ("" when invalid) or the score (NaN when invalid)."""
    rows = array.shape[0]
    if kind is OutputKind.SCORES:
        return np.asarray(array, dtype=np.float64).reshape(rows)
    if array.dtype.kind == "f":
        classes, _ = top_class_and_score(array.reshape(rows, -1))
        labels = classes.astype(str).astype(object)
        labels[classes < 0] = ""
        return labels
    return array.reshape(rows).astype(np.int64).astype(str).astype(object)


def class_counts(labels: Iterable[str], max_classes: int) -> tuple[list[dict[str, Any]], int]:
    """([{name, count}], invalid): the most frequent `max_classes` classes, most frequent
    first (ties by name), then the rest summed as `other`; "" labels are invalid."""
    counts = Counter(labels)
    invalid = counts.pop("", 0)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = [{"name": name, "count": count} for name, count in ranked[:max_classes]]
    rest = sum(count for _, count in ranked[max_classes:])
    if rest:
        kept.append({"name": OTHER, "count": rest})
    return kept, invalid


def bin_counts(scores: NDArray[np.float64], edges: Sequence[float]) -> tuple[list[int], int]:
    """(counts on (-inf, e0], (e0, e1], ..., (e_last, +inf), invalid): non-finite scores
    are invalid. The bins match driftline.analysis.divergence.BinnedCounts."""
    finite = scores[np.isfinite(scores)]
    positions = np.searchsorted(np.asarray(edges, dtype=np.float64), finite, side="left")
    counts = np.bincount(positions, minlength=len(edges) + 1)
    return [int(c) for c in counts], int(scores.size - finite.size)


def summarise(
    name: str, kind: OutputKind, values: NDArray[Any], settings: SummarySettings
) -> dict[str, Any]:
    """One output's entry in the pod report's `predictions` (wire form)."""
    if kind is OutputKind.CLASSES:
        classes, invalid = class_counts((str(v) for v in values), settings.max_classes)
        return {"output": name, "kind": kind.value, "classes": classes, "invalid": invalid}
    counts, invalid = bin_counts(np.asarray(values, dtype=np.float64), settings.score_bin_edges)
    return {
        "output": name,
        "kind": kind.value,
        "binEdges": list(settings.score_bin_edges),
        "binCounts": counts,
        "invalid": invalid,
    }


class PredictionWindows:
    """Per output, the values of the same rows as the input window (same size, same age
    limit, added at the same time), so the summary covers the window just evaluated."""

    def __init__(self, size: int, max_age_seconds: float | None = None) -> None:
        self.size = size
        self.max_age_seconds = max_age_seconds
        self._windows: dict[str, tuple[OutputKind, SampleWindow]] = {}

    def add(self, outputs: Mapping[str, NDArray[Any]], rows: int, now: float) -> None:
        for name, array in outputs.items():
            kind = output_kind(array)
            if kind is None or array.shape[0] != rows:
                continue
            known = self._windows.get(name)
            if known is None or known[0] is not kind:
                if known is None and len(self._windows) >= MAX_OUTPUTS:
                    continue
                column = "categorical" if kind is OutputKind.CLASSES else "numeric"
                window = SampleWindow(
                    Schema.of([(_VALUE, column)]), self.size, 1, self.max_age_seconds
                )
                self._windows[name] = (kind, window)
            kind, window = self._windows[name]
            window.add({_VALUE: prediction_values(array, kind)}, now)

    def summary(self, now: float, settings: SummarySettings) -> list[dict[str, Any]]:
        return [
            summarise(name, kind, window.snapshot(now)[_VALUE], settings)
            for name, (kind, window) in self._windows.items()
        ]
