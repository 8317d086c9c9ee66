"""This engine, measured like the peers. Run with the project's .venv python:
ours.py DATA_DIR PROFILE WINDOW..."""

from __future__ import annotations

import sys

import measure
import numpy as np

from driftline_serving.drift import evaluate, load_profile

profile = load_profile(sys.argv[2])


def columns(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return {n: archive[n] for n in archive.files}


def run(window: dict[str, np.ndarray]) -> tuple[dict[str, bool], bool]:
    report = evaluate(profile, window)
    return {f.feature: f.drifted for f in report.features}, report.dataset_drifted


measure.run_windows("driftline", sys.argv[3:], columns, run)
