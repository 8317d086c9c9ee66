"""The churn model: logistic regression in numpy, its offline metrics, and its ONNX graph.

Pure functions (no files, no environment): `retrain.py` is the shell around them.

The ONNX model takes the raw feature table, as clients send it and as the drift sidecar
reads it: input `features`, FP32 [batch, 6] in churn_data.FEATURES order, categorical
codes as numbers. It standardises the numeric columns, one-hot encodes the codes, and
returns `probabilities`, FP32 [batch, 2] (stay, churn), the convention of the serving
examples (driftline_serving.examples.models).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from churn_data import CATEGORICAL, FEATURES
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"
OPSET = 17
NUMERIC = tuple(i for i, name in enumerate(FEATURES) if name not in CATEGORICAL)
CODES = tuple((FEATURES.index(name), count) for name, count in CATEGORICAL.items())


@dataclass(frozen=True)
class ChurnModel:
    """Standardisation of the numeric columns and the logistic regression's weights."""

    mean: NDArray[np.float64]  # of each numeric column, in NUMERIC order
    scale: NDArray[np.float64]
    weights: NDArray[np.float64]  # numeric columns, then each code's one-hot columns
    bias: float


def encode(
    table: NDArray[np.float64], mean: NDArray[np.float64], scale: NDArray[np.float64]
) -> NDArray[np.float64]:
    """The design matrix: standardised numeric columns, then one-hot codes."""
    parts = [(table[:, NUMERIC] - mean) / scale]
    for column, count in CODES:
        parts.append((table[:, [column]] == np.arange(count)).astype(np.float64))
    return np.concatenate(parts, axis=1)


def check_table(table: NDArray[np.float64], labels: NDArray[np.int64]) -> None:
    """ValueError naming what makes the data unusable for training."""
    if table.ndim != 2 or table.shape[1] != len(FEATURES):
        raise ValueError(f"expected {len(FEATURES)} feature columns, got shape {table.shape}")
    if len(labels) != len(table):
        raise ValueError(f"{len(table)} rows but {len(labels)} labels")
    if not np.isfinite(table).all():
        row = int(np.argwhere(~np.isfinite(table))[0][0])
        raise ValueError(f"row {row + 1} has a missing or non-finite value")
    for column, count in CODES:
        codes = table[:, column]
        bad = (codes != np.round(codes)) | (codes < 0) | (codes >= count)
        if bad.any():
            raise ValueError(
                f"{FEATURES[column]} must be a code from 0 to {count - 1}; "
                f"row {int(np.argmax(bad)) + 1} has {codes[bad][0]}"
            )
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if len(np.unique(labels)) < 2:
        raise ValueError("the labels are all one class: nothing to learn")


def train(
    table: NDArray[np.float64],
    labels: NDArray[np.int64],
    *,
    epochs: int = 400,
    learning_rate: float = 0.5,
    l2: float = 1e-3,
) -> ChurnModel:
    """Fit by full-batch gradient descent on the mean log loss (deterministic)."""
    check_table(table, labels)
    numeric = table[:, NUMERIC]
    mean = numeric.mean(axis=0)
    scale = numeric.std(axis=0)
    scale[scale == 0] = 1.0  # a constant column carries nothing; keep it finite
    design = encode(table, mean, scale)
    target = labels.astype(np.float64)
    weights = np.zeros(design.shape[1])
    bias = float(np.log(target.mean() / (1 - target.mean())))  # start at the base rate
    for _ in range(epochs):
        error = _sigmoid(design @ weights + bias) - target
        weights -= learning_rate * (design.T @ error / len(target) + l2 * weights)
        bias -= learning_rate * float(error.mean())
    return ChurnModel(mean, scale, weights, bias)


def churn_probability(model: ChurnModel, table: NDArray[np.float64]) -> NDArray[np.float64]:
    return _sigmoid(encode(table, model.mean, model.scale) @ model.weights + model.bias)


def metrics(churn: NDArray[np.float64], labels: NDArray[np.int64]) -> dict[str, float]:
    """accuracy (at 0.5), auc and logLoss of churn probabilities against the labels."""
    clipped = np.clip(churn, 1e-7, 1 - 1e-7)
    log_loss = -np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))
    return {
        "accuracy": round(float(np.mean((churn >= 0.5) == labels)), 6),
        "auc": round(auc(churn, labels), 6),
        "logLoss": round(float(log_loss), 6),
    }


def auc(scores: NDArray[np.float64], labels: NDArray[np.int64]) -> float:
    """Area under the ROC curve: the Mann-Whitney statistic, ties counted as half."""
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        raise ValueError("auc needs both classes among the labels")
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(first, counts, strict=True):
        ranks[order[start : start + count]] = start + (count + 1) / 2
    rank_sum = ranks[labels == 1].sum()
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


def to_onnx(model: ChurnModel, name: str = "churn") -> onnx.ModelProto:
    """The model as an ONNX graph (raw features in, [stay, churn] probabilities out)."""
    f32 = np.float32
    # logits [0, z]: the softmax of two logits whose difference is z is [1 - p, p]
    weights = np.column_stack([np.zeros_like(model.weights), model.weights]).astype(f32)
    initialisers = [
        numpy_helper.from_array(np.array(NUMERIC, dtype=np.int64), "numeric_columns"),
        numpy_helper.from_array(model.mean.astype(f32), "mean"),
        numpy_helper.from_array(model.scale.astype(f32), "scale"),
        numpy_helper.from_array(weights, "weights"),
        numpy_helper.from_array(np.array([0.0, model.bias], dtype=f32), "bias"),
    ]
    nodes = [
        helper.make_node("Gather", [INPUT_NAME, "numeric_columns"], ["numeric"], axis=1),
        helper.make_node("Sub", ["numeric", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "scale"], ["standardised"]),
    ]
    encoded = ["standardised"]
    for column, count in CODES:
        feature = FEATURES[column]
        initialisers += [
            numpy_helper.from_array(np.array([column], dtype=np.int64), f"{feature}_column"),
            numpy_helper.from_array(np.arange(count, dtype=f32), f"{feature}_codes"),
        ]
        nodes += [
            helper.make_node(
                "Gather", [INPUT_NAME, f"{feature}_column"], [f"{feature}_code"], axis=1
            ),
            helper.make_node("Equal", [f"{feature}_code", f"{feature}_codes"], [f"{feature}_is"]),
            helper.make_node(
                "Cast", [f"{feature}_is"], [f"{feature}_onehot"], to=TensorProto.FLOAT
            ),
        ]
        encoded.append(f"{feature}_onehot")
    nodes += [
        helper.make_node("Concat", encoded, ["design"], axis=1),
        helper.make_node("Gemm", ["design", "weights", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [OUTPUT_NAME], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", len(FEATURES)])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 2])],
        initialisers,
    )
    onnx_model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="driftline-retrain"
    )
    # An IR version every onnxruntime of the last few years reads.
    onnx_model.ir_version = 8
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model


def _sigmoid(values: NDArray[np.float64]) -> NDArray[np.float64]:
    result: NDArray[np.float64] = 0.5 * (1.0 + np.tanh(0.5 * values))
    return result
