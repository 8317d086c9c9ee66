"""The drift vocabulary: defined in `driftline_vocabulary.drift`, which the drift engine
shares; re-exported here so that the resource models' imports read `driftline.vocabulary`."""

from driftline_vocabulary.drift import (
    CATEGORICAL_TESTS,
    NUMERIC_TESTS,
    Correction,
    FeatureType,
    Severity,
    TestName,
)

__all__ = [
    "CATEGORICAL_TESTS",
    "NUMERIC_TESTS",
    "Correction",
    "FeatureType",
    "Severity",
    "TestName",
]
