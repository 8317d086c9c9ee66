"""The watch-stream adapter in-process: backoff, restart, what it logs, what it lets through.

The real operator goes through the same failures in test_watch_errors.py; here the stream
that kopf would run is replaced by a scripted one, so each rule is shown on its own.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from kopf._cogs.clients import errors as kopf_errors
from kopf._cogs.clients import watching
from kopf._cogs.structs.references import Resource

from driftline.handlers import watch_resilience
from driftline.handlers.watch_resilience import describe, error_status, resilient, retry_delay

RESOURCE = Resource("driftline.io", "v1alpha1", "modeldeployments")


def conflict() -> kopf_errors.APIConflictError:
    status = {"kind": "Status", "code": 409, "reason": "Conflict", "message": "modified"}
    return kopf_errors.APIConflictError(status, status=409, headers={})


def scripted(*runs: list[Any]) -> tuple[Callable[..., AsyncIterator[Any]], list[dict[str, Any]]]:
    """A stand-in for kopf's infinite_watch: each call plays the next run, raising exceptions."""
    remaining = list(runs)
    calls: list[dict[str, Any]] = []

    async def infinite_watch(**kwargs: Any) -> AsyncIterator[Any]:
        calls.append(kwargs)
        for item in remaining.pop(0):
            if isinstance(item, BaseException):
                raise item
            yield item

    return infinite_watch, calls


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    return [event async for event in stream]


def test_retry_delay_doubles_up_to_a_cap():
    assert [retry_delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert retry_delay(10_000) == 30
    with pytest.raises(ValueError, match="counts from 1"):
        retry_delay(0)


def test_errors_are_described_by_status_and_reason():
    assert describe(conflict()) == "409 Conflict: modified"
    assert error_status(conflict()) == "409"
    plain = kopf_errors.APIClientError("teapot", status=418, headers={})
    assert describe(plain) == "418: teapot"
    broken = watching.WatchingError("Error in the watch-stream: {...}")
    assert error_status(broken) == "WatchingError"
    assert describe(broken).startswith("WatchingError(")


async def test_stream_restarts_after_api_errors_and_backs_off(caplog):
    listed = {"type": None, "object": {"metadata": {"name": "a"}}}
    added = {"type": "ADDED", "object": {"metadata": {"name": "b"}}}
    gone = kopf_errors.APINotFoundError("gone", status=404, headers={})
    infinite_watch, calls = scripted(
        [conflict()],  # the first list fails
        [listed, gone],  # listed, then the watch fails: still failing, so a longer wait
        [listed, added, watching.WatchingError("ERROR event")],  # a watch event: healthy again
        [listed, added],  # kopf's stream ends only in its own tests
    )
    waits: list[int] = []
    stream = resilient(infinite_watch, delay=lambda failures: waits.append(failures) or 0.0)
    with caplog.at_level(logging.WARNING, logger=watch_resilience.__name__):
        events = await collect(stream(settings="s", resource=RESOURCE, namespace=None))

    assert events == [listed, listed, added, listed, added]
    assert waits == [1, 2, 1]
    assert [call["settings"] for call in calls] == ["s"] * 4
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0].startswith(
        "Watch-stream for modeldeployments.v1alpha1.driftline.io cluster-wide failed with "
        "409 Conflict: modified;"
    )
    assert "failed with 404: gone" in messages[1] and "(failure 2 in a row)" in messages[1]
    assert "WatchingError" in messages[2] and "(failure 1 in a row)" in messages[2]


async def test_errors_that_are_not_from_the_api_still_escape():
    infinite_watch, _ = scripted([RuntimeError("a bug")])
    stream = resilient(infinite_watch, delay=lambda failures: 0.0)
    with pytest.raises(RuntimeError, match="a bug"):
        await collect(stream(resource=RESOURCE, namespace="ml"))


def test_install_wraps_kopfs_stream_once(monkeypatch):
    original = watching.infinite_watch
    monkeypatch.setattr(watching, "infinite_watch", original)  # restored after the test
    watch_resilience.install()
    watch_resilience.install()
    assert watching.infinite_watch is not original
    assert watching.infinite_watch.__wrapped__ is original
