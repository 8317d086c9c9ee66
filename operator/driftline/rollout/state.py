"""What every strategy shares: the context of one decision step, its plan, and the
status transitions that start, finish, abort or supersede a rollout."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from driftline.api.modeldeployment import ModelDeploymentStatus
from driftline.reconcile.transitions import EventSpec
from driftline.rollout import capacity, history
from driftline.rollout.types import (
    STABLE,
    Condition,
    ObservedTrack,
    RequestAction,
    RolloutInput,
    TrackTarget,
)

# Degraded reasons: an abort for these is a fault, shown until the spec moves on.
ANALYSIS_FAILED = "AnalysisFailed"
DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
ABORTED_BY_REQUEST = "AbortedByRequest"
DEGRADING_ABORTS = frozenset({ANALYSIS_FAILED, DEADLINE_EXCEEDED})

# The rollout fields as they are when no rollout is in flight.
_NO_ROLLOUT: dict[str, Any] = {
    "canary_version": None,
    "canary_weight": 0,
    "current_step": None,
    "step_started_at": None,
    "preview_version": None,
    "active_track": STABLE,
    "previous_version": None,
    "rollout_started_at": None,
    "switched_at": None,
    "verdicts": [],
}


@dataclass(frozen=True)
class Context:
    """One step of a decision: the input, the status so far, and the request to act on."""

    rollout: RolloutInput
    status: ModelDeploymentStatus
    action: RequestAction | None
    stable_version: str | None

    @property
    def now(self) -> datetime:
        return self.rollout.now

    @property
    def total(self) -> int:
        return self.rollout.total_replicas

    @property
    def cap(self) -> int | None:
        return capacity.replica_cap(self.rollout.spec, self.total)

    @property
    def paused(self) -> bool:
        return self.rollout.spec.paused or self.status.paused_by_request

    @property
    def deadline(self) -> timedelta:
        return timedelta(seconds=self.rollout.spec.strategy.progress_deadline_seconds)

    def observed(self, track: str) -> ObservedTrack | None:
        return self.rollout.tracks.get(track)

    def ready(self, track: str) -> int:
        observed = self.observed(track)
        return observed.ready if observed is not None else 0

    def observed_replicas(self, track: str) -> int:
        observed = self.observed(track)
        return observed.replicas if observed is not None else 0

    def at_target(self, track: str, target: TrackTarget) -> bool:
        """The track runs the target's version at its full size, all replicas ready."""
        observed = self.observed(track)
        return (
            observed is not None
            and observed.version == target.version
            and observed.replicas == target.replicas
            and observed.rolled_out
            and observed.ready >= target.replicas
        )

    def seconds_until(self, moment: datetime) -> float:
        return (moment - self.now).total_seconds()


@dataclass(frozen=True)
class Plan:
    """What one step decided. `weights` are nominal: `traffic.route` keeps them to ready pods."""

    status: ModelDeploymentStatus
    tracks: dict[str, TrackTarget]
    weights: dict[str, int]
    active_track: str
    progressing: Condition
    events: tuple[EventSpec, ...] = ()
    degraded: Condition | None = None
    # times at which time alone changes the decision
    wake_at: tuple[datetime, ...] = ()
    # whether the request passed in was acted on (False when it does nothing now)
    acted: bool = False


def with_events(plan: Plan, *events: EventSpec) -> Plan:
    return replace(plan, events=(*events, *plan.events))


def normal(reason: str, message: str) -> EventSpec:
    return EventSpec("Normal", reason, message)


def warning(reason: str, message: str) -> EventSpec:
    return EventSpec("Warning", reason, message)


def no_rollout(status: ModelDeploymentStatus, **changes: Any) -> ModelDeploymentStatus:
    """`status` with no rollout in flight (and `changes`)."""
    return status.model_copy(update={**_NO_ROLLOUT, **changes})


def ended(
    ctx: Context,
    *,
    version: str,
    outcome: history.Outcome,
    reason: str,
    message: str,
    **changes: Any,
) -> ModelDeploymentStatus:
    """The status after the rollout of `version` ended: cleared, and one history entry.

    The revision's reason is `Reason: message`, so that the Reason can be read back (the
    Degraded condition of an aborted rollout lasts until the spec moves on).
    """
    entries = history.record(
        ctx.status.history,
        version=version,
        outcome=outcome,
        reason=f"{reason}: {message}",
        at=ctx.now,
        limit=ctx.rollout.spec.revision_history_limit,
    )
    return no_rollout(ctx.status, history=entries, **changes)


def abort_status(ctx: Context, version: str, reason: str, message: str) -> ModelDeploymentStatus:
    return ended(
        ctx,
        version=version,
        outcome="Aborted",
        reason=reason,
        message=message,
        aborted_version=version,
    )


def abort_degraded(version: str, reason: str, message: str) -> Condition | None:
    """Degraded for an abort: a fault (failed gate, deadline), not a requested abort."""
    if reason not in DEGRADING_ABORTS:
        return None
    return (True, reason, f"rollout of {version} aborted: {message}")


def abort_reason(status: ModelDeploymentStatus) -> tuple[str, str] | None:
    """(Reason, message) of the abort that holds `status.aborted_version`, from history."""
    for revision in status.history:
        if revision.version == status.aborted_version and revision.outcome == "Aborted":
            code, _, message = (revision.reason or "").partition(": ")
            return code, message
    return None


def stable_only(ctx: Context, status: ModelDeploymentStatus) -> dict[str, TrackTarget]:
    stable = status.stable_version or ctx.stable_version
    return {STABLE: TrackTarget(stable, ctx.total)} if stable else {}
