"""Engine-wide rules: adoption, strategy changes, committed promotions, status hygiene."""

from __future__ import annotations

from driftline.api.modeldeployment import Condition, ModelDeploymentStatus
from driftline.rollout import ObservedTrack, TrackTarget
from tests.rollout.sim import T0, World, make_spec, serving


def test_a_deployment_from_before_the_engine_is_adopted_from_its_stable_track():
    # status has no stableVersion yet; the stable Deployment is the fact
    world = World(
        make_spec("v2", steps=[(25, None, False), (100, None, False)]),
        servable={"v1", "v2"},
        tracks={"stable": ObservedTrack("v1", 4, 4, 4, True)},
    )
    decision = world.decide()
    assert decision.tracks == {"stable": TrackTarget("v1", 3), "canary": TrackTarget("v2", 1)}
    assert world.status.canary_version == "v2"


def test_a_strategy_change_supersedes_the_rollout_in_flight():
    world = serving(steps=[(25, 0, False), (100, None, False)])
    world.set_version("v2")
    world.settle()
    assert world.status.canary_version == "v2"
    world.spec = world.spec.model_copy(update={"strategy": make_spec(strategy="Rolling").strategy})
    decision = world.decide()
    assert (world.status.history[0].version, world.status.history[0].outcome) == (
        "v2",
        "Superseded",
    )
    assert world.status.canary_version is None
    assert decision.tracks == {"stable": TrackTarget("v2", 4)}
    world.converge()
    assert world.status.stable_version == "v2"


def test_a_promotion_under_way_is_neither_aborted_nor_superseded():
    world = serving(steps=[(50, None, False)])
    world.set_version("v2")
    promoting = world.settle()
    assert world.status.current_step == 1
    assert promoting.tracks["stable"] == TrackTarget("v2", 4)
    refused = world.request("abort")
    assert [e.reason for e in refused.events] == ["RequestIgnored"]
    assert world.status.aborted_version is None
    newer = world.set_version("v3")
    assert world.status.canary_version == "v2"
    assert newer.tracks["stable"] == TrackTarget("v2", 4)
    # once v2 is promoted, v3 starts from the first step
    started = world.settle()
    assert world.status.stable_version == "v2"
    assert world.status.canary_version == "v3"
    assert [e.reason for e in started.events] == ["RolloutCompleted", "RolloutStarted"]


def test_fields_outside_the_rollout_are_copied_unchanged():
    world = serving(steps=[(50, None, False)])
    condition = Condition(
        type="Ready", status="True", reason="Ready", message="m", last_transition_time=T0
    )
    world.status = world.status.model_copy(
        update={"url": "http://x", "observed_generation": 7, "conditions": [condition]}
    )
    world.set_version("v2")
    assert world.status.url == "http://x"
    assert world.status.observed_generation == 7
    assert world.status.conditions == [condition]


def test_nothing_is_served_before_the_first_version_is_servable():
    world = World(make_spec("v1"), servable=set(), status=ModelDeploymentStatus())
    decision = world.decide()
    assert decision.tracks == {} and decision.weights == {}
    assert decision.progressing[:2] == (False, "VersionNotServable")
    world.servable.add("v1")
    first = world.decide()
    assert first.tracks == {"stable": TrackTarget("v1", 4)}  # no canary without a stable
    assert first.progressing[:2] == (True, "RolloutStarted")
