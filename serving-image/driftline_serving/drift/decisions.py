"""From test results to verdicts: correction, dataset verdict, severity, hysteresis."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from driftline_serving.drift.schema import Correction, Severity


def adjust_p_values(p_values: Sequence[float], correction: Correction) -> list[float]:
    """Adjusted p-values: reject hypothesis i at level alpha when adjusted[i] <= alpha.

    Bonferroni multiplies by the family size. Benjamini-Hochberg uses the step-up
    adjustment, min over j >= rank of p_(j) * m / j (as statsmodels' fdr_bh).
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return []
    if correction is Correction.NONE:
        return np.clip(p, 0.0, 1.0).tolist()
    if correction is Correction.BONFERRONI:
        return np.clip(p * m, 0.0, 1.0).tolist()
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    stepped = np.minimum.accumulate(scaled[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.clip(stepped, 0.0, 1.0)
    return adjusted.tolist()


def dataset_drifted(
    drifted_features: int, total_features: int, share: float, multivariate: bool
) -> bool:
    if multivariate:
        return True
    if drifted_features == 0 or total_features == 0:
        return False
    return drifted_features >= math.ceil(share * total_features)


@dataclass(frozen=True)
class SeverityInputs:
    dataset_drifted: bool
    drifted_share: float  # of input features
    prediction_drifted: bool
    performance_dropped: bool


def severity(inputs: SeverityInputs, medium_share: float, high_share: float) -> Severity:
    """The severity rule.

    - None: nothing drifted.
    - High: the model's measured performance dropped, or at least `high_share` of the
      features drifted together with the model's outputs.
    - Medium: the model's outputs (predictions or confidence) drifted, or at least
      `medium_share` of the features drifted.
    - Low: some inputs drifted (or their dependence did) but the outputs did not.
    """
    if inputs.performance_dropped:
        return Severity.HIGH
    if not (inputs.dataset_drifted or inputs.prediction_drifted):
        return Severity.NONE
    if inputs.prediction_drifted and inputs.drifted_share >= high_share:
        return Severity.HIGH
    if inputs.prediction_drifted or inputs.drifted_share >= medium_share:
        return Severity.MEDIUM
    return Severity.LOW


@dataclass(frozen=True)
class HysteresisState:
    """Consecutive windows with drift, and their severities (most recent last)."""

    consecutive: int = 0
    recent: tuple[Severity, ...] = ()


@dataclass(frozen=True)
class Confirmed:
    state: HysteresisState
    drifted: bool  # drift held for the required number of windows
    severity: Severity  # the least severe of those windows: what held throughout


def confirm(state: HysteresisState, severity_now: Severity, windows: int) -> Confirmed:
    """A verdict counts only after `windows` consecutive drifted evaluations.

    One clean window resets the count. Windows with too few samples should not be fed
    in at all: they carry no verdict, so they neither confirm nor reset.
    """
    if windows < 1:
        raise ValueError("windows must be at least 1")
    if severity_now is Severity.NONE:
        fresh = HysteresisState()
        return Confirmed(fresh, False, Severity.NONE)
    recent = (*state.recent, severity_now)[-windows:]
    new_state = HysteresisState(state.consecutive + 1, recent)
    if new_state.consecutive < windows:
        return Confirmed(new_state, False, Severity.NONE)
    held = min(recent, key=lambda s: s.rank)
    return Confirmed(new_state, True, held)
