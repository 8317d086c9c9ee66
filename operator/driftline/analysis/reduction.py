"""Reduce a Prometheus instant query's ``data`` object to one number.

``data`` is the ``data`` member of the HTTP API's answer
(https://prometheus.io/docs/prometheus/latest/querying/api/#expression-query-result-formats):
``{"resultType": "scalar" | "vector" | "matrix" | "string", "result": ...}``. A gate needs
one number: a scalar, or a vector of exactly one sample. An empty vector or a NaN is no
data, never a pass (fluxcd/flagger#1035: a query that matched nothing let canaries
through); +Inf and -Inf are values (a ratio over zero requests is NaN, a latency beyond the
last bucket is +Inf), judged against the bounds like any other.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from driftline.analysis.types import NoData, Outcome, QueryError, Value

# How many series an error message lists before it says "and N more".
_LISTED_SERIES = 5
_SHOWN_CHARS = 200


def reduce_result(data: object, query: str) -> Outcome:
    """One number from an instant query's ``data``; NoData or QueryError otherwise."""
    if not isinstance(data, Mapping):
        return QueryError(f"query {query!r}: expected a data object, got {_shown(data)}")
    result_type = data.get("resultType")
    result = data.get("result")
    if result_type == "scalar":
        return _sample_value(result, query, "scalar")
    if result_type == "vector":
        return _reduce_vector(result, query)
    if result_type == "matrix":
        count = len(result) if isinstance(result, list) else "?"
        return QueryError(
            f"query {query!r} returned a range vector (matrix) of {count} series; a gate "
            "needs an instant vector of one series or a scalar (drop the [range] selector, "
            "or wrap it in rate() or *_over_time())"
        )
    if result_type == "string":
        return QueryError(f"query {query!r} returned a string ({_shown(result)}), not a number")
    return QueryError(f"query {query!r}: unknown resultType {_shown(result_type)}")


def _reduce_vector(result: object, query: str) -> Outcome:
    if not isinstance(result, list):
        return QueryError(f"query {query!r}: a vector's result is not a list: {_shown(result)}")
    if not result:
        return NoData(f"query {query!r} returned an empty vector (no series matched)")
    if len(result) > 1:
        listed = ", ".join(_series_name(series) for series in result[:_LISTED_SERIES])
        more = len(result) - _LISTED_SERIES
        tail = f" and {more} more" if more > 0 else ""
        return QueryError(
            f"query {query!r} returned {len(result)} series, a gate needs one "
            f"(aggregate them, e.g. with sum()): {listed}{tail}"
        )
    series = result[0]
    if not isinstance(series, Mapping):
        return QueryError(f"query {query!r}: a vector's sample is not an object: {_shown(series)}")
    if "value" not in series:
        what = "a native histogram" if "histogram" in series else _shown(series)
        return QueryError(f"query {query!r} returned {what}, not a number")
    return _sample_value(series["value"], query, f"series {_series_name(series)}")


def _sample_value(sample: object, query: str, what: str) -> Outcome:
    """``[<unix time>, "<value>"]`` -> the value; Prometheus sends the number as a string."""
    if not (isinstance(sample, Sequence) and not isinstance(sample, str) and len(sample) == 2):
        return QueryError(f"query {query!r}: {what} is not [time, value]: {_shown(sample)}")
    raw = sample[1]
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        return QueryError(
            f"query {query!r}: {what} has a value that is not a number: {_shown(raw)}"
        )
    try:
        value = float(raw)
    except ValueError:
        return QueryError(
            f"query {query!r}: {what} has a value that is not a number: {_shown(raw)}"
        )
    if math.isnan(value):
        return NoData(f"query {query!r} returned NaN ({what})")
    return Value(value)


def _series_name(series: Any) -> str:
    """A series as PromQL writes it: ``name{a="1", b="2"}``."""
    labels = series.get("metric") if isinstance(series, Mapping) else None
    if not isinstance(labels, Mapping):
        return _shown(series)
    name = str(labels.get("__name__", ""))
    matchers = ", ".join(
        f"{key}={json.dumps(str(value))}"
        for key, value in sorted(labels.items())
        if key != "__name__"
    )
    return f"{name}{{{matchers}}}"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."
