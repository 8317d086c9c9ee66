"""Status conditions: defined in `driftline_vocabulary.conditions`, which the data plane
shares; re-exported here so that the control plane's imports read `driftline.conditions`."""

from driftline_vocabulary.conditions import (
    ConditionStatus,
    aggregate_ready,
    find_condition,
    is_true,
    make_condition,
    now_rfc3339,
    set_condition,
    set_conditions,
)

__all__ = [
    "ConditionStatus",
    "aggregate_ready",
    "find_condition",
    "is_true",
    "make_condition",
    "now_rfc3339",
    "set_condition",
    "set_conditions",
]
