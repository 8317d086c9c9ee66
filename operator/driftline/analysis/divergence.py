"""The prediction divergence gate: does the canary predict differently from stable?

Given each track's prediction class counts over the same period (or counts on fixed bins
for scores), a two-sample test of homogeneity on the 2 x k table (Pearson's chi-square, or
the G-test) says whether the two distributions differ beyond chance, and an effect size
(total variation distance, or Cramér's V) whether they differ by enough to matter: with
thousands of predictions a negligible difference is significant. The gate fails only when
both hold; below a minimum number of predictions on either track it is Inconclusive.

Pure standard library: the operator image carries no numpy or scipy, so the chi-square
survival function is computed here as the regularized upper incomplete gamma function
Q(k/2, x/2), by its series or its continued fraction (Press, Teukolsky, Vetterling and
Flannery, Numerical Recipes, 3rd ed., section 6.2, "gser" and "gcf" with the modified
Lentz method), and the tests check it against scipy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from driftline.analysis.types import GateVerdict

DIVERGENCE_GATE: Final = "prediction-divergence"
Test = Literal["chi-square", "g-test"]
Effect = Literal["total-variation", "cramers-v"]

_EPSILON: Final = 1e-15  # relative accuracy the series and continued fraction aim for
_TINY: Final = 1e-300  # keeps Lentz's method away from division by zero
_MAX_ITERATIONS: Final = 10_000


def regularized_upper_gamma(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x) / Γ(a) for a > 0, x >= 0 (Numerical Recipes §6.2)."""
    if not a > 0 or not x >= 0 or math.isinf(a):
        raise ValueError(f"Q(a, x) needs a > 0 and x >= 0, not a={a}, x={x}")
    if x == 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    # the common factor e^-x x^a / Γ(a), in logarithms so it cannot overflow
    log_prefactor = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        # series for P(a, x) = e^-x x^a / Γ(a+1) * Σ x^n / ((a+1)...(a+n)); converges fast here
        term = total = 1.0 / a
        denominator = a
        for _ in range(_MAX_ITERATIONS):
            denominator += 1
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * _EPSILON:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefactor))
    # continued fraction for Q(a, x), evaluated by the modified Lentz method
    b = x + 1 - a
    c = 1 / _TINY
    d = 1 / b
    fraction = d
    for i in range(1, _MAX_ITERATIONS):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1 / d
        delta = d * c
        fraction *= delta
        if abs(delta - 1) < _EPSILON:
            break
    return math.exp(log_prefactor) * fraction


def chi2_sf(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X chi-square distributed with ``dof`` degrees of freedom."""
    if dof < 1:
        raise ValueError(f"degrees of freedom must be at least 1, not {dof}")
    if statistic <= 0:
        return 1.0
    return regularized_upper_gamma(dof / 2, statistic / 2)


@dataclass(frozen=True)
class HomogeneityResult:
    """A two-sample test of homogeneity on the classes seen by either track."""

    test: Test
    statistic: float
    dof: int
    p_value: float
    total_variation: float  # ½ Σ |p_i - q_i|: the share of predictions that differ
    cramers_v: float  # sqrt(Pearson χ² / n) for a table of two rows
    canary_count: float
    stable_count: float

    def effect(self, measure: Effect) -> float:
        return self.total_variation if measure == "total-variation" else self.cramers_v


def homogeneity_test(
    canary: Mapping[str, float], stable: Mapping[str, float], test: Test = "chi-square"
) -> HomogeneityResult:
    """Test whether two count distributions over the same classes are the same.

    Classes seen by neither track are dropped (they carry no information); when fewer
    than two remain the distributions are identical (statistic 0, p 1). Raises ValueError
    on a negative or non-finite count or a track with no counts at all.
    """
    for track, counts in (("canary", canary), ("stable", stable)):
        for label, count in counts.items():
            if isinstance(count, bool) or not isinstance(count, int | float):
                raise ValueError(f"{track} count of {label!r} is not a number: {count!r}")
            if not (math.isfinite(count) and count >= 0):
                raise ValueError(f"{track} count of {label!r} must be finite and >= 0: {count}")
    classes = sorted(
        label for label in {*canary, *stable} if canary.get(label, 0) + stable.get(label, 0) > 0
    )
    rows = [[float(canary.get(label, 0)) for label in classes]]
    rows.append([float(stable.get(label, 0)) for label in classes])
    n_canary, n_stable = sum(rows[0]), sum(rows[1])
    if n_canary == 0 or n_stable == 0:
        raise ValueError(
            f"each track needs predictions to compare: canary {n_canary:g}, stable {n_stable:g}"
        )
    n = n_canary + n_stable
    total_variation = 0.5 * sum(
        abs(c / n_canary - s / n_stable) for c, s in zip(rows[0], rows[1], strict=True)
    )
    if len(classes) < 2:
        return HomogeneityResult(test, 0.0, 0, 1.0, 0.0, 0.0, n_canary, n_stable)
    column_totals = [c + s for c, s in zip(rows[0], rows[1], strict=True)]
    pearson = 0.0
    g = 0.0
    for row, row_total in zip(rows, (n_canary, n_stable), strict=True):
        for observed, column_total in zip(row, column_totals, strict=True):
            expected = row_total * column_total / n
            pearson += (observed - expected) ** 2 / expected
            if observed > 0:
                g += 2 * observed * math.log(observed / expected)
    statistic = pearson if test == "chi-square" else max(g, 0.0)
    dof = len(classes) - 1
    return HomogeneityResult(
        test=test,
        statistic=statistic,
        dof=dof,
        p_value=chi2_sf(statistic, dof),
        total_variation=total_variation,
        cramers_v=math.sqrt(pearson / n),
        canary_count=n_canary,
        stable_count=n_stable,
    )


@dataclass(frozen=True)
class DivergenceSettings:
    alpha: float = 0.01
    min_effect: float = 0.1
    min_samples: int = 200  # predictions per track below which the gate is Inconclusive
    test: Test = "chi-square"
    effect: Effect = "total-variation"

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be within (0, 1), not {self.alpha}")
        if not 0 <= self.min_effect <= 1:
            raise ValueError(f"min_effect must be within [0, 1], not {self.min_effect}")
        if self.min_samples < 1:
            raise ValueError(f"min_samples must be at least 1, not {self.min_samples}")
        if self.test not in ("chi-square", "g-test"):
            raise ValueError(f"unknown test {self.test!r}: chi-square or g-test")
        if self.effect not in ("total-variation", "cramers-v"):
            raise ValueError(f"unknown effect size {self.effect!r}: total-variation or cramers-v")


def judge_divergence(
    canary: Mapping[str, float],
    stable: Mapping[str, float],
    settings: DivergenceSettings,
    gate: str = DIVERGENCE_GATE,
) -> GateVerdict:
    """Failed when the test is significant (p < alpha) and the effect at least min_effect;
    Inconclusive below min_samples predictions on either track; Passed otherwise."""
    n_canary, n_stable = sum(canary.values()), sum(stable.values())
    if n_canary < settings.min_samples or n_stable < settings.min_samples:
        return GateVerdict(
            gate,
            "Inconclusive",
            f"gate {gate}: {n_canary:g} canary and {n_stable:g} stable predictions, fewer "
            f"than the minimum {settings.min_samples} on each track",
        )
    result = homogeneity_test(canary, stable, settings.test)
    effect = result.effect(settings.effect)
    measured = (
        f"{settings.effect} {effect:.4g} (min {settings.min_effect:g}), {result.test} "
        f"{result.statistic:.4g} on {result.dof} df, p = {result.p_value:.3g} (alpha "
        f"{settings.alpha:g}); {n_canary:g} canary and {n_stable:g} stable predictions"
    )
    if result.p_value < settings.alpha and effect >= settings.min_effect:
        return GateVerdict(
            gate, "Failed", f"gate {gate}: the canary predicts differently from stable: {measured}"
        )
    return GateVerdict(gate, "Passed", f"gate {gate}: no divergence that matters: {measured}")


@dataclass(frozen=True)
class BinnedCounts:
    """Score counts on fixed bins: (-inf, e0], (e0, e1], ..., (e_last, +inf)."""

    edges: tuple[float, ...]
    counts: tuple[float, ...]

    def __post_init__(self) -> None:
        if not all(math.isfinite(edge) for edge in self.edges):
            raise ValueError(f"bin edges must be finite: {self.edges}")
        if any(a >= b for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError(f"bin edges must increase: {self.edges}")
        if len(self.counts) != len(self.edges) + 1:
            raise ValueError(
                f"{len(self.edges)} edges make {len(self.edges) + 1} bins, "
                f"not {len(self.counts)} counts"
            )

    def by_bin(self) -> dict[str, float]:
        bounds: Sequence[float] = (-math.inf, *self.edges, math.inf)
        return {
            f"({lower:g}, {upper:g}]": count
            for lower, upper, count in zip(bounds, bounds[1:], self.counts, strict=False)
        }


def judge_binned_divergence(
    canary: BinnedCounts,
    stable: BinnedCounts,
    settings: DivergenceSettings,
    gate: str = DIVERGENCE_GATE,
) -> GateVerdict:
    """The same gate on score counts; both tracks must use the same bins."""
    if canary.edges != stable.edges:
        raise ValueError(
            f"gate {gate}: the tracks' score bins differ: canary {canary.edges}, "
            f"stable {stable.edges}"
        )
    return judge_divergence(canary.by_bin(), stable.by_bin(), settings, gate)
