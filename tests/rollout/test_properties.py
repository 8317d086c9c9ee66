"""Properties of the rollout engine, driven by random event sequences on the simulated
cluster: time passing, pods becoming ready, verdicts, manual requests, new versions."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.api.modeldeployment import ModelDeploymentStatus
from driftline.rollout import RolloutDecision, decide_rollout
from driftline.rollout.capacity import gpus_per_replica, replica_cap
from driftline.rollout.types import REQUEST_ACTIONS, step_gate
from tests.rollout.sim import World, serving

EXAMPLES = settings(max_examples=200, deadline=None)


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    strategy = draw(st.sampled_from(["Canary", "Canary", "BlueGreen", "BlueGreen", "Rolling"]))
    replicas = draw(st.integers(1, 6))
    weight = st.sampled_from([0, 10, 50, 100, 100]) | st.integers(0, 100)
    weights = sorted(draw(st.lists(weight, min_size=1, max_size=4)))
    steps = [
        (weight, draw(st.sampled_from([None, 0, 30])), draw(st.booleans())) for weight in weights
    ]
    spec: dict[str, Any] = {
        "strategy": strategy,
        "replicas": replicas,
        "steps": steps,
        "gates": draw(st.booleans()),
        "deadline": draw(st.sampled_from([60, 600])),
        "history_limit": draw(st.integers(0, 3)),
    }
    if strategy == "BlueGreen":
        spec["blue_green"] = {
            "auto_promote": draw(st.booleans()),
            "scale_down_delay_seconds": draw(st.sampled_from([0, 30])),
            "preview_replicas": draw(st.none() | st.integers(1, replicas)),
        }
    if draw(st.booleans()):
        spec["gpu"] = draw(st.integers(1, 2))
        spec["budget"] = draw(st.none() | st.integers(0, 4))
    return spec


# Sampled with repeats: time passing, pods becoming ready and passing verdicts are common,
# so that random sequences reach deep into rollouts; the rest is rarer.
EVENTS: list[tuple[str, Any]] = [
    *[("settle", None)] * 6,
    *[("settle", track) for track in ("stable", "canary", "preview")],
    *[("wait", seconds) for seconds in (5, 30, 30, 120)],
    *[("verdict", "Passed")] * 4,
    *[("verdict", verdict) for verdict in ("Running", "Failed", "Inconclusive")],
    *[("version", version) for version in ("v2", "v2", "v3", "v1")],
    *[("request", action) for action in REQUEST_ACTIONS],
    ("request", "promote"),
    ("decide", None),
]
# every sequence starts a rollout of v2 beside the stable v1
events = st.lists(st.sampled_from(EVENTS), max_size=50).map(lambda tail: [("version", "v2"), *tail])


def current_gate(world: World) -> str | None:
    status = world.status
    if status.canary_version is not None:
        return step_gate(status.current_step or 0)
    if status.preview_version is not None:
        return "post-promotion" if status.switched_at is not None else "pre-promotion"
    return None


def play(world: World, event: tuple[str, Any]) -> RolloutDecision:
    kind, value = event
    if kind == "settle":
        return world.settle(value)
    if kind == "wait":
        return world.wait(value)
    if kind == "version":
        return world.set_version(value)
    if kind == "verdict":
        gate = current_gate(world)
        return world.verdict(gate, value) if gate is not None else world.decide()
    if kind == "request":
        return world.request(value)
    return world.decide()


def fingerprint(decision: RolloutDecision) -> tuple[Any, ...]:
    return (
        dict(decision.tracks),
        dict(decision.weights),
        decision.active_track,
        decision.status.wire(),
        decision.events,
        decision.progressing,
        decision.degraded,
        decision.requeue_after,
    )


def through_the_api(status: ModelDeploymentStatus) -> ModelDeploymentStatus:
    """What a restarted operator reads back: the status as JSON on the wire."""
    return ModelDeploymentStatus.model_validate(json.loads(json.dumps(status.wire())))


@EXAMPLES
@given(configs(), events)
def test_within_one_rollout_the_canary_weight_never_decreases(spec, sequence):
    world = serving(**spec)
    highest = 0
    for event in sequence:
        decision = play(world, event)
        if "RolloutStarted" in [e.reason for e in decision.events]:
            highest = 0  # another rollout (the same version may start again at once)
        if world.status.canary_version is None:
            continue
        assert world.status.canary_weight >= highest
        highest = world.status.canary_weight


@EXAMPLES
@given(configs(), events)
def test_an_abort_ends_with_all_traffic_on_stable_and_no_other_track(spec, sequence):
    world = serving(**spec)
    for event in sequence:
        decision = play(world, event)
        if "RolloutAborted" not in [e.reason for e in decision.events]:
            continue
        assert world.status.aborted_version == world.spec.model_version
        aftermath = replace(world, decisions=list(world.decisions), tracks=dict(world.tracks))
        settled = aftermath.converge()
        assert settled.weights == {"stable": 100}
        assert settled.active_track == "stable"
        assert set(settled.tracks) == {"stable"}
        assert set(aftermath.tracks) == {"stable"}
        assert settled.tracks["stable"].replicas == world.total


@EXAMPLES
@given(configs(), events, st.data())
def test_resuming_from_a_persisted_status_ends_as_the_uninterrupted_run(spec, sequence, data):
    restart = data.draw(st.integers(0, len(sequence)))
    straight = serving(**spec)
    resumed = serving(**spec)
    for index, event in enumerate(sequence):
        if index == restart:
            # a new operator: nothing survives but what the API holds
            resumed = World(
                spec=resumed.spec,
                servable=set(resumed.servable),
                status=through_the_api(resumed.status),
                tracks=dict(resumed.tracks),
                now=resumed.now,
                requests=resumed.requests,
            )
        assert fingerprint(play(straight, event)) == fingerprint(play(resumed, event))
    assert straight.status.wire() == resumed.status.wire()
    assert straight.tracks == resumed.tracks


@EXAMPLES
@given(configs(), events)
def test_a_decision_is_a_fixed_point(spec, sequence):
    world = serving(**spec)
    for event in sequence:
        decision = play(world, event)
        # the same observations, read back with the status it wrote: nothing more to do
        again = decide_rollout(replace(world.inputs[-1], status=decision.status))
        assert fingerprint(again)[:4] == fingerprint(decision)[:4]
        assert again.events == ()


@EXAMPLES
@given(configs(), events)
def test_the_gpus_requested_never_exceed_the_budget(spec, sequence):
    world = serving(**spec)
    per_replica = gpus_per_replica(world.spec)
    budget = world.spec.gpu.rollout_budget if world.spec.gpu is not None else None
    for event in sequence:
        decision = play(world, event)
        requested = sum(t.replicas for t in decision.tracks.values()) * per_replica
        if budget is not None:
            assert requested <= world.total * per_replica + budget
        assert decision.status.gpus == {
            name: target.replicas * per_replica
            for name, target in decision.tracks.items()
            if per_replica
        }


@EXAMPLES
@given(configs(), events)
def test_no_event_leaves_zero_serving_replicas(spec, sequence):
    world = serving(**spec)
    # a cap of one replica in all leaves no way to keep one while adding another
    one_slot = replica_cap(world.spec, world.total) == 1
    for event in sequence:
        before = world.serving_ready()
        decision = play(world, event)
        if before > 0 and not one_slot:
            assert world.serving_ready() > 0, (event, decision)
