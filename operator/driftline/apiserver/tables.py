"""Server-side printing: the meta.k8s.io/v1 Table kubectl asks for with `kubectl get`.

Columns are Name, a CRD's additionalPrinterColumns, and Age, as kube-apiserver prints
custom resources; the built-in kinds the local API serves most get kube-apiserver's own
columns (`BUILTIN_PRINTERS`), the others Name and Age.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable
from typing import Any

_SEGMENT = re.compile(
    r"""\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*["']([^"']*)["']\)\]"""
)
NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name of the object",
    "priority": 0,
}
AGE_COLUMN = {
    "name": "Age",
    "type": "date",
    "format": "",
    "description": "Time since creation",
    "priority": 0,
    "jsonPath": ".metadata.creationTimestamp",
}


def wants_table(accept: str | None) -> bool:
    return bool(accept) and "as=Table" in (accept or "")


def json_path(obj: Any, expression: str) -> Any:
    """The subset of kubectl JSONPath that printer columns use: `.a.b`, `[0]`, `[?(@.k=="v")]`."""
    position, current = 0, obj
    while position < len(expression):
        match = _SEGMENT.match(expression, position)
        if match is None:
            return None  # an expression this subset cannot read prints as empty, as for a missing field
        field, index, filter_path, filter_value = match.groups()
        if field is not None:
            current = current.get(field) if isinstance(current, dict) else None
        elif index is not None:
            current = (
                current[int(index)]
                if isinstance(current, list) and int(index) < len(current)
                else None
            )
        else:
            items = current if isinstance(current, list) else []
            current = next(
                (i for i in items if str(json_path(i, "." + filter_path)) == filter_value), None
            )
        if current is None:
            return None
        position = match.end()
    return current


def human_age(timestamp: str | None, now: datetime.datetime) -> str:
    """kubectl's short durations: 45s, 12m, 5h, 3d."""
    if not timestamp:
        return "<unknown>"
    created = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = max(int((now - created).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _cell(value: Any, column: dict[str, Any], now: datetime.datetime) -> Any:
    if column.get("type") == "date":
        return human_age(value, now) if isinstance(value, str) else "<unknown>"
    return value if value is not None else None


def table(
    objects: Iterable[dict[str, Any]],
    printer_columns: tuple[dict[str, Any], ...],
    resource_version: str,
) -> dict[str, Any]:
    columns = [c for c in printer_columns if c.get("jsonPath") != ".metadata.creationTimestamp"]
    definitions = (
        [NAME_COLUMN]
        + [
            {
                "name": c["name"],
                "type": c.get("type", "string"),
                "format": c.get("format", ""),
                "description": c.get("description", ""),
                "priority": c.get("priority", 0),
            }
            for c in columns
        ]
        + [{k: v for k, v in AGE_COLUMN.items() if k != "jsonPath"}]
    )
    now = datetime.datetime.now(datetime.UTC)
    rows = []
    for obj in objects:
        meta = obj["metadata"]
        cells = [
            meta["name"],
            *(_cell(json_path(obj, c["jsonPath"]), c, now) for c in columns),
            _cell(meta.get("creationTimestamp"), AGE_COLUMN, now),
        ]
        partial = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta,
        }
        rows.append({"cells": cells, "object": partial})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }


# --- built-in kinds: the columns kubectl prints from a real cluster -----------------------

Row = list[Any]
Printer = tuple[
    tuple[tuple[str, str, int], ...], Callable[[dict[str, Any], datetime.datetime], Row]
]


def human_duration(seconds: float) -> str:
    """kubectl's HumanDuration (k8s.io/apimachinery/pkg/util/duration), as the built-in
    printers show ages and durations: 45s, 3m20s, 2h5m, 3d4h, 40d, 2y30d."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 60 * 2:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _since(timestamp: Any, now: datetime.datetime) -> str:
    moment = _parse_time(timestamp)
    return "<unknown>" if moment is None else human_duration((now - moment).total_seconds())


def _parse_time(timestamp: Any) -> datetime.datetime | None:
    if not isinstance(timestamp, str) or not timestamp:
        return None
    try:
        return datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return None


def _dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


def _age(obj: dict[str, Any], now: datetime.datetime) -> str:
    return _since(_dig(obj, "metadata", "creationTimestamp"), now)


def _containers(template_spec: Any) -> tuple[str, str]:
    containers = _dig(template_spec, "containers") or []
    names = ",".join(str(c.get("name", "")) for c in containers if isinstance(c, dict))
    images = ",".join(str(c.get("image", "")) for c in containers if isinstance(c, dict))
    return names, images


def _selector(selector: Any) -> str:
    """A LabelSelector as kubectl prints it (matchLabels, then matchExpressions)."""
    if not isinstance(selector, dict):
        return "<none>"
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = ",".join(expression.get("values") or [])
        parts.append(
            {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key}.get(
                operator, f"!{key}"
            )
        )
    return ",".join(parts) or "<none>"


def _deployment(obj: dict[str, Any], now: datetime.datetime) -> Row:
    status = obj.get("status") or {}
    names, images = _containers(_dig(obj, "spec", "template", "spec"))
    return [
        f"{status.get('readyReplicas', 0)}/{_dig(obj, 'spec', 'replicas') or 0}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        _age(obj, now),
        names,
        images,
        _selector(_dig(obj, "spec", "selector")),
    ]


def _replicaset(obj: dict[str, Any], now: datetime.datetime) -> Row:
    status = obj.get("status") or {}
    names, images = _containers(_dig(obj, "spec", "template", "spec"))
    return [
        _dig(obj, "spec", "replicas") or 0,
        status.get("replicas", 0),
        status.get("readyReplicas", 0),
        _age(obj, now),
        names,
        images,
        _selector(_dig(obj, "spec", "selector")),
    ]


def _condition_true(obj: dict[str, Any], kind: str) -> bool:
    conditions = _dig(obj, "status", "conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def _job_status(obj: dict[str, Any]) -> str:
    """The STATUS column of kubectl 1.32's job printer."""
    for condition in ("Failed", "Complete", "SuccessCriteriaMet", "FailureTarget"):
        if _condition_true(obj, condition):
            return condition
    if _condition_true(obj, "Suspended"):
        return "Suspended"
    if _dig(obj, "metadata", "deletionTimestamp"):
        return "Terminating"
    return "Running"


def _job(obj: dict[str, Any], now: datetime.datetime) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    succeeded = status.get("succeeded", 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    else:
        parallelism = spec.get("parallelism", 0)
        completions = f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"
    started, finished = (
        _parse_time(status.get("startTime")),
        _parse_time(status.get("completionTime")),
    )
    duration = (
        "" if started is None else human_duration(((finished or now) - started).total_seconds())
    )
    names, images = _containers(_dig(spec, "template", "spec"))
    return [
        _job_status(obj),
        completions,
        duration,
        _age(obj, now),
        names,
        images,
        _selector(spec.get("selector")),
    ]


def _pod(obj: dict[str, Any], now: datetime.datetime) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    reason = status.get("reason") or status.get("phase") or "Pending"
    for container in statuses:
        waiting = _dig(container, "state", "waiting", "reason")
        terminated = _dig(container, "state", "terminated")
        if waiting:
            reason = waiting
        elif isinstance(terminated, dict) and terminated.get("reason"):
            reason = terminated["reason"]
    if _dig(obj, "metadata", "deletionTimestamp"):
        reason = "Terminating"
    restarts = sum(int(s.get("restartCount", 0)) for s in statuses)
    return [
        f"{ready}/{len(spec.get('containers') or [])}",
        reason,
        restarts,
        _age(obj, now),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        "<none>",
    ]


def _service(obj: dict[str, Any], now: datetime.datetime) -> Row:
    spec = obj.get("spec") or {}
    kind = spec.get("type") or "ClusterIP"
    external = "<none>"
    if kind == "ExternalName":
        external = spec.get("externalName") or "<none>"
    elif kind == "LoadBalancer":
        ingress = _dig(obj, "status", "loadBalancer", "ingress") or []
        external = ",".join(i.get("ip") or i.get("hostname", "") for i in ingress) or "<pending>"
    elif spec.get("externalIPs"):
        external = ",".join(spec["externalIPs"])
    ports = [
        f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    ]
    selector = spec.get("selector") or {}
    return [
        kind,
        spec.get("clusterIP") or "<none>",
        external,
        ",".join(ports) or "<none>",
        _age(obj, now),
        ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>",
    ]


def _event_object(reference: Any) -> str:
    kind = str(_dig(reference, "kind") or "").lower()
    return f"{kind}/{_dig(reference, 'name') or ''}"


def _last_seen(last: Any, first: Any, count: Any, now: datetime.datetime) -> str:
    seen = _since(last, now)
    if isinstance(count, int) and count > 1 and first:
        return f"{seen} (x{count} over {_since(first, now)})"
    return seen


def _event(obj: dict[str, Any], now: datetime.datetime) -> Row:
    last = obj.get("lastTimestamp") or obj.get("eventTime") or obj.get("firstTimestamp")
    first = obj.get("firstTimestamp") or obj.get("eventTime")
    return [
        _last_seen(last, first, obj.get("count"), now),
        obj.get("type", ""),
        obj.get("reason", ""),
        _event_object(obj.get("involvedObject")),
        str(obj.get("message", "")).strip(),
    ]


def _events_k8s_io(obj: dict[str, Any], now: datetime.datetime) -> Row:
    series = obj.get("series") or {}
    last = (
        series.get("lastObservedTime") or obj.get("deprecatedLastTimestamp") or obj.get("eventTime")
    )
    first = obj.get("deprecatedFirstTimestamp") or obj.get("eventTime")
    count = series.get("count") or obj.get("deprecatedCount")
    return [
        _last_seen(last, first, count, now),
        obj.get("type", ""),
        obj.get("reason", ""),
        _event_object(obj.get("regarding")),
        str(obj.get("note", "")).strip(),
    ]


def _namespace(obj: dict[str, Any], now: datetime.datetime) -> Row:
    return [_dig(obj, "status", "phase") or "", _age(obj, now)]


def _configmap(obj: dict[str, Any], now: datetime.datetime) -> Row:
    return [len(obj.get("data") or {}) + len(obj.get("binaryData") or {}), _age(obj, now)]


def _secret(obj: dict[str, Any], now: datetime.datetime) -> Row:
    return [
        obj.get("type") or "Opaque",
        len(obj.get("data") or {}) + len(obj.get("stringData") or {}),
        _age(obj, now),
    ]


_AGE = ("Age", "string", 0)
# (group, plural) -> ((column name, type, priority), ...), row function.
# The wide columns kubectl shows for every kind that runs pods from a template.
_WORKLOAD_WIDE = (
    ("Containers", "string", 1),
    ("Images", "string", 1),
    ("Selector", "string", 1),
)
BUILTIN_PRINTERS: dict[tuple[str, str], Printer] = {
    ("apps", "deployments"): (
        (
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            _AGE,
            *_WORKLOAD_WIDE,
        ),
        _deployment,
    ),
    ("apps", "replicasets"): (
        (
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            _AGE,
            *_WORKLOAD_WIDE,
        ),
        _replicaset,
    ),
    ("batch", "jobs"): (
        (
            ("Status", "string", 0),
            ("Completions", "string", 0),
            ("Duration", "string", 0),
            _AGE,
            *_WORKLOAD_WIDE,
        ),
        _job,
    ),
    ("", "pods"): (
        (
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            _AGE,
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ),
        _pod,
    ),
    ("", "services"): (
        (
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            _AGE,
            ("Selector", "string", 1),
        ),
        _service,
    ),
    ("", "events"): (
        (
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ),
        _event,
    ),
    ("events.k8s.io", "events"): (
        (
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ),
        _events_k8s_io,
    ),
    ("", "namespaces"): ((("Status", "string", 0), _AGE), _namespace),
    ("", "configmaps"): ((("Data", "integer", 0), _AGE), _configmap),
    ("", "secrets"): ((("Type", "string", 0), ("Data", "integer", 0), _AGE), _secret),
}
# Events are listed without a Name column, as kube-apiserver prints them.
_WITHOUT_NAME = frozenset({("", "events"), ("events.k8s.io", "events")})


def builtin_table(
    group: str,
    plural: str,
    objects: Iterable[dict[str, Any]],
    resource_version: str,
    now: datetime.datetime | None = None,
) -> dict[str, Any] | None:
    """The Table kube-apiserver prints for a built-in kind; None for kinds without a printer."""
    printer = BUILTIN_PRINTERS.get((group, plural))
    if printer is None:
        return None
    columns, row_of = printer
    now = now or datetime.datetime.now(datetime.UTC)
    named = (group, plural) not in _WITHOUT_NAME
    definitions = ([NAME_COLUMN] if named else []) + [
        {"name": name, "type": kind, "format": "", "description": "", "priority": priority}
        for name, kind, priority in columns
    ]
    rows = []
    for obj in objects:
        meta = obj["metadata"]
        cells = ([meta["name"]] if named else []) + row_of(obj, now)
        partial = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": meta,
        }
        rows.append({"cells": cells, "object": partial})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }
