"""Alibi Detect's TabularDrift (defaults: KS and chi-square, Bonferroni, p_val 0.05).
Run with the drift-alibi venv's python: peer_alibi.py DATA_DIR WINDOW..."""

from __future__ import annotations

import sys

import data as bench_data
import measure
import numpy as np
from alibi_detect.cd import TabularDrift

directory = sys.argv[1]
names = bench_data.FEATURES
categorical = {names.index(c): None for c in bench_data.CATEGORICAL}


def matrix(path: str) -> np.ndarray:
    with np.load(path, allow_pickle=False) as archive:
        return np.column_stack([archive[n].astype(np.float64) for n in names])


detector = TabularDrift(
    matrix(f"{directory}/reference.npz"), p_val=0.05, categories_per_feature=categorical
)


def evaluate(x: np.ndarray) -> tuple[dict[str, bool], bool]:
    # batch mode is the detector's verdict (Bonferroni over features); a feature counts
    # as flagged when its p-value is under the corrected threshold the batch uses
    result = detector.predict(x, drift_type="batch", return_p_val=True)["data"]
    p_values = np.asarray(result["p_val"]).ravel()
    flags = {n: bool(p < result["threshold"]) for n, p in zip(names, p_values, strict=True)}
    return flags, bool(result["is_drift"])


measure.run_windows("alibi-detect TabularDrift", sys.argv[2:], matrix, evaluate)
