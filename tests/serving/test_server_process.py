"""The real ``driftline-serve`` process on loopback, driven by tritonclient and raw HTTP."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from driftline_serving.examples.models import classifier_mlp, numpy_mlp

from .exposition import metric_value

INFER = "/v2/models/mlp/infer"


def good_body(rows: int = 1) -> bytes:
    return json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [rows, 32],
                    "data": [0.25] * (32 * rows),
                }
            ]
        }
    ).encode()


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_round_trip_matches_the_model(mlp_server, binary):
    client = httpclient.InferenceServerClient(url=mlp_server.url)
    features = np.random.default_rng(1).standard_normal((5, 32)).astype(np.float32)
    tensor = httpclient.InferInput("input", list(features.shape), "FP32")
    tensor.set_data_from_numpy(features, binary_data=binary)
    requested = httpclient.InferRequestedOutput("probabilities", binary_data=binary)

    result = client.infer("mlp", [tensor], outputs=[requested], request_id="req-7")

    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (5, 3)
    np.testing.assert_allclose(
        probabilities, numpy_mlp(classifier_mlp(), features), rtol=1e-4, atol=1e-6
    )
    response = result.get_response()
    assert response["id"] == "req-7"
    assert response["model_name"] == "mlp"


def test_tritonclient_without_requested_outputs_gets_binary_outputs(mlp_server):
    client = httpclient.InferenceServerClient(url=mlp_server.url)
    features = np.ones((2, 32), dtype=np.float32)
    tensor = httpclient.InferInput("input", [2, 32], "FP32")
    tensor.set_data_from_numpy(features, binary_data=True)

    result = client.infer("mlp", [tensor])

    assert result.get_output("probabilities")["parameters"]["binary_data_size"] == 2 * 3 * 4
    np.testing.assert_allclose(result.as_numpy("probabilities").sum(axis=1), [1.0, 1.0], rtol=1e-5)


def test_health_and_metadata_through_tritonclient(mlp_server):
    client = httpclient.InferenceServerClient(url=mlp_server.url)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("mlp")
    assert client.is_model_ready("mlp", model_version="1")
    assert not client.is_model_ready("other")
    metadata = client.get_model_metadata("mlp")
    assert metadata["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 32]}]
    assert metadata["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]
    assert metadata["versions"] == ["1"]
    assert metadata["parameters"]["execution_provider"] == "CPUExecutionProvider"
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]


def test_two_input_model_with_versioned_paths_and_output_selection(two_input_server):
    client = httpclient.InferenceServerClient(url=two_input_server.url)
    features = np.arange(12, dtype=np.float32).reshape(4, 3)
    scale = np.array([[1], [2], [3], [-1]], dtype=np.int64)
    first = httpclient.InferInput("features", [4, 3], "FP32")
    first.set_data_from_numpy(features, binary_data=True)
    second = httpclient.InferInput("scale", [4, 1], "INT64")
    second.set_data_from_numpy(scale, binary_data=False)

    both = client.infer(
        "pair",
        [first, second],
        model_version="3",
        outputs=[
            httpclient.InferRequestedOutput("scaled", binary_data=False),
            httpclient.InferRequestedOutput("scale_doubled", binary_data=True),
        ],
    )
    only_doubled = client.infer(
        "pair", [first, second], outputs=[httpclient.InferRequestedOutput("scale_doubled")]
    )

    np.testing.assert_array_equal(both.as_numpy("scaled"), features * scale)
    np.testing.assert_array_equal(both.as_numpy("scale_doubled"), scale * 2)
    assert [output["name"] for output in only_doubled.get_response()["outputs"]] == [
        "scale_doubled"
    ]
    metadata = client.get_model_metadata("pair", model_version="3")
    assert [spec["datatype"] for spec in metadata["inputs"]] == ["FP32", "INT64"]
    with pytest.raises(InferenceServerException, match="has no version '9'"):
        client.infer("pair", [first, second], model_version="9")


BAD_INPUTS = {
    "wrong input name": (
        {"inputs": [{"name": "nope", "datatype": "FP32", "shape": [1, 32], "data": [0.0] * 32}]},
        "unknown input 'nope'; the model's inputs are 'input' (FP32 [-1, 32])",
    ),
    "wrong dtype": (
        {"inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 32], "data": [0.0] * 32}]},
        "input 'input' has datatype FP64 but the model expects FP32",
    ),
    "wrong shape": (
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 31], "data": [0.0] * 31}]},
        "input 'input' has shape [1, 31] but the model expects [-1, 32]",
    ),
    "wrong rank": (
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [32], "data": [0.0] * 32}]},
        "input 'input' has shape [32] but the model expects [-1, 32]",
    ),
    "missing data": (
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 32]}]},
        "input 'input' has no 'data' and no binary_data_size",
    ),
    "too little data": (
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 32], "data": [0.0] * 31}]},
        "input 'input': shape [1, 32] needs 32 elements but 'data' has 31",
    ),
    "non-numeric data": (
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 32], "data": ["x"] * 32}]},
        "input 'input': data is not valid FP32",
    ),
    "no inputs": ({"inputs": []}, "request must have a non-empty 'inputs' list"),
    "unknown output": (
        {
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 32], "data": [0.0] * 32}],
            "outputs": [{"name": "logits"}],
        },
        "requested output 'logits' does not exist",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_is_a_400_that_says_what_is_wrong(mlp_server, case):
    document, message = BAD_INPUTS[case]

    status, body, _ = mlp_server.post(INFER, json.dumps(document).encode())

    assert status == 400
    assert message in json.loads(body)["error"]
    assert mlp_server.post(INFER, good_body())[0] == 200


def test_malformed_json_is_a_400(mlp_server):
    status, body, _ = mlp_server.post(INFER, b'{"inputs": [')
    assert status == 400
    assert json.loads(body)["error"].startswith("malformed JSON in request body")
    assert mlp_server.post(INFER, good_body())[0] == 200


def test_truncated_binary_payload_is_a_400(mlp_server):
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "input",
                    "datatype": "FP32",
                    "shape": [1, 32],
                    "parameters": {"binary_data_size": 128},
                }
            ]
        }
    ).encode()
    payload = header + np.zeros(20, dtype=np.float32).tobytes()

    status, body, _ = mlp_server.post(
        INFER, payload, {"Inference-Header-Content-Length": str(len(header))}
    )

    assert status == 400
    assert json.loads(body)["error"] == (
        "binary data for input 'input' is truncated: expected 128 bytes, only 80 left in the body"
    )
    assert mlp_server.post(INFER, good_body())[0] == 200


def test_bad_input_through_tritonclient_raises_with_the_servers_message(mlp_server):
    client = httpclient.InferenceServerClient(url=mlp_server.url)
    tensor = httpclient.InferInput("input", [1, 32], "FP64")
    tensor.set_data_from_numpy(np.zeros((1, 32), dtype=np.float64), binary_data=True)
    with pytest.raises(
        InferenceServerException, match="has datatype FP64 but the model expects FP32"
    ):
        client.infer("mlp", [tensor])


def test_body_over_the_limit_is_a_413_and_the_server_keeps_serving(mlp_server):
    status, body, _ = mlp_server.post(INFER, good_body(rows=400))  # about 75 KiB of JSON

    assert status == 413
    assert json.loads(body)["error"] == "request body is larger than the limit of 65536 bytes"
    assert mlp_server.post(INFER, good_body())[0] == 200


def test_answers_name_no_pod_when_feedback_is_off(start_server, mlp_file):
    # Driftline-Pod says where labels for the answer must go; with no drift sampling the
    # server takes no labels, so it names nothing (tests/evaluator: the header with it on)
    server = start_server("mlp", str(mlp_file.path), "--pod-name", "mlp-0")
    server.wait_ready()
    status, _, headers = server.post(INFER, good_body())
    assert status == 200
    assert "driftline-pod" not in {name.lower() for name in headers}


def test_unknown_model_and_endpoint_are_404(mlp_server):
    status, body, _ = mlp_server.post("/v2/models/other/infer", good_body())
    assert status == 404
    assert "model 'other' is not served here" in json.loads(body)["error"]
    assert mlp_server.get("/v2/nothing")[0] == 404
    assert mlp_server.get(INFER)[0] == 405


def test_metrics_report_outcomes_latency_batches_and_model_info(mlp_server):
    before = mlp_server.metrics()
    ok_before = metric_value(
        before, "driftline_inference_requests_total", 'model="mlp",outcome="success"'
    )
    bad_before = metric_value(
        before, "driftline_inference_requests_total", 'model="mlp",outcome="bad_request"'
    )

    assert mlp_server.post(INFER, good_body(rows=3))[0] == 200
    assert mlp_server.post(INFER, b"not json")[0] == 400

    text = mlp_server.metrics()
    assert (
        metric_value(text, "driftline_inference_requests_total", 'model="mlp",outcome="success"')
        == ok_before + 1
    )
    assert (
        metric_value(
            text, "driftline_inference_requests_total", 'model="mlp",outcome="bad_request"'
        )
        == bad_before + 1
    )
    # the labels of every serving series: model, ModelVersion name, track (issue 13)
    assert (
        'driftline_request_duration_seconds_bucket{le="0.001",model="mlp",track="stable",version="1"}'
        in text
    )
    assert metric_value(text, "driftline_batch_size_rows_count", 'model="mlp"') >= 1
    assert metric_value(text, "driftline_queue_depth", 'model="mlp"') == 0
    assert metric_value(text, "driftline_in_flight_requests", 'model="mlp"') == 0
    assert metric_value(text, "driftline_model_ready", 'model="mlp"') == 1
    assert (
        metric_value(
            text,
            "driftline_model_info",
            'model="mlp",model_version="1",provider="CPUExecutionProvider",version="1"',
        )
        == 1
    )


def test_concurrent_callers_each_get_their_own_rows(start_server, mlp_file):
    server = start_server(
        "mlp", str(mlp_file.path), "--max-batch-wait-ms", "5", "--max-batch-size", "16"
    )
    server.wait_ready()
    client = httpclient.InferenceServerClient(url=server.url, concurrency=16)
    rng = np.random.default_rng(5)
    requests = [rng.standard_normal((1 + index % 4, 32)).astype(np.float32) for index in range(96)]
    pending = []
    for index, features in enumerate(requests):
        tensor = httpclient.InferInput("input", list(features.shape), "FP32")
        tensor.set_data_from_numpy(features, binary_data=index % 2 == 0)
        pending.append(client.async_infer("mlp", [tensor], request_id=str(index)))

    results = [request.get_result() for request in pending]

    model = classifier_mlp()
    for index, (features, result) in enumerate(zip(requests, results, strict=True)):
        assert result.get_response()["id"] == str(index)
        np.testing.assert_allclose(
            result.as_numpy("probabilities"), numpy_mlp(model, features), rtol=1e-4, atol=1e-6
        )
    text = server.metrics()
    assert metric_value(text, "driftline_batch_size_rows_sum", 'model="mlp"') == sum(
        len(f) for f in requests
    )
    assert metric_value(text, "driftline_batch_size_requests_sum", 'model="mlp"') == len(requests)
    client.close()


def wait_for_reason(server, fragment: str) -> dict:
    seen: dict = {}

    def failed() -> bool:
        status, body = server.get("/v2/health/ready")
        seen.update(json.loads(body))
        return status == 503 and fragment in seen.get("reason", "")

    server.wait_until(failed, f"a not-ready reason containing {fragment!r}")
    return seen


def test_checksum_mismatch_is_refused_and_never_ready(start_server, mlp_file):
    wrong = "0" * 64
    server = start_server("mlp", str(mlp_file.path), "--sha256", wrong)

    readiness = wait_for_reason(server, "sha256 mismatch")

    assert readiness["reason"] == (
        f"sha256 mismatch for {mlp_file.path}: expected {wrong}, got {mlp_file.sha256}; refusing to use it"
    )
    status, body, _ = server.post(INFER, good_body())
    assert status == 503
    assert "sha256 mismatch" in json.loads(body)["error"]
    assert server.get("/v2/models/mlp/ready")[0] == 503
    assert metric_value(server.metrics(), "driftline_model_ready", 'model="mlp"') == 0
    assert "sha256 mismatch" in server.log()


def test_unreadable_artifact_is_a_clear_error(start_server, tmp_path):
    missing = tmp_path / "missing.onnx"
    server = start_server("mlp", str(missing))
    readiness = wait_for_reason(server, "cannot read artifact")
    assert readiness["reason"] == f"cannot read artifact {missing}: No such file or directory"


def test_artifact_that_is_not_onnx_is_a_clear_error(start_server, tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a model")
    server = start_server("mlp", f"file://{garbage}")
    wait_for_reason(server, "onnxruntime cannot load")


@pytest.mark.skipif(
    "CUDAExecutionProvider" in __import__("onnxruntime").get_available_providers(),
    reason="this onnxruntime can use CUDA: the missing-GPU path cannot be exercised",
)
def test_gpu_requested_but_missing_stays_not_ready_and_says_why(start_server, mlp_file):
    server = start_server("mlp", str(mlp_file.path), "--gpu")

    readiness = wait_for_reason(server, "GPU was requested")

    assert "CUDAExecutionProvider" in readiness["reason"]
    client = httpclient.InferenceServerClient(url=server.url)
    assert client.is_server_live()
    assert not client.is_server_ready()
    assert server.post(INFER, good_body())[0] == 503


def test_sigterm_finishes_the_in_flight_request_then_exits(start_server, mlp_file):
    # A long batch wait keeps the request in flight until SIGTERM flushes the batcher.
    server = start_server("mlp", str(mlp_file.path), "--max-batch-wait-ms", "60000")
    server.wait_ready()
    outcome: dict = {}

    def call() -> None:
        outcome["response"] = server.post(INFER, good_body(rows=2))

    caller = threading.Thread(target=call)
    caller.start()
    server.wait_until(
        lambda: metric_value(server.metrics(), "driftline_in_flight_requests", 'model="mlp"') == 1,
        "the request to be in flight",
    )

    server.process.send_signal(signal.SIGTERM)
    caller.join(timeout=30)
    exit_code = server.process.wait(timeout=30)

    status, body, headers = outcome["response"]
    assert status == 200
    assert json.loads(body)["outputs"][0]["shape"] == [2, 3]
    assert headers.get("connection") == "close"
    assert exit_code == 0
    assert "drained" in server.log()


def test_command_line_errors_exit_2_with_a_message():
    result = subprocess.run(
        [sys.executable, "-m", "driftline_serving.server.cli", "--model-name", "mlp"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--model-uri (or DRIFTLINE_MODEL_URI) is required" in result.stderr
