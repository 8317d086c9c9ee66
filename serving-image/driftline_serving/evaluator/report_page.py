"""The evaluator's human-facing report: one self-contained HTML page (no scripts, no
external assets), with reference-versus-current histograms for every drifted feature."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

BAR_AREA_WIDTH = 360
BAR_AREA_HEIGHT = 120


@dataclass(frozen=True)
class Histogram:
    """Proportions per bin for the reference and the current window."""

    feature: str
    labels: Sequence[str]
    reference: Sequence[float]
    current: Sequence[float]


def _svg(histogram: Histogram) -> str:
    bins = max(len(histogram.labels), 1)
    top = max([*histogram.reference, *histogram.current, 1e-12])
    slot = BAR_AREA_WIDTH / bins
    bar = slot * 0.4
    parts = [
        f'<svg role="img" aria-label="{html.escape(histogram.feature)} histogram" '
        f'width="{BAR_AREA_WIDTH}" height="{BAR_AREA_HEIGHT + 20}" viewBox="0 0 {BAR_AREA_WIDTH} {BAR_AREA_HEIGHT + 20}">'
    ]
    for index, (label, ref, cur) in enumerate(
        zip(histogram.labels, histogram.reference, histogram.current, strict=True)
    ):
        x = index * slot
        for offset, value, css in ((0.1, ref, "ref"), (0.5, cur, "cur")):
            height = BAR_AREA_HEIGHT * value / top
            parts.append(
                f'<rect class="{css}" x="{x + slot * offset:.1f}" y="{BAR_AREA_HEIGHT - height:.1f}" '
                f'width="{bar:.1f}" height="{height:.1f}"><title>{html.escape(label)}: {value:.3f}</title></rect>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _cell(value: Any) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def render_report(
    report: dict[str, Any] | None,
    histograms: Sequence[Histogram],
    title: str,
    notice: str | None = None,
) -> str:
    """The page for the latest evaluation (`report` is the Evaluation in wire form)."""
    head = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>"
        "body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}"
        ".drift{color:#b00020;font-weight:600}.ref{fill:#7a8ca3}.cur{fill:#e07b39}"
        "</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
    )
    if notice is not None:
        return head + f"<p>{html.escape(notice)}</p></body></html>"
    if report is None:
        return head + "<p>No evaluation yet: the window is still filling.</p></body></html>"
    verdict = "drift" if report.get("drifted") else "no drift"
    rows = "".join(
        f'<tr class="{"drift" if f.get("drifted") else ""}"><td>{_cell(f.get("name"))}</td>'
        f"<td>{_cell(f.get('test'))}</td><td>{_cell(f.get('statistic'))}</td>"
        f"<td>{_cell(f.get('pValue'))}</td><td>{_cell(f.get('score'))}</td>"
        f"<td>{'yes' if f.get('drifted') else 'no'}</td></tr>"
        for f in report.get("features", [])
    )
    charts = "".join(
        f"<section><h3>{html.escape(h.feature)}</h3>{_svg(h)}"
        '<p><span class="ref">&#9632;</span> reference <span class="cur">&#9632;</span> current</p></section>'
        for h in histograms
    )
    return (
        head
        + f"<p>Evaluated {_cell(report.get('time'))} on {_cell(report.get('samples'))} samples "
        f"({_cell(report.get('invalidSamples', 0))} invalid): <strong>{verdict}</strong>, "
        f"severity <strong>{_cell(report.get('severity'))}</strong>.</p>"
        "<table><thead><tr><th>feature</th><th>test</th><th>statistic</th><th>p-value</th>"
        f"<th>score</th><th>drifted</th></tr></thead><tbody>{rows}</tbody></table>"
        + (f"<h2>Drifted features</h2>{charts}" if charts else "")
        + "</body></html>"
    )
