"""Calibration: false alarms on clean windows, power on shifted ones, and the
multivariate check. Seeded and sized to run in seconds; the benchmark repeats these
measurements on its larger data set and records them in bench/drift/RESULTS.md."""

from __future__ import annotations

import numpy as np
import pytest

from driftline_serving.drift import DriftConfig, evaluate
from driftline_serving.drift.profile import build_profile
from driftline_serving.drift.schema import Schema

# long statistical loops: run by default, deselect with -m "not slow"
pytestmark = pytest.mark.slow

FEATURES = 20
WINDOWS = 1000
WINDOW_ROWS = 500


def mixed(rng: np.random.Generator, rows: int, shift: float = 0.0) -> dict:
    """16 numeric features of four shapes and 4 categorical ones; `shift` (in sd)
    moves the first feature's mean."""
    data = {}
    for i in range(16):
        kind = i % 4
        if kind == 0:
            values = rng.normal(0, 1, rows)
        elif kind == 1:
            values = rng.lognormal(0, 0.5, rows)
        elif kind == 2:
            values = rng.standard_t(4, rows)
        else:
            values = rng.poisson(5, rows).astype(float)
        data[f"n{i}"] = values
    data["n0"] = data["n0"] + shift
    for i in range(4):
        data[f"c{i}"] = rng.choice(6, rows, p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.05])
    return data


SCHEMA = Schema.of(
    [(f"n{i}", "numeric") for i in range(16)] + [(f"c{i}", "categorical") for i in range(4)]
)


@pytest.fixture(scope="module")
def mixed_profile():
    return build_profile(SCHEMA, [mixed(np.random.default_rng(99), 50_000)])


def clean_windows(seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(WINDOWS):
        yield mixed(rng, WINDOW_ROWS)


@pytest.mark.parametrize("correction", ["BenjaminiHochberg", "Bonferroni"])
def test_family_wise_false_alarm_rate_on_1000_clean_windows(mixed_profile, correction):
    config = DriftConfig(correction=correction)
    alarms = 0
    feature_alarms = 0
    for window in clean_windows(2024):
        report = evaluate(mixed_profile, window, config)
        alarms += report.dataset_drifted
        feature_alarms += report.drifted_features
    rate = alarms / WINDOWS
    print(
        f"\n{correction}: family-wise false-alarm rate {rate:.3f} over {WINDOWS} clean windows, "
        f"per-feature rate {feature_alarms / (WINDOWS * FEATURES):.4f}"
    )
    assert rate <= config.significance


def test_without_correction_false_alarms_exceed_significance(mixed_profile):
    # the check above could not fail if the tests never fired: uncorrected, they must
    config = DriftConfig(correction="None", multivariate=False)
    alarms = sum(
        evaluate(mixed_profile, w, config).dataset_drifted
        for _, w in zip(range(200), clean_windows(7), strict=False)
    )
    assert alarms / 200 > 0.2


def test_power_grows_with_the_shift(mixed_profile):
    rng = np.random.default_rng(31)
    power = {}
    for shift in (0.1, 0.25, 0.5):
        hits = sum(
            next(
                f
                for f in evaluate(mixed_profile, mixed(rng, 1000, shift)).features
                if f.feature == "n0"
            ).drifted
            for _ in range(200)
        )
        power[shift] = hits / 200
    print(f"\npower on a 1000-row window by mean shift (sd): {power}")
    assert power[0.1] < power[0.25] <= power[0.5]
    assert power[0.5] == 1.0
    assert power[0.25] > 0.9
    assert power[0.1] > 0.2


def correlated(rng: np.random.Generator, rows: int, rho: float) -> dict:
    """Ten standard normal features; the first two correlated by rho (marginals N(0, 1))."""
    data = {f"x{i}": rng.normal(size=rows) for i in range(10)}
    data["x1"] = rho * data["x0"] + np.sqrt(1 - rho**2) * data["x1"]
    data["x2"] = np.exp(data["x2"])  # a skewed marginal: normal scores must not mind
    return data


def test_multivariate_check_catches_correlation_change_with_same_marginals():
    schema = Schema.of([(f"x{i}", "numeric") for i in range(10)])
    profile = build_profile(schema, [correlated(np.random.default_rng(1), 50_000, 0.0)])
    config = DriftConfig(correction="None")
    rng = np.random.default_rng(2)
    clean_flags = 0
    clean_feature_flags = 0
    for _ in range(500):
        report = evaluate(profile, correlated(rng, 1000, 0.0), config)
        clean_flags += report.multivariate.drifted
    caught = 0
    for _ in range(100):
        report = evaluate(profile, correlated(rng, 1000, 0.4), DriftConfig())
        caught += report.multivariate.drifted
        clean_feature_flags += report.drifted_features
    print(
        f"\nmultivariate: flags {clean_flags / 500:.3f} of clean windows, catches {caught / 100:.2f} "
        f"of windows with correlation 0 -> 0.4; per-feature tests flag {clean_feature_flags} of 1000 features"
    )
    assert clean_flags / 500 <= 0.05
    assert caught / 100 >= 0.95
    # the marginals did not change: per-feature tests (almost) never fire
    assert clean_feature_flags / (100 * 10) <= 0.02
