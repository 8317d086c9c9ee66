"""A small simulated cluster for the rollout engine's tests: pure, no processes.

Applying a decision takes effect at once for what Kubernetes does at once (a track not
named is deleted, a scale-down removes pods, a changed version starts a rolling update
that keeps the ready pods until they are replaced); new pods become ready only when the
test lets time pass for them (`settle`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from driftline.api.modeldeployment import (
    GPU,
    Analysis,
    BlueGreenStrategy,
    CanaryStep,
    CanaryStrategy,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    PrometheusGate,
    StepVerdict,
    Strategy,
)
from driftline.reconcile.transitions import EventSpec
from driftline.rollout import (
    ManualRequest,
    ObservedTrack,
    RequestAction,
    RolloutDecision,
    RolloutInput,
    TrackTarget,
    decide_rollout,
)
from driftline.rollout.capacity import gpus_per_replica

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def apply(
    tracks: Mapping[str, ObservedTrack], targets: Mapping[str, TrackTarget]
) -> dict[str, ObservedTrack]:
    """The cluster right after a decision's targets were applied."""
    applied = {}
    for name, target in targets.items():
        old = tracks.get(name)
        ready = min(old.ready, target.replicas) if old is not None else 0
        rolled_out = (
            old is not None
            and old.version == target.version
            and old.rolled_out
            and ready == target.replicas
        )
        applied[name] = ObservedTrack(target.version, target.replicas, ready, ready, rolled_out)
    return applied


def settle(
    tracks: Mapping[str, ObservedTrack], only: str | None = None
) -> dict[str, ObservedTrack]:
    """Every pod (of one track, or of all) is updated and ready."""
    return {
        name: ObservedTrack(t.version, t.replicas, t.replicas, t.replicas, True)
        if only in (None, name)
        else t
        for name, t in tracks.items()
    }


def make_spec(
    version: str = "v1",
    *,
    replicas: int = 4,
    strategy: str = "Canary",
    steps: list[tuple[int, int | None, bool]] | None = None,
    gates: bool = False,
    blue_green: dict[str, Any] | None = None,
    gpu: int | None = None,
    budget: int | None = None,
    deadline: int = 600,
    history_limit: int = 10,
) -> ModelDeploymentSpec:
    analysis = Analysis(
        metrics=[PrometheusGate(name="latency", query="latency_p99", max=0.5)] if gates else []
    )
    return ModelDeploymentSpec(
        model_version=version,
        replicas=replicas,
        gpu=GPU(count=gpu, rollout_budget=budget) if gpu is not None else None,
        strategy=Strategy(
            type=strategy,
            canary=CanaryStrategy(
                steps=[CanaryStep(weight=w, pause_seconds=p, analysis=a) for w, p, a in steps]
            )
            if steps is not None and strategy == "Canary"
            else None,
            blue_green=BlueGreenStrategy(**blue_green)
            if blue_green is not None and strategy == "BlueGreen"
            else None,
            analysis=analysis,
            progress_deadline_seconds=deadline,
        ),
        revision_history_limit=history_limit,
    )


@dataclass
class World:
    """A ModelDeployment, its status and its cluster, driven one decision at a time."""

    spec: ModelDeploymentSpec
    servable: set[str] = field(default_factory=lambda: {"v1"})
    status: ModelDeploymentStatus = field(default_factory=ModelDeploymentStatus)
    tracks: dict[str, ObservedTrack] = field(default_factory=dict)
    now: datetime = T0
    decisions: list[RolloutDecision] = field(default_factory=list)
    inputs: list[RolloutInput] = field(default_factory=list)
    requests: int = 0

    @property
    def total(self) -> int:
        return self.spec.replicas or 0

    @property
    def last(self) -> RolloutDecision:
        return self.decisions[-1]

    @property
    def events(self) -> list[EventSpec]:
        return [event for decision in self.decisions for event in decision.events]

    def reasons(self) -> list[str]:
        return [event.reason for event in self.events]

    def input(self, request: ManualRequest | None = None) -> RolloutInput:
        return RolloutInput(
            spec=self.spec,
            desired_version=self.spec.model_version,
            desired_servable=self.spec.model_version in self.servable,
            total_replicas=self.total,
            tracks=dict(self.tracks),
            status=self.status,
            request=request,
            now=self.now,
        )

    def decide(self, request: ManualRequest | None = None) -> RolloutDecision:
        rollout = self.input(request)
        decision = decide_rollout(rollout)
        self.inputs.append(rollout)
        self.decisions.append(decision)
        self.status = decision.status
        self.tracks = apply(self.tracks, decision.tracks)
        return decision

    def request(self, action: RequestAction) -> RolloutDecision:
        self.requests += 1
        return self.decide(ManualRequest(f"r{self.requests}", action))

    def settle(self, only: str | None = None) -> RolloutDecision:
        self.tracks = settle(self.tracks, only)
        return self.decide()

    def wait(self, seconds: float) -> RolloutDecision:
        self.now += timedelta(seconds=seconds)
        return self.decide()

    def set_version(self, version: str, *, servable: bool = True) -> RolloutDecision:
        if servable:
            self.servable.add(version)
        self.spec = self.spec.model_copy(update={"model_version": version})
        return self.decide()

    def verdict(self, gate: str, verdict: str, reason: str = "measured") -> RolloutDecision:
        version = self.status.canary_version or self.status.preview_version
        assert version is not None, "no rollout in flight"
        entry = StepVerdict(gate=gate, version=version, verdict=verdict, reason=reason, at=self.now)
        self.status = self.status.model_copy(update={"verdicts": [*self.status.verdicts, entry]})
        return self.decide()

    def converge(self, limit: int = 20) -> RolloutDecision:
        """Settle and decide until neither the cluster nor the status changes."""
        for _ in range(limit):
            before = (self.status.wire(), dict(self.tracks))
            self.settle()
            if (self.status.wire(), dict(self.tracks)) == before:
                return self.last
        raise AssertionError("the rollout did not converge")

    def gpus_requested(self) -> int:
        return sum(t.replicas for t in self.last.tracks.values()) * gpus_per_replica(self.spec)

    def serving_ready(self) -> int:
        """Ready pods, after the last decision was applied, on the tracks that get traffic."""
        return sum(
            self.tracks[name].ready
            for name, weight in self.last.weights.items()
            if weight > 0 and name in self.tracks
        )


def serving(version: str = "v1", **spec: Any) -> World:
    """A world whose stable track serves `version` at full size."""
    world = World(make_spec(version, **spec), servable={version})
    world.decide()
    world.converge()
    assert world.status.stable_version == version
    return world
