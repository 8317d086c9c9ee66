"""The built-in gates through Prometheus: the same windows as two reads of the pods'
/metrics give, from two instant queries over the measurement interval.

The serving series carry `version` (the ModelVersion's name) and `track` labels of their
own; `namespace` is the target label every Kubernetes scrape configuration adds (the
ServiceMonitor and PodMonitor of the chart, or a `kubernetes_sd_configs` relabelling).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from driftline.analysis.builtin import REQUEST_DURATION_BUCKET, REQUESTS_TOTAL, Window
from driftline.analysis.types import QueryError


def _matchers(namespace: str, version: str, track: str) -> str:
    labels = {"namespace": namespace, "version": version, "track": track}
    for name, value in labels.items():
        if not value or any(c in value for c in '"\\\n'):
            raise ValueError(f"label {name} value {value!r} cannot be used in a matcher")
    return ",".join(f'{name}="{value}"' for name, value in labels.items())


def outcomes_query(namespace: str, version: str, track: str, seconds: int) -> str:
    """Requests per outcome over the last `seconds`, summed over the track's pods."""
    matchers = _matchers(namespace, version, track)
    return f"sum by (outcome) (increase({REQUESTS_TOTAL}{{{matchers}}}[{seconds}s]))"


def buckets_query(namespace: str, version: str, track: str, seconds: int) -> str:
    """The latency histogram's increase per bucket over the last `seconds`."""
    matchers = _matchers(namespace, version, track)
    return f"sum by (le) (increase({REQUEST_DURATION_BUCKET}{{{matchers}}}[{seconds}s]))"


def window_from_results(outcomes: Any, buckets: Any) -> Window | QueryError:
    """A track's window from the two queries' `data` objects (instant vectors; an empty
    vector is a track that served nothing, which the gates judge as too few requests)."""
    by_outcome = _vector(outcomes, "outcome")
    if isinstance(by_outcome, QueryError):
        return by_outcome
    by_le = _vector(buckets, "le")
    if isinstance(by_le, QueryError):
        return by_le
    try:
        bounds = {_bound(le): value for le, value in by_le.items()}
    except ValueError as error:
        return QueryError(f"latency histogram: {error}")
    return Window(outcomes=by_outcome, buckets=bounds)


def _bound(le: str) -> float:
    bound = float(le)  # "+Inf" reads as inf
    if math.isnan(bound):
        raise ValueError(f"bucket bound {le!r} is not a number")
    return bound


def _vector(data: Any, label: str) -> dict[str, float] | QueryError:
    if not isinstance(data, Mapping) or data.get("resultType") != "vector":
        shown = data.get("resultType") if isinstance(data, Mapping) else type(data).__name__
        return QueryError(f"expected an instant vector by {label}, got {shown}")
    values: dict[str, float] = {}
    for series in data.get("result") or []:
        try:
            key = str(series["metric"].get(label, ""))
            value = float(series["value"][1])
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            return QueryError(f"a series by {label} is malformed: {str(series)[:200]}")
        if math.isnan(value):
            continue  # no samples in the window for that series: nothing happened
        values[key] = values.get(key, 0.0) + value
    return values
