"""Open Inference Protocol v2 codec: JSON tensors and the binary tensor extension.

Pure functions from bytes to arrays and back. Every malformed request becomes a
``ProtocolError`` whose message says exactly what is wrong; nothing here touches I/O.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

HEADER_LENGTH_HEADER = "Inference-Header-Content-Length"

# OIP datatype name -> numpy dtype. Fixed little-endian: the binary extension is little-endian.
DATATYPE_TO_NUMPY: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}

_NUMPY_KIND_TO_DATATYPE: dict[str, str] = {
    dtype.str: name for name, dtype in DATATYPE_TO_NUMPY.items() if name != "BYTES"
}


class ProtocolError(ValueError):
    """A request the server cannot accept; the message is sent to the client verbatim."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class RequestedOutput:
    name: str
    binary: bool


# Not frozen: one is built per request, and a frozen dataclass pays for every field.
@dataclass(slots=True)
class InferRequest:
    request_id: str | None
    inputs: dict[str, np.ndarray]
    # Datatype names as the client declared them, kept for precise validation messages.
    declared_datatypes: dict[str, str]
    # None: every model output, each binary when ``binary_by_default`` says so.
    requested_outputs: tuple[RequestedOutput, ...] | None
    binary_by_default: bool


_DTYPE_TO_DATATYPE: dict[np.dtype[Any], str] = {
    dtype: name for name, dtype in DATATYPE_TO_NUMPY.items() if name != "BYTES"
}


def datatype_of(array: np.ndarray) -> str:
    """The OIP datatype name of a numpy array."""
    known = _DTYPE_TO_DATATYPE.get(array.dtype)
    if known is not None:
        return known
    if array.dtype == object or array.dtype.kind in "SU":
        return "BYTES"
    key = array.dtype.newbyteorder("<").str if array.dtype.byteorder == ">" else array.dtype.str
    if key == "|b1":
        return "BOOL"
    try:
        return _NUMPY_KIND_TO_DATATYPE[key]
    except KeyError:
        raise ProtocolError(
            f"numpy dtype {array.dtype} has no Open Inference Protocol datatype"
        ) from None


def encode_error(message: str) -> bytes:
    return orjson.dumps({"error": message})


def _parse_header_length(value: bytes | str | None, body_length: int) -> int | None:
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    try:
        length = int(text.strip())
    except ValueError:
        raise ProtocolError(f"{HEADER_LENGTH_HEADER} must be an integer, got {text!r}") from None
    if length < 0:
        raise ProtocolError(f"{HEADER_LENGTH_HEADER} must not be negative, got {length}")
    if length > body_length:
        raise ProtocolError(
            f"{HEADER_LENGTH_HEADER} is {length} but the body has only {body_length} bytes"
        )
    return length


def _expect_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def _parse_shape(raw: Any, name: str) -> tuple[int, ...]:
    if type(raw) is not list:
        raise ProtocolError(f"input '{name}': 'shape' must be a list of integers, got {raw!r}")
    for dim in raw:
        if type(dim) is not int:  # also refuses bool, a subclass of int
            raise ProtocolError(f"input '{name}': 'shape' must be a list of integers, got {raw!r}")
        if dim < 0:
            raise ProtocolError(
                f"input '{name}': 'shape' must not contain negative sizes, got {raw}"
            )
    return tuple(raw)


def _decode_bytes_elements(buffer: memoryview, count: int, name: str) -> np.ndarray:
    """BYTES tensors in binary form: each element is a 4-byte little-endian length, then data."""
    elements: list[bytes] = []
    offset = 0
    for index in range(count):
        if offset + 4 > len(buffer):
            raise ProtocolError(
                f"input '{name}': BYTES element {index} has a truncated length prefix"
            )
        (length,) = struct.unpack_from("<I", buffer, offset)
        offset += 4
        if offset + length > len(buffer):
            raise ProtocolError(f"input '{name}': BYTES element {index} is truncated")
        elements.append(bytes(buffer[offset : offset + length]))
        offset += length
    if offset != len(buffer):
        raise ProtocolError(
            f"input '{name}': {len(buffer) - offset} bytes left over after {count} BYTES elements"
        )
    return np.array(elements, dtype=object)


def _decode_json_data(data: Any, datatype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    dtype = DATATYPE_TO_NUMPY[datatype]
    expected = math.prod(shape)
    if datatype == "BYTES":
        flat = data if isinstance(data, list) else [data]
        if any(isinstance(item, list) for item in flat):
            flat = np.array(flat, dtype=object).ravel().tolist()
        if not all(isinstance(item, str | bytes) for item in flat):
            raise ProtocolError(f"input '{name}': BYTES data must be strings")
        array = np.array(
            [item.encode() if isinstance(item, str) else item for item in flat], dtype=object
        )
    else:
        if not isinstance(data, list):
            raise ProtocolError(f"input '{name}': 'data' must be a list, got {type(data).__name__}")
        try:
            array = np.asarray(data, dtype=dtype)
        except (ValueError, TypeError, OverflowError) as error:
            raise ProtocolError(f"input '{name}': data is not valid {datatype}: {error}") from None
        if datatype != "BOOL" and _contains_bool(data):
            raise ProtocolError(f"input '{name}': data is not valid {datatype}: found a boolean")
    if array.size != expected:
        raise ProtocolError(
            f"input '{name}': shape {list(shape)} needs {expected} elements but 'data' has {array.size}"
        )
    return array.reshape(shape)


def _contains_bool(data: list[Any]) -> bool:
    # Only the first element of each level is checked: numpy already rejects ragged or
    # mixed-type nesting, and a full scan would cost as much as the conversion itself.
    item: Any = data
    while isinstance(item, list) and item:
        item = item[0]
    return isinstance(item, bool)


def decode_infer_request(body: bytes, header_length: bytes | str | None = None) -> InferRequest:
    """Decode an inference request body, JSON only or JSON header + binary tensors."""
    length = _parse_header_length(header_length, len(body))
    json_part = body if length is None else memoryview(body)[:length]
    if length is None and not body:
        raise ProtocolError("request body is empty; expected an inference request JSON object")
    try:
        document = orjson.loads(json_part)
    except orjson.JSONDecodeError as error:
        raise ProtocolError(f"malformed JSON in request body: {error}") from None
    request = _expect_object(document, "request body")

    raw_inputs = request.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError("request must have a non-empty 'inputs' list")
    binary = memoryview(body)[length:] if length is not None else memoryview(b"")
    offset = 0
    inputs: dict[str, np.ndarray] = {}
    declared: dict[str, str] = {}
    for position, raw in enumerate(raw_inputs):
        tensor = _expect_object(raw, f"inputs[{position}]")
        name = tensor.get("name")
        if not isinstance(name, str) or not name:
            raise ProtocolError(f"inputs[{position}] must have a non-empty string 'name'")
        if name in inputs:
            raise ProtocolError(f"input '{name}' appears more than once")
        datatype = tensor.get("datatype")
        if datatype not in DATATYPE_TO_NUMPY:
            raise ProtocolError(
                f"input '{name}': unknown datatype {datatype!r}; expected one of "
                + ", ".join(DATATYPE_TO_NUMPY)
            )
        shape = _parse_shape(tensor.get("shape"), name)
        parameters = tensor.get("parameters") or {}
        binary_size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if binary_size is not None:
            if "data" in tensor:
                raise ProtocolError(f"input '{name}' has both 'data' and binary_data_size")
            if not isinstance(binary_size, int) or binary_size < 0:
                raise ProtocolError(
                    f"input '{name}': binary_data_size must be a non-negative integer"
                )
            if length is None:
                raise ProtocolError(
                    f"input '{name}' declares binary data but the request has no "
                    f"{HEADER_LENGTH_HEADER} header"
                )
            if offset + binary_size > len(binary):
                raise ProtocolError(
                    f"binary data for input '{name}' is truncated: expected {binary_size} bytes, "
                    f"only {len(binary) - offset} left in the body"
                )
            chunk = binary[offset : offset + binary_size]
            offset += binary_size
            count = math.prod(shape)
            if datatype == "BYTES":
                array = _decode_bytes_elements(chunk, count, name).reshape(shape)
            else:
                dtype = DATATYPE_TO_NUMPY[datatype]
                if binary_size != count * dtype.itemsize:
                    raise ProtocolError(
                        f"input '{name}': shape {list(shape)} of {datatype} needs "
                        f"{count * dtype.itemsize} bytes but binary_data_size is {binary_size}"
                    )
                array = np.frombuffer(chunk, dtype=dtype).reshape(shape)
        elif "data" in tensor:
            array = _decode_json_data(tensor["data"], datatype, shape, name)
        else:
            raise ProtocolError(f"input '{name}' has no 'data' and no binary_data_size")
        inputs[name] = array
        declared[name] = datatype
    if offset != len(binary):
        raise ProtocolError(
            f"request body has {len(binary) - offset} bytes of binary data that no input claims"
        )

    parameters = request.get("parameters") or {}
    binary_by_default = bool(isinstance(parameters, dict) and parameters.get("binary_data_output"))
    requested: tuple[RequestedOutput, ...] | None = None
    raw_outputs = request.get("outputs")
    if raw_outputs is not None:
        if not isinstance(raw_outputs, list):
            raise ProtocolError("'outputs' must be a list")
        parsed: list[RequestedOutput] = []
        for position, raw in enumerate(raw_outputs):
            output = _expect_object(raw, f"outputs[{position}]")
            name = output.get("name")
            if not isinstance(name, str) or not name:
                raise ProtocolError(f"outputs[{position}] must have a non-empty string 'name'")
            output_parameters = output.get("parameters") or {}
            flag = (
                output_parameters.get("binary_data", binary_by_default)
                if isinstance(output_parameters, dict)
                else binary_by_default
            )
            parsed.append(RequestedOutput(name, bool(flag)))
        requested = tuple(parsed)

    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError("'id' must be a string")
    return InferRequest(request_id, inputs, declared, requested, binary_by_default)


def _encode_bytes_elements(array: np.ndarray) -> bytes:
    parts: list[bytes] = []
    for item in array.ravel():
        data = item.encode() if isinstance(item, str) else bytes(item)
        parts.append(struct.pack("<I", len(data)))
        parts.append(data)
    return b"".join(parts)


def encode_infer_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: Sequence[tuple[str, np.ndarray, bool]],
) -> tuple[bytes, int | None]:
    """Encode outputs as (name, array, binary); returns the body and the JSON header length
    when any output is binary (for the ``Inference-Header-Content-Length`` header)."""
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, array, binary in outputs:
        datatype = datatype_of(array)
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if binary:
            blob = _encode_bytes_elements(array) if datatype == "BYTES" else array.tobytes()
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif datatype == "BYTES":
            tensor["data"] = [
                item.decode(errors="replace") if isinstance(item, bytes) else str(item)
                for item in array.ravel()
            ]
        else:
            tensor["data"] = array.ravel()  # always C-contiguous, as orjson needs
        tensors.append(tensor)
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        document["id"] = request_id
    document["outputs"] = tensors
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def select_outputs(
    request: InferRequest, outputs: Mapping[str, np.ndarray], output_order: Sequence[str]
) -> list[tuple[str, np.ndarray, bool]]:
    """Pick the outputs a request asked for (all by default), each with its binary flag."""
    if request.requested_outputs is None:
        return [(name, outputs[name], request.binary_by_default) for name in output_order]
    selected: list[tuple[str, np.ndarray, bool]] = []
    for wanted in request.requested_outputs:
        if wanted.name not in outputs:
            raise ProtocolError(
                f"requested output '{wanted.name}' does not exist; the model's outputs are "
                + ", ".join(f"'{name}'" for name in output_order)
            )
        selected.append((wanted.name, outputs[wanted.name], wanted.binary))
    return selected


MAX_FEEDBACK_ITEMS = 100_000


def parse_feedback(body: bytes) -> tuple[list[str], list[int | float | str]]:
    """Driftline's feedback extension: `{"request_ids": [...], "labels": [...]}`.

    Each id is an inference request's `id` (or `id:row` for a request with several
    rows); each label is the ground truth for it (a class index or name)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ProtocolError(f"feedback body is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise ProtocolError("feedback body must be a JSON object with request_ids and labels")
    ids, labels = payload.get("request_ids"), payload.get("labels")
    if not isinstance(ids, list) or not isinstance(labels, list):
        raise ProtocolError("feedback needs 'request_ids' and 'labels', both lists")
    if len(ids) != len(labels):
        raise ProtocolError(
            f"feedback has {len(ids)} request_ids but {len(labels)} labels; they pair up one to one"
        )
    if len(ids) > MAX_FEEDBACK_ITEMS:
        raise ProtocolError(
            f"feedback carries at most {MAX_FEEDBACK_ITEMS} labels per request", 413
        )
    for index, request_id in enumerate(ids):
        if not isinstance(request_id, str) or not request_id:
            raise ProtocolError(f"request_ids[{index}] must be a non-empty string")
    for index, label in enumerate(labels):
        if isinstance(label, bool) or not isinstance(label, int | float | str):
            raise ProtocolError(f"labels[{index}] must be a number or a string")
    return ids, labels
