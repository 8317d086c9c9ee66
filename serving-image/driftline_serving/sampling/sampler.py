"""The server side of sampling: an inference observer that never blocks a request.

The batcher hands each answered batch to `batch_answered`, which flips a coin per
request and appends the batch's arrays (by reference) to a bounded buffer, dropping
(and counting) when the buffer is full; `observe` does the same for one request, for
callers that have a single record. A shipper thread drains the buffer, encodes the kept
rows as frames and writes them to the sidecar's socket; if the sidecar is away, those rows are dropped and counted too, and
the shipper reconnects with backoff. Nothing here can slow or fail a request.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from prometheus_client import CollectorRegistry, Gauge

from driftline_serving.sampling.codec import Feedback, SampleBatch, encode, encode_blocks
from driftline_serving.server.batching import Outputs, PendingRequest
from driftline_serving.server.observers import InferenceRecord

log = logging.getLogger(__name__)


@dataclass
class SamplerStats:
    """Counters the server exports as metrics."""

    sampled_rows: int = 0
    shipped_rows: int = 0
    dropped_queue_full: int = 0
    dropped_unsent: int = 0
    frames_sent: int = 0
    feedback_sent: int = 0
    connect_failures: int = 0


def open_channel(address: str, timeout_s: float = 2.0) -> socket.socket:
    """Connect to `unix:///path` or `tcp://host:port`."""
    if address.startswith("unix://"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: str | tuple[str, int] = address.removeprefix("unix://")
    elif address.startswith("tcp://"):
        host, _, port = address.removeprefix("tcp://").rpartition(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        target = (host, int(port))
    else:
        raise ValueError(f"sample channel must be unix:///path or tcp://host:port, got {address!r}")
    sock.settimeout(timeout_s)
    try:
        sock.connect(target)
    except OSError:
        sock.close()
        raise
    return sock


@dataclass(slots=True)  # not frozen: a frozen dataclass costs microseconds per instance
class AnsweredBatch:
    """An answered batch as the batcher handed it over: its arrays by reference (fresh
    per batch, never modified), one id and row count per request, and which requests
    the coin kept (None: all)."""

    request_ids: list[str | None]
    rows: list[int]
    kept: list[bool] | None
    kept_rows: int  # the rows of the kept requests: what the buffer counted
    received_at_unix_s: float
    model_version: str
    inputs: Mapping[str, np.ndarray]
    outputs: Mapping[str, np.ndarray]


@dataclass(slots=True)
class RowBlocks:
    """The kept rows of answered batches that share a frame: each array as the list of
    its row blocks, one per answered batch, not yet joined."""

    model_version: str
    request_ids: list[str]
    received_at: np.ndarray
    inputs: dict[str, list[np.ndarray]]
    outputs: dict[str, list[np.ndarray]]


def blocks_from_answered(answered: list[AnsweredBatch]) -> list[RowBlocks]:
    """The kept rows of answered batches, one RowBlocks per model version and array
    layout, in order of first appearance (pure).

    A request of several rows gives ids `id:0`, `id:1`, ... A request without an id gets
    the empty id on each of its rows: its response carried no id, so no feedback can
    name it, and the evaluator keeps no prediction for it.

    This runs on the shipper thread for every answered batch, and with small batches
    (low concurrency) its per-batch cost is most of what sampling costs the server: the
    usual batch (every request kept, one row each, the layout of the one before) takes
    a path without a loop over its requests or a dictionary lookup, and arrays are not
    concatenated here (the codec joins their bytes).
    """
    groups: dict[tuple[object, ...], list[AnsweredBatch]] = {}
    previous: tuple[object, ...] | None = None
    members: list[AnsweredBatch] = []
    for item in answered:
        layout = _layout(item)
        if layout != previous:
            members = groups.setdefault(layout, [])
            previous = layout
        members.append(item)
    result = []
    for group in groups.values():
        request_ids: list[str | None] = []
        times: list[float] = []
        counts: list[int] = []
        inputs: dict[str, list[np.ndarray]] = {name: [] for name in group[0].inputs}
        outputs: dict[str, list[np.ndarray]] = {name: [] for name in group[0].outputs}
        for item in group:
            times.append(item.received_at_unix_s)
            counts.append(item.kept_rows)
            if item.kept is None and item.kept_rows == len(item.rows):
                request_ids += item.request_ids  # one row per request, all kept
            else:
                _add_request_ids(request_ids, item)
            rows = _kept_rows(item)
            for target, arrays in ((inputs, item.inputs), (outputs, item.outputs)):
                for name, array in arrays.items():
                    target[name].append(array if rows is None else array[rows])
        result.append(
            RowBlocks(
                group[0].model_version,
                _empty_for_none(request_ids),
                np.repeat(np.array(times, dtype=np.float64), counts),
                inputs,
                outputs,
            )
        )
    return result


def batch_from_answered(answered: list[AnsweredBatch]) -> list[SampleBatch]:
    """`blocks_from_answered` with each array's blocks concatenated (pure)."""
    return [
        SampleBatch(
            model_version=blocks.model_version,
            request_ids=blocks.request_ids,
            received_at=blocks.received_at,
            inputs={name: np.concatenate(parts) for name, parts in blocks.inputs.items()},
            outputs={name: np.concatenate(parts) for name, parts in blocks.outputs.items()},
        )
        for blocks in blocks_from_answered(answered)
    ]


def _layout(item: AnsweredBatch) -> tuple[object, ...]:
    """What must agree for rows to share a frame: version, names, trailing shapes and
    dtypes (as number and byte order: comparing and hashing dtype objects costs more)."""
    key: list[object] = [item.model_version]
    for arrays in (item.inputs, item.outputs):
        for name, array in arrays.items():
            dtype = array.dtype
            key += (name, array.shape[1:], dtype.num, dtype.byteorder)
        key.append(None)  # between inputs and outputs
    return tuple(key)


def _kept_rows(item: AnsweredBatch) -> slice | list[int] | np.ndarray | None:
    """Which rows of the batch's arrays to ship: None for all of them; a slice (a view,
    no copy) when one request of one row is kept, the usual case at low rates."""
    if item.kept is None:
        return None
    if len(item.rows) == sum(item.rows):  # one row per request
        kept = [index for index, keep in enumerate(item.kept) if keep]
        if len(kept) == 1:
            return slice(kept[0], kept[0] + 1)
        return kept
    return np.repeat(np.array(item.kept), item.rows)


def _empty_for_none(request_ids: list[str | None]) -> list[str]:
    missing = request_ids.count(None)
    if missing == len(request_ids):
        return [""] * missing
    return [r if r is not None else "" for r in request_ids]


def _add_request_ids(request_ids: list[str | None], item: AnsweredBatch) -> None:
    kept = item.kept or [True] * len(item.rows)
    for request_id, rows, keep in zip(item.request_ids, item.rows, kept, strict=True):
        if not keep:
            continue
        if rows == 1:
            request_ids.append(request_id)
        elif request_id is None:
            request_ids += [None] * rows
        else:
            request_ids += [f"{request_id}:{i}" for i in range(rows)]


def _rows(record: InferenceRecord) -> int:
    first = next(iter(record.inputs.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim > 0 else 1


class Sampler:
    """An InferenceObserver that ships a sampled copy of traffic to the drift sidecar."""

    def __init__(
        self,
        address: str,
        rate: float,
        queue_rows: int = 10_000,
        flush_interval_s: float = 0.05,
        max_frame_rows: int = 4096,
        rng: random.Random | None = None,
        model_version: str = "",
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"sampling rate must be within 0..1, got {rate}")
        self.address = address
        self.model_version = model_version
        self.rate = rate
        self.queue_rows = queue_rows
        self.flush_interval_s = flush_interval_s
        self.max_frame_rows = max_frame_rows
        self.stats = SamplerStats()
        self._random = (rng or random.Random()).random
        # deque.append and popleft are atomic: the request path takes no lock
        self._answered: deque[AnsweredBatch] = deque()
        self._queued_rows = 0
        self._feedback: deque[Feedback] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._socket: socket.socket | None = None
        self._next_connect = 0.0
        self._backoff_s = 0.05
        self._thread = threading.Thread(target=self._run, name="driftline-sampler", daemon=True)

    # --- request path (event loop) ---------------------------------------------------

    def wants(self) -> bool:
        """The per-request coin flip, made before the server builds a record."""
        return self.rate >= 1.0 or (self.rate > 0.0 and self._random() < self.rate)

    def batch_answered(
        self, batch: list[PendingRequest], inputs: Mapping[str, np.ndarray], outputs: Outputs
    ) -> None:
        """The server's path: each answered batch is offered whole, once, so the cost of
        sampling is paid per batch, not per request. Each request is kept with
        probability `rate` (a coin per request, as `wants` flips), and only then are its
        rows counted against the buffer."""
        rate = self.rate
        if rate <= 0.0:
            return
        kept: list[bool] | None = None  # None: every request of the batch
        if rate < 1.0:
            flip = self._random
            if len(batch) == 1:
                if flip() >= rate:
                    return  # the usual case at low rates: nothing built, nothing held
            else:
                kept = [flip() < rate for _ in batch]
                if True not in kept:
                    return
                if False not in kept:
                    kept = None
        if len(batch) == 1:
            rows = [batch[0].rows]
            request_ids = [batch[0].request_id]
        else:
            rows = [item.rows for item in batch]
            request_ids = [item.request_id for item in batch]
        taken = sum(rows) if kept is None else sum(n for n, k in zip(rows, kept, strict=True) if k)
        self._enqueue(
            AnsweredBatch(
                request_ids, rows, kept, taken, time.time(), self.model_version, inputs, outputs
            )
        )

    def observe(self, record: InferenceRecord) -> None:
        """Keep one sampled request (the InferenceObserver path; the server hands whole
        batches to `batch_answered`). Its arrays are kept by reference, not copied: they
        view immutable request bodies or fresh per-batch outputs (see InferenceRecord)."""
        rows = _rows(record)
        self._enqueue(
            AnsweredBatch(
                [record.request_id],
                [rows],
                None,
                rows,
                record.received_at_unix_s,
                record.model_version,
                record.inputs,
                record.outputs,
            )
        )

    def _enqueue(self, item: AnsweredBatch) -> None:
        """Buffer a batch's kept rows, or drop and count them when the buffer is full."""
        taken = item.kept_rows
        if self._queued_rows + taken > self.queue_rows:
            self.stats.dropped_queue_full += taken
            return
        self._answered.append(item)
        self._queued_rows += taken  # only the event loop adds; the shipper subtracts
        self.stats.sampled_rows += taken
        if self._queued_rows >= self.max_frame_rows:
            self._wake.set()

    def feedback(self, request_ids: list[str], labels: list[int | float | str]) -> None:
        """Queue ground-truth labels for the sidecar (never dropped for being sampled out)."""
        self._feedback.append(Feedback(list(request_ids), list(labels)))
        self._wake.set()

    def register_metrics(self, registry: CollectorRegistry) -> None:
        """Export the counters; read at scrape time, so the request path sets nothing."""
        counters = (
            ("driftline_drift_sampled_rows", "Rows sampled for the drift sidecar.", "sampled_rows"),
            (
                "driftline_drift_shipped_rows",
                "Sampled rows delivered to the sidecar.",
                "shipped_rows",
            ),
            (
                "driftline_drift_dropped_queue_full_rows",
                "Sampled rows dropped because the buffer was full.",
                "dropped_queue_full",
            ),
            (
                "driftline_drift_dropped_unsent_rows",
                "Sampled rows dropped because the sidecar could not be reached.",
                "dropped_unsent",
            ),
            (
                "driftline_drift_feedback_labels_sent",
                "Labels forwarded to the sidecar.",
                "feedback_sent",
            ),
        )
        for name, documentation, attribute in counters:
            Gauge(name, documentation, registry=registry).set_function(self._reader(attribute))

    def _reader(self, attribute: str) -> Callable[[], float]:
        return lambda: float(getattr(self.stats, attribute))

    # --- shipper thread --------------------------------------------------------------

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def close(self, timeout_s: float = 2.0) -> None:
        """Ship what is pending, then stop."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)
        if self._socket is not None:
            self._socket.close()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            answered = [self._answered.popleft() for _ in range(len(self._answered))]
            feedback = [self._feedback.popleft() for _ in range(len(self._feedback))]
            rows = sum(a.kept_rows for a in answered)
            self._queued_rows -= rows
            if answered or feedback:
                self._ship(answered, rows, feedback)
            if self._stop.is_set():
                return

    def _ship(self, answered: list[AnsweredBatch], rows: int, feedback: list[Feedback]) -> None:
        frames: list[tuple[bytes, int, bool]] = []
        try:
            for blocks in blocks_from_answered(answered):
                frame = encode_blocks(
                    blocks.model_version,
                    blocks.request_ids,
                    blocks.received_at,
                    blocks.inputs,
                    blocks.outputs,
                )
                frames.append((frame, len(blocks.request_ids), False))
            frames.extend((encode(fb), len(fb.request_ids), True) for fb in feedback)
        except ValueError:
            log.exception("could not encode sampled rows; dropping them")
            self.stats.dropped_unsent += rows
            return
        for index, (frame, count, is_feedback) in enumerate(frames):
            if not self._send(frame):
                self.stats.dropped_unsent += sum(c for _, c, fb in frames[index:] if not fb)
                return
            self.stats.frames_sent += 1
            if is_feedback:
                self.stats.feedback_sent += count
            else:
                self.stats.shipped_rows += count

    def _send(self, frame: bytes) -> bool:
        if self._socket is None:
            if time.monotonic() < self._next_connect:
                return False
            try:
                self._socket = open_channel(self.address)
                self._backoff_s = 0.05
            except OSError as error:
                self.stats.connect_failures += 1
                self._next_connect = time.monotonic() + self._backoff_s
                self._backoff_s = min(self._backoff_s * 2, 2.0)
                log.debug("drift sidecar not reachable at %s: %s", self.address, error)
                return False
        try:
            self._socket.sendall(frame)
            return True
        except OSError as error:
            log.warning("lost the drift sidecar connection: %s", error)
            self._socket.close()
            self._socket = None
            return False
