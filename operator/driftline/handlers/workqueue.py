"""A level-triggered work queue of resource keys, as controllers in Kubernetes keep one.

Watch events only say "look at this resource again"; what to do is decided afresh from
what the cluster shows at that moment. So a reconcile that failed is simply tried again
later, whatever changed in between (a spec changed and changed back included), and a
resource that is woken many times while it waits is reconciled once.

Each key is handled by one worker at a time; a key woken while it is being handled is
handled again right after. The reconcile function runs in a thread pool (the API client
blocks); the queue itself lives on the event loop and is touched only from it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from driftline.handlers.retry import retry_delay

logger = logging.getLogger(__name__)


class Key(NamedTuple):
    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


# handle(key, attempt) -> seconds until the key wants another look, or None.
Handler = Callable[[Key, int], float | None]


class WorkQueue:
    def __init__(self, handle: Handler, *, workers: int) -> None:
        self._handle = handle
        self._workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile")
        self._ready: asyncio.Queue[Key] = asyncio.Queue()
        self._queued: set[Key] = set()
        self._active: set[Key] = set()
        self._dirty: set[Key] = set()
        self._attempts: dict[Key, int] = {}
        self._timers: dict[Key, tuple[float, asyncio.TimerHandle]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, key: Key, delay: float = 0.0) -> None:
        """Wake `key` now, or after `delay` seconds (the earliest of several wins)."""
        loop = asyncio.get_running_loop()
        if delay > 0:
            when = loop.time() + delay
            pending = self._timers.get(key)
            if pending is not None:
                if pending[0] <= when:
                    return
                pending[1].cancel()
            self._timers[key] = (when, loop.call_at(when, self._fire, key))
            return
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._ready.put_nowait(key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._work(), name=f"reconcile-worker-{i}")
            for i in range(self._workers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for _, timer in self._timers.values():
            timer.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def pending(self) -> int:
        """Keys waiting or being handled (for metrics and tests)."""
        return len(self._queued) + len(self._active)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            key = await self._ready.get()
            self._queued.discard(key)
            self._active.add(key)
            attempt = self._attempts.get(key, 0)
            try:
                again = await loop.run_in_executor(self._pool, self._handle, key, attempt)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._attempts[key] = attempt + 1
                delay = retry_delay(error, attempt)
                logger.warning("reconciling %s failed (try %d): %s", key, attempt + 1, error)
                self._active.discard(key)
                self.add(key, delay)
            else:
                self._attempts.pop(key, None)
                self._active.discard(key)
                if again is not None:
                    self.add(key, again)
            if key in self._dirty:
                self._dirty.discard(key)
                self.add(key)
