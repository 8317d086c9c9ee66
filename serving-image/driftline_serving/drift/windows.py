"""Live windows of sampled traffic: the most recent `size` rows, optionally no older
than `max_age_seconds`, ready for a verdict once they hold `min_samples` rows.

A window is a ring buffer per column (numbers in float64, categories as Python
objects), so adding a batch and taking a snapshot cost O(batch) and O(size), and memory
is fixed by `size`. Time is passed in by the caller, which keeps the window pure to test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from driftline_serving.drift.schema import FeatureType, Schema
from driftline_serving.drift.values import as_float


@dataclass(frozen=True)
class Rows:
    """Rows split into columns, with the rows that did not fit the schema counted."""

    columns: dict[str, NDArray[Any]]
    invalid_rows: int


def columns_from_rows(rows: Sequence[Any], schema: Schema) -> Rows:
    """Turn row lists (in schema order) or row mappings into columns.

    A row of the wrong width, a mapping without every feature, or anything that is not a
    row at all, is dropped and counted; it never stops the rest.
    """
    names = schema.names
    width = len(names)
    kept: list[Any] = []
    invalid = 0
    for row in rows:
        if isinstance(row, Mapping):
            if all(name in row for name in names):
                kept.append([row[name] for name in names])
            else:
                invalid += 1
        elif (
            isinstance(row, Sequence | np.ndarray)
            and not isinstance(row, str | bytes)
            and len(row) == width
        ):
            kept.append(row)
        else:
            invalid += 1
    columns: dict[str, NDArray[Any]] = {}
    for index, feature in enumerate(schema.features):
        values = [row[index] for row in kept]
        if feature.type is FeatureType.NUMERIC:
            columns[feature.name] = _numbers(values)
        else:
            columns[feature.name] = np.array(values, dtype=object)
    return Rows(columns, invalid)


def _numbers(values: list[Any]) -> NDArray[np.float64]:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        # keep the bad ones as objects: the evaluation counts them as unparseable
        return np.array(values, dtype=object)


class SampleWindow:
    def __init__(
        self,
        schema: Schema,
        size: int = 1000,
        min_samples: int = 100,
        max_age_seconds: float | None = None,
    ) -> None:
        if size < 1:
            raise ValueError("window size must be at least 1")
        if not 1 <= min_samples <= size:
            raise ValueError(f"min_samples must be between 1 and the window size ({size})")
        if max_age_seconds is not None and max_age_seconds <= 0:
            raise ValueError("max_age_seconds must be positive")
        self.schema = schema
        self.size = size
        self.min_samples = min_samples
        self.max_age_seconds = max_age_seconds
        self._columns: dict[str, NDArray[Any]] = {
            f.name: np.full(size, np.nan)
            if f.type is FeatureType.NUMERIC
            else np.full(size, None, dtype=object)
            for f in schema.features
        }
        self._times = np.full(size, -np.inf)
        self._next = 0  # slot the next row goes to
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def ready(self, now: float | None = None) -> bool:
        if now is not None:
            self.expire(now)
        return self._count >= self.min_samples

    def add(self, columns: Mapping[str, Any], timestamp: float) -> None:
        """Add equally long columns observed at `timestamp` (seconds, any epoch)."""
        lengths = {len(columns[name]) for name in self.schema.names if name in columns}
        if len(lengths) != 1 or any(name not in columns for name in self.schema.names):
            raise ValueError("add() needs one equally long column per schema feature")
        rows = lengths.pop()
        if rows == 0:
            return
        if rows > self.size:  # only the newest rows can stay
            columns = {name: columns[name][-self.size :] for name in self.schema.names}
            rows = self.size
        slots = (self._next + np.arange(rows)) % self.size
        for feature in self.schema.features:
            values = columns[feature.name]
            target = self._columns[feature.name]
            if feature.type is FeatureType.NUMERIC:
                # unparseable values become NaN here; the evaluation counts them as missing
                target[slots] = as_float(values)[0]
            else:
                target[slots] = np.asarray(values, dtype=object)
        self._times[slots] = timestamp
        self._next = int((self._next + rows) % self.size)
        self._count = min(self.size, self._count + rows)

    def expire(self, now: float) -> int:
        """Forget rows older than max_age_seconds; returns how many were dropped."""
        if self.max_age_seconds is None or self._count == 0:
            return 0
        order = self._order()
        old = self._times[order] < now - self.max_age_seconds
        dropped = int(old.sum())  # rows are in time order, so the old ones come first
        if dropped:
            self._times[order[:dropped]] = -np.inf
            self._count -= dropped
        return dropped

    def snapshot(self, now: float | None = None) -> dict[str, NDArray[Any]]:
        """The window's rows, oldest first, as columns."""
        if now is not None:
            self.expire(now)
        order = self._order()
        return {name: column[order].copy() for name, column in self._columns.items()}

    def _order(self) -> NDArray[np.int64]:
        start = (self._next - self._count) % self.size
        return (start + np.arange(self._count)) % self.size
