"""The DriftPolicy's combined drift status: defined in `driftline_vocabulary.driftstatus`,
which the evaluator sidecar writes with; re-exported here for the operator."""

from driftline_vocabulary.driftstatus import (
    combined_status,
    combined_view,
    confirmed,
    fresh_reports,
    merge_pod_report,
    prune_gone_pods,
    quorum,
    report_max_age,
)

__all__ = [
    "combined_status",
    "combined_view",
    "confirmed",
    "fresh_reports",
    "merge_pod_report",
    "prune_gone_pods",
    "quorum",
    "report_max_age",
]
