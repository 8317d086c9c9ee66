"""Drift rollback through the rollout engine, pure, over the simulated cluster."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta

from driftline.rollout import RolloutDecision, decide_rollout
from driftline.rollout.rollback import RollbackRequest, apply_rollback, good_version
from tests.rollout.sim import T0, World, apply, make_spec


@dataclass
class DriftWorld(World):
    request: RollbackRequest | None = None
    conditions: list[tuple[bool, str, str]] = field(default_factory=list)

    def decide(self, request=None) -> RolloutDecision:
        applied = apply_rollback(self.input(request), self.request, self.servable)
        decision = decide_rollout(applied.rollout)
        self.conditions.append(applied.condition)
        self.inputs.append(applied.rollout)
        self.decisions.append(replace(decision, events=(*applied.events, *decision.events)))
        self.status = decision.status
        self.tracks = apply(self.tracks, decision.tracks)
        return self.decisions[-1]

    def drifts(self, version: str, minutes: int = 1) -> RolloutDecision:
        self.request = RollbackRequest(
            "churn-drift", version, T0 + timedelta(minutes=minutes), "severity High"
        )
        return self.decide()

    def promote(self, version: str) -> None:
        self.set_version(version)
        self.converge()
        assert self.status.stable_version == version


def world() -> DriftWorld:
    w = DriftWorld(make_spec("v1", steps=[(50, None, False), (100, None, False)]))
    w.converge()
    w.promote("v2")
    return w


def test_a_drifted_stable_version_goes_back_to_the_last_good_one_at_once():
    w = world()
    w.drifts("v2")
    assert (w.status.rolled_back_version, w.status.rolled_back_to) == ("v2", "v1")
    assert w.conditions[-1][:2] == (True, "DriftRollback")
    assert [(r.version, r.outcome) for r in w.status.history][:2] == [
        ("v2", "RolledBack"),
        ("v2", "Promoted"),
    ]
    assert "RolledBack" in w.reasons()
    w.converge()
    # no canary steps: the stable track is back on v1, the spec still names v2
    assert w.status.stable_version == "v1" and w.status.canary_version is None
    assert w.tracks["stable"].version == "v1"
    assert w.spec.model_version == "v2"


def test_the_rollback_holds_until_the_spec_names_another_version():
    w = world()
    w.drifts("v2")
    w.converge()
    for _ in range(3):
        w.wait(3600)
        assert w.status.stable_version == "v1"
    w.set_version("v3")
    assert w.status.rolled_back_version is None
    w.converge()
    assert w.status.stable_version == "v3"


def test_a_request_is_acted_on_once():
    w = world()
    w.drifts("v2")
    w.converge()
    events = w.reasons().count("RolledBack")
    w.decide()
    w.decide()
    assert w.reasons().count("RolledBack") == events == 1


def test_the_drifted_version_is_never_returned_to_and_nothing_loops():
    w = world()
    w.promote("v3")  # history: v3, v2, v1 promoted
    w.drifts("v3", minutes=1)
    w.converge()
    assert w.status.stable_version == "v2"
    # the version returned to drifts as well: back to v1, never to v3
    w.set_version("v2")
    w.converge()
    w.drifts("v2", minutes=2)
    w.converge()
    assert w.status.stable_version == "v1"
    assert good_version(w.status, "v1", w.servable) is None


def test_with_no_good_version_it_alerts_and_stays():
    w = DriftWorld(make_spec("v1"))
    w.converge()
    w.drifts("v1")
    assert w.conditions[-1][:2] == (False, "NoGoodVersion")
    assert "NoGoodVersion" in w.reasons()
    w.converge()
    assert w.status.stable_version == "v1" and w.status.rolled_back_version is None


def test_a_drifting_canary_is_aborted():
    w = DriftWorld(make_spec("v1", steps=[(50, 600, False), (100, None, False)]))
    w.converge()
    w.set_version("v2")
    w.settle()
    assert w.status.canary_version == "v2"
    w.drifts("v2")
    assert w.status.canary_version is None and w.status.aborted_version == "v2"
    assert w.conditions[-1][:2] == (True, "DriftRollback")
    w.converge()
    assert w.status.stable_version == "v1"


def test_a_version_that_is_not_servable_is_not_returned_to():
    w = world()
    w.servable.discard("v1")
    w.drifts("v2")
    assert w.conditions[-1][1] == "NoGoodVersion"
