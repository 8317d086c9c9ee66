"""The onnxruntime wrapper: providers, signature from the graph, warm-up, inline limit."""

from __future__ import annotations

import numpy as np
import pytest

from driftline_serving.server.model import (
    CPU_PROVIDER,
    CUDA_PROVIDER,
    ModelLoadError,
    SessionSettings,
    TensorSpec,
    choose_providers,
    inline_row_limit,
    load_model,
    tensor_spec,
)


def test_cpu_unless_a_gpu_is_requested():
    assert choose_providers(False, [CUDA_PROVIDER, CPU_PROVIDER]) == [CPU_PROVIDER]
    assert choose_providers(True, [CUDA_PROVIDER, CPU_PROVIDER]) == [CUDA_PROVIDER, CPU_PROVIDER]


def test_a_requested_gpu_that_is_missing_is_an_error_not_a_cpu_fallback():
    with pytest.raises(ModelLoadError) as raised:
        choose_providers(True, ["AzureExecutionProvider", CPU_PROVIDER])
    assert str(raised.value).startswith(
        "a GPU was requested but onnxruntime has no CUDAExecutionProvider "
        "(available: AzureExecutionProvider, CPUExecutionProvider)"
    )


def test_tensor_specs_from_onnxruntime_types_and_symbolic_dimensions():
    assert tensor_spec("x", "tensor(float)", ["batch", 32]) == TensorSpec("x", "FP32", (-1, 32))
    assert tensor_spec("y", "tensor(int64)", [None, 1]) == TensorSpec("y", "INT64", (-1, 1))
    with pytest.raises(ModelLoadError, match=r"tensor 'm' has type seq\(tensor\(float\)\)"):
        tensor_spec("m", "seq(tensor(float))", [])


@pytest.mark.parametrize(
    ("timings", "limit"),
    [
        ({1: 0.0001, 64: 0.0004}, 64),  # everything fits
        ({1: 0.0001, 256: 0.002}, 128),  # half the largest batch fits the budget
        ({1: 0.0001, 64: 0.1}, 1),  # never below the smallest size that fits
        ({1: 0.002, 64: 0.02}, 0),  # even one row is too slow
        ({1: 0.0, 64: 0.0}, 64),
        ({}, 0),
    ],
)
def test_inline_row_limit_from_warm_up_timings(timings, limit):
    assert inline_row_limit(timings, 0.001) == limit


def test_loaded_mlp_has_its_signature_provider_and_warm_up_timings(mlp_file):
    model = load_model(mlp_file.path, SessionSettings(intra_op_threads=1), (1, 8))
    assert model.provider == CPU_PROVIDER
    assert model.signature.batchable
    assert [spec.as_metadata() for spec in model.signature.inputs] == [
        {"name": "input", "datatype": "FP32", "shape": [-1, 32]}
    ]
    assert sorted(model.warm_up_seconds) == [1, 8]
    outputs = model.run({"input": np.zeros((3, 32), dtype=np.float32)})
    assert outputs["probabilities"].shape == (3, 3)


NO_CUDA = pytest.mark.skipif(
    "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(),
    reason="this onnxruntime can use CUDA: the missing-GPU path cannot be exercised",
)


@NO_CUDA
def test_requesting_a_gpu_without_one_fails_the_load(mlp_file):
    with pytest.raises(ModelLoadError, match="a GPU was requested"):
        load_model(mlp_file.path, SessionSettings(intra_op_threads=1, gpu=True))


def test_a_model_file_with_a_flipped_byte_is_refused_as_not_a_valid_onnx_model(mlp_file, tmp_path):
    """Each of the first 64 bytes flipped in turn: the model either still loads (a flip in
    a name or a weight) or is refused as not a valid ONNX model, never with the codec
    error that a corrupted name used to leak out of onnxruntime's Python binding."""
    original = mlp_file.path.read_bytes()
    refusals: dict[int, str] = {}
    for offset in range(64):
        damaged = bytearray(original)
        damaged[offset] ^= 0xFF
        path = tmp_path / f"flipped-{offset}.onnx"
        path.write_bytes(bytes(damaged))
        try:
            load_model(path, SessionSettings(intra_op_threads=1), ())
        except ModelLoadError as error:
            refusals[offset] = str(error)
    assert refusals, "no flipped byte was refused: the sweep tests nothing"
    for offset, message in refusals.items():
        assert (
            f"onnxruntime cannot load {tmp_path}/flipped-{offset}.onnx: it is not a valid ONNX model ("
            in message
        )
        assert "codec" not in message, f"byte {offset}: {message}"
    # at least one flip hits a name onnxruntime reports back as undecodable bytes
    assert any("the file is damaged or not ONNX" in message for message in refusals.values())
