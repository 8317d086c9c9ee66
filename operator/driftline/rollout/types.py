"""The rollout engine's inputs and outputs.

The engine is a pure function of these: what the cluster reports, the spec, the status it
wrote last time, an optional manual request and the time. It keeps no memory of its own,
so a restarted operator continues exactly where the last one stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

from driftline.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from driftline.reconcile.transitions import EventSpec

Verdict = Literal["Running", "Passed", "Failed", "Inconclusive"]
# Where `driftline rollout promote|abort|...` puts its request: an annotation on the
# ModelDeployment, never its spec. JSON: {"id": ..., "action": ..., "requestedAt": ...}.
REQUEST_ANNOTATION: Final = "driftline.io/rollout-request"
RequestAction = Literal["promote", "promote-full", "abort", "retry", "pause", "resume"]
REQUEST_ACTIONS: Final[tuple[RequestAction, ...]] = (
    "promote",
    "promote-full",
    "abort",
    "retry",
    "pause",
    "resume",
)

# Names of the track Deployments; fixed, never renamed.
STABLE: Final = "stable"
CANARY: Final = "canary"
PREVIEW: Final = "preview"
TRACKS: Final[tuple[str, ...]] = (STABLE, CANARY, PREVIEW)

# Gate names of blue-green verdicts; a canary step's gate is `step_gate(n)`.
PRE_PROMOTION: Final = "pre-promotion"
POST_PROMOTION: Final = "post-promotion"


def step_gate(step: int) -> str:
    return f"step-{step}"


@dataclass(frozen=True)
class ObservedTrack:
    """One track's Deployment as the cluster reports it.

    `replicas` is the Deployment's spec.replicas (what was last asked of it), `ready` and
    `available` its status counts.
    """

    version: str
    replicas: int
    ready: int
    available: int
    # the Deployment observed its spec and all replicas are updated, ready, available
    rolled_out: bool


@dataclass(frozen=True)
class ManualRequest:
    id: str
    action: RequestAction


def spec_has_gates(spec: ModelDeploymentSpec) -> bool:
    """Whether the spec alone configures a gate (the drift gate also needs a DriftPolicy,
    which only the caller knows: RolloutInput.gated says it)."""
    analysis = spec.strategy.analysis
    return bool(analysis.metrics or analysis.builtin is not None or analysis.divergence is not None)


@dataclass(frozen=True)
class RolloutInput:
    spec: ModelDeploymentSpec
    desired_version: str  # spec.modelVersion
    desired_servable: bool  # its ModelVersion exists and is Ready/Deprecated
    total_replicas: int  # spec.replicas, or the HPA-decided count (scale subresource)
    tracks: Mapping[str, ObservedTrack]  # what the cluster reports now
    status: ModelDeploymentStatus  # the engine's memory (read back every time)
    request: ManualRequest | None  # acted on only if request.id != status.handled_request
    now: datetime
    # whether any analysis gate runs; None: whether the spec configures one (the drift
    # gate counts only where a DriftPolicy targets the deployment, which the caller knows)
    gated: bool | None = None

    @property
    def analysed(self) -> bool:
        return self.gated if self.gated is not None else spec_has_gates(self.spec)

    @property
    def background(self) -> bool:
        return self.analysed and self.spec.strategy.analysis.background


@dataclass(frozen=True)
class TrackTarget:
    version: str
    replicas: int


Condition = tuple[bool, str, str]  # (status, Reason, message)


@dataclass(frozen=True)
class RolloutDecision:
    # every track that must exist, with its version and replicas; a track not named is removed
    tracks: Mapping[str, TrackTarget]
    # the track whose pods the main Service sends traffic to: "stable" normally,
    # "preview" after a blue-green switch
    active_track: str
    # percent of traffic per track that gets traffic (only tracks with ready pods); for
    # the HTTPRoute. Sums to 100 whenever any track is named.
    weights: Mapping[str, int]
    # the new status: rollout fields only, the rest copied from the input unchanged
    status: ModelDeploymentStatus
    events: tuple[EventSpec, ...]
    progressing: Condition
    degraded: Condition | None
    # seconds until time alone changes the decision (a pause ending, a deadline, a delay)
    requeue_after: float | None
