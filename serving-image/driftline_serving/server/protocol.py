"""Open Inference Protocol v2 codec: JSON tensors and the binary tensor extension.

Pure functions from bytes to arrays and back. Every malformed request becomes a
``ProtocolError`` whose message says exactly what is wrong; nothing here touches I/O.
"""

from __future__ import annotations

import codecs
import json
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any, NamedTuple

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
    # What the request check returned (its rows), or -1 when it was decoded unchecked.
    rows: int = -1


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
    stripped = text.strip()
    if stripped.startswith("-") and stripped[1:].isascii() and stripped[1:].isdigit():
        raise ProtocolError(f"{HEADER_LENGTH_HEADER} must not be negative, got {stripped}")
    # int() would also take "+5", "1_0" and non-ASCII digits; the header is plain digits.
    if not stripped.isascii() or not stripped.isdigit():
        raise ProtocolError(f"{HEADER_LENGTH_HEADER} must be an integer, got {_shorten(text)!r}")
    length = int(stripped)
    if length > body_length:
        raise ProtocolError(
            f"{HEADER_LENGTH_HEADER} is {length} but the body has only {body_length} bytes"
        )
    return length


# application/octet-stream is what the binary tensor extension sends, and also what
# aiohttp-based clients (tritonclient.http.aio among them) label any bytes body with, JSON
# only or not; no Content-Type at all is what tritonclient.http sends.
ACCEPTED_MEDIA_TYPES = ("application/json", "application/octet-stream")


def check_content_type(content_type: bytes | None) -> None:
    """Refuse (415) a body whose Content-Type says it is something else than an inference
    request: JSON, or JSON then binary tensors. A charset, if given, must be UTF-8."""
    if content_type is None:
        return
    media, _, parameters = content_type.decode("latin-1").partition(";")
    media = media.strip().lower()
    if media not in ACCEPTED_MEDIA_TYPES:
        raise ProtocolError(
            f"Content-Type {_shorten(media)!r} is not accepted: send application/json, or "
            f"application/octet-stream with {HEADER_LENGTH_HEADER} for binary tensors",
            415,
        )
    for parameter in parameters.split(";"):
        key, _, value = parameter.partition("=")
        charset = value.strip().strip('"').lower()
        if key.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            raise ProtocolError(
                f"charset {_shorten(charset)!r} is not accepted: the request JSON must be UTF-8",
                415,
            )


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _expect_object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


_NO_PARAMETERS: dict[str, Any] = {}


def _parameters(holder: dict[str, Any], kind: str, name: str | None = None) -> dict[str, Any]:
    """A tensor's or the request's 'parameters' object (``kind`` and ``name`` say whose,
    for the message; formatted only on the error path)."""
    parameters = holder.get("parameters")
    if parameters is None:
        return _NO_PARAMETERS
    if type(parameters) is not dict:
        raise ProtocolError(
            f"{_whose(kind, name)}: 'parameters' must be a JSON object, got "
            f"{_json_type(parameters)}"
        )
    return parameters


def _whose(kind: str, name: str | None) -> str:
    return kind if name is None else f"{kind} '{name}'"


def _flag(
    parameters: dict[str, Any], key: str, default: bool, kind: str, name: str | None = None
) -> bool:
    value = parameters.get(key, default)
    if type(value) is not bool:
        raise ProtocolError(
            f"{_whose(kind, name)}: parameter '{key}' must be true or false, got "
            f"{_shorten(repr(value))}"
        )
    return value


def _parse_shape(raw: Any, name: str) -> tuple[int, ...]:
    if type(raw) is not list:
        raise ProtocolError(
            f"input '{name}': 'shape' must be a list of integers, got {_shorten(repr(raw))}"
        )
    for dim in raw:
        if type(dim) is not int:  # also refuses bool, a subclass of int
            raise ProtocolError(
                f"input '{name}': 'shape' must be a list of integers, got {_shorten(repr(raw))}"
            )
        if dim < 0:
            raise ProtocolError(
                f"input '{name}': 'shape' must not contain negative sizes, got {_shorten(repr(raw))}"
            )
    return tuple(raw)


def _decode_bytes_elements(buffer: memoryview, count: int, name: str) -> np.ndarray:
    """BYTES tensors in binary form: each element is a 4-byte little-endian length, then data."""
    # Every element takes at least its 4-byte prefix: refuse an impossible count before
    # looping over it.
    if count * 4 > len(buffer):
        raise ProtocolError(
            f"input '{name}': {count} BYTES elements need at least {count * 4} bytes of length "
            f"prefixes but binary_data_size is {len(buffer)}"
        )
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
    array = np.empty(count, dtype=object)
    array[:] = elements
    return array


# --- JSON tensor data -----------------------------------------------------------------------
#
# The rule (docs/serving.md): 'data' is a flat list of prod(shape) values in row-major
# order, or lists nested exactly as the shape. BOOL takes only true/false; the integer
# types only integers within their range; FP16/FP32/FP64 only numbers (integers or
# decimals) that are finite in that type. null, strings, booleans for numbers, and
# numbers for BOOL are refused with the input's name and the element's row-major index.
# Validation is done by numpy in bulk; only the error path looks at elements one by one.


def _data_error(name: str, datatype: str, problem: str) -> ProtocolError:
    return ProtocolError(f"input '{name}': data is not valid {datatype}: {problem}")


def _flatten_exactly(data: list[Any], shape: tuple[int, ...]) -> list[Any] | None:
    """The elements of ``data`` nested exactly as ``shape``; None when nested otherwise."""
    if not shape or len(data) != shape[0]:
        return None
    level = data
    for size in shape[1:]:
        if set(map(type, level)) != {list} or set(map(len, level)) != {size}:
            return None
        level = list(chain.from_iterable(level))
    return None if list in set(map(type, level)) else level


def _elements(data: list[Any], shape: tuple[int, ...], name: str, datatype: str) -> list[Any]:
    """Row-major elements of a flat or exactly nested 'data' list (checked one by one:
    used for BYTES and on the error path)."""
    count = math.prod(shape)
    if list not in set(map(type, data)):
        if len(data) != count:
            raise ProtocolError(
                f"input '{name}': shape {list(shape)} needs {count} elements but 'data' has {len(data)}"
            )
        return data
    flat = _flatten_exactly(data, shape)
    if flat is None:
        raise _data_error(
            name,
            datatype,
            f"'data' is nested differently from the shape {list(shape)}; send a flat list of "
            f"{count} values or lists nested exactly as the shape",
        )
    return flat


def _describe_element(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {_shorten(repr(value), 40)}"
    if value is None or isinstance(value, bool | list | dict):
        return _json_type(value)
    return _shorten(repr(value), 40)


def _element_problem(value: Any, datatype: str, dtype: np.dtype[Any]) -> str | None:
    """Why one JSON value cannot be an element of ``datatype`` (None: it can)."""
    if datatype == "BOOL":
        return None if type(value) is bool else "BOOL takes only true and false"
    if dtype.kind == "f":
        if type(value) not in (int, float):
            return f"{datatype} takes only numbers"
        # Python compares a huge int with a float exactly; only then is it converted.
        with np.errstate(over="ignore"):
            converted = dtype.type(value) if abs(value) < 1e309 else np.inf
        return None if np.isfinite(converted) else f"out of range for {datatype}"
    info = np.iinfo(dtype)
    if type(value) is float and value.is_integer() and not info.min <= value <= info.max:
        return f"out of range for {datatype}"  # orjson reads integers beyond 64 bits as floats
    if type(value) is not int:
        return f"{datatype} takes only integers"
    return None if info.min <= value <= info.max else f"out of range for {datatype}"


def _explain_json_numbers(
    data: list[Any], datatype: str, shape: tuple[int, ...], name: str
) -> np.ndarray:
    """The element-by-element path: the first bad element, with its row-major index; or,
    for the rare valid data numpy cannot take in bulk (an integer beyond 64 bits for
    FP32), the array."""
    dtype = DATATYPE_TO_NUMPY[datatype]
    flat = _elements(data, shape, name, datatype)
    for index, value in enumerate(flat):
        if type(value) is bool and datatype != "BOOL":
            raise _data_error(
                name,
                datatype,
                f"found a boolean at element {index}; only BOOL inputs take true and false",
            )
        problem = _element_problem(value, datatype, dtype)
        if problem is not None:
            raise _data_error(
                name, datatype, f"element {index} is {_describe_element(value)}: {problem}"
            )
    values = [float(value) for value in flat] if dtype.kind == "f" else flat
    return np.array(values, dtype=dtype).reshape(shape)


# Up to this many values, checks run on the Python list itself (set, min, max: C loops
# with no numpy call overhead); above, numpy reductions over the whole array are cheaper.
_SMALL = 256

# The largest magnitude that still rounds to a finite value of the type (half an ulp
# above its largest value rounds to infinity).
_FINITE_UP_TO: dict[np.dtype[Any], float] = {
    np.dtype("<f4"): math.nextafter(2.0**128 - 2.0**103, 0.0),
    np.dtype("<f2"): math.nextafter(65520.0, 0.0),
}


# The JSON value types each kind of datatype takes.
_JSON_TYPES: dict[str, set[type]] = {
    "b": {bool},
    "i": {int},
    "u": {int},
    "f": {int, float},
}
# The values each type takes (floats: those that round to a finite value).
_BOUNDS: dict[np.dtype[Any], tuple[float, float]] = {
    **{dtype: (-limit, limit) for dtype, limit in _FINITE_UP_TO.items()},
    **{
        DATATYPE_TO_NUMPY[name]: (
            int(np.iinfo(DATATYPE_TO_NUMPY[name]).min),
            int(np.iinfo(DATATYPE_TO_NUMPY[name]).max),
        )
        for name in ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
    },
}


def _small_flat(data: list[Any], inferred: np.ndarray) -> list[Any] | None:
    """The elements as one flat list when there are few of them, else None."""
    if inferred.size > _SMALL:
        return None
    if inferred.ndim == 1:
        return data
    if inferred.ndim == 2:
        return list(chain.from_iterable(data))
    return None


def _has_boolean(data: list[Any], inferred: np.ndarray, flat: list[Any] | None) -> bool:
    """Whether numpy turned a JSON boolean into 1 or 0 while inferring a numeric array.

    Only elements equal to 0 or 1 can have been booleans: in a large array those few are
    looked at; when there are many, one C-level pass over the element types decides."""
    if flat is not None:
        return bool in set(map(type, flat))
    candidates = np.flatnonzero((inferred == 0) | (inferred == 1))
    if not candidates.size:
        return False
    elements = data
    for _ in range(inferred.ndim - 1):
        elements = list(chain.from_iterable(elements))
    if candidates.size > 16:
        return bool in set(map(type, elements))
    return any(type(elements[index]) is bool for index in candidates)


def _beyond(inferred: np.ndarray, flat: list[Any] | None, low: float, high: float) -> bool:
    """Whether any value is below ``low`` or above ``high``."""
    if not inferred.size:
        return False
    if flat is not None:
        return bool(min(flat) < low or max(flat) > high)
    return bool(inferred.min() < low or inferred.max() > high)


def _decode_json_numbers(
    data: list[Any], datatype: str, shape: tuple[int, ...], name: str, booleans: bool = True
) -> np.ndarray:
    """``booleans``: whether the request's JSON may hold a boolean at all (False when the
    literals true and false appear nowhere in it, which spares the check)."""
    dtype = DATATYPE_TO_NUMPY[datatype]
    # The usual small request, flat: the element types (one C pass) say at once whether
    # every value is of a kind the datatype takes. Other element types (nested lists,
    # which numpy reads below, or bad values) take the general path.
    if (
        len(data) <= _SMALL
        and len(data) == math.prod(shape)
        and set(map(type, data)) <= _JSON_TYPES[dtype.kind]
    ):
        bounds = _BOUNDS.get(dtype)
        if bounds is None or not data or (bounds[0] <= min(data) and max(data) <= bounds[1]):
            return np.array(data, dtype=dtype).reshape(shape)
        return _explain_json_numbers(data, datatype, shape, name)
    try:
        # numpy infers the nesting and the element kind in C: null or strings give an
        # object or string array, uneven nesting an error, and only booleans mixed into
        # numbers pass unnoticed (checked below).
        inferred = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        return _explain_json_numbers(data, datatype, shape, name)
    kind = inferred.dtype.kind
    if kind not in "biuf":
        return _explain_json_numbers(data, datatype, shape, name)
    if inferred.shape != shape:
        if inferred.ndim != 1:
            raise _data_error(
                name,
                datatype,
                f"'data' is nested as {list(inferred.shape)} but the shape is {list(shape)}; "
                f"send a flat list of {math.prod(shape)} values or lists nested exactly as the shape",
            )
        if inferred.size != math.prod(shape):
            raise ProtocolError(
                f"input '{name}': shape {list(shape)} needs {math.prod(shape)} elements but "
                f"'data' has {inferred.size}"
            )
    if datatype == "BOOL":
        if kind != "b":
            return _explain_json_numbers(data, datatype, shape, name)
        return inferred.reshape(shape)
    flat = _small_flat(data, inferred)
    if kind == "b" or (booleans and _has_boolean(data, inferred, flat)):
        return _explain_json_numbers(data, datatype, shape, name)
    if dtype.kind == "f":
        if inferred.dtype == dtype:
            return inferred.reshape(shape)  # FP64 from JSON: orjson refuses infinities
        limit = _FINITE_UP_TO.get(dtype)
        # checked before the cast, so that numpy never warns about an overflow
        if limit is not None and _beyond(inferred, flat, -limit, limit):
            return _explain_json_numbers(data, datatype, shape, name)
        return inferred.astype(dtype).reshape(shape)
    if kind == "f":  # a decimal among integers, or integers beyond 64 bits
        return _explain_json_numbers(data, datatype, shape, name)
    if inferred.dtype != dtype:
        info = np.iinfo(dtype)
        if _beyond(inferred, flat, info.min, info.max):
            return _explain_json_numbers(data, datatype, shape, name)
    return inferred.astype(dtype, copy=False).reshape(shape)


def _decode_json_bytes(data: list[Any], shape: tuple[int, ...], name: str) -> np.ndarray:
    flat = _elements(data, shape, name, "BYTES")
    if set(map(type, flat)) - {str}:
        index, value = next((i, v) for i, v in enumerate(flat) if type(v) is not str)
        raise ProtocolError(
            f"input '{name}': BYTES data must be strings; element {index} is "
            f"{_describe_element(value)}"
        )
    array = np.empty(len(flat), dtype=object)
    array[:] = list(map(str.encode, flat))
    return array.reshape(shape)


def _decode_json_data(
    data: Any, datatype: str, shape: tuple[int, ...], name: str, booleans: bool = True
) -> np.ndarray:
    if type(data) is not list:
        raise ProtocolError(f"input '{name}': 'data' must be a list, got {_json_type(data)}")
    if datatype == "BYTES":
        return _decode_json_bytes(data, shape, name)
    return _decode_json_numbers(data, datatype, shape, name, booleans)


def _decode_binary(chunk: memoryview, header: TensorHeader) -> np.ndarray:
    name, datatype, shape = header.name, header.datatype, header.shape
    count = math.prod(shape)
    if datatype == "BYTES":
        return _decode_bytes_elements(chunk, count, name).reshape(shape)
    dtype = DATATYPE_TO_NUMPY[datatype]
    if len(chunk) != count * dtype.itemsize:
        raise ProtocolError(
            f"input '{name}': shape {list(shape)} of {datatype} needs "
            f"{count * dtype.itemsize} bytes but binary_data_size is {len(chunk)}"
        )
    if datatype == "BOOL":
        raw = np.frombuffer(chunk, dtype=np.uint8)
        if raw.size and raw.max() > 1:
            index = int(np.flatnonzero(raw > 1)[0])
            raise ProtocolError(
                f"input '{name}': BOOL byte {index} is {raw[index]}; binary BOOL values are 0 or 1"
            )
    return np.frombuffer(chunk, dtype=dtype).reshape(shape)


# --- the request ---------------------------------------------------------------------------


class TensorHeader(NamedTuple):  # a tuple: built per input, and cheaper than a dataclass
    """What an input declares about itself, before its data is decoded."""

    name: str
    datatype: str
    shape: tuple[int, ...]


# Checks the declared inputs and outputs against the model before any data is decoded
# (so a request the model cannot take costs no decoding); returns the request's rows.
RequestCheck = Callable[[Sequence[TensorHeader], "tuple[RequestedOutput, ...] | None"], int]


def _load_json(json_part: bytes | memoryview, length: int | None, body_length: int) -> Any:
    try:
        return orjson.loads(json_part)
    except orjson.JSONDecodeError as error:
        raise ProtocolError(
            _explain_bad_json(bytes(json_part), length, body_length, error)
        ) from None


def _explain_bad_json(
    text: bytes, length: int | None, body_length: int, error: orjson.JSONDecodeError
) -> str:
    """Name the real problem of a body that is not a JSON document (only on errors)."""
    where = (
        "request body"
        if length is None
        else f"JSON header (the first {length} bytes, per {HEADER_LENGTH_HEADER})"
    )
    if text.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or (
        len(text) >= 2 and (text[0] == 0) != (text[1] == 0)
    ):
        return f"the {where} is not UTF-8 (it looks like UTF-16); the protocol's JSON must be UTF-8"
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as bad:
        # A JSON document followed by binary bytes: binary tensors without the header.
        prefix = text[: bad.start].decode("utf-8")
        json_end = _json_object_end(prefix)
        if length is None and json_end is not None:
            return (
                f"request body has {len(text) - len(prefix[:json_end].encode())} bytes of binary "
                f"data after its JSON; binary tensor data needs the {HEADER_LENGTH_HEADER} header"
            )
        return (
            f"the {where} is not valid UTF-8 (byte 0x{text[bad.start]:02x} at offset "
            f"{bad.start}); the protocol's JSON must be UTF-8"
            + (f"; is {HEADER_LENGTH_HEADER} right?" if length is not None else "")
        )
    if length is not None and length < body_length:
        return (
            f"malformed JSON in the {where}: {error}; is {HEADER_LENGTH_HEADER} the length of "
            "the JSON part?"
        )
    if length is None and _json_object_end(decoded) is not None:
        return (
            f"request body has data after its JSON object; binary tensor data needs the "
            f"{HEADER_LENGTH_HEADER} header"
        )
    return f"malformed JSON in request body: {error}"


def _json_object_end(text: str) -> int | None:
    """Where the JSON document that ``text`` starts with ends, when more follows it."""
    try:
        _, end = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return None
    return end if end < len(text) else None


def decode_infer_request(
    body: bytes, header_length: bytes | str | None = None, check: RequestCheck | None = None
) -> InferRequest:
    """Decode an inference request body, JSON only or JSON header + binary tensors.

    ``check`` sees every input's name, datatype and shape (and the requested outputs)
    before any tensor data is decoded; its result is the request's ``rows``."""
    length = _parse_header_length(header_length, len(body))
    if length is None and not body:
        raise ProtocolError("request body is empty; expected an inference request JSON object")
    json_part = body if length is None else memoryview(body)[:length]
    request = _expect_object(_load_json(json_part, length, len(body)), "request body")

    raw_inputs = request.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise ProtocolError("request must have a non-empty 'inputs' list")
    headers: list[TensorHeader] = []
    # per input: its JSON 'data', or None with the size of its binary part
    sources: list[tuple[Any, int | None]] = []
    names: set[str] = set()
    for position, raw in enumerate(raw_inputs):
        tensor = _expect_object(raw, f"inputs[{position}]")
        name = tensor.get("name")
        if not isinstance(name, str) or not name:
            raise ProtocolError(f"inputs[{position}] must have a non-empty string 'name'")
        if name in names:
            raise ProtocolError(f"input '{name}' appears more than once")
        names.add(name)
        datatype = tensor.get("datatype")
        if type(datatype) is not str or datatype not in DATATYPE_TO_NUMPY:
            raise ProtocolError(
                f"input '{name}': unknown datatype {_shorten(repr(datatype))}; expected one of "
                + ", ".join(DATATYPE_TO_NUMPY)
            )
        shape = _parse_shape(tensor.get("shape"), name)
        binary_size = (
            None
            if "parameters" not in tensor
            else _parameters(tensor, "input", name).get("binary_data_size")
        )
        if binary_size is not None:
            if "data" in tensor:
                raise ProtocolError(f"input '{name}' has both 'data' and binary_data_size")
            if type(binary_size) is not int or binary_size < 0:
                raise ProtocolError(
                    f"input '{name}': binary_data_size must be a non-negative integer"
                )
            if length is None:
                raise ProtocolError(
                    f"input '{name}' declares binary data but the request has no "
                    f"{HEADER_LENGTH_HEADER} header"
                )
            sources.append((None, binary_size))
        elif "data" in tensor:
            sources.append((tensor["data"], None))
        else:
            raise ProtocolError(f"input '{name}' has no 'data' and no binary_data_size")
        headers.append(TensorHeader(name, datatype, shape))

    binary_by_default = "parameters" in request and _flag(
        _parameters(request, "request"), "binary_data_output", False, "request"
    )
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
            parameters = _parameters(output, "output", name)
            parsed.append(
                RequestedOutput(
                    name, _flag(parameters, "binary_data", binary_by_default, "output", name)
                )
            )
        requested = tuple(parsed)

    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError("'id' must be a string")

    rows = check(headers, requested) if check is not None else -1

    binary = memoryview(body)[length:] if length is not None else memoryview(b"")
    # No true or false anywhere in the JSON (one memory scan): no value can be a boolean.
    end = len(body) if length is None else length
    booleans = body.find(b"true", 0, end) != -1 or body.find(b"false", 0, end) != -1
    offset = 0
    inputs: dict[str, np.ndarray] = {}
    declared: dict[str, str] = {}
    for header, (data, binary_size) in zip(headers, sources, strict=True):
        if binary_size is None:
            array = _decode_json_data(data, header.datatype, header.shape, header.name, booleans)
        else:
            if offset + binary_size > len(binary):
                raise ProtocolError(
                    f"binary data for input '{header.name}' is truncated: expected "
                    f"{binary_size} bytes, only {len(binary) - offset} left in the body"
                )
            array = _decode_binary(binary[offset : offset + binary_size], header)
            offset += binary_size
        inputs[header.name] = array
        declared[header.name] = header.datatype
    if offset != len(binary):
        raise ProtocolError(
            f"request body has {len(binary) - offset} bytes of binary data that no input claims"
        )
    return InferRequest(request_id, inputs, declared, requested, binary_by_default, rows)


def _encode_bytes_elements(array: np.ndarray) -> bytes:
    parts: list[bytes] = []
    for item in array.ravel():
        data = item.encode() if isinstance(item, str) else bytes(item)
        parts.append(struct.pack("<I", len(data)))
        parts.append(data)
    return b"".join(parts)


# JSON numbers have no NaN or infinity (orjson would write null, which the protocol's
# tensor schema does not allow): an output holding one is refused in JSON, and sent as
# it is in binary (docs/serving.md).
NON_FINITE_STATUS = 422


def _non_finite_output(name: str, array: np.ndarray) -> ProtocolError:
    bad = int(np.count_nonzero(~np.isfinite(array)))
    return ProtocolError(
        f"output '{name}' has {bad} non-finite value{'s' if bad != 1 else ''} (NaN or "
        "infinity), which JSON tensor data cannot carry; ask for this output in binary "
        '(output parameter "binary_data": true, or request parameter "binary_data_output": '
        "true) to receive them",
        NON_FINITE_STATUS,
    )


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
    floats = False
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
            floats = floats or array.dtype.kind == "f"
        tensors.append(tensor)
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        document["id"] = request_id
    document["outputs"] = tensors
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    # orjson writes NaN and infinities as null: a null in the encoded header (rare, and
    # cheap to look for) sends the float outputs through the exact check.
    if floats and b"null" in header:
        for name, array, binary in outputs:
            if not binary and array.dtype.kind == "f" and not np.isfinite(array).all():
                raise _non_finite_output(name, array)
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
