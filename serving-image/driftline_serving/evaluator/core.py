"""The evaluator's state: windows of sampled rows, labels joined to predictions, and the
hysteresis count. Clock and I/O stay outside, so every decision here is testable."""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftline_serving.drift import DriftConfig, DriftReport, Profile, evaluate
from driftline_serving.drift.prediction import performance_drift, top_class_and_score
from driftline_serving.drift.results import PerformanceResult
from driftline_serving.drift.schema import FeatureType, Schema
from driftline_serving.drift.windows import SampleWindow
from driftline_serving.evaluator.predictions import PredictionWindows, SummarySettings
from driftline_serving.evaluator.report_page import Histogram
from driftline_serving.sampling.codec import Feedback, SampleBatch

PREDICTION = "__prediction__"
CONFIDENCE = "__confidence__"
OUTPUT_SCHEMA = Schema.of([(PREDICTION, "categorical"), (CONFIDENCE, "numeric")])
REMEMBERED_PREDICTIONS = 100_000


@dataclass
class EvaluatorCounters:
    rows_seen: int = 0
    rows_invalid: int = 0  # wrong width or unusable outputs: counted and skipped
    feedback_joined: int = 0
    feedback_unknown: int = 0  # labels for request ids we never sampled (or forgot)
    evaluations: int = 0


@dataclass(frozen=True)
class WindowSettings:
    size: int = 1000
    min_samples: int = 100
    max_age_seconds: float | None = None

    @classmethod
    def from_policy(cls, spec: Mapping[str, Any]) -> WindowSettings:
        window = spec.get("window") or {}
        return cls(
            size=int(window.get("size", 1000)),
            min_samples=int(window.get("minSamples", 100)),
            max_age_seconds=window.get("maxAgeSeconds"),
        )


@dataclass(frozen=True)
class HysteresisSettings:
    consecutive_windows: int = 3
    cooldown_seconds: float = 3600.0

    @classmethod
    def from_policy(cls, spec: Mapping[str, Any]) -> HysteresisSettings:
        hysteresis = spec.get("hysteresis") or {}
        return cls(
            consecutive_windows=int(hysteresis.get("consecutiveWindows", 3)),
            cooldown_seconds=float(hysteresis.get("cooldownSeconds", 3600)),
        )


@dataclass(frozen=True)
class HysteresisState:
    """One evaluator's drift verdict over time.

    `consecutive_drifted` counts the drifted windows in a row that count toward
    confirmation; drift is confirmed once it reaches `consecutiveWindows` (the same rule
    the DriftPolicy's Drifted condition applies to each pod's report). When confirmed
    drift clears, a cooldown of `cooldownSeconds` starts: drifted windows evaluated
    before it ends do not count, so this evaluator cannot confirm drift again until the
    cooldown has passed and then `consecutiveWindows` drifted windows in a row are seen.
    """

    consecutive_drifted: int = 0
    confirmed: bool = False
    cooldown_until: float | None = None

    def cooling_down(self, now: float) -> bool:
        return self.cooldown_until is not None and now < self.cooldown_until


def next_hysteresis(
    state: HysteresisState, drifted: bool, now: float, settings: HysteresisSettings
) -> HysteresisState:
    """The state after one evaluation whose window did (or did not) drift at `now`."""
    cooling = state.cooling_down(now)
    consecutive = state.consecutive_drifted + 1 if drifted and not cooling else 0
    confirmed = consecutive >= settings.consecutive_windows
    cooldown_until = state.cooldown_until if cooling else None
    if state.confirmed and not confirmed and settings.cooldown_seconds > 0:
        cooldown_until = now + settings.cooldown_seconds
    return HysteresisState(consecutive, confirmed, cooldown_until)


def feature_matrix(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """The model's inputs side by side, one row per request row, in input order."""
    parts = [np.asarray(a).reshape(a.shape[0], -1) for a in inputs.values()]
    return np.concatenate(parts, axis=1) if parts else np.empty((0, 0))


def evaluation_wire(report: DriftReport, time: str) -> dict[str, Any]:
    """A DriftReport as the DriftPolicy status's Evaluation (see driftline.api)."""
    features = [
        {
            "name": f.feature,
            "test": f.test,
            "statistic": _finite(f.statistic),
            "pValue": _finite(f.p_value),
            "score": _finite(f.score),
            "drifted": f.drifted,
        }
        for f in (*report.features, *(r for r in (report.prediction, report.confidence) if r))
    ]
    wire: dict[str, Any] = {
        "time": time,
        "samples": report.samples,
        "invalidSamples": report.invalid_rows + report.invalid_values,
        "drifted": report.dataset_drifted
        or any(f["drifted"] for f in features)
        or bool(report.performance and report.performance.dropped),
        "severity": report.severity.value,
        "features": [{k: v for k, v in f.items() if v is not None} for f in features],
    }
    # Always named: the status is merge-patched, so a reading that stops must be nulled.
    wire["performance"] = None
    if report.performance is not None:
        wire["performance"] = {
            "metric": report.performance.metric,
            "value": _finite(report.performance.value),  # null until minLabels are in
            "baseline": report.performance.baseline,
            "labels": report.performance.labels,
            "dropped": report.performance.dropped,
        }
    return wire


def _finite(value: float | None) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


class Evaluator:
    def __init__(
        self, profile: Profile, baseline_metrics: Mapping[str, float] | None = None
    ) -> None:
        self.profile = profile
        self.baseline_metrics = dict(baseline_metrics or {})
        self.counters = EvaluatorCounters()
        self.hysteresis = HysteresisState()
        self.spec: dict[str, Any] = {}
        self.config = DriftConfig()
        self._hysteresis_settings = HysteresisSettings()
        self._settings = WindowSettings()
        self._inputs = SampleWindow(profile.schema, self._settings.size, self._settings.min_samples)
        self._outputs = SampleWindow(OUTPUT_SCHEMA, self._settings.size, self._settings.min_samples)
        self._output_values = PredictionWindows(self._settings.size)
        self.summary_settings = SummarySettings()
        self._predictions: OrderedDict[str, Any] = OrderedDict()
        self._labels: deque[tuple[Any, Any]] = deque(maxlen=self._settings.size)
        self.last_report: DriftReport | None = None

    def configure(self, spec: Mapping[str, Any]) -> None:
        """Apply a DriftPolicy spec; the windows are rebuilt only when their shape changes."""
        self.spec = dict(spec)
        self.config = DriftConfig.from_policy(spec)
        self._hysteresis_settings = HysteresisSettings.from_policy(spec)
        settings = WindowSettings.from_policy(spec)
        if settings != self._settings:
            self._settings = settings
            self._inputs = SampleWindow(
                self.profile.schema, settings.size, settings.min_samples, settings.max_age_seconds
            )
            self._outputs = SampleWindow(
                OUTPUT_SCHEMA, settings.size, settings.min_samples, settings.max_age_seconds
            )
            self._output_values = PredictionWindows(settings.size, settings.max_age_seconds)
            self._labels = deque(self._labels, maxlen=settings.size)
        # last, so that a bad summary setting (the CRD refuses it) leaves the rest applied
        self.summary_settings = SummarySettings.from_policy(spec)

    def add(self, batch: SampleBatch, now: float) -> None:
        rows = batch.rows
        self.counters.rows_seen += rows
        matrix = feature_matrix(batch.inputs)
        names = self.profile.schema.names
        if matrix.shape != (rows, len(names)):
            self.counters.rows_invalid += rows
            return
        self._inputs.add({name: matrix[:, i] for i, name in enumerate(names)}, now)
        self._output_values.add(batch.outputs, rows, now)
        output = next(iter(batch.outputs.values()), None)
        if output is None or output.shape[0] != rows:
            return
        classes, scores = top_class_and_score(output.reshape(rows, -1))
        labels = classes.astype(str)
        self._outputs.add({PREDICTION: labels, CONFIDENCE: scores}, now)
        for request_id, label in zip(batch.request_ids, labels, strict=True):
            if request_id:  # rows without an id cannot be named by feedback
                self._predictions[request_id] = label
        while len(self._predictions) > REMEMBERED_PREDICTIONS:
            self._predictions.popitem(last=False)

    def add_feedback(self, feedback: Feedback) -> None:
        for request_id, label in zip(feedback.request_ids, feedback.labels, strict=True):
            prediction = self._predictions.get(request_id)
            if prediction is None:
                self.counters.feedback_unknown += 1
                continue
            self._labels.append((str(label), prediction))
            self.counters.feedback_joined += 1

    def _performance(self) -> PerformanceResult | None:
        settings = self.spec.get("performance")
        if not settings:
            return None
        baseline = self.baseline_metrics.get(settings.get("baselineMetric", "accuracy"))
        if baseline is None:
            return None
        truth = [label for label, _ in self._labels]
        predicted = [prediction for _, prediction in self._labels]
        return performance_drift(
            truth,
            predicted,
            baseline=baseline,
            metric=settings.get("metric", "accuracy"),
            min_labels=int(settings.get("minLabels", 100)),
            max_absolute_drop=settings.get("maxAbsoluteDrop", 0.05),
            max_relative_drop=settings.get("maxRelativeDrop"),
        )

    def evaluate(self, now: float) -> DriftReport:
        """Evaluate the current window; updates the hysteresis state (see HysteresisState)."""
        window = self._inputs.snapshot(now)
        outputs = self._outputs.snapshot(now)
        report = evaluate(
            self.profile,
            window,
            self.config,
            predictions=outputs[PREDICTION] if len(outputs[PREDICTION]) else None,
            confidences=outputs[CONFIDENCE] if len(outputs[CONFIDENCE]) else None,
            performance=self._performance(),
            invalid_rows=self.counters.rows_invalid,
        )
        self.counters.evaluations += 1
        drifted = report.evaluated and (
            report.dataset_drifted
            or report.drifted_features > 0
            or bool(report.performance and report.performance.dropped)
        )
        self.hysteresis = next_hysteresis(self.hysteresis, drifted, now, self._hysteresis_settings)
        self.last_report = report
        return report

    def prediction_summary(self, now: float) -> list[dict[str, Any]]:
        """Per output, the counts of the predictions in the window (evaluator/predictions.py)."""
        return self._output_values.summary(now, self.summary_settings)

    @property
    def consecutive_drifted(self) -> int:
        return self.hysteresis.consecutive_drifted

    def resume_cooldown(self, until: float, now: float) -> None:
        """Carry over a cooldown this pod reported before its evaluator restarted."""
        if until > now and not self.hysteresis.cooling_down(now):
            self.hysteresis = HysteresisState(cooldown_until=until)

    def drifted_histograms(self, now: float) -> list[Histogram]:
        """Reference versus current distribution of each feature that drifted last time."""
        if self.last_report is None:
            return []
        window = self._inputs.snapshot(now)
        return [
            histogram(self.profile, f.feature, window[f.feature])
            for f in self.last_report.features
            if f.drifted and f.feature in window
        ]


def histogram(profile: Profile, feature: str, values: np.ndarray) -> Histogram:
    """Bin the window like the reference profile does (its PSI bins or its categories)."""
    if profile.schema.features[profile.schema.names.index(feature)].type is FeatureType.NUMERIC:
        numeric = profile.numeric[feature]
        finite = np.asarray(values, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        counts = np.bincount(
            np.searchsorted(numeric.inner_edges, finite, side="left"),
            minlength=len(numeric.inner_edges) + 1,
        ).astype(np.float64)
        edges = [f"{e:.3g}" for e in numeric.inner_edges]
        if edges:
            labels = [f"<= {edges[0]}", *(f"{a} .. {b}" for a, b in itertools.pairwise(edges))]
            labels.append(f"> {edges[-1]}")
        else:
            labels = ["all values"]  # a constant reference has a single bin
        reference = np.asarray(numeric.bin_frequencies, dtype=np.float64)
    else:
        categorical = profile.categorical[feature]
        labels = list(categorical.categories)
        index = categorical.index
        counts = np.zeros(len(labels), dtype=np.float64)
        for value in values:
            position = index.get(str(value))
            if position is not None:
                counts[position] += 1
        reference = np.asarray(categorical.counts, dtype=np.float64)
        reference = reference / max(reference.sum(), 1.0)
    current = counts / max(counts.sum(), 1.0)
    return Histogram(feature, labels, reference.tolist(), current.tolist())
