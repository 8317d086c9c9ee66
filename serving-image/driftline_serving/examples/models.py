"""Small, real ONNX example models built with ``onnx.helper``: the sandbox's examples,
and the models the tests and benchmarks serve.

- ``classifier_mlp``: 32 float features -> 256 -> 256 (ReLU) -> 3 classes (softmax),
  with seeded random weights, open batch dimension. The benchmark model too.
- ``two_input_model``: a float and an int64 input, two outputs, to exercise several
  inputs, dtypes and output selection.

``numpy_mlp`` recomputes the MLP from its initialisers, an independent reference for
checking that every caller gets its own rows back.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MLP_INPUTS = 32
MLP_HIDDEN = 256
MLP_CLASSES = 3
MLP_INPUT_NAME = "input"
MLP_OUTPUT_NAME = "probabilities"
OPSET = 17


def classifier_mlp(seed: int = 7) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)

    def weight(rows: int, columns: int) -> np.ndarray:
        return (rng.standard_normal((rows, columns)) / np.sqrt(rows)).astype(np.float32)

    initialisers = [
        numpy_helper.from_array(weight(MLP_INPUTS, MLP_HIDDEN), "w1"),
        numpy_helper.from_array(rng.standard_normal(MLP_HIDDEN).astype(np.float32) * 0.1, "b1"),
        numpy_helper.from_array(weight(MLP_HIDDEN, MLP_HIDDEN), "w2"),
        numpy_helper.from_array(rng.standard_normal(MLP_HIDDEN).astype(np.float32) * 0.1, "b2"),
        numpy_helper.from_array(weight(MLP_HIDDEN, MLP_CLASSES), "w3"),
        numpy_helper.from_array(rng.standard_normal(MLP_CLASSES).astype(np.float32) * 0.1, "b3"),
    ]
    nodes = [
        helper.make_node("Gemm", [MLP_INPUT_NAME, "w1", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["a1"]),
        helper.make_node("Gemm", ["a1", "w2", "b2"], ["h2"]),
        helper.make_node("Relu", ["h2"], ["a2"]),
        helper.make_node("Gemm", ["a2", "w3", "b3"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [MLP_OUTPUT_NAME], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "classifier_mlp",
        [helper.make_tensor_value_info(MLP_INPUT_NAME, TensorProto.FLOAT, ["batch", MLP_INPUTS])],
        [helper.make_tensor_value_info(MLP_OUTPUT_NAME, TensorProto.FLOAT, ["batch", MLP_CLASSES])],
        initialisers,
    )
    return _finish(graph)


def two_input_model() -> onnx.ModelProto:
    """scaled = features * float(scale); scale_doubled = scale * 2.

    Inputs: ``features`` FP32 [batch, 3], ``scale`` INT64 [batch, 1].
    Outputs: ``scaled`` FP32 [batch, 3], ``scale_doubled`` INT64 [batch, 1]."""
    nodes = [
        helper.make_node("Cast", ["scale"], ["scale_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["features", "scale_float"], ["scaled"]),
        helper.make_node("Add", ["scale", "scale"], ["scale_doubled"]),
    ]
    graph = helper.make_graph(
        nodes,
        "two_inputs",
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("scale", TensorProto.INT64, ["batch", 1]),
        ],
        [
            helper.make_tensor_value_info("scaled", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("scale_doubled", TensorProto.INT64, ["batch", 1]),
        ],
    )
    return _finish(graph)


def _finish(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="driftline-tests"
    )
    # An IR version every onnxruntime of the last few years reads.
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def save(model: onnx.ModelProto, path: Path) -> str:
    """Write the model and return its sha256."""
    data = model.SerializeToString()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def numpy_mlp(model: onnx.ModelProto, features: np.ndarray) -> np.ndarray:
    """The MLP's forward pass in numpy, from the model's own weights."""
    weights = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    hidden = np.maximum(features @ weights["w1"] + weights["b1"], 0)
    hidden = np.maximum(hidden @ weights["w2"] + weights["b2"], 0)
    logits = hidden @ weights["w3"] + weights["b3"]
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    result: np.ndarray = shifted / shifted.sum(axis=-1, keepdims=True)
    return result
