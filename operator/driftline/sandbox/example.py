"""The sandbox's bundled example, made on the spot from examples/drift-retrain.

The story's models are made by the example's own retraining program (retrain.py: a numpy
logistic regression exported to ONNX, with its reference profile) on the example's
synthetic churn table, so the version a retraining Job makes later takes the same
requests. The traffic comes from three worlds of that table:

- `steady`: the world the first versions were trained on (churn_data, shift 0);
- `price-rise`: the same customers with `monthly_charges` raised by PRICE_RISE: one of
  six features drifts, which the drift sidecar rates Medium (a share of drifted features
  at least 0.1 and under 0.3: serving-image/driftline_serving/drift/decisions.py), so the
  policy retrains; the retraining Job trains on a labelled window of this world;
- `new-market`: churn_data's drifted world (shift 1): most features and the model's
  outputs drift together, which is High, so the policy rolls traffic back.

The bad version of the `bad` scenario is a classifier with another input signature
(32 inputs named `input`): every request of the story is refused by it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray

# the repository's examples/drift-retrain (the sandbox runs from a source checkout)
EXAMPLE_DIR = Path(__file__).resolve().parents[3] / "examples" / "drift-retrain"
RETRAIN_PROGRAM = EXAMPLE_DIR / "retrain.py"
INPUT_NAME = "features"
PRICE_RISE = 30.0  # added to monthly_charges in the price-rise world (its sd is 22)
WORLDS = ("steady", "price-rise", "new-market")
TRAFFIC_ROWS = 4000
WINDOW_ROWS = 3000  # the labelled window the retraining Job trains on
TRAINING_ROWS = 2000


class ExampleError(RuntimeError):
    """The example cannot be made: its folder is missing, or its program failed."""


def churn_data() -> ModuleType:
    """examples/drift-retrain/churn_data.py (a script folder, not a package)."""
    path = EXAMPLE_DIR / "churn_data.py"
    if not path.is_file():
        raise ExampleError(
            f"{path} is missing: the sandbox's story uses examples/drift-retrain from a "
            "source checkout (pip install -e '.[sandbox]')"
        )
    spec = importlib.util.spec_from_file_location("driftline_sandbox_churn_data", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def world(name: str, rows: int, seed: int) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """`rows` labelled customers of one of WORLDS (pure, seeded)."""
    data = churn_data()
    if name == "steady":
        return data.generate(rows, 0.0, seed)
    if name == "price-rise":
        table, churned = data.generate(rows, 0.0, seed)
        table = table.copy()
        table[:, data.FEATURES.index("monthly_charges")] += PRICE_RISE
        return table, churned
    if name == "new-market":
        return data.generate(rows, 1.0, seed)
    raise ValueError(f"unknown world {name!r}; expected one of {', '.join(WORLDS)}")


def features() -> list[dict[str, str]]:
    """The ModelVersion's declared features, in the input tensor's column order."""
    data = churn_data()
    return [
        {"name": n, "type": "categorical" if n in data.CATEGORICAL else "numeric"}
        for n in data.FEATURES
    ]


@dataclass(frozen=True)
class Built:
    """One model made for the story: where it is served and what its digests are."""

    folder: str  # under the artifacts' root
    model_sha256: str
    reference_sha256: str
    metrics: dict[str, float]
    model_file: str = "model.onnx"
    reference_file: str = "reference.dlprofile"


@dataclass(frozen=True)
class Artifacts:
    directory: Path
    models: dict[str, Built]  # "v1", "v2", "bad"
    window_csv: Path  # the retraining Job's labelled window
    traffic: dict[str, list[list[float]]]  # world -> rows
    labels: dict[str, list[int]]  # world -> each row's true label (1: churned)


def retrain_command(data: Path, published_uri: str, seed: int, version: str) -> list[str]:
    return [
        sys.executable,
        str(RETRAIN_PROGRAM),
        "--data",
        str(data),
        "--published-uri",
        published_uri,
        "--seed",
        str(seed),
        "--version",
        version,
    ]


def _train(directory: Path, folder: str, rows_seed: int, version: str, base_url: str) -> Built:
    """A model and its reference profile by the example's retrain.py on the steady world."""
    data = churn_data()
    out = directory / folder
    out.mkdir(parents=True, exist_ok=True)
    training = directory / f"training-{folder}.csv"
    data.write_csv(training, *world("steady", TRAINING_ROWS, rows_seed))
    result_file = directory / f"result-{folder}.json"
    environ = {
        **os.environ,
        "DRIFTLINE_OUTPUT_URI": out.as_uri() + "/",
        "DRIFTLINE_TERMINATION_LOG": str(result_file),
    }
    done = subprocess.run(
        retrain_command(training, f"{base_url}/{folder}/", rows_seed, version),
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ExampleError(f"retrain.py failed for {folder}: {done.stderr.strip()[-800:]}")
    result: dict[str, Any] = json.loads(result_file.read_text())
    return Built(
        folder,
        result["artifact"]["sha256"],
        result["reference"]["sha256"],
        {k: float(v) for k, v in result["metrics"].items()},
    )


def _bad(directory: Path, v1: Built) -> Built:
    from driftline_serving.examples import models as example_models

    out = directory / "bad"
    out.mkdir(parents=True, exist_ok=True)
    sha = example_models.save(example_models.classifier_mlp(7), out / "model.onnx")
    reference = (directory / v1.folder / v1.reference_file).read_bytes()
    (out / "reference.dlprofile").write_bytes(reference)
    return Built("bad", sha, hashlib.sha256(reference).hexdigest(), {"accuracy": 0.9})


def make_artifacts(directory: Path, base_url: str) -> Artifacts:
    """The story's models (retrain.py on the steady world), its bad model, the retraining
    window and the traffic of each world; `base_url` serves `directory`."""
    data = churn_data()
    directory.mkdir(parents=True, exist_ok=True)
    v1 = _train(directory, "v1", 1, "1.0.0", base_url)
    v2 = _train(directory, "v2", 2, "2.0.0", base_url)
    window_csv = directory / "price-rise-window.csv"
    data.write_csv(window_csv, *world("price-rise", WINDOW_ROWS, 3))
    traffic, labels = {}, {}
    for index, name in enumerate(WORLDS):
        rows, churned = world(name, TRAFFIC_ROWS, 10 + index)
        traffic[name], labels[name] = rows.round(2).tolist(), churned.astype(int).tolist()
    return Artifacts(
        directory, {"v1": v1, "v2": v2, "bad": _bad(directory, v1)}, window_csv, traffic, labels
    )
