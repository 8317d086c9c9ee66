"""examples/drift-retrain/retrain.py as a retraining Job runs it: a real process with the
DRIFTLINE_* environment and a context file, writing to a file:// prefix that a real HTTP
server publishes; its result read with the operator's parser, its model fetched and
served by a real driftline-serve, its profile read by the drift engine."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import yaml
from churn_data import CATEGORICAL, FEATURES, generate, write_csv
from numpy.typing import NDArray

from driftline.api import retraining as contract
from driftline.api.manifests import check_manifest
from driftline_serving.artifacts import fetch_artifact
from driftline_serving.drift.profile import load_profile
from tests.examples.conftest import DRIFT_RETRAIN, REPO
from tests.serving.conftest import ServerProcess
from tests.support import free_port

RETRAIN = DRIFT_RETRAIN / "retrain.py"
ROWS = 4000
HOLDOUT = 0.2
COMMAND_DEADLINE_S = 120


@dataclass(frozen=True)
class Run:
    """One finished run of the program."""

    returncode: int
    stderr: str
    termination_log: Path
    output: Path  # the folder behind the file:// output prefix
    published: str  # the URL that folder is served at


@dataclass(frozen=True)
class World:
    original: Run  # trained on the data the first model saw
    retrained: Run  # trained on the drifted, labelled window
    drifted_table: NDArray[np.float64]  # fresh drifted data neither model saw
    drifted_labels: NDArray[np.int64]
    root: Path
    base_url: str


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A folder and the real HTTP server that publishes it, as a model store would."""
    root = tmp_path_factory.mktemp("store")
    handler = functools.partial(QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def environment(work: Path, output_uri: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    env.update(
        {
            contract.ENV_OUTPUT_URI: output_uri,
            contract.ENV_TERMINATION_LOG: str(work / "termination-log"),
            **extra,
        }
    )
    return env


def start(
    work: Path, data: Path | str, output: Path, published: str, *flags: str
) -> subprocess.Popen[str]:
    work.mkdir(parents=True, exist_ok=True)
    context = work / "context.json"
    facts = {
        contract.ENV_MODEL: "churn",
        contract.ENV_NAMESPACE: "ml",
        contract.ENV_SERVING_VERSION: "churn-v2",
        contract.ENV_DRIFT_POLICY: "churn-drift",
        contract.ENV_TRIGGER: f"trigger-{work.name}",
        contract.ENV_CONTEXT_FILE: str(context),
    }
    context.write_text(json.dumps({**facts, "drift": {"severity": "Medium", "features": []}}))
    return subprocess.Popen(
        [sys.executable, str(RETRAIN), "--data", str(data), "--published-uri", published, *flags],
        env=environment(work, output.as_uri() + "/", **facts),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], work: Path, output: Path, published: str) -> Run:
    _, stderr = process.communicate(timeout=COMMAND_DEADLINE_S)
    return Run(process.returncode, stderr, work / "termination-log", output, published)


def run(
    work: Path,
    data: Path | str,
    output: Path,
    published: str = "https://models.example/x/",
    *flags: str,
) -> Run:
    return finish(start(work, data, output, published, *flags), work, output, published)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, published: tuple[Path, str]) -> World:
    """The first model (shift 0) and the retrained one (shift 1), trained side by side."""
    root, base_url = published
    work = tmp_path_factory.mktemp("runs")
    original_data, drifted_window = work / "original.csv", work / "recent-window.csv"
    write_csv(original_data, *generate(ROWS, 0.0, seed=1))
    write_csv(drifted_window, *generate(ROWS, 1.0, seed=2))
    started = {
        name: (start(work / name, data, root / name, f"{base_url}/{name}/"), name)
        for name, data in (("original", original_data), ("retrained", drifted_window))
    }
    runs = {
        name: finish(process, work / name, root / name, f"{base_url}/{name}/")
        for name, (process, _) in started.items()
    }
    for name, finished in runs.items():
        assert finished.returncode == 0, f"{name}: {finished.stderr}"
    table, labels = generate(ROWS, 1.0, seed=3)
    return World(runs["original"], runs["retrained"], table, labels, root, base_url)


def result_of(finished: Run) -> contract.RetrainingResult:
    return contract.parse_result(finished.termination_log.read_text())


def predict(model_path: Path, table: NDArray[np.float64]) -> NDArray[np.float32]:
    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(["probabilities"], {"features": table.astype(np.float32)})
    return np.asarray(probabilities)


def accuracy(model_path: Path, table: NDArray[np.float64], labels: NDArray[np.int64]) -> float:
    return float(np.mean(predict(model_path, table).argmax(axis=1) == labels))


def test_the_result_parses_and_names_the_written_files_by_their_digests(world: World) -> None:
    finished = world.retrained
    result = result_of(finished)
    assert result.artifact.uri == f"{finished.published}model.onnx"
    assert result.reference.uri == f"{finished.published}reference.dlprofile"
    for reference, name in (
        (result.artifact, "model.onnx"),
        (result.reference, "reference.dlprofile"),
    ):
        written = (finished.output / name).read_bytes()
        assert hashlib.sha256(written).hexdigest() == reference.sha256
    assert sorted(p.name for p in finished.output.iterdir()) == [
        "model.onnx",
        "reference.dlprofile",
    ]
    assert len(finished.termination_log.read_bytes()) <= contract.TERMINATION_MESSAGE_LIMIT
    assert set(result.metrics) == {"accuracy", "auc", "logLoss"}
    assert 0.7 < result.metrics["accuracy"] <= 1 and 0.7 < result.metrics["auc"] <= 1
    # the run says what it was asked to retrain, from the environment
    assert "drifted version churn-v2, trigger-retrained" in finished.stderr


def test_the_published_files_download_and_verify_as_serving_fetches_them(
    world: World, tmp_path: Path
) -> None:
    result = result_of(world.retrained)
    for reference in (result.artifact, result.reference):
        fetched = fetch_artifact(reference.uri, tmp_path, reference.sha256)
        assert fetched.sha256 == reference.sha256


def test_a_modelversion_made_from_the_result_is_valid(world: World) -> None:
    result = result_of(world.retrained)
    documents = list(
        yaml.safe_load_all((REPO / "examples/cpu-canary/modelversions.yaml").read_text())
    )
    version = next(d for d in documents if d["metadata"]["name"] == "churn-v2")
    version["metadata"]["name"] = "churn-retrained"
    version["spec"].update(
        version="2.1.0",
        artifact={"uri": result.artifact.uri, "sha256": result.artifact.sha256},
        reference={"uri": result.reference.uri, "sha256": result.reference.sha256},
        metrics=result.metrics,
    )
    _, errors = check_manifest(version)
    assert errors == []


def test_the_retrained_model_learned_the_drifted_world(world: World) -> None:
    model = world.retrained.output / "model.onnx"
    probabilities = predict(model, world.drifted_table)
    assert probabilities.shape == (ROWS, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    majority = max(world.drifted_labels.mean(), 1 - world.drifted_labels.mean())
    assert accuracy(model, world.drifted_table, world.drifted_labels) > majority + 0.2


def test_retraining_on_the_drifted_window_beats_the_original_model_on_drifted_data(
    world: World,
) -> None:
    before = accuracy(
        world.original.output / "model.onnx", world.drifted_table, world.drifted_labels
    )
    after = accuracy(
        world.retrained.output / "model.onnx", world.drifted_table, world.drifted_labels
    )
    assert after > before + 0.15, (before, after)


def test_the_reference_profile_describes_the_training_rows_and_the_models_outputs(
    world: World,
) -> None:
    profile = load_profile(world.retrained.output / "reference.dlprofile")
    assert profile.schema.names == FEATURES
    declared = yaml.safe_load_all((REPO / "examples/cpu-canary/modelversions.yaml").read_text())
    features = next(iter(declared))["spec"]["features"]
    assert [(f.name, f.type.value) for f in profile.schema.features] == [
        (f["name"], f["type"]) for f in features
    ]
    assert profile.rows == ROWS - round(ROWS * HOLDOUT)
    assert profile.prediction is not None and set(profile.prediction.categories) == {"0", "1"}
    assert profile.confidence is not None
    # codes as the drift sidecar reads them from the FP32 tensor: whole numbers as labels
    assert set(profile.categorical["contract"].categories) == {
        str(code) for code in range(CATEGORICAL["contract"])
    }


def test_driftline_serve_fetches_and_serves_the_retrained_model(
    world: World, tmp_path: Path
) -> None:
    result = result_of(world.retrained)
    port = free_port()
    log_path = tmp_path / "serve.log"
    args = [
        sys.executable, "-m", "driftline_serving.server.cli",
        "--model-name", "churn", "--model-uri", result.artifact.uri,
        "--sha256", result.artifact.sha256, "--host", "127.0.0.1", "--port", str(port),
        "--artifact-dir", str(tmp_path / "artifacts"), "--intra-op-threads", "1",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        server = ServerProcess(
            subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT), port, log_path, args
        )
    try:
        server.wait_ready()
        rows = world.drifted_table[:5]
        body = {
            "inputs": [
                {
                    "name": "features",
                    "shape": [5, 6],
                    "datatype": "FP32",
                    "data": rows.ravel().tolist(),
                }
            ]
        }
        status, answer, _ = server.post("/v2/models/churn/infer", json.dumps(body).encode())
        assert status == 200, answer
        (output,) = json.loads(answer)["outputs"]
        assert output["name"] == "probabilities" and output["shape"] == [5, 2]
        expected = predict(world.retrained.output / "model.onnx", rows)
        np.testing.assert_allclose(np.reshape(output["data"], (5, 2)), expected, rtol=1e-5)
    finally:
        server.stop()


@pytest.fixture
def window(tmp_path: Path) -> Path:
    path = tmp_path / "window.csv"
    write_csv(path, *generate(200, 1.0, seed=5))
    return path


def assert_failed_without_result(finished: Run, *reasons: str) -> None:
    assert finished.returncode == 1, finished.stderr
    assert not finished.termination_log.exists()
    assert not finished.output.exists() or not any(finished.output.iterdir())
    last = finished.stderr.strip().splitlines()[-1]
    assert last.startswith("retrain: error: ")
    for reason in reasons:
        assert reason in last, last


def test_unreadable_data_fails_clearly_and_writes_no_result(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-window.csv"
    finished = run(tmp_path / "work", missing, tmp_path / "out")
    assert_failed_without_result(finished, "cannot read the training data", str(missing))


def test_a_malformed_row_is_named_and_fails_the_run(tmp_path: Path, window: Path) -> None:
    lines = window.read_text().splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[1], "cheap", 1)
    window.write_text("\n".join(lines) + "\n")
    finished = run(tmp_path / "work", window, tmp_path / "out")
    assert_failed_without_result(finished, "line 4", "every feature must be a number")


def test_fail_stops_the_run_with_a_clear_error(tmp_path: Path, window: Path) -> None:
    finished = run(
        tmp_path / "work", window, tmp_path / "out", "https://models.example/x/", "--fail"
    )
    assert_failed_without_result(finished, "--fail")


def test_a_file_output_without_a_published_uri_is_refused(tmp_path: Path, window: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    process = subprocess.run(
        [sys.executable, str(RETRAIN), "--data", str(window)],
        env=environment(work, (tmp_path / "out").as_uri() + "/"),
        capture_output=True,
        text=True,
        timeout=COMMAND_DEADLINE_S,
    )
    finished = Run(
        process.returncode, process.stderr, work / "termination-log", tmp_path / "out", ""
    )
    assert_failed_without_result(finished, "serving pods cannot read", "--published-uri")
