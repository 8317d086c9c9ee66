"""A bounded-memory quantile summary of a numeric stream with a tracked error bound.

While a feature has at most `capacity` values, the summary is the exact sorted sample
and every test on it is exact. Past that, it becomes a deterministic compactor (the
Munro-Paterson / KLL scheme without randomisation): level h holds values of weight 2^h
(level 0 up to `capacity` values, higher levels up to a quarter of that); a full level
is sorted and every other value moves up with double weight. One
compaction at level h moves the rank of any point by at most 2^h, so the summary adds
up those amounts as it goes: `rank_error` is a proven bound, not an estimate, on
|rank_summary(x) - rank_true(x)| for every x. Finishing reduces the levels to at most
`capacity` equally weighted points, which adds at most one point's weight to the bound.

The bound reported is `ecdf_error = rank_error / count`: no reference CDF value used by
KS, PSI or Jensen-Shannon is off by more than that. For n values and capacity k it is
below (4 log2(n / k) + 4) / k (about 3e-4 for one million values and k = 65536).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class WeightedSample:
    """Sorted values with weights: the reference distribution of one numeric feature."""

    values: FloatArray  # sorted ascending, finite
    weights: FloatArray  # positive; all ones when exact
    count: int  # number of finite values summarised
    ecdf_error: float  # bound on |F_summary(x) - F_true(x)|; 0.0 when exact

    @property
    def exact(self) -> bool:
        return self.ecdf_error == 0.0

    def cumulative(self) -> FloatArray:
        """Cumulative weight with a leading zero, scaled to sum to one."""
        cumulative = np.concatenate(([0.0], np.cumsum(self.weights)))
        return cumulative / cumulative[-1] if cumulative[-1] > 0 else cumulative

    def cdf(self, points: FloatArray, cumulative: FloatArray | None = None) -> FloatArray:
        """F(x) = P(X <= x) at each point."""
        cumulative = self.cumulative() if cumulative is None else cumulative
        return cumulative[np.searchsorted(self.values, points, side="right")]

    def quantiles(self, probabilities: FloatArray) -> FloatArray:
        """Lower quantiles: the smallest value whose CDF reaches each probability."""
        if self.values.size == 0:
            return np.full(np.shape(probabilities), np.nan)
        cumulative = self.cumulative()[1:]
        index = np.searchsorted(cumulative, probabilities - 1e-12, side="left")
        return self.values[np.clip(index, 0, self.values.size - 1)]

    def mean_std(self) -> tuple[float, float]:
        if self.values.size == 0:
            return 0.0, 0.0
        total = float(self.weights.sum())
        mean = float(np.dot(self.values, self.weights) / total)
        variance = float(np.dot((self.values - mean) ** 2, self.weights) / total)
        return mean, float(np.sqrt(max(variance, 0.0)))


class QuantileSummary:
    """Streaming builder of a `WeightedSample`; memory is O(capacity * (1 + log2(n / capacity) / 4))."""

    def __init__(self, capacity: int = 65536) -> None:
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        self.capacity = capacity
        # levels above 0 hold a quarter as much: exactness up to `capacity` only needs
        # level 0, and smaller upper levels keep a 100-feature build well under 1 GB
        self._upper_capacity = max(2, capacity // 4)
        self._pending: list[FloatArray] = []  # level 0, unsorted chunks
        self._pending_size = 0
        self._levels: list[FloatArray] = []  # level h >= 1, weight 2**h
        self._rank_error = 0.0
        self._count = 0
        self._parity = 0  # alternate which half survives, so errors do not pile up one way

    @property
    def count(self) -> int:
        return self._count

    def add(self, values: FloatArray) -> None:
        """Add finite values (the caller drops NaN and infinities)."""
        if values.size == 0:
            return
        self._pending.append(np.asarray(values, dtype=np.float64))
        self._pending_size += values.size
        self._count += values.size
        if self._pending_size > self.capacity:
            level0 = np.sort(np.concatenate(self._pending))
            self._pending, self._pending_size = [], 0
            self._push(0, level0)

    def _push(self, level: int, sorted_values: FloatArray) -> None:
        """Compact `sorted_values` of weight 2**level into the level above."""
        if sorted_values.size % 2:
            # keep one value back at this level so that pairs stay whole
            keep, sorted_values = sorted_values[-1:], sorted_values[:-1]
            self._keep(level, keep)
        survivors = sorted_values[self._parity :: 2]
        self._parity ^= 1
        self._rank_error += 2.0**level
        target = level + 1
        while len(self._levels) < target:
            self._levels.append(np.empty(0))
        merged = np.sort(np.concatenate((self._levels[target - 1], survivors)))
        if merged.size > self._upper_capacity:
            self._levels[target - 1] = np.empty(0)
            self._push(target, merged)
        else:
            self._levels[target - 1] = merged

    def _keep(self, level: int, values: FloatArray) -> None:
        if level == 0:
            self._pending.append(values)
            self._pending_size += values.size
        else:
            self._levels[level - 1] = np.sort(np.concatenate((self._levels[level - 1], values)))

    def result(self) -> WeightedSample:
        """The summary: exact while no compaction happened, else at most `capacity` points."""
        parts = [np.concatenate(self._pending)] if self._pending else []
        weights = [np.ones(parts[0].size)] if parts else []
        for index, level_values in enumerate(self._levels):
            parts.append(level_values)
            weights.append(np.full(level_values.size, 2.0 ** (index + 1)))
        if not parts:
            return WeightedSample(np.empty(0), np.empty(0), 0, 0.0)
        values = np.concatenate(parts)
        weight = np.concatenate(weights)
        order = np.argsort(values, kind="stable")
        values, weight = values[order], weight[order]
        rank_error = self._rank_error
        if self._rank_error == 0.0:
            return WeightedSample(values, weight, self._count, 0.0)
        if values.size > self.capacity:
            values, weight, added = _reduce(values, weight, self.capacity)
            rank_error += added
        return WeightedSample(values, weight, self._count, rank_error / self._count)


def _reduce(
    values: FloatArray, weights: FloatArray, size: int
) -> tuple[FloatArray, FloatArray, float]:
    """Keep `size` points at equally spaced cumulative weights.

    Each kept point stands for the weight between it and the previous kept point, so
    the rank error added is at most the largest such gap plus one point's weight.
    """
    cumulative = np.cumsum(weights)
    total = cumulative[-1]
    targets = (np.arange(1, size + 1) / size) * total
    index = np.searchsorted(cumulative, targets - 1e-9 * total, side="left")
    index = np.unique(np.clip(index, 0, values.size - 1))
    kept_cumulative = cumulative[index]
    new_weights = np.diff(np.concatenate(([0.0], kept_cumulative)))
    added = float(np.max(new_weights)) + float(np.max(weights))
    return values[index], new_weights, added
