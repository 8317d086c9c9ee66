"""What an evaluation is asked to do: the DriftPolicy's settings as a plain value.

Defaults are the DriftPolicy's. Correction: Benjamini-Hochberg. On a window with no
drift at all every null hypothesis is true, and then BH's false-discovery rate is its
family-wise error rate, so the chance of any false alarm stays at or below the
significance, as Bonferroni's does; when some features do drift, BH keeps more power
for the others. The effect-size floor removes what BH alone would still flag on huge
windows: statistically certain but negligible shifts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from driftline_serving.drift.schema import (
    ALLOWED_TESTS,
    CATEGORICAL_TESTS,
    NUMERIC_TESTS,
    Correction,
    FeatureType,
    TestName,
)


class ConfigError(ValueError):
    """Settings that cannot be evaluated."""


@dataclass(frozen=True)
class DriftConfig:
    significance: float = 0.05
    correction: Correction = Correction.BENJAMINI_HOCHBERG
    numeric_tests: tuple[TestName, ...] = NUMERIC_TESTS
    categorical_tests: tuple[TestName, ...] = CATEGORICAL_TESTS
    per_feature: Mapping[str, tuple[TestName, ...]] = field(default_factory=dict)
    psi_threshold: float = 0.2
    jensen_shannon_threshold: float = 0.1
    wasserstein_threshold: float = 0.1
    # Effect-size floor on the largest difference in probability: the KS statistic for
    # numeric features, total variation for categorical ones. 0.025 is about a 0.06 sd
    # mean shift of a normal feature, a quarter of what the benchmark calls small.
    min_effect_size: float = 0.025
    min_samples: int = 100
    # Dataset verdict: drifted when at least this share of features drift (and at least
    # one does), or when the multivariate check does.
    dataset_drift_share: float = 0.0
    multivariate: bool = True
    prediction_drift: bool = True
    confidence_drift: bool = True
    # Threads measuring features in parallel; 0 = up to 4, as many as there are CPUs.
    # Results do not depend on it.
    threads: int = 0
    # Severity rule (see docs/drift.md)
    medium_share: float = 0.1
    high_share: float = 0.3

    def __post_init__(self) -> None:
        if not 0 < self.significance < 1:
            raise ConfigError(f"significance must be between 0 and 1, got {self.significance}")
        for name in ("psi_threshold", "jensen_shannon_threshold", "wasserstein_threshold"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if self.min_effect_size < 0:
            raise ConfigError("min_effect_size must not be negative")
        if self.threads < 0:
            raise ConfigError("threads must not be negative")
        if self.min_samples < 1:
            raise ConfigError("min_samples must be at least 1")
        if not 0 <= self.dataset_drift_share <= 1:
            raise ConfigError("dataset_drift_share must be between 0 and 1")
        object.__setattr__(self, "correction", _parse(Correction, self.correction, "correction"))
        object.__setattr__(
            self, "numeric_tests", _tests(self.numeric_tests, FeatureType.NUMERIC, "numeric")
        )
        object.__setattr__(
            self,
            "categorical_tests",
            _tests(self.categorical_tests, FeatureType.CATEGORICAL, "categorical"),
        )
        object.__setattr__(
            self, "per_feature", {k: tuple(_tests(v, None, k)) for k, v in self.per_feature.items()}
        )

    def tests_for(self, name: str, feature_type: FeatureType) -> tuple[TestName, ...]:
        chosen = self.per_feature.get(name)
        if chosen is None:
            return (
                self.numeric_tests
                if feature_type is FeatureType.NUMERIC
                else self.categorical_tests
            )
        allowed = ALLOWED_TESTS[feature_type]
        wrong = [t for t in chosen if t not in allowed]
        if wrong:
            raise ConfigError(
                f"feature {name!r} is {feature_type.value}; {', '.join(wrong)} "
                f"cannot run on it (allowed: {', '.join(allowed)})"
            )
        return chosen

    @classmethod
    def from_policy(cls, spec: Mapping[str, Any]) -> DriftConfig:
        """From a DriftPolicy spec as JSON (camelCase keys), the way the sidecar gets it."""
        tests = spec.get("tests") or {}
        thresholds = spec.get("thresholds") or {}
        window = spec.get("window") or {}
        prediction = spec.get("predictionDrift") or {}
        kwargs: dict[str, Any] = {
            "significance": spec.get("significance", 0.05),
            "correction": spec.get("correction", Correction.BENJAMINI_HOCHBERG),
            "psi_threshold": thresholds.get("psi", 0.2),
            "jensen_shannon_threshold": thresholds.get("jensenShannon", 0.1),
            "wasserstein_threshold": thresholds.get("wasserstein", 0.1),
            "min_samples": window.get("minSamples", 100),
            "prediction_drift": prediction.get("enabled", True),
            "confidence_drift": prediction.get("confidence", True),
            "per_feature": {
                item["feature"]: tuple(item["tests"]) for item in tests.get("perFeature", [])
            },
        }
        if tests.get("numeric"):
            kwargs["numeric_tests"] = tuple(tests["numeric"])
        if tests.get("categorical"):
            kwargs["categorical_tests"] = tuple(tests["categorical"])
        return cls(**kwargs)


def _parse(kind: Any, value: Any, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise ConfigError(f"unknown {what} {value!r} (expected one of {allowed})") from None


def _tests(values: Any, feature_type: FeatureType | None, what: str) -> tuple[TestName, ...]:
    if isinstance(values, str) or not values:
        raise ConfigError(f"tests for {what} must be a non-empty list")
    parsed = tuple(_parse(TestName, value, "test") for value in values)
    if feature_type is not None:
        allowed = ALLOWED_TESTS[feature_type]
        wrong = [t.value for t in parsed if t not in allowed]
        if wrong:
            raise ConfigError(
                f"{', '.join(wrong)} cannot run on {feature_type.value} features "
                f"(allowed: {', '.join(allowed)})"
            )
    return parsed
