"""Keep kopf's watch streams alive through any API answer: retry with backoff, never exit.

Why this exists (kopf 1.45, found by a fault probe, issue 12): each watched resource has a
watch stream, `kopf._cogs.clients.watching.infinite_watch`, which lists the resource and then
watches it. Its API requests (`_cogs.clients.api.request`) retry only connection errors, 5xx,
403 and 429; every other 4xx (`errors.APIClientError` and subclasses: 400, 404, 409, 410 as
an HTTP status, 422) is raised at once, and `infinite_watch` itself swallows only
`APITooManyRequestsError`; an `ERROR` event in the stream other than 410 raises
`watching.WatchingError`. So one 409 on a list or watch escapes the stream, fails the
guarded task "watcher for <resource>@<namespace>"; the orchestrator re-raises that task's
error (`orchestration.orchestrator` -> `aiotasks.reraise`), which fails the root task
"multidimensional multitasker"; `running.run_tasks` then stops every root task and the
process exits 1. The CRD and namespace watches of kopf's observers are root tasks too.
(A 5xx or 403 kills it the same way once kopf's eight request retries, about 54 s, run out.)

kopf has no setting for this (`settings.watching` and `settings.networking` tune timeouts
and the retries of the classes above only), so `install()` wraps `infinite_watch`, the one
function every watcher (resource watchers and the CRD/namespace observers) streams from:
on an API error or a broken stream the wrapper logs a warning naming the resource and the
status, waits (1 s, doubling per consecutive failure, at most 30 s) and starts the stream
afresh, which re-lists the resource, exactly as kopf's own restart after "410 Gone" does.
A resource that is truly gone (its CRD deleted) is also noticed by kopf's resource observer,
which then cancels that watcher; until then this keeps retrying at the capped delay.

It relies on kopf internals (module path and keyword arguments of `infinite_watch`), so a
test runs the real operator through these failures; re-check it when upgrading kopf.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
from kopf._cogs.clients import errors as kopf_errors
from kopf._cogs.clients import watching
from prometheus_client import Counter

logger = logging.getLogger(__name__)

FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 30.0

# What a watch stream may raise because of the API or the network, not because of a bug.
STREAM_ERRORS: tuple[type[BaseException], ...] = (
    kopf_errors.APIError,  # every 4xx and 5xx that kopf did not handle itself
    watching.WatchingError,  # an ERROR event inside the stream (other than 410)
    aiohttp.ClientError,  # a connection or payload error after kopf's own retries
    TimeoutError,
)

WATCH_ERRORS = Counter(
    "driftline_operator_watch_errors_total",
    "Failed list or watch requests of kopf's watch streams, retried, by resource and status.",
    ["resource", "status"],
)

_INSTALLED = "_driftline_resilient"


def retry_delay(failures: int) -> float:
    """Seconds to wait after the `failures`-th failure in a row: 1, 2, 4, ... at most 30."""
    if failures < 1:
        raise ValueError(f"failures counts from 1, not {failures}")
    return min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2.0 ** min(failures - 1, 32))


def error_status(error: BaseException) -> str:
    """The HTTP status of an API error, else the error's class name (a metric label)."""
    if isinstance(error, kopf_errors.APIError):
        return str(error.status)
    return type(error).__name__


def describe(error: BaseException) -> str:
    """`409 Conflict: <the server's message>` for an API error, else the error's repr."""
    if isinstance(error, kopf_errors.APIError):
        payload = error.args[1] if len(error.args) > 1 and isinstance(error.args[1], dict) else {}
        reason = f" {payload['reason']}" if payload.get("reason") else ""
        message = error.message or (str(error.args[0]) if error.args else "")
        return f"{error.status}{reason}: {message}"
    return repr(error)


def resilient(
    infinite_watch: Callable[..., AsyncIterator[Any]],
    delay: Callable[[int], float] = retry_delay,
) -> Callable[..., Any]:
    """Wrap kopf's `infinite_watch` so that no error from the API ends the stream.

    `delay(failures)` gives the seconds to wait before starting again.
    """

    @functools.wraps(infinite_watch)
    async def watch_through_errors(
        *, resource: Any, namespace: str | None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        where = f"in {namespace!r}" if namespace is not None else "cluster-wide"
        failures = 0
        while True:
            try:
                async for event in infinite_watch(resource=resource, namespace=namespace, **kwargs):
                    # A typed event comes only from an open watch (listed objects and kopf's
                    # own bookmarks carry no type): the stream works again, so the next
                    # failure starts the backoff from the beginning.
                    if failures and isinstance(event, dict) and event.get("type") is not None:
                        failures = 0
                    yield event
                return  # only kopf's own tests make the original stream end
            except STREAM_ERRORS as error:
                failures += 1
                seconds = delay(failures)
                WATCH_ERRORS.labels(repr(resource), error_status(error)).inc()
                logger.warning(
                    "Watch-stream for %r %s failed with %s; listing and watching again in %.0f s"
                    " (failure %d in a row).",
                    resource,
                    where,
                    describe(error),
                    seconds,
                    failures,
                )
                await asyncio.sleep(seconds)  # cancellable: the operator can stop meanwhile

    setattr(watch_through_errors, _INSTALLED, True)
    return watch_through_errors


def install() -> None:
    """Make every kopf watch stream started from now on survive API errors (idempotent).

    Call it from a `@kopf.on.startup()` handler: kopf starts its watchers only after the
    startup handlers have finished, and looks `infinite_watch` up on the module each time.
    """
    if getattr(watching.infinite_watch, _INSTALLED, False):
        return
    watching.infinite_watch = resilient(watching.infinite_watch)
