"""Blue-green rollouts on the simulated cluster."""

from __future__ import annotations

from datetime import timedelta

from driftline.rollout import TrackTarget
from tests.rollout.sim import T0, serving


def blue_green(**settings):
    gates = settings.pop("gates", False)
    return serving(strategy="BlueGreen", blue_green=settings, gates=gates)


def test_preview_switch_then_the_old_track_is_kept_for_the_delay():
    world = blue_green(scale_down_delay_seconds=30)
    started = world.set_version("v2")
    assert started.tracks == {"stable": TrackTarget("v1", 4), "preview": TrackTarget("v2", 4)}
    assert started.active_track == "stable"
    assert started.weights == {"stable": 100}
    assert world.status.preview_version == "v2"
    assert world.status.rollout_started_at == T0

    switched = world.settle()
    assert switched.active_track == "preview"
    assert switched.weights == {"preview": 100}
    assert world.status.switched_at == T0
    assert world.status.previous_version == "v1"
    assert world.status.active_track == "preview"
    assert [e.reason for e in switched.events] == ["Switched"]
    # the old version stays on the stable track for the delay
    assert switched.tracks["stable"] == TrackTarget("v1", 4)
    assert switched.requeue_after == 30
    kept = world.wait(29)
    assert kept.tracks["stable"] == TrackTarget("v1", 4)
    assert kept.active_track == "preview"

    moving = world.wait(1)
    assert moving.tracks == {"stable": TrackTarget("v2", 4), "preview": TrackTarget("v2", 4)}
    assert moving.active_track == "preview"  # the stable track is not ready yet
    assert world.status.previous_version is None

    done = world.settle()
    assert done.tracks == {"stable": TrackTarget("v2", 4)}
    assert done.active_track == "stable"
    assert done.weights == {"stable": 100}
    assert world.status.stable_version == "v2"
    assert world.status.preview_version is None and world.status.switched_at is None
    assert (world.status.history[0].version, world.status.history[0].outcome) == (
        "v2",
        "Promoted",
    )
    assert done.progressing[:2] == (False, "RolloutCompleted")


def test_without_auto_promote_the_switch_waits_for_a_promote():
    world = blue_green(auto_promote=False, preview_replicas=2)
    started = world.set_version("v2")
    assert started.tracks["preview"] == TrackTarget("v2", 2)
    early = world.request("promote")  # the preview is not ready: no switch to it
    assert [e.reason for e in early.events] == ["RequestIgnored"]
    assert early.active_track == "stable"
    ready = world.settle()
    assert ready.progressing[:2] == (True, "Paused")
    assert world.wait(3600).active_track == "stable"
    switched = world.request("promote")
    assert switched.active_track == "preview"
    assert world.status.switched_at == T0 + timedelta(seconds=3600)


def test_the_pre_promotion_gate_decides_the_switch():
    world = blue_green(gates=True)
    world.set_version("v2")
    waiting = world.settle()
    assert waiting.progressing[1] == "WaitingForAnalysis"
    assert waiting.active_track == "stable"
    inconclusive = world.verdict("pre-promotion", "Inconclusive", "no traffic")
    assert inconclusive.progressing[1] == "AnalysisInconclusive"
    assert inconclusive.active_track == "stable"
    switched = world.verdict("pre-promotion", "Passed")
    assert switched.active_track == "preview"
    # the post-promotion gate holds the old version past the delay
    held = world.wait(3600)
    assert held.progressing[1] == "WaitingForAnalysis"
    assert held.tracks["stable"] == TrackTarget("v1", 4)
    world.verdict("post-promotion", "Passed")
    assert world.last.tracks["stable"] == TrackTarget("v2", 4)


def test_a_failed_post_promotion_gate_switches_back():
    world = blue_green(gates=True)
    world.set_version("v2")
    world.settle()
    world.verdict("pre-promotion", "Passed")
    back = world.verdict("post-promotion", "Failed", "error rate 5%")
    assert back.active_track == "stable"
    assert back.weights == {"stable": 100}
    assert back.tracks == {"stable": TrackTarget("v1", 4)}
    assert [e.reason for e in back.events] == ["SwitchedBack", "RolloutAborted"]
    assert all(e.type == "Warning" for e in back.events)
    assert back.degraded is not None and back.degraded[1] == "AnalysisFailed"
    assert world.status.aborted_version == "v2"
    assert world.status.switched_at is None and world.status.previous_version is None
    assert world.serving_ready() == 4


def test_an_abort_request_before_the_switch_removes_the_preview():
    world = blue_green(auto_promote=False)
    world.set_version("v2")
    world.settle()
    aborted = world.request("abort")
    assert aborted.tracks == {"stable": TrackTarget("v1", 4)}
    assert [e.reason for e in aborted.events] == ["RolloutAborted"]
    assert world.status.aborted_version == "v2"


def test_a_new_version_after_the_switch_supersedes_and_starts_again():
    world = blue_green(scale_down_delay_seconds=600)
    world.set_version("v2")
    world.settle()
    assert world.last.active_track == "preview"
    superseding = world.set_version("v3")
    assert superseding.active_track == "stable"
    assert superseding.tracks == {
        "stable": TrackTarget("v1", 4),
        "preview": TrackTarget("v3", 4),
    }
    assert [e.reason for e in superseding.events] == [
        "SwitchedBack",
        "Superseded",
        "RolloutStarted",
    ]
    assert world.serving_ready() == 4
    assert world.status.history[0].outcome == "Superseded"


def test_promote_full_switches_and_moves_the_stable_track_at_once():
    world = blue_green(auto_promote=False, scale_down_delay_seconds=600)
    world.set_version("v2")
    world.settle()
    full = world.request("promote-full")
    assert full.active_track == "preview"
    assert full.tracks["stable"] == TrackTarget("v2", 4)
    world.converge()
    assert world.status.stable_version == "v2"
    assert world.last.active_track == "stable"
