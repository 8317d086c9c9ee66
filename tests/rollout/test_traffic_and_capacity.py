"""Replicas from weights, weights to ready pods, the GPU budget, history, rolling."""

from __future__ import annotations

from datetime import timedelta

import pytest

from driftline.api.modeldeployment import Revision
from driftline.rollout import ObservedTrack, TrackTarget
from driftline.rollout.capacity import Side, handover, replica_cap
from driftline.rollout.history import record
from driftline.rollout.traffic import route, split_replicas
from tests.rollout.sim import T0, make_spec, serving


@pytest.mark.parametrize(
    ("total", "weight", "expected"),
    [
        (10, 0, (10, 0)),
        (10, 10, (9, 1)),
        (10, 15, (8, 2)),  # ceil
        (10, 100, (0, 10)),
        (4, 1, (3, 1)),  # at least one canary while weight > 0
        (4, 99, (1, 4)),  # at least one stable while weight < 100
        (1, 50, (1, 1)),
        (0, 50, (0, 0)),
    ],
)
def test_split_replicas(total, weight, expected):
    assert split_replicas(total, weight) == expected


def test_split_replicas_refuses_a_weight_out_of_range():
    with pytest.raises(ValueError, match=r"0\.\.100"):
        split_replicas(4, 101)


def ready(n: int) -> ObservedTrack:
    return ObservedTrack("v", n, n, n, True)


def test_route_sends_traffic_only_to_ready_pods():
    nominal = {"stable": 70, "canary": 30}
    assert route(nominal, {"stable": ready(3), "canary": ready(1)}) == nominal
    assert route(nominal, {"stable": ready(3), "canary": ready(0)}) == {"stable": 100}
    assert route(nominal, {"stable": ready(3)}) == {"stable": 100}
    assert route(
        {"stable": 33, "canary": 33, "preview": 34},
        {n: ready(1) for n in ("stable", "canary", "preview")},
    ) == {"stable": 33, "canary": 33, "preview": 34}
    # nowhere ready: the nominal split stands (the engine keeps what serves now)
    assert route(nominal, {}) == nominal
    assert route({"stable": 100, "canary": 0}, {"stable": ready(1)}) == {"stable": 100}


def test_route_renormalises_to_a_hundred():
    weights = route({"a": 1, "b": 1, "c": 1, "d": 0}, {n: ready(1) for n in "abcd"})
    assert sum(weights.values()) == 100 and set(weights) == {"a", "b", "c"}


def test_handover_gives_way_one_replica_at_a_time():
    # cap 5: stable 4 serving, the new track wants 4
    assert handover(None, Side(4), Side(4)) == (4, 4)
    assert handover(8, Side(4, 4, 4), Side(4)) == (4, 4)
    assert handover(5, Side(4, 4, 4, floor=1), Side(4, 0, 0)) == (4, 1)
    assert handover(5, Side(4, 4, 4, floor=1), Side(4, 1, 1)) == (3, 1)  # waits for room
    assert handover(5, Side(4, 3, 3, floor=1), Side(4, 1, 1)) == (3, 2)
    assert handover(5, Side(4, 1, 1, floor=1), Side(4, 4, 4)) == (1, 4)
    # no budget at all: the old track yields first, keeping one while it serves
    assert handover(4, Side(4, 4, 4, floor=1), Side(4, 0, 0)) == (3, 0)
    assert handover(4, Side(4, 3, 3, floor=1), Side(4, 0, 0)) == (3, 1)
    # a cap of one replica leaves no other way
    assert handover(1, Side(1, 1, 1, floor=1), Side(1, 0, 0)) == (0, 0)
    assert handover(1, Side(1, 0, 0, floor=1), Side(1, 0, 0)) == (0, 1)


def test_the_cap_is_the_stable_gpus_plus_the_budget():
    assert replica_cap(make_spec(gpu=2, budget=5), 4) == 6
    assert replica_cap(make_spec(gpu=2), 4) is None
    assert replica_cap(make_spec(), 4) is None


def test_a_canary_promotion_stays_within_the_gpu_budget():
    world = serving(steps=[(50, None, False), (100, None, False)], gpu=2, budget=2)
    limit = 4 * 2 + 2
    world.set_version("v2")
    for _ in range(30):
        assert world.gpus_requested() <= limit
        assert world.status.gpus == {
            name: target.replicas * 2 for name, target in world.last.tracks.items()
        }
        if world.status.stable_version == "v2" and set(world.last.tracks) == {"stable"}:
            break
        world.settle()
    else:
        raise AssertionError("the promotion did not finish")
    assert world.status.gpus == {"stable": 8}


def test_a_blue_green_preview_within_the_budget_scales_the_stable_track_down():
    world = serving(strategy="BlueGreen", gpu=1, budget=1)
    started = world.set_version("v2")
    assert started.tracks == {"stable": TrackTarget("v1", 4), "preview": TrackTarget("v2", 1)}
    peaks = []
    for _ in range(40):
        peaks.append(sum(t.replicas for t in world.last.tracks.values()))
        assert world.serving_ready() > 0
        if world.status.stable_version == "v2" and set(world.last.tracks) == {"stable"}:
            break
        world.now += timedelta(seconds=30)  # past the scale-down delay
        world.settle()
    else:
        raise AssertionError("the rollout did not finish")
    assert max(peaks) == 5
    assert world.last.tracks == {"stable": TrackTarget("v2", 4)}


def test_history_keeps_the_newest_within_the_limit():
    entries: list[Revision] = []
    for n in range(5):
        entries = record(
            entries, version=f"v{n}", outcome="Promoted", reason=None, at=T0 + timedelta(n), limit=3
        )
    assert [r.version for r in entries] == ["v4", "v3", "v2"]
    assert record(entries, version="x", outcome="Aborted", reason="r", at=T0, limit=0) == []


def test_rolling_moves_the_stable_track_at_once():
    world = serving(strategy="Rolling")
    moving = world.set_version("v2")
    assert moving.tracks == {"stable": TrackTarget("v2", 4)}
    assert moving.progressing[:2] == (True, "RolloutStarted")
    assert world.status.canary_version is None
    done = world.settle()
    assert done.progressing[:2] == (False, "RolloutCompleted")
    assert (world.status.history[0].version, world.status.history[0].outcome) == ("v2", "Promoted")


def test_a_version_that_is_not_servable_waits_and_stable_keeps_serving():
    world = serving(steps=[(50, None, False)])
    waiting = world.set_version("v2", servable=False)
    assert waiting.tracks == {"stable": TrackTarget("v1", 4)}
    assert waiting.progressing[:2] == (False, "VersionNotServable")
    world.servable.add("v2")
    assert world.decide().tracks["canary"] == TrackTarget("v2", 2)
