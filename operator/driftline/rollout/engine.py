"""decide_rollout: one pure decision for a ModelDeployment's tracks, traffic and status.

The strategy in effect (spec.strategy.type) decides from the status the engine wrote
last time; a decision is taken to its fixed point (a transition whose successor needs
nothing new from the cluster is taken at once), so running the engine again on its own
output with the same observations changes nothing. Two rules hold over every strategy:
traffic reaches only ready pods (`traffic.route`), and traffic is never moved off the last
ready pods: when nothing the plan sends traffic to has a ready pod, the track that serves
now keeps its pods and its traffic until the new one has ready pods.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from driftline.api.modeldeployment import ModelDeploymentStatus, StrategyType
from driftline.reconcile.transitions import EventSpec
from driftline.rollout import bluegreen, canary, capacity, requests, rolling, state, traffic
from driftline.rollout.state import Context, Plan
from driftline.rollout.types import (
    STABLE,
    RolloutDecision,
    RolloutInput,
    TrackTarget,
)

Strategy = Callable[[Context], Plan]
STRATEGIES: dict[str, Strategy] = {
    StrategyType.CANARY.value: canary.decide_canary,
    StrategyType.BLUE_GREEN.value: bluegreen.decide_bluegreen,
    StrategyType.ROLLING.value: rolling.decide_rolling,
}
# More transitions than any one decision can take (a step each, a start, an end).
_MAX_TRANSITIONS = 64


def stable_version_of(rollout: RolloutInput, status: ModelDeploymentStatus) -> str | None:
    """status.stableVersion; for a deployment that predates it, what the stable track runs."""
    if status.stable_version is not None:
        return status.stable_version
    observed = rollout.tracks.get(STABLE)
    return observed.version if observed is not None and observed.version else None


def _strategy_changed(ctx: Context, strategy: str) -> tuple[ModelDeploymentStatus, list[EventSpec]]:
    """A rollout of another strategy than the one in effect is superseded."""
    status = ctx.status
    version = None
    if status.canary_version is not None and strategy != StrategyType.CANARY.value:
        version = status.canary_version
    elif status.preview_version is not None and strategy != StrategyType.BLUE_GREEN.value:
        version = status.preview_version
    if version is None:
        return status, []
    ended = state.ended(
        ctx,
        version=version,
        outcome="Superseded",
        reason="StrategyChanged",
        message=f"spec.strategy.type changed to {strategy}",
    )
    return ended, [
        state.normal("Superseded", f"the rollout of {version} ends: strategy is now {strategy}")
    ]


def _keep_serving(
    rollout: RolloutInput, plan: Plan, weights: dict[str, int], strategy: str
) -> tuple[dict[str, TrackTarget], dict[str, int], str]:
    """Never move traffic off the last ready pods (see the module's docstring)."""
    tracks = dict(plan.tracks)
    observed = rollout.tracks
    if not tracks or traffic.serving_ready(weights, observed) > 0:
        return tracks, weights, plan.active_track
    if strategy == StrategyType.BLUE_GREEN.value:
        serving_now = [rollout.status.active_track or STABLE]
    else:
        serving_now = sorted(observed, key=lambda name: (-observed[name].ready, name))
    blue_green = strategy == StrategyType.BLUE_GREEN.value
    for name in serving_now:
        now = observed.get(name)
        if now is None or now.ready == 0:
            continue
        planned = tracks.get(name)
        kept = TrackTarget(
            planned.version if planned is not None else now.version,
            max(planned.replicas if planned is not None else 0, now.replicas),
        )
        tracks[name] = kept
        cap = capacity.replica_cap(rollout.spec, rollout.total_replicas)
        growing = sorted((n for n in tracks if n != name), key=lambda n: (-tracks[n].replicas, n))
        if cap is not None and growing:
            # the track that gives way now is the one the plan grows most
            new = growing[0]
            others = sum(t.replicas for n, t in tracks.items() if n not in (name, new))
            new_observed = observed.get(new)
            kept_replicas, new_replicas = capacity.handover(
                max(cap - others, 0),
                capacity.Side(kept.replicas, now.replicas, now.ready, floor=1),
                capacity.Side(
                    tracks[new].replicas,
                    new_observed.replicas if new_observed else 0,
                    new_observed.ready if new_observed else 0,
                ),
            )
            tracks[name] = replace(kept, replicas=kept_replicas)
            tracks[new] = replace(tracks[new], replicas=new_replicas)
        return tracks, {name: 100}, name if blue_green else plan.active_track
    return tracks, weights, plan.active_track


def decide_rollout(rollout: RolloutInput) -> RolloutDecision:
    """Which tracks run which version at what size, where traffic goes, and the status."""
    strategy = StrategyType(rollout.spec.strategy.type).value
    status = rollout.status
    events: list[EventSpec] = []
    request = requests.pending(rollout)
    action = None
    if request is not None:
        handled = requests.handle(rollout, request)
        status, action = handled.status, handled.action
        events += handled.events
    ctx = Context(rollout, status, action, stable_version_of(rollout, status))
    status, changed = _strategy_changed(ctx, strategy)
    events += changed
    ctx = replace(ctx, status=status)
    acted = False
    degraded = None
    decide = STRATEGIES[strategy]
    for _ in range(_MAX_TRANSITIONS):
        plan = decide(ctx)
        events += plan.events
        acted = acted or plan.acted
        # an abort's fault is read back from history, which a limit of 0 does not keep:
        # the decision that aborts reports it either way
        degraded = plan.degraded or degraded
        if plan.status.wire() == ctx.status.wire():
            break
        ctx = Context(rollout, plan.status, None, stable_version_of(rollout, plan.status))
    if request is not None and action is not None and not acted:
        events.append(requests.ignored_event(request, plan.progressing[2]))

    weights = traffic.route(plan.weights, rollout.tracks)
    tracks, weights, active = _keep_serving(rollout, plan, weights, strategy)
    final = plan.status.model_copy(
        update={
            "active_track": active,
            "gpus": capacity.gpus_by_track(rollout.spec, tracks),
            # A deployment taken over without status (made before this field, or whose
            # first status write was lost) records the version its stable track runs.
            "stable_version": stable_version_of(rollout, plan.status),
        }
    )
    waits = [ctx.seconds_until(moment) for moment in plan.wake_at]
    future = [seconds for seconds in waits if seconds > 0]
    return RolloutDecision(
        tracks=tracks,
        active_track=active,
        weights=weights,
        status=final,
        events=tuple(events),
        progressing=plan.progressing,
        degraded=plan.degraded or degraded,
        requeue_after=min(future) if future else None,
    )
