"""The Open Inference Protocol codec, as pure functions."""

from __future__ import annotations

import json
import struct

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from driftline_serving.server.model import (
    ModelSignature,
    TensorSpec,
    shape_matches,
    validate_request,
)
from driftline_serving.server.protocol import (
    DATATYPE_TO_NUMPY,
    ProtocolError,
    RequestedOutput,
    datatype_of,
    decode_infer_request,
    encode_infer_response,
    select_outputs,
)


def binary_request(header: dict, *blobs: bytes) -> tuple[bytes, str]:
    encoded = json.dumps(header).encode()
    return encoded + b"".join(blobs), str(len(encoded))


def test_json_tensor_is_decoded_with_its_shape_and_dtype():
    body = orjson.dumps(
        {
            "id": "a",
            "inputs": [
                {"name": "x", "datatype": "INT32", "shape": [2, 2], "data": [[1, 2], [3, 4]]}
            ],
        }
    )
    request = decode_infer_request(body)
    assert request.request_id == "a"
    assert request.inputs["x"].dtype == np.int32
    np.testing.assert_array_equal(request.inputs["x"], [[1, 2], [3, 4]])
    assert request.requested_outputs is None
    assert not request.binary_by_default


def test_binary_tensors_are_read_in_order_after_the_json_header():
    first = np.arange(6, dtype=np.float32).reshape(2, 3)
    second = np.array([[7], [8]], dtype=np.int64)
    body, length = binary_request(
        {
            "inputs": [
                {
                    "name": "a",
                    "datatype": "FP32",
                    "shape": [2, 3],
                    "parameters": {"binary_data_size": 24},
                },
                {
                    "name": "b",
                    "datatype": "INT64",
                    "shape": [2, 1],
                    "parameters": {"binary_data_size": 16},
                },
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}, {"name": "z"}],
        },
        first.tobytes(),
        second.tobytes(),
    )
    request = decode_infer_request(body, length)
    np.testing.assert_array_equal(request.inputs["a"], first)
    np.testing.assert_array_equal(request.inputs["b"], second)
    assert request.requested_outputs == (RequestedOutput("y", True), RequestedOutput("z", False))


def test_bytes_tensors_in_json_and_binary():
    strings = [b"alpha", b"", b"\xffbinary"]
    blob = b"".join(struct.pack("<I", len(item)) + item for item in strings)
    body, length = binary_request(
        {
            "inputs": [
                {
                    "name": "s",
                    "datatype": "BYTES",
                    "shape": [3],
                    "parameters": {"binary_data_size": len(blob)},
                }
            ]
        },
        blob,
    )
    assert list(decode_infer_request(body, length).inputs["s"]) == strings
    as_json = orjson.dumps(
        {"inputs": [{"name": "s", "datatype": "BYTES", "shape": [2], "data": ["x", "y"]}]}
    )
    assert list(decode_infer_request(as_json).inputs["s"]) == [b"x", b"y"]


@pytest.mark.parametrize(
    ("body", "header_length", "message"),
    [
        (b"", None, "request body is empty"),
        (b"[1, 2]", None, "request body must be a JSON object, got list"),
        (b"{", None, "malformed JSON in request body"),
        (b"{}", None, "request must have a non-empty 'inputs' list"),
        (b'{"inputs": [1]}', None, "inputs[0] must be a JSON object, got int"),
        (
            b'{"inputs": [{"datatype": "FP32"}]}',
            None,
            "inputs[0] must have a non-empty string 'name'",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "FLOAT", "shape": [1], "data": [1]}]}',
            None,
            "input 'x': unknown datatype 'FLOAT'",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1.5], "data": [1]}]}',
            None,
            "input 'x': 'shape' must be a list of integers, got [1.5]",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]}]}',
            None,
            "input 'x': 'shape' must not contain negative sizes",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1]}]}',
            None,
            "input 'x': shape [2] needs 2 elements but 'data' has 1",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [[1], [2, 3]]}]}',
            None,
            "input 'x': data is not valid FP32",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [true]}]}',
            None,
            "input 'x': data is not valid FP32: found a boolean",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1], "data": [300]}]}',
            None,
            "input 'x': data is not valid UINT8",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": 1}]}',
            None,
            "input 'x': 'data' must be a list, got int",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]},'
            b' {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}',
            None,
            "input 'x' appears more than once",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}}]}',
            None,
            "input 'x' declares binary data but the request has no Inference-Header-Content-Length header",
        ),
        (b"{}", "12", "Inference-Header-Content-Length is 12 but the body has only 2 bytes"),
        (b"{}", "x", "Inference-Header-Content-Length must be an integer, got 'x'"),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], "id": 5}',
            None,
            "'id' must be a string",
        ),
        (
            b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}], "outputs": {}}',
            None,
            "'outputs' must be a list",
        ),
    ],
)
def test_malformed_requests_say_exactly_what_is_wrong(body, header_length, message):
    with pytest.raises(ProtocolError) as raised:
        decode_infer_request(body, header_length)
    assert message in raised.value.message
    assert raised.value.status == 400


def test_binary_size_must_match_the_shape():
    body, length = binary_request(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [2],
                    "parameters": {"binary_data_size": 4},
                }
            ]
        },
        b"\0" * 4,
    )
    with pytest.raises(
        ProtocolError, match=r"shape \[2\] of FP32 needs 8 bytes but binary_data_size is 4"
    ):
        decode_infer_request(body, length)


def test_unclaimed_binary_bytes_are_refused():
    body, length = binary_request(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1],
                    "parameters": {"binary_data_size": 4},
                }
            ]
        },
        b"\0" * 6,
    )
    with pytest.raises(ProtocolError, match="2 bytes of binary data that no input claims"):
        decode_infer_request(body, length)


def test_truncated_binary_is_refused():
    body, length = binary_request(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "FP64",
                    "shape": [4],
                    "parameters": {"binary_data_size": 32},
                }
            ]
        },
        b"\0" * 10,
    )
    with pytest.raises(ProtocolError, match="expected 32 bytes, only 10 left in the body"):
        decode_infer_request(body, length)


def test_response_json_and_binary_outputs_round_trip():
    scores = np.array([[0.25, 0.75]], dtype=np.float32)
    labels = np.array([[1]], dtype=np.int64)
    body, length = encode_infer_response(
        "m", "2", "id-1", [("scores", scores, False), ("labels", labels, True)]
    )
    assert length is not None
    header = orjson.loads(body[:length])
    assert header == {
        "model_name": "m",
        "model_version": "2",
        "id": "id-1",
        "outputs": [
            {"name": "scores", "datatype": "FP32", "shape": [1, 2], "data": [0.25, 0.75]},
            {
                "name": "labels",
                "datatype": "INT64",
                "shape": [1, 1],
                "parameters": {"binary_data_size": 8},
            },
        ],
    }
    assert np.frombuffer(body[length:], dtype=np.int64).tolist() == [1]


def test_json_only_response_has_no_header_length():
    body, length = encode_infer_response("m", "1", None, [("y", np.array([True, False]), False)])
    assert length is None
    assert orjson.loads(body)["outputs"][0] == {
        "name": "y",
        "datatype": "BOOL",
        "shape": [2],
        "data": [True, False],
    }
    assert "id" not in orjson.loads(body)


def test_select_outputs_defaults_to_all_in_model_order():
    request = decode_infer_request(
        b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],'
        b' "parameters": {"binary_data_output": true}}'
    )
    outputs = {"b": np.zeros(1), "a": np.ones(1)}
    selected = select_outputs(request, outputs, ("a", "b"))
    assert [(name, binary) for name, _, binary in selected] == [("a", True), ("b", True)]


@pytest.mark.parametrize("datatype", [name for name in DATATYPE_TO_NUMPY if name != "BYTES"])
def test_every_numeric_datatype_maps_back_to_itself(datatype):
    assert datatype_of(np.zeros(1, dtype=DATATYPE_TO_NUMPY[datatype])) == datatype


numeric_arrays = st.sampled_from(
    ["FP32", "FP64", "INT32", "INT64", "UINT8", "BOOL", "FP16"]
).flatmap(
    lambda datatype: st.tuples(
        st.just(datatype),
        hnp.arrays(
            DATATYPE_TO_NUMPY[datatype],
            hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
            # JSON has no NaN or Infinity, so neither survives the JSON encoding.
            elements={"allow_nan": False, "allow_infinity": False}
            if datatype.startswith("FP")
            else None,
        ),
    )
)


@given(numeric_arrays, st.booleans())
def test_any_numeric_tensor_survives_request_and_response_encoding(case, binary):
    datatype, array = case
    if binary:
        raw = array.tobytes()
        body, length = binary_request(
            {
                "inputs": [
                    {
                        "name": "t",
                        "datatype": datatype,
                        "shape": list(array.shape),
                        "parameters": {"binary_data_size": len(raw)},
                    }
                ]
            },
            raw,
        )
        decoded = decode_infer_request(body, length).inputs["t"]
    else:
        body = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "t",
                        "datatype": datatype,
                        "shape": list(array.shape),
                        "data": array.ravel(),
                    }
                ]
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
        decoded = decode_infer_request(body).inputs["t"]
    np.testing.assert_array_equal(decoded, array)
    assert decoded.dtype == array.dtype

    response, length = encode_infer_response("m", "1", None, [("t", decoded, binary)])
    if binary:
        assert length is not None
        assert (
            np.frombuffer(response[length:], dtype=array.dtype).reshape(array.shape).tolist()
            == array.tolist()
        )
    else:
        output = orjson.loads(response)["outputs"][0]
        np.testing.assert_array_equal(
            np.asarray(output["data"], dtype=array.dtype).reshape(output["shape"]), array
        )


SIGNATURE = ModelSignature(
    inputs=(TensorSpec("features", "FP32", (-1, 3)), TensorSpec("scale", "INT64", (-1, 1))),
    outputs=(TensorSpec("scaled", "FP32", (-1, 3)),),
)


def request_with(**tensors: tuple[str, list[int], list]) -> bytes:
    return orjson.dumps(
        {
            "inputs": [
                {"name": name, "datatype": datatype, "shape": shape, "data": data}
                for name, (datatype, shape, data) in tensors.items()
            ]
        }
    )


def test_validation_returns_the_row_count():
    body = request_with(features=("FP32", [2, 3], [0] * 6), scale=("INT64", [2, 1], [1, 2]))
    assert validate_request(decode_infer_request(body), SIGNATURE) == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (request_with(features=("FP32", [1, 3], [0] * 3)), "missing input 'scale' (INT64 [-1, 1])"),
        (
            request_with(features=("FP32", [2, 3], [0] * 6), scale=("INT64", [1, 1], [1])),
            "inputs disagree on the batch dimension: 'scale' has 1 rows, earlier inputs have 2",
        ),
        (
            request_with(features=("FP32", [1, 3], [0] * 3), scale=("INT32", [1, 1], [1])),
            "input 'scale' has datatype INT32 but the model expects INT64",
        ),
        (
            request_with(
                features=("FP32", [1, 3], [0] * 3),
                scale=("INT64", [1, 1], [1]),
                extra=("FP32", [1], [0]),
            ),
            "unknown input 'extra'",
        ),
    ],
)
def test_validation_errors_name_the_input(body, message):
    with pytest.raises(
        ProtocolError,
        match=message.replace("[", r"\[")
        .replace("(", r"\(")
        .replace(")", r"\)")
        .replace("]", r"\]"),
    ):
        validate_request(decode_infer_request(body), SIGNATURE)


def test_signature_batchable_only_with_open_first_dimensions():
    assert SIGNATURE.batchable
    fixed = ModelSignature(
        inputs=(TensorSpec("x", "FP32", (1, 3)),), outputs=(TensorSpec("y", "FP32", (-1,)),)
    )
    assert not fixed.batchable


@pytest.mark.parametrize(
    ("shape", "expected", "matches"),
    [
        ((4, 3), (-1, 3), True),
        ((4, 3), (4, 3), True),
        ((5, 3), (4, 3), False),  # a fixed first dimension is checked too
        ((4, 2), (-1, 3), False),
        ((4,), (-1, 3), False),
        ((4, 3, 1), (-1, 3), False),
        ((), (), True),
        ((7, 9), (-1, -1), True),
    ],
)
def test_shape_matching(shape, expected, matches):
    assert shape_matches(shape, expected) is matches
