"""Canary rollouts, path by path, on the simulated cluster."""

from __future__ import annotations

from datetime import timedelta

from driftline.api.modeldeployment import StepVerdict
from driftline.rollout import ManualRequest, TrackTarget
from tests.rollout.sim import T0, serving

THREE_STEPS = [(10, None, True), (50, None, True), (100, None, False)]


def test_a_canary_goes_through_every_step_to_promoted():
    world = serving(steps=THREE_STEPS, gates=True)
    started = world.set_version("v2")
    assert started.tracks == {"stable": TrackTarget("v1", 3), "canary": TrackTarget("v2", 1)}
    assert started.weights == {"stable": 100}  # the canary has no ready pod yet
    assert started.progressing[:2] == (True, "RolloutStarted")
    status = world.status
    assert (status.canary_version, status.current_step, status.canary_weight) == ("v2", 0, 10)
    assert status.step_started_at == T0 and status.rollout_started_at == T0
    assert status.stable_version == "v1"

    waiting = world.settle()
    assert waiting.weights == {"stable": 90, "canary": 10}
    assert waiting.progressing[1] == "WaitingForAnalysis"
    assert world.status.current_step == 0

    step2 = world.verdict("step-0", "Passed")
    assert world.status.current_step == 1 and world.status.canary_weight == 50
    assert step2.tracks == {"stable": TrackTarget("v1", 2), "canary": TrackTarget("v2", 2)}
    world.settle()
    world.verdict("step-1", "Passed")
    assert world.status.current_step == 2 and world.status.canary_weight == 100
    world.settle()  # step 3 is not analysed: promotion follows
    assert world.status.current_step == 3
    assert world.last.tracks == {
        "stable": TrackTarget("v2", 4),
        "canary": TrackTarget("v2", 4),
    }
    assert world.status.stable_version == "v1"
    done = world.settle()
    assert done.tracks == {"stable": TrackTarget("v2", 4)}
    assert done.weights == {"stable": 100}
    assert done.progressing[:2] == (False, "RolloutCompleted")
    status = world.status
    assert status.stable_version == "v2"
    assert (status.canary_version, status.current_step, status.canary_weight) == (None, None, 0)
    assert (status.history[0].version, status.history[0].outcome) == ("v2", "Promoted")
    assert (
        world.reasons()[-5:]
        == [
            "RolloutStarted",
            "StepAdvanced",
            "StepAdvanced",
            "StepAdvanced",
            "RolloutCompleted",
        ][-5:]
    )


def test_without_gates_a_step_passes_once_its_pause_ends():
    world = serving(steps=[(25, 30, True), (100, None, False)])
    world.set_version("v2")
    ready = world.settle()
    assert ready.requeue_after == 30
    assert world.wait(29).progressing[1] == "RolloutStarted"  # still at the first step
    assert world.status.current_step == 0
    world.wait(1)
    assert world.status.current_step == 1


def test_pause_zero_waits_for_a_manual_promote():
    world = serving(steps=[(20, 0, False), (100, None, False)])
    world.set_version("v2")
    world.settle()
    held = world.wait(86400)
    assert world.status.current_step == 0
    assert held.progressing[:2] == (True, "Paused")
    assert held.requeue_after is None
    promoted = world.request("promote")
    assert world.status.current_step == 1
    assert world.status.handled_request == "r1"
    assert "StepAdvanced" in [e.reason for e in promoted.events]


def test_a_request_is_acted_on_exactly_once():
    world = serving(steps=[(20, 0, False), (50, 0, False), (100, None, False)])
    world.set_version("v2")
    world.settle()
    request = ManualRequest("once", "promote")
    promoted = world.decide(request)
    assert world.status.current_step == 1
    assert promoted.status.handled_request == "once"
    world.settle()
    # the annotation stays on the object: every later reconcile sees the same request
    for _ in range(3):
        again = world.decide(request)
        assert world.status.current_step == 1
        assert again.events == ()
    assert world.status.handled_request == "once"


def test_abort_request_then_a_new_version():
    world = serving(steps=THREE_STEPS)
    world.set_version("v2")
    world.settle()
    assert world.status.current_step == 1
    aborted = world.request("abort")
    assert aborted.tracks == {"stable": TrackTarget("v1", 4)}
    assert aborted.weights == {"stable": 100}
    assert aborted.progressing[:2] == (False, "RolloutAborted")
    assert aborted.degraded is None  # an abort by request is no fault
    assert world.status.aborted_version == "v2"
    assert world.status.canary_version is None
    revision = world.status.history[0]
    assert (revision.version, revision.outcome) == ("v2", "Aborted")
    assert revision.reason is not None and revision.reason.startswith("AbortedByRequest")
    assert [e.reason for e in aborted.events] == ["RolloutAborted"]
    # it stays aborted while the spec names v2
    world.converge()
    world.wait(3600)
    assert world.status.canary_version is None and world.status.aborted_version == "v2"
    restarted = world.set_version("v3")
    assert world.status.aborted_version is None
    assert world.status.canary_version == "v3" and world.status.current_step == 0
    assert restarted.tracks["canary"] == TrackTarget("v3", 1)


def test_a_failed_verdict_aborts_and_a_retry_restarts_from_the_first_step():
    world = serving(steps=THREE_STEPS, gates=True)
    world.set_version("v2")
    world.settle()
    world.verdict("step-0", "Passed")
    world.settle()
    failed = world.verdict("step-1", "Failed", "p99 latency 0.9 > 0.5")
    assert failed.degraded is not None
    assert failed.degraded[:2] == (True, "AnalysisFailed")
    assert "0.9" in failed.degraded[2]
    assert failed.tracks == {"stable": TrackTarget("v1", 4)}
    assert world.status.aborted_version == "v2"
    assert world.status.verdicts == []
    world.converge()
    assert world.last.degraded is not None  # shown until the spec moves on or a retry

    retried = world.request("retry")
    assert world.status.aborted_version is None
    assert (world.status.canary_version, world.status.current_step) == ("v2", 0)
    assert world.status.canary_weight == 10
    assert "RolloutStarted" in [e.reason for e in retried.events]
    assert retried.degraded is None


def test_a_retry_without_an_abort_does_nothing():
    world = serving(steps=THREE_STEPS)
    before = world.status
    ignored = world.request("retry")
    assert [e.reason for e in ignored.events] == ["RequestIgnored"]
    assert world.status.model_copy(update={"handled_request": None}) == before


def test_a_failed_verdict_is_not_overridden_by_promote():
    world = serving(steps=THREE_STEPS, gates=True)
    world.set_version("v2")
    world.settle()
    world.status = world.status.model_copy(
        update={
            "verdicts": [StepVerdict(gate="step-0", version="v2", verdict="Failed", at=world.now)]
        }
    )
    decision = world.request("promote")
    assert world.status.aborted_version == "v2"
    assert decision.degraded is not None and decision.degraded[1] == "AnalysisFailed"
    assert "RequestIgnored" in [e.reason for e in decision.events]


def test_inconclusive_holds_the_step_until_a_manual_promote():
    world = serving(steps=THREE_STEPS, gates=True)
    world.set_version("v2")
    world.settle()
    held = world.verdict("step-0", "Inconclusive", "too few samples")
    assert held.progressing[:2] == (True, "AnalysisInconclusive")
    assert "too few samples" in held.progressing[2]
    world.wait(3600)
    assert world.status.current_step == 0
    world.request("promote")
    assert world.status.current_step == 1


def test_running_analysis_waits():
    world = serving(steps=THREE_STEPS, gates=True)
    world.set_version("v2")
    world.settle()
    waiting = world.verdict("step-0", "Running")
    assert waiting.progressing[1] == "WaitingForAnalysis"
    assert world.status.current_step == 0


def test_a_new_version_supersedes_the_rollout_in_flight():
    world = serving(steps=THREE_STEPS)
    world.set_version("v2")
    world.settle()
    assert world.status.current_step == 1
    superseding = world.set_version("v3")
    assert (world.status.history[0].version, world.status.history[0].outcome) == (
        "v2",
        "Superseded",
    )
    assert (world.status.canary_version, world.status.current_step) == ("v3", 0)
    assert superseding.tracks["stable"] == TrackTarget("v1", 3)
    assert superseding.tracks["canary"] == TrackTarget("v3", 1)
    assert world.status.stable_version == "v1"
    assert world.serving_ready() > 0
    assert [e.reason for e in superseding.events] == ["Superseded", "RolloutStarted"]


def test_a_step_not_ready_by_the_progress_deadline_aborts():
    world = serving(steps=THREE_STEPS, deadline=60)
    started = world.set_version("v2")
    assert started.requeue_after == 60
    world.settle(only="stable")  # the canary's pods never become ready
    assert world.wait(59).degraded is None
    aborted = world.wait(1)
    assert aborted.degraded is not None
    assert aborted.degraded[:2] == (True, "ProgressDeadlineExceeded")
    assert world.status.aborted_version == "v2"
    assert aborted.tracks == {"stable": TrackTarget("v1", 4)}


def test_spec_paused_and_pause_requests_hold_the_steps():
    world = serving(steps=[(20, None, False), (50, None, False), (100, None, False)])
    world.set_version("v2")
    paused = world.request("pause")
    assert world.status.paused_by_request
    assert [e.reason for e in paused.events] == ["Paused"]
    held = world.settle()
    assert held.progressing[:2] == (True, "Paused")
    assert world.status.current_step == 0
    assert world.request("promote").events[-1].reason == "RequestIgnored"
    assert world.status.current_step == 0
    resumed = world.request("resume")
    assert not world.status.paused_by_request
    assert "Resumed" in [e.reason for e in resumed.events]
    assert world.status.current_step == 1

    world.spec = world.spec.model_copy(update={"paused": True})
    world.settle()
    world.wait(3600)
    assert world.status.current_step == 1
    assert world.last.progressing[1] == "Paused"


def test_promote_full_skips_the_remaining_steps():
    world = serving(steps=[(10, 0, False), (50, 0, False), (100, 0, False)])
    world.set_version("v2")
    world.settle()
    full = world.request("promote-full")
    assert world.status.current_step == 3
    assert full.tracks["stable"] == TrackTarget("v2", 4)
    assert world.status.canary_weight == 10  # never decreases
    world.converge()
    assert world.status.stable_version == "v2"
    assert world.last.tracks == {"stable": TrackTarget("v2", 4)}


def test_an_abort_at_full_weight_keeps_serving_until_stable_is_ready():
    world = serving(steps=[(100, 0, False), (100, None, False)])
    world.set_version("v2")
    world.settle()
    assert world.last.tracks["stable"].replicas == 0
    assert world.tracks["stable"].ready == 0
    aborted = world.request("abort")
    # stable has no ready pod yet: the canary keeps its pods and the traffic
    assert aborted.tracks == {"stable": TrackTarget("v1", 4), "canary": TrackTarget("v2", 4)}
    assert aborted.weights == {"canary": 100}
    assert world.serving_ready() > 0
    done = world.settle()
    assert done.tracks == {"stable": TrackTarget("v1", 4)}
    assert done.weights == {"stable": 100}
    assert world.serving_ready() == 4


def test_history_is_bounded_and_newest_first():
    world = serving(steps=[(50, None, False)], history_limit=2)
    for version in ("v2", "v3", "v4"):
        world.set_version(version)
        world.converge()
    assert [(r.version, r.outcome) for r in world.status.history] == [
        ("v4", "Promoted"),
        ("v3", "Promoted"),
    ]
    assert world.status.history[0].at >= world.status.history[1].at
    assert timedelta(0) <= world.now - T0


def test_the_decision_that_aborts_reports_the_fault_even_without_history():
    world = serving(steps=THREE_STEPS, gates=True, history_limit=0)
    world.set_version("v2")
    world.settle()
    failed = world.verdict("step-0", "Failed", "p99 too high")
    assert world.status.history == []
    assert failed.degraded is not None and failed.degraded[1] == "AnalysisFailed"
