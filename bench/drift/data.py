"""The seeded benchmark data set: 40 numeric features of eight shapes, 10 categorical.

Scenarios (each window 10 000 rows unless asked otherwise):
- none: drawn like the reference;
- shift_0.1 / shift_0.25 / shift_0.5: the mean of 5 numeric features (one each of
  normal, lognormal, uniform, student-t and poisson) moves by that many standard
  deviations;
- variance: the same 5 features spread 1.25 times wider around their mean;
- categories: 3 categorical features move 15% of their mass onto their rarest category.

Only numpy here, so that every tool's process can read what this writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray

SHAPES = (
    "normal",
    "lognormal",
    "uniform",
    "exponential",
    "student_t",
    "bimodal",
    "beta",
    "poisson",
)
NUMERIC = [f"{shape}_{i}" for i in range(5) for shape in SHAPES]  # 40
CATEGORICAL = [f"cat_{i}" for i in range(10)]
FEATURES = NUMERIC + CATEGORICAL
DRIFTING_NUMERIC = ["normal_0", "lognormal_0", "uniform_0", "student_t_0", "poisson_0"]
DRIFTING_CATEGORICAL = ["cat_0", "cat_1", "cat_2"]
SCENARIOS = ("none", "shift_0.1", "shift_0.25", "shift_0.5", "variance", "categories")

# population standard deviations, so that a shift in sd means the same for every shape
_SD = {
    "normal": 1.0,
    "lognormal": float(np.sqrt((np.exp(0.36) - 1) * np.exp(0.36))),
    "uniform": float(np.sqrt(1 / 12)),
    "exponential": 1.0,
    "student_t": float(np.sqrt(5 / 3)),
    "bimodal": float(np.sqrt(1 + 4)),
    "beta": float(np.sqrt(2 * 5 / (7**2 * 8))),
    "poisson": 2.0,
}


def _category_probabilities(index: int) -> NDArray[np.float64]:
    cardinality = 3 + 2 * index  # 3 to 21 categories
    weights = 1.0 / np.arange(1, cardinality + 1)  # Zipf-like
    return weights / weights.sum()


def _draw_shape(rng: np.random.Generator, shape: str, rows: int) -> NDArray[np.float64]:
    if shape == "normal":
        return rng.normal(0, 1, rows)
    if shape == "lognormal":
        return rng.lognormal(0, 0.6, rows)
    if shape == "uniform":
        return rng.random(rows)
    if shape == "exponential":
        return rng.exponential(1.0, rows)
    if shape == "student_t":
        return rng.standard_t(5, rows)
    if shape == "bimodal":
        return np.where(rng.random(rows) < 0.5, -2.0, 2.0) + rng.normal(0, 1, rows)
    if shape == "beta":
        return rng.beta(2, 5, rows)
    return rng.poisson(4, rows).astype(np.float64)


def draw(rng: np.random.Generator, rows: int, scenario: str = "none") -> dict[str, NDArray]:
    data: dict[str, NDArray] = {}
    for name in NUMERIC:
        shape = name.rsplit("_", 1)[0]
        values = _draw_shape(rng, shape, rows)
        if name in DRIFTING_NUMERIC:
            if scenario.startswith("shift_"):
                values = values + float(scenario.split("_")[1]) * _SD[shape]
            elif scenario == "variance":
                centre = float(np.mean(values))
                values = centre + 1.25 * (values - centre)
        data[name] = values
    for index, name in enumerate(CATEGORICAL):
        p = _category_probabilities(index)
        if scenario == "categories" and name in DRIFTING_CATEGORICAL:
            p = 0.85 * p
            p[-1] += 0.15
        data[name] = rng.choice(p.size, rows, p=p).astype(np.int64)
    return data


def correlated(rng: np.random.Generator, rows: int, rho: float) -> dict[str, NDArray]:
    """Clean data, except that normal_1 and normal_2 become correlated (same marginals)."""
    window = draw(rng, rows)
    window["normal_2"] = rho * window["normal_1"] + np.sqrt(1 - rho**2) * window["normal_2"]
    return window


def drifting(scenario: str) -> set[str]:
    if scenario == "none":
        return set()
    if scenario == "categories":
        return set(DRIFTING_CATEGORICAL)
    return set(DRIFTING_NUMERIC)


def schema() -> list[dict[str, str]]:
    return [{"name": n, "type": "numeric"} for n in NUMERIC] + [
        {"name": c, "type": "categorical"} for c in CATEGORICAL
    ]


def write_data_set(
    directory: Path, reference_rows: int, window_rows: int, windows: int, seed: int = 20261123
) -> None:
    """reference.npz and <scenario>_<k>.npz windows, one array per feature."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    np.savez(directory / "reference.npz", **draw(rng, reference_rows))
    for scenario in SCENARIOS:
        for k in range(windows):
            np.savez(directory / f"{scenario}_{k}.npz", **draw(rng, window_rows, scenario))


def window_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.npz") if p.stem.rsplit("_", 1)[0] in SCENARIOS)
