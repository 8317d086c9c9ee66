"""The wire format between the server and the drift sidecar: framed, compact, pickle-free.

A frame is `MAGIC | u32 header length | JSON header | raw array bytes`. The header names
each array's dtype and shape; arrays are little-endian raw buffers, read back with
numpy.frombuffer. Only numeric and boolean dtypes are allowed, so a frame can never
carry code. Everything here is pure and raises CodecError on malformed input.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

MAGIC = b"DLS1"
_LENGTH = struct.Struct("<I")
PREFIX_SIZE = len(MAGIC) + _LENGTH.size
MAX_HEADER_BYTES = 16 * 1024 * 1024
_ALLOWED_KINDS = frozenset("biuf")  # bool, signed, unsigned, float


class CodecError(ValueError):
    """A frame that cannot be decoded."""


@dataclass(frozen=True)
class SampleBatch:
    """Rows sampled from inference requests: one row per input row of a request."""

    model_version: str
    request_ids: list[str]
    received_at: np.ndarray  # float64 unix seconds, one per row
    inputs: dict[str, np.ndarray] = field(default_factory=dict)  # each (rows, ...)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return len(self.request_ids)


@dataclass(frozen=True)
class Feedback:
    """Ground-truth labels for earlier requests (`id` or `id:row` for multi-row requests)."""

    request_ids: list[str]
    labels: list[int | float | str]


Message = SampleBatch | Feedback


def _array_entry(
    group: str, name: str, blocks: Sequence[np.ndarray], rows: int
) -> tuple[dict[str, Any], bytes]:
    """One array of the frame from its row blocks, which share dtype and trailing shape:
    joined straight into the frame's bytes, without concatenating them first."""
    first = blocks[0]
    dtype = first.dtype
    if dtype.kind not in _ALLOWED_KINDS:
        raise CodecError(f"{group}.{name}: dtype {dtype} cannot be sampled")
    little = dtype.newbyteorder("<")
    if dtype == little:
        try:
            # each block's own buffer, copied once (numpy arrays export the buffer
            # protocol, which numpy's type hints do not declare)
            data = b"".join(blocks)  # type: ignore[arg-type]
        except (BufferError, TypeError, ValueError):  # a block that is not contiguous
            data = b"".join(np.ascontiguousarray(block).tobytes() for block in blocks)
    else:
        data = b"".join(block.astype(little).tobytes() for block in blocks)
    shape = [rows, *first.shape[1:]]
    if len(data) != little.itemsize * int(np.prod(shape, dtype=np.int64)):
        raise CodecError(f"{group}.{name}: its blocks do not hold {rows} rows of {shape[1:]}")
    return {"group": group, "name": name, "dtype": little.str, "shape": shape}, data


def encode_blocks(
    model_version: str,
    request_ids: list[str],
    received_at: np.ndarray,
    inputs: Mapping[str, Sequence[np.ndarray]],
    outputs: Mapping[str, Sequence[np.ndarray]],
) -> bytes:
    """A samples frame from row blocks: each array given as a list of blocks of rows
    (same dtype and trailing shape), together one row per request id."""
    rows = len(request_ids)
    entries = [_array_entry("meta", "received_at", [received_at], rows)]
    for group, arrays in (("inputs", inputs), ("outputs", outputs)):
        for name, blocks in arrays.items():
            dtype = blocks[0].dtype
            # identity first: arrays of one builtin dtype share its descriptor
            if any(block.dtype is not dtype and block.dtype != dtype for block in blocks):
                raise CodecError(f"{group}.{name}: row blocks of different dtypes")
            entries.append(_array_entry(group, name, blocks, rows))
    header = {
        "kind": "samples",
        "model_version": model_version,
        "request_ids": request_ids,
        "arrays": [meta for meta, _ in entries],
    }
    return _frame(header, [data for _, data in entries])


def encode(message: Message) -> bytes:
    if isinstance(message, Feedback):
        if len(message.request_ids) != len(message.labels):
            raise CodecError("feedback needs one label per request id")
        header: dict[str, Any] = {
            "kind": "feedback",
            "request_ids": message.request_ids,
            "labels": message.labels,
            "arrays": [],
        }
        return _frame(header, [])
    rows = message.rows
    for group, arrays in (("inputs", message.inputs), ("outputs", message.outputs)):
        for name, array in arrays.items():
            if array.ndim == 0 or array.shape[0] != rows:
                raise CodecError(
                    f"{group}.{name}: expected {rows} rows, got shape {list(array.shape)}"
                )
    if message.received_at.shape != (rows,):
        raise CodecError(
            f"meta.received_at: expected {rows} rows, got shape {list(message.received_at.shape)}"
        )
    return encode_blocks(
        message.model_version,
        message.request_ids,
        message.received_at,
        {name: [array] for name, array in message.inputs.items()},
        {name: [array] for name, array in message.outputs.items()},
    )


def _frame(header: dict[str, Any], blobs: list[bytes]) -> bytes:
    header_bytes = orjson.dumps(header)
    return b"".join([MAGIC, _LENGTH.pack(len(header_bytes)), header_bytes, *blobs])


def frame_length(prefix_and_header: bytes) -> int:
    """Total length of the frame whose first bytes are given (at least the prefix and header)."""
    header = _read_header(prefix_and_header)
    header_length = _LENGTH.unpack_from(prefix_and_header, len(MAGIC))[0]
    return PREFIX_SIZE + header_length + sum(_nbytes(meta) for meta in header["arrays"])


def header_length(prefix: bytes) -> int:
    """Bytes of header that follow the prefix; validates the magic."""
    if len(prefix) < PREFIX_SIZE:
        raise CodecError("truncated frame prefix")
    if prefix[: len(MAGIC)] != MAGIC:
        raise CodecError("not a Driftline sample frame (bad magic)")
    length = int(_LENGTH.unpack_from(prefix, len(MAGIC))[0])
    if length > MAX_HEADER_BYTES:
        raise CodecError(f"frame header of {length} bytes is over the {MAX_HEADER_BYTES} limit")
    return length


def _read_header(frame: bytes) -> dict[str, Any]:
    length = header_length(frame)
    raw = frame[PREFIX_SIZE : PREFIX_SIZE + length]
    if len(raw) < length:
        raise CodecError("truncated frame header")
    try:
        header = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise CodecError(f"frame header is not JSON: {error}") from error
    if not isinstance(header, dict) or header.get("kind") not in ("samples", "feedback"):
        raise CodecError("frame header has no known kind")
    if not isinstance(header.get("arrays"), list) or not isinstance(
        header.get("request_ids"), list
    ):
        raise CodecError("frame header lacks arrays or request_ids")
    return header


def _nbytes(meta: dict[str, Any]) -> int:
    try:
        dtype = np.dtype(meta["dtype"])
        shape = [int(d) for d in meta["shape"]]
    except (KeyError, TypeError, ValueError) as error:
        raise CodecError(f"bad array description {meta!r}") from error
    if dtype.kind not in _ALLOWED_KINDS or any(d < 0 for d in shape):
        raise CodecError(f"array {meta.get('name')!r}: dtype {dtype} or shape {shape} not allowed")
    return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


def decode(frame: bytes) -> Message:
    """One complete frame back into a message."""
    header = _read_header(frame)
    offset = PREFIX_SIZE + header_length(frame)
    if header["kind"] == "feedback":
        labels = header.get("labels")
        if not isinstance(labels, list) or len(labels) != len(header["request_ids"]):
            raise CodecError("feedback needs one label per request id")
        return Feedback([str(r) for r in header["request_ids"]], labels)
    groups: dict[str, dict[str, np.ndarray]] = {"meta": {}, "inputs": {}, "outputs": {}}
    for meta in header["arrays"]:
        size = _nbytes(meta)
        if offset + size > len(frame):
            raise CodecError(f"truncated array {meta.get('name')!r}")
        if meta.get("group") not in groups:
            raise CodecError(f"unknown array group {meta.get('group')!r}")
        array = np.frombuffer(
            frame,
            dtype=np.dtype(meta["dtype"]),
            count=size // np.dtype(meta["dtype"]).itemsize,
            offset=offset,
        )
        groups[meta["group"]][str(meta["name"])] = array.reshape(meta["shape"])
        offset += size
    if offset != len(frame):
        raise CodecError(f"{len(frame) - offset} trailing bytes after the last array")
    rows = len(header["request_ids"])
    received_at = groups["meta"].get("received_at")
    if received_at is None or received_at.shape[0] != rows:
        raise CodecError("received_at missing or of the wrong length")
    return SampleBatch(
        model_version=str(header.get("model_version", "")),
        request_ids=[str(r) for r in header["request_ids"]],
        received_at=received_at,
        inputs=groups["inputs"],
        outputs=groups["outputs"],
    )
