"""What the sandbox shows on the terminal: the live panel and the final summary (pure:
a View in, a rich renderable out)."""

from __future__ import annotations

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
    )
    versions = "  ".join(f"{name}={phase or '-'}" for name, phase in sorted(view.versions.items()))
    answered = ", ".join(f"{v}: {n}" for v, n in sorted(view.traffic.answered.items())) or "-"
    traffic = Text(f"answers by version: {answered}   errors: {view.traffic.errors}")
    events = Text("\n".join(view.events[-6:]) or "(no events yet)", style="dim")
    notes = [Text(note, style="italic") for note in view.notes]
    return Panel(
        Group(
            head, Text(f"versions: {versions or '-'}"), tracks_table(view), traffic, events, *notes
        ),
        title=f"driftline sandbox - {view.scenario or 'starting'}",
    )


def summary(view: View) -> Table:
    table = Table(title="driftline sandbox: phases", show_header=True, header_style="bold")
    table.add_column("phase")
    table.add_column("seconds", justify="right")
    total = 0.0
    for name, seconds in view.timings:
        table.add_row(name, f"{seconds:.1f}")
        total += seconds
    table.add_row("total", f"{total:.1f}", style="bold")
    return table
