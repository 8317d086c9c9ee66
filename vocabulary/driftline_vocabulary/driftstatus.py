"""The DriftPolicy's combined drift status, as pure functions.

Each evaluator (one per serving pod) owns `status.pods[<its pod>]`; the combined view
(severity, Drifted condition, lastEvaluation) is recomputed from all pods' reports on
every write. Writers send the result with the resourceVersion they read, so two
replicas writing at once cannot lose each other's report: the loser gets 409, re-reads
and merges again. The operator prunes the reports of pods that are gone with the same
functions, so a deleted pod's old verdict never keeps a policy drifted.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
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


def report_max_age(spec: Mapping[str, Any] | None) -> float:
    """How old a pod's evaluation may be and still count: two of the policy's evaluation
    intervals and 10 s (a sidecar that stopped reporting, or a pod gone before its report
    was pruned, no longer decides anything)."""
    interval = float(((spec or {}).get("window") or {}).get("intervalSeconds", 60))
    return 2 * interval + 10.0


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def fresh_reports(
    pods: Mapping[str, dict[str, Any]], now: str | None, max_age_seconds: float | None
) -> dict[str, dict[str, Any]]:
    """The reports that still count: evaluations within `max_age_seconds` of `now` (all of
    them when no age is given); NotEvaluating reports always count (they say why)."""
    current = _time(now)
    if max_age_seconds is None or current is None:
        return dict(pods)
    fresh = {}
    for pod, report in pods.items():
        evaluation = report.get("evaluation")
        if not evaluation:
            fresh[pod] = report
            continue
        at = _time(evaluation.get("time"))
        if at is not None and (current - at).total_seconds() <= max_age_seconds:
            fresh[pod] = report
    return fresh


def quorum(reporting: int) -> int:
    """Pods of one version whose confirmed drift makes the version drifted: at least half
    of its pods with a fresh evaluation (rounded up), at least one. One pod that sees drift
    among many that do not is noise, or an unlucky share of the traffic."""
    return max(1, -(-reporting // 2))


def combined_view(
    pods: Mapping[str, dict[str, Any]],
    consecutive_windows: int,
    *,
    now: str | None = None,
    max_age_seconds: float | None = None,
) -> tuple[str, list[str], list[str]]:
    """(severity, drifted feature names, pods with confirmed drift) over the fresh reports.

    Per ModelVersion (the pods' `modelVersion`): the version is drifted when at least
    `quorum` of its freshly evaluating pods confirm drift, at the highest severity that
    many of them reach; the policy's severity is the highest over its versions."""
    fresh = fresh_reports(pods, now, max_age_seconds)
    by_version: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for pod, report in sorted(fresh.items()):
        if report.get("evaluation"):
            by_version.setdefault(str(report.get("modelVersion") or ""), []).append((pod, report))
    severity = "None"
    features: set[str] = set()
    drifted_pods: list[str] = []
    for reports in by_version.values():
        needed = quorum(len(reports))
        confirming = [(p, r) for p, r in reports if confirmed(r, consecutive_windows)]
        if len(confirming) < needed:
            continue
        ranks = sorted(
            (_rank(r["evaluation"].get("severity", "None")) for _, r in confirming), reverse=True
        )
        version_severity = list(Severity)[ranks[needed - 1]].value
        if _rank(version_severity) > _rank(severity):
            severity = version_severity
        for pod, report in confirming:
            drifted_pods.append(pod)
            features.update(
                f["name"] for f in report["evaluation"].get("features", []) if f.get("drifted")
            )
    return severity, sorted(features), sorted(drifted_pods)


def combined_status(
    status: dict[str, Any] | None,
    pods: dict[str, dict[str, Any]],
    *,
    consecutive_windows: int,
    generation: int | None,
    now: str,
    max_age_seconds: float | None = None,
) -> dict[str, Any]:
    """`status` with `pods` as its reports and everything derived from them recomputed
    (from the fresh reports only, when `max_age_seconds` is given)."""
    status = dict(status or {})
    severity, features, drifted_pods = combined_view(
        pods, consecutive_windows, now=now, max_age_seconds=max_age_seconds
    )
    fresh = fresh_reports(pods, now, max_age_seconds)
    waiting = [
        p
        for p, r in fresh.items()
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
            f"drift seen by {', '.join(sorted(waiting))}; confirmed once it holds "
            f"{consecutive_windows} consecutive windows on at least half of a version's pods",
            observed_generation=generation,
            now=now,
        )
    elif pods and not fresh:
        drifted = make_condition(
            "Drifted",
            "Unknown",
            "NoFreshReport",
            f"no pod has reported an evaluation in the last {max_age_seconds:g}s",
            observed_generation=generation,
            now=now,
        )
    elif fresh and all(r.get("state") == "NotEvaluating" for r in fresh.values()):
        reasons = sorted({str(r.get("reason") or "NotEvaluating") for r in fresh.values()})
        drifted = make_condition(
            "Drifted",
            "Unknown",
            "NotEvaluating",
            f"no pod is evaluating drift ({', '.join(reasons)}); serving goes on",
            observed_generation=generation,
            now=now,
        )
    elif all(r.get("evaluation", {}).get("samples", 0) == 0 for r in fresh.values()):
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
    max_age_seconds: float | None = None,
) -> dict[str, Any]:
    """The status after `pod` reports `report` (a PodReport in wire form)."""
    pods = dict((status or {}).get("pods") or {})
    pods[pod] = report
    merged = combined_status(
        status,
        pods,
        consecutive_windows=consecutive_windows,
        generation=generation,
        now=now,
        max_age_seconds=max_age_seconds,
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
