"""Built-in gates from the serving container's own /metrics text.

The text is produced by the real metrics module of the data plane
(driftline_serving.server.metrics.ServerMetrics), driven as the server drives it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.analysis.builtin import (
    P99_LATENCY,
    P99_LATENCY_VS_STABLE,
    SUCCESS_RATE,
    SUCCESS_RATE_VS_STABLE,
    BuiltinThresholds,
    Snapshot,
    Window,
    builtin_gates,
    histogram_quantile,
    increase,
    measure_builtin,
    p99_latency,
    p99_ratio,
    read_exposition,
    success_rate,
    success_rate_drop,
    total,
)
from driftline.analysis.gates import next_measurement_at, record, start, verdict
from driftline.analysis.types import NoData, QueryError, Value
from driftline_serving.server.metrics import LATENCY_BUCKETS_S, ServerMetrics

CANARY = {"track": "canary", "version": "churn-v2"}
STABLE = {"track": "stable", "version": "churn-v1"}


def server(track: str = "canary", version: str = "churn-v2") -> ServerMetrics:
    return ServerMetrics("churn", "1", version, track)


def serve(metrics: ServerMetrics, outcome: str, seconds: float, times: int = 1) -> None:
    for _ in range(times):
        if outcome in ("success", "error", "unavailable"):
            metrics.request_started()
            metrics.request_finished(outcome, seconds)
        else:
            metrics.request_refused(outcome)


def read(metrics: ServerMetrics, match: dict[str, str] | None = None) -> Snapshot:
    snapshot = read_exposition(metrics.exposition().decode(), match)
    assert isinstance(snapshot, Snapshot), snapshot
    return snapshot


def test_the_exposition_is_read_into_counters_and_buckets() -> None:
    metrics = server()
    serve(metrics, "success", 0.002, times=3)
    serve(metrics, "bad_request", 0, times=2)
    snapshot = read(metrics, CANARY)
    by_outcome = {dict(key)["outcome"]: value for key, value in snapshot.requests.items()}
    assert by_outcome["success"] == 3 and by_outcome["bad_request"] == 2
    assert by_outcome["error"] == 0
    [buckets] = snapshot.buckets.values()
    assert set(buckets) == {*LATENCY_BUCKETS_S, math.inf}
    assert buckets[0.0015] == 0 and buckets[0.002] == 3 and buckets[math.inf] == 3


def test_series_of_other_tracks_are_left_out() -> None:
    metrics = server()
    serve(metrics, "success", 0.002)
    assert read(metrics, STABLE) == Snapshot()


def test_the_success_rate_is_over_the_period_only() -> None:
    metrics = server()
    serve(metrics, "error", 0.01, times=40)  # before the period: not counted
    before = read(metrics, CANARY)
    serve(metrics, "success", 0.002, times=95)
    serve(metrics, "error", 0.01, times=3)
    serve(metrics, "bad_request", 0, times=2)
    window = increase(before, read(metrics, CANARY))
    assert window.requests == 100
    assert success_rate(window, min_requests=50) == Value(0.95)


def test_too_few_requests_are_no_data() -> None:
    metrics = server()
    before = read(metrics, CANARY)
    serve(metrics, "success", 0.002, times=9)
    window = increase(before, read(metrics, CANARY))
    outcome = success_rate(window, min_requests=10)
    assert isinstance(outcome, NoData) and "only 9 requests" in outcome.reason
    assert isinstance(p99_latency(window, min_requests=10), NoData)


def test_no_requests_at_all_are_no_data_never_a_rate() -> None:
    metrics = server()
    window = increase(read(metrics, CANARY), read(metrics, CANARY))
    assert isinstance(success_rate(window, min_requests=1), NoData)
    assert isinstance(p99_latency(window, min_requests=1), NoData)


def test_a_counter_reset_counts_the_new_value_as_the_increase() -> None:
    old = server()
    serve(old, "success", 0.002, times=500)
    before = read(old, CANARY)
    restarted = server()  # the process restarted: its counters start from zero
    serve(restarted, "success", 0.002, times=60)
    serve(restarted, "error", 0.3, times=40)
    window = increase(before, read(restarted, CANARY))
    assert window.requests == 100
    assert window.outcomes["success"] == 60
    assert window.observed == 100
    assert success_rate(window, min_requests=50) == Value(0.6)


def test_a_histogram_reset_restarts_every_bucket() -> None:
    old = server()
    serve(old, "success", 0.002, times=50)
    before = read(old, CANARY)
    restarted = server()
    serve(restarted, "success", 0.2, times=60)  # le=0.25 grew past its old 50
    window = increase(before, read(restarted, CANARY))
    assert window.buckets[0.25] == 60 and window.buckets[0.002] == 0
    assert window.buckets[math.inf] == 60


def test_a_pod_that_started_in_the_period_counts_from_zero() -> None:
    metrics = server()
    serve(metrics, "success", 0.002, times=7)
    assert increase(None, read(metrics, CANARY)).requests == 7


def test_the_pods_of_a_track_are_summed() -> None:
    pods = [server(), server()]
    befores = [read(pod, CANARY) for pod in pods]
    serve(pods[0], "success", 0.002, times=30)
    serve(pods[1], "error", 0.002, times=10)
    window = total(increase(b, read(p, CANARY)) for b, p in zip(befores, pods, strict=True))
    assert window.requests == 40 and window.observed == 40
    assert success_rate(window, min_requests=40) == Value(0.75)


def test_p99_interpolates_within_the_bucket_as_histogram_quantile() -> None:
    metrics = server()
    before = read(metrics, CANARY)
    serve(metrics, "success", 0.0018, times=98)  # le=0.002
    serve(metrics, "success", 0.04, times=2)  # le=0.05, the bucket after 0.03
    window = increase(before, read(metrics, CANARY))
    # rank 99 lies halfway through the 2 observations of (0.03, 0.05]
    outcome = p99_latency(window, min_requests=50)
    assert isinstance(outcome, Value)
    assert outcome.value == pytest.approx(0.04)


def test_p99_in_the_inf_bucket_is_the_highest_finite_bound() -> None:
    metrics = server()
    serve(metrics, "success", 9.0, times=100)
    outcome = p99_latency(increase(None, read(metrics, CANARY)), min_requests=1)
    assert outcome == Value(LATENCY_BUCKETS_S[-1])


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, {1.0: 10, math.inf: 10}, 0.5),  # the first bucket starts at 0
        (0.5, {-1.0: 10, math.inf: 10}, -1.0),  # ... unless its bound is not positive
        (0.99, {1.0: 0, 2.0: 0, math.inf: 0}, math.nan),  # no observation
        (0.99, {1.0: 3, 2.0: 5}, math.nan),  # no +Inf bucket
        (0.99, {math.inf: 5}, math.nan),  # fewer than two buckets
        (0.75, {1.0: 4, 2.0: 2, 3.0: 8, math.inf: 8}, 2.5),  # made monotonic: 4, 4, 8
        (-0.1, {1.0: 1, math.inf: 1}, -math.inf),
        (1.1, {1.0: 1, math.inf: 1}, math.inf),
        (math.nan, {1.0: 1, math.inf: 1}, math.nan),
        (1.0, {1.0: 1, 2.0: 2, math.inf: 2}, 2.0),
        (0.0, {1.0: 1, 2.0: 2, math.inf: 2}, 0.0),
        (0.0, {1.0: 0, 2.0: 2, math.inf: 2}, math.nan),  # 0/0 in Prometheus too
    ],
)
def test_histogram_quantile_edge_cases(
    q: float, buckets: dict[float, float], expected: float
) -> None:
    result = histogram_quantile(q, buckets)
    assert (math.isnan(result) and math.isnan(expected)) or result == pytest.approx(expected)


@settings(max_examples=100, deadline=None)
@given(
    observations=st.lists(
        st.floats(min_value=0.0001, max_value=3.0, allow_nan=False), min_size=1, max_size=300
    ),
    q=st.floats(min_value=0.01, max_value=1.0),
)
def test_the_quantile_lies_in_the_bucket_of_the_true_one(
    observations: list[float], q: float
) -> None:
    """The estimate is within the bounds of the bucket holding the true q-quantile."""
    metrics = server()
    for seconds in observations:
        serve(metrics, "success", seconds)
    window = increase(None, read(metrics, CANARY))
    estimate = histogram_quantile(q, window.buckets)
    ordered = sorted(observations)
    true = ordered[max(0, math.ceil(q * len(ordered)) - 1)]
    bounds = (0.0, *LATENCY_BUCKETS_S)
    upper = next((b for b in LATENCY_BUCKETS_S if true <= b), None)
    if upper is None:  # beyond the last bucket: Prometheus answers the last finite bound
        assert estimate == LATENCY_BUCKETS_S[-1]
    else:
        lower = max(b for b in bounds if b < upper)
        assert lower <= estimate <= upper


def window_of(success: int, failed: int, seconds: float) -> Window:
    metrics = server()
    serve(metrics, "success", seconds, times=success)
    serve(metrics, "error", seconds, times=failed)
    return increase(None, read(metrics, CANARY))


def test_the_success_rate_is_compared_with_stable() -> None:
    canary, stable = window_of(90, 10, 0.002), window_of(99, 1, 0.002)
    drop = success_rate_drop(canary, stable, min_requests=50)
    assert isinstance(drop, Value) and drop.value == pytest.approx(0.09)
    better = success_rate_drop(stable, canary, min_requests=50)
    assert isinstance(better, Value) and better.value == pytest.approx(-0.09)


def test_the_p99_is_compared_with_stable_as_a_ratio() -> None:
    ratio = p99_ratio(window_of(100, 0, 0.2), window_of(100, 0, 0.04), min_requests=50)
    # 0.2 -> (0.1, 0.25], 0.04 -> (0.03, 0.05]; both at 99% of their bucket
    assert isinstance(ratio, Value)
    assert ratio.value == pytest.approx((0.1 + 0.15 * 0.99) / (0.03 + 0.02 * 0.99))


def test_a_comparison_with_too_few_stable_requests_is_no_data() -> None:
    canary, stable = window_of(100, 0, 0.002), window_of(3, 0, 0.002)
    for outcome in (
        success_rate_drop(canary, stable, min_requests=50),
        p99_ratio(canary, stable, min_requests=50),
    ):
        assert isinstance(outcome, NoData) and outcome.reason.startswith("stable: only 3")


def test_a_comparison_with_too_few_canary_requests_is_no_data() -> None:
    canary, stable = window_of(3, 0, 0.002), window_of(100, 0, 0.002)
    outcome = success_rate_drop(canary, stable, min_requests=50)
    assert isinstance(outcome, NoData) and outcome.reason.startswith("only 3")


def test_a_stable_p99_of_zero_gives_a_ratio_of_one_or_infinity() -> None:
    zero = Window({"success": 10}, {0.0: 10, 1.0: 10, math.inf: 10})
    slow = Window({"success": 10}, {0.0: 0, 1.0: 10, math.inf: 10})
    assert p99_ratio(zero, zero, min_requests=1) == Value(1.0)
    assert p99_ratio(slow, zero, min_requests=1) == Value(math.inf)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('driftline_inference_requests_total{outcome="success" 3\n', "cannot read"),
        ("driftline_inference_requests_total{outcome=success} 3\n", "cannot read"),
        ('driftline_inference_requests_total{outcome="success"} -1\n', "not a count"),
        ('driftline_inference_requests_total{outcome="success"} NaN\n', "not a count"),
        ('driftline_request_duration_seconds_bucket{le="0.1"} 3\n', "no +Inf bucket"),
        ('driftline_request_duration_seconds_bucket{le="soon"} 3\n', "cannot read"),
        ("driftline_request_duration_seconds_bucket 3\n", "no numeric le"),
    ],
)
def test_bad_exposition_text_is_an_error(text: str, problem: str) -> None:
    outcome = read_exposition(text)
    assert isinstance(outcome, QueryError) and problem in outcome.message


def test_an_exposition_without_the_metrics_is_empty() -> None:
    assert read_exposition("# a process without our metrics\nup 1\n") == Snapshot()


def test_the_built_in_gates_have_their_bounds() -> None:
    thresholds = BuiltinThresholds(max_p99_seconds=0.25)
    gates = {gate.name: gate for gate in builtin_gates(thresholds, 30, 5, failure_limit=1)}
    assert set(gates) == {SUCCESS_RATE, SUCCESS_RATE_VS_STABLE, P99_LATENCY, P99_LATENCY_VS_STABLE}
    assert gates[SUCCESS_RATE].min == 0.99 and gates[SUCCESS_RATE].max is None
    assert gates[SUCCESS_RATE_VS_STABLE].max == 0.01
    assert gates[P99_LATENCY].max == 0.25 and gates[P99_LATENCY_VS_STABLE].max == 1.5
    assert all(g.count == 5 and g.failure_limit == 1 for g in gates.values())


def test_without_stable_the_comparisons_are_left_out() -> None:
    gates = builtin_gates(BuiltinThresholds(), 30, 5, compare_with_stable=False)
    assert [gate.name for gate in gates] == [SUCCESS_RATE]
    outcomes = measure_builtin(window_of(100, 0, 0.002), None, min_requests=50)
    assert isinstance(outcomes[SUCCESS_RATE_VS_STABLE], NoData)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_requests": 0},
        {"min_success_rate": 1.5},
        {"max_success_rate_drop": -0.1},
        {"max_p99_ratio": math.nan},
    ],
)
def test_bad_thresholds_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BuiltinThresholds(**kwargs)  # type: ignore[arg-type]


def run_gates(periods: Sequence[tuple[Window, Window]]) -> dict[str, str]:
    """The built-in gates through the gate state machine, one period per measurement."""
    thresholds = BuiltinThresholds(min_requests=50, max_p99_seconds=0.25)
    gates = builtin_gates(thresholds, interval_seconds=30, count=len(periods))
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    states = {gate.name: start(t0) for gate in gates}
    for index, (canary, stable) in enumerate(periods):
        outcomes = measure_builtin(canary, stable, thresholds.min_requests)
        for gate in gates:
            if next_measurement_at(states[gate.name], gate) is not None:
                now = t0 + timedelta(seconds=30 * index)
                states[gate.name] = record(states[gate.name], gate, outcomes[gate.name], now)
    return {gate.name: verdict(states[gate.name], gate).verdict for gate in gates}


def test_a_healthy_canary_passes_every_built_in_gate() -> None:
    periods = [(window_of(100, 0, 0.003), window_of(100, 0, 0.003))] * 3
    assert set(run_gates(periods).values()) == {"Passed"}


def test_a_failing_canary_fails_the_success_rate_gates() -> None:
    periods = [(window_of(80, 20, 0.003), window_of(100, 0, 0.003))] * 3
    verdicts = run_gates(periods)
    assert verdicts[SUCCESS_RATE] == "Failed" and verdicts[SUCCESS_RATE_VS_STABLE] == "Failed"
    assert verdicts[P99_LATENCY] == "Passed"


def test_a_slow_canary_fails_the_latency_gates() -> None:
    periods = [(window_of(100, 0, 0.3), window_of(100, 0, 0.003))] * 3
    verdicts = run_gates(periods)
    assert verdicts[P99_LATENCY] == "Failed" and verdicts[P99_LATENCY_VS_STABLE] == "Failed"
    assert verdicts[SUCCESS_RATE] == "Passed"


def test_an_idle_canary_is_inconclusive_never_passed() -> None:
    periods = [(window_of(2, 0, 0.003), window_of(100, 0, 0.003))] * 3
    assert set(run_gates(periods).values()) == {"Inconclusive"}
