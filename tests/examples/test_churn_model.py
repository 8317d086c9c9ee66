"""The drift-retrain example's pure parts: the data generator, the model, its metrics and
its ONNX graph, and the retraining program's result and split."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import churn_model
import numpy as np
import onnxruntime
import pytest
import retrain
from churn_data import CATEGORICAL, FEATURES, LABEL, generate, write_csv

from driftline.api import retraining as contract

SHA = "a" * 64
Table = Any  # numpy arrays: the cases below are lambdas over them
Labels = Any


def test_the_generator_is_seeded_and_shift_moves_the_customers() -> None:
    table, labels = generate(3000, 0.0, seed=4)
    again, labels_again = generate(3000, 0.0, seed=4)
    np.testing.assert_array_equal(table, again)
    np.testing.assert_array_equal(labels, labels_again)
    drifted, _ = generate(3000, 1.0, seed=4)
    support_calls = FEATURES.index("support_calls")
    assert drifted[:, support_calls].mean() > table[:, support_calls].mean() + 1
    for name, count in CATEGORICAL.items():
        assert set(np.unique(table[:, FEATURES.index(name)])) == set(range(count))


@pytest.mark.parametrize(
    ("rows", "shift", "message"),
    [(0, 0.0, "rows must be at least 1"), (10, -0.1, "shift must be between"), (10, 1.5, "shift")],
)
def test_the_generator_refuses_impossible_requests(rows: int, shift: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate(rows, shift, seed=0)


def test_the_csv_round_trips_through_the_programs_reader(tmp_path: Path) -> None:
    table, labels = generate(50, 0.5, seed=1)
    path = tmp_path / "window.csv"
    write_csv(path, table, labels)
    assert path.read_text().splitlines()[0] == ",".join([*FEATURES, LABEL])
    read, read_labels = retrain.read_table(path, "window.csv")
    np.testing.assert_allclose(read, table, atol=0.005)
    np.testing.assert_array_equal(read_labels, labels)


def test_a_csv_without_a_feature_column_is_named(tmp_path: Path) -> None:
    path = tmp_path / "window.csv"
    path.write_text("tenure_months,churned\n3,1\n")
    with pytest.raises(retrain.RetrainError, match="has no column monthly_charges, total_charges"):
        retrain.read_table(path, "window.csv")


def test_auc_is_the_share_of_correctly_ordered_pairs_with_ties_as_half() -> None:
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 5, size=60).astype(np.float64)  # many ties
    labels = rng.integers(0, 2, size=60)
    pairs = [
        1.0 if p > n else 0.5 if p == n else 0.0
        for p, n in itertools.product(scores[labels == 1], scores[labels == 0])
    ]
    assert churn_model.auc(scores, labels) == pytest.approx(np.mean(pairs))


def test_auc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        churn_model.auc(np.array([0.1, 0.9]), np.array([1, 1]))


def test_metrics_of_a_perfect_and_a_wrong_model() -> None:
    labels = np.array([0, 1, 1, 0])
    perfect = churn_model.metrics(np.array([0.1, 0.9, 0.8, 0.2]), labels)
    assert perfect["accuracy"] == 1.0 and perfect["auc"] == 1.0 and perfect["logLoss"] < 0.25
    wrong = churn_model.metrics(np.array([0.9, 0.1, 0.2, 0.8]), labels)
    assert wrong["accuracy"] == 0.0 and wrong["auc"] == 0.0 and wrong["logLoss"] > 1.5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t, y: (t[:, :5], y), "expected 6 feature columns"),
        (lambda t, y: (t, y[:-1]), "rows but"),
        (lambda t, y: (np.where(np.arange(6) == 1, np.nan, t), y), "row 1 has a missing"),
        (
            lambda t, y: (np.where(np.arange(6) == 4, 3.0, t), y),
            "contract must be a code from 0 to 2",
        ),
        (lambda t, y: (np.where(np.arange(6) == 5, 1.5, t), y), "payment_method must be a code"),
        (lambda t, y: (t, y * 2), "labels must be 0 or 1"),
        (lambda t, y: (t, np.zeros_like(y)), "all one class"),
    ],
)
def test_training_refuses_unusable_data_naming_why(
    change: Callable[[Table, Labels], tuple[Table, Labels]], message: str
) -> None:
    table, labels = generate(40, 0.0, seed=2)
    with pytest.raises(ValueError, match=message):
        churn_model.train(*change(table, labels))


def test_training_is_deterministic_and_learns_the_world_it_sees() -> None:
    table, labels = generate(2000, 0.0, seed=5)
    model = churn_model.train(table, labels)
    again = churn_model.train(table, labels)
    np.testing.assert_array_equal(model.weights, again.weights)
    test_table, test_labels = generate(2000, 0.0, seed=6)
    assert (
        churn_model.metrics(churn_model.churn_probability(model, test_table), test_labels)["auc"]
        > 0.8
    )


def test_a_constant_column_does_not_break_standardisation() -> None:
    table, labels = generate(200, 0.0, seed=7)
    table[:, FEATURES.index("support_calls")] = 2.0
    model = churn_model.train(table, labels)
    assert np.isfinite(churn_model.churn_probability(model, table)).all()


def test_the_onnx_graph_computes_the_numpy_model_in_onnxruntime() -> None:
    table, labels = generate(500, 0.3, seed=8)
    model = churn_model.train(table, labels, epochs=50)
    session = onnxruntime.InferenceSession(
        churn_model.to_onnx(model).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    (inputs,) = session.get_inputs()
    (outputs,) = session.get_outputs()
    assert (inputs.name, inputs.type, inputs.shape) == ("features", "tensor(float)", ["batch", 6])
    assert (outputs.name, outputs.shape) == ("probabilities", ["batch", 2])
    (served,) = session.run(None, {"features": table.astype(np.float32)})
    np.testing.assert_allclose(served[:, 1], churn_model.churn_probability(model, table), atol=1e-5)
    np.testing.assert_allclose(served.sum(axis=1), 1.0, rtol=1e-6)


def test_the_split_is_seeded_disjoint_and_covers_every_row() -> None:
    training, held_out = retrain.split(100, 0.2, seed=1)
    assert len(held_out) == 20 and len(training) == 80
    assert sorted([*training, *held_out]) == list(range(100))
    np.testing.assert_array_equal(retrain.split(100, 0.2, seed=1)[1], held_out)
    with pytest.raises(retrain.RetrainError, match="too few"):
        retrain.split(2, 0.5, seed=1)


def test_the_result_message_is_what_the_operator_parses() -> None:
    message = retrain.result_message(
        "s3://models/churn/retrained/", SHA, "b" * 64, {"accuracy": 0.8}, "2.1.0"
    )
    result = contract.parse_result(message)
    assert result.artifact.uri == "s3://models/churn/retrained/model.onnx"
    assert result.reference.uri == "s3://models/churn/retrained/reference.dlprofile"
    assert (result.artifact.sha256, result.reference.sha256) == (SHA, "b" * 64)
    assert result.metrics == {"accuracy": 0.8} and result.version == "2.1.0"
    assert "version" not in json.loads(retrain.result_message("s3://m/p", SHA, SHA, {}, None))


def test_a_result_the_operator_would_refuse_is_never_written() -> None:
    with pytest.raises(retrain.RetrainError, match="would be refused by the operator"):
        retrain.result_message("file:///tmp/out/", SHA, SHA, {}, None)
    with pytest.raises(retrain.RetrainError, match="more than the 4096"):
        # each part within the API's limits, all of it past what Kubernetes keeps
        long_names = {f"{i:02d}{'x' * 200}": 0.5 for i in range(20)}
        retrain.result_message("s3://models/churn/", SHA, SHA, long_names, None)


def settings(environ: dict[str, str], *args: str) -> retrain.Settings:
    return retrain.settings_from(retrain.parser().parse_args(["--data", "w.csv", *args]), environ)


def test_settings_come_from_the_contracts_environment() -> None:
    got = settings(
        {
            contract.ENV_OUTPUT_URI: "s3://models/churn/t1/",
            contract.ENV_CONTEXT_FILE: "/var/run/driftline/retraining/context.json",
        }
    )
    assert got.published_uri == "s3://models/churn/t1/"  # s3 is read where it is written
    assert got.termination_log == Path(contract.TERMINATION_MESSAGE_PATH)
    assert got.context_file == Path(contract.CONTEXT_FILE)
    local = settings(
        {
            contract.ENV_OUTPUT_URI: "file:///tmp/out/",
            contract.ENV_TERMINATION_LOG: "/tmp/result.json",
        },
        "--published-uri",
        "https://models.example/churn/",
    )
    assert local.published_uri == "https://models.example/churn/"
    assert local.termination_log == Path("/tmp/result.json") and local.context_file is None


@pytest.mark.parametrize(
    ("environ", "args", "message"),
    [
        ({}, [], "DRIFTLINE_OUTPUT_URI is not set"),
        ({contract.ENV_OUTPUT_URI: "https://x/y/"}, [], "expected an s3:// or file:// prefix"),
        ({contract.ENV_OUTPUT_URI: "file:///tmp/o/"}, [], "pass --published-uri"),
        ({contract.ENV_OUTPUT_URI: "s3://m/p/"}, ["--holdout", "1"], "--holdout must be between"),
    ],
)
def test_settings_that_cannot_work_are_refused_naming_why(
    environ: dict[str, str], args: list[str], message: str
) -> None:
    with pytest.raises(retrain.RetrainError, match=message):
        settings(environ, *args)


def test_the_context_file_is_a_json_object_or_a_clear_error(tmp_path: Path) -> None:
    assert retrain.read_context(None) == {}
    context = tmp_path / "context.json"
    context.write_text(json.dumps({"trigger": "t1", "drift": {"severity": "Medium"}}))
    assert retrain.read_context(context)["drift"] == {"severity": "Medium"}
    context.write_text("[1, 2]")
    with pytest.raises(retrain.RetrainError, match="is not a JSON object"):
        retrain.read_context(context)
    context.write_text("{")
    with pytest.raises(retrain.RetrainError, match="is not JSON"):
        retrain.read_context(context)
    with pytest.raises(retrain.RetrainError, match="cannot read the context file"):
        retrain.read_context(tmp_path / "missing.json")
