"""How failed reconciles are retried, and how API failures are named in status."""

from __future__ import annotations

import random

from driftline.handlers.kube import KubeError

# The longest wait between two tries of one resource.
MAX_BACKOFF_SECONDS = 60.0


def backoff_seconds(retry: int) -> float:
    """Exponential backoff with jitter, so that many objects failing at once spread out."""
    base: float = min(MAX_BACKOFF_SECONDS, 1.0 * 2 ** min(retry, 6))
    return base / 2 + random.uniform(0, base / 2)


# Reasons for errors that retrying cannot fix, by HTTP status.
PERMANENT_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    415: "UnsupportedMediaType",
    422: "InvalidObject",
}


def reason_for(error: KubeError) -> str:
    """The CamelCase reason a Reconciled=False condition gives for an API failure."""
    if error.retryable:
        return "ApiUnavailable" if error.status in (0, 500, 502, 503, 504) else "ApiRetrying"
    return PERMANENT_REASONS.get(error.status, "ApiError")


def retry_delay(error: Exception, attempt: int) -> float:
    """When to try a failed reconcile again.

    A conflict is tried again almost at once: it only means another writer was first.
    Everything else backs off from a second up to a minute, errors that the same request
    cannot fix included (a refused object, a missing grant, a name taken by another
    object): their cause may be fixed outside the resource (RBAC granted, the squatting
    object deleted) without any event that would wake the resource.
    """
    if isinstance(error, KubeError) and error.status == 409:
        return min(0.05 * 2**attempt, 2.0)
    return backoff_seconds(attempt)
