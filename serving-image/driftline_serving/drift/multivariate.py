"""A multivariate check: did the dependence between numeric features change?

Per-feature tests only see marginals, so they miss a change of correlation between two
features whose own distributions stay the same. This check compares, for every pair of
numeric features, the window's correlation of normal scores with the reference's.

- Normal scores: each value goes through the reference CDF of its feature and then the
  standard normal quantile, z = Phi^-1(F_ref(x)) (read from the profile's quantile
  table, see `NumericProfile.normal_scores`). That is a rank (copula) correlation:
  it ignores the marginals' shapes, and heavy tails or skew cannot make the statistic
  misbehave, because normal scores have light tails whatever the input.
- Within the window, scores are standardised with the window's own mean and standard
  deviation, so a marginal shift (the per-feature tests' job) does not leak in.
- The sampling variance of a correlation depends on fourth moments; it is estimated on
  the reference's row sample from the influence function psi = ab - rho (a^2 + b^2) / 2
  of the Pearson correlation, which is valid for non-normal data.
- z = (r_window - r_reference) / sqrt(var_psi (1/m + 1/n)) per pair; the pairwise
  p-values are combined by Bonferroni into one p-value (doubled, see TAIL_SAFETY), which
  then joins the features' p-values in the dataset's multiple-testing family.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import stats

FloatArray = NDArray[np.float64]

# The pairwise normal approximation is slightly liberal in the far tail that Bonferroni
# over many pairs reaches: on clean Gaussian data the max-|z| rule flagged 5.5-6% of
# windows at a nominal 5%. Doubling the p-value makes the check conservative (about 3%).
TAIL_SAFETY = 2.0

# A window above this many complete rows is subsampled (evenly): the test's power at
# this size is already high for any correlation change worth acting on, and the cost
# of the score transform grows with the window.
MAX_WINDOW_ROWS = 1000


@dataclass(frozen=True)
class MultivariateModel:
    features: tuple[str, ...]
    correlation: FloatArray  # d x d, reference correlation of normal scores
    psi_variance: FloatArray  # d x d, variance of the correlation's influence function
    sample_rows: int  # rows behind the estimates


@dataclass(frozen=True)
class MultivariateResult:
    statistic: float  # largest |z| over pairs
    p_value: float  # Bonferroni over pairs
    pair: tuple[str, str]  # the pair with the largest |z|
    correlation_change: float  # r_window - r_reference for that pair
    rows: int


def fit(features: tuple[str, ...], scores: FloatArray) -> MultivariateModel | None:
    """Reference model from normal scores of the reference's row sample (rows x d)."""
    rows, width = scores.shape
    if width < 2 or rows < 50:
        return None
    standardised = _standardise(scores)
    correlation = (standardised.T @ standardised) / rows
    squares = standardised**2
    fourth_cross = (squares.T @ squares) / rows  # E[a^2 b^2]
    third_cross = ((standardised**3).T @ standardised) / rows  # E[a^3 b]
    fourth = np.mean(squares**2, axis=0)  # E[a^4]
    # Var(psi) = E[a^2 b^2] - rho (E[a^3 b] + E[a b^3]) + rho^2 / 4 (E a^4 + E b^4 + 2 E a^2 b^2)
    psi_variance = (
        fourth_cross
        - correlation * (third_cross + third_cross.T)
        + correlation**2 / 4.0 * (fourth[:, None] + fourth[None, :] + 2.0 * fourth_cross)
    )
    return MultivariateModel(features, correlation, np.maximum(psi_variance, 1e-12), rows)


def evaluate(model: MultivariateModel, scores: FloatArray) -> MultivariateResult | None:
    """Compare the window's normal-score correlations with the reference's."""
    rows = scores.shape[0]
    if rows > MAX_WINDOW_ROWS:
        scores = scores[np.linspace(0, rows - 1, MAX_WINDOW_ROWS).astype(np.int64)]
        rows = MAX_WINDOW_ROWS
    if rows < 20:
        return None
    standardised = _standardise(scores)
    # einsum, not BLAS: a multi-threaded BLAS call this small costs little on an idle
    # machine but tens of milliseconds of thread hand-offs on a busy one
    correlation = np.einsum("ij,ik->jk", standardised, standardised) / rows
    variance = model.psi_variance * (1.0 / rows + 1.0 / model.sample_rows)
    z = (correlation - model.correlation) / np.sqrt(variance)
    upper = np.triu_indices(len(model.features), k=1)
    pair_z = np.abs(z[upper])
    best = int(np.argmax(pair_z))
    statistic = float(pair_z[best])
    pairs = pair_z.size
    p_value = float(min(1.0, TAIL_SAFETY * 2.0 * stats.norm.sf(statistic) * pairs))
    i, j = int(upper[0][best]), int(upper[1][best])
    change = float(correlation[i, j] - model.correlation[i, j])
    return MultivariateResult(
        statistic, p_value, (model.features[i], model.features[j]), change, rows
    )


def _standardise(scores: FloatArray) -> FloatArray:
    centred = scores - scores.mean(axis=0)
    std = centred.std(axis=0)
    return centred / np.where(std > 0, std, 1.0)
