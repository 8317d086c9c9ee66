"""The prediction divergence gate, its test checked against scipy."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2, chi2_contingency

from driftline.analysis.divergence import (
    BinnedCounts,
    DivergenceSettings,
    chi2_sf,
    homogeneity_test,
    judge_binned_divergence,
    judge_divergence,
    regularized_upper_gamma,
)

DEFAULTS = DivergenceSettings()


@settings(max_examples=150, deadline=None)
@given(
    statistic=st.floats(min_value=0, max_value=2000, allow_nan=False),
    dof=st.integers(min_value=1, max_value=300),
)
def test_the_chi_square_survival_function_agrees_with_scipy(statistic: float, dof: int) -> None:
    expected = chi2.sf(statistic, dof)
    assert chi2_sf(statistic, dof) == pytest.approx(expected, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(("statistic", "dof"), [(3.841458820694124, 1), (1e-12, 1), (1e4, 2)])
def test_the_survival_function_at_known_points(statistic: float, dof: int) -> None:
    assert chi2_sf(statistic, dof) == pytest.approx(chi2.sf(statistic, dof), rel=1e-12)


def test_the_survival_function_edges() -> None:
    assert chi2_sf(0, 3) == 1.0 and chi2_sf(-1, 3) == 1.0
    assert regularized_upper_gamma(2.0, math.inf) == 0.0
    with pytest.raises(ValueError, match="degrees of freedom"):
        chi2_sf(1.0, 0)
    with pytest.raises(ValueError, match="a > 0"):
        regularized_upper_gamma(0.0, 1.0)
    with pytest.raises(ValueError, match="x >= 0"):
        regularized_upper_gamma(1.0, math.nan)


TABLES = st.integers(min_value=2, max_value=8).flatmap(
    lambda k: st.tuples(
        st.lists(st.integers(0, 500), min_size=k, max_size=k),
        st.lists(st.integers(0, 500), min_size=k, max_size=k),
    )
)


@settings(max_examples=100, deadline=None)
@given(table=TABLES, g_test=st.booleans())
def test_the_homogeneity_test_agrees_with_scipy_chi2_contingency(
    table: tuple[list[int], list[int]], g_test: bool
) -> None:
    canary_row, stable_row = table
    columns = [i for i in range(len(canary_row)) if canary_row[i] + stable_row[i] > 0]
    if sum(canary_row) == 0 or sum(stable_row) == 0 or len(columns) < 2:
        return  # cases scipy refuses; covered by their own tests below
    canary = {f"class-{i}": canary_row[i] for i in range(len(canary_row))}
    stable = {f"class-{i}": stable_row[i] for i in range(len(stable_row))}
    result = homogeneity_test(canary, stable, "g-test" if g_test else "chi-square")
    observed = [[canary_row[i] for i in columns], [stable_row[i] for i in columns]]
    expected = chi2_contingency(
        observed, correction=False, lambda_="log-likelihood" if g_test else None
    )
    pearson = chi2_contingency(observed, correction=False)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-9, abs=1e-9)
    assert result.dof == expected.dof
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-7, abs=1e-12)
    n = sum(map(sum, observed))
    assert result.cramers_v == pytest.approx(math.sqrt(pearson.statistic / n), rel=1e-9)


def test_total_variation_is_the_share_of_predictions_that_differ() -> None:
    result = homogeneity_test({"yes": 70, "no": 30}, {"yes": 50, "no": 50})
    assert result.total_variation == pytest.approx(0.2)


def test_classes_seen_by_neither_track_are_dropped() -> None:
    result = homogeneity_test({"a": 5, "b": 5, "c": 0}, {"a": 6, "b": 4})
    assert result.dof == 1


def test_one_class_on_both_tracks_is_no_divergence() -> None:
    result = homogeneity_test({"a": 500}, {"a": 300, "b": 0})
    assert (result.statistic, result.dof, result.p_value, result.total_variation) == (0, 0, 1, 0)


@pytest.mark.parametrize(
    ("canary", "stable", "problem"),
    [
        ({"a": -1, "b": 5}, {"a": 1}, "finite and >= 0"),
        ({"a": math.nan}, {"a": 1}, "finite and >= 0"),
        ({"a": "3"}, {"a": 1}, "not a number"),
        ({"a": True}, {"a": 1}, "not a number"),
        ({"a": 0}, {"a": 1}, "each track needs predictions"),
        ({}, {"a": 1}, "each track needs predictions"),
    ],
)
def test_bad_counts_are_refused(canary: dict, stable: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        homogeneity_test(canary, stable)


def test_too_few_predictions_on_either_track_are_inconclusive() -> None:
    for canary, stable in (({"a": 100, "b": 99}, {"a": 500}), ({"a": 500}, {"b": 150})):
        decided = judge_divergence(canary, stable, DEFAULTS)
        assert decided.verdict == "Inconclusive"
        assert "fewer than the minimum 200" in decided.reason


def test_a_canary_that_predicts_differently_fails() -> None:
    decided = judge_divergence({"churn": 400, "stay": 600}, {"churn": 200, "stay": 800}, DEFAULTS)
    assert decided.verdict == "Failed"
    assert decided.gate == "prediction-divergence"
    assert "total-variation 0.2 (min 0.1)" in decided.reason and "p = " in decided.reason


def test_a_significant_but_negligible_difference_passes() -> None:
    # a 2-point shift over a million predictions is significant, and does not matter
    canary = {"churn": 220_000, "stay": 780_000}
    stable = {"churn": 200_000, "stay": 800_000}
    assert homogeneity_test(canary, stable).p_value < 1e-100
    decided = judge_divergence(canary, stable, DEFAULTS)
    assert decided.verdict == "Passed" and "0.02 (min 0.1)" in decided.reason


def test_a_large_but_insignificant_difference_passes() -> None:
    strict = DivergenceSettings(min_samples=5, alpha=0.001)
    decided = judge_divergence({"a": 7, "b": 3}, {"a": 3, "b": 7}, strict)
    assert homogeneity_test({"a": 7, "b": 3}, {"a": 3, "b": 7}).total_variation >= 0.1
    assert decided.verdict == "Passed"


def test_the_same_predictions_pass() -> None:
    counts = {"a": 300, "b": 500, "c": 200}
    assert judge_divergence(counts, dict(counts), DEFAULTS).verdict == "Passed"


def test_the_g_test_and_cramers_v_can_be_chosen() -> None:
    chosen = DivergenceSettings(test="g-test", effect="cramers-v", min_effect=0.3)
    canary, stable = {"churn": 400, "stay": 600}, {"churn": 200, "stay": 800}
    decided = judge_divergence(canary, stable, chosen)
    # Cramér's V is about 0.22 here: significant, below the chosen minimum
    assert decided.verdict == "Passed" and "cramers-v 0.2182" in decided.reason
    assert "g-test" in decided.reason


def test_the_effect_equal_to_the_minimum_fails() -> None:
    exact = DivergenceSettings(min_effect=0.2)
    decided = judge_divergence({"a": 400, "b": 600}, {"a": 200, "b": 800}, exact)
    assert decided.verdict == "Failed"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha": 0},
        {"alpha": 1},
        {"min_effect": 1.5},
        {"min_samples": 0},
        {"test": "t-test"},
        {"effect": "psi"},
    ],
)
def test_bad_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        DivergenceSettings(**kwargs)


EDGES = (0.25, 0.5, 0.75)


def test_scores_on_fixed_bins_use_the_same_test() -> None:
    canary = BinnedCounts(EDGES, (50, 100, 300, 550))
    stable = BinnedCounts(EDGES, (250, 300, 250, 200))
    decided = judge_binned_divergence(canary, stable, DEFAULTS)
    assert decided.verdict == "Failed"
    same = judge_binned_divergence(stable, BinnedCounts(EDGES, (240, 310, 255, 195)), DEFAULTS)
    assert same.verdict == "Passed"
    assert set(canary.by_bin()) == {"(-inf, 0.25]", "(0.25, 0.5]", "(0.5, 0.75]", "(0.75, inf]"}


def test_scores_on_different_bins_are_refused() -> None:
    with pytest.raises(ValueError, match="bins differ"):
        judge_binned_divergence(
            BinnedCounts(EDGES, (1, 2, 3, 4)), BinnedCounts((0.5,), (1, 2)), DEFAULTS
        )


@pytest.mark.parametrize(
    ("edges", "counts", "problem"),
    [
        ((0.5, 0.25), (1, 2, 3), "increase"),
        ((0.5, 0.5), (1, 2, 3), "increase"),
        ((math.inf,), (1, 2), "finite"),
        ((0.5,), (1, 2, 3), "2 bins, not 3 counts"),
    ],
)
def test_bad_bins_are_refused(edges: tuple, counts: tuple, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        BinnedCounts(edges, counts)
