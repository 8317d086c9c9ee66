"""What the sandbox shows on the terminal: the live panel and the final summary (pure:
a View in, a rich renderable out)."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from driftline.sandbox.story import View


def tracks_table(view: View) -> Table:
    status = view.status
    table = Table(show_header=True, header_style="bold", expand=False)
    table.add_column("track")
    table.add_column("version")
    table.add_column("weight", justify="right")
    weight = int(status.get("canaryWeight") or 0)
    if status.get("stableVersion"):
        table.add_row("stable", str(status["stableVersion"]), f"{100 - weight}%")
    if status.get("canaryVersion"):
        step = status.get("currentStep")
        label = f"canary (step {step})" if step is not None else "canary"
        table.add_row(label, str(status["canaryVersion"]), f"{weight}%")
    return table


def analysis_lines(status: dict[str, Any]) -> list[str]:
    """The latest analysis run's gates: each one's verdict and last measured value."""
    runs = status.get("analysis") or []
    if not runs:
        return []
    run = runs[-1]
    lines = [f"analysis {run.get('name', '')} of {run.get('version', '')}: {run.get('verdict')}"]
    for gate in run.get("gates") or []:
        recent = gate.get("recent") or []
        last = recent[-1] if recent else {}
        value = last.get("value") if last.get("value") is not None else last.get("phase", "-")
        lines.append(
            f"  {gate.get('name', '')} [{gate.get('track', '')}] {gate.get('verdict', '')}: "
            f"{value}  (ok {gate.get('successful', 0)}, failed {gate.get('failed', 0)})"
        )
    return lines


def drift_lines(view: View) -> list[str]:
    """The policy's verdict, each pod's latest evaluation, and retraining runs."""
    lines = []
    drift = view.status.get("drift") or {}
    if drift:
        features = ", ".join(drift.get("features") or []) or "-"
        lines.append(
            f"drift: {'drifted' if drift.get('drifted') else 'no drift'}, severity "
            f"{drift.get('severity', 'None')}, features {features}"
        )
    for pod, report in sorted((view.policy.get("pods") or {}).items()):
        evaluation = report.get("evaluation") or {}
        scores = ", ".join(
            f"{f.get('name')}={_score(f)}"
            for f in evaluation.get("features") or []
            if f.get("drifted")
        )
        lines.append(
            f"  {pod} ({report.get('modelVersion') or '-'}): "
            f"{evaluation.get('severity', report.get('state', '-'))}"
            + _performance(evaluation.get("performance"))
            + (f"  drifted: {scores}" if scores else "")
        )
    for run in view.policy.get("retrainings") or []:
        lines.append(
            f"retraining {run.get('job', '')} -> {run.get('modelVersion', '')}: "
            f"{run.get('phase', '')} {run.get('message') or ''}".rstrip()
        )
    return lines


def _performance(reading: dict[str, Any] | None) -> str:
    """The live metric from labels fed back, next to the offline one."""
    if not reading:
        return ""
    value = reading.get("value")
    shown = f"{value:.3f}" if isinstance(value, int | float) else "-"
    return (
        f"  {reading.get('metric', '')} {shown} of {reading.get('labels', 0)} labels "
        f"(offline {reading.get('baseline', 0):.3f}{', dropped' if reading.get('dropped') else ''})"
    )


def _score(feature: dict[str, Any]) -> str:
    for key in ("score", "statistic", "pValue"):
        if isinstance(feature.get(key), int | float):
            return f"{feature[key]:.3g}"
    return "?"


def live(view: View) -> RenderableType:
    status = view.status
    head = Text.assemble(
        ("phase: ", "bold"),
        (view.phase, "cyan"),
        "   deployment: ",
        (
            str(status.get("phase") or "-"),
            "green" if status.get("phase") == "Healthy" else "yellow",
        ),
        f"   traffic: {view.world}",
    )
    versions = "  ".join(f"{name}={phase or '-'}" for name, phase in sorted(view.versions.items()))
    answered = ", ".join(f"{v}: {n}" for v, n in sorted(view.traffic.answered.items())) or "-"
    traffic = Text(
        f"answers by version: {answered}   errors: {view.traffic.errors}   "
        f"labels fed back: {view.feed.delivered} (undelivered {view.feed.undelivered})"
    )
    details = [Text(line) for line in [*analysis_lines(status), *drift_lines(view)]]
    events = Text("\n".join(view.events[-6:]) or "(no events yet)", style="dim")
    notes = [Text(note, style="italic") for note in view.notes]
    return Panel(
        Group(
            head,
            Text(f"versions: {versions or '-'}"),
            tracks_table(view),
            traffic,
            *details,
            events,
            *notes,
        ),
        title=f"driftline sandbox - {view.scenario or 'starting'}",
    )


def summary(view: View) -> RenderableType:
    table = Table(title="driftline sandbox: phases", show_header=True, header_style="bold")
    table.add_column("phase")
    table.add_column("seconds", justify="right")
    total = 0.0
    for name, seconds in view.timings:
        table.add_row(name, f"{seconds:.1f}")
        total += seconds
    table.add_row("total", f"{total:.1f}", style="bold")
    for name, seconds in view.milestones:
        table.add_row(name, f"{seconds:.1f}", style="italic")
    parts: list[RenderableType] = [table]
    if view.report_url:
        parts.append(Text(f"drift report:   {view.report_url}"))
    return Group(*parts)
