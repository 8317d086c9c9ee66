"""Malformed and hostile traffic against the real ``driftline-serve`` process (issue 13).

Every malformed request gets a 4xx that names its real problem before it can join a
batch, a request that makes the model fail fails alone, and valid clients running beside
hostile ones never see an error."""

from __future__ import annotations

import http.client
import json
import struct
import threading
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from driftline_serving.examples.models import classifier_mlp, numpy_mlp

from .exposition import metric_value
from .extra_models import TABLE

INFER = "/v2/models/mlp/infer"
HEADER_LENGTH = "Inference-Header-Content-Length"


def request(*tensors: dict[str, Any], **extra: Any) -> bytes:
    return json.dumps({"inputs": list(tensors), **extra}).encode()


def mlp_tensor(shape: list[int], data: Any, datatype: Any = "FP32") -> dict[str, Any]:
    return {"name": "input", "datatype": datatype, "shape": shape, "data": data}


def mlp_request(features: np.ndarray, request_id: str | None = None) -> bytes:
    extra = {} if request_id is None else {"id": request_id}
    return request(mlp_tensor(list(features.shape), features.ravel().tolist()), **extra)


def binary_request(header: dict[str, Any], blob: bytes) -> tuple[bytes, dict[str, str]]:
    encoded = json.dumps(header).encode()
    return encoded + blob, {
        HEADER_LENGTH: str(len(encoded)),
        "Content-Type": "application/octet-stream",
    }


class Connection:
    """One keep-alive HTTP/1.1 connection, as a real client holds one."""

    def __init__(self, port: int) -> None:
        self._connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        self._connection.request(
            "POST", path, body, {"Content-Type": "application/json", **(headers or {})}
        )
        response = self._connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self._connection.close()


def run_together(workers: list[Callable[[], None]]) -> None:
    """Start every worker at once (a barrier, no sleeps) and wait for all of them."""
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def run(worker: Callable[[], None]) -> None:
        try:
            barrier.wait(timeout=60)
            worker()
        except BaseException as error:  # reported below, on the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a client never finished"
    if errors:
        raise errors[0]


# (what, body, headers, status, a fragment of the error message)
UTF16 = json.dumps({"inputs": [mlp_tensor([1, 32], [0.5] * 32)]}).encode("utf-16")
_binary_header = json.dumps(
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
MALFORMED: list[tuple[str, bytes, dict[str, str], int, str]] = [
    (
        "empty batch",
        request(mlp_tensor([0, 32], [])),
        {},
        400,
        "input 'input' has shape [0, 32]: 0 rows; a request needs at least one row",
    ),
    (
        "empty binary batch",
        *binary_request(
            {
                "inputs": [
                    {
                        "name": "input",
                        "datatype": "FP32",
                        "shape": [0, 32],
                        "parameters": {"binary_data_size": 0},
                    }
                ]
            },
            b"",
        ),
        400,
        "0 rows",
    ),
    (
        "datatype list",
        request(mlp_tensor([1, 32], [0.5] * 32, ["FP32"])),
        {},
        400,
        "input 'input': unknown datatype ['FP32']",
    ),
    (
        "datatype object",
        request(mlp_tensor([1, 32], [0.5] * 32, {"type": "FP32"})),
        {},
        400,
        "unknown datatype {'type': 'FP32'}",
    ),
    (
        "null value",
        request(mlp_tensor([1, 32], [0.5] * 31 + [None])),
        {},
        400,
        "input 'input': data is not valid FP32: element 31 is null",
    ),
    (
        "NaN string",
        request(mlp_tensor([1, 32], ["NaN"] + [0.5] * 31)),
        {},
        400,
        "element 0 is the string 'NaN'",
    ),
    (
        "late boolean",
        request(mlp_tensor([1, 32], [0.5] * 20 + [True] + [0.5] * 11)),
        {},
        400,
        "found a boolean at element 20",
    ),
    (
        "1e39 for FP32",
        request(mlp_tensor([1, 32], [0.5] * 5 + [1e39] + [0.5] * 26)),
        {},
        400,
        "element 5 is 1e+39: out of range for FP32",
    ),
    (
        "nesting",
        request(mlp_tensor([1, 32], [[0.5] * 16, [0.5] * 16])),
        {},
        400,
        "'data' is nested as [2, 16] but the shape is [1, 32]",
    ),
    (
        "string flag",
        request(mlp_tensor([1, 32], [0.5] * 32), parameters={"binary_data_output": "false"}),
        {},
        400,
        "parameter 'binary_data_output' must be true or false, got 'false'",
    ),
    (
        "header length beyond the body",
        _binary_header,
        {HEADER_LENGTH: "999"},
        400,
        f"{HEADER_LENGTH} is 999 but the body has only {len(_binary_header)} bytes",
    ),
    (
        "header length not a number",
        _binary_header,
        {HEADER_LENGTH: "12abc"},
        400,
        f"{HEADER_LENGTH} must be an integer, got '12abc'",
    ),
    (
        "binary data without the header",
        _binary_header + np.zeros(32, dtype=np.float32).tobytes(),
        {},
        400,
        f"binary tensor data needs the {HEADER_LENGTH} header",
    ),
    ("UTF-16 body", UTF16, {}, 400, "is not UTF-8 (it looks like UTF-16)"),
    (
        "truncated deflate",
        zlib.compress(request(mlp_tensor([1, 32], [0.5] * 32)))[:40],
        {"Content-Encoding": "deflate"},
        400,
        "request body is not valid deflate: the compressed stream is truncated",
    ),
    (
        "form content type",
        request(mlp_tensor([1, 32], [0.5] * 32)),
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
        "Content-Type 'application/x-www-form-urlencoded' is not accepted",
    ),
]


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_each_malformed_request_gets_a_4xx_naming_its_problem(
    mlp_server, body, headers, status, message
):
    before = mlp_server.metrics()

    got, answer = Connection(mlp_server.port).post(INFER, body, headers)

    assert got == status, answer
    assert message in json.loads(answer)["error"]
    after = mlp_server.metrics()
    # counted as a bad request, and nothing left in flight (a 500 used to leak one)
    assert metric_value(after, "driftline_inference_requests_total", 'outcome="bad_request"') == (
        metric_value(before, "driftline_inference_requests_total", 'outcome="bad_request"') + 1
    )
    assert metric_value(after, "driftline_inference_requests_total", 'outcome="error"') == (
        metric_value(before, "driftline_inference_requests_total", 'outcome="error"')
    )
    assert metric_value(after, "driftline_in_flight_requests", 'model="mlp"') == 0


def test_malformed_clients_beside_valid_ones_never_fail_a_valid_request(start_server, mlp_file):
    server = start_server(
        "mlp", str(mlp_file.path), "--max-batch-wait-ms", "2", "--max-batch-size", "64"
    )
    server.wait_ready()
    model = classifier_mlp()
    valid_failures: list[str] = []
    malformed_answers: list[tuple[str, int, str]] = []
    valid_count, rounds = 8, 25

    def valid_client(seed: int) -> Callable[[], None]:
        def run() -> None:
            connection = Connection(server.port)
            rng = np.random.default_rng(seed)
            for index in range(rounds):
                features = rng.standard_normal((1 + index % 3, 32)).astype(np.float32)
                status, answer = connection.post(INFER, mlp_request(features, f"{seed}-{index}"))
                if status != 200:
                    valid_failures.append(f"{seed}-{index}: {status} {answer[:200]!r}")
                    continue
                document = json.loads(answer)
                output = np.array(document["outputs"][0]["data"]).reshape(len(features), 3)
                if document["id"] != f"{seed}-{index}" or not np.allclose(
                    output, numpy_mlp(model, features), rtol=1e-4, atol=1e-6
                ):
                    valid_failures.append(f"{seed}-{index}: wrong answer")
            connection.close()

        return run

    def malformed_client(offset: int) -> Callable[[], None]:
        def run() -> None:
            for index in range(2 * len(MALFORMED)):
                what, body, headers, _, _ = MALFORMED[(index + offset) % len(MALFORMED)]
                # a fresh connection each time: some refusals are for the stream itself
                connection = Connection(server.port)
                status, answer = connection.post(INFER, body, headers)
                malformed_answers.append((what, status, json.loads(answer)["error"]))
                connection.close()

        return run

    run_together(
        [valid_client(seed) for seed in range(valid_count)]
        + [malformed_client(offset) for offset in range(0, 12, 4)]
    )

    assert valid_failures == []
    expected = {what: (status, message) for what, _, _, status, message in MALFORMED}
    for what, status, error in malformed_answers:
        assert (status, expected[what][1] in error) == (expected[what][0], True), (what, error)
    text = server.metrics()
    assert metric_value(text, "driftline_inference_requests_total", 'outcome="success"') == (
        valid_count * rounds
    )
    assert metric_value(text, "driftline_inference_requests_total", 'outcome="bad_request"') == (
        len(malformed_answers)
    )
    assert metric_value(text, "driftline_inference_requests_total", 'outcome="error"') == 0
    assert metric_value(text, "driftline_in_flight_requests", 'model="mlp"') == 0


def test_a_request_the_model_fails_on_fails_alone_in_its_batch(start_server, lookup_file):
    """Eight one-row requests fill one batch exactly (the batch waits for them); two ask
    for rows the table does not have, which makes onnxruntime fail the whole call. Those
    two get a 500 each, counted as errors; the six others get their rows."""
    server = start_server(
        "lookup",
        str(lookup_file.path),
        "--max-batch-size",
        "8",
        "--max-batch-wait-ms",
        "120000",
    )
    server.wait_ready()
    indices = [0, 2, 7, 1, 1, -9, 2, 0]
    answers: dict[int, tuple[int, Any]] = {}

    def client(position: int) -> Callable[[], None]:
        def run() -> None:
            body = request(
                {"name": "index", "datatype": "INT64", "shape": [1, 1], "data": [indices[position]]}
            )
            status, answer = Connection(server.port).post("/v2/models/lookup/infer", body)
            answers[position] = (status, json.loads(answer))

        return run

    run_together([client(position) for position in range(len(indices))])

    for position, index in enumerate(indices):
        status, answer = answers[position]
        if 0 <= index < len(TABLE):
            assert status == 200, answer
            assert answer["outputs"][0]["data"] == TABLE[index].tolist()
        else:
            assert status == 500
            assert answer["error"].startswith("inference failed:")
            assert "out of data bounds" in answer["error"]
    text = server.metrics()
    # they really ran as one batch of eight
    assert metric_value(text, "driftline_batch_size_requests_count") == 1
    assert metric_value(text, "driftline_batch_size_requests_sum") == 8
    assert metric_value(text, "driftline_inference_requests_total", 'outcome="error"') == 2
    assert metric_value(text, "driftline_inference_requests_total", 'outcome="success"') == 6
    assert metric_value(text, "driftline_in_flight_requests") == 0


@pytest.fixture(scope="module")
def root_server(start_server, root_file):
    server = start_server("root", str(root_file.path))
    server.wait_ready()
    return server


def test_non_finite_outputs_with_tritonclient(root_server):
    client = httpclient.InferenceServerClient(url=root_server.url)
    x = np.array([[4.0, -1.0], [0.0, 9.0]], dtype=np.float32)
    tensor = httpclient.InferInput("x", [2, 2], "FP32")
    tensor.set_data_from_numpy(x, binary_data=False)

    with pytest.raises(InferenceServerException) as raised:
        client.infer(
            "root", [tensor], outputs=[httpclient.InferRequestedOutput("root", binary_data=False)]
        )
    assert "output 'root' has 1 non-finite value (NaN or infinity)" in str(raised.value)
    assert "ask for this output in binary" in str(raised.value)

    result = client.infer(
        "root",
        [tensor],
        outputs=[
            httpclient.InferRequestedOutput("root", binary_data=True),
            httpclient.InferRequestedOutput("inverse", binary_data=True),
        ],
    )
    np.testing.assert_array_equal(
        result.as_numpy("root"), np.array([[2.0, np.nan], [0.0, 3.0]], dtype=np.float32)
    )
    np.testing.assert_array_equal(
        result.as_numpy("inverse"), np.array([[0.25, -1.0], [np.inf, 1 / 9]], dtype=np.float32)
    )
    finite = httpclient.InferInput("x", [1, 2], "FP32")
    finite.set_data_from_numpy(np.array([[4.0, 9.0]], dtype=np.float32), binary_data=False)
    as_json = client.infer(
        "root", [finite], outputs=[httpclient.InferRequestedOutput("root", binary_data=False)]
    )
    assert as_json.get_output("root")["data"] == [2.0, 3.0]
    client.close()


def test_non_finite_outputs_over_raw_http(root_server):
    connection = Connection(root_server.port)
    body = request({"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [0.0, 1.0]})

    status, answer = connection.post("/v2/models/root/infer", body)
    assert status == 422
    assert json.loads(answer)["error"].startswith(
        "output 'inverse' has 1 non-finite value (NaN or infinity), which JSON tensor data "
        "cannot carry"
    )

    status, answer = connection.post(
        "/v2/models/root/infer",
        request(
            {"name": "x", "datatype": "FP32", "shape": [1, 2], "data": [0.0, 1.0]},
            parameters={"binary_data_output": True},
        ),
    )
    assert status == 200
    header = json.loads(answer[: answer.index(b"}]}") + 3])
    sizes = [output["parameters"]["binary_data_size"] for output in header["outputs"]]
    blob = answer[len(answer) - sum(sizes) :]
    inverse = np.frombuffer(blob[sizes[0] :], dtype=np.float32)
    assert inverse[0] == np.inf and inverse[1] == 1.0
    metrics = root_server.metrics()
    assert metric_value(metrics, "driftline_in_flight_requests") == 0
    assert metric_value(metrics, "driftline_inference_requests_total", 'outcome="error"') >= 1


@pytest.fixture(scope="module")
def roomy_server(start_server, mlp_file):
    """The default limits: a 16 MiB body, 4096 rows per request."""
    server = start_server("mlp", str(mlp_file.path))
    server.wait_ready()
    return server


@pytest.mark.parametrize("form", ["json", "binary"])
def test_a_huge_bytes_body_is_refused_before_decoding_while_others_are_answered(roomy_server, form):
    count = 2_000_000
    if form == "json":
        big, big_headers = (
            request(
                {"name": "input", "datatype": "BYTES", "shape": [count], "data": ["a"] * count}
            ),
            {},
        )
    else:
        big, big_headers = binary_request(
            {
                "inputs": [
                    {
                        "name": "input",
                        "datatype": "BYTES",
                        "shape": [count],
                        "parameters": {"binary_data_size": 4 * count},
                    }
                ]
            },
            struct.pack("<I", 0) * count,
        )
    assert len(big) >= 8_000_000
    answers: dict[str, tuple[int, bytes]] = {}

    def send_big() -> None:
        answers["big"] = Connection(roomy_server.port).post(INFER, big, big_headers)

    def send_small() -> None:
        answers["small"] = Connection(roomy_server.port).post(
            INFER, mlp_request(np.ones((1, 32), dtype=np.float32))
        )

    run_together([send_big, send_small])

    assert answers["small"][0] == 200
    status, answer = answers["big"]
    assert status == 400
    assert json.loads(answer)["error"] == (
        "input 'input' has datatype BYTES but the model expects FP32"
    )


def test_rows_per_request_are_bounded_by_default_and_by_the_flag(
    roomy_server, start_server, mlp_file
):
    connection = Connection(roomy_server.port)
    header = {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": [100_000, 32],
                "parameters": {"binary_data_size": 100_000 * 32 * 4},
            }
        ]
    }
    body, headers = binary_request(header, np.zeros((100_000, 32), dtype=np.float32).tobytes())
    status, answer = connection.post(INFER, body, headers)
    assert status == 413
    assert json.loads(answer)["error"] == (
        "request has 100000 rows; this server takes at most 4096 rows per request "
        "(--max-request-rows): split it into smaller requests"
    )
    assert connection.post(INFER, mlp_request(np.zeros((4096, 32), dtype=np.float32)))[0] == 200
    assert (
        metric_value(
            roomy_server.metrics(), "driftline_inference_requests_total", 'outcome="too_large"'
        )
        >= 1
    )

    small = start_server("mlp", str(mlp_file.path), "--max-request-rows", "10")
    small.wait_ready()
    bounded = Connection(small.port)
    status, answer = bounded.post(INFER, mlp_request(np.zeros((11, 32), dtype=np.float32)))
    assert status == 413
    assert (
        "request has 11 rows; this server takes at most 10 rows per request"
        in json.loads(answer)["error"]
    )
    assert bounded.post(INFER, mlp_request(np.zeros((10, 32), dtype=np.float32)))[0] == 200
    status, metadata = small.get("/v2/models/mlp")
    assert json.loads(metadata)["parameters"]["max_request_rows"] == 10
