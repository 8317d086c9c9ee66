"""Analysis runs driven as the ModelDeployment's reconcile drives them: due measurements,
outcomes recorded, verdicts for the rollout engine, runs started and dropped; pure, with the
simulated cluster of the engine's tests."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from driftline.analysis import runs
from driftline.analysis.types import NoData, Outcome, QueryError, Value
from driftline.api.modeldeployment import (
    Analysis,
    BuiltinGates,
    DivergenceGate,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    PrometheusGate,
)
from driftline.reconcile.transitions import EventSpec
from driftline.rollout import RolloutDecision, decide_rollout
from driftline.rollout.gates import BACKGROUND
from tests.rollout.sim import World, apply, make_spec

GATE = PrometheusGate(name="success", query="rate_of_success", min=0.95)


def with_analysis(spec: ModelDeploymentSpec, **fields) -> ModelDeploymentSpec:
    analysis = Analysis(interval_seconds=10, count=2, metrics=[GATE], **fields)
    strategy = spec.strategy.model_copy(update={"analysis": analysis})
    return spec.model_copy(update={"strategy": strategy})


def canary_spec(**analysis) -> ModelDeploymentSpec:
    spec = make_spec("v1", steps=[(25, None, True), (50, None, True), (100, None, False)])
    return with_analysis(spec, **analysis)


@dataclass
class AnalysedWorld(World):
    """The reconcile's order: record what was measured, decide, start the runs now due."""

    has_policy: bool = False
    recorded_events: list[EventSpec] = field(default_factory=list)
    pending: dict[tuple[str, str], Outcome] = field(default_factory=dict)

    def decide(self, request=None) -> RolloutDecision:
        recorded = runs.record_outcomes(
            self.spec, self.status, self.pending, has_policy=self.has_policy, now=self.now
        )
        self.pending = {}
        self.recorded_events += recorded.events
        self.status = recorded.status
        rollout = self.input(request)
        rollout = type(rollout)(**{**rollout.__dict__, "gated": self.gated})
        decision = decide_rollout(rollout)
        status = runs.start_runs(
            self.spec,
            decision.status,
            decision.progressing[1],
            has_policy=self.has_policy,
            now=self.now,
        )
        self.inputs.append(rollout)
        self.decisions.append(decision)
        self.status = status
        self.tracks = apply(self.tracks, decision.tracks)
        return decision

    @property
    def gated(self) -> bool:
        return runs.is_gated(self.spec, has_policy=self.has_policy)

    def due(self) -> list[tuple[str, str]]:
        return [
            (d.target.run, d.gate.settings.name)
            for d in runs.due_measurements(
                self.spec, self.status, has_policy=self.has_policy, now=self.now
            )
        ]

    def measure(self, **by_gate: Outcome) -> RolloutDecision:
        """Take every due measurement: the outcome given for its gate."""
        due = self.due()
        assert due, "nothing is due"
        self.pending = {(run, gate): by_gate[gate] for run, gate in due}
        return self.decide()

    def next_measurement(self, **by_gate: Outcome) -> RolloutDecision:
        wait = runs.next_due_seconds(
            self.spec, self.status, has_policy=self.has_policy, now=self.now
        )
        assert wait is not None, "no measurement is ahead"
        self.now += timedelta(seconds=wait)
        return self.measure(**by_gate)

    def run(self, name: str):
        return next(r for r in self.status.analysis if r.name == name)


def started(world: AnalysedWorld) -> AnalysedWorld:
    world.converge()
    world.set_version("v2")
    world.settle()
    return world


def test_a_step_run_starts_once_the_canary_is_ready_and_measures_after_an_interval():
    world = AnalysedWorld(canary_spec())
    world.converge()
    world.set_version("v2")
    # the canary's pods are not ready: no run yet
    assert world.status.analysis == []
    world.settle()
    assert world.last.progressing[1] == "WaitingForAnalysis"
    run = world.run("step-0")
    assert (run.version, run.verdict, [g.name for g in run.gates]) == ("v2", "Running", ["success"])
    assert world.due() == []  # the first measurement is one interval after the start
    assert runs.next_due_seconds(world.spec, world.status, has_policy=False, now=world.now) == 10


def test_an_initial_delay_comes_before_the_first_interval_only():
    world = started(AnalysedWorld(canary_spec(initial_delay_seconds=7)))
    # Argo's initialDelay: new pods get time to be scraped before the first window begins
    assert runs.next_due_seconds(world.spec, world.status, has_policy=False, now=world.now) == 17
    world.now += timedelta(seconds=16)
    assert world.due() == []
    world.next_measurement(success=Value(0.99))
    # later measurements are one interval apart
    assert runs.next_due_seconds(world.spec, world.status, has_policy=False, now=world.now) == 10
    # every gate of the run shares it, the built-in ones too
    builtin = canary_spec(initial_delay_seconds=7, builtin=BuiltinGates())
    assert {
        d.settings.initial_delay_seconds
        for d in runs.gate_definitions(builtin.strategy.analysis, has_policy=True)
    } == {7}


def test_a_passing_run_advances_the_step_and_the_next_step_gets_its_own_run():
    world = started(AnalysedWorld(canary_spec()))
    world.next_measurement(success=Value(0.99))
    assert world.run("step-0").verdict == "Running"  # 1 of 2 measurements
    world.next_measurement(success=Value(0.97))
    assert world.run("step-0").verdict == "Passed"
    assert world.status.current_step == 1
    assert [(v.gate, v.verdict) for v in world.status.verdicts] == [("step-0", "Passed")]
    world.settle()
    assert world.run("step-1").verdict == "Running"
    world.next_measurement(success=Value(0.99))
    world.next_measurement(success=Value(0.99))
    world.converge()
    assert world.status.stable_version == "v2"
    assert world.status.canary_version is None
    # the promoted rollout's runs stay readable until the next one starts
    assert [(r.name, r.verdict) for r in world.status.analysis] == [
        ("step-0", "Passed"),
        ("step-1", "Passed"),
    ]
    assert [e.reason for e in world.recorded_events] == ["AnalysisPassed", "AnalysisPassed"]


def test_a_value_out_of_bounds_aborts_with_the_measured_value_in_status_and_event():
    world = started(AnalysedWorld(canary_spec()))
    world.next_measurement(success=Value(0.42))
    assert world.status.canary_version is None
    assert world.status.aborted_version == "v2"
    gate = world.run("step-0").gates[0]
    assert (gate.verdict, gate.failed, gate.recent[-1].value) == ("Failed", 1, "0.42")
    assert gate.recent[-1].message == "0.42 is below min 0.95"
    assert world.last.degraded is not None and "0.42" in world.last.degraded[2]
    assert world.recorded_events[-1].type == "Warning"
    assert "gate success" in world.recorded_events[-1].message
    assert "RolloutAborted" in world.reasons()


def test_no_data_never_passes_it_holds_the_step_as_inconclusive():
    world = started(AnalysedWorld(canary_spec()))
    world.next_measurement(success=NoData("empty vector"))
    world.next_measurement(success=Value(0.99))
    assert world.run("step-0").verdict == "Inconclusive"
    assert world.last.progressing[1] == "AnalysisInconclusive"
    for _ in range(3):
        world.wait(60)
    assert world.status.current_step == 0 and world.status.canary_version == "v2"
    assert world.due() == []  # an ended run is not measured again


def test_errors_count_apart_and_end_the_run_past_the_consecutive_limit():
    world = started(AnalysedWorld(canary_spec(consecutive_error_limit=2)))
    for _ in range(2):
        world.next_measurement(success=QueryError("connection refused"))
    gate = world.run("step-0").gates[0]
    assert (gate.verdict, gate.errors, gate.successful) == ("Running", 2, 0)
    world.next_measurement(success=QueryError("connection refused"))
    assert world.run("step-0").verdict == "Inconclusive"
    assert "3 consecutive errors" in world.run("step-0").reason
    assert world.status.canary_version == "v2"  # held, never promoted


def test_an_answer_resets_the_run_of_errors():
    world = started(AnalysedWorld(canary_spec(consecutive_error_limit=1)))
    world.next_measurement(success=QueryError("timeout"))
    world.next_measurement(success=Value(0.99))
    world.next_measurement(success=QueryError("timeout"))
    world.next_measurement(success=Value(0.99))
    assert world.run("step-0").verdict == "Passed"


def test_a_restarted_operator_measures_on_from_status_alone():
    world = started(AnalysedWorld(canary_spec()))
    world.next_measurement(success=Value(0.99))
    saved = ModelDeploymentStatus.model_validate(world.status.wire())
    fresh = AnalysedWorld(world.spec, status=saved, tracks=dict(world.tracks), now=world.now)
    fresh.servable = world.servable
    assert fresh.due() == []
    fresh.next_measurement(success=Value(0.99))
    assert fresh.run("step-0").verdict == "Passed"


def test_a_retried_rollout_starts_its_analysis_afresh():
    world = started(AnalysedWorld(canary_spec()))
    world.next_measurement(success=Value(0.1))
    assert world.status.aborted_version == "v2"
    world.now += timedelta(seconds=5)
    world.request("retry")
    world.settle()
    run = world.run("step-0")
    assert (run.verdict, run.started_at) == ("Running", world.now)
    assert [r.name for r in world.status.analysis] == ["step-0"]


def test_steps_without_analysis_run_no_gate():
    spec = with_analysis(make_spec("v1", steps=[(50, None, False), (100, None, False)]))
    world = AnalysedWorld(spec)
    world.converge()
    world.set_version("v2")
    world.converge()
    assert world.status.stable_version == "v2"
    assert world.status.analysis == []


def test_background_analysis_fails_a_rollout_at_any_step():
    spec = with_analysis(
        make_spec("v1", steps=[(25, 600, False), (100, None, False)]), background=True
    )
    world = AnalysedWorld(spec)
    world.converge()
    world.set_version("v2")
    assert world.run(BACKGROUND).verdict == "Running"
    world.settle()
    world.next_measurement(success=Value(0.99))
    world.next_measurement(success=Value(0.99))
    # a passed background run is followed by the next, and only the latest is kept
    assert [(r.name, r.verdict) for r in world.status.analysis] == [(BACKGROUND, "Running")]
    assert [(v.gate, v.verdict) for v in world.status.verdicts] == [(BACKGROUND, "Passed")]
    world.next_measurement(success=Value(0.5))
    assert world.status.aborted_version == "v2"
    assert "gate background failed" in (world.last.degraded or (0, "", ""))[2]


def test_background_inconclusive_holds_the_rollout():
    spec = with_analysis(
        make_spec("v1", steps=[(25, 60, False), (100, None, False)]), background=True
    )
    world = AnalysedWorld(spec)
    world.converge()
    world.set_version("v2")
    world.settle()
    world.next_measurement(success=NoData("no traffic"))
    world.next_measurement(success=NoData("no traffic"))
    assert world.last.progressing[1] == "AnalysisInconclusive"
    assert "gate background is inconclusive" in world.last.progressing[2]
    world.wait(120)  # the step's pause is long over
    assert world.status.current_step == 0


def bluegreen_spec(**analysis) -> ModelDeploymentSpec:
    spec = make_spec("v1", strategy="BlueGreen", blue_green={"scale_down_delay_seconds": 5})
    return with_analysis(spec, **analysis)


def test_blue_green_runs_pre_and_post_promotion_gates():
    world = AnalysedWorld(bluegreen_spec())
    world.converge()
    world.set_version("v2")
    world.settle()
    assert world.run("pre-promotion").gates[0].track == "preview"
    world.next_measurement(success=Value(0.99))
    world.next_measurement(success=Value(0.99))
    assert world.status.switched_at is not None
    assert world.run("post-promotion").verdict == "Running"
    world.next_measurement(success=Value(0.99))
    world.next_measurement(success=Value(0.99))
    world.converge()
    assert world.status.stable_version == "v2"


def test_blue_green_post_promotion_failure_switches_back():
    world = AnalysedWorld(bluegreen_spec())
    world.converge()
    world.set_version("v2")
    world.settle()
    world.next_measurement(success=Value(0.99))
    world.next_measurement(success=Value(0.99))
    world.next_measurement(success=Value(0.2))
    assert world.status.aborted_version == "v2"
    assert "SwitchedBack" in world.reasons()


def test_gate_definitions_follow_the_spec_and_the_policy():
    analysis = Analysis(
        metrics=[GATE],
        builtin=BuiltinGates(max_p99_seconds=0.5),
        divergence=DivergenceGate(min_effect=0.2),
    )
    names = lambda **kw: [  # noqa: E731
        (d.kind, d.settings.name) for d in runs.gate_definitions(analysis, **kw)
    ]
    assert names(has_policy=True) == [
        ("Prometheus", "success"),
        ("Builtin", "success-rate"),
        ("Builtin", "success-rate-vs-stable"),
        ("Builtin", "p99-latency"),
        ("Builtin", "p99-latency-vs-stable"),
        ("Drift", "drift"),
        ("Divergence", "divergence"),
    ]
    # no policy: no drift gate; nothing on stable to compare with: no comparisons
    assert names(has_policy=False, compare_with_stable=False) == [
        ("Prometheus", "success"),
        ("Builtin", "success-rate"),
        ("Builtin", "p99-latency"),
    ]
    drift = runs.gate_definitions(Analysis(), has_policy=True)[0].settings
    assert (drift.name, drift.max) == ("drift", 2.0)  # Medium passes, High fails
    divergence = runs.gate_definitions(analysis, has_policy=False)[-1].settings
    assert divergence.max == 0.2


def test_only_a_drift_policy_makes_the_default_drift_gate_count():
    spec = make_spec("v1")
    assert not runs.is_gated(spec, has_policy=False)
    assert runs.is_gated(spec, has_policy=True)
    off = spec.model_copy(
        update={
            "strategy": spec.strategy.model_copy(update={"analysis": Analysis(drift_gate=False)})
        }
    )
    assert not runs.is_gated(off, has_policy=True)


def test_the_drift_gate_reads_as_a_severity_rank():
    world = AnalysedWorld(
        make_spec("v1", steps=[(50, None, True), (100, None, False)]), has_policy=True
    )
    world.spec = with_analysis(world.spec)
    world.spec = world.spec.model_copy(
        update={
            "strategy": world.spec.strategy.model_copy(
                update={"analysis": Analysis(interval_seconds=10, count=1)}
            )
        }
    )
    world.converge()
    world.set_version("v2")
    world.settle()
    assert [g.kind for g in world.run("step-0").gates] == ["Drift"]
    world.next_measurement(drift=Value(3.0))  # High
    assert world.status.aborted_version == "v2"
    assert world.run("step-0").gates[0].recent[-1].message == "3 is above max 2"


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_infinite_values_are_kept_as_prometheus_writes_them(value):
    world = started(AnalysedWorld(canary_spec()))
    world.next_measurement(success=Value(value))
    written = world.run("step-0").gates[0].recent[-1].value
    assert written == ("+Inf" if value > 0 else "-Inf")
    again = ModelDeploymentStatus.model_validate(world.status.wire())
    assert runs.gate_state(again.analysis[0].gates[0]).recent[-1].value == value


def test_a_gate_removed_from_the_spec_leaves_the_running_run():
    world = started(AnalysedWorld(canary_spec(builtin=BuiltinGates())))
    assert len(world.run("step-0").gates) == 4  # and the 3 built-in gates on by default
    world.spec = with_analysis(world.spec)  # the built-in gates leave the spec
    world.next_measurement(success=Value(0.99))
    assert [g.name for g in world.run("step-0").gates] == ["success"]
