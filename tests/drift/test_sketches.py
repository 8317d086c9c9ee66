"""The bounded-error quantile summary: exact under the cap, bound holds above it."""

from __future__ import annotations

import numpy as np
import pytest

from driftline_serving.drift.sketches import QuantileSummary


def true_cdf(values: np.ndarray, points: np.ndarray) -> np.ndarray:
    ordered = np.sort(values)
    return np.searchsorted(ordered, points, side="right") / ordered.size


def test_exact_while_under_capacity():
    values = np.random.default_rng(0).normal(size=1000)
    summary = QuantileSummary(capacity=1000)
    for part in np.array_split(values, 7):
        summary.add(part)
    sample = summary.result()
    assert sample.exact
    assert sample.count == 1000
    np.testing.assert_array_equal(sample.values, np.sort(values))
    np.testing.assert_array_equal(sample.weights, np.ones(1000))


@pytest.mark.parametrize(
    "draw",
    [
        lambda rng, n: rng.normal(size=n),
        lambda rng, n: rng.lognormal(0, 1.5, n),
        lambda rng, n: rng.integers(0, 20, n).astype(float),  # heavy ties
        lambda rng, n: np.sort(rng.normal(size=n)),  # adversarial: sorted stream
        lambda rng, n: np.sort(rng.normal(size=n))[::-1].copy(),
    ],
)
def test_documented_error_bound_holds(draw):
    rng = np.random.default_rng(1)
    values = draw(rng, 300_000)
    summary = QuantileSummary(capacity=2048)
    for part in np.array_split(values, 37):
        summary.add(part)
    sample = summary.result()
    assert not sample.exact
    assert sample.count == values.size
    assert sample.values.size <= 2048
    points = np.unique(np.concatenate((values[::97], sample.values)))
    error = np.max(np.abs(sample.cdf(points) - true_cdf(values, points)))
    assert error <= sample.ecdf_error
    # and the bound is useful: as documented, below (4 log2(n / k) + 4) / k
    assert sample.ecdf_error < (4 * np.log2(values.size / 2048) + 4) / 2048


def test_memory_stays_bounded_while_streaming():
    summary = QuantileSummary(capacity=1024)
    rng = np.random.default_rng(2)
    for _ in range(200):
        summary.add(rng.normal(size=5000))
        held = summary._pending_size + sum(level.size for level in summary._levels)
        assert held <= 1024 + 256 * len(summary._levels) + 5000
    assert len(summary._levels) <= 12


def test_empty_summary():
    sample = QuantileSummary(capacity=16).result()
    assert sample.count == 0
    assert sample.values.size == 0


def test_capacity_must_be_usable():
    with pytest.raises(ValueError, match="capacity"):
        QuantileSummary(capacity=1)
