"""The Open Inference Protocol codec, as pure functions."""

from __future__ import annotations

import json
import struct

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
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


# No deadline: a timing threshold says nothing about correctness, and a loaded CI machine
# made the default 200 ms fail now and then.
@settings(deadline=None)
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


# --- issue 13: exact parsing -----------------------------------------------------------------


def tensor_body(datatype: str, shape: list, data, **extra) -> bytes:
    # json, not orjson: it writes integers beyond 64 bits, as a client may send them
    return json.dumps(
        {"inputs": [{"name": "x", "datatype": datatype, "shape": shape, "data": data}], **extra}
    ).encode()


@pytest.mark.parametrize(
    ("datatype", "shape", "data", "message"),
    [
        ("FP32", [2], [1.0, None], "input 'x': data is not valid FP32: element 1 is null"),
        (
            "FP32",
            [2],
            [1.0, "NaN"],
            "input 'x': data is not valid FP32: element 1 is the string 'NaN'",
        ),
        ("FP32", [1], ["1.5"], "input 'x': data is not valid FP32: element 0 is the string '1.5'"),
        (
            "FP32",
            [3],
            [1.0, 2.0, True],
            "input 'x': data is not valid FP32: found a boolean at element 2",
        ),
        (
            "INT64",
            [2, 2],
            [[1, 2], [3, False]],
            "data is not valid INT64: found a boolean at element 3",
        ),
        (
            "FP32",
            [2],
            [1.0, 1e39],
            "input 'x': data is not valid FP32: element 1 is 1e+39: out of range for FP32",
        ),
        (
            "FP16",
            [1],
            [70000],
            "input 'x': data is not valid FP16: element 0 is 70000: out of range for FP16",
        ),
        (
            "FP32",
            [1],
            [10**40],
            "data is not valid FP32: element 0 is 1e+40: out of range for FP32",
        ),
        (
            "INT8",
            [3],
            [1, -129, 2],
            "input 'x': data is not valid INT8: element 1 is -129: out of range for INT8",
        ),
        (
            "INT32",
            [2],
            [1, 2**31],
            "input 'x': data is not valid INT32: element 1 is 2147483648: out of range",
        ),
        (
            "UINT64",
            [2],
            [2**63, -1],
            "input 'x': data is not valid UINT64: element 1 is -1: out of range",
        ),
        (
            "INT64",
            [2],
            [2**63, 1],
            "input 'x': data is not valid INT64: element 0 is 9223372036854775808: out of range",
        ),
        (
            "UINT64",
            [1],
            [2**64],
            "data is not valid UINT64: element 0 is 1.8446744073709552e+19: out of range for UINT64",
        ),
        (
            "INT32",
            [2],
            [1, 1.5],
            "input 'x': data is not valid INT32: element 1 is 1.5: INT32 takes only integers",
        ),
        (
            "BOOL",
            [2],
            [True, 1],
            "input 'x': data is not valid BOOL: element 1 is 1: BOOL takes only true and false",
        ),
        ("BOOL", [1], [None], "input 'x': data is not valid BOOL: element 0 is null"),
        ("FP32", [2], [1.0, {"a": 1}], "input 'x': data is not valid FP32: element 1 is an object"),
        ("FP32", [4], [[1, 2], [3, 4]], "'data' is nested as [2, 2] but the shape is [4]"),
        ("FP32", [2, 2], [[1, 2, 3, 4]], "'data' is nested as [1, 4] but the shape is [2, 2]"),
        ("FP32", [2, 2], [[1, 2], [3]], "'data' is nested differently from the shape [2, 2]"),
        ("FP32", [2, 2], [[1, 2], 3, 4], "'data' is nested differently from the shape [2, 2]"),
        ("BYTES", [2], [["a"], ["b"]], "'data' is nested differently from the shape [2]"),
        ("BYTES", [2], ["a", 1], "input 'x': BYTES data must be strings; element 1 is 1"),
        ("BYTES", [1], "abc", "input 'x': 'data' must be a list, got a string"),
    ],
)
def test_json_values_must_be_exactly_what_the_datatype_takes(datatype, shape, data, message):
    with pytest.raises(ProtocolError) as raised:
        decode_infer_request(tensor_body(datatype, shape, data))
    assert message in raised.value.message
    assert raised.value.status == 400


@pytest.mark.parametrize(
    ("datatype", "shape", "data", "expected"),
    [
        ("FP32", [2, 2], [1, 2.5, 3, 4], [[1, 2.5], [3, 4]]),  # flat, row-major
        ("FP32", [2, 2], [[1, 2.5], [3, 4]], [[1, 2.5], [3, 4]]),  # nested exactly
        ("FP32", [1], [10**30], [float(np.float32(1e30))]),  # a large integer is still a number
        ("FP16", [2], [65504, -0.5], [65504, -0.5]),
        ("FP16", [2], [65519.9, -65519], [65504, -65504]),  # rounds to the largest FP16
        ("FP32", [1], [3.4028235e38], [float(np.finfo(np.float32).max)]),  # as orjson writes it
        ("UINT64", [2], [2**64 - 1, 0], [2**64 - 1, 0]),
        ("INT8", [2], [-128, 127], [-128, 127]),
        ("BOOL", [2, 1], [[True], [False]], [[True], [False]]),
        ("FP64", [3], [0, 1, 0.5], [0, 1, 0.5]),  # 0 and 1 are numbers, not booleans
        ("BYTES", [2, 1], [["a"], ["é"]], [[b"a"], ["é".encode()]]),
    ],
)
def test_valid_json_values_are_decoded_exactly(datatype, shape, data, expected):
    decoded = decode_infer_request(tensor_body(datatype, shape, data)).inputs["x"]
    assert decoded.dtype == DATATYPE_TO_NUMPY[datatype]
    assert decoded.shape == tuple(shape)
    assert decoded.tolist() == expected


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"inputs": [{"name": "x", "datatype": ["FP32"], "shape": [1], "data": [1]}]},
            "input 'x': unknown datatype ['FP32']",
        ),
        (
            {"inputs": [{"name": "x", "datatype": {"a": 1}, "shape": [1], "data": [1]}]},
            "input 'x': unknown datatype {'a': 1}",
        ),
        (
            {
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
                "parameters": {"binary_data_output": "false"},
            },
            "request: parameter 'binary_data_output' must be true or false, got 'false'",
        ),
        (
            {
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
                "outputs": [{"name": "y", "parameters": {"binary_data": 1}}],
            },
            "output 'y': parameter 'binary_data' must be true or false, got 1",
        ),
        (
            {
                "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
                "parameters": ["binary_data_output"],
            },
            "request: 'parameters' must be a JSON object, got a list",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "x",
                        "datatype": "FP32",
                        "shape": [1],
                        "parameters": {"binary_data_size": True},
                    }
                ]
            },
            "input 'x': binary_data_size must be a non-negative integer",
        ),
    ],
)
def test_parameters_and_datatypes_must_have_their_json_types(document, message):
    with pytest.raises(ProtocolError) as raised:
        decode_infer_request(orjson.dumps(document), "0" if False else None)
    assert message in raised.value.message
    assert raised.value.status == 400


def test_binary_bool_bytes_must_be_zero_or_one():
    body, length = binary_request(
        {
            "inputs": [
                {
                    "name": "x",
                    "datatype": "BOOL",
                    "shape": [3],
                    "parameters": {"binary_data_size": 3},
                }
            ]
        },
        b"\x01\x00\x07",
    )
    with pytest.raises(ProtocolError, match="input 'x': BOOL byte 2 is 7"):
        decode_infer_request(body, length)


def test_the_check_sees_every_input_before_any_data_is_decoded():
    seen = []

    def check(headers, requested):
        seen.append([(h.name, h.datatype, h.shape) for h in headers])
        raise ProtocolError("refused by the model check")

    # The data is malformed: had it been decoded first, that would be the error.
    body = orjson.dumps(
        {
            "inputs": [
                {"name": "a", "datatype": "BYTES", "shape": [2], "data": ["x", 1]},
                {"name": "b", "datatype": "FP32", "shape": [1, 2], "data": [None, None]},
            ]
        }
    )
    with pytest.raises(ProtocolError, match="refused by the model check"):
        decode_infer_request(body, None, check)
    assert seen == [[("a", "BYTES", (2,)), ("b", "FP32", (1, 2))]]
    rows = decode_infer_request(
        tensor_body("FP32", [3, 1], [1, 2, 3]), None, lambda headers, requested: 3
    ).rows
    assert rows == 3


def test_empty_and_oversized_requests_are_refused_by_the_model_check():
    from driftline_serving.server.model import RequestLimits, RequestValidator

    mlp = ModelSignature(
        inputs=(TensorSpec("input", "FP32", (-1, 32)),),
        outputs=(TensorSpec("probabilities", "FP32", (-1, 3)),),
    )
    validator = RequestValidator(mlp, RequestLimits(max_rows=100, max_elements=100 * 32))

    def refusal(rows: int) -> ProtocolError:
        body = orjson.dumps(
            {
                "inputs": [
                    {
                        "name": "input",
                        "datatype": "FP32",
                        "shape": [rows, 32],
                        "data": [0.5] * (32 * rows),
                    }
                ]
            }
        )
        with pytest.raises(ProtocolError) as raised:
            decode_infer_request(body, None, validator)
        return raised.value

    empty = refusal(0)
    assert (empty.status, empty.message) == (
        400,
        "input 'input' has shape [0, 32]: 0 rows; a request needs at least one row",
    )
    too_many = refusal(101)
    assert too_many.status == 413
    assert (
        "request has 101 rows; this server takes at most 100 rows per request" in too_many.message
    )
    elements = RequestValidator(mlp, RequestLimits(max_rows=100, max_elements=64))
    with pytest.raises(ProtocolError, match="request has 96 values over its inputs"):
        decode_infer_request(
            tensor_body("FP32", [3, 32], [0.0] * 96).replace(b'"x"', b'"input"'), None, elements
        )


@pytest.mark.parametrize(
    ("body", "header_length", "message"),
    [
        (
            b'{"inputs": []}',
            "400",
            "Inference-Header-Content-Length is 400 but the body has only 14 bytes",
        ),
        (b'{"inputs": []}', "1e3", "Inference-Header-Content-Length must be an integer, got '1e3'"),
        (b'{"inputs": []}', "-4", "Inference-Header-Content-Length must not be negative, got -4"),
        (
            b'{"inputs": [1]}\x00\x00\x80\x3f',
            None,
            "request body has 4 bytes of binary data after its JSON; binary tensor data needs "
            "the Inference-Header-Content-Length header",
        ),
        (
            b'{"inputs": [1]} trailing',
            None,
            "request body has data after its JSON object; binary tensor data needs the "
            "Inference-Header-Content-Length header",
        ),
        (
            '{"inputs": []}'.encode("utf-16"),
            None,
            "the request body is not UTF-8 (it looks like UTF-16); the protocol's JSON must be UTF-8",
        ),
        (
            '{"inputs": []}'.encode("utf-16-le"),
            None,
            "the request body is not UTF-8 (it looks like UTF-16)",
        ),
        (
            b'{"id": "caf\xe9"}',
            None,
            "the request body is not valid UTF-8 (byte 0xe9 at offset 11)",
        ),
        (
            b'{"inputs": [{"name": "x"}]}\x00\x00\x80\x3f',
            "20",
            "malformed JSON in the JSON header (the first 20 bytes, per "
            "Inference-Header-Content-Length)",
        ),
        (
            b'{"inputs": [{"name": "x"}]}\x00\x00\x80\x3f',
            "31",
            "the JSON header (the first 31 bytes, per Inference-Header-Content-Length) is not "
            "valid UTF-8 (byte 0x80 at offset 29)",
        ),
    ],
)
def test_bodies_that_are_not_json_say_what_they_are(body, header_length, message):
    with pytest.raises(ProtocolError) as raised:
        decode_infer_request(body, header_length)
    assert message in raised.value.message
    assert "surrogates" not in raised.value.message


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        (None, None),
        (b"application/json", None),
        (b"Application/JSON; charset=UTF-8", None),
        (b"application/octet-stream", None),
        (b"application/x-www-form-urlencoded", 415),
        (b"text/plain", 415),
        (b"application/json; charset=utf-16", 415),
    ],
)
def test_content_type_must_say_json_or_binary(content_type, status):
    from driftline_serving.server.protocol import check_content_type

    if status is None:
        check_content_type(content_type)
        return
    with pytest.raises(ProtocolError) as raised:
        check_content_type(content_type)
    assert raised.value.status == 415


def test_non_finite_outputs_are_refused_in_json_and_sent_as_they_are_in_binary():
    values = np.array([[1.0, np.nan], [np.inf, -np.inf]], dtype=np.float32)
    with pytest.raises(ProtocolError) as raised:
        encode_infer_response("m", "1", None, [("scores", values, False)])
    assert raised.value.status == 422
    assert raised.value.message.startswith(
        "output 'scores' has 3 non-finite values (NaN or infinity), which JSON tensor data "
        "cannot carry; ask for this output in binary"
    )
    body, length = encode_infer_response("m", "1", None, [("scores", values, True)])
    assert length is not None
    np.testing.assert_array_equal(
        np.frombuffer(body[length:], dtype=np.float32).reshape(2, 2), values
    )


@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
@pytest.mark.parametrize(
    ("datatype", "bad", "message"),
    [
        ("FP32", True, "found a boolean at element 437"),
        ("FP32", None, "element 437 is null"),
        ("FP32", "1.5", "element 437 is the string '1.5'"),
        ("FP32", 1e39, "element 437 is 1e+39: out of range for FP32"),
        ("INT16", 40000, "element 437 is 40000: out of range for INT16"),
        ("INT16", 2.5, "element 437 is 2.5: INT16 takes only integers"),
        ("BOOL", 1, "element 437 is 1: BOOL takes only true and false"),
    ],
)
def test_large_tensors_are_checked_in_bulk_as_strictly(datatype, bad, message, nested):
    """More values than the small-request path takes: numpy's bulk checks, same rules."""
    filler = True if datatype == "BOOL" else 3
    values = [filler] * 600
    # a 0 and a 1 around it, so that the boolean check has candidates to look at
    values[436], values[438] = (False, True) if datatype == "BOOL" else (0, 1)
    values[437] = bad
    data = [values[row * 30 : (row + 1) * 30] for row in range(20)] if nested else values
    with pytest.raises(ProtocolError) as raised:
        decode_infer_request(tensor_body(datatype, [20, 30], data))
    assert f"input 'x': data is not valid {datatype}: {message}" in raised.value.message
    values[437] = filler
    good = [values[row * 30 : (row + 1) * 30] for row in range(20)] if nested else values
    decoded = decode_infer_request(tensor_body(datatype, [20, 30], good)).inputs["x"]
    assert decoded.shape == (20, 30)
    assert decoded.ravel().tolist() == values


def test_a_boolean_among_many_zeros_and_ones_is_found():
    one_hot = [[float(column == row % 8) for column in range(8)] for row in range(100)]
    one_hot[99][7] = True
    with pytest.raises(ProtocolError, match="found a boolean at element 799"):
        decode_infer_request(tensor_body("FP32", [100, 8], one_hot))
    one_hot[99][7] = 1.0
    assert decode_infer_request(tensor_body("FP32", [100, 8], one_hot)).inputs["x"].sum() == 101
