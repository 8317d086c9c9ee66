"""The dynamic batcher: batch assembly as pure functions, then the batcher on a real loop."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from driftline_serving.server.batching import (
    DynamicBatcher,
    PendingRequest,
    compatibility_key,
    merge_inputs,
    split_outputs,
    take_batch,
)


def pending(rows: int, value: float = 0.0, width: int = 2) -> PendingRequest:
    inputs = {"x": np.full((rows, width), value, dtype=np.float32)}
    return PendingRequest(inputs, rows, compatibility_key(inputs), lambda outputs, error: None)


def test_take_batch_fills_up_to_the_row_limit_in_arrival_order():
    queue = deque([pending(3), pending(4), pending(2), pending(1)])
    batch = take_batch(queue, max_rows=8)
    assert [item.rows for item in batch] == [3, 4]
    assert [item.rows for item in queue] == [2, 1]


def test_an_oversized_request_runs_alone_rather_than_being_refused():
    queue = deque([pending(20), pending(1)])
    assert [item.rows for item in take_batch(queue, max_rows=8)] == [20]


def test_incompatible_shapes_are_not_merged_and_nothing_overtakes():
    queue = deque([pending(1, width=2), pending(1, width=3), pending(1, width=2)])
    assert len(take_batch(queue, max_rows=8)) == 1
    assert len(queue) == 2


def test_merge_then_split_gives_each_request_its_rows():
    batch = [pending(2, 1.0), pending(1, 2.0), pending(3, 3.0)]
    merged = merge_inputs(batch)
    assert merged["x"].shape == (6, 2)
    parts = split_outputs({"y": merged["x"] * 10}, batch)
    assert [part["y"][:, 0].tolist() for part in parts] == [[10, 10], [20], [30, 30, 30]]


def test_split_refuses_outputs_that_do_not_follow_the_batch():
    with pytest.raises(RuntimeError, match=r"output 'y' has shape \[1\] for a batch of 3 rows"):
        split_outputs({"y": np.zeros(1)}, [pending(1), pending(2)])


class RecordingObserver:
    def __init__(self) -> None:
        self.batches: list[tuple[int, int]] = []

    def batch_ran(self, rows: int, requests: int, seconds: float) -> None:
        self.batches.append((rows, requests))


def double(feeds):
    return {"y": feeds["x"] * 2}


async def test_requests_queued_together_run_as_one_call_and_get_their_own_rows():
    observer = RecordingObserver()
    with ThreadPoolExecutor(max_workers=1) as executor:
        batcher = DynamicBatcher(
            double, executor, max_batch_size=64, max_wait_s=0.0, observer=observer
        )
        inputs = [np.full((1 + index % 3, 2), index, dtype=np.float32) for index in range(20)]
        results = await asyncio.gather(*(batcher.infer({"x": x}, len(x)) for x in inputs))
    for x, result in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(result["y"], x * 2)
    # All twenty were submitted in one loop iteration: one onnxruntime call.
    assert observer.batches == [(sum(len(x) for x in inputs), 20)]
    assert batcher.queue_depth == 0


async def test_max_batch_size_splits_a_burst_into_several_calls():
    observer = RecordingObserver()
    with ThreadPoolExecutor(max_workers=1) as executor:
        batcher = DynamicBatcher(
            double, executor, max_batch_size=4, max_wait_s=0.0, observer=observer
        )
        results = await asyncio.gather(
            *(batcher.infer({"x": np.full((1, 2), i, dtype=np.float32)}, 1) for i in range(10))
        )
    assert [int(result["y"][0, 0]) for result in results] == [i * 2 for i in range(10)]
    assert [rows for rows, _ in observer.batches] == [4, 4, 2]


async def test_a_positive_wait_gathers_requests_that_arrive_later():
    observer = RecordingObserver()
    with ThreadPoolExecutor(max_workers=1) as executor:
        batcher = DynamicBatcher(
            double, executor, max_batch_size=8, max_wait_s=30.0, observer=observer
        )
        first = asyncio.ensure_future(batcher.infer({"x": np.ones((1, 2), dtype=np.float32)}, 1))
        await asyncio.sleep(0)  # let the first request be queued on its own
        assert observer.batches == []
        rest = [batcher.infer({"x": np.ones((1, 2), dtype=np.float32)}, 1) for _ in range(7)]
        # The eighth row fills the batch, which then runs without waiting out the timer.
        await asyncio.wait_for(asyncio.gather(first, *rest), timeout=20)
    assert observer.batches == [(8, 8)]


async def test_flush_releases_a_waiting_partial_batch():
    observer = RecordingObserver()
    with ThreadPoolExecutor(max_workers=1) as executor:
        batcher = DynamicBatcher(
            double, executor, max_batch_size=8, max_wait_s=60.0, observer=observer
        )
        waiting = asyncio.ensure_future(batcher.infer({"x": np.ones((2, 2), dtype=np.float32)}, 2))
        await asyncio.sleep(0)
        batcher.flush()
        result = await asyncio.wait_for(waiting, timeout=20)
    assert result["y"].shape == (2, 2)


async def test_a_failing_model_call_fails_every_request_in_the_batch():
    failing = True

    def sometimes_broken(feeds):
        if failing:
            raise RuntimeError("kernel exploded")
        return double(feeds)

    with ThreadPoolExecutor(max_workers=1) as executor:
        batcher = DynamicBatcher(
            sometimes_broken,
            executor,
            max_batch_size=8,
            max_wait_s=0.0,
            observer=RecordingObserver(),
        )
        outcomes = await asyncio.gather(
            *(batcher.infer({"x": np.ones((1, 2), dtype=np.float32)}, 1) for _ in range(3)),
            return_exceptions=True,
        )
        assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)
        # And the batcher keeps working afterwards.
        failing = False
        assert (await batcher.infer({"x": np.ones((1, 2), dtype=np.float32)}, 1))["y"][0, 0] == 2


async def test_unbatchable_models_run_one_request_per_call():
    observer = RecordingObserver()
    with ThreadPoolExecutor(max_workers=1) as executor:
        batcher = DynamicBatcher(
            double, executor, max_batch_size=8, max_wait_s=0.0, observer=observer, batchable=False
        )
        await asyncio.gather(
            *(batcher.infer({"x": np.ones((1, 2), dtype=np.float32)}, 1) for _ in range(3))
        )
    assert observer.batches == [(1, 1), (1, 1), (1, 1)]


async def test_light_traffic_runs_inline_on_the_loop_with_the_same_results():
    observer = RecordingObserver()
    calls_on_loop_thread = []
    loop_thread = threading.get_ident()

    def recording_double(feeds):
        calls_on_loop_thread.append(threading.get_ident() == loop_thread)
        return double(feeds)

    with ThreadPoolExecutor(max_workers=1) as executor:
        batcher = DynamicBatcher(
            recording_double,
            executor,
            max_batch_size=8,
            max_wait_s=0.0,
            observer=observer,
            inline_max_rows=2,
        )
        one_by_one = [
            await batcher.infer({"x": np.full((1, 2), i, dtype=np.float32)}, 1) for i in range(3)
        ]
        large = await batcher.infer({"x": np.ones((3, 2), dtype=np.float32)}, 3)
    assert [int(result["y"][0, 0]) for result in one_by_one] == [0, 2, 4]
    assert large["y"].shape == (3, 2)
    # Lone small requests after lone requests run inline; more rows than the limit do not.
    assert calls_on_loop_thread == [True, True, True, False]


async def test_an_inline_failure_reaches_the_caller():
    def broken(feeds):
        raise RuntimeError("inline kernel exploded")

    with ThreadPoolExecutor(max_workers=1) as executor:
        batcher = DynamicBatcher(
            broken,
            executor,
            max_batch_size=8,
            max_wait_s=0.0,
            observer=RecordingObserver(),
            inline_max_rows=4,
        )
        with pytest.raises(RuntimeError, match="inline kernel exploded"):
            await batcher.infer({"x": np.ones((1, 2), dtype=np.float32)}, 1)


async def test_requests_of_different_widths_in_one_burst_run_in_separate_calls():
    observer = RecordingObserver()
    with ThreadPoolExecutor(max_workers=1) as executor:
        batcher = DynamicBatcher(
            double, executor, max_batch_size=64, max_wait_s=0.0, observer=observer
        )
        narrow = [batcher.infer({"x": np.ones((1, 2), dtype=np.float32)}, 1) for _ in range(2)]
        wide = [batcher.infer({"x": np.ones((1, 5), dtype=np.float32)}, 1) for _ in range(2)]
        results = await asyncio.gather(*narrow, *wide)
    assert [result["y"].shape for result in results] == [(1, 2), (1, 2), (1, 5), (1, 5)]
    assert observer.batches == [(2, 2), (2, 2)]


class RecordingSink:
    def __init__(self) -> None:
        self.answered: list[tuple[int, int]] = []  # (requests, rows) per hand-off

    def batch_answered(self, batch, inputs, outputs) -> None:
        self.answered.append((len(batch), len(inputs["x"])))


async def test_a_batch_whose_outputs_cannot_be_split_fails_only_the_request_that_causes_it():
    """A request whose rows make the model drop rows (as an empty request did) cannot
    take the other requests of its batch down with it: they get their own right answers."""

    def drops_marked_rows(feeds):
        x = feeds["x"]
        return {"y": (x * 2)[x[:, 0] != -1]}  # rows marked -1 vanish from the output

    sink = RecordingSink()
    with ThreadPoolExecutor(max_workers=1) as executor:
        batcher = DynamicBatcher(
            drops_marked_rows,
            executor,
            max_batch_size=64,
            max_wait_s=0.0,
            observer=RecordingObserver(),
            sinks=(sink,),
        )
        good = [np.full((1 + i % 3, 2), i, dtype=np.float32) for i in range(6)]
        bad = np.full((2, 2), -1, dtype=np.float32)
        outcomes = await asyncio.gather(
            *(batcher.infer({"x": x}, len(x)) for x in good[:3]),
            batcher.infer({"x": bad}, 2),
            *(batcher.infer({"x": x}, len(x)) for x in good[3:]),
            return_exceptions=True,
        )
    for x, outcome in zip(good, outcomes[:3] + outcomes[4:], strict=True):
        assert not isinstance(outcome, BaseException), outcome
        np.testing.assert_array_equal(outcome["y"], x * 2)
    # Alone, the bad request's output has 0 rows for its 2: its own (odd) answer.
    assert not isinstance(outcomes[3], BaseException)
    assert outcomes[3]["y"].shape == (0, 2)
    # The drift sampler is offered each request that was answered, once.
    assert sorted(sink.answered) == sorted((1, len(x)) for x in [*good, bad])


async def test_a_request_that_makes_the_model_raise_fails_alone_in_its_batch():
    def refuses_negative(feeds):
        if (feeds["x"] < 0).any():
            raise RuntimeError("negative values are out of the model's range")
        return double(feeds)

    with ThreadPoolExecutor(max_workers=1) as executor:
        batcher = DynamicBatcher(
            refuses_negative,
            executor,
            max_batch_size=64,
            max_wait_s=0.0,
            observer=RecordingObserver(),
        )
        outcomes = await asyncio.gather(
            batcher.infer({"x": np.ones((2, 2), dtype=np.float32)}, 2),
            batcher.infer({"x": -np.ones((1, 2), dtype=np.float32)}, 1),
            batcher.infer({"x": np.full((3, 2), 3, dtype=np.float32)}, 3),
            return_exceptions=True,
        )
    assert isinstance(outcomes[1], RuntimeError)
    assert "out of the model's range" in str(outcomes[1])
    np.testing.assert_array_equal(outcomes[0]["y"], np.full((2, 2), 2))
    np.testing.assert_array_equal(outcomes[2]["y"], np.full((3, 2), 6))
