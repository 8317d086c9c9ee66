"""Watch streams: events after a resourceVersion, bookmarks, timeouts and 410 Gone."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp.web
import orjson

from driftline.apiserver import errors
from driftline.apiserver.resources import ResourceType
from driftline.apiserver.store import Event, Gone, Obj, Store


def _truthy(value: str | None) -> bool:
    return value in ("true", "1", "True")


@dataclass(frozen=True)
class WatchOptions:
    since: int | None  # None: start with the current state (synthetic ADDED events)
    initial_events: bool
    bookmarks: bool
    timeout: float

    @classmethod
    def parse(cls, query: Mapping[str, str], max_seconds: float) -> WatchOptions:
        raw_version = query.get("resourceVersion") or ""
        initial_events = _truthy(query.get("sendInitialEvents"))
        try:
            since = None if raw_version in ("", "0") or initial_events else int(raw_version)
            timeout = float(query.get("timeoutSeconds") or max_seconds)
        except ValueError as exc:
            raise errors.bad_request(f"invalid resourceVersion or timeoutSeconds: {exc}") from exc
        return cls(
            since,
            initial_events,
            _truthy(query.get("allowWatchBookmarks")),
            min(timeout, max_seconds),
        )


def event_line(kind: str, obj: Obj, resource: ResourceType) -> bytes:
    if obj.get("apiVersion") != resource.api_version:
        obj = {**obj, "apiVersion": resource.api_version}
    return orjson.dumps({"type": kind, "object": obj}) + b"\n"


def bookmark_line(
    resource: ResourceType, revision: int, annotations: dict[str, str] | None = None
) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": str(revision)}
    if annotations:
        meta["annotations"] = annotations
    bookmark = {"kind": resource.kind, "apiVersion": resource.api_version, "metadata": meta}
    return orjson.dumps({"type": "BOOKMARK", "object": bookmark}) + b"\n"


@dataclass
class WatchStream:
    """One watch request, streamed until its timeout, the client leaving, or the store closing it."""

    raw: aiohttp.web.BaseRequest
    store: Store
    resource: ResourceType
    predicate: Callable[[Obj], bool]
    options: WatchOptions
    bookmark_interval: float
    liveness_interval: float  # how often a silent stream checks that its client is still there

    async def run(self) -> aiohttp.web.StreamResponse:
        response = aiohttp.web.StreamResponse(
            status=200, headers={"Content-Type": "application/json"}
        )
        response.enable_chunked_encoding()
        await response.prepare(self.raw)
        try:
            backlog, watcher = self.store.watch(
                self.resource.storage_key, self.options.since, self.predicate
            )
        except Gone as exc:
            # As kube-apiserver: 200, then one ERROR event carrying the 410 Status.
            await response.write(
                orjson.dumps({"type": "ERROR", "object": errors.gone(str(exc)).status()}) + b"\n"
            )
            await response.write_eof()
            return response
        with contextlib.suppress(ConnectionError):  # a client that hangs up ends its watch
            try:
                for event in backlog:
                    await self._send(response, event, synthetic=self.options.since is None)
                if self.options.initial_events and self.options.bookmarks:
                    await response.write(
                        bookmark_line(
                            self.resource,
                            self.store.revision,
                            {"k8s.io/initial-events-end": "true"},
                        )
                    )
                await self._follow(response, watcher.queue, lambda: watcher.overflowed)
                await response.write_eof()
            finally:
                self.store.unwatch(watcher)
        return response

    async def _follow(
        self,
        response: aiohttp.web.StreamResponse,
        queue: asyncio.Queue[Event | None],
        overflowed: Callable[[], bool],
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.timeout
        next_bookmark = loop.time() + self.bookmark_interval
        while not overflowed():
            now = loop.time()
            if now >= deadline:
                if (
                    self.options.bookmarks
                ):  # as kube-apiserver does, so the client resumes from here
                    await response.write(bookmark_line(self.resource, self.store.revision))
                return
            if self.options.bookmarks and now >= next_bookmark:
                # The queue is drained, so every event up to the current revision has been sent.
                await response.write(bookmark_line(self.resource, self.store.revision))
                next_bookmark = now + self.bookmark_interval
            wake = min(
                deadline,
                next_bookmark if self.options.bookmarks else deadline,
                now + self.liveness_interval,
            )
            try:
                item = await asyncio.wait_for(queue.get(), timeout=max(wake - now, 0.001))
            except TimeoutError:
                transport = self.raw.transport
                if transport is None or transport.is_closing():
                    return  # the client went away
                continue
            if item is None:
                return  # the store closed this watch
            await self._send(response, item, synthetic=False)

    async def _send(
        self, response: aiohttp.web.StreamResponse, event: Event, *, synthetic: bool
    ) -> None:
        translated = (
            (event.type, event.obj) if synthetic else Store.translate_event(event, self.predicate)
        )
        if translated is not None:
            await response.write(event_line(*translated, self.resource))
