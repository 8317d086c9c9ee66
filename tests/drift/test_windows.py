"""Count- and time-based windows, and rows of the wrong width."""

from __future__ import annotations

import numpy as np
import pytest

from driftline_serving.drift.schema import Schema
from driftline_serving.drift.windows import SampleWindow, columns_from_rows

SCHEMA = Schema.of([("x", "numeric"), ("c", "categorical")])


def batch(start: int, rows: int) -> dict:
    return {
        "x": np.arange(start, start + rows, dtype=float),
        "c": [f"k{i % 3}" for i in range(rows)],
    }


def test_count_window_keeps_the_newest_rows_in_order():
    window = SampleWindow(SCHEMA, size=5, min_samples=3)
    window.add(batch(0, 2), timestamp=0)
    assert not window.ready()
    window.add(batch(2, 2), timestamp=1)
    assert window.ready()
    window.add(batch(4, 3), timestamp=2)
    assert len(window) == 5
    assert window.snapshot()["x"].tolist() == [2, 3, 4, 5, 6]


def test_batch_larger_than_the_window_keeps_its_tail():
    window = SampleWindow(SCHEMA, size=4, min_samples=1)
    window.add(batch(0, 10), timestamp=0)
    assert window.snapshot()["x"].tolist() == [6, 7, 8, 9]


def test_time_window_forgets_old_rows():
    window = SampleWindow(SCHEMA, size=100, min_samples=3, max_age_seconds=60)
    window.add(batch(0, 3), timestamp=1000)
    window.add(batch(3, 2), timestamp=1050)
    assert window.ready(now=1055)
    assert window.snapshot(now=1070)["x"].tolist() == [3, 4]  # the first batch is 70 s old
    assert not window.ready(now=1070)
    assert window.expire(now=2000) == 2
    assert len(window) == 0


def test_unparseable_numbers_become_nan():
    window = SampleWindow(SCHEMA, size=10, min_samples=1)
    window.add({"x": ["1.5", "bad", None], "c": ["a", "b", "c"]}, timestamp=0)
    x = window.snapshot()["x"]
    assert x[0] == 1.5 and np.isnan(x[1]) and np.isnan(x[2])


def test_settings_are_checked():
    with pytest.raises(ValueError, match="min_samples"):
        SampleWindow(SCHEMA, size=10, min_samples=11)
    with pytest.raises(ValueError, match="size"):
        SampleWindow(SCHEMA, size=0, min_samples=1)
    with pytest.raises(ValueError, match="column"):
        SampleWindow(SCHEMA, size=10, min_samples=1).add({"x": [1.0]}, timestamp=0)


def test_rows_of_the_wrong_width_are_counted_not_fatal():
    rows = [
        [1.0, "a"],
        [2.0],
        [3.0, "b", "extra"],
        {"x": 4.0, "c": "c"},
        {"x": 5.0},
        "nonsense",
        [float("nan"), "d"],
    ]
    result = columns_from_rows(rows, SCHEMA)
    assert result.invalid_rows == 4
    assert result.columns["x"][:2].tolist() == [1.0, 4.0]
    assert np.isnan(result.columns["x"][2])
    assert result.columns["c"].tolist() == ["a", "c", "d"]
