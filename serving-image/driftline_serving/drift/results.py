"""What an evaluation returns: frozen values with a JSON-ready `to_dict()`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from driftline_serving.drift.schema import Severity


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: an undefined number is null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class InvalidCounts:
    nan: int = 0  # NaN or missing values
    infinite: int = 0
    unparseable: int = 0  # not a number in a numeric feature
    unseen: int = 0  # categories the reference does not name (still tested, not dropped)
    absent: bool = False  # the window had no column for the feature

    @property
    def dropped(self) -> int:
        return self.nan + self.infinite + self.unparseable

    def to_dict(self) -> dict[str, Any]:
        return {
            "nan": self.nan,
            "infinite": self.infinite,
            "unparseable": self.unparseable,
            "unseen": self.unseen,
            "absent": self.absent,
        }


@dataclass(frozen=True)
class TestResult:
    test: str
    statistic: float | None
    p_value: float | None  # raw p-value, for hypothesis tests only
    score: float | None  # distance score, for PSI, Jensen-Shannon and Wasserstein
    threshold: float | None
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "statistic": _finite(self.statistic),
            "pValue": _finite(self.p_value),
            "score": _finite(self.score),
            "threshold": self.threshold,
            "drifted": self.drifted,
        }


@dataclass(frozen=True)
class FeatureResult:
    feature: str
    type: str
    test: str  # the test that decided: the first that flagged, else the significance test
    statistic: float | None
    p_value: float | None  # corrected p-value of the feature's significance test
    score: float | None
    drifted: bool
    effect_size: float | None  # KS statistic or total variation
    samples: int  # valid values in the window
    tests: tuple[TestResult, ...] = ()
    invalid: InvalidCounts = field(default_factory=InvalidCounts)
    note: str | None = None  # why there is no verdict, when there is none

    @property
    def checked(self) -> bool:
        """Whether the feature got a verdict; `note` says why not."""
        return self.note is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "type": self.type,
            "checked": self.checked,
            "test": self.test,
            "statistic": _finite(self.statistic),
            "pValue": _finite(self.p_value),
            "score": _finite(self.score),
            "drifted": self.drifted,
            "effectSize": _finite(self.effect_size),
            "samples": self.samples,
            "tests": [t.to_dict() for t in self.tests],
            "invalid": self.invalid.to_dict(),
            "note": self.note,
        }


@dataclass(frozen=True)
class MultivariateReport:
    """The multivariate check's result, or, with a `note`, why it could not be made."""

    statistic: float | None
    p_value: float | None  # corrected
    drifted: bool
    pair: tuple[str, str] | None
    correlation_change: float | None
    rows: int
    note: str | None = None  # why there is no verdict, when there is none

    @classmethod
    def not_checked(cls, reason: str) -> MultivariateReport:
        return cls(None, None, False, None, None, 0, reason)

    @property
    def checked(self) -> bool:
        return self.note is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": "NormalScoreCorrelation",
            "checked": self.checked,
            "statistic": _finite(self.statistic),
            "pValue": _finite(self.p_value),
            "drifted": self.drifted,
            "pair": list(self.pair) if self.pair else None,
            "correlationChange": _finite(self.correlation_change),
            "rows": self.rows,
            "note": self.note,
        }


@dataclass(frozen=True)
class PerformanceResult:
    metric: str
    value: float | None
    baseline: float
    labels: int
    absolute_drop: float | None
    relative_drop: float | None
    dropped: bool
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "value": _finite(self.value),
            "baseline": self.baseline,
            "labels": self.labels,
            "absoluteDrop": _finite(self.absolute_drop),
            "relativeDrop": _finite(self.relative_drop),
            "dropped": self.dropped,
            "note": self.note,
        }


@dataclass(frozen=True)
class DriftReport:
    samples: int  # rows in the window
    evaluated: bool  # False when the window was too small for any verdict
    features: tuple[FeatureResult, ...]
    drifted_features: int
    drifted_share: float
    dataset_drifted: bool
    severity: Severity
    significance: float
    correction: str
    multivariate: MultivariateReport | None = None
    prediction: FeatureResult | None = None
    confidence: FeatureResult | None = None
    performance: PerformanceResult | None = None
    invalid_values: int = 0  # dropped values over all features
    invalid_rows: int = 0  # rows of the wrong width, dropped before evaluation
    unknown_columns: tuple[str, ...] = ()  # window columns the profile does not know
    note: str | None = None

    @property
    def checked_features(self) -> int:
        return sum(f.checked for f in self.features)

    @property
    def not_checked(self) -> tuple[tuple[str, str], ...]:
        """(name, reason) of every check that was due and got no verdict: features, the
        multivariate check, and the prediction and confidence checks that were asked for."""
        due = [*self.features, *(r for r in (self.prediction, self.confidence) if r)]
        missed = [(r.feature, r.note) for r in due if r.note is not None]
        if self.multivariate is not None and self.multivariate.note is not None:
            missed.append(("multivariate", self.multivariate.note))
        return tuple(missed)

    @property
    def complete(self) -> bool:
        """Every check that was due got a verdict."""
        return not self.not_checked

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "evaluated": self.evaluated,
            "complete": self.complete,
            "drifted": self.dataset_drifted,
            "severity": self.severity.value,
            "checkedFeatures": self.checked_features,
            "totalFeatures": len(self.features),
            "notChecked": [{"name": name, "reason": reason} for name, reason in self.not_checked],
            "driftedFeatures": self.drifted_features,
            "driftedShare": self.drifted_share,
            "significance": self.significance,
            "correction": self.correction,
            "features": [f.to_dict() for f in self.features],
            "multivariate": self.multivariate.to_dict() if self.multivariate else None,
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "confidence": self.confidence.to_dict() if self.confidence else None,
            "performance": self.performance.to_dict() if self.performance else None,
            "invalidValues": self.invalid_values,
            "invalidRows": self.invalid_rows,
            "unknownColumns": list(self.unknown_columns),
            "note": self.note,
        }
