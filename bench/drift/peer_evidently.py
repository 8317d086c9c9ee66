"""Evidently's default DataDriftPreset (0.7 API). Run with the drift-evidently venv's
python: peer_evidently.py DATA_DIR WINDOW..."""

from __future__ import annotations

import sys

import data as bench_data
import measure
import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

directory = sys.argv[1]
definition = DataDefinition(
    numerical_columns=bench_data.NUMERIC, categorical_columns=bench_data.CATEGORICAL
)


def frame(path: str) -> pd.DataFrame:
    with np.load(path, allow_pickle=False) as archive:
        return pd.DataFrame({n: archive[n] for n in bench_data.FEATURES})


reference = Dataset.from_pandas(frame(f"{directory}/reference.npz"), data_definition=definition)


def evaluate(current: pd.DataFrame) -> tuple[dict[str, bool], bool]:
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition), reference
    )
    flags: dict[str, bool] = {}
    dataset = False
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            value, threshold = metric["value"], config["threshold"]
            # p-value methods drift below the threshold, distances at or above it
            is_p_value = "p_value" in config["method"].replace("-", "_").lower()
            flags[config["column"]] = bool(value < threshold if is_p_value else value >= threshold)
        elif config["type"].endswith("DriftedColumnsCount"):
            dataset = bool(metric["value"]["share"] >= config["drift_share"])
    return flags, dataset


measure.run_windows("evidently DataDriftPreset", sys.argv[2:], frame, evaluate)
