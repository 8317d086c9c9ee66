"""The DriftPolicy's combined drift status, as pure functions.

Each evaluator (one per serving pod) owns `status.pods[<its pod>]`; the combined view
(severity, Drifted condition, lastEvaluation) is recomputed from all pods' reports on
every write. Writers send the result with the resourceVersion they read, so two
replicas writing at once cannot lose each other's report: the loser gets 409, re-reads
and merges again. The operator prunes the reports of pods that are gone with the same
functions, so a deleted pod's old verdict never keeps a policy drifted.
"""

from __future__ import annotations

from typing import Any

from driftline_vocabulary.conditions import make_condition, set_conditions
from driftline_vocabulary.drift import Severity


def _rank(severity: str) -> int:
    """The severity's place in `Severity`'s order; a value this version does not know
    (from a newer evaluator, say) ranks as None rather than failing the merge."""
    try:
        return Severity(severity).rank
    except ValueError:
        return 0


def confirmed(report: dict[str, Any], consecutive_windows: int) -> bool:
    """A pod's drift counts once it has held for the policy's consecutive windows."""
    evaluation = report.get("evaluation", {})
    return (
        bool(evaluation.get("drifted"))
        and report.get("consecutiveDrifted", 0) >= consecutive_windows
    )


def combined_view(
    pods: dict[str, dict[str, Any]], consecutive_windows: int
) -> tuple[str, list[str], list[str]]:
    """(severity, drifted feature names, pods with confirmed drift) over all pods."""
    severity = "None"
    features: set[str] = set()
    drifted_pods = []
    for pod, report in sorted(pods.items()):
        if not confirmed(report, consecutive_windows):
            continue
        drifted_pods.append(pod)
        evaluation = report["evaluation"]
        if _rank(evaluation.get("severity", "None")) > _rank(severity):
            severity = evaluation["severity"]
        features.update(f["name"] for f in evaluation.get("features", []) if f.get("drifted"))
    return severity, sorted(features), drifted_pods


def combined_status(
    status: dict[str, Any] | None,
    pods: dict[str, dict[str, Any]],
    *,
    consecutive_windows: int,
    generation: int | None,
    now: str,
) -> dict[str, Any]:
    """`status` with `pods` as its reports and everything derived from them recomputed."""
    status = dict(status or {})
    severity, features, drifted_pods = combined_view(pods, consecutive_windows)
    waiting = [
        p
        for p, r in pods.items()
        if r.get("evaluation", {}).get("drifted") and p not in drifted_pods
    ]
    if drifted_pods:
        drifted = make_condition(
            "Drifted",
            True,
            "FeaturesDrifted",
            f"severity {severity}; drifted features: {', '.join(features) or 'outputs only'}; "
            f"pods: {', '.join(drifted_pods)}",
            observed_generation=generation,
            now=now,
        )
    elif waiting:
        drifted = make_condition(
            "Drifted",
            False,
            "AwaitingConfirmation",
            f"drift seen by {', '.join(sorted(waiting))}; needs {consecutive_windows} consecutive windows",
            observed_generation=generation,
            now=now,
        )
    elif pods and all(r.get("state") == "NotEvaluating" for r in pods.values()):
        reasons = sorted({str(r.get("reason") or "NotEvaluating") for r in pods.values()})
        drifted = make_condition(
            "Drifted",
            "Unknown",
            "NotEvaluating",
            f"no pod is evaluating drift ({', '.join(reasons)}); serving goes on",
            observed_generation=generation,
            now=now,
        )
    elif all(r.get("evaluation", {}).get("samples", 0) == 0 for r in pods.values()):
        drifted = make_condition(
            "Drifted",
            "Unknown",
            "InsufficientSamples",
            "no window has enough samples yet",
            observed_generation=generation,
            now=now,
        )
    else:
        drifted = make_condition(
            "Drifted",
            False,
            "NoDrift",
            "live traffic matches the reference profile",
            observed_generation=generation,
            now=now,
        )
    status["pods"] = pods
    status["severity"] = severity
    status["conditions"] = set_conditions(status.get("conditions") or [], [drifted])
    return status


def merge_pod_report(
    status: dict[str, Any] | None,
    pod: str,
    report: dict[str, Any],
    *,
    consecutive_windows: int,
    generation: int | None,
    now: str,
) -> dict[str, Any]:
    """The status after `pod` reports `report` (a PodReport in wire form)."""
    pods = dict((status or {}).get("pods") or {})
    pods[pod] = report
    merged = combined_status(
        status, pods, consecutive_windows=consecutive_windows, generation=generation, now=now
    )
    merged["lastEvaluation"] = report["evaluation"]
    return merged


def prune_gone_pods(
    status: dict[str, Any] | None,
    live_pods: set[str],
    *,
    consecutive_windows: int,
    generation: int | None,
    now: str,
) -> dict[str, Any] | None:
    """A merge patch of status dropping reports of pods not in `live_pods`; None if none are."""
    pods = dict((status or {}).get("pods") or {})
    gone = sorted(p for p in pods if p not in live_pods)
    if not gone:
        return None
    kept = {p: r for p, r in pods.items() if p in live_pods}
    patch = combined_status(
        status, kept, consecutive_windows=consecutive_windows, generation=generation, now=now
    )
    patch["pods"] = {**{p: None for p in gone}}  # null deletes a key in a merge patch
    return {k: patch[k] for k in ("pods", "severity", "conditions")}
