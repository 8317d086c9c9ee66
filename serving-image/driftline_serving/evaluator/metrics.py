"""The evaluator's Prometheus metrics, on its own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from driftline_serving.drift import DriftReport

SEVERITY_LEVEL = {"None": 0, "Low": 1, "Medium": 2, "High": 3}


class EvaluatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.statistic = Gauge(
            "driftline_drift_statistic",
            "Test statistic of the deciding test, per feature.",
            ["feature", "test"],
            registry=r,
        )
        self.p_value = Gauge(
            "driftline_drift_p_value",
            "Corrected p-value of the feature's significance test.",
            ["feature", "test"],
            registry=r,
        )
        self.score = Gauge(
            "driftline_drift_score",
            "Distance score (PSI, Jensen-Shannon, Wasserstein).",
            ["feature", "test"],
            registry=r,
        )
        self.feature_drifted = Gauge(
            "driftline_drift_feature_drifted",
            "1 when the feature drifted in the last evaluation.",
            ["feature"],
            registry=r,
        )
        self.drifted = Gauge(
            "driftline_drift_detected", "1 when the last window drifted.", registry=r
        )
        self.severity = Gauge(
            "driftline_drift_severity",
            "Severity of the last evaluation: 0 None .. 3 High.",
            registry=r,
        )
        self.consecutive = Gauge(
            "driftline_drift_consecutive_windows", "Drifted evaluations in a row.", registry=r
        )
        self.window_samples = Gauge(
            "driftline_drift_window_samples", "Samples in the last evaluated window.", registry=r
        )
        self.samples_seen = Counter(
            "driftline_drift_samples_received", "Sampled rows received from the server.", registry=r
        )
        self.samples_invalid = Counter(
            "driftline_drift_samples_invalid", "Sampled rows skipped as invalid.", registry=r
        )
        self.bad_frames = Counter(
            "driftline_drift_bad_frames", "Sample frames that could not be decoded.", registry=r
        )
        self.feedback = Counter(
            "driftline_drift_feedback_labels",
            "Ground-truth labels received, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.evaluation_seconds = Histogram(
            "driftline_drift_evaluation_seconds",
            "Time to evaluate one window.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.status_writes = Gauge(
            "driftline_drift_status_writes",
            "DriftPolicy status writes since start, by outcome.",
            ["outcome"],
            registry=r,
        )

        self.not_evaluating = Gauge(
            "driftline_drift_not_evaluating",
            "1 while drift is not evaluated, labelled with the reason (see docs/evaluator.md).",
            ["reason"],
            registry=r,
        )
        self._not_evaluating_reason: str | None = None

    def set_not_evaluating(self, reason: str | None) -> None:
        """Mark the current reason (None once evaluating); earlier reasons drop to 0."""
        if self._not_evaluating_reason is not None:
            self.not_evaluating.labels(self._not_evaluating_reason).set(0)
        if reason is not None:
            self.not_evaluating.labels(reason).set(1)
        self._not_evaluating_reason = reason

    def record(self, report: DriftReport, consecutive: int) -> None:
        for feature in (
            *report.features,
            *(f for f in (report.prediction, report.confidence) if f),
        ):
            labels = (feature.feature, feature.test)
            for gauge, value in (
                (self.statistic, feature.statistic),
                (self.p_value, feature.p_value),
                (self.score, feature.score),
            ):
                if value is not None:
                    gauge.labels(*labels).set(value)
            self.feature_drifted.labels(feature.feature).set(1 if feature.drifted else 0)
        self.drifted.set(1 if report.dataset_drifted else 0)
        self.severity.set(SEVERITY_LEVEL.get(report.severity.value, 0))
        self.consecutive.set(consecutive)
        self.window_samples.set(report.samples)
