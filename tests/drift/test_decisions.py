"""Corrections, dataset verdict, severity rule and hysteresis."""

from __future__ import annotations

import pytest

from driftline_serving.drift.decisions import (
    HysteresisState,
    SeverityInputs,
    adjust_p_values,
    confirm,
    dataset_drifted,
    severity,
)
from driftline_serving.drift.schema import Correction, Severity


def test_bonferroni_multiplies_and_caps():
    assert adjust_p_values([0.01, 0.02, 0.5], Correction.BONFERRONI) == pytest.approx(
        [0.03, 0.06, 1.0]
    )


def test_benjamini_hochberg_step_up_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005, 0.01, 0.03, 0.04 -> *4/rank: 0.02, 0.02, 0.04, 0.04; monotone from the top
    assert adjust_p_values(p, Correction.BENJAMINI_HOCHBERG) == pytest.approx(
        [0.02, 0.04, 0.04, 0.02]
    )


def test_benjamini_hochberg_never_below_raw_and_keeps_order():
    p = [0.2, 0.001, 0.049, 0.9, 0.03]
    adjusted = adjust_p_values(p, Correction.BENJAMINI_HOCHBERG)
    assert all(a >= r for a, r in zip(adjusted, p, strict=True))
    ranks = sorted(range(5), key=lambda i: p[i])
    assert [adjusted[i] for i in ranks] == sorted(adjusted)


def test_no_correction_and_empty_family():
    assert adjust_p_values([0.3], Correction.NONE) == [0.3]
    assert adjust_p_values([], Correction.BONFERRONI) == []


def test_dataset_verdict_by_share():
    assert not dataset_drifted(0, 50, 0.0, False)
    assert dataset_drifted(1, 50, 0.0, False)
    assert not dataset_drifted(2, 50, 0.1, False)
    assert dataset_drifted(5, 50, 0.1, False)
    assert dataset_drifted(0, 50, 0.5, True)  # the multivariate check alone suffices


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        (SeverityInputs(False, 0.0, False, False), Severity.NONE),
        (SeverityInputs(True, 0.02, False, False), Severity.LOW),
        (SeverityInputs(True, 0.1, False, False), Severity.MEDIUM),
        (SeverityInputs(True, 0.02, True, False), Severity.MEDIUM),
        (SeverityInputs(False, 0.0, True, False), Severity.MEDIUM),
        (SeverityInputs(True, 0.5, True, False), Severity.HIGH),
        (SeverityInputs(True, 0.5, False, False), Severity.MEDIUM),
        (SeverityInputs(False, 0.0, False, True), Severity.HIGH),
    ],
)
def test_severity_rule(inputs, expected):
    assert severity(inputs, medium_share=0.1, high_share=0.3) is expected


def test_hysteresis_needs_consecutive_windows_and_resets_on_a_clean_one():
    state = HysteresisState()
    outcomes = []
    for level in [
        Severity.HIGH,
        Severity.MEDIUM,
        Severity.NONE,
        Severity.HIGH,
        Severity.LOW,
        Severity.HIGH,
        Severity.HIGH,
    ]:
        result = confirm(state, level, windows=3)
        state = result.state
        outcomes.append((result.drifted, result.severity))
    assert outcomes == [
        (False, Severity.NONE),
        (False, Severity.NONE),
        (False, Severity.NONE),
        (False, Severity.NONE),
        (False, Severity.NONE),
        (True, Severity.LOW),  # the least severe of the three that held
        (True, Severity.LOW),
    ]
    assert confirm(state, Severity.HIGH, windows=3).severity is Severity.HIGH


def test_hysteresis_of_one_window_confirms_at_once():
    result = confirm(HysteresisState(), Severity.MEDIUM, windows=1)
    assert result.drifted and result.severity is Severity.MEDIUM
    with pytest.raises(ValueError):
        confirm(HysteresisState(), Severity.MEDIUM, windows=0)
