"""URL routing for the Open Inference Protocol endpoints: a pure function of the path."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Endpoint(Enum):
    LIVE = "live"
    READY = "ready"
    SERVER_METADATA = "server_metadata"
    MODEL_METADATA = "model_metadata"
    MODEL_READY = "model_ready"
    INFER = "infer"
    FEEDBACK = "feedback"  # Driftline's extension: ground-truth labels for drift detection
    METRICS = "metrics"


@dataclass(frozen=True, slots=True)
class Route:
    endpoint: Endpoint
    model: str | None = None
    version: str | None = None

    @property
    def method(self) -> str:
        return "POST" if self.endpoint in (Endpoint.INFER, Endpoint.FEEDBACK) else "GET"


_MODEL_ACTIONS = {
    "": Endpoint.MODEL_METADATA,
    "ready": Endpoint.MODEL_READY,
    "infer": Endpoint.INFER,
    "feedback": Endpoint.FEEDBACK,
}


_CACHE: dict[str, Route | None] = {}
_CACHE_LIMIT = 1024


def route(path: str) -> Route | None:
    """Cached ``parse_route``: the same few paths arrive again and again."""
    try:
        return _CACHE[path]
    except KeyError:
        pass
    result = parse_route(path)
    if len(_CACHE) < _CACHE_LIMIT:
        _CACHE[path] = result
    return result


def parse_route(path: str) -> Route | None:
    """Map a request path (query string allowed) to an endpoint, or None when unknown.

    Accepts the versioned forms ``/v2/models/{name}/versions/{v}/...`` that clients use."""
    path = path.split("?", 1)[0]
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    if path == "/v2/health/live":
        return Route(Endpoint.LIVE)
    if path == "/v2/health/ready":
        return Route(Endpoint.READY)
    if path == "/v2":
        return Route(Endpoint.SERVER_METADATA)
    if path == "/metrics":
        return Route(Endpoint.METRICS)
    parts = path.split("/")
    # ['', 'v2', 'models', name, ...]
    if len(parts) < 4 or parts[1] != "v2" or parts[2] != "models" or not parts[3]:
        return None
    model = parts[3]
    rest = parts[4:]
    version: str | None = None
    if len(rest) >= 2 and rest[0] == "versions" and rest[1]:
        version = rest[1]
        rest = rest[2:]
    if len(rest) > 1:
        return None
    action = rest[0] if rest else ""
    endpoint = _MODEL_ACTIONS.get(action)
    if endpoint is None:
        return None
    return Route(endpoint, model, version)
