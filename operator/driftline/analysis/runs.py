"""Analysis runs of a ModelDeployment's rollout, as pure functions over its status.

A run is the set of gates measured for one gate of the rollout engine: a canary step
(``step-N``), a blue-green ``pre-promotion`` or ``post-promotion``, or the ``background``
analysis over the whole rollout. Its state lives in ``status.analysis`` (every gate's last
measurements and totals) and its end in ``status.verdicts``, which the engine reads; so an
operator restarted at any moment measures on from where the status says.

One reconcile: `due_measurements` says which gates are due now; the shell takes those
measurements (Prometheus, the pods' /metrics, the DriftPolicy's reports); `record_outcomes`
judges them, ends runs and writes their verdicts; the engine decides from those verdicts;
`start_runs` begins the run of a gate the engine now waits for. The first measurement of a
run is due one interval after it began: a canary that just became ready has served nothing
worth judging yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final, Literal

from driftline.analysis import builtin
from driftline.analysis.gates import (
    GateSettings,
    GateState,
    Measurement,
    combine,
    prometheus_gate_settings,
    record,
    verdict,
)
from driftline.analysis.types import GateVerdict, Outcome
from driftline.api.modeldeployment import (
    Analysis,
    AnalysisRun,
    CanaryStrategy,
    GateMeasurement,
    GateRun,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    StepVerdict,
    StrategyType,
)
from driftline.reconcile.transitions import EventSpec
from driftline.rollout.gates import BACKGROUND
from driftline.rollout.types import CANARY, POST_PROMOTION, PRE_PROMOTION, PREVIEW, step_gate
from driftline_vocabulary.drift import Severity

GateKind = Literal["Prometheus", "Builtin", "Drift", "Divergence"]
DRIFT_GATE: Final = "drift"
DIVERGENCE_GATE: Final = "divergence"
# The drift gate fails on confirmed drift above this severity (High fails).
DRIFT_GATE_MAX_SEVERITY: Final = Severity.MEDIUM
# The engine's reason while a step's pods are ready and its gate has no verdict yet.
WAITING_FOR_ANALYSIS: Final = "WaitingForAnalysis"
# Background runs follow one another; only the latest is kept in status.
MAX_RUNS: Final = 32


@dataclass(frozen=True)
class GateDefinition:
    kind: GateKind
    settings: GateSettings
    query: str | None = None  # the PromQL template of a Prometheus gate


@dataclass(frozen=True)
class Target:
    """What a run measures: the version under rollout on its track."""

    run: str
    version: str
    track: str
    # whether the stable track serves traffic to compare with (not after a blue-green switch)
    compare_with_stable: bool


@dataclass(frozen=True)
class Due:
    target: Target
    gate: GateDefinition
    # when the run began (a sidecar on a new pod needs time for its first report)
    run_started_at: datetime | None = None


def gate_definitions(
    analysis: Analysis, *, has_policy: bool, compare_with_stable: bool = True
) -> tuple[GateDefinition, ...]:
    """The gates a run measures, from the spec: Prometheus queries, the built-in gates, the
    drift gate (only where a DriftPolicy targets the deployment) and the divergence gate
    (not where stable serves no traffic to compare with)."""
    common = {
        "interval_seconds": analysis.interval_seconds,
        "count": analysis.count,
        "consecutive_error_limit": analysis.consecutive_error_limit,
        "initial_delay_seconds": analysis.initial_delay_seconds,
    }
    gates = [
        GateDefinition("Prometheus", prometheus_gate_settings(gate, analysis), gate.query)
        for gate in analysis.metrics
    ]
    if analysis.builtin is not None:
        thresholds = builtin_thresholds(analysis)
        gates += [
            GateDefinition("Builtin", _with_run_settings(settings, analysis))
            for settings in builtin.builtin_gates(
                thresholds,
                analysis.interval_seconds,
                analysis.count,
                compare_with_stable=compare_with_stable,
            )
        ]
    if analysis.drift_gate and has_policy:
        gates.append(
            GateDefinition(
                "Drift",
                GateSettings(name=DRIFT_GATE, max=float(DRIFT_GATE_MAX_SEVERITY.rank), **common),
            )
        )
    if analysis.divergence is not None and compare_with_stable:
        gates.append(
            GateDefinition(
                "Divergence",
                GateSettings(
                    name=DIVERGENCE_GATE,
                    max=analysis.divergence.min_effect,
                    **common,
                ),
            )
        )
    return tuple(gates)


def builtin_thresholds(analysis: Analysis) -> builtin.BuiltinThresholds:
    gates = analysis.builtin
    assert gates is not None
    return builtin.BuiltinThresholds(
        min_requests=gates.min_requests,
        min_success_rate=gates.min_success_rate,
        max_success_rate_drop=gates.max_success_rate_drop,
        max_p99_seconds=gates.max_p99_seconds,
        max_p99_ratio=gates.max_p99_ratio,
    )


def _with_run_settings(settings: GateSettings, analysis: Analysis) -> GateSettings:
    """The analysis' settings that every gate of a run shares."""
    return replace(
        settings,
        consecutive_error_limit=analysis.consecutive_error_limit,
        initial_delay_seconds=analysis.initial_delay_seconds,
    )


def is_gated(spec: ModelDeploymentSpec, *, has_policy: bool) -> bool:
    """Whether any gate runs for this deployment's rollouts."""
    return bool(gate_definitions(spec.strategy.analysis, has_policy=has_policy))


def current_target(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> Target | None:
    """The gate the rollout in flight is at (whether or not the engine waits on it yet)."""
    if spec.strategy.type == StrategyType.CANARY and status.canary_version is not None:
        steps = (spec.strategy.canary or CanaryStrategy()).steps
        step = status.current_step or 0
        if step >= len(steps) or not steps[step].analysis:
            return None
        return Target(step_gate(step), status.canary_version, CANARY, True)
    if spec.strategy.type == StrategyType.BLUE_GREEN and status.preview_version is not None:
        if status.switched_at is None:
            return Target(PRE_PROMOTION, status.preview_version, PREVIEW, True)
        return Target(POST_PROMOTION, status.preview_version, PREVIEW, False)
    return None


def background_target(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> Target | None:
    """The background run's target while a rollout is in flight and background is on."""
    if not spec.strategy.analysis.background:
        return None
    if spec.strategy.type == StrategyType.CANARY and status.canary_version is not None:
        return Target(BACKGROUND, status.canary_version, CANARY, True)
    if spec.strategy.type == StrategyType.BLUE_GREEN and status.preview_version is not None:
        return Target(BACKGROUND, status.preview_version, PREVIEW, status.switched_at is None)
    return None


def active_targets(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> list[Target]:
    return [t for t in (current_target(spec, status), background_target(spec, status)) if t]


# --- between the status model and the gate state machine ------------------------------


def _measurement(model: GateMeasurement) -> Measurement:
    return Measurement(
        model.at, model.phase, None if model.value is None else float(model.value), model.message
    )


def _measurement_model(measurement: Measurement | None) -> GateMeasurement | None:
    if measurement is None:
        return None
    return GateMeasurement(
        at=measurement.at,
        phase=measurement.phase,
        value=None if measurement.value is None else _number(measurement.value),
        message=measurement.message[:1024],
    )


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    if value == float("-inf"):
        return "-Inf"
    return repr(value)


def gate_state(gate: GateRun) -> GateState:
    return GateState(
        started_at=gate.started_at,
        recent=tuple(_measurement(m) for m in gate.recent),
        successful=gate.successful,
        failed=gate.failed,
        no_data=gate.no_data,
        errors=gate.errors,
        consecutive_errors=gate.consecutive_errors,
        last_failed=_measurement(gate.last_failed) if gate.last_failed else None,
        last_no_data=_measurement(gate.last_no_data) if gate.last_no_data else None,
        last_error=_measurement(gate.last_error) if gate.last_error else None,
    )


def gate_run(definition: GateDefinition, track: str, state: GateState) -> GateRun:
    decided = verdict(state, definition.settings)
    return GateRun(
        name=definition.settings.name,
        kind=definition.kind,
        track=track,
        min=definition.settings.min,
        max=definition.settings.max,
        verdict=decided.verdict,
        reason=decided.reason[:1024],
        started_at=state.started_at,
        recent=[m for m in map(_measurement_model, state.recent) if m is not None],
        successful=state.successful,
        failed=state.failed,
        no_data=state.no_data,
        errors=state.errors,
        consecutive_errors=state.consecutive_errors,
        last_failed=_measurement_model(state.last_failed),
        last_no_data=_measurement_model(state.last_no_data),
        last_error=_measurement_model(state.last_error),
    )


def _gate_due_at(gate: GateRun, definition: GateDefinition) -> datetime | None:
    if gate.verdict != "Running":
        return None
    settings = definition.settings
    if gate.recent:
        return gate.recent[-1].at + timedelta(seconds=settings.interval_seconds)
    delay = settings.initial_delay_seconds + settings.interval_seconds
    return gate.started_at + timedelta(seconds=delay)


def _definitions_for(
    spec: ModelDeploymentSpec, target: Target, has_policy: bool
) -> dict[str, GateDefinition]:
    return {
        d.settings.name: d
        for d in gate_definitions(
            spec.strategy.analysis,
            has_policy=has_policy,
            compare_with_stable=target.compare_with_stable,
        )
    }


def _run_of(runs: Sequence[AnalysisRun], target: Target) -> AnalysisRun | None:
    return next((r for r in runs if r.name == target.run and r.version == target.version), None)


# --- one reconcile ---------------------------------------------------------------------


def _scheduled(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, has_policy: bool
) -> list[tuple[Due, datetime]]:
    """Every gate of a running run still measuring, with when its next measurement is due."""
    found = []
    for target in active_targets(spec, status):
        run = _run_of(status.analysis, target)
        if run is None or run.verdict != "Running":
            continue
        definitions = _definitions_for(spec, target, has_policy)
        for gate in run.gates:
            definition = definitions.get(gate.name)
            due_at = _gate_due_at(gate, definition) if definition is not None else None
            if definition is not None and due_at is not None:
                found.append((Due(target, definition, run.started_at), due_at))
    return found


def due_measurements(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    *,
    has_policy: bool,
    now: datetime,
) -> list[Due]:
    """The gates of the running runs whose next measurement is due at `now`."""
    return [due for due, at in _scheduled(spec, status, has_policy) if at <= now]


def next_due_seconds(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    *,
    has_policy: bool,
    now: datetime,
) -> float | None:
    """Seconds until the next measurement of a running run is due."""
    moments = [(at - now).total_seconds() for _, at in _scheduled(spec, status, has_policy)]
    return max(min(moments), 0.0) if moments else None


@dataclass(frozen=True)
class Recorded:
    status: ModelDeploymentStatus
    events: tuple[EventSpec, ...]
    # (gate, phase) of every measurement recorded, and (run, verdict) of every run that
    # ended: for the operator's metrics
    measured: tuple[tuple[str, str], ...] = ()
    ended: tuple[tuple[str, str], ...] = ()


def record_outcomes(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    outcomes: Mapping[tuple[str, str], Outcome],
    *,
    has_policy: bool,
    now: datetime,
) -> Recorded:
    """`status` with the measurements taken (keyed by (run, gate)) recorded into the
    running runs, each run's verdict recomputed, and the verdict of every run that ended
    written to status.verdicts for the engine."""
    runs = list(status.analysis)
    verdicts = list(status.verdicts)
    events: list[EventSpec] = []
    measured: list[tuple[str, str]] = []
    ended: list[tuple[str, str]] = []
    for target in active_targets(spec, status):
        run = _run_of(runs, target)
        if run is None or run.verdict != "Running":
            continue
        definitions = _definitions_for(spec, target, has_policy)
        gates = []
        for gate in run.gates:
            definition = definitions.get(gate.name)
            if definition is None:
                continue  # the gate left the spec: no longer part of the run
            state = gate_state(gate)
            outcome = outcomes.get((run.name, gate.name))
            if outcome is not None and verdict(state, definition.settings).verdict == "Running":
                state = record(state, definition.settings, outcome, now)
                measured.append((gate.name, state.recent[-1].phase))
            gates.append(gate_run(definition, target.track, state))
        updated = _with_verdict(run, gates)
        runs[runs.index(run)] = updated
        if updated.verdict != "Running":
            verdicts = [
                v for v in verdicts if not (v.gate == BACKGROUND and updated.name == BACKGROUND)
            ]
            verdicts.append(
                StepVerdict(
                    gate=updated.name,
                    version=updated.version,
                    verdict=updated.verdict,
                    reason=updated.reason,
                    at=now,
                )
            )
            events.append(_run_event(updated))
            ended.append((updated.name, updated.verdict))
    new_status = status.model_copy(update={"analysis": runs, "verdicts": verdicts})
    return Recorded(new_status, tuple(events), tuple(measured), tuple(ended))


def _with_verdict(run: AnalysisRun, gates: list[GateRun]) -> AnalysisRun:
    if not gates:
        decided = GateVerdict(run.name, "Passed", "no gates left to run")
    else:
        decided = combine(
            [GateVerdict(g.name, g.verdict, g.reason) for g in gates], f"analysis {run.name}"
        )
    return run.model_copy(
        update={"gates": gates, "verdict": decided.verdict, "reason": decided.reason[:1024]}
    )


def _run_event(run: AnalysisRun) -> EventSpec:
    return EventSpec(
        "Normal" if run.verdict == "Passed" else "Warning",
        f"Analysis{run.verdict}",
        f"analysis {run.name} of {run.version}: {run.reason}",
    )


def start_runs(
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    progressing_reason: str,
    *,
    has_policy: bool,
    now: datetime,
) -> ModelDeploymentStatus:
    """The status after the engine's decision, with a run begun for the gate the engine
    waits for (its pods are ready and it has no verdict), a new background run when the
    last one passed, and the runs that no longer matter dropped: those of an earlier
    rollout, and running ones whose gate the rollout has left."""
    in_flight = status.canary_version or status.preview_version
    active = {(t.run, t.version) for t in active_targets(spec, status)}
    started = status.rollout_started_at
    runs = [
        run
        for run in status.analysis
        if (not in_flight or run.version == in_flight)
        and (started is None or run.started_at >= started)
        and (run.verdict != "Running" or (run.name, run.version) in active)
    ]
    current = current_target(spec, status)
    if (
        current is not None
        and progressing_reason == WAITING_FOR_ANALYSIS
        and _run_of(runs, current) is None
    ):
        runs.append(_new_run(spec, current, has_policy, now))
    behind = background_target(spec, status)
    if behind is not None:
        last = _run_of(runs, behind)
        if last is None or last.verdict == "Passed":
            runs = [r for r in runs if r.name != BACKGROUND]
            runs.append(_new_run(spec, behind, has_policy, now))
    return status.model_copy(update={"analysis": runs[-MAX_RUNS:]})


def _new_run(
    spec: ModelDeploymentSpec, target: Target, has_policy: bool, now: datetime
) -> AnalysisRun:
    definitions = _definitions_for(spec, target, has_policy)
    gates = [
        gate_run(definition, target.track, GateState(started_at=now))
        for definition in definitions.values()
    ]
    return _with_verdict(
        AnalysisRun(name=target.run, version=target.version, started_at=now, verdict="Running"),
        gates,
    )
