"""Seeded data and profiles for the drift engine's tests."""

from __future__ import annotations

import numpy as np
import pytest

from driftline_serving.drift.profile import Profile, build_profile
from driftline_serving.drift.schema import Schema

NUMERIC = ("normal", "skewed", "bimodal", "discrete")
CATEGORICAL = ("colour", "size")
COLOURS = np.array(["red", "green", "blue", "black"])
COLOUR_P = np.array([0.4, 0.3, 0.2, 0.1])


def draw(rng: np.random.Generator, rows: int, shift: float = 0.0, colour_p=COLOUR_P) -> dict:
    bimodal = np.where(rng.random(rows) < 0.5, rng.normal(-2, 1, rows), rng.normal(2, 1, rows))
    return {
        "normal": rng.normal(shift, 1.0, rows),
        "skewed": rng.gamma(2.0, 1.0, rows),
        "bimodal": bimodal,
        "discrete": rng.poisson(4, rows).astype(float),
        "colour": rng.choice(COLOURS, rows, p=colour_p),
        "size": rng.integers(0, 5, rows),
    }


SCHEMA = Schema.of([(n, "numeric") for n in NUMERIC] + [(c, "categorical") for c in CATEGORICAL])


@pytest.fixture(scope="session")
def reference_data() -> dict:
    return draw(np.random.default_rng(1234), 20000)


@pytest.fixture(scope="session")
def profile(reference_data) -> Profile:
    return build_profile(SCHEMA, [reference_data])
