"""Turning raw columns into what the tests use, counting what cannot be used.

Live traffic and user files hold NaN, infinities, strings in numeric columns, missing
categories and values of the wrong type. None of that may stop an evaluation: every
such value is dropped and counted, so that the report says how much was unusable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class NumericColumn:
    finite: FloatArray  # the usable values, in input order
    nan: int  # NaN or missing
    infinite: int  # +inf or -inf
    unparseable: int  # values that are not numbers at all


def numeric_column(values: Any) -> NumericColumn:
    """Coerce a column to float64; NaN, infinities and non-numbers are counted and dropped."""
    array, unparseable = as_float(values)
    if np.isfinite(array).all():  # the usual case: one pass, no copy
        return NumericColumn(array, 0, 0, 0)
    is_nan = np.isnan(array)
    is_inf = np.isinf(array)
    finite = array[~(is_nan | is_inf)] if (is_nan.any() or is_inf.any()) else array
    return NumericColumn(finite, int(is_nan.sum()) - unparseable, int(is_inf.sum()), unparseable)


def as_float(values: Any) -> tuple[FloatArray, int]:
    array = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if array.ndim != 1:
        array = array.reshape(-1)
    if array.dtype.kind in "fiub":
        return array.astype(np.float64, copy=False), 0
    try:
        return array.astype(np.float64), 0
    except (TypeError, ValueError):
        pass
    # mixed or textual column: parse one by one, only on this rare path
    out = np.empty(array.size, dtype=np.float64)
    unparseable = 0
    for index, item in enumerate(array.tolist()):
        if item is None or item == "":
            out[index] = np.nan
            continue
        try:
            out[index] = float(item)
        except (TypeError, ValueError):
            out[index] = np.nan
            unparseable += 1
    return out, unparseable


@dataclass(frozen=True)
class CategoricalColumn:
    labels: tuple[str, ...]  # distinct categories, as strings
    counts: NDArray[np.int64]  # occurrences of each label
    missing: int  # None, NaN or empty string


def categorical_column(values: Any) -> CategoricalColumn:
    """Count categories; the same value gives the same label whatever its input type.

    Whole floats are labelled like integers (CSV readers turn an integer column with a
    gap into floats), so that 3, 3.0 and "3" are one category.
    """
    array = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if array.ndim != 1:
        array = array.reshape(-1)
    if array.dtype.kind in "iub":
        uniques, counts = np.unique(array, return_counts=True)
        return CategoricalColumn(tuple(str(int(u)) for u in uniques), counts, 0)
    if array.dtype.kind == "f":
        usable = np.isfinite(array)
        uniques, counts = np.unique(array[usable], return_counts=True)
        return CategoricalColumn(
            tuple(_float_label(u) for u in uniques), counts, int((~usable).sum())
        )
    if array.dtype.kind == "U":
        present = array != ""
        uniques, counts = np.unique(array[present], return_counts=True)
        return CategoricalColumn(tuple(str(u) for u in uniques), counts, int((~present).sum()))
    return _object_column(array.tolist())


def _float_label(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _object_column(items: Sequence[Any]) -> CategoricalColumn:
    tally: dict[str, int] = {}
    missing = 0
    for item in items:
        if item is None or item == "" or (isinstance(item, float) and not np.isfinite(item)):
            missing += 1
            continue
        if isinstance(item, float):
            label = _float_label(item)
        elif isinstance(item, bytes):
            label = item.decode("utf-8", "replace")
        else:
            label = str(item)
        tally[label] = tally.get(label, 0) + 1
    labels = tuple(sorted(tally))
    return CategoricalColumn(labels, np.array([tally[k] for k in labels], dtype=np.int64), missing)
