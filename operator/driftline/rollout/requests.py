"""Manual requests (the driftline.io/rollout-request annotation): each acted on once.

The decision that sees a request records its id in status.handledRequest, whether the
request changed anything or not (a request that does nothing now is announced by a
RequestIgnored Event, and never lingers to act later by surprise). pause, resume and
retry are handled here; promote, promote-full and abort by the strategy in effect.
"""

from __future__ import annotations

from dataclasses import dataclass

from driftline.api.modeldeployment import ModelDeploymentStatus
from driftline.reconcile.transitions import EventSpec
from driftline.rollout.types import ManualRequest, RequestAction, RolloutInput


def pending(rollout: RolloutInput) -> ManualRequest | None:
    """The request to act on: none, or one whose id was not handled yet."""
    request = rollout.request
    if request is None or request.id == rollout.status.handled_request:
        return None
    return request


def in_flight(status: ModelDeploymentStatus) -> bool:
    return (
        status.canary_version is not None
        or status.preview_version is not None
        or status.rollout_started_at is not None
    )


@dataclass(frozen=True)
class Handled:
    status: ModelDeploymentStatus
    events: tuple[EventSpec, ...]
    # the action the strategy is to act on (promote, promote-full, abort), if any
    action: RequestAction | None


def handle(rollout: RolloutInput, request: ManualRequest) -> Handled:
    status = rollout.status.model_copy(update={"handled_request": request.id})
    action = request.action
    if action == "pause":
        if status.paused_by_request:
            return _ignored(status, request, "the rollout is already paused by request")
        status = status.model_copy(update={"paused_by_request": True})
        return Handled(status, (EventSpec("Normal", "Paused", "rollout paused by request"),), None)
    if action == "resume":
        if not status.paused_by_request:
            why = "spec.paused holds it" if rollout.spec.paused else "it is not paused"
            return _ignored(status, request, f"the rollout was not paused by request ({why})")
        status = status.model_copy(update={"paused_by_request": False})
        message = "rollout resumed" + (
            " (spec.paused still holds it)" if rollout.spec.paused else ""
        )
        return Handled(status, (EventSpec("Normal", "Resumed", message),), None)
    if action == "retry":
        aborted = status.aborted_version
        if aborted is None or aborted != rollout.desired_version or in_flight(status):
            return _ignored(status, request, "there is no aborted rollout of spec.modelVersion")
        status = status.model_copy(update={"aborted_version": None})
        return Handled(status, (), None)
    return Handled(status, (), action)


def _ignored(status: ModelDeploymentStatus, request: ManualRequest, why: str) -> Handled:
    return Handled(status, (ignored_event(request, why),), None)


def ignored_event(request: ManualRequest, why: str) -> EventSpec:
    return EventSpec(
        "Warning", "RequestIgnored", f"request {request.id} ({request.action}) does nothing: {why}"
    )
