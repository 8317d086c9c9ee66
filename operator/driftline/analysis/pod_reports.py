"""Pure readers of the DriftPolicy's per-pod reports (`status.pods`), for the rollout gates.

Each serving pod's drift sidecar writes its own report (docs/evaluator.md): the latest
evaluation with its time, its consecutive drifted windows, the ModelVersion it serves and
a summary of its predictions. A gate asks about one version (the canary's or the
stable's), so these readers take the reports of the pods serving that version and turn
them into an Outcome, or into counts that `divergence.judge_divergence` compares.

Which reports count (the quorum rule):

- only the pods whose report names the version (`modelVersion`);
- only fresh ones: an `Evaluating` report whose evaluation time is at most
  `max_age_seconds` before `now` (a time ahead of `now`, from clock skew, is fresh);
- at least one fresh report is needed, else the outcome is NoData naming why each pod's
  report did not count (how old it is, that it has no evaluation, or the reason the
  sidecar gave for not evaluating); with no report of the version at all, NoData says so;
  for drift, the fresh report must also have evaluated a full window (`min_samples`):
  "no drift" in a window too small to test is no verdict;
- partial freshness: when some of the version's pods are fresh and others are not, the
  value comes from the fresh ones alone. A sidecar that stops writing drops out after
  `max_age_seconds` instead of holding the gate at its last word; the gate's own
  consecutive-measurement rules (gates.py) absorb a pod that drops out for a moment.

A report that cannot be read (an unknown severity, counts that are not counts, bins that
differ between pods) is a QueryError, never a silent zero.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from driftline.analysis.divergence import BinnedCounts
from driftline.analysis.types import NoData, Outcome, QueryError, Value
from driftline.driftstatus import confirmed
from driftline.vocabulary import Severity

Reports = Mapping[str, Mapping[str, Any]]
Counts = Mapping[str, float]


@dataclass(frozen=True)
class _Selection:
    """The fresh reports of one version's pods, and why the others did not count."""

    fresh: dict[str, Mapping[str, Any]]
    left_out: list[str]


def drift_outcome(
    pods: Reports,
    version: str,
    *,
    now: datetime,
    max_age_seconds: float,
    consecutive_windows: int,
    min_samples: int = 1,
) -> Outcome:
    """The highest confirmed drift severity over the fresh reports of `version`'s pods, as
    `Value(rank)` (driftline_vocabulary Severity's order: None 0, Low 1, Medium 2, High 3).

    A pod's drift is confirmed once its window drifted `consecutive_windows` times in a
    row (the DriftPolicy's Drifted rule); an unconfirmed drift ranks as None. A window
    of fewer than `min_samples` rows (pass the policy's `spec.window.minSamples`) was not
    evaluated, so its "no drift" says nothing: such a report counts as not fresh, and an
    empty window never does.
    """
    for name, number in (
        ("consecutive_windows", consecutive_windows),
        ("min_samples", min_samples),
    ):
        if isinstance(number, bool) or number < 1:
            raise ValueError(f"{name} must be at least 1, not {number!r}")
    selection = _select(pods, version, now, max_age_seconds)
    if isinstance(selection, NoData):
        return selection
    evaluated: dict[str, Mapping[str, Any]] = {}
    too_few: list[str] = []
    for pod, report in sorted(selection.fresh.items()):
        samples = report["evaluation"].get("samples")
        if isinstance(samples, bool) or not isinstance(samples, int):
            return QueryError(f"pod {pod}'s evaluation has no sample count: {samples!r}")
        if samples >= min_samples:
            evaluated[pod] = report
        else:
            too_few.append(f"{pod}'s window held {samples} samples (min {min_samples})")
    if not evaluated:
        return NoData(
            f"no fresh drift report of {version} evaluated a full window: "
            + "; ".join([*too_few, *selection.left_out])
        )
    highest = 0
    for pod, report in evaluated.items():
        if not confirmed(dict(report), consecutive_windows):
            continue
        severity = report["evaluation"].get("severity")
        try:
            rank = Severity(severity).rank
        except ValueError:
            known = ", ".join(Severity)
            return QueryError(
                f"pod {pod} reports an unknown drift severity {severity!r} (known: {known})"
            )
        highest = max(highest, rank)
    return Value(float(highest))


def prediction_counts(
    pods: Reports,
    version: str,
    output: str,
    *,
    now: datetime,
    max_age_seconds: float,
) -> Counts | NoData | QueryError:
    """The counts of `output`'s predictions, summed over the fresh reports of `version`'s
    pods: by class name, or by score bin named as `BinnedCounts.by_bin` names them, ready
    for `judge_divergence(canary_counts, stable_counts, settings)`.

    Pods whose fresh report has no summary of `output` (the summary turned off, or a
    sidecar older than it) are left out; NoData when none has one. Summaries of different
    kinds, or score bins that differ between pods (a policy edit that some sidecars have
    not read yet), are a QueryError naming the pods.
    """
    selection = _select(pods, version, now, max_age_seconds)
    if isinstance(selection, NoData):
        return selection
    summaries: dict[str, Mapping[str, Any]] = {}
    others: set[str] = set()
    for pod, report in sorted(selection.fresh.items()):
        entries = report.get("predictions")
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if not isinstance(entry, Mapping):
                return QueryError(f"pod {pod}'s prediction summary is not an object: {entry!r}")
            if entry.get("output") == output:
                summaries[pod] = entry
            else:
                others.add(str(entry.get("output")))
    if not summaries:
        seen = f"; they summarise {', '.join(sorted(others))}" if others else ""
        return NoData(
            f"no fresh report of {version} ({', '.join(sorted(selection.fresh))}) summarises "
            f"output {output!r}{seen}"
        )
    kinds = {pod: entry.get("kind") for pod, entry in summaries.items()}
    if set(kinds.values()) == {"Classes"}:
        return _summed_classes(summaries, output)
    if set(kinds.values()) == {"Scores"}:
        return _summed_bins(summaries, output)
    listed = ", ".join(f"{pod}: {kind!r}" for pod, kind in sorted(kinds.items()))
    return QueryError(
        f"output {output!r} is summarised in different or unknown kinds (Classes or Scores "
        f"expected): {listed}"
    )


def _select(
    pods: Reports, version: str, now: datetime, max_age_seconds: float
) -> _Selection | NoData:
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, not {now.isoformat()}")
    if isinstance(max_age_seconds, bool) or not (
        math.isfinite(max_age_seconds) and max_age_seconds > 0
    ):
        raise ValueError(f"max_age_seconds must be a positive number, not {max_age_seconds!r}")
    # an entry that is not a report at all names no version, so it counts for none
    readable = {pod: report for pod, report in pods.items() if isinstance(report, Mapping)}
    mine = {pod: r for pod, r in readable.items() if r.get("modelVersion") == version}
    if not mine:
        other_versions = sorted({str(r.get("modelVersion")) for r in readable.values()})
        seen = f" (reports name {', '.join(other_versions)})" if other_versions else ""
        return NoData(f"no pod serving {version} has reported drift yet{seen}")
    fresh: dict[str, Mapping[str, Any]] = {}
    left_out: list[str] = []
    for pod, report in sorted(mine.items()):
        why_not = _why_not_fresh(pod, report, now, max_age_seconds)
        if why_not is None:
            fresh[pod] = report
        else:
            left_out.append(why_not)
    if not fresh:
        return NoData(f"no fresh drift report of {version}: {'; '.join(left_out)}")
    return _Selection(fresh, left_out)


def _why_not_fresh(
    pod: str, report: Mapping[str, Any], now: datetime, max_age_seconds: float
) -> str | None:
    """None when the report counts, else why not, in words."""
    if report.get("state", "Evaluating") != "Evaluating":
        reason = report.get("reason") or "no reason given"
        message = f": {report['message']}" if report.get("message") else ""
        return f"{pod} is not evaluating drift ({reason}{message})"
    evaluation = report.get("evaluation")
    if not isinstance(evaluation, Mapping):
        return f"{pod} has no evaluation yet"
    time = _time(evaluation.get("time"))
    if time is None:
        return f"{pod}'s evaluation time {evaluation.get('time')!r} is not an RFC 3339 time"
    age = (now - time).total_seconds()
    if age > max_age_seconds:
        return f"{pod}'s report is {age:.0f}s old (max {max_age_seconds:g}s)"
    return None


def _time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo is not None else None


def _count(value: object) -> float | None:
    """A count as a float; None for anything that is not a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _summed_classes(summaries: Mapping[str, Mapping[str, Any]], output: str) -> Counts | QueryError:
    totals: dict[str, float] = {}
    for pod, entry in sorted(summaries.items()):
        classes = entry.get("classes")
        if not isinstance(classes, list):
            return QueryError(f"pod {pod}'s class counts of {output!r} are not a list: {classes!r}")
        for item in classes:
            name = item.get("name") if isinstance(item, Mapping) else None
            count = _count(item.get("count")) if isinstance(item, Mapping) else None
            if not isinstance(name, str) or count is None:
                return QueryError(
                    f"pod {pod}'s class count of {output!r} is not a name and a count >= 0: "
                    f"{item!r}"
                )
            totals[name] = totals.get(name, 0.0) + count
    return totals


def _summed_bins(summaries: Mapping[str, Mapping[str, Any]], output: str) -> Counts | QueryError:
    binned: dict[str, BinnedCounts] = {}
    for pod, entry in sorted(summaries.items()):
        edges, counts = entry.get("binEdges"), entry.get("binCounts")
        if not isinstance(edges, list) or not isinstance(counts, list):
            return QueryError(f"pod {pod}'s score bins of {output!r} lack binEdges or binCounts")
        numbers = [_count(c) for c in counts]
        if any(isinstance(e, bool) or not isinstance(e, int | float) for e in edges) or any(
            n is None for n in numbers
        ):
            return QueryError(
                f"pod {pod}'s score bins of {output!r} are not numbers: edges {edges!r}, "
                f"counts {counts!r}"
            )
        try:
            binned[pod] = BinnedCounts(
                tuple(float(e) for e in edges), tuple(n for n in numbers if n is not None)
            )
        except ValueError as error:
            return QueryError(f"pod {pod}'s score bins of {output!r}: {error}")
    edge_sets = {counts.edges for counts in binned.values()}
    if len(edge_sets) > 1:
        listed = "; ".join(f"{pod}: {list(b.edges)}" for pod, b in sorted(binned.items()))
        return QueryError(
            f"the pods' score bins of {output!r} differ, so their counts cannot be added "
            f"(a changed spec.predictionSummary.scoreBinEdges not yet read by every "
            f"sidecar?): {listed}"
        )
    (edges,) = edge_sets
    summed = tuple(map(math.fsum, zip(*(b.counts for b in binned.values()), strict=True)))
    return BinnedCounts(edges, summed).by_bin()
