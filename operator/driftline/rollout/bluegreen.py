"""Blue-green: the new version runs beside the old one, then all traffic switches at once.

Phases, read from status:
- preview (preview_version set, switched_at unset): the preview track comes up at full
  size (or previewReplicas) while stable serves; the pre-promotion gate runs where gates
  are configured; the switch follows automatically (autoPromote) or on a promote request,
  and only once every preview replica is ready.
- switched (switched_at and previous_version set): the Service sends traffic to the
  preview track; the old version stays on the stable track for scaleDownDelaySeconds
  while the post-promotion gate runs. An abort, a failed gate or a newer version switches
  traffic back to the stable track.
- committed (switched_at set, previous_version cleared): the stable track moves to the new
  version at full size; once it is rolled out the Service returns to it and the preview
  track goes. Like a canary's promotion, this is neither aborted nor superseded.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from driftline.api.modeldeployment import BlueGreenStrategy
from driftline.rollout import capacity, gates, rolling, state
from driftline.rollout.state import Context, Plan, normal, warning
from driftline.rollout.types import POST_PROMOTION, PRE_PROMOTION, PREVIEW, STABLE, TrackTarget


def _settings(ctx: Context) -> BlueGreenStrategy:
    return ctx.rollout.spec.strategy.blue_green or BlueGreenStrategy()


def _preview_size(ctx: Context) -> int:
    return _settings(ctx).preview_replicas or ctx.total


def decide_bluegreen(ctx: Context) -> Plan:
    status = ctx.status
    version = status.preview_version
    if version is None:
        return _idle(ctx)
    if status.switched_at is None:
        return _preview(ctx, version)
    if status.previous_version is not None:
        return _switched(ctx, version, status.switched_at)
    return _committed(ctx, version)


def _idle(ctx: Context) -> Plan:
    if ctx.stable_version is None or ctx.status.rollout_started_at is not None:
        return rolling.decide_rolling(ctx)
    status = ctx.status
    if status.aborted_version is not None and status.aborted_version != ctx.rollout.desired_version:
        status = status.model_copy(update={"aborted_version": None})
    if not rolling.may_start(ctx, status, ctx.stable_version):
        return rolling.settled(ctx, status)
    desired = ctx.rollout.desired_version
    started = status.model_copy(
        update={
            "preview_version": desired,
            "step_started_at": ctx.now,
            "rollout_started_at": ctx.now,
            "verdicts": [],
            "active_track": STABLE,
        }
    )
    plan = _preview(replace(ctx, status=started, action=None), desired)
    event = normal(
        "RolloutStarted",
        f"preview of {desired} started beside {ctx.stable_version} ({_preview_size(ctx)} replicas)",
    )
    return state.with_events(replace(plan, status=started), event)


def _targets(ctx: Context, version: str, *, committed: bool) -> dict[str, TrackTarget]:
    stable_version = ctx.stable_version
    assert stable_version is not None  # blue-green starts only beside a stable version
    preview_want = _preview_size(ctx)
    if committed:
        # the stable track grows to the new version; the preview (serving) gives way
        preview, stable = capacity.handover(
            ctx.cap,
            capacity.Side(
                preview_want,
                ctx.observed_replicas(PREVIEW),
                ctx.ready(PREVIEW),
                floor=1,
            ),
            capacity.Side(ctx.total, ctx.observed_replicas(STABLE), ctx.ready(STABLE)),
        )
        return {STABLE: TrackTarget(version, stable), PREVIEW: TrackTarget(version, preview)}
    # the old version keeps at least one replica: it serves, or is the way back
    stable, preview = capacity.handover(
        ctx.cap,
        capacity.Side(ctx.total, ctx.observed_replicas(STABLE), ctx.ready(STABLE), floor=1),
        capacity.Side(preview_want, ctx.observed_replicas(PREVIEW), ctx.ready(PREVIEW)),
    )
    return {STABLE: TrackTarget(stable_version, stable), PREVIEW: TrackTarget(version, preview)}


def _plan(
    ctx: Context, version: str, active: str, progressing: state.Condition, *, committed: bool
) -> Plan:
    return Plan(
        status=ctx.status.model_copy(update={"active_track": active}),
        tracks=_targets(ctx, version, committed=committed),
        weights={active: 100},
        active_track=active,
        progressing=progressing,
    )


def _ended(ctx: Context, status: state.ModelDeploymentStatus, *events: state.EventSpec) -> Plan:
    return replace(rolling.settled(ctx, status), events=events)


def _back(
    ctx: Context, version: str, reason: str, message: str, *, switched: bool, acted: bool = False
) -> Plan:
    """Abort (reason set) or supersede (reason Superseded): traffic back on stable."""
    if reason == "Superseded":
        status = state.ended(
            ctx, version=version, outcome="Superseded", reason=reason, message=message
        )
        events = [normal("Superseded", f"the rollout of {version} is superseded: {message}")]
    else:
        status = state.abort_status(ctx, version, reason, message)
        events = [warning("RolloutAborted", f"rollout of {version} aborted ({reason}): {message}")]
    if switched:
        events.insert(
            0, warning("SwitchedBack", f"traffic switched back to {ctx.stable_version}: {message}")
        )
    degraded = state.abort_degraded(version, reason, message)
    return replace(_ended(ctx, status, *events), acted=acted, degraded=degraded)


def _gate(ctx: Context, gate: str, version: str) -> tuple[str, str, str]:
    """(verdict, reason, deciding gate) of a blue-green gate, background analysis included."""
    if not ctx.rollout.analysed:
        return "Passed", "no gates configured", gate
    return gates.step_verdict(ctx.status.verdicts, gate, version, background=ctx.rollout.background)


def _switch(ctx: Context, version: str, why: str, *, full: bool) -> Plan:
    update: dict[str, object] = {
        "switched_at": ctx.now,
        "active_track": PREVIEW,
        "previous_version": None if full else ctx.stable_version,
        "step_started_at": ctx.now,
    }
    status = ctx.status.model_copy(update=update)
    message = f"traffic switched to {version} on the preview track ({why})"
    plan = _plan(
        replace(ctx, status=status),
        version,
        PREVIEW,
        (True, "StepAdvanced", message),
        committed=full,
    )
    return replace(plan, events=(normal("Switched", message),), acted=ctx.action is not None)


def _preview(ctx: Context, version: str) -> Plan:
    desired = ctx.rollout.desired_version
    if desired != version:
        return _back(
            ctx, version, "Superseded", f"spec.modelVersion changed to {desired}", switched=False
        )
    if ctx.action == "abort":
        return _back(
            ctx, version, state.ABORTED_BY_REQUEST, "abort requested", switched=False, acted=True
        )
    verdict, why, deciding = _gate(ctx, PRE_PROMOTION, version)
    if verdict == "Failed":
        message = f"gate {deciding} failed: {why}".rstrip(": ")
        return _back(ctx, version, state.ANALYSIS_FAILED, message, switched=False)
    at = f"preview of {version} beside {ctx.stable_version}"
    if ctx.paused:
        return _plan(ctx, version, STABLE, (True, "Paused", f"{at}; paused"), committed=False)
    size = _preview_size(ctx)
    ready = ctx.at_target(PREVIEW, TrackTarget(version, size))
    started = ctx.status.step_started_at or ctx.now
    deadline = started + ctx.deadline
    if not ready and ctx.now >= deadline:
        message = f"the preview is not ready {ctx.deadline.total_seconds():.0f}s after it began"
        return _back(ctx, version, state.DEADLINE_EXCEEDED, message, switched=False)
    if ready and ctx.action in ("promote", "promote-full"):
        return _switch(ctx, version, f"{ctx.action} requested", full=ctx.action == "promote-full")
    if ready and verdict == "Passed" and _settings(ctx).auto_promote:
        return _switch(ctx, version, f"{PRE_PROMOTION} passed", full=False)
    if not ready:
        progressing = (
            True,
            "RolloutStarted",
            f"{at}; {ctx.ready(PREVIEW)}/{size} preview replicas ready",
        )
    elif verdict == "Inconclusive":
        progressing = (
            True,
            "AnalysisInconclusive",
            f"{at}; gate {deciding} is inconclusive: {why}; promote or abort",
        )
    elif verdict == "Running":
        progressing = (True, "WaitingForAnalysis", f"{at}; waiting for gate {PRE_PROMOTION}")
    else:
        progressing = (True, "Paused", f"{at}; ready, waiting for a manual promote")
    plan = _plan(ctx, version, STABLE, progressing, committed=False)
    return replace(plan, wake_at=() if ready else (deadline,))


def _switched(ctx: Context, version: str, switched_at: datetime) -> Plan:
    desired = ctx.rollout.desired_version
    if desired != version:
        return _back(
            ctx, version, "Superseded", f"spec.modelVersion changed to {desired}", switched=True
        )
    if ctx.action == "abort":
        return _back(
            ctx, version, state.ABORTED_BY_REQUEST, "abort requested", switched=True, acted=True
        )
    verdict, why, deciding = _gate(ctx, POST_PROMOTION, version)
    if verdict == "Failed":
        message = f"gate {deciding} failed: {why}".rstrip(": ")
        return _back(ctx, version, state.ANALYSIS_FAILED, message, switched=True)
    at = f"{version} serves on the preview track; {ctx.stable_version} kept on stable"
    if ctx.paused:
        return _plan(ctx, version, PREVIEW, (True, "Paused", f"{at}; paused"), committed=False)
    if ctx.action in ("promote", "promote-full"):
        return _commit(ctx, version, f"{ctx.action} requested")
    delay_end = switched_at + timedelta(seconds=_settings(ctx).scale_down_delay_seconds)
    if ctx.now >= delay_end and verdict == "Passed":
        return _commit(ctx, version, f"{POST_PROMOTION} passed")
    if verdict == "Inconclusive":
        progressing = (
            True,
            "AnalysisInconclusive",
            f"{at}; gate {deciding} is inconclusive: {why}; promote or abort",
        )
    elif verdict == "Running":
        progressing = (True, "WaitingForAnalysis", f"{at}; waiting for gate {POST_PROMOTION}")
    else:
        progressing = (True, "StepAdvanced", f"{at} until {delay_end.isoformat()}")
    plan = _plan(ctx, version, PREVIEW, progressing, committed=False)
    return replace(plan, wake_at=(delay_end,) if ctx.now < delay_end else ())


def _commit(ctx: Context, version: str, why: str) -> Plan:
    status = ctx.status.model_copy(update={"previous_version": None, "step_started_at": ctx.now})
    message = f"the stable track moves to {version} ({why})"
    plan = _plan(
        replace(ctx, status=status),
        version,
        PREVIEW,
        (True, "StepAdvanced", message),
        committed=True,
    )
    return replace(plan, events=(normal("StepAdvanced", message),), acted=ctx.action is not None)


def _committed(ctx: Context, version: str) -> Plan:
    target = TrackTarget(version, ctx.total)
    if ctx.at_target(STABLE, target):
        status = state.ended(
            ctx,
            version=version,
            outcome="Promoted",
            reason="RolloutCompleted",
            message=f"the stable track serves {version}",
            stable_version=version,
        )
        return _ended(ctx, status, normal("RolloutCompleted", f"{version} is promoted to stable"))
    message = f"moving the stable track to {version}: {ctx.ready(STABLE)}/{ctx.total} ready"
    plan = _plan(ctx, version, PREVIEW, (True, "StepAdvanced", message), committed=True)
    deadline = (ctx.status.step_started_at or ctx.now) + ctx.deadline
    if ctx.now >= deadline:
        return replace(
            plan, degraded=(True, state.DEADLINE_EXCEEDED, f"{message}, past the progress deadline")
        )
    return replace(plan, wake_at=(deadline,))
