"""What every handler shares: the API client, render settings, and error translation."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

from driftline.handlers.kube import Kube, KubeError
from driftline.render.settings import RenderSettings


@dataclass
class Runtime:
    kube: Kube
    settings: RenderSettings


_current: Runtime | None = None


def configure(runtime: Runtime) -> None:
    global _current
    _current = runtime


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("the operator runtime is not configured (startup handler not run)")
    return _current


def plain(value: Any) -> Any:
    """A deep copy as plain dicts and lists (kopf hands out read-only views)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [plain(v) for v in value]
    return value


def backoff_seconds(retry: int) -> float:
    """Exponential backoff with jitter, so that many objects failing at once spread out."""
    base: float = min(60.0, 1.0 * 2 ** min(retry, 6))
    return base / 2 + random.uniform(0, base / 2)


# Reasons for errors that retrying cannot fix, by HTTP status.
PERMANENT_REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    415: "UnsupportedMediaType",
    422: "InvalidObject",
}


def reason_for(error: KubeError) -> str:
    if error.retryable:
        return "ApiUnavailable" if error.status in (0, 500, 502, 503, 504) else "ApiRetrying"
    return PERMANENT_REASONS.get(error.status, "ApiError")


def kopf_error(error: KubeError, retry: int) -> kopf.TemporaryError | kopf.PermanentError:
    """Retry with backoff where that can help; give up (and say why in status) where not."""
    if error.retryable:
        return kopf.TemporaryError(str(error), delay=backoff_seconds(retry))
    return kopf.PermanentError(str(error))
