"""The DriftPolicy's combined drift status: defined in `driftline_vocabulary.driftstatus`,
which the evaluator sidecar writes with; re-exported here for the operator."""

from driftline_vocabulary.driftstatus import (
    combined_status,
    combined_view,
    confirmed,
    merge_pod_report,
    prune_gone_pods,
)

__all__ = ["combined_status", "combined_view", "confirmed", "merge_pod_report", "prune_gone_pods"]
