"""GPU capacity: how many replicas all tracks together may request during a rollout.

Every replica of every track requests the same GPUs (spec.gpu.count; none without
spec.gpu). With spec.gpu.rolloutBudget set, the GPUs requested over all tracks never
exceed the stable track's at full size plus the budget, that is at most
`total + budget // gpus_per_replica` replicas in all. Without a budget (or without GPUs)
there is no cap.

When a growing track needs more than the cap leaves, the track it replaces gives way
one replica at a time (`handover`): the old track is asked to shrink only as far as the
new track's next replica needs, and the new track grows only into room the old track's
Deployment has already given up. The old track keeps at least one replica while it
serves traffic, except where the cap holds a single replica: then there is no other way
and it yields its last one. The budget counts replicas asked for; a terminating pod may
hold its GPU a little longer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from driftline.api.modeldeployment import ModelDeploymentSpec
from driftline.rollout.types import TrackTarget


def gpus_per_replica(spec: ModelDeploymentSpec) -> int:
    return spec.gpu.count if spec.gpu is not None else 0


def replica_cap(spec: ModelDeploymentSpec, total: int) -> int | None:
    """The most replicas all tracks may request together; None for no cap."""
    per_replica = gpus_per_replica(spec)
    if spec.gpu is None or spec.gpu.rollout_budget is None or per_replica == 0:
        return None
    return total + spec.gpu.rollout_budget // per_replica


def gpus_by_track(spec: ModelDeploymentSpec, tracks: Mapping[str, TrackTarget]) -> dict[str, int]:
    """status.gpus: GPUs requested per track (empty for a CPU deployment)."""
    per_replica = gpus_per_replica(spec)
    if per_replica == 0:
        return {}
    return {name: target.replicas * per_replica for name, target in sorted(tracks.items())}


@dataclass(frozen=True)
class Side:
    """One side of a handover: what it wants and what its Deployment has now."""

    want: int
    observed: int = 0  # the Deployment's spec.replicas now (0 when it does not exist)
    ready: int = 0
    floor: int = 0  # keep at least this many (1 while it serves traffic)


def handover(cap: int | None, old: Side, new: Side) -> tuple[int, int]:
    """(old, new) replicas: both as wanted when they fit, else the old track gives way."""
    if cap is None or old.want + new.want <= cap:
        return old.want, new.want
    # the room the new track needs next: its next replica, or its remainder when done
    room = min(new.want, new.ready + 1)
    floor = min(old.floor, old.want, cap)
    if new.ready < new.want:
        # "no other way": a cap of one replica leaves the old track none to keep
        floor = min(floor, max(cap - 1, 0))
    old_replicas = max(min(old.want, cap - room), floor)
    new_replicas = max(0, min(new.want, cap - max(old_replicas, old.observed)))
    return old_replicas, new_replicas


def within(cap: int | None, tracks: Mapping[str, TrackTarget]) -> bool:
    return cap is None or sum(t.replicas for t in tracks.values()) <= cap
