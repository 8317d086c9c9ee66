from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline_serving.sampling.codec import (
    PREFIX_SIZE,
    CodecError,
    Feedback,
    SampleBatch,
    decode,
    encode,
    encode_blocks,
    frame_length,
    header_length,
)


def batch(rows: int = 3) -> SampleBatch:
    rng = np.random.default_rng(0)
    return SampleBatch(
        model_version="churn-v2",
        request_ids=[f"r{i}" for i in range(rows)],
        received_at=np.arange(rows, dtype=np.float64) + 1.7e9,
        inputs={
            "x": rng.normal(size=(rows, 4)).astype(np.float32),
            "k": np.arange(rows, dtype=np.int64),
        },
        outputs={"probabilities": rng.random((rows, 3)).astype(np.float32)},
    )


def test_row_blocks_are_joined_into_one_array_of_each_kind() -> None:
    wide = np.arange(48, dtype=np.float32).reshape(6, 8)
    x = wide[:, :4].copy()
    blocks = [x[:2], x[2:3], x[[3, 4]], wide[5:6, ::2]]  # views, a copy, a strided block
    big_endian = np.arange(6, dtype=">i4")
    frame = encode_blocks(
        "v1",
        [f"r{i}" for i in range(6)],
        np.arange(6, dtype=np.float64),
        {"x": blocks, "k": [big_endian[:3], big_endian[3:]]},
        {"y": [np.ones((6, 2))]},
    )
    decoded = decode(frame)
    assert isinstance(decoded, SampleBatch)
    expected_x = np.concatenate([np.ascontiguousarray(b) for b in blocks])
    np.testing.assert_array_equal(decoded.inputs["x"], expected_x)
    np.testing.assert_array_equal(decoded.inputs["k"], np.arange(6))
    assert decoded.inputs["k"].dtype == np.dtype("<i4")
    assert decoded.outputs["y"].shape == (6, 2)


def test_row_blocks_that_disagree_are_refused() -> None:
    ids, times = ["a", "b"], np.zeros(2)
    mixed = {"x": [np.zeros((1, 2), np.float32), np.zeros((1, 2), np.int32)]}
    with pytest.raises(CodecError, match="different dtypes"):
        encode_blocks("v", ids, times, mixed, {})
    too_few = {"x": [np.zeros((1, 2), np.float32)]}
    with pytest.raises(CodecError, match="do not hold 2 rows"):
        encode_blocks("v", ids, times, too_few, {})


def test_round_trip_keeps_every_array_exactly() -> None:
    original = batch()
    frame = encode(original)
    assert frame_length(frame) == len(frame)
    decoded = decode(frame)
    assert isinstance(decoded, SampleBatch)
    assert decoded.request_ids == original.request_ids and decoded.model_version == "churn-v2"
    for group in ("inputs", "outputs"):
        for name, array in getattr(original, group).items():
            got = getattr(decoded, group)[name]
            assert got.dtype == array.dtype and np.array_equal(got, array)
    assert np.array_equal(decoded.received_at, original.received_at)


@settings(max_examples=50, deadline=None)
@given(
    rows=st.integers(0, 40),
    width=st.integers(1, 8),
    dtype=st.sampled_from(["<f4", "<f8", "<i4", "<i8", "|b1", "<u2"]),
)
def test_round_trip_any_shape_and_dtype(rows: int, width: int, dtype: str) -> None:
    values = (np.arange(rows * width) % 7).astype(dtype).reshape(rows, width)
    message = SampleBatch("v", [str(i) for i in range(rows)], np.zeros(rows), {"x": values}, {})
    decoded = decode(encode(message))
    assert isinstance(decoded, SampleBatch)
    assert np.array_equal(decoded.inputs["x"], values) and decoded.inputs["x"].dtype == values.dtype


def test_feedback_round_trip() -> None:
    decoded = decode(encode(Feedback(["a", "b:1"], [1, "cat"])))
    assert decoded == Feedback(["a", "b:1"], [1, "cat"])


def test_object_arrays_are_refused() -> None:
    message = SampleBatch("v", ["a"], np.zeros(1), {"x": np.array([{"evil": 1}], dtype=object)}, {})
    with pytest.raises(CodecError, match="cannot be sampled"):
        encode(message)


def test_row_count_mismatch_is_refused() -> None:
    message = SampleBatch("v", ["a", "b"], np.zeros(2), {"x": np.zeros((3, 2), np.float32)}, {})
    with pytest.raises(CodecError, match="expected 2 rows"):
        encode(message)


@pytest.mark.parametrize(
    ("mangle", "match"),
    [
        (lambda f: b"XXXX" + f[4:], "bad magic"),
        (lambda f: f[: PREFIX_SIZE - 1], "truncated frame prefix"),
        (lambda f: f[:-1], "truncated array"),
        (lambda f: f + b"\0", "trailing bytes"),
        (
            lambda f: (
                f[:PREFIX_SIZE] + b"{" * header_length(f) + f[PREFIX_SIZE + header_length(f) :]
            ),
            "not JSON",
        ),
        (lambda f: f.replace(b'"<f4"', b'"|O8"'), "not allowed"),
    ],
)
def test_malformed_frames_raise_codec_error(mangle, match: str) -> None:
    with pytest.raises(CodecError, match=match):
        decode(mangle(encode(batch())))
