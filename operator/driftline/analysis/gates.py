"""One gate's run as a pure state machine, in the style of Argo Rollouts' analysis.

A run takes a measurement every ``interval_seconds`` until ``count`` measurements have
answered, and judges each against the bounds:

- a value outside ``[min, max]`` is a failure; more than ``failure_limit`` failures fail
  the gate at once (Argo's ``failureLimit``);
- an error (timeout, 5xx, bad PromQL, an unusable result) is counted apart from failures
  and does not count towards ``count``: the next interval measures again. More than
  ``consecutive_error_limit`` errors in a row (Argo's ``consecutiveErrorLimit``, default 4,
  exceeded by the 5th) end the run Inconclusive; any answered measurement resets the run
  of errors;
- no data (an empty vector, NaN, too few requests) counts towards ``count`` but can never
  pass: a run that reaches ``count`` with any no-data measurement ends Inconclusive
  (fluxcd/flagger#1035), unless failures failed it first.

The state keeps the last ``history_limit`` measurements and totals of each kind, so it
stays small enough for a resource's status however long the run. Time is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from driftline.analysis.types import GateVerdict, NoData, Outcome, QueryError, Value, Verdict
from driftline.api.modeldeployment import Analysis, PrometheusGate

MeasurementPhase = Literal["Successful", "Failed", "NoData", "Error"]
PHASES: Final[tuple[MeasurementPhase, ...]] = ("Successful", "Failed", "NoData", "Error")
DEFAULT_CONSECUTIVE_ERROR_LIMIT: Final = 4
DEFAULT_HISTORY_LIMIT: Final = 10


@dataclass(frozen=True)
class GateSettings:
    name: str
    interval_seconds: float
    count: int
    failure_limit: int = 0
    consecutive_error_limit: int = DEFAULT_CONSECUTIVE_ERROR_LIMIT
    # before the first measurement's interval begins (new pods not yet scraped)
    initial_delay_seconds: float = 0.0
    min: float | None = None
    max: float | None = None
    history_limit: int = DEFAULT_HISTORY_LIMIT

    def __post_init__(self) -> None:
        problems = []
        if not self.name:
            problems.append("name is empty")
        if not (self.interval_seconds > 0 and math.isfinite(self.interval_seconds)):
            problems.append(f"interval_seconds must be positive, not {self.interval_seconds}")
        if not (self.initial_delay_seconds >= 0 and math.isfinite(self.initial_delay_seconds)):
            problems.append(
                f"initial_delay_seconds must not be negative, not {self.initial_delay_seconds}"
            )
        if self.count < 1:
            problems.append(f"count must be at least 1, not {self.count}")
        if self.failure_limit < 0:
            problems.append(f"failure_limit must not be negative, not {self.failure_limit}")
        if self.consecutive_error_limit < 0:
            problems.append(
                f"consecutive_error_limit must not be negative, not {self.consecutive_error_limit}"
            )
        if self.history_limit < 1:
            problems.append(f"history_limit must be at least 1, not {self.history_limit}")
        if self.min is None and self.max is None:
            problems.append("set min, max or both")
        if any(bound is not None and math.isnan(bound) for bound in (self.min, self.max)):
            problems.append("a bound is NaN")
        elif self.min is not None and self.max is not None and self.min > self.max:
            problems.append(f"min {self.min} exceeds max {self.max}")
        if problems:
            raise ValueError(f"gate {self.name!r}: {'; '.join(problems)}")

    @property
    def bounds(self) -> str:
        if self.min is not None and self.max is not None:
            return f"between {_number(self.min)} and {_number(self.max)}"
        if self.min is not None:
            return f"at least {_number(self.min)}"
        return f"at most {_number(self.max)}"


def prometheus_gate_settings(gate: PrometheusGate, analysis: Analysis) -> GateSettings:
    """The settings of a Prometheus gate of a ModelDeployment's analysis."""
    return GateSettings(
        name=gate.name,
        interval_seconds=analysis.interval_seconds,
        count=analysis.count,
        failure_limit=gate.failure_limit,
        consecutive_error_limit=analysis.consecutive_error_limit,
        initial_delay_seconds=analysis.initial_delay_seconds,
        min=gate.min,
        max=gate.max,
    )


@dataclass(frozen=True)
class Measurement:
    at: datetime
    phase: MeasurementPhase
    value: float | None  # set for Successful and Failed
    message: str  # why it failed, had no data or errored; empty when Successful


@dataclass(frozen=True)
class GateState:
    started_at: datetime
    recent: tuple[Measurement, ...] = ()  # the last history_limit measurements, oldest first
    successful: int = 0
    failed: int = 0
    no_data: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    # the latest of each kind, kept past the bounded history since a verdict may name them
    last_failed: Measurement | None = None
    last_no_data: Measurement | None = None
    last_error: Measurement | None = None

    @property
    def answered(self) -> int:
        """Measurements that count towards ``count``: every one but errors."""
        return self.successful + self.failed + self.no_data

    @property
    def last(self) -> Measurement | None:
        return self.recent[-1] if self.recent else None


def start(now: datetime) -> GateState:
    """A new run; its first measurement is due at once."""
    _require_aware(now)
    return GateState(started_at=now)


def judge(outcome: Outcome, settings: GateSettings, now: datetime) -> Measurement:
    """One outcome as a measurement: within bounds, outside them, no data or an error."""
    if isinstance(outcome, QueryError):
        return Measurement(now, "Error", None, outcome.message)
    if isinstance(outcome, NoData):
        return Measurement(now, "NoData", None, outcome.reason)
    if not isinstance(outcome, Value):
        raise TypeError(f"not a measurement outcome: {outcome!r}")
    value = outcome.value
    if math.isnan(value):  # a Value is never NaN, but a caller may build one by hand
        return Measurement(now, "NoData", None, "the value is NaN")
    if settings.min is not None and value < settings.min:
        return Measurement(
            now, "Failed", value, f"{_number(value)} is below min {_number(settings.min)}"
        )
    if settings.max is not None and value > settings.max:
        return Measurement(
            now, "Failed", value, f"{_number(value)} is above max {_number(settings.max)}"
        )
    return Measurement(now, "Successful", value, "")


def record(state: GateState, settings: GateSettings, outcome: Outcome, now: datetime) -> GateState:
    """The state after one more measurement taken at ``now``.

    Raises ValueError when the run has already ended or ``now`` is earlier than the run's
    start or its last measurement: both are a caller's mistake, and nothing changes.
    """
    _require_aware(now)
    decided = verdict(state, settings)
    if decided.verdict != "Running":
        raise ValueError(f"the run of gate {settings.name!r} has ended ({decided.verdict})")
    last = state.last
    earliest = last.at if last is not None else state.started_at
    if now < earliest:
        raise ValueError(
            f"gate {settings.name!r}: a measurement at {now.isoformat()} is earlier than "
            f"{earliest.isoformat()}"
        )
    measurement = judge(outcome, settings, now)
    recent = (*state.recent, measurement)[-settings.history_limit :]
    state = replace(state, recent=recent)
    if measurement.phase == "Error":
        return replace(
            state,
            errors=state.errors + 1,
            consecutive_errors=state.consecutive_errors + 1,
            last_error=measurement,
        )
    state = replace(state, consecutive_errors=0)
    if measurement.phase == "Failed":
        return replace(state, failed=state.failed + 1, last_failed=measurement)
    if measurement.phase == "NoData":
        return replace(state, no_data=state.no_data + 1, last_no_data=measurement)
    return replace(state, successful=state.successful + 1)


def verdict(state: GateState, settings: GateSettings) -> GateVerdict:
    """Running, Failed, Inconclusive or Passed, the reason naming the gate and what decided."""
    name = settings.name
    if state.failed > settings.failure_limit:
        failed = state.last_failed
        assert failed is not None and failed.value is not None
        return GateVerdict(
            name,
            "Failed",
            f"gate {name}: {state.failed} of {state.answered} measurements outside bounds "
            f"({settings.bounds}), more than the failure limit {settings.failure_limit}; "
            f"the last {_number(failed.value)} at {failed.at.isoformat()}",
        )
    if state.consecutive_errors > settings.consecutive_error_limit:
        error = state.last_error
        assert error is not None
        return GateVerdict(
            name,
            "Inconclusive",
            f"gate {name}: {state.consecutive_errors} consecutive errors, more than the "
            f"limit {settings.consecutive_error_limit}; the last at {error.at.isoformat()}: "
            f"{error.message}",
        )
    if state.answered >= settings.count:
        if state.no_data:
            missing = state.last_no_data
            assert missing is not None
            return GateVerdict(
                name,
                "Inconclusive",
                f"gate {name}: {state.no_data} of {state.answered} measurements had no data, "
                f"and no data never passes; the last at {missing.at.isoformat()}: "
                f"{missing.message}",
            )
        last_value = next((m.value for m in reversed(state.recent) if m.value is not None), None)
        return GateVerdict(
            name,
            "Passed",
            f"gate {name}: {state.answered} measurements, {state.failed} outside bounds "
            f"({settings.bounds}), within the failure limit {settings.failure_limit}; "
            f"the last {_number(last_value)}",
        )
    return GateVerdict(
        name,
        "Running",
        f"gate {name}: {state.answered} of {settings.count} measurements taken",
    )


def next_measurement_at(state: GateState, settings: GateSettings) -> datetime | None:
    """When the next measurement is due; None once the run has ended."""
    if verdict(state, settings).verdict != "Running":
        return None
    last = state.last
    if last is None:
        return state.started_at + timedelta(seconds=settings.initial_delay_seconds)
    return last.at + timedelta(seconds=settings.interval_seconds)


# Which verdict of several decides a step: the first kind present in this order.
_PRECEDENCE: Final[tuple[Verdict, ...]] = ("Failed", "Inconclusive", "Running", "Passed")


def combine(verdicts: Sequence[GateVerdict], name: str) -> GateVerdict:
    """The verdict of a step from its gates' verdicts, naming the gate that decided.

    Any Failed fails the step; else any Inconclusive makes it Inconclusive; else any
    Running keeps it Running; else it Passed. The first gate (in the given order) with the
    deciding verdict is named.
    """
    if not verdicts:
        raise ValueError(f"{name}: no gate verdicts to combine")
    for kind in _PRECEDENCE:
        deciding = [gate for gate in verdicts if gate.verdict == kind]
        if not deciding:
            continue
        if kind == "Passed":
            gates = ", ".join(gate.gate for gate in verdicts)
            return GateVerdict(name, "Passed", f"all {len(verdicts)} gates passed ({gates})")
        first = deciding[0]
        return GateVerdict(name, kind, f"{kind} by gate {first.gate}: {first.reason}")
    unknown = sorted({gate.verdict for gate in verdicts})
    raise ValueError(f"{name}: unknown verdicts {unknown}")


# --- persistence: the state as JSON-friendly data, for a resource's status -------------


def state_to_dict(state: GateState) -> dict[str, Any]:
    return {
        "startedAt": state.started_at.isoformat(),
        "recent": [_measurement_to_dict(m) for m in state.recent],
        "successful": state.successful,
        "failed": state.failed,
        "noData": state.no_data,
        "errors": state.errors,
        "consecutiveErrors": state.consecutive_errors,
        "lastFailed": _optional_measurement_to_dict(state.last_failed),
        "lastNoData": _optional_measurement_to_dict(state.last_no_data),
        "lastError": _optional_measurement_to_dict(state.last_error),
    }


def state_from_dict(data: Mapping[str, Any]) -> GateState:
    """The state written by state_to_dict; ValueError naming the field when it is malformed."""
    try:
        counts = {
            field: _count(data[key], key)
            for field, key in (
                ("successful", "successful"),
                ("failed", "failed"),
                ("no_data", "noData"),
                ("errors", "errors"),
                ("consecutive_errors", "consecutiveErrors"),
            )
        }
        return GateState(
            started_at=_time(data["startedAt"], "startedAt"),
            recent=tuple(_measurement_from_dict(m) for m in data["recent"]),
            last_failed=_optional_measurement_from_dict(data.get("lastFailed")),
            last_no_data=_optional_measurement_from_dict(data.get("lastNoData")),
            last_error=_optional_measurement_from_dict(data.get("lastError")),
            **counts,
        )
    except KeyError as missing:
        raise ValueError(f"gate state: missing {missing}") from None
    except TypeError as error:
        raise ValueError(f"gate state: {error}") from None


def _measurement_to_dict(measurement: Measurement) -> dict[str, Any]:
    return {
        "at": measurement.at.isoformat(),
        "phase": measurement.phase,
        # JSON has no Inf: keep the value as Prometheus writes it
        "value": None if measurement.value is None else _number(measurement.value, exact=True),
        "message": measurement.message,
    }


def _optional_measurement_to_dict(measurement: Measurement | None) -> dict[str, Any] | None:
    return None if measurement is None else _measurement_to_dict(measurement)


def _measurement_from_dict(data: Mapping[str, Any]) -> Measurement:
    phase = data["phase"]
    if phase not in PHASES:
        raise ValueError(f"gate state: unknown measurement phase {phase!r}")
    raw = data["value"]
    value = None if raw is None else float(raw)
    if (value is None) != (phase in ("NoData", "Error")):
        raise ValueError(f"gate state: a {phase} measurement with value {raw!r}")
    message = data["message"]
    if not isinstance(message, str):
        raise ValueError(f"gate state: message {message!r} is not a string")
    return Measurement(_time(data["at"], "at"), phase, value, message)


def _optional_measurement_from_dict(data: Mapping[str, Any] | None) -> Measurement | None:
    return None if data is None else _measurement_from_dict(data)


def _count(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"gate state: {key} must be a non-negative integer, not {value!r}")
    return value


def _time(value: object, key: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"gate state: {key} must be an ISO 8601 time, not {value!r}")
    at = datetime.fromisoformat(value)
    _require_aware(at)
    return at


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None:
        raise ValueError(f"time {at.isoformat()} has no time zone")


def _number(value: float | None, exact: bool = False) -> str:
    """A number as a person (or Prometheus) writes it: 0.042, +Inf, -Inf."""
    if value is None:
        return "none"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value) if exact else f"{value:.6g}"
