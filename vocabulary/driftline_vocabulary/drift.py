"""The drift vocabulary shared by the DriftPolicy resource and the drift engine.

The resource passes these strings through unchanged, so they are defined once, here,
in a module light enough for both the operator and the sidecar to import.
`Severity`'s member order is the severity order: everything that compares severities
uses `Severity.rank`.
"""

from __future__ import annotations

from enum import StrEnum


class FeatureType(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class TestName(StrEnum):
    KOLMOGOROV_SMIRNOV = "KolmogorovSmirnov"
    CHI_SQUARE = "ChiSquare"
    PSI = "PSI"
    JENSEN_SHANNON = "JensenShannon"
    WASSERSTEIN = "Wasserstein"


class Correction(StrEnum):
    BONFERRONI = "Bonferroni"
    BENJAMINI_HOCHBERG = "BenjaminiHochberg"
    NONE = "None"


class Severity(StrEnum):
    NONE = "None"
    LOW = "Low"
    MEDIUM = "Medium"
    HIGH = "High"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


NUMERIC_TESTS: tuple[TestName, ...] = (
    TestName.KOLMOGOROV_SMIRNOV,
    TestName.PSI,
    TestName.JENSEN_SHANNON,
    TestName.WASSERSTEIN,
)
CATEGORICAL_TESTS: tuple[TestName, ...] = (
    TestName.CHI_SQUARE,
    TestName.PSI,
    TestName.JENSEN_SHANNON,
)
