"""Objects in memory, the cluster-wide resourceVersion, and the event history watches read.

Every method is synchronous: on one asyncio loop each write is atomic with the watch
registrations around it, so no lock is needed and no watcher misses or repeats an event.
Stored objects are never mutated; a write stores a new dict, so readers may hold on to one.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Storage = tuple[str, str]  # (group, plural): all versions of a resource share one storage
ObjectKey = tuple[str, str, str, str]  # (group, plural, namespace or "", name)
Obj = dict[str, Any]


@dataclass(frozen=True)
class Event:
    revision: int
    type: str  # ADDED, MODIFIED, DELETED
    storage: Storage
    obj: Obj
    previous: Obj | None = None  # the version before a MODIFIED, for selector transitions


class Gone(Exception):
    """The requested resourceVersion is older than the oldest event still kept."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")


@dataclass(eq=False)
class Watcher:
    """One open watch: events that match it are queued until the stream sends them."""

    storage: Storage
    predicate: Callable[[Obj], bool]
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)
    overflowed: bool = False


def object_key(storage: Storage, obj: Obj) -> ObjectKey:
    metadata = obj["metadata"]
    return (storage[0], storage[1], metadata.get("namespace") or "", metadata["name"])


class Store:
    def __init__(self, history_limit: int = 10_000, watch_queue_limit: int = 100_000) -> None:
        self.revision = 0
        self.compacted = 0  # events with a revision <= this are no longer kept
        self._history: collections.deque[Event] = collections.deque()
        self._history_limit = history_limit
        self._watch_queue_limit = watch_queue_limit
        self._objects: dict[Storage, dict[tuple[str, str], Obj]] = collections.defaultdict(dict)
        self._watchers: dict[Storage, set[Watcher]] = collections.defaultdict(set)
        self._listeners: list[Callable[[Event], None]] = []
        self._dependents: dict[str, set[ObjectKey]] = collections.defaultdict(set)

    # --- reading ----------------------------------------------------------------------

    def get(self, storage: Storage, namespace: str, name: str) -> Obj | None:
        return self._objects[storage].get((namespace, name))

    def get_key(self, key: ObjectKey) -> Obj | None:
        return self._objects[(key[0], key[1])].get((key[2], key[3]))

    def list_objects(self, storage: Storage, namespace: str | None = None) -> list[Obj]:
        objects = self._objects[storage]
        keys = sorted(k for k in objects if namespace is None or k[0] == namespace)
        return [objects[k] for k in keys]

    def count(self, storage: Storage) -> int:
        return len(self._objects[storage])

    def watcher_count(self) -> int:
        return sum(len(watchers) for watchers in self._watchers.values())

    def dependents(self, owner_uid: str) -> list[ObjectKey]:
        return sorted(self._dependents.get(owner_uid, ()))

    # --- writing ----------------------------------------------------------------------

    def put(self, storage: Storage, obj: Obj) -> Event:
        """Store a new version of an object, giving it the next resourceVersion."""
        key = (obj["metadata"].get("namespace") or "", obj["metadata"]["name"])
        old = self._objects[storage].get(key)
        self.revision += 1
        stored = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.revision)}}
        self._objects[storage][key] = stored
        self._index_owners(storage, old, stored)
        return self._record(
            Event(self.revision, "MODIFIED" if old is not None else "ADDED", storage, stored, old)
        )

    def remove(self, storage: Storage, namespace: str, name: str) -> Event | None:
        old = self._objects[storage].pop((namespace, name), None)
        if old is None:
            return None
        self._index_owners(storage, old, None)
        self.revision += 1
        gone = {**old, "metadata": {**old["metadata"], "resourceVersion": str(self.revision)}}
        return self._record(Event(self.revision, "DELETED", storage, gone))

    def drop_storage(self, storage: Storage) -> list[Event]:
        """Delete every object of a resource (its CRD was deleted)."""
        return [
            e
            for o in self.list_objects(storage)
            if (e := self.remove(storage, *object_key(storage, o)[2:]))
        ]

    def _index_owners(self, storage: Storage, old: Obj | None, new: Obj | None) -> None:
        for obj, add in ((old, False), (new, True)):
            if obj is None:
                continue
            key = object_key(storage, obj)
            for reference in obj["metadata"].get("ownerReferences") or []:
                uid = reference.get("uid")
                if not uid:
                    continue
                if add:
                    self._dependents[uid].add(key)
                else:
                    self._dependents[uid].discard(key)
                    if not self._dependents[uid]:
                        del self._dependents[uid]

    def _record(self, event: Event) -> Event:
        self._history.append(event)
        while len(self._history) > self._history_limit:
            self.compacted = self._history.popleft().revision
        for watcher in list(self._watchers[event.storage]):
            self._offer(watcher, event)  # the stream applies its selectors (see translate_event)
        for listener in self._listeners:
            listener(event)
        return event

    def _offer(self, watcher: Watcher, event: Event | None) -> None:
        if watcher.queue.qsize() >= self._watch_queue_limit:
            # A consumer this far behind gets its stream closed and must re-list.
            watcher.overflowed = True
            self._watchers[watcher.storage].discard(watcher)
            watcher.queue.put_nowait(None)
            return
        watcher.queue.put_nowait(event)

    # --- watching ---------------------------------------------------------------------

    def watch(
        self, storage: Storage, since: int | None, predicate: Callable[[Obj], bool]
    ) -> tuple[list[Event], Watcher]:
        """Register a watcher; return the events it must send first.

        `since` None means "current state, then changes" (synthetic ADDED events).
        """
        if since is None:
            backlog = [
                Event(self.revision, "ADDED", storage, o)
                for o in self.list_objects(storage)
                if predicate(o)
            ]
        else:
            if since < self.compacted:
                raise Gone(since, self.compacted + 1)
            backlog = [e for e in self._history if e.revision > since and e.storage == storage]
        watcher = Watcher(storage, predicate)
        self._watchers[storage].add(watcher)
        return backlog, watcher

    @staticmethod
    def translate_event(event: Event, predicate: Callable[[Obj], bool]) -> tuple[str, Obj] | None:
        """What a filtered watch sees: objects entering the selection are ADDED, leaving it DELETED."""
        matches_now = predicate(event.obj)
        if event.type != "MODIFIED":
            return (event.type, event.obj) if matches_now else None
        matched_before = event.previous is not None and predicate(event.previous)
        if matches_now:
            return ("MODIFIED" if matched_before else "ADDED", event.obj)
        return ("DELETED", event.obj) if matched_before else None

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers[watcher.storage].discard(watcher)

    def close_watchers(self, storage: Storage | None = None) -> None:
        for key, watchers in list(self._watchers.items()):
            if storage is None or key == storage:
                for watcher in list(watchers):
                    watcher.queue.put_nowait(None)
                watchers.clear()

    def compact(self) -> None:
        """Forget all history, as etcd compaction does: older resourceVersions become 410 Gone."""
        self.compacted = self.revision
        self._history.clear()

    def listen(self, listener: Callable[[Event], None]) -> None:
        self._listeners.append(listener)

    def unlisten(self, listener: Callable[[Event], None]) -> None:
        self._listeners.remove(listener)
