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


def _row(result: FeatureResult) -> list[str]:
    verdict = "n/a" if result.note else "DRIFT" if result.drifted else "ok"
    scores = ", ".join(
        f"{t.test}={_number(t.score, 3)}" for t in result.tests if t.score is not None
    )
    invalid = result.invalid
    problems = []
    if invalid.absent:
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
        "; ".join(problems) or (result.note or ""),
    ]


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
    if report.multivariate is not None:
        mv = report.multivariate
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
    lines.append(
        f"dataset: {'DRIFTED' if report.dataset_drifted else 'no drift'} "
        f"({report.drifted_features} of {len(report.features)} features, "
        f"{report.correction} at {report.significance}); severity: {report.severity.value}"
    )
    return "\n".join(lines)
