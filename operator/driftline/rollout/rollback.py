"""Drift rollback: a DriftPolicy's request to take traffic off a version that drifted.

The user's spec is never edited: a rollback is a status fact (`status.rolledBackVersion`,
`status.rolledBackTo`) that holds while the spec still names the drifted version, and
ends as soon as it names another. While it holds, the engine is told to serve the version
rolled back to, moved onto the stable track at once (the Rolling strategy: a rollback
does not wait for canary steps). A canary of the drifted version in flight is aborted
instead. Each request (by its time) is acted on once.

The version returned to is the newest Promoted one in the deployment's history that never
drifted, failed or was rolled back, and is servable; with none, nothing moves, and the
RolledBack condition says so (an alert, not a loop).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime

from driftline.api.modeldeployment import ModelDeploymentStatus, Strategy, StrategyType
from driftline.reconcile.transitions import EventSpec
from driftline.rollout import history
from driftline.rollout.types import ManualRequest, RolloutInput

DRIFT_ROLLBACK = "DriftRollback"


@dataclass(frozen=True)
class RollbackRequest:
    """What the DriftPolicy asks (its status.rollback)."""

    policy: str
    version: str
    at: datetime
    message: str


@dataclass(frozen=True)
class Applied:
    rollout: RolloutInput
    events: tuple[EventSpec, ...] = ()
    # the RolledBack condition: (status, reason, message)
    condition: tuple[bool, str, str] = (False, "NoRollback", "no drift rollback holds")
    # a rollback was carried out by this decision (for the operator's metric)
    rolled_back: bool = False


def bad_versions(status: ModelDeploymentStatus) -> set[str]:
    """Versions never to return to: rolled back for drift, or aborted."""
    found = {r.version for r in status.history if r.outcome in ("RolledBack", "Aborted")}
    if status.rolled_back_version:
        found.add(status.rolled_back_version)
    return found


def good_version(
    status: ModelDeploymentStatus, drifted: str, servable: Collection[str]
) -> str | None:
    """The newest promoted version that is not `drifted`, never went bad, and is servable."""
    bad = bad_versions(status) | {drifted}
    for revision in status.history:
        if (
            revision.outcome == "Promoted"
            and revision.version not in bad
            and revision.version in servable
        ):
            return revision.version
    return None


def apply_rollback(
    rollout: RolloutInput, request: RollbackRequest | None, servable: Collection[str]
) -> Applied:
    """The engine's input with a drift rollback applied (or still holding)."""
    status = rollout.status
    events: list[EventSpec] = []
    rolled_back = False
    if status.rolled_back_version and rollout.desired_version != status.rolled_back_version:
        # the spec moved on: the rollback ends
        status = status.model_copy(update={"rolled_back_version": None, "rolled_back_to": None})
    if request is not None and (
        status.rollback_handled_at is None or request.at > status.rollback_handled_at
    ):
        status = status.model_copy(update={"rollback_handled_at": request.at})
        in_flight = request.version in (status.canary_version, status.preview_version)
        if in_flight:
            abort = ManualRequest(id=f"drift-rollback-{request.at.isoformat()}", action="abort")
            events.append(
                EventSpec(
                    "Warning",
                    "RolledBack",
                    f"the rollout of {request.version} is aborted: DriftPolicy "
                    f"{request.policy}: {request.message}",
                )
            )
            rollout = replace(rollout, status=status, request=abort)
            return Applied(
                rollout,
                tuple(events),
                (True, DRIFT_ROLLBACK, f"the rollout of {request.version} was aborted for drift"),
                rolled_back=True,
            )
        if request.version == status.stable_version and rollout.desired_version == request.version:
            target = good_version(status, request.version, servable)
            if target is None:
                events.append(
                    EventSpec(
                        "Warning",
                        "NoGoodVersion",
                        f"{request.version} drifted ({request.message}) but no earlier version "
                        "is fit to return to; traffic stays on it",
                    )
                )
                rollout = replace(rollout, status=status)
                return Applied(
                    rollout,
                    tuple(events),
                    (
                        False,
                        "NoGoodVersion",
                        f"{request.version} drifted and no earlier promoted version that never "
                        "drifted or failed is servable: nothing to roll back to",
                    ),
                )
            entries = history.record(
                status.history,
                version=request.version,
                outcome="RolledBack",
                reason=f"{DRIFT_ROLLBACK}: {request.message}",
                at=rollout.now,
                limit=max(rollout.spec.revision_history_limit, 1),
            )
            status = status.model_copy(
                update={
                    "rolled_back_version": request.version,
                    "rolled_back_to": target,
                    "history": entries,
                }
            )
            events.append(
                EventSpec(
                    "Warning",
                    "RolledBack",
                    f"{request.version} drifted (DriftPolicy {request.policy}: "
                    f"{request.message}); traffic goes back to {target}",
                )
            )
            rolled_back = True
    rollout = replace(rollout, status=status)
    if status.rolled_back_version and status.rolled_back_to:
        rolling = Strategy(
            type=StrategyType.ROLLING,
            analysis=rollout.spec.strategy.analysis,
            progress_deadline_seconds=rollout.spec.strategy.progress_deadline_seconds,
        )
        spec = rollout.spec.model_copy(
            update={"strategy": rolling, "model_version": status.rolled_back_to}
        )
        rollout = replace(
            rollout,
            spec=spec,
            desired_version=status.rolled_back_to,
            desired_servable=status.rolled_back_to in servable,
        )
        condition = (
            True,
            DRIFT_ROLLBACK,
            f"{status.rolled_back_version} drifted; {status.rolled_back_to} serves until "
            "spec names another version",
        )
        return Applied(rollout, tuple(events), condition, rolled_back)
    return Applied(rollout, tuple(events), rolled_back=rolled_back)
