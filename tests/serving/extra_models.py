"""Small ONNX models for the hostile-traffic tests, built with ``onnx.helper``.

- ``lookup_model``: row = TABLE[index]; an index outside the table makes onnxruntime
  fail the whole call, as a request with a value the model cannot take does.
- ``root_model``: root = sqrt(x), inverse = 1 / x: NaN for a negative x, infinity for 0.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from driftline_serving.examples.models import OPSET

TABLE = np.array([[0.0, 1.0], [10.0, 11.0], [20.0, 21.0]], dtype=np.float32)


def _finish(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def lookup_model() -> onnx.ModelProto:
    """index INT64 [batch, 1] -> row FP32 [batch, 1, 2]."""
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "index"], ["row"], axis=0)],
        "lookup",
        [helper.make_tensor_value_info("index", TensorProto.INT64, ["batch", 1])],
        [helper.make_tensor_value_info("row", TensorProto.FLOAT, ["batch", 1, 2])],
        [numpy_helper.from_array(TABLE, "table")],
    )
    return _finish(graph)


def root_model() -> onnx.ModelProto:
    """x FP32 [batch, 2] -> root = sqrt(x), inverse = 1 / x (both FP32 [batch, 2])."""
    graph = helper.make_graph(
        [
            helper.make_node("Sqrt", ["x"], ["root"]),
            helper.make_node("Div", ["one", "x"], ["inverse"]),
        ],
        "root",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2])],
        [
            helper.make_tensor_value_info("root", TensorProto.FLOAT, ["batch", 2]),
            helper.make_tensor_value_info("inverse", TensorProto.FLOAT, ["batch", 2]),
        ],
        [numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")],
    )
    return _finish(graph)
