"""The statistical tests, as pure functions on a reference summary and a window.

Numeric features compare a sorted window with the reference's sorted (weighted) sample;
categorical ones compare count vectors over the reference's categories. Nothing here
reads files or keeps state.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import special, stats

from driftline_serving.drift.sketches import WeightedSample

FloatArray = NDArray[np.float64]

# Pseudo-count added to every bin before PSI and Jensen-Shannon: an empty bin would
# make PSI infinite, and half a count is the usual (Jeffreys) choice.
SMOOTHING = 0.5


@dataclass(frozen=True)
class KSResult:
    statistic: float
    p_value: float


def ks_against_reference(
    reference: WeightedSample, window_sorted: FloatArray, cumulative: FloatArray | None = None
) -> KSResult:
    """Two-sample Kolmogorov-Smirnov test of a sorted window against the reference.

    F_window is constant between window points and F_reference is monotone, so the
    supremum of |F_ref - F_win| is reached at a window point (right limits) or just
    before one (left limits). With ties in the window (discrete data) each distinct
    window value is searched in the reference; without them, see `_continuous_supremum`.
    """
    m = window_sorted.size
    n = reference.count
    if m == 0 or n == 0:
        return KSResult(float("nan"), float("nan"))
    cumulative = reference.cumulative() if cumulative is None else cumulative
    values = reference.values
    if m > 1 and np.any(window_sorted[1:] == window_sorted[:-1]):
        # ties in the window: the supremum only needs each distinct value, with the
        # window CDF just below it (run start) and at it (run end)
        starts = np.concatenate(([0], np.flatnonzero(window_sorted[1:] != window_sorted[:-1]) + 1))
        ends = np.concatenate((starts[1:], [m]))
        points = window_sorted[starts]
        win_left, win_right = starts / m, ends / m
        ref_right = cumulative[np.searchsorted(values, points, side="right")]
        ref_left = cumulative[np.searchsorted(values, points, side="left")]
        statistic = _largest_gap(win_left, win_right, ref_left, ref_right)
    else:
        statistic = _continuous_supremum(values, cumulative, window_sorted)
    return KSResult(statistic, ks_p_value(statistic, n, m))


def _continuous_supremum(values: FloatArray, cumulative: FloatArray, window: FloatArray) -> float:
    """sup |F_ref - F_win| for a strictly increasing window, exactly, searching only the
    window points that can hold it.

    The binary search of every window point into the reference was a third of an
    evaluation's time. Instead, every k-th point is searched first (k about the cube
    root of m / 3). Between two searched points a < b, F_ref lies between its values at
    a and b, and F_win between steps (a+1)/m and b/m, so no point inside the block can
    exceed max(b/m - F_ref(a), F_ref(b) - (a+1)/m). Only the blocks whose bound beats
    the best value found so far are searched point by point: about 400 of 10 000
    points. The bound and the candidates are the same floating-point expressions as a
    full search, so the result is identical to it, not an approximation.
    """
    m = window.size
    steps = _window_steps(m)
    stride = _coarse_stride(m)
    if stride == 1:
        return _supremum_at(values, cumulative, window, steps, np.arange(m))[0]
    coarse = _coarse_points(m, stride)
    best, ref_right = _supremum_at(values, cumulative, window, steps, coarse)
    starts, ends = coarse[:-1], coarse[1:]
    bound = np.maximum(steps[ends] - ref_right[:-1], ref_right[1:] - steps[starts + 1])
    open_blocks = np.flatnonzero(bound > best)
    if open_blocks.size == 0:
        return best
    inside = _block_interiors(starts[open_blocks], ends[open_blocks])
    if inside.size == 0:
        return best
    return max(best, _supremum_at(values, cumulative, window, steps, inside)[0])


def _supremum_at(
    values: FloatArray,
    cumulative: FloatArray,
    window: FloatArray,
    steps: FloatArray,
    index: NDArray[np.int64],
) -> tuple[float, FloatArray]:
    """The largest |F_ref - F_win| at the window points `index` (both one-sided limits),
    and F_ref at each of them."""
    points = window[index]
    right = np.searchsorted(values, points, side="right")
    ref_right = cumulative[right]
    win_left, win_right = steps[index], steps[index + 1]
    tied = values[np.maximum(right - 1, 0)] == points
    if not tied.any():
        # F_ref is continuous at every point: F_win's step above it and the one below
        # it are the only candidates
        best = max(float(np.max(win_right - ref_right)), float(np.max(ref_right - win_left)))
        return best, ref_right
    # a window value equal to a reference value: F_ref jumps there, so both sides are
    # compared at their own limit
    left = right.copy()
    left[tied] = np.searchsorted(values, points[tied], side="left")
    ref_left = cumulative[left]
    return _largest_gap(win_left, win_right, ref_left, ref_right), ref_right


def _largest_gap(
    win_left: FloatArray, win_right: FloatArray, ref_left: FloatArray, ref_right: FloatArray
) -> float:
    """max |F_ref - F_win| over points, comparing both CDFs at each point (right limits)
    and just below it (left limits)."""
    return max(
        float(np.max(win_right - ref_right)),
        float(np.max(ref_right - win_right)),
        float(np.max(ref_left - win_left)),
        float(np.max(win_left - ref_left)),
    )


def _coarse_stride(m: int) -> int:
    """Block size for `_continuous_supremum`: the coarse search costs m / k points and
    the blocks left open about k^2 / 2 (measured), least near k = (m / 3)^(1/3); below
    a few hundred points the extra calls cost more than they save."""
    return 1 if m < 256 else max(2, round((m / 3) ** (1 / 3)))


@functools.lru_cache(maxsize=8)
def _coarse_points(m: int, stride: int) -> NDArray[np.int64]:
    """0, k, 2k, ... and m - 1: the first points searched; windows repeat their size."""
    points = np.arange(0, m, stride)
    if points[-1] != m - 1:
        points = np.append(points, m - 1)
    points.setflags(write=False)
    return points


def _block_interiors(starts: NDArray[np.int64], ends: NDArray[np.int64]) -> NDArray[np.int64]:
    """The indices strictly between each start and its end, concatenated in order."""
    lengths = ends - starts - 1
    total = int(lengths.sum())
    offsets = np.cumsum(lengths) - lengths
    return np.repeat(starts + 1 - offsets, lengths) + np.arange(total)


@functools.lru_cache(maxsize=8)
def _window_steps(m: int) -> FloatArray:
    """0, 1/m, ..., 1: the window's CDF levels; windows repeat their size."""
    steps = np.arange(m + 1) / m
    steps.setflags(write=False)
    return steps


# Below this asymptotic tail probability the asymptotic value is reported: it and the
# exact one are then both far below any significance level (they differ by < 1e-12).
_NEGLIGIBLE_P = 1e-13


def ks_p_value(statistic: float, n: int, m: int) -> float:
    """Two-sided p-value of the two-sample KS statistic, as `scipy.stats.ks_2samp` gives
    it with `method="asymp"` (its default once a sample has more than 10 000 values):
    the one-sample distribution `kstwo` at the effective size round(n m / (n + m)).

    The method is scipy's (`scipy.stats.kstwo`, module scipy/stats/_ksstats.py), which
    follows Simard and L'Ecuyer, "Computing the Two-Sided Kolmogorov-Smirnov
    Distribution", Journal of Statistical Software 39(11), 2011: by region of (n, x),
    Smirnov's exact one-sided sum doubled for the upper tail, the Durbin matrix
    (Marsaglia, Tsang and Wang 2003) for small x at moderate n, and the Pelz-Good (1976)
    expansion for small x at large n. Those three are written here: scipy's upper tail
    (`special.smirnov`) is an exact sum whose cost grows with n (150 ms at n = 90 000),
    here vectorised in log space (about 1e-10 relative, well under a millisecond at
    n = 10 000); its Pelz-Good and Durbin routines are private. The remaining regions
    (n <= 140, x >= 0.5, n x <= 1 or >= n - 1) go through the public `stats.kstwo`.
    """
    if not np.isfinite(statistic):
        return float("nan")
    size = round(n * m / (n + m))
    if size < 1:
        return 1.0
    asymptotic = float(special.kolmogorov(np.sqrt(size) * statistic))
    if asymptotic < _NEGLIGIBLE_P:
        return asymptotic
    t = size * statistic
    if size > 140 and 1.0 < t < size - 1 and statistic < 0.5:
        if t * statistic >= 2.2:
            return min(1.0, max(0.0, 2.0 * smirnov_upper_tail(size, statistic)))
        if not (size <= 100_000 and size * statistic**1.5 <= 1.4):
            # the regime where scipy also uses Pelz-Good: the usual one for large windows
            return min(1.0, max(0.0, pelz_good_sf(size, statistic)))
        # small statistics at moderate sizes (no drift): where scipy uses the Durbin matrix
        return min(1.0, max(0.0, 1.0 - durbin_matrix_cdf(size, statistic)))
    return min(1.0, max(0.0, float(stats.kstwo.sf(statistic, size))))


def pelz_good_sf(n: int, x: float) -> float:
    """P(D_n > x) by the Pelz-Good (1976) expansion of the Kolmogorov distribution,

        P(D_n <= x) ~ K0(z) + K1(z)/sqrt(n) + K2(z)/n + K3(z)/n^1.5,   z = x sqrt(n),

    each K_i in its small-z (theta-function) form, a sum over odd m of a polynomial in
    z and m times exp(-pi^2 m^2 / (8 z^2)), plus, for K2 and K3, a sum over all k of
    terms in exp(-pi^2 k^2 / (2 z^2)). Both sums stop at k = ceil(16 z / pi), as
    scipy's `kstwo` does in this regime, so the two agree to rounding (tested to
    1e-10); written with plain floats because scipy's version, built on small numpy
    arrays, took a tenth of a millisecond per call, several milliseconds per window.
    """
    z = math.sqrt(n) * x
    z2 = z * z
    z4 = z2 * z2
    z6 = z4 * z2
    odd_log = -(math.pi**2) / (8.0 * z2)
    if odd_log < -708.0:  # every term underflows: D_n <= x is impossible
        return 1.0
    pi2, pi4, pi6 = math.pi**2, math.pi**4, math.pi**6
    terms = math.ceil(16.0 * z / math.pi)
    k0 = k1 = k2 = k3 = 0.0
    for k in range(1, terms + 1):
        m2 = float((2 * k - 1) ** 2)
        weight = math.exp(odd_log * m2)
        if weight == 0.0:
            break
        k0 += weight
        k1 += (pi2 / 4.0 * m2 - z2) * weight
        k2 += (
            (2 * z4 - 5 * z2) * pi2 / 4.0 * m2
            + pi4 * (1 - 2 * z2) / 16.0 * m2 * m2
            + 6 * z6
            + 2 * z4
        ) * weight
        k3 += (
            pi6 * (5 - 30 * z2) / 64.0 * m2**3
            + pi4 * (212 * z4 - 60 * z2) / 16.0 * m2 * m2
            + pi2 * (135 * z4 - 96 * z6) / 4.0 * m2
            - 30 * z6
            - 90 * z4 * z4
        ) * weight
    root_2pi = math.sqrt(2.0 * math.pi)
    k0 *= root_2pi / z
    k1 *= root_2pi / (6.0 * z4)
    k2 *= root_2pi / (72.0 * z**7)
    k3 *= root_2pi / (6480.0 * z**10)
    all_log = -pi2 / (2.0 * z2)
    k2_extra = k3_extra = 0.0
    for k in range(1, terms + 1):
        k2f = float(k * k)
        weight = math.exp(all_log * k2f)
        if weight == 0.0:
            break
        k2_extra += k2f * weight
        k3_extra += (3.0 * z2 - pi2 * k2f) * k2f * weight
    k2 += k2_extra * pi2 * root_2pi / (-36.0 * z**3)
    k3 += k3_extra * pi2 * root_2pi / (216.0 * z6)
    root_n = math.sqrt(n)
    return (1.0 - k0) - k1 / root_n - k2 / n - k3 / (n * root_n)


def durbin_matrix_cdf(n: int, x: float) -> float:
    """P(D_n < x) by Durbin's matrix formula, as Marsaglia, Tsang and Wang evaluate it
    ("Evaluating Kolmogorov's Distribution", Journal of Statistical Software 8(18), 2003):

        P(D_n < x) = n! / n^n (H^n)[k, k],   k = ceil(n x), h = k - n x,

    with H the (2k - 1)-square matrix of 1 / (i - j + 1)! on and below the superdiagonal,
    its first column and last row corrected by powers of h. Exact for every n and x;
    used where the cheaper forms are not accurate (n x^1.5 <= 1.4, n <= 100 000), where H
    has at most about 120 rows. The power is taken by squaring, each product rescaled by
    a power of two (exact), and n! / n^n is applied in log space by Stirling's series,
    whose truncation error at n > 140 is below 1e-20.
    """
    t = n * x
    if t <= 0.5:
        return 0.0
    if x >= 1.0:
        return 1.0
    k = math.ceil(t)
    h = k - t
    size = 2 * k - 1
    inverse_factorial = np.array([_inverse_factorial(i) for i in range(size + 1)])
    offset = np.subtract.outer(np.arange(size), np.arange(size)) + 1  # i - j + 1
    numerators = (offset >= 0).astype(np.float64)
    powers = h ** np.arange(1, size + 1)  # h^1 .. h^size
    numerators[:, 0] -= powers  # first column: 1 - h^(i+1)
    numerators[-1, :] -= powers[::-1]  # last row: 1 - h^(size-j)
    numerators[-1, 0] += max(2.0 * h - 1.0, 0.0) ** size
    matrix = numerators * inverse_factorial[np.clip(offset, 0, size)]

    result, result_exponent = np.eye(size), 0
    power, power_exponent = matrix, 0
    remaining = n
    while remaining:
        if remaining & 1:
            result, exponent = _rescaled(result @ power)
            result_exponent += power_exponent + exponent
        remaining >>= 1
        if remaining:
            power, exponent = _rescaled(power @ power)
            power_exponent = 2 * power_exponent + exponent
    entry = float(result[k - 1, k - 1])
    if entry <= 0.0:
        return 0.0
    # log(n! / n^n) = -n + log(2 pi n) / 2 + 1/(12n) - 1/(360n^3) + 1/(1260n^5) - ...
    log_scale = 0.5 * math.log(2.0 * math.pi * n) + (
        1.0 / (12.0 * n) - 1.0 / (360.0 * n**3) + 1.0 / (1260.0 * n**5)
    )
    log_cdf = math.log(entry) + (result_exponent * math.log(2.0) - n) + log_scale
    return min(1.0, math.exp(log_cdf))


def _inverse_factorial(i: int) -> float:
    # exact up to 170! (the largest factorial a float holds); beyond, it underflows anyway
    return 1.0 / math.factorial(i) if i <= 170 else math.exp(-math.lgamma(i + 1.0))


def _rescaled(matrix: FloatArray) -> tuple[FloatArray, int]:
    """`matrix` divided by a power of two that brings its largest entry near 1, and that
    power's exponent: exact, so repeated products neither overflow nor lose digits."""
    _, exponent = math.frexp(float(np.max(np.abs(matrix))))
    return np.ldexp(matrix, -exponent), exponent


def smirnov_upper_tail(n: int, x: float) -> float:
    """P(D+_n >= x) = x sum_{j=0}^{floor(n(1-x))} C(n,j) (x + j/n)^(j-1) (1 - x - j/n)^(n-j)."""
    j = np.arange(int(np.floor(n * (1.0 - x))) + 1, dtype=np.float64)
    a = x + j / n
    with np.errstate(divide="ignore"):
        logs = (
            special.gammaln(n + 1.0)
            - special.gammaln(j + 1.0)
            - special.gammaln(n - j + 1.0)
            + (j - 1.0) * np.log(a)
            + (n - j) * np.log1p(-a)
        )
    top = float(np.max(logs))
    return float(x * np.exp(top) * np.sum(np.exp(logs - top)))


@dataclass(frozen=True)
class ChiSquareResult:
    statistic: float
    p_value: float
    dof: int


def chi_square_homogeneity(
    reference_counts: FloatArray, window_counts: FloatArray
) -> ChiSquareResult:
    """Chi-square test that window and reference come from one categorical distribution.

    The 2 x k contingency test of `scipy.stats.chi2_contingency` (with its Yates
    correction when there is one degree of freedom): expected window counts are the
    pooled frequencies scaled to the window, and the reference's own sampling noise is
    accounted for. Categories empty on both sides are dropped; a category seen only in
    the window (unseen in the reference) is a column with reference count zero.
    """
    observed = np.vstack((reference_counts, window_counts)).astype(np.float64)
    observed = observed[:, observed.sum(axis=0) > 0]
    row_totals = observed.sum(axis=1)
    if observed.shape[1] < 2 or np.any(row_totals == 0):
        return ChiSquareResult(0.0, 1.0, 0)
    expected = np.outer(row_totals, observed.sum(axis=0)) / observed.sum()
    dof = observed.shape[1] - 1
    if dof == 1:
        difference = expected - observed
        direction = np.sign(difference)
        magnitude = np.minimum(0.5, np.abs(difference))
        observed = observed + magnitude * direction
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return ChiSquareResult(statistic, float(stats.chi2.sf(statistic, dof)), dof)


def chi_square_goodness_of_fit(
    reference_frequencies: FloatArray, window_counts: FloatArray
) -> ChiSquareResult:
    """Chi-square test of window bin counts against fixed reference bin frequencies.

    Used for numeric features whose policy drops KS: the bins are the reference's
    quantile bins, whose frequencies are known (not estimated from a small sample).
    """
    total = float(window_counts.sum())
    expected = reference_frequencies * total
    keep = expected > 0
    if total == 0 or keep.sum() < 2:
        return ChiSquareResult(0.0, 1.0, 0)
    unexpected = float(window_counts[~keep].sum())
    if unexpected > 0:
        # values where the reference has none: certain drift, not a finite statistic
        return ChiSquareResult(float("inf"), 0.0, int(keep.sum()) - 1)
    statistic = float(np.sum((window_counts[keep] - expected[keep]) ** 2 / expected[keep]))
    dof = int(keep.sum()) - 1
    return ChiSquareResult(statistic, float(stats.chi2.sf(statistic, dof)), dof)


def smoothed_proportions(counts: FloatArray) -> FloatArray:
    smoothed = np.asarray(counts, dtype=np.float64) + SMOOTHING
    return smoothed / smoothed.sum()


def psi(reference_proportions: FloatArray, window_proportions: FloatArray) -> float:
    """Population stability index: sum (w - r) * ln(w / r) over smoothed proportions."""
    return float(
        np.sum(
            (window_proportions - reference_proportions)
            * np.log(window_proportions / reference_proportions)
        )
    )


def jensen_shannon(reference_proportions: FloatArray, window_proportions: FloatArray) -> float:
    """Jensen-Shannon distance in base 2 (0 = same, 1 = disjoint), as scipy defines it."""
    middle = 0.5 * (reference_proportions + window_proportions)
    divergence = 0.5 * (
        np.sum(special.rel_entr(reference_proportions, middle))
        + np.sum(special.rel_entr(window_proportions, middle))
    )
    return float(np.sqrt(max(divergence, 0.0) / np.log(2.0)))


def total_variation(reference_proportions: FloatArray, window_proportions: FloatArray) -> float:
    return float(0.5 * np.sum(np.abs(reference_proportions - window_proportions)))


def bin_counts(window_sorted: FloatArray, inner_edges: FloatArray) -> FloatArray:
    """Counts in the bins (-inf, e1], (e1, e2], ..., (ek, inf) of a sorted window."""
    cuts = np.searchsorted(window_sorted, inner_edges, side="right")
    return np.diff(np.concatenate(([0], cuts, [window_sorted.size]))).astype(np.float64)


def quantile_grid(reference: WeightedSample) -> FloatArray:
    """Q_ref((j + 1) / G) for j < G, G the number of stored points: the sample itself
    when exact, the summary's quantiles otherwise. Computed once per profile."""
    if reference.exact:
        return reference.values
    size = reference.values.size
    return reference.quantiles((np.arange(size) + 1.0) / size)


@functools.lru_cache(maxsize=8)
def _step_midpoints(m: int, size: int) -> NDArray[np.int64]:
    """Grid index of the midpoint of each of m window steps; windows repeat their size."""
    midpoints = (np.arange(m) + 0.5) / m
    index = np.clip(np.ceil(midpoints * size).astype(np.int64) - 1, 0, size - 1)
    index.setflags(write=False)
    return index


def wasserstein_normalised(
    grid: FloatArray, window_sorted: FloatArray, reference_std: float
) -> float:
    """First Wasserstein distance divided by the reference's standard deviation.

    W1 is the integral over u of |Q_ref(u) - Q_win(u)|. Q_win is a step function with m
    steps; Q_ref is read from the quantile grid at the midpoint of each step, by index,
    without a search. The result is within O(1/m) of the exact distance, far below an
    m-sample window's own noise, except for extreme tails of heavy-tailed features,
    which one point per step under-reads (tested against scipy's
    `wasserstein_distance`: within 5% for light tails, 15% for a t(2) feature).
    """
    m = window_sorted.size
    size = grid.size
    if m == 0 or size == 0:
        return float("nan")
    distance = float(np.mean(np.abs(grid[_step_midpoints(m, size)] - window_sorted)))
    return distance / (reference_std if reference_std > 0 else 1.0)
