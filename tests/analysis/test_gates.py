"""The gate state machine: limits, every verdict path, timing, persistence, combining."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.analysis.gates import (
    GateSettings,
    GateState,
    combine,
    next_measurement_at,
    prometheus_gate_settings,
    record,
    start,
    state_from_dict,
    state_to_dict,
    verdict,
)
from driftline.analysis.types import GateVerdict, NoData, Outcome, QueryError, Value
from driftline.api.modeldeployment import Analysis, PrometheusGate

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ERROR_RATE = GateSettings("error-rate", interval_seconds=30, count=5, failure_limit=1, max=0.05)
OK = Value(0.01)
BAD = Value(0.2)
EMPTY = NoData("query returned an empty vector")
TIMEOUT = QueryError("timed out after 10 s")


def run(outcomes: Sequence[Outcome], gate: GateSettings = ERROR_RATE) -> GateState:
    """Record the outcomes one interval apart, as the operator would."""
    state = start(T0)
    for outcome in outcomes:
        due = next_measurement_at(state, gate)
        assert due is not None, "a measurement after the run ended"
        state = record(state, gate, outcome, due)
    return state


def test_a_new_run_is_running_and_measures_at_once() -> None:
    state = start(T0)
    assert verdict(state, ERROR_RATE).verdict == "Running"
    assert next_measurement_at(state, ERROR_RATE) == T0


def test_an_initial_delay_puts_off_only_the_first_measurement() -> None:
    delayed = replace(ERROR_RATE, initial_delay_seconds=12)
    state = start(T0)
    assert next_measurement_at(state, delayed) == T0 + timedelta(seconds=12)
    state = record(state, delayed, OK, T0 + timedelta(seconds=12))
    assert next_measurement_at(state, delayed) == T0 + timedelta(seconds=42)


def test_measurements_are_due_one_interval_after_the_last() -> None:
    state = record(start(T0), ERROR_RATE, OK, T0 + timedelta(seconds=7))
    assert next_measurement_at(state, ERROR_RATE) == T0 + timedelta(seconds=37)


def test_count_measurements_within_bounds_pass() -> None:
    state = run([OK] * 4)
    assert verdict(state, ERROR_RATE).verdict == "Running"
    state = record(state, ERROR_RATE, OK, T0 + timedelta(minutes=5))
    decided = verdict(state, ERROR_RATE)
    assert decided == GateVerdict("error-rate", "Passed", decided.reason)
    assert "gate error-rate" in decided.reason and "0.01" in decided.reason
    assert next_measurement_at(state, ERROR_RATE) is None


def test_failures_up_to_the_limit_still_pass() -> None:
    decided = verdict(run([OK, BAD, OK, OK, OK]), ERROR_RATE)
    assert decided.verdict == "Passed"
    assert "1 outside bounds" in decided.reason


def test_one_failure_more_than_the_limit_fails_at_once_naming_the_value() -> None:
    state = run([BAD, OK, Value(0.31)])
    decided = verdict(state, ERROR_RATE)
    assert decided.verdict == "Failed"
    assert "gate error-rate" in decided.reason
    assert "0.31" in decided.reason and "at most 0.05" in decided.reason
    assert "failure limit 1" in decided.reason
    assert next_measurement_at(state, ERROR_RATE) is None


def test_a_failure_limit_of_zero_fails_on_the_first_failure() -> None:
    gate = GateSettings("p99", interval_seconds=10, count=3, max=0.25)
    assert verdict(run([Value(0.3)], gate), gate).verdict == "Failed"


def test_below_min_is_a_failure() -> None:
    gate = GateSettings("success-rate", interval_seconds=10, count=2, min=0.99)
    decided = verdict(run([Value(0.95)], gate), gate)
    assert decided.verdict == "Failed" and "at least 0.99" in decided.reason


def test_bounds_are_inclusive() -> None:
    gate = GateSettings("x", interval_seconds=10, count=2, min=1.0, max=2.0)
    assert verdict(run([Value(1.0), Value(2.0)], gate), gate).verdict == "Passed"


@pytest.mark.parametrize(("value", "passes"), [(math.inf, False), (-math.inf, True)])
def test_infinity_is_judged_like_any_value(value: float, passes: bool) -> None:
    gate = GateSettings("p99", interval_seconds=10, count=1, max=0.25)
    assert verdict(run([Value(value)], gate), gate).verdict == ("Passed" if passes else "Failed")


def test_a_nan_value_built_by_hand_is_no_data() -> None:
    gate = GateSettings("p99", interval_seconds=10, count=1, max=0.25)
    assert verdict(run([Value(math.nan)], gate), gate).verdict == "Inconclusive"


def test_no_data_never_passes() -> None:
    state = run([OK, OK, EMPTY, OK, OK])
    decided = verdict(state, ERROR_RATE)
    assert decided.verdict == "Inconclusive"
    assert "1 of 5 measurements had no data" in decided.reason
    assert "empty vector" in decided.reason


def test_no_data_on_every_measurement_is_inconclusive_never_passed() -> None:
    assert verdict(run([EMPTY] * 5), ERROR_RATE).verdict == "Inconclusive"


def test_no_data_keeps_the_run_going_until_count() -> None:
    state = run([EMPTY, EMPTY])
    assert verdict(state, ERROR_RATE).verdict == "Running"
    assert next_measurement_at(state, ERROR_RATE) is not None


def test_failures_beyond_the_limit_fail_even_with_no_data() -> None:
    assert verdict(run([EMPTY, BAD, BAD]), ERROR_RATE).verdict == "Failed"


def test_errors_do_not_count_towards_count() -> None:
    state = run([OK, TIMEOUT, OK, TIMEOUT, OK, OK])
    assert verdict(state, ERROR_RATE).verdict == "Running"
    assert (state.answered, state.errors) == (4, 2)
    assert verdict(run([OK, TIMEOUT, OK, TIMEOUT, OK, OK, OK]), ERROR_RATE).verdict == "Passed"


def test_errors_are_not_failures() -> None:
    state = run([TIMEOUT, TIMEOUT, TIMEOUT, TIMEOUT])
    assert state.failed == 0 and state.errors == 4
    assert verdict(state, ERROR_RATE).verdict == "Running"


def test_more_consecutive_errors_than_the_limit_are_inconclusive() -> None:
    # Argo Rollouts' consecutiveErrorLimit: 4 errors in a row are tolerated, the 5th ends it
    state = run([OK] + [TIMEOUT] * 5)
    decided = verdict(state, ERROR_RATE)
    assert decided.verdict == "Inconclusive"
    assert "5 consecutive errors" in decided.reason and "limit 4" in decided.reason
    assert "timed out after 10 s" in decided.reason
    assert next_measurement_at(state, ERROR_RATE) is None


@pytest.mark.parametrize("answer", [OK, BAD, EMPTY])
def test_any_answer_resets_the_consecutive_errors(answer: Outcome) -> None:
    state = run([TIMEOUT] * 4 + [answer] + [TIMEOUT] * 4)
    assert state.consecutive_errors == 4 and state.errors == 8
    assert verdict(state, ERROR_RATE).verdict == "Running"


def test_a_consecutive_error_limit_of_zero_ends_on_the_first_error() -> None:
    gate = GateSettings("x", interval_seconds=1, count=3, max=1, consecutive_error_limit=0)
    assert verdict(run([TIMEOUT], gate), gate).verdict == "Inconclusive"


def test_the_history_is_bounded_and_the_totals_are_kept() -> None:
    gate = GateSettings("x", interval_seconds=1, count=50, max=1, failure_limit=50, history_limit=3)
    outcomes: list[Outcome] = [OK, Value(2), EMPTY, TIMEOUT] * 10
    state = run(outcomes, gate)
    assert len(state.recent) == 3
    assert [m.phase for m in state.recent] == ["Failed", "NoData", "Error"]
    assert (state.successful, state.failed, state.no_data, state.errors) == (10, 10, 10, 10)
    assert state.last_failed is not None and state.last_failed.value == 2


def test_the_deciding_failure_is_named_after_it_left_the_history() -> None:
    gate = GateSettings("x", interval_seconds=1, count=10, max=1, history_limit=1)
    state = run([EMPTY, TIMEOUT, Value(7)], gate)
    state = GateState(**{**state.__dict__, "recent": ()})
    assert "the last 7 at" in verdict(state, gate).reason


def test_recording_after_the_run_ended_is_refused() -> None:
    state = run([BAD, BAD])
    with pytest.raises(ValueError, match="has ended"):
        record(state, ERROR_RATE, OK, T0 + timedelta(hours=1))


def test_recording_earlier_than_the_last_measurement_is_refused() -> None:
    state = record(start(T0), ERROR_RATE, OK, T0 + timedelta(seconds=30))
    with pytest.raises(ValueError, match="earlier than"):
        record(state, ERROR_RATE, OK, T0 + timedelta(seconds=29))
    with pytest.raises(ValueError, match="earlier than"):
        record(start(T0), ERROR_RATE, OK, T0 - timedelta(seconds=1))


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        start(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="no time zone"):
        record(start(T0), ERROR_RATE, OK, datetime(2026, 4, 1))


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"max": None}, "set min, max or both"),
        ({"min": 2.0, "max": 1.0}, "exceeds max"),
        ({"min": math.nan}, "NaN"),
        ({"count": 0}, "count"),
        ({"interval_seconds": 0}, "interval_seconds"),
        ({"interval_seconds": math.inf}, "interval_seconds"),
        ({"failure_limit": -1}, "failure_limit"),
        ({"consecutive_error_limit": -1}, "consecutive_error_limit"),
        ({"history_limit": 0}, "history_limit"),
        ({"initial_delay_seconds": -1}, "initial_delay_seconds"),
        ({"initial_delay_seconds": math.nan}, "initial_delay_seconds"),
        ({"name": ""}, "name is empty"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(kwargs: dict[str, object], problem: str) -> None:
    arguments: dict[str, object] = {"name": "g", "interval_seconds": 10, "count": 3, "max": 1.0}
    with pytest.raises(ValueError, match=problem):
        GateSettings(**{**arguments, **kwargs})  # type: ignore[arg-type]


def test_the_state_survives_a_round_trip_through_json_data() -> None:
    gate = GateSettings("x", interval_seconds=1, count=20, max=1, failure_limit=20)
    state = run([OK, Value(math.inf), EMPTY, TIMEOUT, Value(-math.inf)], gate)
    import json

    data = json.loads(json.dumps(state_to_dict(state), allow_nan=False))
    assert state_from_dict(data) == state


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.pop("failed"), "missing 'failed'"),
        (lambda d: d.update(errors=-1), "errors must be a non-negative integer"),
        (lambda d: d.update(startedAt="2026-01-01T00:00:00"), "no time zone"),
        (lambda d: d["recent"][0].update(phase="Great"), "unknown measurement phase"),
        (lambda d: d["recent"][0].update(value=None), "a Successful measurement with value"),
    ],
)
def test_malformed_state_data_is_refused(change: object, problem: str) -> None:
    data = state_to_dict(run([OK]))
    change(data)  # type: ignore[operator]
    with pytest.raises(ValueError, match=problem):
        state_from_dict(data)


# --- combining the gates of one step ------------------------------------------------------

PASSED = GateVerdict("a", "Passed", "gate a: fine")
RUNNING = GateVerdict("b", "Running", "gate b: 1 of 3")
INCONCLUSIVE = GateVerdict("c", "Inconclusive", "gate c: no data")
FAILED = GateVerdict("d", "Failed", "gate d: 0.3 above 0.05")


@pytest.mark.parametrize(
    ("verdicts", "expected", "deciding"),
    [
        ([PASSED, RUNNING, INCONCLUSIVE, FAILED], "Failed", "d"),
        ([FAILED, INCONCLUSIVE], "Failed", "d"),
        ([PASSED, RUNNING, INCONCLUSIVE], "Inconclusive", "c"),
        ([PASSED, RUNNING], "Running", "b"),
        ([PASSED, PASSED], "Passed", "a"),
    ],
)
def test_combine_picks_the_strongest_verdict_and_names_the_gate(
    verdicts: list[GateVerdict], expected: str, deciding: str
) -> None:
    combined = combine(verdicts, "step-2")
    assert combined.gate == "step-2" and combined.verdict == expected
    assert f"gate {deciding}" in combined.reason or f"({deciding}" in combined.reason


def test_combine_names_the_first_of_several_deciding_gates() -> None:
    other = GateVerdict("e", "Failed", "gate e: 9")
    assert "by gate d: gate d: 0.3" in combine([PASSED, FAILED, other], "step-1").reason


def test_combining_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="no gate verdicts"):
        combine([], "step-0")


# --- a property: the state machine agrees with a direct count of the outcomes -----------

OUTCOMES = st.sampled_from([OK, BAD, EMPTY, TIMEOUT])


@settings(max_examples=200, deadline=None)
@given(
    outcomes=st.lists(OUTCOMES, max_size=30),
    count=st.integers(1, 6),
    failure_limit=st.integers(0, 3),
    error_limit=st.integers(0, 4),
)
def test_verdicts_agree_with_a_direct_reading_of_the_outcomes(
    outcomes: list[Outcome], count: int, failure_limit: int, error_limit: int
) -> None:
    gate = GateSettings(
        "g",
        interval_seconds=5,
        count=count,
        failure_limit=failure_limit,
        consecutive_error_limit=error_limit,
        max=0.05,
    )
    state = start(T0)
    taken: list[Outcome] = []
    for outcome in outcomes:
        due = next_measurement_at(state, gate)
        if due is None:
            break
        state = record(state, gate, outcome, due)
        taken.append(outcome)
    failed = taken.count(BAD)
    answered = len([o for o in taken if o != TIMEOUT])
    streak = 0
    for outcome in reversed(taken):
        if outcome != TIMEOUT:
            break
        streak += 1
    if failed > failure_limit:
        expected = "Failed"
    elif streak > error_limit:
        expected = "Inconclusive"
    elif answered >= count:
        expected = "Inconclusive" if EMPTY in taken else "Passed"
    else:
        expected = "Running"
    assert verdict(state, gate).verdict == expected
    # the run ended on the measurement that decided it, never later
    if expected != "Running":
        assert len(taken) == len(outcomes) or next_measurement_at(state, gate) is None
    assert verdict(state, gate).verdict != "Passed" or EMPTY not in taken


def test_a_modeldeployments_prometheus_gate_becomes_gate_settings() -> None:
    gate = PrometheusGate(name="error-rate", query="up", max=0.05, failure_limit=2)
    analysis = Analysis(interval_seconds=20, count=7, metrics=[gate])
    assert prometheus_gate_settings(gate, analysis) == GateSettings(
        "error-rate", interval_seconds=20, count=7, failure_limit=2, max=0.05
    )
