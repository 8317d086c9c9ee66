"""Canary: the new version takes a growing share of traffic, step by step, then is promoted.

State (in status): canary_version, current_step (len(steps) while promoting),
step_started_at, canary_weight, rollout_started_at. A step is complete when the canary
track runs its replicas all ready, its pause is over and, where the step is analysed and
gates are configured, its verdict (gate step-N) is Passed. After the last step the stable
track moves to the new version at full size; once it is rolled out the canary track goes.
A promotion that has begun is committed: it is neither aborted nor superseded (the stable
track already runs the new version), a newer version starts after it.

Choices where the issue leaves room:
- promote completes the current step now, ready or not (traffic still reaches only ready
  pods); it skips the pause, a Running or Inconclusive verdict, never a Failed one.
- While paused (spec.paused or a pause request) no step advances and the progress
  deadline does not abort; promote requests are refused, abort acts. The deadline counts
  from the step's start, so a step resumed past it with pods still not ready aborts.
- A failed gate or the deadline aborts; so does a new version, as a supersede.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from driftline.api.modeldeployment import CanaryStep, CanaryStrategy
from driftline.rollout import capacity, gates, rolling, state, traffic
from driftline.rollout.state import Context, Plan, normal
from driftline.rollout.types import CANARY, STABLE, TrackTarget, step_gate


def steps_of(ctx: Context) -> list[CanaryStep]:
    strategy = ctx.rollout.spec.strategy.canary or CanaryStrategy()
    return strategy.steps


def decide_canary(ctx: Context) -> Plan:
    status = ctx.status
    if status.canary_version is None:
        return _idle(ctx)
    if (status.current_step or 0) >= len(steps_of(ctx)):
        return _promoting(ctx, status.canary_version)
    return _at_step(ctx, status.canary_version, status.current_step or 0)


def _idle(ctx: Context) -> Plan:
    if ctx.stable_version is None or ctx.status.rollout_started_at is not None:
        return rolling.decide_rolling(ctx)
    status = ctx.status
    if status.aborted_version is not None and status.aborted_version != ctx.rollout.desired_version:
        status = status.model_copy(update={"aborted_version": None})
    if not rolling.may_start(ctx, status, ctx.stable_version):
        return rolling.settled(ctx, status)
    desired = ctx.rollout.desired_version
    first = steps_of(ctx)[0]
    started = status.model_copy(
        update={
            "canary_version": desired,
            "current_step": 0,
            "step_started_at": ctx.now,
            "rollout_started_at": ctx.now,
            "canary_weight": first.weight,
            "verdicts": [],
            "active_track": STABLE,
        }
    )
    plan = _at_step(replace(ctx, status=started, action=None), desired, 0)
    event = normal(
        "RolloutStarted",
        f"canary of {desired} started at {first.weight}% (step 1/{len(steps_of(ctx))}); "
        f"{ctx.stable_version} is stable",
    )
    return state.with_events(replace(plan, status=started), event)


def _targets(ctx: Context, version: str, weight: int, *, promoting: bool) -> dict[str, TrackTarget]:
    stable_version = ctx.stable_version
    assert stable_version is not None  # a canary starts only beside a stable version
    stable_want, canary_want = traffic.split_replicas(ctx.total, weight)
    if promoting:
        # the stable track grows to the new version at full size; the canary gives way
        canary, stable = capacity.handover(
            ctx.cap,
            capacity.Side(
                canary_want,
                ctx.observed_replicas(CANARY),
                ctx.ready(CANARY),
                floor=1 if weight > 0 else 0,
            ),
            capacity.Side(ctx.total, ctx.observed_replicas(STABLE), ctx.ready(STABLE)),
        )
        return {STABLE: TrackTarget(version, stable), CANARY: TrackTarget(version, canary)}
    stable, canary = capacity.handover(
        ctx.cap,
        capacity.Side(
            stable_want,
            ctx.observed_replicas(STABLE),
            ctx.ready(STABLE),
            floor=1 if weight < 100 else 0,
        ),
        capacity.Side(canary_want, ctx.observed_replicas(CANARY), ctx.ready(CANARY)),
    )
    return {STABLE: TrackTarget(stable_version, stable), CANARY: TrackTarget(version, canary)}


def _plan(
    ctx: Context, version: str, weight: int, progressing: state.Condition, *, promoting: bool
) -> Plan:
    return Plan(
        status=ctx.status,
        tracks=_targets(ctx, version, weight, promoting=promoting),
        weights={STABLE: 100 - weight, CANARY: weight},
        active_track=STABLE,
        progressing=progressing,
    )


def _abort(ctx: Context, version: str, reason: str, message: str, *, acted: bool = False) -> Plan:
    status = state.abort_status(ctx, version, reason, message)
    plan = rolling.settled(ctx, status)
    event = state.warning("RolloutAborted", f"rollout of {version} aborted ({reason}): {message}")
    degraded = state.abort_degraded(version, reason, message)
    return replace(plan, events=(event,), acted=acted, degraded=degraded)


def _supersede(ctx: Context, version: str) -> Plan:
    desired = ctx.rollout.desired_version
    status = state.ended(
        ctx,
        version=version,
        outcome="Superseded",
        reason="Superseded",
        message=f"spec.modelVersion changed to {desired}",
    )
    event = normal("Superseded", f"the rollout of {version} is superseded by {desired}")
    return replace(rolling.settled(ctx, status), events=(event,))


def _advance(ctx: Context, version: str, step: int, why: str, *, acted: bool = False) -> Plan:
    steps = steps_of(ctx)
    weight = ctx.status.canary_weight
    if step + 1 < len(steps):
        weight = max(weight, steps[step + 1].weight)
        message = f"step {step + 2}/{len(steps)}: canary {version} at {weight}% ({why})"
    else:
        message = f"all steps passed ({why}): promoting {version}"
    status = ctx.status.model_copy(
        update={"current_step": step + 1, "step_started_at": ctx.now, "canary_weight": weight}
    )
    progressing = (True, "StepAdvanced", message)
    plan = _plan(
        replace(ctx, status=status), version, weight, progressing, promoting=step + 1 >= len(steps)
    )
    return replace(plan, events=(normal("StepAdvanced", message),), acted=acted)


def _promote_full(ctx: Context, version: str) -> Plan:
    steps = steps_of(ctx)
    status = ctx.status.model_copy(update={"current_step": len(steps), "step_started_at": ctx.now})
    message = f"promote-full requested: promoting {version}"
    plan = _plan(
        replace(ctx, status=status),
        version,
        status.canary_weight,
        (True, "StepAdvanced", message),
        promoting=True,
    )
    return replace(plan, events=(normal("StepAdvanced", message),), acted=True)


def _at_step(ctx: Context, version: str, step: int) -> Plan:
    desired = ctx.rollout.desired_version
    if desired != version:
        return _supersede(ctx, version)
    if ctx.action == "abort":
        return _abort(ctx, version, state.ABORTED_BY_REQUEST, "abort requested", acted=True)
    steps = steps_of(ctx)
    current = steps[step]
    gate = step_gate(step)
    analysed = current.analysis and ctx.rollout.analysed
    verdict, why, deciding = gates.step_verdict(
        ctx.status.verdicts, gate if analysed else None, version, background=ctx.rollout.background
    )
    if verdict == "Failed":
        return _abort(
            ctx, version, state.ANALYSIS_FAILED, f"gate {deciding} failed: {why}".rstrip(": ")
        )
    weight = max(ctx.status.canary_weight, current.weight)
    at = f"step {step + 1}/{len(steps)}: canary {version} at {weight}%"
    started = ctx.status.step_started_at or ctx.now
    reason = "RolloutStarted" if step == 0 else "StepAdvanced"
    if ctx.paused:
        why = "spec.paused" if ctx.rollout.spec.paused else "a pause request"
        return _plan(
            ctx, version, weight, (True, "Paused", f"{at}; held by {why}"), promoting=False
        )
    _, canary_want = traffic.split_replicas(ctx.total, weight)
    ready = ctx.at_target(CANARY, TrackTarget(version, canary_want))
    deadline = started + ctx.deadline
    if not ready and ctx.now >= deadline:
        return _abort(
            ctx,
            version,
            state.DEADLINE_EXCEEDED,
            f"the canary is not ready {ctx.deadline.total_seconds():.0f}s after step {step + 1} began",
        )
    if ctx.action == "promote-full":
        return _promote_full(ctx, version)
    if ctx.action == "promote":
        return _advance(ctx, version, step, "promote requested", acted=True)
    wake: list[datetime] = [] if ready else [deadline]
    if current.pause_seconds is None:
        pause_over = True
    elif current.pause_seconds == 0:
        pause_over = False
    else:
        pause_end = started + timedelta(seconds=current.pause_seconds)
        pause_over = ctx.now >= pause_end
        if not pause_over:
            wake.append(pause_end)
    if ready and pause_over and verdict == "Passed":
        return _advance(ctx, version, step, f"{gate} passed" if analysed else f"{gate} complete")
    if not ready:
        observed = ctx.ready(CANARY)
        progressing = (True, reason, f"{at}; {observed}/{canary_want} canary replicas ready")
    elif verdict == "Inconclusive":
        progressing = (
            True,
            "AnalysisInconclusive",
            f"{at}; gate {deciding} is inconclusive: {why}; promote or abort",
        )
    elif verdict == "Running":
        progressing = (True, "WaitingForAnalysis", f"{at}; waiting for gate {gate}")
    elif current.pause_seconds == 0:
        progressing = (True, "Paused", f"{at}; waiting for a manual promote")
    else:
        progressing = (True, reason, f"{at}; paused until {wake[-1].isoformat()}")
    plan = _plan(ctx, version, weight, progressing, promoting=False)
    return replace(plan, wake_at=tuple(wake))


def _promoting(ctx: Context, version: str) -> Plan:
    target = TrackTarget(version, ctx.total)
    weight = ctx.status.canary_weight
    if ctx.at_target(STABLE, target):
        status = state.ended(
            ctx,
            version=version,
            outcome="Promoted",
            reason="RolloutCompleted",
            message=f"all steps passed; the stable track serves {version}",
            stable_version=version,
        )
        event = normal("RolloutCompleted", f"{version} is promoted to stable")
        return replace(rolling.settled(ctx, status), events=(event,))
    message = f"promoting {version}: {ctx.ready(STABLE)}/{ctx.total} stable replicas ready"
    plan = _plan(ctx, version, weight, (True, "StepAdvanced", message), promoting=True)
    deadline = (ctx.status.step_started_at or ctx.now) + ctx.deadline
    if ctx.now >= deadline:
        # the stable track already runs the new version: report, do not undo
        return replace(
            plan,
            degraded=(True, state.DEADLINE_EXCEEDED, f"{message}, past the progress deadline"),
        )
    return replace(plan, wake_at=(deadline,))
