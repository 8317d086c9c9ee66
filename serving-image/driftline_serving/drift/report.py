"""Rendering a DriftReport: a readable table, or JSON."""

from __future__ import annotations

import json

from driftline_serving.drift.results import DriftReport, FeatureResult


def to_json(report: DriftReport) -> str:
    return json.dumps(report.to_dict(), indent=2, allow_nan=False)


def _number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "-"
    if value != 0 and (abs(value) < 10 ** (-digits) or abs(value) >= 1e6):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


NOT_CHECKED = "not checked"
# names listed in the summary line before "and N more"
SUMMARY_NAMES = 10


def _row(result: FeatureResult) -> list[str]:
    verdict = NOT_CHECKED if not result.checked else "DRIFT" if result.drifted else "ok"
    scores = ", ".join(
        f"{t.test}={_number(t.score, 3)}" for t in result.tests if t.score is not None
    )
    invalid = result.invalid
    problems = [result.note] if result.note else []  # first: why there is no verdict
    if invalid.absent and not result.note:
        problems.append("absent")
    if invalid.dropped:
        problems.append(f"{invalid.dropped} invalid")
    if invalid.unseen:
        problems.append(f"{invalid.unseen} unseen")
    return [
        result.feature,
        result.type,
        result.test or "-",
        _number(result.statistic),
        _number(result.p_value),
        _number(result.effect_size),
        scores or "-",
        verdict,
        "; ".join(problems),
    ]


def _summary_of_checks(report: DriftReport) -> str:
    """'98 of 100 features checked, 2 not checked: a (reason), b (reason)'."""
    total = len(report.features)
    checked = report.checked_features
    text = f"{checked} of {total} features checked"
    missed = [(f.feature, f.note) for f in report.features if f.note is not None]
    if not missed:
        return text
    if report.note and all(note == report.note for _, note in missed):
        return f"{text}, {len(missed)} not checked: {report.note}"
    listed = ", ".join(f"{name} ({note})" for name, note in missed[:SUMMARY_NAMES])
    more = f", and {len(missed) - SUMMARY_NAMES} more" if len(missed) > SUMMARY_NAMES else ""
    return f"{text}, {len(missed)} not checked: {listed}{more}"


def to_table(report: DriftReport) -> str:
    header = [
        "feature",
        "type",
        "test",
        "statistic",
        "p (corr.)",
        "effect",
        "scores",
        "verdict",
        "notes",
    ]
    rows = [_row(f) for f in report.features]
    for extra in (report.prediction, report.confidence):
        if extra is not None:
            rows.append(_row(extra))
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)),
        "  ".join("-" * width for width in widths),
    ]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.append("")
    mv = report.multivariate
    if mv is not None and mv.note is not None:
        lines.append(f"multivariate: {NOT_CHECKED}: {mv.note}")
    elif mv is not None and mv.pair is not None and mv.correlation_change is not None:
        lines.append(
            f"multivariate: pair {mv.pair[0]} / {mv.pair[1]}, correlation change "
            f"{mv.correlation_change:+.3f}, p (corr.) {_number(mv.p_value)}, "
            f"{'DRIFT' if mv.drifted else 'ok'}"
        )
    if report.performance is not None:
        perf = report.performance
        lines.append(
            f"performance: {perf.metric} {_number(perf.value)} vs baseline {perf.baseline:.4f}, "
            f"{'DROPPED' if perf.dropped else 'ok'}"
        )
    lines.append(
        f"samples: {report.samples}; invalid values: {report.invalid_values}; "
        f"invalid rows: {report.invalid_rows}"
        + (
            f"; unknown columns: {', '.join(report.unknown_columns)}"
            if report.unknown_columns
            else ""
        )
    )
    if report.note:
        lines.append(f"note: {report.note}")
    lines.append(_summary_of_checks(report))
    lines.append(
        f"dataset: {'DRIFTED' if report.dataset_drifted else 'no drift'} "
        f"({report.drifted_features} of {report.checked_features} checked features drifted, "
        f"{report.correction} at {report.significance}); severity: {report.severity.value}"
    )
    if not report.complete:
        names = ", ".join(name for name, _ in report.not_checked[:SUMMARY_NAMES])
        more = len(report.not_checked) - SUMMARY_NAMES
        lines.append(
            f"incomplete: {len(report.not_checked)} checks got no verdict ({names}"
            f"{f', and {more} more' if more > 0 else ''}); what was not checked cannot "
            "show drift"
        )
    return "\n".join(lines)
