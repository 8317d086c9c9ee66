"""Rolling, and the settled state every strategy shares.

Rolling moves the stable track to the desired version once it is servable (its
Deployment's own rolling update does the rest). Canary and blue-green also start this way
when nothing is served yet: the first version has nothing to be compared with.
"""

from __future__ import annotations

from dataclasses import replace

from driftline.api.modeldeployment import ModelDeploymentStatus
from driftline.rollout import state
from driftline.rollout.state import Context, Plan, normal
from driftline.rollout.types import STABLE


def _forget_stale_abort(ctx: Context) -> ModelDeploymentStatus:
    """An abort holds only while the spec names the aborted version."""
    status = ctx.status
    if status.aborted_version is not None and status.aborted_version != ctx.rollout.desired_version:
        return status.model_copy(update={"aborted_version": None})
    return status


def may_start(ctx: Context, status: ModelDeploymentStatus, stable: str | None) -> bool:
    """Whether the desired version should start rolling out now."""
    rollout = ctx.rollout
    return (
        rollout.desired_servable
        and rollout.desired_version != stable
        and rollout.desired_version != status.aborted_version
        and not ctx.paused
    )


def settled(ctx: Context, status: ModelDeploymentStatus) -> Plan:
    """No rollout in flight: the stable track serves the stable version at full size."""
    desired = ctx.rollout.desired_version
    stable = status.stable_version or ctx.stable_version
    tracks = state.stable_only(ctx, status)
    degraded = None
    if stable is None:
        progressing = (
            False,
            "VersionNotServable",
            f"ModelVersion {desired} is not servable yet; nothing is served",
        )
    elif status.aborted_version is not None and status.aborted_version == desired:
        reason, detail = state.abort_reason(status) or (state.ABORTED_BY_REQUEST, "")
        progressing = (
            False,
            "RolloutAborted",
            f"the rollout of {desired} was aborted ({reason}{': ' + detail if detail else ''}); "
            f"{stable} serves all traffic until spec.modelVersion changes or a retry is requested",
        )
        degraded = state.abort_degraded(desired, reason, detail)
    elif desired != stable and not ctx.rollout.desired_servable:
        progressing = (
            False,
            "VersionNotServable",
            f"ModelVersion {desired} is not servable; {stable} keeps serving",
        )
    elif desired != stable and ctx.paused:
        progressing = (True, "Paused", f"paused: {desired} waits to roll out; {stable} serves")
    else:
        ready = ctx.ready(STABLE)
        progressing = (
            False,
            "RolloutCompleted",
            f"{stable} serves all traffic ({ready}/{ctx.total} replicas ready)",
        )
    return Plan(
        status=status.model_copy(update={"active_track": STABLE}),
        tracks=tracks,
        weights={STABLE: 100} if tracks else {},
        active_track=STABLE,
        progressing=progressing,
        degraded=degraded,
    )


def decide_rolling(ctx: Context) -> Plan:
    """Rolling: the stable track moves to the desired version at once."""
    status = _forget_stale_abort(ctx)
    stable = status.stable_version or ctx.stable_version
    desired = ctx.rollout.desired_version
    if may_start(ctx, status, stable):
        status = status.model_copy(
            update={
                "stable_version": desired,
                "rollout_started_at": ctx.now,
                "step_started_at": ctx.now,
            }
        )
        if ctx.status.rollout_started_at is not None and stable is not None:
            status = state.ended(
                replace(ctx, status=status),
                version=stable,
                outcome="Superseded",
                reason="Superseded",
                message=f"{desired} replaces it before it was rolled out",
                stable_version=desired,
                rollout_started_at=ctx.now,
                step_started_at=ctx.now,
            )
        plan = settled(ctx, status)
        return replace(
            plan,
            events=(normal("RolloutStarted", f"moving the stable track to {desired}"),),
            progressing=(True, "RolloutStarted", f"moving the stable track to {desired}"),
        )
    started = status.step_started_at or status.rollout_started_at
    if status.rollout_started_at is None or stable is None or started is None:
        return settled(ctx, status)
    target = state.stable_only(ctx, status)[STABLE]
    if ctx.at_target(STABLE, target):
        done = state.ended(
            replace(ctx, status=status),
            version=stable,
            outcome="Promoted",
            reason="RolloutCompleted",
            message=f"the stable track serves {stable}",
            stable_version=stable,
        )
        plan = settled(ctx, done)
        return replace(
            plan,
            events=(normal("RolloutCompleted", f"{stable} serves all traffic"),),
        )
    plan = settled(ctx, status)
    message = f"moving the stable track to {stable}: {ctx.ready(STABLE)}/{ctx.total} ready"
    deadline = started + ctx.deadline
    if ctx.now >= deadline:
        return replace(
            plan,
            progressing=(True, "RolloutStarted", message),
            degraded=(
                True,
                state.DEADLINE_EXCEEDED,
                f"{stable} is not rolled out {ctx.deadline.total_seconds():.0f}s after it began",
            ),
        )
    return replace(plan, progressing=(True, "RolloutStarted", message), wake_at=(deadline,))
