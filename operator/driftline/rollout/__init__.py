"""Pure rollout state machines: canary, blue-green and rolling, traffic and GPU capacity.

`decide_rollout` takes what the cluster reports, the spec, the status it wrote last time,
an optional manual request and the time, and returns the tracks to run, where traffic
goes, the new status and the Events. No I/O, no clock: the operator gathers and executes.
"""

from driftline.rollout.engine import decide_rollout
from driftline.rollout.types import (
    CANARY,
    PREVIEW,
    STABLE,
    TRACKS,
    ManualRequest,
    ObservedTrack,
    RequestAction,
    RolloutDecision,
    RolloutInput,
    TrackTarget,
    Verdict,
)

__all__ = [
    "CANARY",
    "PREVIEW",
    "STABLE",
    "TRACKS",
    "ManualRequest",
    "ObservedTrack",
    "RequestAction",
    "RolloutDecision",
    "RolloutInput",
    "TrackTarget",
    "Verdict",
    "decide_rollout",
]
