"""Built-in gates that need no PromQL: success rate and p99 latency of a track.

They read the serving containers' own ``/metrics`` text (Prometheus' text exposition) twice,
at the start and the end of a period, and judge what happened in between:

- ``driftline_inference_requests_total{model, version, track, outcome}``: the success rate
  is the increase of ``outcome="success"`` over the increase of all outcomes;
- ``driftline_request_duration_seconds`` (a histogram with the same identity labels): the
  p99 latency is estimated from the increase of its buckets as Prometheus'
  ``histogram_quantile`` does, by linear interpolation within the bucket that holds it.

A counter lower than before was reset (the process restarted): as in Prometheus'
``increase()``, the later value is then all the increase. Each is compared with bounds and
with the stable track over the same period: a canary's success rate may be lower than
stable's by at most a margin, its p99 higher than stable's by at most a factor. Too few
requests in the period is no data, never a pass.

Pure: the text is fetched by a provider at the edge.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Final, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from driftline.analysis.gates import GateSettings
from driftline.analysis.types import NoData, Outcome, QueryError, Value

# The serving container's metric names (driftline_serving.server.metrics).
REQUESTS_TOTAL: Final = "driftline_inference_requests_total"
REQUEST_DURATION_BUCKET: Final = "driftline_request_duration_seconds_bucket"
SUCCESS: Final = "success"

SUCCESS_RATE: Final = "success-rate"
SUCCESS_RATE_VS_STABLE: Final = "success-rate-vs-stable"
P99_LATENCY: Final = "p99-latency"
P99_LATENCY_VS_STABLE: Final = "p99-latency-vs-stable"

# A series is told apart by all its labels (sorted), as Prometheus does.
SeriesKey = tuple[tuple[str, str], ...]
K = TypeVar("K")


@dataclass(frozen=True)
class Snapshot:
    """One read of one serving container's /metrics: what the built-in gates need."""

    # REQUESTS_TOTAL per series (the key holds the outcome label)
    requests: Mapping[SeriesKey, float] = field(default_factory=dict)
    # per histogram series (its labels but `le`): cumulative count per bucket upper bound
    buckets: Mapping[SeriesKey, Mapping[float, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Window:
    """What a track served over a period, summed over its pods."""

    outcomes: Mapping[str, float] = field(default_factory=dict)  # outcome -> requests
    buckets: Mapping[float, float] = field(default_factory=dict)  # le -> cumulative count

    @property
    def requests(self) -> float:
        return sum(self.outcomes.values())

    @property
    def observed(self) -> float:
        """Requests in the latency histogram (answered ones; refused ones are not timed)."""
        return self.buckets.get(math.inf, 0.0)

    def __add__(self, other: Window) -> Window:
        return Window(_add(self.outcomes, other.outcomes), _add(self.buckets, other.buckets))


def read_exposition(text: str, match: Mapping[str, str] | None = None) -> Snapshot | QueryError:
    """The request counters and latency buckets of the series whose labels include ``match``
    (e.g. ``{"track": "canary", "version": "churn-v2"}``)."""
    wanted = dict(match or {})
    requests: dict[SeriesKey, float] = {}
    buckets: dict[SeriesKey, dict[float, float]] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name not in (REQUESTS_TOTAL, REQUEST_DURATION_BUCKET):
                    continue
                labels = dict(sample.labels)
                if not wanted.items() <= labels.items():
                    continue
                value = float(sample.value)
                if math.isnan(value) or value < 0:
                    return QueryError(f"{sample.name}{_labels(labels)} is {value}, not a count")
                if sample.name == REQUESTS_TOTAL:
                    requests[_key(labels)] = value
                    continue
                bound = float(labels.pop("le", "nan"))
                if math.isnan(bound):
                    return QueryError(f"{sample.name}{_labels(labels)} has no numeric le label")
                buckets.setdefault(_key(labels), {})[bound] = value
    except ValueError as error:
        return QueryError(f"cannot read the metrics text: {error}")
    for key, series in buckets.items():
        if math.inf not in series:
            return QueryError(f"{REQUEST_DURATION_BUCKET}{_labels(dict(key))} has no +Inf bucket")
    return Snapshot(requests, buckets)


def increase(before: Snapshot | None, after: Snapshot) -> Window:
    """What one pod served between two reads; ``before`` None for a pod that started since.

    A counter lower than before was reset, and then its later value is the increase (as
    Prometheus' increase() treats resets). A histogram is reset as a whole when any of its
    buckets went down: they all restarted with the process, and keeping the buckets that
    happened to grow past their old value would make the histogram inconsistent.
    """
    earlier = before or Snapshot()
    outcomes: dict[str, float] = {}
    for key, value in after.requests.items():
        previous = earlier.requests.get(key, 0.0)
        grown = value - previous if value >= previous else value
        outcome = dict(key).get("outcome", "")
        outcomes[outcome] = outcomes.get(outcome, 0.0) + grown
    buckets: dict[float, float] = {}
    for key, series in after.buckets.items():
        previous_series = earlier.buckets.get(key, {})
        reset = any(series.get(bound, 0.0) < count for bound, count in previous_series.items())
        for bound, count in series.items():
            grown = count if reset else count - previous_series.get(bound, 0.0)
            buckets[bound] = buckets.get(bound, 0.0) + grown
    return Window(outcomes, buckets)


def total(windows: Iterable[Window]) -> Window:
    """A track's window: the sum over its pods'."""
    result = Window()
    for window in windows:
        result = result + window
    return result


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float:
    """The q-quantile of cumulative bucket counts, as Prometheus' histogram_quantile
    (promql/quantile.go, bucketQuantile): the bucket holding rank q*count is found and the
    value interpolated linearly within it; the first bucket starts at 0 (unless its upper
    bound is not positive), and a rank in the +Inf bucket gives the highest finite bound.
    NaN where there is no +Inf bucket, fewer than two buckets, or no observation."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets.items())
    if not ordered or ordered[-1][0] != math.inf or len(ordered) < 2:
        return math.nan
    # counts may go down between buckets through rounding or a scrape racing updates;
    # Prometheus makes them monotonic the same way
    monotonic: list[tuple[float, float]] = []
    highest = 0.0
    for bound, count in ordered:
        highest = max(highest, count)
        monotonic.append((bound, highest))
    observations = monotonic[-1][1]
    if observations == 0:
        return math.nan
    rank = q * observations
    index = next(
        (i for i, (_, count) in enumerate(monotonic[:-1]) if count >= rank), len(monotonic) - 1
    )
    if index == len(monotonic) - 1:
        return monotonic[-2][0]
    upper, count = monotonic[index]
    if index == 0 and upper <= 0:
        return upper
    lower = 0.0
    if index > 0:
        lower, below = monotonic[index - 1]
        count -= below
        rank -= below
    if count == 0:
        # only q = 0 with an empty first bucket gets here; Go's 0/0 makes Prometheus' NaN
        return math.nan
    return lower + (upper - lower) * (rank / count)


def success_rate(window: Window, min_requests: int) -> Outcome:
    """Successful requests over all requests in the period."""
    requests = window.requests
    if requests < min_requests:
        return NoData(_too_few(requests, min_requests))
    return Value(window.outcomes.get(SUCCESS, 0.0) / requests)


def p99_latency(window: Window, min_requests: int) -> Outcome:
    """The 99th percentile of request latency in the period, in seconds."""
    observed = window.observed
    if observed < min_requests:
        return NoData(_too_few(observed, min_requests, "timed "))
    value = histogram_quantile(0.99, window.buckets)
    if math.isnan(value):
        return NoData("the latency histogram holds no usable buckets")
    return Value(value)


def success_rate_drop(canary: Window, stable: Window, min_requests: int) -> Outcome:
    """How much lower the canary's success rate is than stable's (negative when higher)."""
    canary_rate = success_rate(canary, min_requests)
    stable_rate = success_rate(stable, min_requests)
    if not isinstance(canary_rate, Value):
        return canary_rate
    if not isinstance(stable_rate, Value):
        return NoData(f"stable: {_reason(stable_rate)}")
    return Value(stable_rate.value - canary_rate.value)


def p99_ratio(canary: Window, stable: Window, min_requests: int) -> Outcome:
    """The canary's p99 latency as a multiple of stable's over the same period."""
    canary_p99 = p99_latency(canary, min_requests)
    stable_p99 = p99_latency(stable, min_requests)
    if not isinstance(canary_p99, Value):
        return canary_p99
    if not isinstance(stable_p99, Value):
        return NoData(f"stable: {_reason(stable_p99)}")
    if stable_p99.value <= 0:
        # only a histogram whose first bucket bound is not positive gets here
        return Value(1.0 if canary_p99.value <= 0 else math.inf)
    return Value(canary_p99.value / stable_p99.value)


@dataclass(frozen=True)
class BuiltinThresholds:
    """Bounds of the built-in gates; a bound of None leaves that gate out."""

    min_requests: int = 50
    min_success_rate: float | None = 0.99
    max_success_rate_drop: float | None = 0.01
    max_p99_seconds: float | None = None
    max_p99_ratio: float | None = 1.5

    def __post_init__(self) -> None:
        if self.min_requests < 1:
            raise ValueError(f"min_requests must be at least 1, not {self.min_requests}")
        if self.min_success_rate is not None and not 0 <= self.min_success_rate <= 1:
            raise ValueError(f"min_success_rate must be within [0, 1], not {self.min_success_rate}")
        for name in ("max_success_rate_drop", "max_p99_seconds", "max_p99_ratio"):
            bound = getattr(self, name)
            if bound is not None and not bound >= 0:
                raise ValueError(f"{name} must not be negative, not {bound}")


def builtin_gates(
    thresholds: BuiltinThresholds,
    interval_seconds: float,
    count: int,
    failure_limit: int = 0,
    compare_with_stable: bool = True,
) -> tuple[GateSettings, ...]:
    """The built-in gates' settings, one per bound set (without the comparisons with
    stable when there is none to compare with)."""
    gate = partial(
        GateSettings, interval_seconds=interval_seconds, count=count, failure_limit=failure_limit
    )
    gates = []
    if thresholds.min_success_rate is not None:
        gates.append(gate(SUCCESS_RATE, min=thresholds.min_success_rate))
    if compare_with_stable and thresholds.max_success_rate_drop is not None:
        gates.append(gate(SUCCESS_RATE_VS_STABLE, max=thresholds.max_success_rate_drop))
    if thresholds.max_p99_seconds is not None:
        gates.append(gate(P99_LATENCY, max=thresholds.max_p99_seconds))
    if compare_with_stable and thresholds.max_p99_ratio is not None:
        gates.append(gate(P99_LATENCY_VS_STABLE, max=thresholds.max_p99_ratio))
    return tuple(gates)


def measure_builtin(canary: Window, stable: Window | None, min_requests: int) -> dict[str, Outcome]:
    """Every built-in gate's measurement over one period, by gate name."""
    missing = NoData("there is no stable track to compare with")
    return {
        SUCCESS_RATE: success_rate(canary, min_requests),
        SUCCESS_RATE_VS_STABLE: (
            success_rate_drop(canary, stable, min_requests) if stable is not None else missing
        ),
        P99_LATENCY: p99_latency(canary, min_requests),
        P99_LATENCY_VS_STABLE: (
            p99_ratio(canary, stable, min_requests) if stable is not None else missing
        ),
    }


def _add(left: Mapping[K, float], right: Mapping[K, float]) -> dict[K, float]:
    summed = dict(left)
    for key, value in right.items():
        summed[key] = summed.get(key, 0.0) + value
    return summed


def _key(labels: Mapping[str, str]) -> SeriesKey:
    return tuple(sorted(labels.items()))


def _labels(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{key}="{value}"' for key, value in sorted(labels.items())) + "}"


def _too_few(requests: float, minimum: int, kind: str = "") -> str:
    return f"only {requests:g} {kind}requests in the period, fewer than the minimum {minimum}"


def _reason(outcome: Outcome) -> str:
    if isinstance(outcome, NoData):
        return outcome.reason
    if isinstance(outcome, QueryError):
        return outcome.message
    return str(outcome.value)
