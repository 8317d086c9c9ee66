"""The statistical tests against scipy's reference implementations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

from driftline_serving.drift import statistical_tests as st
from driftline_serving.drift.sketches import QuantileSummary
from tests.support import stable_seed


def exact_sample(values: np.ndarray):
    summary = QuantileSummary(capacity=max(values.size, 2))
    summary.add(values)
    sample = summary.result()
    assert sample.exact
    return sample


SHAPES = {
    "normal": lambda rng, n, shift: rng.normal(shift, 1.0, n),
    "lognormal": lambda rng, n, shift: rng.lognormal(shift, 0.8, n),
    "discrete": lambda rng, n, shift: rng.poisson(3 + 10 * shift, n).astype(float),
    "heavy": lambda rng, n, shift: rng.standard_t(2, n) + shift,
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("shift", [0.0, 0.03, 0.1, 0.4])
@pytest.mark.parametrize(("n", "m"), [(20000, 1000), (12000, 3000), (50000, 400)])
def test_ks_matches_scipy_asymptotic(shape, shift, n, m):
    seed = stable_seed(shape, shift, n)
    rng = np.random.default_rng(seed)
    reference = SHAPES[shape](rng, n, 0.0)
    window = SHAPES[shape](rng, m, shift)
    result = st.ks_against_reference(exact_sample(reference), np.sort(window))
    expected = stats.ks_2samp(reference, window, method="asymp")
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-12), f"seed {seed}"
    assert result.p_value == pytest.approx(expected.pvalue, abs=1e-9), f"seed {seed}"
    # above 10 000 values scipy's default method is the same asymptotic one
    default = stats.ks_2samp(reference, window)
    assert result.p_value == pytest.approx(default.pvalue, abs=1e-9), f"seed {seed}"


def full_search_supremum(sample, window_sorted: np.ndarray) -> float:
    """sup |F_ref - F_win| by brute force: both CDFs, both one-sided limits, at every
    reference and window value."""
    values, cumulative = sample.values, sample.cumulative()
    points = np.union1d(values, window_sorted)
    m = window_sorted.size
    ref_right = cumulative[np.searchsorted(values, points, side="right")]
    ref_left = cumulative[np.searchsorted(values, points, side="left")]
    win_right = np.searchsorted(window_sorted, points, side="right") / m
    win_left = np.searchsorted(window_sorted, points, side="left") / m
    return float(max(np.max(np.abs(ref_right - win_right)), np.max(np.abs(ref_left - win_left))))


@pytest.mark.parametrize("case", range(60))
def test_ks_statistic_is_exactly_the_full_search(case):
    # the coarse-then-fine search must find the same supremum as looking everywhere,
    # with windows that tie reference values, have ties of their own, or neither
    rng = np.random.default_rng(case)
    n = int(rng.integers(50, 20000))
    m = int(rng.integers(200, 12000))
    reference = np.round(rng.normal(size=n), int(rng.integers(1, 4)))
    kind = case % 3
    if kind == 0:
        window = rng.normal(rng.uniform(-0.3, 0.3), 1.0, m)
    elif kind == 1:  # some window values equal reference values, the window has no ties
        window = np.unique(np.concatenate((rng.choice(reference, m // 4), rng.normal(size=m))))
    else:  # rounded: ties within the window too
        window = np.round(rng.normal(0.05, 1.0, m), 2)
    capacity = n if case % 2 else 2000  # exact sample or a weighted summary
    summary = QuantileSummary(capacity=max(capacity, 2))
    summary.add(reference)
    sample = summary.result()
    window = np.sort(window)
    result = st.ks_against_reference(sample, window)
    assert result.statistic == pytest.approx(full_search_supremum(sample, window), abs=1e-12)


def test_ks_p_value_is_the_same_in_the_regime_scipy_sums_slowly():
    for size in (300, 2000, 9091, 40000):
        for statistic in np.linspace(np.sqrt(2.2 / size), np.sqrt(60 / size), 12):
            mine = st.ks_p_value(statistic, size * 11, int(size * 1.1))
            effective = round(size * 11 * int(size * 1.1) / (size * 11 + int(size * 1.1)))
            assert mine == pytest.approx(stats.kstwo.sf(statistic, effective), abs=1e-12, rel=1e-8)


def test_pelz_good_matches_scipy_where_scipy_uses_it():
    # the usual regime of large windows: n x^2 < 2.2 and n x^1.5 > 1.4
    checked = 0
    for size in (150, 990, 9091, 100_000, 250_000, 2_000_000):
        for statistic in np.geomspace(0.3 / size, 0.45, 200):
            t = size * statistic
            in_regime = 1.0 < t < size - 1 and t * statistic < 2.2
            if not in_regime or (size <= 100_000 and size * statistic**1.5 <= 1.4):
                continue
            expected = stats.kstwo.sf(statistic, size)
            assert st.pelz_good_sf(size, statistic) == pytest.approx(expected, abs=1e-10)
            checked += 1
            # and through ks_p_value, whose effective size is n m / (n + m)
            effective = round(size * 11 / 2)
            if effective * statistic**2 < 2.2:
                assert st.ks_p_value(statistic, size * 11, size * 11) == pytest.approx(
                    stats.kstwo.sf(statistic, effective), abs=1e-10
                )
    assert checked > 200


def test_durbin_matrix_matches_scipy_where_scipy_uses_it():
    # small statistics at moderate sizes (no drift, the common case): n x^1.5 <= 1.4
    checked = 0
    for size in (141, 990, 9091, 40_000, 100_000):
        for statistic in np.geomspace(1.01 / size, 0.999 * (1.4 / size) ** (2 / 3), 40):
            mine = 1.0 - st.durbin_matrix_cdf(size, statistic)
            try:
                with np.errstate(over="raise", invalid="raise"):
                    expected = stats.kstwo.sf(statistic, size)
            except FloatingPointError:
                # scipy's matrix power overflows at the largest sizes and answers 0; a
                # statistic this close to its minimum 1/(2n) is all but certain
                assert mine > 0.999, (size, statistic)
                assert st.ks_p_value(statistic, size * 2, size * 2) == mine
                continue
            assert mine == pytest.approx(expected, abs=1e-12), (size, statistic)
            checked += 1
            # and through ks_p_value, whose effective size is n m / (n + m)
            assert st.ks_p_value(statistic, size * 2, size * 2) == pytest.approx(
                expected, abs=1e-12
            ), (size, statistic)
    assert checked > 150


def test_the_ks_p_value_uses_no_private_scipy_module():
    # scipy's private modules move between releases; the method is cited, not imported
    source = Path(st.__file__).read_text()
    assert "scipy.stats._" not in source and "from scipy.stats._" not in source
    assert "Simard" in source and "Pelz" in source and "Marsaglia" in source


def test_smirnov_tail_matches_scipy():
    for n in (150, 1000, 7000):
        for x in (0.02, 0.05, 0.1, 0.3):
            if n * x * x < 2.2:
                continue
            assert st.smirnov_upper_tail(n, x) == pytest.approx(special.smirnov(n, x), rel=1e-9)


def test_ks_identical_samples_have_no_difference():
    values = np.random.default_rng(0).normal(size=500)
    result = st.ks_against_reference(exact_sample(values), np.sort(values))
    assert result.statistic == 0.0
    assert result.p_value == 1.0


@pytest.mark.parametrize(
    ("reference", "window"),
    [
        ([500, 300, 200], [40, 35, 25]),
        ([500, 300, 200, 0], [40, 35, 20, 5]),  # a category unseen in the reference
        ([700, 300], [60, 40]),  # one degree of freedom: Yates' correction
        ([10, 5, 1, 0], [3, 9, 0, 0]),  # empty on both sides: dropped
        ([1000, 1, 3000], [250, 9, 700]),
    ],
)
def test_chi_square_matches_scipy_contingency(reference, window):
    result = st.chi_square_homogeneity(np.array(reference, float), np.array(window, float))
    table = np.array([reference, window], dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    expected = stats.chi2_contingency(table)
    assert result.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert result.p_value == pytest.approx(expected.pvalue, abs=1e-9)
    assert result.dof == expected.dof


def test_chi_square_on_a_single_category_is_no_evidence():
    result = st.chi_square_homogeneity(np.array([10.0, 0.0]), np.array([5.0, 0.0]))
    assert (result.statistic, result.p_value) == (0.0, 1.0)


def test_goodness_of_fit_matches_scipy_chisquare():
    frequencies = np.array([0.1, 0.2, 0.3, 0.4])
    counts = np.array([12.0, 25.0, 25.0, 38.0])
    result = st.chi_square_goodness_of_fit(frequencies, counts)
    expected = stats.chisquare(counts, frequencies * counts.sum())
    assert result.statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)


def test_goodness_of_fit_with_values_where_the_reference_has_none_is_certain_drift():
    result = st.chi_square_goodness_of_fit(np.array([0.5, 0.5, 0.0]), np.array([10.0, 10.0, 1.0]))
    assert result.p_value == 0.0


def test_jensen_shannon_matches_scipy_base_2():
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = st.smoothed_proportions(rng.integers(0, 50, 8))
        q = st.smoothed_proportions(rng.integers(0, 50, 8))
        assert st.jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2), abs=1e-12)
    assert st.jensen_shannon(p, p) == pytest.approx(0.0, abs=1e-7)


def test_psi_by_hand():
    p = np.array([0.5, 0.5])
    q = np.array([0.25, 0.75])
    assert st.psi(p, q) == pytest.approx(-0.25 * np.log(0.5) + 0.25 * np.log(1.5))
    assert st.psi(p, p) == 0.0


def test_smoothing_keeps_empty_bins_finite():
    proportions = st.smoothed_proportions(np.array([100.0, 0.0]))
    assert np.all(proportions > 0)
    assert np.isfinite(st.psi(st.smoothed_proportions(np.array([0.0, 100.0])), proportions))


def test_bin_counts_uses_right_closed_bins():
    window = np.sort(np.array([0.0, 1.0, 1.0, 2.0, 3.0]))
    assert st.bin_counts(window, np.array([1.0, 2.0])).tolist() == [3.0, 1.0, 1.0]


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_wasserstein_close_to_scipy(shape):
    from driftline_serving.drift.profile import _numeric_profile

    rng = np.random.default_rng(7)
    reference = SHAPES[shape](rng, 20000, 0.0)
    window = SHAPES[shape](rng, 2000, 0.3)
    profile = _numeric_profile("x", exact_sample(reference), 0)
    mine = st.wasserstein_normalised(profile.grid, np.sort(window), profile.std)
    expected = stats.wasserstein_distance(reference, window) / np.std(reference)
    # one reference quantile per window step: exact enough for light tails; a t(2)
    # feature's extreme tail is under-read (documented in docs/drift.md)
    tolerance = 0.15 if shape == "heavy" else 0.05
    assert mine == pytest.approx(expected, rel=tolerance, abs=0.005)
