"""Dynamic batching: requests that arrive together run as one onnxruntime call.

The batcher lives on the event loop and hands whole batches to one worker thread, so the
loop keeps reading and parsing requests while the model runs; whatever queued up in the
meantime becomes the next batch. With ``max_wait_s == 0`` nothing ever waits on purpose
(a lone request runs at once); a positive wait holds a partial batch open that long for
more rows. Each caller gets back exactly its own rows, as views into the batch result.

A request can never change another's answer: when a batch of several requests fails (the
model raises, or its outputs do not follow the batch's rows and cannot be split), each
request of it is run again on its own, so only the request that causes the failure fails.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

Arrays = Mapping[str, np.ndarray]
Outputs = dict[str, np.ndarray]
log = logging.getLogger(__name__)

Completion = Callable[[Outputs | None, BaseException | None], None]
# What one batch produced: the merged inputs and outputs (None when the requests had to be
# run one by one), and per request its outputs or the error it alone caused.
BatchResult = tuple[Arrays | None, Outputs | None, list[Outputs | BaseException]]


class BatchObserver(Protocol):
    """What the batcher reports, for metrics."""

    def batch_ran(self, rows: int, requests: int, seconds: float) -> None: ...


@runtime_checkable
class BatchSink(Protocol):
    """Takes each answered batch whole (the drift sampler): one hand-off per batch, so
    its cost per request shrinks as batches grow. Called on the event loop after every
    request of the batch has been answered; must not block."""

    def batch_answered(
        self, batch: list[PendingRequest], inputs: Arrays, outputs: Outputs
    ) -> None: ...


@dataclass(slots=True)
class PendingRequest:
    inputs: Arrays
    rows: int
    # Requests can share a batch only when their non-batch dimensions and dtypes agree.
    compatibility: Hashable
    on_done: Completion
    request_id: str | None = None


def compatibility_key(inputs: Arrays) -> Hashable:
    return tuple((name, array.shape[1:], array.dtype.str) for name, array in inputs.items())


def take_batch(queue: deque[PendingRequest], max_rows: int) -> list[PendingRequest]:
    """Pop the head and every following request that fits, in arrival order.

    The head is always taken, even when it alone exceeds ``max_rows``: a large request
    runs on its own rather than being refused. A request that does not fit or does not
    match stops the scan, so nothing overtakes an earlier arrival."""
    head = queue.popleft()
    batch = [head]
    rows = head.rows
    while queue:
        candidate = queue[0]
        if rows + candidate.rows > max_rows or candidate.compatibility != head.compatibility:
            break
        batch.append(queue.popleft())
        rows += candidate.rows
    return batch


def merge_inputs(batch: list[PendingRequest]) -> dict[str, np.ndarray]:
    if len(batch) == 1:
        return dict(batch[0].inputs)
    names = batch[0].inputs.keys()
    return {name: np.concatenate([item.inputs[name] for item in batch]) for name in names}


def split_outputs(outputs: Outputs, batch: list[PendingRequest]) -> list[Outputs]:
    """Cut batch outputs back into each request's rows."""
    if len(batch) == 1:
        return [outputs]
    total = sum(item.rows for item in batch)
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            raise RuntimeError(
                f"output '{name}' has shape {list(array.shape)} for a batch of {total} rows; "
                "it cannot be split between requests"
            )
    parts: list[Outputs] = []
    start = 0
    for item in batch:
        stop = start + item.rows
        parts.append({name: array[start:stop] for name, array in outputs.items()})
        start = stop
    return parts


class DynamicBatcher:
    def __init__(
        self,
        run: Callable[[Mapping[str, np.ndarray]], Outputs],
        executor: Executor,
        *,
        max_batch_size: int,
        max_wait_s: float,
        observer: BatchObserver,
        batchable: bool = True,
        uniform_shapes: bool = False,
        inline_max_rows: int = 0,
        sinks: tuple[BatchSink, ...] = (),
    ) -> None:
        """``uniform_shapes``: validation already guarantees that all requests agree on
        every dimension but the first, so the per-request compatibility key is skipped.
        ``inline_max_rows``: a batch of one request with at most this many rows runs on
        the event loop itself instead of the worker thread (0: never)."""
        self._run = run
        self._executor = executor
        self._max_rows = max_batch_size if batchable else 1
        self._max_wait_s = max_wait_s if batchable and max_batch_size > 1 else 0.0
        self._observer = observer
        self._sinks = sinks
        self._inline_max_rows = inline_max_rows
        self._last_batch_requests = 1
        self._check_compatibility = self._max_rows > 1 and not uniform_shapes
        self._queue: deque[PendingRequest] = deque()
        self._queued_rows = 0
        self._busy = False
        self._dispatch_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._flush_now = False
        self._loop = asyncio.get_running_loop()

    def submit(
        self, inputs: Arrays, rows: int, on_done: Completion, request_id: str | None = None
    ) -> None:
        """Queue a request; ``on_done(outputs, error)`` is called on the event loop."""
        key = compatibility_key(inputs) if self._check_compatibility else None
        self._queue.append(PendingRequest(inputs, rows, key, on_done, request_id))
        self._queued_rows += rows
        if self._busy or self._dispatch_scheduled:
            return
        if self._max_wait_s > 0 and self._queued_rows < self._max_rows and not self._flush_now:
            if self._timer is None:
                self._timer = self._loop.call_later(self._max_wait_s, self._on_timer)
            return
        # Deferred to the end of this loop iteration: requests read from other
        # connections in the same iteration join this batch.
        self._dispatch_scheduled = True
        self._loop.call_soon(self._dispatch)

    async def infer(self, inputs: Arrays, rows: int) -> Outputs:
        future: asyncio.Future[Outputs] = self._loop.create_future()

        def resolve(outputs: Outputs | None, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                assert outputs is not None
                future.set_result(outputs)

        self.submit(inputs, rows, resolve)
        return await future

    def flush(self) -> None:
        """Stop holding partial batches (used when shutting down)."""
        self._flush_now = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._queue and not self._busy and not self._dispatch_scheduled:
            self._dispatch_scheduled = True
            self._loop.call_soon(self._dispatch)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def _on_timer(self) -> None:
        self._timer = None
        if not self._busy and not self._dispatch_scheduled:
            self._dispatch()

    def _dispatch(self) -> None:
        self._dispatch_scheduled = False
        if self._busy or not self._queue:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = take_batch(self._queue, self._max_rows)
        self._queued_rows -= sum(item.rows for item in batch)
        self._busy = True
        started = time.perf_counter()
        lone = len(batch) == 1
        light_traffic = lone and self._last_batch_requests == 1
        self._last_batch_requests = len(batch)
        if light_traffic and batch[0].rows <= self._inline_max_rows:
            # A lone small request while traffic is light (the previous batch was lone
            # too): the thread hand-off would cost more than the model. Under load a
            # lone request still goes to the thread, so the loop keeps reading.
            future: asyncio.Future[BatchResult] = self._loop.create_future()
            try:
                future.set_result(self._run_batch(batch))
            except Exception as error:
                future.set_exception(error)
            self._complete(batch, future, started, dispatch_next_now=False)
            return
        future = self._loop.run_in_executor(self._executor, self._run_batch, batch)
        future.add_done_callback(lambda done: self._complete(batch, done, started))

    def _run_batch(self, batch: list[PendingRequest]) -> BatchResult:
        merged = merge_inputs(batch)
        if len(batch) == 1:
            outputs = self._run(merged)
            return merged, outputs, [outputs]
        try:
            outputs = self._run(merged)
            parts: list[Outputs | BaseException] = list(split_outputs(outputs, batch))
        except Exception as error:
            log.warning(
                "a batch of %d requests failed (%s); running each on its own", len(batch), error
            )
            return None, None, [self._run_alone(item) for item in batch]
        return merged, outputs, parts

    def _run_alone(self, item: PendingRequest) -> Outputs | BaseException:
        try:
            return self._run(item.inputs)
        except Exception as error:
            return error

    def _complete(
        self,
        batch: list[PendingRequest],
        done: asyncio.Future[BatchResult],
        started: float,
        dispatch_next_now: bool = True,
    ) -> None:
        self._busy = False
        rows = sum(item.rows for item in batch)
        self._observer.batch_ran(rows, len(batch), time.perf_counter() - started)
        error = done.exception()
        merged: Arrays | None = None
        outputs: Outputs | None = None
        parts: list[Outputs | BaseException] | None = None
        if error is None:
            merged, outputs, parts = done.result()
        # Start the next batch before answering: the model works while we encode responses.
        # Requests queued meanwhile have already waited a whole model run, so no timer.
        if self._queue:
            if dispatch_next_now:
                self._dispatch()
            elif not self._dispatch_scheduled:
                # After an inline run: through the loop, so a backlog of lone requests
                # does not recurse, and requests read meanwhile can join.
                self._dispatch_scheduled = True
                self._loop.call_soon(self._dispatch)
        for index, item in enumerate(batch):
            try:
                if parts is None:
                    item.on_done(None, error)
                else:
                    part = parts[index]
                    if isinstance(part, BaseException):
                        item.on_done(None, part)
                    else:
                        item.on_done(part, None)
            except Exception:
                log.exception("answering a batched request failed")
        if parts is None or not self._sinks:
            return
        if merged is not None and outputs is not None:
            self._offer(batch, merged, outputs)
            return
        for item, part in zip(batch, parts, strict=True):
            if not isinstance(part, BaseException):
                self._offer([item], item.inputs, part)

    def _offer(self, batch: list[PendingRequest], inputs: Arrays, outputs: Outputs) -> None:
        for sink in self._sinks:
            try:
                sink.batch_answered(batch, inputs, outputs)
            except Exception:
                log.exception("batch sink %r failed", sink)
