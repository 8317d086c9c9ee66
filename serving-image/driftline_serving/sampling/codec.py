"""The wire format between the server and the drift sidecar: framed, compact, pickle-free.

A frame is `MAGIC | u32 header length | JSON header | raw array bytes`. The header names
each array's dtype and shape; arrays are little-endian raw buffers, read back with
numpy.frombuffer. Only numeric and boolean dtypes are allowed, so a frame can never
carry code. Everything here is pure and raises CodecError on malformed input.
"""

from __future__ import annotations

import struct
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


def _array_entries(group: str, arrays: dict[str, np.ndarray]) -> list[tuple[dict[str, Any], bytes]]:
    entries = []
    for name, array in arrays.items():
        contiguous = np.ascontiguousarray(array)
        if contiguous.dtype.kind not in _ALLOWED_KINDS:
            raise CodecError(f"{group}.{name}: dtype {contiguous.dtype} cannot be sampled")
        little = contiguous.astype(contiguous.dtype.newbyteorder("<"), copy=False)
        data = little.tobytes()
        entries.append(
            (
                {
                    "group": group,
                    "name": name,
                    "dtype": little.dtype.str,
                    "shape": list(little.shape),
                },
                data,
            )
        )
    return entries


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
        blobs: list[bytes] = []
    else:
        rows = message.rows
        entries = _array_entries("meta", {"received_at": message.received_at})
        entries += _array_entries("inputs", message.inputs)
        entries += _array_entries("outputs", message.outputs)
        for meta, _ in entries:
            if not meta["shape"] or meta["shape"][0] != rows:
                raise CodecError(
                    f"{meta['group']}.{meta['name']}: expected {rows} rows, got shape {meta['shape']}"
                )
        header = {
            "kind": "samples",
            "model_version": message.model_version,
            "request_ids": message.request_ids,
            "arrays": [meta for meta, _ in entries],
        }
        blobs = [data for _, data in entries]
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
