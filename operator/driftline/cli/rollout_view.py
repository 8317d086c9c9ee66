"""What `driftline rollout status` shows, as a tree of lines (pure; no I/O, no rich).

The tree is built once from the ModelDeployment and its Events; the shell draws it with
rich on a terminal and as indented plain text otherwise (for scripts and tests).

The object is read as the API returns it (camelCase dicts), not through the pydantic
models, so that a status written by a newer operator, with fields this client does not
know, still shows instead of failing validation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from driftline.api.modeldeployment import CanaryStrategy

SHOWN_HISTORY = 5
SHOWN_EVENTS = 5
TRACK_ORDER = ("stable", "canary", "preview")

PHASE_STYLES = {
    "Healthy": "green",
    "Progressing": "cyan",
    "Paused": "yellow",
    "Degraded": "red",
}
VERDICT_STYLES = {
    "Passed": "green",
    "Failed": "red",
    "Running": "cyan",
    "Inconclusive": "yellow",
}
OUTCOME_STYLES = {
    "Promoted": "green",
    "Aborted": "red",
    "RolledBack": "red",
    "Superseded": "dim",
}
# Conditions whose True is bad news; for the others True is good news.
NEGATIVE_CONDITIONS = frozenset({"Degraded"})


@dataclass(frozen=True)
class Node:
    """One line of the tree, with a rich style name for terminals, and its children."""

    text: str
    style: str | None = None
    children: tuple[Node, ...] = ()


def render_plain(node: Node, indent: str = "  ") -> str:
    """The tree as plain text, one line per node, children indented under their parent."""
    lines: list[str] = []

    def walk(current: Node, depth: int) -> None:
        lines.append(indent * depth + current.text)
        for child in current.children:
            walk(child, depth + 1)

    walk(node, 0)
    return "\n".join(lines) + "\n"


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def age(seconds: float) -> str:
    """A duration the way kubectl shows ages: 45s, 12m, 5h, 3d."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{seconds // 60}m"
    if seconds < 48 * 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def when(value: Any, now: datetime) -> str:
    """A timestamp as written, with how long ago it was."""
    moment = parse_time(value)
    if moment is None:
        return str(value) if value else "-"
    return f"{value} ({age((now - moment).total_seconds())} ago)"


def _str(value: Any, default: str = "-") -> str:
    return default if value is None or value == "" else str(value)


def canary_steps(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The canary steps as the operator runs them: the spec's, else the API's defaults."""
    canary = (spec.get("strategy") or {}).get("canary") or {}
    steps = canary.get("steps")
    if steps:
        return [step for step in steps if isinstance(step, Mapping)]
    return [step.wire() for step in CanaryStrategy().steps]


def describe_step(step: Mapping[str, Any]) -> str:
    pause = step.get("pauseSeconds")
    if pause is None:
        pause_text = "no pause"
    elif pause == 0:
        pause_text = "pause until promoted"
    else:
        pause_text = f"pause {pause}s"
    analysis_text = "analysis" if step.get("analysis", True) else "no analysis"
    return f"weight {step.get('weight', '?')}%, {pause_text}, {analysis_text}"


def _verdict_node(verdict: Mapping[str, Any], now: datetime) -> Node:
    text = f"gate {_str(verdict.get('gate'))}: {_str(verdict.get('verdict'))}"
    if verdict.get("reason"):
        text += f" - {verdict['reason']}"
    if verdict.get("at"):
        text += f", at {when(verdict['at'], now)}"
    return Node(text, VERDICT_STYLES.get(str(verdict.get("verdict"))))


def _rollout_version(status: Mapping[str, Any]) -> str | None:
    version = status.get("canaryVersion") or status.get("previewVersion")
    return str(version) if version else None


def _current_verdicts(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Verdicts of the rollout in progress (of its version, when they name one)."""
    version = _rollout_version(status)
    return [
        v
        for v in status.get("verdicts") or []
        if isinstance(v, Mapping) and (version is None or v.get("version") in (None, version))
    ]


def step_position(status: Mapping[str, Any], spec: Mapping[str, Any]) -> tuple[int, int] | None:
    """(1-based step number, number of steps) of a canary step in progress."""
    current = status.get("currentStep")
    if not isinstance(current, int) or not status.get("canaryVersion"):
        return None
    return current + 1, len(canary_steps(spec))


def _traffic_nodes(
    strategy: str, status: Mapping[str, Any], spec: Mapping[str, Any], now: datetime
) -> list[Node]:
    stable = status.get("stableVersion")
    nodes: list[Node] = []
    if strategy == "BlueGreen":
        preview = status.get("previewVersion")
        active_track = status.get("activeTrack") or "stable"
        preview_active = active_track == "preview"
        nodes.append(
            Node(
                f"Stable: {_str(stable)} (weight {0 if preview_active and preview else 100}%)",
                "green",
            )
        )
        if preview:
            nodes.append(
                Node(
                    f"Preview: {preview} (weight {100 if preview_active else 0}%)",
                    "cyan",
                )
            )
        nodes.append(Node(f"Active track: {active_track}"))
        if status.get("previousVersion"):
            nodes.append(Node(f"Previous: {status['previousVersion']} (kept until scale-down)"))
        if status.get("switchedAt"):
            nodes.append(Node(f"Switched: {when(status['switchedAt'], now)}"))
        gates = [_verdict_node(v, now) for v in _current_verdicts(status)]
        if gates:
            nodes.append(Node("Gates", children=tuple(gates)))
        return nodes

    weight = int(status.get("canaryWeight") or 0)
    canary = status.get("canaryVersion")
    nodes.append(
        Node(f"Stable: {_str(stable)} (weight {100 - weight if canary else 100}%)", "green")
    )
    if canary:
        nodes.append(Node(f"Canary: {canary} (weight {weight}%)", "cyan"))
    position = step_position(status, spec)
    if strategy == "Canary" and position is not None:
        number, total = position
        steps = canary_steps(spec)
        index = number - 1
        children: list[Node] = []
        if 0 <= index < len(steps):
            children.append(Node(describe_step(steps[index])))
        if status.get("stepStartedAt"):
            children.append(Node(f"started {when(status['stepStartedAt'], now)}"))
        gate = f"step-{index}"
        verdicts = [v for v in _current_verdicts(status) if v.get("gate") == gate]
        if verdicts:
            children.extend(_verdict_node(v, now) for v in verdicts)
        else:
            children.append(Node(f"gate {gate}: no verdict yet", "dim"))
        nodes.append(Node(f"Step: {number} of {total}", children=tuple(children)))
        others = [_verdict_node(v, now) for v in _current_verdicts(status) if v.get("gate") != gate]
        if others:
            nodes.append(Node("Earlier gates", children=tuple(others)))
    return nodes


def _track_nodes(status: Mapping[str, Any]) -> list[Node]:
    tracks = status.get("tracks") or {}
    gpus = status.get("gpus") or {}
    names = [t for t in TRACK_ORDER if t in tracks or t in gpus]
    names += sorted(t for t in {*tracks, *gpus} if t not in TRACK_ORDER)
    nodes = []
    for name in names:
        track = tracks.get(name) or {}
        parts = [f"{name}: {_str(track.get('version'))}"]
        if track:
            ready, desired = track.get("readyReplicas", 0), track.get("replicas", 0)
            parts.append(f"Deployment {_str(track.get('deployment'))}")
            parts.append(f"replicas {ready}/{desired} ready")
            parts.append(f"{track.get('availableReplicas', 0)} available")
        if name in gpus:
            parts.append(f"GPUs {gpus[name]}")
        healthy = not track or track.get("readyReplicas", 0) >= track.get("replicas", 0)
        nodes.append(Node(", ".join(parts), None if healthy else "yellow"))
    return nodes


def _condition_node(condition: Mapping[str, Any], now: datetime) -> Node:
    kind, state = _str(condition.get("type")), _str(condition.get("status"))
    text = f"{kind}: {state}"
    if condition.get("reason"):
        text += f" ({condition['reason']})"
    if condition.get("message"):
        text += f" {condition['message']}"
    good = (state == "True") != (kind in NEGATIVE_CONDITIONS)
    style = "yellow" if state == "Unknown" else ("green" if good else "red")
    return Node(text, style)


def _event_time(event: Mapping[str, Any]) -> datetime:
    for field in ("lastTimestamp", "eventTime", "firstTimestamp"):
        moment = parse_time(event.get(field))
        if moment is not None:
            return moment
    return parse_time(
        (event.get("metadata") or {}).get("creationTimestamp")
    ) or datetime.min.replace(tzinfo=UTC)


def newest_events(
    events: Iterable[Mapping[str, Any]], uid: str | None, limit: int = SHOWN_EVENTS
) -> list[Mapping[str, Any]]:
    """The newest `limit` Events about the object, newest first: those about an earlier
    object of the same name (another uid) are left out."""
    about = [
        e
        for e in events
        if not uid
        or not (e.get("involvedObject") or {}).get("uid")
        or (e.get("involvedObject") or {}).get("uid") == uid
    ]
    return sorted(about, key=_event_time, reverse=True)[:limit]


def _event_node(event: Mapping[str, Any], now: datetime) -> Node:
    moment = _event_time(event)
    ago = age((now - moment).total_seconds()) if moment.year > 1 else "?"
    kind = _str(event.get("type"), "Normal")
    text = f"{ago} ago {kind} {_str(event.get('reason'))}: {_str(event.get('message'), '')}"
    count = event.get("count")
    if isinstance(count, int) and count > 1:
        text += f" (x{count})"
    return Node(text, "yellow" if kind == "Warning" else None)


def rollout_tree(
    obj: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]] | None,
    now: datetime,
    *,
    events_error: str | None = None,
) -> Node:
    """The whole status view of one ModelDeployment. `events` are the core/v1 Events
    about it (any order); None with `events_error` when they could not be read."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    strategy = str((spec.get("strategy") or {}).get("type") or "Canary")
    phase = status.get("phase")

    nodes: list[Node] = [
        Node(f"Namespace: {_str(metadata.get('namespace'))}"),
        Node(f"Phase: {_str(phase, 'Unknown (no status yet)')}", PHASE_STYLES.get(str(phase))),
    ]
    paused = []
    if spec.get("paused"):
        paused.append("by spec.paused")
    if status.get("pausedByRequest"):
        paused.append("by request (driftline rollout resume to continue)")
    if paused:
        nodes.append(Node(f"Paused: {', '.join(paused)}", "yellow"))
    nodes.append(Node(f"Strategy: {strategy}"))
    nodes.append(Node(f"Desired version: {_str(spec.get('modelVersion'))} (spec.modelVersion)"))
    nodes.extend(_traffic_nodes(strategy, status, spec, now))
    if status.get("rolloutStartedAt"):
        nodes.append(Node(f"Rollout started: {when(status['rolloutStartedAt'], now)}"))
    if status.get("abortedVersion"):
        nodes.append(
            Node(
                f"Aborted: {status['abortedVersion']} (driftline rollout retry to try it again)",
                "red",
            )
        )

    tracks = _track_nodes(status)
    nodes.append(Node("Tracks", children=tuple(tracks) or (Node("none yet", "dim"),)))
    if status.get("url"):
        nodes.append(Node(f"URL: {status['url']}"))

    conditions = [c for c in status.get("conditions") or [] if isinstance(c, Mapping)]
    if conditions:
        nodes.append(
            Node("Conditions", children=tuple(_condition_node(c, now) for c in conditions))
        )

    history = [h for h in status.get("history") or [] if isinstance(h, Mapping)]
    if history:
        shown = history[:SHOWN_HISTORY]
        title = (
            "History"
            if len(history) <= SHOWN_HISTORY
            else f"History (last {len(shown)} of {len(history)})"
        )
        nodes.append(
            Node(
                title,
                children=tuple(
                    Node(
                        f"{_str(h.get('version'))} {_str(h.get('outcome'))}"
                        + (f" - {h['reason']}" if h.get("reason") else "")
                        + f", at {when(h.get('at'), now)}",
                        OUTCOME_STYLES.get(str(h.get("outcome"))),
                    )
                    for h in shown
                ),
            )
        )

    if events is None:
        nodes.append(
            Node(f"Events: cannot be read: {_str(events_error, 'unknown error')}", "yellow")
        )
    else:
        recent = newest_events(events, metadata.get("uid"))
        nodes.append(
            Node(
                "Events (newest first)",
                children=tuple(_event_node(e, now) for e in recent) or (Node("none", "dim"),),
            )
        )

    if status.get("handledRequest"):
        nodes.append(Node(f"Last handled request: {status['handledRequest']}", "dim"))
    return Node(
        f"ModelDeployment {_str(metadata.get('name'))}",
        "bold",
        tuple(nodes),
    )


def outcome_line(obj: Mapping[str, Any]) -> str:
    """One line on where the rollout stands, printed after the operator acted on a request."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    parts = [f"phase {_str(status.get('phase'), 'unknown')}"]
    position = step_position(status, spec)
    if position is not None:
        parts.append(f"step {position[0]} of {position[1]}")
    if status.get("canaryVersion"):
        parts.append(f"canary {status['canaryVersion']} at {int(status.get('canaryWeight') or 0)}%")
    if status.get("previewVersion"):
        parts.append(
            f"preview {status['previewVersion']}, active track {_str(status.get('activeTrack'), 'stable')}"
        )
    parts.append(f"stable {_str(status.get('stableVersion'))}")
    if status.get("abortedVersion"):
        parts.append(f"aborted {status['abortedVersion']}")
    if status.get("pausedByRequest"):
        parts.append("paused by request")
    return ", ".join(parts)
