"""The sampler and the receiver over a real Unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from driftline_serving.evaluator.receiver import SampleReceiver
from driftline_serving.sampling.codec import Feedback, Message, SampleBatch
from driftline_serving.sampling.sampler import AnsweredBatch, Sampler, batch_from_answered
from driftline_serving.server.batching import PendingRequest
from driftline_serving.server.observers import InferenceRecord
from tests.support import wait_until_async


def record(i: int, rows: int = 1, named: bool = True) -> InferenceRecord:
    return InferenceRecord(
        request_id=f"req-{i}" if named else None,
        model_name="m",
        model_version="v1",
        inputs={"x": np.full((rows, 4), i, dtype=np.float32)},
        outputs={"y": np.full((rows, 2), -i, dtype=np.float32)},
        received_at_unix_s=time.time(),
        duration_s=0.001,
    )


wait_for = functools.partial(wait_until_async, timeout_s=10.0, interval_s=0.01)


@contextlib.asynccontextmanager
async def channel(tmp_path: Path) -> AsyncIterator[tuple[Sampler, list[Message]]]:
    """A sampler shipping everything to a receiver over a real Unix socket."""
    received: list[Message] = []
    address = f"unix://{tmp_path}/samples.sock"
    receiver = SampleReceiver(address, received.append)
    await receiver.start()
    sampler = Sampler(address, rate=1.0, flush_interval_s=0.01).start()
    try:
        yield sampler, received
    finally:
        sampler.close()
        await receiver.close()


async def test_every_sampled_row_arrives_in_order(tmp_path: Path) -> None:
    async with channel(tmp_path) as (sampler, received):
        for i in range(500):
            sampler.observe(record(i))
        sampler.observe(record(1000, rows=3))
        sampler.feedback(["req-1", "req-1000:2"], [1, 0])
        batches = lambda: [m for m in received if isinstance(m, SampleBatch)]  # noqa: E731
        await wait_for(lambda: sum(b.rows for b in batches()) == 503)
        await wait_for(lambda: any(isinstance(m, Feedback) for m in received))
    ids = [r for b in batches() for r in b.request_ids]
    assert ids[:500] == [f"req-{i}" for i in range(500)]
    assert ids[500:] == ["req-1000:0", "req-1000:1", "req-1000:2"]
    inputs = np.concatenate([b.inputs["x"] for b in batches()])
    assert np.array_equal(inputs[:500, 0], np.arange(500, dtype=np.float32))
    assert sampler.stats.shipped_rows == 503 and sampler.stats.dropped_queue_full == 0
    assert next(m for m in received if isinstance(m, Feedback)) == Feedback(
        ["req-1", "req-1000:2"], [1, 0]
    )


def test_requests_without_an_id_ship_with_the_empty_id() -> None:
    # their responses carried no id, so no feedback can name them
    answered = [
        AnsweredBatch(["req-0"], [1], None, 1, 1.0, "v1", *answered_arrays([0])),
        AnsweredBatch([None, None], [1, 2], None, 3, 2.0, "v1", *answered_arrays([1, 2, 2])),
        AnsweredBatch(["req-3", None], [2, 1], None, 3, 3.0, "v1", *answered_arrays([3, 3, 4])),
    ]
    (batch,) = batch_from_answered(answered)
    assert batch.request_ids == ["req-0", "", "", "", "req-3:0", "req-3:1", ""]
    np.testing.assert_array_equal(batch.received_at, [1, 2, 2, 2, 3, 3, 3])
    (unnamed,) = batch_from_answered([answered[1]])
    assert unnamed.request_ids == ["", "", ""]


async def test_observed_records_of_two_versions_ship_as_separate_frames(tmp_path: Path) -> None:
    async with channel(tmp_path) as (sampler, received):
        first, second = record(1), record(2)
        second = InferenceRecord(
            "req-2", "m", "v2", second.inputs, second.outputs, 3.0, second.duration_s
        )
        sampler.observe(first)
        sampler.observe(second)
        await wait_for(lambda: sum(isinstance(m, SampleBatch) for m in received) == 2)
    batches = [m for m in received if isinstance(m, SampleBatch)]
    assert {b.model_version: b.request_ids for b in batches} == {"v1": ["req-1"], "v2": ["req-2"]}
    assert [b.received_at.tolist() for b in batches if b.model_version == "v2"] == [[3.0]]


def pending(request_id: str | None, rows: int) -> PendingRequest:
    return PendingRequest({}, rows, None, lambda outputs, error: None, request_id)


def answered_arrays(values: list[float]) -> tuple[dict, dict]:
    column = np.array(values, dtype=np.float32)[:, None]
    return {"x": np.repeat(column, 4, axis=1)}, {"y": -np.repeat(column, 2, axis=1)}


def test_answered_batches_keep_the_kept_requests_rows_in_order() -> None:
    inputs, outputs = answered_arrays([1, 2, 2, 3])
    first = AnsweredBatch(
        ["a", "b", None], [1, 2, 1], [True, False, True], 2, 5.0, "v1", inputs, outputs
    )
    inputs, outputs = answered_arrays([4])
    second = AnsweredBatch([None], [1], None, 1, 6.0, "v1", inputs, outputs)
    (batch,) = batch_from_answered([first, second])
    assert batch.request_ids == ["a", "", ""]
    np.testing.assert_array_equal(batch.inputs["x"][:, 0], [1, 3, 4])
    np.testing.assert_array_equal(batch.outputs["y"][:, 1], [-1, -3, -4])
    np.testing.assert_array_equal(batch.received_at, [5.0, 5.0, 6.0])
    assert batch.model_version == "v1"


@pytest.mark.parametrize(
    ("kept", "expected"),
    [
        ([False, True, False, False], [2.0]),  # one request kept: a view of its row
        ([True, False, True, True], [1.0, 3.0, 4.0]),
        ([True, True, True, True], [1.0, 2.0, 3.0, 4.0]),
    ],
)
def test_kept_requests_of_one_row_each(kept: list[bool], expected: list[float]) -> None:
    inputs, outputs = answered_arrays([1, 2, 3, 4])
    ids = ["a", "b", "c", "d"]
    item = AnsweredBatch(ids, [1] * 4, kept, sum(kept), 1.0, "v1", inputs, outputs)
    (batch,) = batch_from_answered([item])
    assert batch.request_ids == [i for i, k in zip(ids, kept, strict=True) if k]
    np.testing.assert_array_equal(batch.inputs["x"][:, 3], expected)
    np.testing.assert_array_equal(batch.outputs["y"][:, 0], [-v for v in expected])
    assert batch.received_at.shape == (len(expected),)


def test_answered_batches_of_another_layout_become_their_own_frame() -> None:
    narrow = AnsweredBatch(["a"], [2], None, 2, 1.0, "v1", *answered_arrays([1, 1]))
    wide_inputs = {"x": np.zeros((1, 6), dtype=np.float32)}
    wide = AnsweredBatch(["w"], [1], None, 1, 2.0, "v1", wide_inputs, {"y": np.zeros((1, 2))})
    batches = batch_from_answered([narrow, wide])
    assert [b.request_ids for b in batches] == [["a:0", "a:1"], ["w"]]
    assert [b.inputs["x"].shape for b in batches] == [(2, 4), (1, 6)]


def test_batch_answered_flips_a_coin_per_request_and_bounds_the_buffer() -> None:
    sampler = Sampler("unix:///nonexistent/socket", rate=0.5, rng=random.Random(3))
    inputs, outputs = answered_arrays([float(i) for i in range(1000)])
    sampler.batch_answered([pending(str(i), 1) for i in range(1000)], inputs, outputs)
    assert 420 <= sampler.stats.sampled_rows <= 580
    everything = Sampler("unix:///nonexistent/socket", rate=1.0, queue_rows=1500)
    for _ in range(2):
        everything.batch_answered([pending(str(i), 1) for i in range(1000)], inputs, outputs)
    assert everything.stats.sampled_rows == 1000 and everything.stats.dropped_queue_full == 1000
    nothing = Sampler("unix:///nonexistent/socket", rate=0.0)
    nothing.batch_answered([pending("a", 1)], *answered_arrays([1]))
    assert nothing.stats.sampled_rows == 0


async def test_rate_is_respected() -> None:
    sampler = Sampler("unix:///nonexistent/socket", rate=0.1, rng=random.Random(7))
    for i in range(10_000):
        if sampler.wants():  # as the server does
            sampler.observe(record(i))
    assert 850 <= sampler.stats.sampled_rows <= 1150
    assert not Sampler("unix:///x", rate=0.0).wants() and Sampler("unix:///x", rate=1.0).wants()


async def test_full_queue_drops_and_counts_without_blocking() -> None:
    sampler = Sampler("unix:///nonexistent/socket", rate=1.0, queue_rows=100)
    for i in range(250):
        sampler.observe(record(i))
    assert sampler.stats.sampled_rows == 100 and sampler.stats.dropped_queue_full == 150


async def test_missing_sidecar_drops_and_counts(tmp_path: Path) -> None:
    sampler = Sampler(f"unix://{tmp_path}/absent.sock", rate=1.0, flush_interval_s=0.01).start()
    try:
        for i in range(20):
            sampler.observe(record(i))
        await wait_for(lambda: sampler.stats.dropped_unsent == 20)
        assert sampler.stats.connect_failures >= 1
    finally:
        sampler.close()


async def test_bad_frame_is_counted_and_receiver_keeps_serving(tmp_path: Path) -> None:
    received: list[Message] = []
    path = tmp_path / "s.sock"
    receiver = SampleReceiver(f"unix://{path}", received.append)
    await receiver.start()
    try:
        _reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"GARBAGE!" + b"\0" * 32)
        await writer.drain()
        await wait_for(lambda: receiver.stats.bad_frames == 1)
        writer.close()
        sampler = Sampler(f"unix://{path}", rate=1.0, flush_interval_s=0.01).start()
        sampler.observe(record(1))
        await wait_for(lambda: len(received) == 1)
        sampler.close()
    finally:
        await receiver.close()
