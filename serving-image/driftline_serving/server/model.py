"""The onnxruntime session: options, providers, signature from the ONNX graph, warm-up."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from driftline_serving.server.protocol import (
    DATATYPE_TO_NUMPY,
    InferRequest,
    ProtocolError,
    RequestedOutput,
    TensorHeader,
)

log = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"

# onnxruntime's type strings for tensors -> OIP datatype names.
_ORT_TYPE_TO_DATATYPE = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


# A first warm-up call quicker than this is repeated and timed again (the first pays
# for allocation); slower models are not run twice just to be timed.
WARM_UP_RETIME_BELOW_S = 0.05


class ModelLoadError(RuntimeError):
    """The model cannot be served; the message says why and is shown on the ready endpoints."""


@dataclass(frozen=True, slots=True)
class TensorSpec:
    name: str
    datatype: str
    # -1 marks a dimension the graph leaves open (symbolic or unknown).
    shape: tuple[int, ...]

    def describe(self) -> str:
        return f"'{self.name}' ({self.datatype} {list(self.shape)})"

    def as_metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True, slots=True)
class ModelSignature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    # Derived once here, because validation reads them for every request.
    batchable: bool = field(init=False, compare=False)
    output_names: tuple[str, ...] = field(init=False, compare=False)
    inputs_by_name: dict[str, TensorSpec] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Requests can be stacked when every tensor's first dimension is open.
        batchable = all(
            spec.shape and spec.shape[0] == -1 for spec in (*self.inputs, *self.outputs)
        )
        object.__setattr__(self, "batchable", batchable)
        object.__setattr__(self, "output_names", tuple(spec.name for spec in self.outputs))
        object.__setattr__(self, "inputs_by_name", {spec.name: spec for spec in self.inputs})


def tensor_spec(name: str, ort_type: str, shape: Sequence[int | str | None]) -> TensorSpec:
    datatype = _ORT_TYPE_TO_DATATYPE.get(ort_type)
    if datatype is None:
        raise ModelLoadError(f"tensor '{name}' has type {ort_type}, which the server cannot serve")
    dims = tuple(dim if isinstance(dim, int) and dim >= 0 else -1 for dim in shape)
    return TensorSpec(name, datatype, dims)


def shape_matches(shape: tuple[int, ...], expected: tuple[int, ...]) -> bool:
    """Same rank, and every fixed dimension equal (-1 in ``expected`` is any size)."""
    if len(shape) != len(expected):
        return False
    for got, want in zip(shape, expected, strict=True):  # noqa: SIM110 - no generator: hot path
        if want != -1 and want != got:
            return False
    return True


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """Per-request bounds (413 beyond them): one request's rows, and its values over all
    inputs. They bound what one request makes onnxruntime allocate, which its arena keeps."""

    max_rows: int
    max_elements: int


def check_request(
    headers: Sequence[TensorHeader],
    requested_outputs: Sequence[RequestedOutput] | None,
    signature: ModelSignature,
    limits: RequestLimits | None = None,
) -> int:
    """Check what a request declares against the model, before its data is decoded;
    returns its number of rows (batch size).

    Raises ProtocolError naming the exact input and what is wrong with it."""
    expected = signature.inputs_by_name
    declared: dict[str, TensorHeader] = {}
    for header in headers:
        if header.name not in expected:
            raise ProtocolError(
                f"unknown input '{header.name}'; the model's inputs are "
                + ", ".join(spec.describe() for spec in signature.inputs)
            )
        declared[header.name] = header
    rows = -1
    elements = 0
    for spec in signature.inputs:
        found = declared.get(spec.name)
        if found is None:
            raise ProtocolError(f"missing input {spec.describe()}")
        header = found
        if header.datatype != spec.datatype:
            raise ProtocolError(
                f"input '{spec.name}' has datatype {header.datatype} but the model expects "
                f"{spec.datatype}"
            )
        shape = header.shape
        if not shape_matches(shape, spec.shape):
            raise ProtocolError(
                f"input '{spec.name}' has shape {list(shape)} but the model expects "
                f"{list(spec.shape)} (-1 is any size)"
            )
        if 0 in shape:
            # An empty tensor has nothing to answer, and in a batch it would make the
            # outputs impossible to split between requests.
            if signature.batchable and shape[0] == 0:
                raise ProtocolError(
                    f"input '{spec.name}' has shape {list(shape)}: 0 rows; a request needs at "
                    "least one row"
                )
            raise ProtocolError(
                f"input '{spec.name}' has shape {list(shape)}, which holds no values; every "
                "input needs at least one value"
            )
        if signature.batchable:
            if rows == -1:
                rows = shape[0]
            elif shape[0] != rows:
                raise ProtocolError(
                    f"inputs disagree on the batch dimension: '{spec.name}' has {shape[0]} rows, "
                    f"earlier inputs have {rows}"
                )
        elements += math.prod(shape)
    if limits is not None:
        if rows > limits.max_rows:
            raise ProtocolError(
                f"request has {rows} rows; this server takes at most {limits.max_rows} rows "
                "per request (--max-request-rows): split it into smaller requests",
                413,
            )
        if elements > limits.max_elements:
            raise ProtocolError(
                f"request has {elements} values over its inputs; this server takes at most "
                f"{limits.max_elements} per request (--max-request-elements): split it",
                413,
            )
    if requested_outputs is not None:
        names = signature.output_names
        for wanted in requested_outputs:
            if wanted.name not in names:
                raise ProtocolError(
                    f"requested output '{wanted.name}' does not exist; the model's outputs are "
                    + ", ".join(spec.describe() for spec in signature.outputs)
                )
    return max(rows, 1)


class RequestValidator:
    """``check_request`` bound to one model and its limits: the ``check`` that
    ``decode_infer_request`` runs before decoding any data."""

    __slots__ = ("limits", "signature")

    def __init__(self, signature: ModelSignature, limits: RequestLimits | None) -> None:
        self.signature = signature
        self.limits = limits

    def __call__(
        self,
        headers: Sequence[TensorHeader],
        requested_outputs: Sequence[RequestedOutput] | None,
    ) -> int:
        return check_request(headers, requested_outputs, self.signature, self.limits)


def validate_request(request: InferRequest, signature: ModelSignature) -> int:
    """Check an already decoded request against the model; returns its number of rows."""
    headers = [
        TensorHeader(name, request.declared_datatypes[name], array.shape)
        for name, array in request.inputs.items()
    ]
    return check_request(headers, request.requested_outputs, signature)


def inline_row_limit(warm_up_seconds: dict[int, float], budget_s: float) -> int:
    """The most rows a lone request may have and still run on the event loop (0: always
    use the model thread).

    Zero when even the smallest warmed-up call exceeds the budget; otherwise the rows
    that fit the budget at the per-row cost of the largest warmed-up call, never fewer
    than the smallest size nor more than the largest."""
    if not warm_up_seconds:
        return 0
    smallest, largest = min(warm_up_seconds), max(warm_up_seconds)
    if warm_up_seconds[smallest] > budget_s:
        return 0
    seconds_per_row = warm_up_seconds[largest] / largest
    if seconds_per_row <= 0:
        return largest
    return max(smallest, min(largest, int(budget_s / seconds_per_row)))


def choose_providers(gpu_requested: bool, available: Sequence[str]) -> list[str]:
    """Execution providers in priority order, or ModelLoadError when a GPU was asked for
    and this onnxruntime build cannot use one (never a silent fall-back to CPU)."""
    if not gpu_requested:
        return [CPU_PROVIDER]
    if CUDA_PROVIDER not in available:
        raise ModelLoadError(
            "a GPU was requested but onnxruntime has no CUDAExecutionProvider "
            f"(available: {', '.join(available)}); install onnxruntime-gpu and run on a node "
            "with an NVIDIA GPU, or do not request a GPU"
        )
    return [CUDA_PROVIDER, CPU_PROVIDER]


@dataclass(frozen=True, slots=True)
class SessionSettings:
    intra_op_threads: int
    gpu: bool = False
    # Spinning threads burn CPU between requests; the batcher keeps the session fed anyway.
    allow_spinning: bool = False


class LoadedModel:
    """An onnxruntime session plus what the server needs to know about it."""

    def __init__(self, session: Any, signature: ModelSignature, provider: str) -> None:
        self._session = session
        self.signature = signature
        self.provider = provider
        self.warm_up_seconds: dict[int, float] = {}
        self._output_names = list(signature.output_names)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self._session.run(self._output_names, dict(feeds))
        return dict(zip(self._output_names, results, strict=True))

    def warm_up(self, batch_sizes: Sequence[int]) -> dict[int, float]:
        """Run the graph per batch size so allocation and kernel selection happen before
        the server reports ready, not on the first client's request.

        Returns the seconds of a warm call per batch size (a second call, timed, when
        the first was quick), from which the server decides what may run inline."""
        timings: dict[int, float] = {}
        if any(spec.datatype == "BYTES" for spec in self.signature.inputs):
            return timings
        for rows in batch_sizes:
            feeds = {
                spec.name: np.zeros(
                    tuple(
                        rows if index == 0 else max(dim, 1) for index, dim in enumerate(spec.shape)
                    )
                    if self.signature.batchable
                    else tuple(max(dim, 1) for dim in spec.shape),
                    dtype=DATATYPE_TO_NUMPY[spec.datatype],
                )
                for spec in self.signature.inputs
            }
            started = time.perf_counter()
            self.run(feeds)
            elapsed = time.perf_counter() - started
            if elapsed < WARM_UP_RETIME_BELOW_S:
                started = time.perf_counter()
                self.run(feeds)
                elapsed = time.perf_counter() - started
            timings[rows] = elapsed
        return timings


def _load_failure(error: Exception) -> str:
    """What onnxruntime said, without its error-code preamble; a corrupted file can make
    its message undecodable, and then the Python binding raises UnicodeDecodeError."""
    if isinstance(error, UnicodeDecodeError):
        return "its structure cannot be parsed: the file is damaged or not ONNX"
    message = str(error)
    _, marker, rest = message.partition(" failed:")
    return (rest if marker else message).strip() or type(error).__name__


def load_model(
    path: Path, settings: SessionSettings, warm_up_batches: Sequence[int] = (1,)
) -> LoadedModel:
    """Create the session with deliberate options and warm it up."""
    import onnxruntime as ort

    providers = choose_providers(settings.gpu, ort.get_available_providers())
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = settings.intra_op_threads
    # One graph runs at a time (the batcher serialises calls), so no inter-op pool.
    options.inter_op_num_threads = 1
    options.add_session_config_entry(
        "session.intra_op.allow_spinning", "1" if settings.allow_spinning else "0"
    )
    options.log_severity_level = 3
    started = time.perf_counter()
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as error:
        raise ModelLoadError(
            f"onnxruntime cannot load {path}: it is not a valid ONNX model ({_load_failure(error)})"
        ) from error
    active = session.get_providers()
    if settings.gpu and (not active or active[0] != CUDA_PROVIDER):
        raise ModelLoadError(
            "a GPU was requested but onnxruntime could not start the CUDA provider "
            f"(session providers: {', '.join(active)}); check the GPU, driver and CUDA libraries"
        )
    signature = ModelSignature(
        inputs=tuple(tensor_spec(arg.name, arg.type, arg.shape) for arg in session.get_inputs()),
        outputs=tuple(tensor_spec(arg.name, arg.type, arg.shape) for arg in session.get_outputs()),
    )
    model = LoadedModel(session, signature, active[0])
    try:
        model.warm_up_seconds = model.warm_up(warm_up_batches if signature.batchable else (1,))
    except Exception as error:
        raise ModelLoadError(f"warm-up inference failed: {error}") from error
    log.info(
        "model loaded from %s on %s in %.1f ms (batchable=%s)",
        path,
        model.provider,
        (time.perf_counter() - started) * 1000,
        signature.batchable,
    )
    return model
