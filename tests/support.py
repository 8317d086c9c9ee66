"""Helpers shared by the tests: written once, imported from here.

Waiting is always on a condition with a deadline, never a fixed sleep: the interval is
how often the condition is looked at, not a guess at how long something takes.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
import zlib
from collections.abc import Callable
from typing import Any


def stable_seed(*parts: object) -> int:
    """A 32-bit seed from `parts` (strings, numbers, tuples of them) that is the same in
    every process: crc32 of their repr. Unlike hash(), it does not change with
    PYTHONHASHSEED, so a failure reported with its seed can be replayed."""
    return zlib.crc32(repr(parts).encode())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(
    condition: Callable[[], Any],
    timeout_s: float = 30.0,
    *,
    what: str = "condition",
    interval_s: float = 0.05,
    ignore: tuple[type[BaseException], ...] = (),
) -> Any:
    """Poll `condition` until it returns something truthy, and return that. An exception
    in `ignore` (say, an injected API fault on the test's own read) counts as not yet.
    At the deadline, fail naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            last = condition()
        except ignore as error:
            last = error
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last: {last!r}")
        time.sleep(interval_s)


async def wait_until_async(
    condition: Callable[[], Any],
    timeout_s: float = 30.0,
    *,
    what: str = "condition",
    interval_s: float = 0.02,
    ignore: tuple[type[BaseException], ...] = (),
    in_thread: bool = False,
) -> Any:
    """`wait_until` for a test running on an event loop: it sleeps with asyncio, runs a
    blocking `condition` (an API client call) in a thread when `in_thread`, and awaits a
    `condition` that is a coroutine function."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            last = await asyncio.to_thread(condition) if in_thread else condition()
            if inspect.isawaitable(last):
                last = await last
        except ignore as error:
            last = error
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval_s)
